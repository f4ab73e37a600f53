//! EfficientNet-Lite0 (Tan & Le 2019, the "Lite" variant: ReLU6, no squeeze-excitation) as an
//! ImageNet-pretrained U-Net encoder, and the `effnet-unet` generator built on it.
//!
//! Module and field names follow timm's `tf_efficientnet_lite0`, so the weights in
//! `../shared/weights/efficientnet-lite0.safetensors` load by name (batch-norm `weight`/`bias`
//! are renamed to Burn's `gamma`/`beta`). Batch norm uses epsilon 1e-3 and the stride-2
//! convolutions use TensorFlow "SAME" padding, which for the even sizes used here is
//! asymmetric (0 before / 1 after for 3x3, 1 / 2 for 5x5).

use std::path::Path;

use anyhow::{Result, anyhow, bail};
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, Linear, LinearConfig, PaddingConfig2d};
use burn::prelude::*;
use burn::store::{ModuleSnapshot, SafetensorsStore};
use burn::tensor::activation::{relu, tanh};
use burn::tensor::module::interpolate;
use burn::tensor::ops::{InterpolateMode, InterpolateOptions};

use super::init::normal_init;
use super::store::ModelSource;
use burn::module::{Param, ParamId};

/// Channels of the decoder's skips: encoder stages at strides 16, 8, 4, 2, then L.
const SKIP_CHANNELS: [usize; 5] = [112, 40, 24, 16, 1];

/// Batch-norm epsilon of the TensorFlow EfficientNet checkpoints.
pub const BN_EPS: f64 = 1e-3;

/// (kernel, stride, expand ratio, output channels, repeats) of stages 0-6.
pub const STAGES: [(usize, usize, usize, usize, usize); 7] = [
    (3, 1, 1, 16, 1),
    (3, 2, 6, 24, 2),
    (5, 2, 6, 40, 2),
    (3, 2, 6, 80, 3),
    (5, 1, 6, 112, 3),
    (5, 2, 6, 192, 4),
    (3, 1, 6, 320, 1),
];

/// Stages whose outputs are the U-Net skips: strides 2, 4, 8, 16 and 32.
pub const SKIP_STAGES: [usize; 5] = [0, 1, 2, 4, 6];

fn relu6<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    x.clamp(0.0, 6.0)
}

/// Bilinear resize (corners aligned) of `x` to `h` x `w`. Burn's cubecl backends (vulkan, wgpu,
/// cuda) have no backward pass for bilinear interpolation, so off the CPU it is computed as two
/// matrix products with the interpolation matrices, which every backend differentiates; on the
/// CPU backend the direct kernel is cheaper and is used.
pub fn upsample_bilinear(x: Tensor<4>, h: usize, w: usize) -> Tensor<4> {
    if x.device().inner() == Device::flex() {
        interpolate(
            x,
            InterpolateOptions::new(InterpolateMode::Bilinear).with_output_size([h, w]),
        )
    } else {
        upsample_bilinear_matmul(x, h, w)
    }
}

/// [`upsample_bilinear`] as `A_h · x · A_wᵀ` on any device.
pub fn upsample_bilinear_matmul(x: Tensor<4>, h: usize, w: usize) -> Tensor<4> {
    let [b, c, hi, wi] = x.dims();
    let device = x.device();
    let aw = interpolation_matrix(wi, w, &device).transpose(); // [wi, w]
    let ah = interpolation_matrix(hi, h, &device).transpose(); // [hi, h]
    let y = x.reshape([b * c * hi, wi]).matmul(aw).reshape([b * c, hi, w]);
    y.swap_dims(1, 2)
        .reshape([b * c * w, hi])
        .matmul(ah)
        .reshape([b * c, w, h])
        .swap_dims(1, 2)
        .reshape([b, c, h, w])
}

/// The `[m, n]` matrix of linear interpolation from `n` samples to `m`, corners aligned.
fn interpolation_matrix(n: usize, m: usize, device: &Device) -> Tensor<2> {
    let mut a = vec![0f32; m * n];
    for i in 0..m {
        let src = if m > 1 {
            i as f64 * (n - 1) as f64 / (m - 1) as f64
        } else {
            0.0
        };
        let i0 = (src.floor() as usize).min(n - 1);
        let i1 = (i0 + 1).min(n - 1);
        let f = (src - i0 as f64) as f32;
        a[i * n + i0] += 1.0 - f;
        a[i * n + i1] += f;
    }
    Tensor::from_data(TensorData::new(a, [m, n]), device)
}

