//! The networks: generators (L -> ab) and the discriminator, built from serialisable configs.

/// The reference depthwise formulation the backend is tested against (also compiled into
/// `examples/depthwise.rs`).
#[cfg(test)]
pub mod depthwise;
pub mod effnet;
mod init;
pub mod patchgan;
pub mod store;
pub mod unet;

#[cfg(test)]
mod batch_norm_tests;

use burn::module::{ModuleMapper, Param, ParamId};
use burn::prelude::*;
use serde::{Deserialize, Serialize};

/// The largest working or training size of a generator (a 2048 px square already needs several
/// GB).
pub const MAX_SIZE: usize = 2048;

pub use effnet::{EffUnet, EffUnetConfig};
pub use patchgan::{PatchGan, PatchGanConfig};
pub use unet::{Unet, UnetConfig};

/// Generator architectures.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Arch {
    /// The seed's pix2pix U-Net (`unet_256` at 256 px).
    #[value(name = "unet256")]
    Unet256,
    /// U-Net on an ImageNet-pretrained EfficientNet-Lite0 encoder.
    #[value(name = "effnet-unet")]
    EffnetUnet,
}

impl std::fmt::Display for Arch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Arch::Unet256 => "unet256",
            Arch::EffnetUnet => "effnet-unet",
        })
    }
}

/// Everything needed to rebuild a generator and use it: stored as `config.json` next to
/// the weights.
#[derive(Config, Debug, PartialEq)]
pub struct GeneratorConfig {
    #[config(default = "Arch::Unet256")]
    pub arch: Arch,
    /// Working size (pixels, square) the generator was trained at.
    #[config(default = 256)]
    pub size: usize,
    pub unet: UnetConfig,
    /// Decoder of the `effnet-unet` architecture (absent for `unet256`).
    pub effnet: Option<EffUnetConfig>,
}

impl GeneratorConfig {
    /// The seed's recipe at `size` pixels: `unet_256` with its depth lowered so the
    /// innermost block stays 1x1.
    pub fn unet_for_size(size: usize, ngf: usize) -> Self {
        GeneratorConfig::new(
            UnetConfig::new()
                .with_ngf(ngf)
                .with_depth(UnetConfig::depth_for_size(size)),
        )
        .with_size(size)
    }

    /// The pretrained-encoder generator at `size` pixels.
    pub fn effnet_unet(size: usize) -> Self {
        GeneratorConfig::new(UnetConfig::new())
            .with_arch(Arch::EffnetUnet)
            .with_size(size)
            .with_effnet(Some(EffUnetConfig::new()))
    }

    /// The model's own chroma gain ([`EffUnetConfig::saturation`]; 1 for `unet256`).
    pub fn saturation(&self) -> f32 {
        self.effnet.as_ref().map_or(1.0, |e| e.saturation)
    }

    /// Bins per ab axis of a head that classifies colour; 0 for one that regresses it.
    pub fn ab_bins(&self) -> usize {
        self.effnet.as_ref().map_or(0, |e| e.ab_bins)
    }

    /// Side lengths must be multiples of this.
    pub fn stride_multiple(&self) -> usize {
        match self.arch {
            Arch::Unet256 => 1 << self.unet.depth,
            Arch::EffnetUnet => 32,
        }
    }

    /// Refuses a working or training size (`--size`) this generator cannot run at: it must be a
    /// positive multiple of [`Self::stride_multiple`] and at most [`MAX_SIZE`].
    pub fn check_size(&self, size: usize) -> anyhow::Result<()> {
        let m = self.stride_multiple();
        if size < m || !size.is_multiple_of(m) {
            anyhow::bail!(
                "--size {size}: must be a multiple of {m} for this {} generator",
                self.arch
            );
        }
        if size > MAX_SIZE {
            anyhow::bail!("--size {size}: at most {MAX_SIZE} px");
        }
        Ok(())
    }

    /// Builds the generator with freshly initialised weights.
    pub fn init(&self, device: &Device) -> Generator {
        match self.arch {
            Arch::Unet256 => Generator::Unet(self.unet.init(device)),
            Arch::EffnetUnet => Generator::EffUnet(self.effnet.clone().unwrap_or_default().init(device)),
        }
    }

    /// Multiply-accumulates of one forward pass at `size` x `size` (convolutions only).
    pub fn macs(&self) -> u64 {
        match self.arch {
            Arch::Unet256 => self.unet.macs(self.size),
            Arch::EffnetUnet => self.effnet.clone().unwrap_or_default().macs(self.size),
        }
    }
}

