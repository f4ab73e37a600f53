//! The pix2pix U-Net generator (`unet_256` and its shallower/narrower variants).
//!
//! Structure (Isola et al. 2017, and pytorch-CycleGAN-and-pix2pix's `UnetGenerator`):
//! level `i` of `depth` down-samples with a 4x4 stride-2 convolution to
//! `min(ngf * 2^i, ngf * 8)` channels (LeakyReLU 0.2 before it except at the outermost
//! level, batch norm after it except at the outermost and innermost levels). The decoder
//! mirrors it with 4x4 stride-2 transposed convolutions (ReLU before, batch norm after,
//! dropout 0.5 on the `depth - 5` inner blocks below the innermost one), each taking the
//! concatenation of the skip connection and the level below. The outermost block ends in
//! tanh. With `depth = 8` and a 256x256 input the innermost activation is 1x1.

use burn::nn::conv::{Conv2d, Conv2dConfig, ConvTranspose2d, ConvTranspose2dConfig};
use burn::nn::{BatchNorm, Dropout, DropoutConfig, PaddingConfig2d};
use burn::prelude::*;
use burn::tensor::activation::{leaky_relu, relu, tanh};

use super::init::{init_batch_norm, normal_init};

/// Hyper-parameters of the U-Net generator.
#[derive(Config, Debug, PartialEq)]
pub struct UnetConfig {
    /// Input channels (1: L).
    #[config(default = 1)]
    pub in_channels: usize,
    /// Output channels (2: a, b).
    #[config(default = 2)]
    pub out_channels: usize,
    /// Filters of the outermost level (pix2pix `ngf`).
    #[config(default = 64)]
    pub ngf: usize,
    /// Number of down-sampling levels; 8 for 256 px (`unet_256`), 7 for 128 px.
    #[config(default = 8)]
    pub depth: usize,
    /// Dropout probability of the inner decoder blocks.
    #[config(default = 0.5)]
    pub dropout: f64,
}

impl UnetConfig {
    /// The depth that makes the innermost activation 1x1 for a `size`-pixel input
    /// (`log2(size)`), as pix2pix does: 8 for 256, 6 for 64.
    pub fn depth_for_size(size: usize) -> usize {
        (usize::BITS - 1 - size.max(2).leading_zeros()) as usize
    }

    /// Channels produced by down level `i`.
    pub fn level_channels(&self, i: usize) -> usize {
        self.ngf * (1usize << i.min(3))
    }

    /// Multiply-accumulates of one forward pass on a `size` x `size` input.
    pub fn macs(&self, size: usize) -> u64 {
        let mut total = 0u64;
        for i in 0..self.depth {
            let cin = if i == 0 {
                self.in_channels
            } else {
                self.level_channels(i - 1)
            };
            let cout = self.level_channels(i);
            let out_hw = (size >> (i + 1)).pow(2) as u64;
            total += (cin * cout * 16) as u64 * out_hw;
            // The transposed conv of level i maps the level's output back to its input size:
            // cost cin_up * cout_up * 16 per input pixel.
            let up_in = if i == self.depth - 1 { cout } else { 2 * cout };
            let up_out = if i == 0 { self.out_channels } else { cin };
            total += (up_in * up_out * 16) as u64 * out_hw;
        }
        total
    }

    /// Builds the generator with pix2pix's N(0, 0.02) initialisation.
    pub fn init(&self, device: &Device) -> Unet {
        assert!(self.depth >= 2, "a U-Net needs at least 2 levels");
        let n = self.depth;
        let mut down = Vec::with_capacity(n);
        let mut up = Vec::with_capacity(n);
        for i in 0..n {
            let cin = if i == 0 {
                self.in_channels
            } else {
                self.level_channels(i - 1)
            };
            let cout = self.level_channels(i);
            let innermost = i == n - 1;
            down.push(DownBlock {
                conv: conv4x4_s2(cin, cout, false, device),
                norm: (i > 0 && !innermost).then(|| init_batch_norm(cout, device)),
                pre_act: i > 0,
            });
            let up_in = if innermost { cout } else { 2 * cout };
            let up_out = if i == 0 {
                self.out_channels
            } else {
                self.level_channels(i - 1)
            };
            let outermost = i == 0;
            up.push(UpBlock {
                conv: normal_init(
                    ConvTranspose2dConfig::new([up_in, up_out], [4, 4])
                        .with_stride([2, 2])
                        .with_padding([1, 1])
                        .with_bias(outermost),
                    device,
                ),
                norm: (!outermost).then(|| init_batch_norm(up_out, device)),
                dropout: (i >= 4 && i + 2 <= n && !innermost).then(|| DropoutConfig::new(self.dropout).init()),
            });
        }
        Unet { down, up }
    }
}