fn bn(c: usize, device: &Device) -> BatchNorm {
    BatchNormConfig::new(c)
        .with_epsilon(BN_EPS)
        .with_momentum(0.01)
        .init(device)
}

/// TF "SAME" padding (top, left, bottom, right) for an even input size.
fn same_padding(k: usize, stride: usize) -> PaddingConfig2d {
    if stride == 1 {
        PaddingConfig2d::Explicit(k / 2, k / 2, k / 2, k / 2)
    } else {
        let total = k - stride; // (out-1)*s + k - in with in = s*out
        let before = total / 2;
        let after = total - before;
        PaddingConfig2d::Explicit(before, before, after, after)
    }
}

fn conv(cin: usize, cout: usize, k: usize, stride: usize, groups: usize, device: &Device) -> Conv2d {
    Conv2dConfig::new([cin, cout], [k, k])
        .with_stride([stride, stride])
        .with_groups(groups)
        .with_padding(same_padding(k, stride))
        .with_bias(false)
        .init(device)
}

/// Folds an inference-mode batch norm into the convolution before it:
/// `w' = w * g / sqrt(var + eps)`, `b' = beta + (b - mean) * g / sqrt(var + eps)`.
fn fold_bn(conv: &mut Conv2d, bn: &BatchNorm) {
    let scale = bn.gamma.val() / bn.running_var.value().add_scalar(bn.epsilon).sqrt();
    let [cout] = scale.dims();
    let w = conv.weight.val() * scale.clone().reshape([cout, 1, 1, 1]);
    let b0 = conv
        .bias
        .as_ref()
        .map(|b| b.val())
        .unwrap_or_else(|| scale.zeros_like());
    let b = bn.beta.val() + (b0 - bn.running_mean.value()) * scale;
    conv.weight = Param::initialized(ParamId::new(), w);
    conv.bias = Some(Param::initialized(ParamId::new(), b));
}

/// Applies batch norm unless it has been folded into the preceding convolution.
fn norm(bn: &BatchNorm, folded: bool, x: Tensor<4>) -> Tensor<4> {
    if folded { x } else { bn.forward(x) }
}

/// A block: depthwise-separable (stage 0: dw, BN, ReLU6, pw, BN) or inverted residual
/// (pw expand, BN, ReLU6, dw, BN, ReLU6, pw project, BN, + input when shapes allow).
#[derive(Module, Debug)]
pub struct Block {
    conv_pw: Option<Conv2d>,
    bn1: BatchNorm,
    conv_dw: Conv2d,
    bn2: BatchNorm,
    conv_pwl: Option<Conv2d>,
    bn3: Option<BatchNorm>,
    residual: bool,
    /// Batch norms folded into the convolutions (inference only).
    folded: bool,
}

impl Block {
    fn new(cin: usize, cout: usize, k: usize, stride: usize, expand: usize, device: &Device) -> Block {
        if expand == 1 {
            return Block {
                conv_dw: conv(cin, cin, k, stride, cin, device),
                bn1: bn(cin, device),
                conv_pw: Some(conv(cin, cout, 1, 1, 1, device)),
                bn2: bn(cout, device),
                conv_pwl: None,
                bn3: None,
                residual: false,
                folded: false,
            };
        }
        let hid = cin * expand;
        Block {
            conv_pw: Some(conv(cin, hid, 1, 1, 1, device)),
            bn1: bn(hid, device),
            conv_dw: conv(hid, hid, k, stride, hid, device),
            bn2: bn(hid, device),
            conv_pwl: Some(conv(hid, cout, 1, 1, 1, device)),
            bn3: Some(bn(cout, device)),
            residual: stride == 1 && cin == cout,
            folded: false,
        }
    }

