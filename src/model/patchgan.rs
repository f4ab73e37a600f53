//! The 70x70 PatchGAN discriminator of pix2pix (`n_layers = 3`): five 4x4 convolutions,
//! three of stride 2, on the concatenation of L and ab. Its output is a grid of logits,
//! one per 70x70 receptive field (30x30 for a 256x256 input).

use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{BatchNorm, PaddingConfig2d};
use burn::prelude::*;
use burn::tensor::activation::leaky_relu;

use super::init::{init_batch_norm, normal_init};

/// Hyper-parameters of the PatchGAN discriminator.
#[derive(Config, Debug, PartialEq)]
pub struct PatchGanConfig {
    /// Input channels: 1 (L) + 2 (ab).
    #[config(default = 3)]
    pub in_channels: usize,
    /// Filters of the first layer (pix2pix `ndf`).
    #[config(default = 64)]
    pub ndf: usize,
    /// Number of stride-2 layers after the first (3 gives the 70x70 PatchGAN).
    #[config(default = 3)]
    pub n_layers: usize,
}

#[derive(Module, Debug)]
struct DLayer {
    conv: Conv2d,
    norm: Option<BatchNorm>,
}

/// PatchGAN: `[B, 3, H, W]` -> `[B, 1, H', W']` logits.
#[derive(Module, Debug)]
pub struct PatchGan {
    layers: Vec<DLayer>,
    out: Conv2d,
}

fn conv4(cin: usize, cout: usize, stride: usize, bias: bool, device: &Device) -> Conv2d {
    normal_init(
        Conv2dConfig::new([cin, cout], [4, 4])
            .with_stride([stride, stride])
            .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
            .with_bias(bias),
        device,
    )
}

impl PatchGanConfig {
    pub fn init(&self, device: &Device) -> PatchGan {
        let mut layers = vec![DLayer {
            conv: conv4(self.in_channels, self.ndf, 2, true, device),
            norm: None,
        }];
        let mut mult = 1;
        for n in 1..=self.n_layers {
            let prev = mult;
            mult = (1 << n).min(8);
            let stride = if n < self.n_layers { 2 } else { 1 };
            layers.push(DLayer {
                conv: conv4(self.ndf * prev, self.ndf * mult, stride, false, device),
                norm: Some(init_batch_norm(self.ndf * mult, device)),
            });
        }
        PatchGan {
            layers,
            out: conv4(self.ndf * mult, 1, 1, true, device),
        }
    }
}

impl PatchGan {
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let mut h = x;
        for layer in &self.layers {
            h = layer.conv.forward(h);
            if let Some(n) = &layer.norm {
                h = n.forward(h);
            }
            h = leaky_relu(h, 0.2);
        }
        self.out.forward(h)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patchgan_70_has_five_convs_and_30x30_output_at_256() {
        let device = Device::flex();
        let d = PatchGanConfig::new().with_ndf(8).init(&device);
        assert_eq!(d.layers.len() + 1, 5);
        // Output size: 256 -> 128 -> 64 -> 32 -> 31 -> 30 (k4, p1; strides 2, 2, 2, 1, 1).
        let y = d.forward(Tensor::zeros([1, 3, 256, 256], &device));
        assert_eq!(y.dims(), [1, 1, 30, 30]);
    }
}