fn conv4x4_s2(cin: usize, cout: usize, bias: bool, device: &Device) -> Conv2d {
    normal_init(
        Conv2dConfig::new([cin, cout], [4, 4])
            .with_stride([2, 2])
            .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
            .with_bias(bias),
        device,
    )
}

/// One encoder level: [LeakyReLU] -> conv 4x4/2 -> [BN].
#[derive(Module, Debug)]
pub struct DownBlock {
    conv: Conv2d,
    norm: Option<BatchNorm>,
    pre_act: bool,
}

impl DownBlock {
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let x = if self.pre_act { leaky_relu(x, 0.2) } else { x };
        let x = self.conv.forward(x);
        match &self.norm {
            Some(n) => n.forward(x),
            None => x,
        }
    }
}

/// One decoder level: ReLU -> transposed conv 4x4/2 -> BN [-> dropout], or tanh at the top.
#[derive(Module, Debug)]
pub struct UpBlock {
    conv: ConvTranspose2d,
    norm: Option<BatchNorm>,
    dropout: Option<Dropout>,
}

impl UpBlock {
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let x = self.conv.forward(relu(x));
        match &self.norm {
            None => tanh(x),
            Some(n) => {
                let x = n.forward(x);
                match &self.dropout {
                    Some(d) => d.forward(x),
                    None => x,
                }
            }
        }
    }
}

/// The U-Net generator: L (scaled to [-1, 1]) in, ab (scaled to [-1, 1]) out.
#[derive(Module, Debug)]
pub struct Unet {
    down: Vec<DownBlock>,
    up: Vec<UpBlock>,
}

impl Unet {
    /// `x`: `[batch, in_channels, H, W]` with H and W multiples of `2^depth`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let n = self.down.len();
        let mut skips = Vec::with_capacity(n);
        let mut h = x;
        for block in &self.down {
            h = block.forward(h);
            skips.push(h.clone());
        }
        // h is the innermost activation; decode from the innermost level outwards.
        let mut u = self.up[n - 1].forward(skips.pop().expect("depth >= 2"));
        for i in (0..n - 1).rev() {
            let skip = skips.pop().expect("one skip per level");
            u = self.up[i].forward(Tensor::cat(vec![skip, u], 1));
        }
        u
    }

    pub fn depth(&self) -> usize {
        self.down.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn depth_for_size_keeps_innermost_1x1() {
        assert_eq!(UnetConfig::depth_for_size(256), 8);
        assert_eq!(UnetConfig::depth_for_size(128), 7);
        assert_eq!(UnetConfig::depth_for_size(64), 6);
        assert_eq!(UnetConfig::depth_for_size(32), 5);
    }

    #[test]
    fn unet_256_costs_what_the_pytorch_reference_reports() {
        // ../shared/bench: G 5.98 GMAC at 256 px, 1.49 at 128 (unet_128).
        let g256 = UnetConfig::new().macs(256) as f64 / 1e9;
        let g128 = UnetConfig::new().with_depth(7).macs(128) as f64 / 1e9;
        assert!((g256 - 5.98).abs() < 0.01, "{g256}");
        assert!((g128 - 1.49).abs() < 0.01, "{g128}");
    }

    #[test]
    fn shallow_unet_shapes_and_range() {
        let device = Device::flex();
        let g = UnetConfig::new().with_ngf(4).with_depth(5).init(&device);
        let x = Tensor::<4>::random([2, 1, 32, 64], burn::tensor::Distribution::Uniform(-1.0, 1.0), &device);
        let y = g.forward(x);
        assert_eq!(y.dims(), [2, 2, 32, 64]);
        let v = y.into_data().try_to_vec::<f32>().unwrap();
        assert!(v.iter().all(|x| x.is_finite() && x.abs() <= 1.0));
    }

    #[test]
    fn unet_256_structure_matches_pix2pix() {
        // Build the structure only (cheap) and count parameters of the real unet_256.
        // pix2pix's unet_256 (ngf 64, batch norm, 3 in / 3 out) has 54,413,955 parameters,
        // counted by hand from its layers (pix2pix prints "54.414 M"); with 1 in and 2 out the
        // first conv loses 2*64*16 weights and the last transposed conv 128*16 weights and a bias.
        let device = Device::flex();
        let g = UnetConfig::new().init(&device);
        let trainable = 54_413_955 - 2 * 64 * 16 - (128 * 16 + 1);
        // Burn also counts BatchNorm running statistics as module parameters.
        let bn_channels: usize = [128, 256, 512, 512, 512, 512] // down norms, levels 1..6
            .iter()
            .chain([512, 512, 512, 512, 256, 128, 64].iter()) // up norms, levels 7..1
            .sum();
        assert_eq!(g.num_params(), trainable + 2 * bn_channels);
        assert_eq!(g.depth(), 8);
        let dropouts = g.up.iter().filter(|u| u.dropout.is_some()).count();
        assert_eq!(dropouts, 3);
    }
}