    fn fold(mut self) -> Block {
        match (&mut self.conv_pw, &mut self.conv_pwl, &self.bn3) {
            (Some(pw), Some(pwl), Some(bn3)) => {
                fold_bn(pw, &self.bn1);
                fold_bn(&mut self.conv_dw, &self.bn2);
                fold_bn(pwl, bn3);
            }
            (Some(pw), _, _) => {
                fold_bn(&mut self.conv_dw, &self.bn1);
                fold_bn(pw, &self.bn2);
            }
            _ => {}
        }
        self.folded = true;
        self
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        match (&self.conv_pwl, &self.bn3, &self.conv_pw) {
            (Some(pwl), Some(bn3), Some(pw)) => {
                let f = self.folded;
                let h = relu6(norm(&self.bn1, f, pw.forward(x.clone())));
                let h = relu6(norm(&self.bn2, f, self.conv_dw.forward(h)));
                let h = norm(bn3, f, pwl.forward(h));
                if self.residual { h + x } else { h }
            }
            (_, _, Some(pw)) => {
                let h = relu6(norm(&self.bn1, self.folded, self.conv_dw.forward(x)));
                norm(&self.bn2, self.folded, pw.forward(h))
            }
            _ => unreachable!("every block has a pointwise convolution"),
        }
    }
}

/// EfficientNet-Lite0 features (stem and stages 0-6).
#[derive(Module, Debug)]
pub struct Encoder {
    conv_stem: Conv2d,
    bn1: BatchNorm,
    blocks: Vec<Vec<Block>>,
    folded: bool,
}

impl Encoder {
    pub fn new(device: &Device) -> Encoder {
        let mut cin = 32;
        let blocks = STAGES
            .iter()
            .map(|&(k, s, e, cout, n)| {
                (0..n)
                    .map(|i| {
                        let b = Block::new(cin, cout, k, if i == 0 { s } else { 1 }, e, device);
                        cin = cout;
                        b
                    })
                    .collect()
            })
            .collect();
        Encoder {
            conv_stem: conv(3, 32, 3, 2, 1, device),
            bn1: bn(32, device),
            blocks,
            folded: false,
        }
    }

    /// Folds every batch norm into its convolution, for inference: the same function with
    /// fewer passes over the activations. Only valid with batch norm in inference mode.
    pub fn fold_batch_norms(mut self) -> Encoder {
        fold_bn(&mut self.conv_stem, &self.bn1);
        self.blocks = self
            .blocks
            .into_iter()
            .map(|s| s.into_iter().map(Block::fold).collect())
            .collect();
        self.folded = true;
        self
    }

    /// `x`: `[B, 3, H, W]` normalised as `(pixel - 127) / 128`; H, W multiples of 32.
    /// Returns the output of every stage (strides 2, 4, 8, 16, 16, 32, 32).
    pub fn forward_stages(&self, x: Tensor<4>) -> Vec<Tensor<4>> {
        let mut h = relu6(norm(&self.bn1, self.folded, self.conv_stem.forward(x)));
        let mut outs = Vec::with_capacity(self.blocks.len());
        for stage in &self.blocks {
            for block in stage {
                h = block.forward(h);
            }
            outs.push(h.clone());
        }
        outs
    }

    /// Loads timm-named ImageNet weights (extra tensors such as the classifier are ignored).
    pub fn load_pretrained(mut self, source: &ModelSource) -> Result<Encoder> {
        let mut store = SafetensorsStore::from_bytes(Some(source.f32_bytes()?))
            .with_key_remapping(r"(bn\d)\.weight$", "$1.gamma")
            .with_key_remapping(r"(bn\d)\.bias$", "$1.beta")
            .allow_partial(true);
        let r = self
            .load_from(&mut store)
            .map_err(|e| anyhow!("{source}: cannot load encoder weights: {e}"))?;
        if !r.errors.is_empty() || !r.missing.is_empty() {
            bail!(
                "{source}: not EfficientNet-Lite0 weights ({} errors, {} missing tensors)",
                r.errors.len(),
                r.missing.len()
            );
        }
        Ok(self)
    }
}

/// EfficientNet-Lite0 with its classification head, for checking the port against the
/// reference logits.
#[derive(Module, Debug)]
pub struct Classifier {
    pub encoder: Encoder,
    conv_head: Conv2d,
    bn2: BatchNorm,
    classifier: Linear,
}