/// A generator: `[B, 1, H, W]` L in [-1, 1] -> `[B, 2, H, W]` ab in [-1, 1].
// One generator exists per loaded model, so the size difference between variants is immaterial.
#[allow(clippy::large_enum_variant)]
#[derive(Module, Debug)]
pub enum Generator {
    Unet(Unet),
    EffUnet(EffUnet),
}

impl Generator {
    /// Loads ImageNet weights into the encoder of a pretrained-encoder generator (a no-op for
    /// architectures without one).
    pub fn with_pretrained_encoder(self, weights: &store::ModelSource) -> anyhow::Result<Generator> {
        Ok(match self {
            Generator::EffUnet(mut g) => {
                g.encoder = g.encoder.load_pretrained(weights)?;
                Generator::EffUnet(g)
            }
            other => other,
        })
    }

    /// Prepares the generator for inference: batch norms of the pretrained-encoder
    /// architecture are folded into their convolutions (call after `valid()`).
    pub fn for_inference(self) -> Generator {
        match self {
            Generator::EffUnet(g) => Generator::EffUnet(g.fold_batch_norms()),
            other => other,
        }
    }

    /// Freezes (no gradients, batch norm on running statistics) or unfreezes the pretrained
    /// encoder; a no-op for architectures without one.
    pub fn set_encoder_frozen(self, frozen: bool) -> Generator {
        match self {
            Generator::EffUnet(mut g) => {
                g.encoder = if frozen {
                    g.encoder.freeze()
                } else {
                    g.encoder.unfreeze()
                };
                Generator::EffUnet(g)
            }
            other => other,
        }
    }

    pub fn forward(&self, l: Tensor<4>) -> Tensor<4> {
        match self {
            Generator::Unet(g) => g.forward(l),
            Generator::EffUnet(g) => g.forward(l),
        }
    }

    /// [`Self::forward`], and for a head that classifies ab over bins, its logits and the
    /// number of bins per axis (what the training loss needs).
    pub fn forward_with_logits(&self, l: Tensor<4>) -> (Tensor<4>, Option<(Tensor<4>, usize)>) {
        match self {
            Generator::EffUnet(g) => {
                let (ab, z) = g.forward_with_logits(l);
                (ab, z.map(|z| (z, g.ab_bins())))
            }
            _ => (self.forward(l), None),
        }
    }

    /// Sets the decoding (temperature, rebalancing share) of a head that classifies ab; a no-op
    /// otherwise.
    pub fn with_decoding(self, temperature: Option<f64>, rebalance: Option<f64>) -> Generator {
        match self {
            Generator::EffUnet(g) => Generator::EffUnet(g.with_decoding(temperature, rebalance)),
            other => other,
        }
    }
}

/// Gives every parameter of a module a deterministic id (`base`, `base + 1`, ... in visiting
/// order). Optimiser state is keyed by parameter id, and safetensors files do not store ids,
/// so a resumed run re-numbers its freshly built networks the same way before loading the
/// optimiser state.
pub fn renumber_params<M: Module>(module: M, base: u64) -> M {
    struct Renumber(u64);
    impl ModuleMapper for Renumber {
        fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
            let (_, value, mapper) = param.consume();
            let id = ParamId::from(self.0);
            self.0 += 1;
            Param::from_mapped_value(id, value, mapper)
        }
    }
    module.map(&mut Renumber(base))
}

/// One step of an exponential moving average of a module's float tensors (its weights and its
/// batch-norm statistics): `ema <- decay * ema + (1 - decay) * current`, tensor by tensor in
/// visiting order. Both live on the same device (pass a training module's `valid()` copy); they
/// must have the same structure.
pub fn ema_update<M: Module>(ema: M, current: &M, decay: f32) -> M {
    use burn::module::ModuleVisitor;
    struct Collect(Vec<Tensor<1>>);
    impl ModuleVisitor for Collect {
        fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<D>>) {
            self.0.push(p.val().flatten::<1>(0, D - 1));
        }
    }
    struct Blend {
        current: std::vec::IntoIter<Tensor<1>>,
        decay: f32,
    }
    impl ModuleMapper for Blend {
        fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
            let (id, value, mapper) = param.consume();
            let cur = self.current.next().expect("ema_update: modules of different structure");
            let shape = value.shape();
            let cur = cur.reshape(shape);
            let blended = value.mul_scalar(self.decay) + cur.mul_scalar(1.0 - self.decay);
            Param::from_mapped_value(id, blended, mapper)
        }
    }
    let mut c = Collect(Vec::new());
    current.visit(&mut c);
    let mut b = Blend {
        current: c.0.into_iter(),
        decay,
    };
    let out = ema.map(&mut b);
    assert!(b.current.next().is_none(), "ema_update: modules of different structure");
    out
}