impl Classifier {
    pub fn load(path: &Path, device: &Device) -> Result<Classifier> {
        let mut m = Classifier {
            encoder: Encoder::new(device),
            conv_head: conv(320, 1280, 1, 1, 1, device),
            bn2: bn(1280, device),
            classifier: LinearConfig::new(1280, 1000).init(device),
        };
        // timm names put the encoder's tensors at the top level; the linear weight is
        // [out, in] there and [in, out] in Burn.
        let mut store = SafetensorsStore::from_file(path)
            .with_key_remapping(r"^(conv_stem|bn1|blocks)", "encoder.$1")
            .with_key_remapping(r"(bn\d)\.weight$", "$1.gamma")
            .with_key_remapping(r"(bn\d)\.bias$", "$1.beta")
            .with_from_adapter(burn::store::PyTorchToBurnAdapter);
        let r = m
            .load_from(&mut store)
            .map_err(|e| anyhow!("{}: cannot load: {e}", path.display()))?;
        if !r.errors.is_empty() || !r.missing.is_empty() {
            bail!(
                "{}: {} errors, {} missing tensors: {r}",
                path.display(),
                r.errors.len(),
                r.missing.len()
            );
        }
        Ok(m)
    }

    /// ImageNet logits `[B, 1000]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        let h = self.encoder.forward_stages(x).pop().expect("7 stages");
        let h = relu6(self.bn2.forward(self.conv_head.forward(h)));
        let pooled = h.mean_dim(3).mean_dim(2).flatten::<2>(1, 3);
        self.classifier.forward(pooled)
    }
}

/// Hyper-parameters of the `effnet-unet` generator's decoder. A plain serde struct rather than
/// a Burn `Config`, so that fields of older model files are ignored rather than refused.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct EffUnetConfig {
    /// Output channels of the decoder blocks at strides 16, 8, 4, 2 and 1.
    pub decoder: [usize; 5],
    /// Bins per ab axis of a head that classified colour, which older files may name; read only
    /// to refuse such a file (see `docs/experiments/2026-12-07-ab-classification-vs-l1.md`).
    #[serde(skip_serializing)]
    ab_bins: usize,
}

impl Default for EffUnetConfig {
    fn default() -> Self {
        EffUnetConfig {
            decoder: [128, 64, 48, 32, 16],
            ab_bins: 0,
        }
    }
}

impl EffUnetConfig {
    /// The shipped design: the decoder above and a head that regresses ab.
    pub fn new() -> Self {
        Self::default()
    }

    /// Refuses what no model of this version can be: a head that classified colour over ab
    /// bins. Checked on every model file read.
    pub fn validate(&self) -> anyhow::Result<()> {
        let k = self.ab_bins;
        if k != 0 {
            anyhow::bail!(
                "the model classifies colour over {k}x{k} ab bins, a head tinct no longer has (it lost to L1 regression); train it again without bins"
            );
        }
        Ok(())
    }
}

/// A chroma gain must be a finite number >= 0.
pub fn check_saturation(gain: f32) -> anyhow::Result<f32> {
    if !gain.is_finite() || gain < 0.0 {
        anyhow::bail!("saturation {gain}: must be a number >= 0");
    }
    Ok(gain)
}

impl EffUnetConfig {
    /// Multiply-accumulates of one forward pass on a `size` x `size` input.
    pub fn macs(&self, size: usize) -> u64 {
        let hw = |stride: usize| ((size / stride) * (size / stride)) as u64;
        let mut total = (3 * 32 * 9) as u64 * hw(2);
        let (mut cin, mut stride) = (32, 2);
        for &(k, s, e, cout, n) in &STAGES {
            for i in 0..n {
                let in_hw = hw(stride);
                if i == 0 {
                    stride *= s;
                }
                let out_hw = hw(stride);
                let hid = cin * e;
                if e != 1 {
                    total += (cin * hid) as u64 * in_hw;
                }
                total += (hid * k * k) as u64 * out_hw + (hid * cout) as u64 * out_hw;
                cin = cout;
            }
        }
        let skips = [(112, 16), (40, 8), (24, 4), (16, 2), (1, 1)];
        let mut cin = 320;
        for (i, (skip_c, s)) in skips.into_iter().enumerate() {
            total += ((cin + skip_c) * self.decoder[i] + self.decoder[i] * 9) as u64 * hw(s);
            cin = self.decoder[i];
        }
        total + (cin * 2) as u64 * hw(1)
    }
}

/// A light decoder block: bilinear x2 upsampling, concatenation with the skip, a 1x1
/// convolution to the block's width and a depthwise 3x3 convolution for spatial context
/// (each followed by BN and ReLU). It costs about a tenth of a dense 3x3 block.
#[derive(Module, Debug)]
pub struct UpBlock {
    mix: Conv2d,
    norm1: BatchNorm,
    spatial: Conv2d,
    norm2: BatchNorm,
    folded: bool,
    /// Inference form of `mix`, split into its upsampled-input and skip parts (see `fold`).
    mix_up: Option<Conv2d>,
    mix_skip: Option<Conv2d>,
}

impl UpBlock {
    fn new(cin: usize, cout: usize, device: &Device) -> UpBlock {
        UpBlock {
            mix: normal_init(Conv2dConfig::new([cin, cout], [1, 1]).with_bias(false), device),
            norm1: super::init::init_batch_norm(cout, device),
            spatial: normal_init(
                Conv2dConfig::new([cout, cout], [3, 3])
                    .with_groups(cout)
                    .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                    .with_bias(false),
                device,
            ),
            norm2: super::init::init_batch_norm(cout, device),
            folded: false,
            mix_up: None,
            mix_skip: None,
        }
    }

    /// Folds the batch norms, and splits the 1x1 mixing convolution into the part applied to the
    /// upsampled input and the part applied to the `skip_channels` of the skip. Upsampling is
    /// linear per channel and the 1x1 convolution is linear per pixel, so
    /// `W·[up(x), s] + b = up(W_x·x) + W_s·s + b`: the input's share is mixed at the lower
    /// resolution (4x fewer pixels) and the concatenation disappears.
    fn fold(mut self, skip_channels: usize) -> UpBlock {
        fold_bn(&mut self.mix, &self.norm1);
        fold_bn(&mut self.spatial, &self.norm2);
        let w = self.mix.weight.val();
        let [cout, cin, _, _] = w.dims();
        let cx = cin - skip_channels;
        let device = w.device();
        let mut up = Conv2dConfig::new([cx, cout], [1, 1]).with_bias(false).init(&device);
        up.weight = Param::initialized(ParamId::new(), w.clone().slice([0..cout, 0..cx, 0..1, 0..1]));
        let mut sk = Conv2dConfig::new([skip_channels, cout], [1, 1]).init(&device);
        sk.weight = Param::initialized(ParamId::new(), w.slice([0..cout, cx..cin, 0..1, 0..1]));
        sk.bias = self.mix.bias.clone();
        self.mix_up = Some(up);
        self.mix_skip = Some(sk);
        self.folded = true;
        self
    }

    fn forward(&self, x: Tensor<4>, skip: Tensor<4>) -> Tensor<4> {
        let [_, _, h, w] = skip.dims();
        let mixed = match (&self.mix_up, &self.mix_skip) {
            (Some(up), Some(sk)) => upsample_bilinear(up.forward(x), h, w) + sk.forward(skip),
            _ => {
                let up = upsample_bilinear(x, h, w);
                norm(
                    &self.norm1,
                    self.folded,
                    self.mix.forward(Tensor::cat(vec![up, skip], 1)),
                )
            }
        };
        relu(norm(&self.norm2, self.folded, self.spatial.forward(relu(mixed))))
    }
}

/// The pretrained-encoder generator: L (replicated to RGB) through EfficientNet-Lite0, a light
/// decoder ([`UpBlock`]s) with skips at strides 16, 8, 4, 2 and L itself at full size, then a
/// 1x1 convolution to ab and tanh.
#[derive(Module, Debug)]
pub struct EffUnet {
    pub encoder: Encoder,
    up: Vec<UpBlock>,
    head: Conv2d,
}

impl EffUnetConfig {
    pub fn init(&self, device: &Device) -> EffUnet {
        let d = self.decoder;
        let skips = SKIP_CHANNELS;
        let mut cin = 320;
        let up = (0..5)
            .map(|i| {
                let b = UpBlock::new(cin + skips[i], d[i], device);
                cin = d[i];
                b
            })
            .collect();
        EffUnet {
            encoder: Encoder::new(device),
            up,
            head: normal_init(Conv2dConfig::new([d[4], 2], [1, 1]), device),
        }
    }
}

impl EffUnet {
    /// Folds every batch norm into its convolution (inference only; see
    /// [`Encoder::fold_batch_norms`]).
    ///
    /// The stem also becomes a 1-channel convolution: the encoder sees L replicated to RGB, so
    /// summing the stem's weights over its 3 input channels gives the same output from L alone.
    pub fn fold_batch_norms(mut self) -> EffUnet {
        self.encoder = self.encoder.fold_batch_norms();
        let stem = &mut self.encoder.conv_stem;
        let w = stem.weight.val();
        let [cout, _, k, _] = w.dims();
        let mut gray = conv(1, cout, k, 2, 1, &w.device());
        gray.weight = Param::initialized(ParamId::new(), w.sum_dim(1));
        gray.bias = stem.bias.clone();
        *stem = gray;
        self.up = self.up.into_iter().zip(SKIP_CHANNELS).map(|(b, c)| b.fold(c)).collect();
        self
    }

    /// `l`: `[B, 1, H, W]` in [-1, 1], H and W multiples of 32. Returns ab `[B, 2, H, W]` in
    /// [-1, 1].
    pub fn forward(&self, l: Tensor<4>) -> Tensor<4> {
        tanh(self.forward_head(l))
    }

    /// The head's raw output: ab before tanh.
    fn forward_head(&self, l: Tensor<4>) -> Tensor<4> {
        // A folded model's stem takes L directly (see `fold_batch_norms`).
        let x = if self.encoder.conv_stem.weight.dims()[1] == 1 {
            l.clone()
        } else {
            l.clone().repeat_dim(1, 3)
        };
        let stages = self.encoder.forward_stages(x);
        let mut h = stages[SKIP_STAGES[4]].clone();
        let skips = [
            &stages[SKIP_STAGES[3]],
            &stages[SKIP_STAGES[2]],
            &stages[SKIP_STAGES[1]],
            &stages[SKIP_STAGES[0]],
            &l,
        ];
        for (block, skip) in self.up.iter().zip(skips) {
            h = block.forward(h, skip.clone());
        }
        self.head.forward(h)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn bilinear_upsampling_matches_hand_computed_values() {
        // Corners aligned, 2x2 -> 4x4: output (i, j) samples the input at (i/3, j/3), so
        // [[0, 3], [6, 9]] becomes the ramp 2i + j.
        let device = Device::flex();
        let x = Tensor::<4>::from_floats([[[[0.0, 3.0], [6.0, 9.0]]]], &device);
        let y: Vec<f32> = super::upsample_bilinear(x, 4, 4).into_data().try_to_vec().unwrap();
        let want: Vec<f32> = (0..16).map(|k| (2 * (k / 4) + k % 4) as f32).collect();
        for (a, b) in y.iter().zip(&want) {
            assert!((a - b).abs() < 1e-5, "{y:?}");
        }
    }

    /// The backend's bilinear backward pass against autodiff through the matrix form.
    #[test]
    fn bilinear_upsampling_gradient_equals_the_matmul_form() {
        let device = Device::flex().autodiff();
        for (hi, wi, h, w) in [(4, 5, 8, 10), (3, 3, 5, 6), (1, 2, 2, 4)] {
            let dist = burn::tensor::Distribution::Uniform(-1.0, 1.0);
            let x = Tensor::<4>::random([2, 3, hi, wi], dist, &device);
            let r = Tensor::<4>::random([2, 3, h, w], dist, &device);
            let x1 = x.clone().require_grad();
            let g1 = (super::upsample_bilinear(x1.clone(), h, w) * r.clone())
                .sum()
                .backward();
            let x2 = x.require_grad();
            let g2 = (super::upsample_bilinear_matmul(x2.clone(), h, w) * r).sum().backward();
            let (a, b) = (x1.grad(&g1).unwrap(), x2.grad(&g2).unwrap());
            let diff: f32 = (a - b).abs().max().into_scalar();
            assert!(diff < 1e-5, "{hi}x{wi} -> {h}x{w}: {diff}");
        }
    }

    #[test]
    fn matmul_upsampling_equals_bilinear_interpolation() {
        let device = Device::flex();
        for (hi, wi, h, w) in [(4, 5, 8, 10), (3, 3, 5, 6), (7, 4, 14, 8), (1, 2, 2, 4)] {
            let x = Tensor::<4>::random([2, 3, hi, wi], burn::tensor::Distribution::Uniform(-1.0, 1.0), &device);
            let a = super::upsample_bilinear(x.clone(), h, w);
            let b = super::upsample_bilinear_matmul(x, h, w);
            let diff: f32 = (a - b).abs().max().into_scalar();
            assert!(diff < 1e-5, "{hi}x{wi} -> {h}x{w}: {diff}");
        }
        // Autodiff devices on the CPU are recognised as the CPU backend too.
        assert!(Device::flex().autodiff().inner() == Device::flex());
    }

    use super::*;

    #[test]
    fn folding_batch_norms_keeps_the_output() {
        let device = Device::flex();
        // Random running statistics so the folding has something to do.
        struct Stats;
        impl burn::module::ModuleMapper for Stats {
            fn map_float<const D: usize>(&mut self, p: Param<Tensor<D>>) -> Param<Tensor<D>> {
                if D == 1 {
                    p.map(|t| t.random_like(burn::tensor::Distribution::Uniform(0.5, 1.5)))
                } else {
                    p
                }
            }
        }
        let g = EffUnetConfig::new().init(&device).map(&mut Stats).valid();
        let x = Tensor::<4>::random([1, 1, 64, 64], burn::tensor::Distribution::Uniform(-1.0, 1.0), &device);
        let y0 = g.forward(x.clone()).into_data().try_to_vec::<f32>().unwrap();
        let y1 = g.fold_batch_norms().forward(x).into_data().try_to_vec::<f32>().unwrap();
        let d = y0.iter().zip(&y1).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
        assert!(d < 1e-4, "folded output differs by {d}");
    }

    /// Model files of the shipped form, with or without the fields older versions wrote, load;
    /// a file of the classifying head that older versions could train is refused.
    #[test]
    fn old_config_fields_are_ignored_and_a_classifying_head_is_refused() {
        let c: EffUnetConfig = serde_json::from_str(r#"{"decoder": [128, 64, 48, 32, 16]}"#).unwrap();
        assert_eq!(c, EffUnetConfig::new());
        let old = r#"{"decoder": [128, 64, 48, 32, 16], "ab_bins": 0, "temperature": 0.38, "rebalance": 0.0}"#;
        let c: EffUnetConfig = serde_json::from_str(old).unwrap();
        assert!(c.validate().is_ok() && c == EffUnetConfig::new());
        assert!(!serde_json::to_string(&c).unwrap().contains("ab_bins"));
        let bins: EffUnetConfig = serde_json::from_str(&old.replace("\"ab_bins\": 0", "\"ab_bins\": 13")).unwrap();
        let err = bins.validate().unwrap_err().to_string();
        assert!(err.contains("13x13 ab bins"), "{err}");
    }

    #[test]
    fn same_padding_matches_tensorflow() {
        assert!(matches!(same_padding(3, 2), PaddingConfig2d::Explicit(0, 0, 1, 1)));
        assert!(matches!(same_padding(5, 2), PaddingConfig2d::Explicit(1, 1, 2, 2)));
        assert!(matches!(same_padding(5, 1), PaddingConfig2d::Explicit(2, 2, 2, 2)));
    }

    #[test]
    fn effnet_unet_shapes_and_parameter_count() {
        let device = Device::flex();
        let g = EffUnetConfig::new().init(&device);
        let y = g.forward(Tensor::zeros([1, 1, 64, 96], &device));
        assert_eq!(y.dims(), [1, 2, 64, 96]);
        // Encoder stem + stages 0-6 of EfficientNet-Lite0: 4,652,008 trainable parameters in
        // all, minus the head conv (320*1280), its BN (2*1280) and the classifier (1280*1000+1000).
        let encoder_trainable = 4_652_008 - 320 * 1280 - 2 * 1280 - (1280 * 1000 + 1000);
        let enc = g.encoder.num_params();
        // num_params also counts BN running statistics (2 per channel, as many as gamma+beta).
        let bn_values = {
            struct C(usize);
            impl burn::module::ModuleVisitor for C {
                fn visit_float<const D: usize>(&mut self, p: &burn::module::Param<Tensor<D>>) {
                    if D == 1 {
                        self.0 += p.shape().num_elements();
                    }
                }
            }
            let mut c = C(0);
            g.encoder.visit(&mut c);
            c.0 / 2
        };
        assert_eq!(enc - bn_values, encoder_trainable);
    }

    fn reference() -> Option<(std::path::PathBuf, serde_json::Value)> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/weights");
        let json = std::fs::read_to_string(dir.join("efficientnet-lite0.reference.json")).ok()?;
        Some((
            dir.join("efficientnet-lite0.safetensors"),
            serde_json::from_str(&json).ok()?,
        ))
    }

    #[test]
    fn port_matches_reference_logits() {
        let Some((weights, reference)) = reference() else {
            crate::test_skip::skip(
                "port_matches_reference_logits",
                "shared",
                "../shared/weights not present",
            );
            return;
        };
        let device = Device::flex();
        let model = Classifier::load(&weights, &device).unwrap();
        let dir = weights.parent().unwrap();
        let img = image::open(dir.join("efficientnet-lite0.reference-chelsea.png"))
            .unwrap()
            .to_rgb8();
        let inputs: Vec<(&str, Vec<f32>)> = vec![
            ("constant_0.5", vec![(255.0 * 0.5 - 127.0) / 128.0; 3 * 224 * 224]),
            ("gradient", {
                let mut v = vec![0.0; 3 * 224 * 224];
                for y in 0..224 {
                    for x in 0..224 {
                        let (r, g, b) = (x as f32 / 223.0, y as f32 / 223.0, 1.0 - (x + y) as f32 / 446.0);
                        for (c, val) in [r, g, b].into_iter().enumerate() {
                            v[c * 224 * 224 + y * 224 + x] = (255.0 * val - 127.0) / 128.0;
                        }
                    }
                }
                v
            }),
            ("chelsea_png", {
                let mut v = vec![0.0; 3 * 224 * 224];
                for (x, y, p) in img.enumerate_pixels() {
                    for c in 0..3 {
                        v[c * 224 * 224 + y as usize * 224 + x as usize] = (p.0[c] as f32 - 127.0) / 128.0;
                    }
                }
                v
            }),
        ];
        for (name, data) in inputs {
            let x = Tensor::<4>::from_data(TensorData::new(data, [1, 3, 224, 224]), &device);
            let logits = model.forward(x).into_data().try_into_vec::<f32>().unwrap();
            let refs = find_logits(&reference, name).unwrap_or_else(|| panic!("no reference for {name}"));
            let max_diff = logits
                .iter()
                .zip(&refs)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0f32, f32::max);
            let top = |v: &[f32]| {
                let mut idx: Vec<usize> = (0..v.len()).collect();
                idx.sort_by(|&a, &b| v[b].total_cmp(&v[a]));
                idx.truncate(5);
                idx
            };
            assert_eq!(top(&logits), top(&refs), "{name}: top-5 differs");
            eprintln!("{name}: max |logit - reference| = {max_diff:.2e}");
            assert!(max_diff < 1e-3, "{name}: max logit difference {max_diff}");
        }
    }

    /// All 1000 reference logits of one input, wherever the JSON keeps them.
    fn find_logits(v: &serde_json::Value, name: &str) -> Option<Vec<f32>> {
        let entry = v
            .get("inputs")?
            .as_array()?
            .iter()
            .find(|e| e.get("name").and_then(|n| n.as_str()) == Some(name))?;
        let arr = entry.get("logits")?.as_array()?;
        Some(arr.iter().filter_map(|x| x.as_f64()).map(|x| x as f32).collect())
    }
}
