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
#[cfg(test)]
mod mask_fill_tests;

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

/// A generator's architecture and its settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "arch")]
pub enum GeneratorConfig {
    /// The seed's pix2pix U-Net.
    #[serde(rename = "unet256")]
    Unet256(UnetConfig),
    /// The U-Net on an ImageNet-pretrained EfficientNet-Lite0 encoder.
    #[serde(rename = "effnet-unet")]
    EffnetUnet(EffUnetConfig),
}

impl GeneratorConfig {
    pub fn arch(&self) -> Arch {
        match self {
            GeneratorConfig::Unet256(_) => Arch::Unet256,
            GeneratorConfig::EffnetUnet(_) => Arch::EffnetUnet,
        }
    }
}

/// Everything needed to rebuild a model and use it: its generator, the working size it was
/// trained at, and its own chroma gain. Stored in the weights file's metadata and as JSON
/// beside it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(from = "StoredModelConfig")]
pub struct ModelConfig {
    pub generator: GeneratorConfig,
    /// Working size (pixels, square) the generator was trained at.
    pub size: usize,
    /// The model's own chroma gain: the predicted ab is multiplied by it at inference (1: as
    /// predicted). Set by `tinct export --saturation` to a gain calibrated on images the model
    /// did not train on; `--saturation` at inference scales the result further.
    pub saturation: f32,
}

/// A model config as stored: the current form, or the flat one of files written before the
/// generator became an enum (`arch`, `size`, `unet`, and `effnet` holding the gain).
#[derive(Deserialize)]
#[serde(untagged)]
enum StoredModelConfig {
    Current {
        generator: GeneratorConfig,
        size: usize,
        #[serde(default = "unit_gain")]
        saturation: f32,
    },
    Flat {
        #[serde(default = "unet256")]
        arch: Arch,
        #[serde(default = "default_size")]
        size: usize,
        unet: UnetConfig,
        effnet: Option<FlatEffnet>,
    },
}

#[derive(Deserialize)]
struct FlatEffnet {
    #[serde(flatten)]
    config: EffUnetConfig,
    #[serde(default = "unit_gain")]
    saturation: f32,
}

fn unit_gain() -> f32 {
    1.0
}
fn unet256() -> Arch {
    Arch::Unet256
}
fn default_size() -> usize {
    256
}

impl From<StoredModelConfig> for ModelConfig {
    fn from(s: StoredModelConfig) -> ModelConfig {
        match s {
            StoredModelConfig::Current {
                generator,
                size,
                saturation,
            } => ModelConfig {
                generator,
                size,
                saturation,
            },
            StoredModelConfig::Flat {
                arch,
                size,
                unet,
                effnet,
            } => {
                let (generator, saturation) = match (arch, effnet) {
                    (Arch::Unet256, _) => (GeneratorConfig::Unet256(unet), 1.0),
                    (Arch::EffnetUnet, e) => {
                        let (config, gain) =
                            e.map_or_else(|| (EffUnetConfig::default(), 1.0), |e| (e.config, e.saturation));
                        (GeneratorConfig::EffnetUnet(config), gain)
                    }
                };
                ModelConfig {
                    generator,
                    size,
                    saturation,
                }
            }
        }
    }
}

impl ModelConfig {
    /// The seed's recipe at `size` pixels: `unet_256` with its depth lowered so the
    /// innermost block stays 1x1.
    pub fn unet_for_size(size: usize, ngf: usize) -> Self {
        let unet = UnetConfig::new()
            .with_ngf(ngf)
            .with_depth(UnetConfig::depth_for_size(size));
        ModelConfig::of(GeneratorConfig::Unet256(unet), size)
    }

    /// The pretrained-encoder generator at `size` pixels.
    pub fn effnet_unet(size: usize) -> Self {
        ModelConfig::of(GeneratorConfig::EffnetUnet(EffUnetConfig::new()), size)
    }

    /// `generator` at `size` pixels, with no gain of its own.
    pub fn of(generator: GeneratorConfig, size: usize) -> Self {
        ModelConfig {
            generator,
            size,
            saturation: 1.0,
        }
    }

    pub fn with_size(mut self, size: usize) -> Self {
        self.size = size;
        self
    }

    pub fn with_saturation(mut self, gain: f32) -> Self {
        self.saturation = gain;
        self
    }

    pub fn arch(&self) -> Arch {
        self.generator.arch()
    }

    /// The model's own chroma gain.
    pub fn saturation(&self) -> f32 {
        self.saturation
    }

    /// Refuses a config no model can have (a bad head or gain).
    pub fn validate(&self) -> anyhow::Result<()> {
        effnet::check_saturation(self.saturation)?;
        match &self.generator {
            GeneratorConfig::EffnetUnet(e) => e.validate(),
            GeneratorConfig::Unet256(_) => Ok(()),
        }
    }

    /// Side lengths must be multiples of this.
    pub fn stride_multiple(&self) -> usize {
        match &self.generator {
            GeneratorConfig::Unet256(u) => 1 << u.depth,
            GeneratorConfig::EffnetUnet(_) => 32,
        }
    }

    /// Refuses a working or training size (`--size`) this generator cannot run at: it must be a
    /// positive multiple of [`Self::stride_multiple`] and at most [`MAX_SIZE`].
    pub fn check_size(&self, size: usize) -> anyhow::Result<()> {
        let m = self.stride_multiple();
        if size < m || !size.is_multiple_of(m) {
            anyhow::bail!(
                "--size {size}: must be a multiple of {m} for this {} generator",
                self.arch()
            );
        }
        if size > MAX_SIZE {
            anyhow::bail!("--size {size}: at most {MAX_SIZE} px");
        }
        Ok(())
    }

    /// Builds the generator with freshly initialised weights.
    pub fn init(&self, device: &Device) -> Generator {
        match &self.generator {
            GeneratorConfig::Unet256(u) => Generator::Unet(u.init(device)),
            GeneratorConfig::EffnetUnet(e) => Generator::EffUnet(e.init(device)),
        }
    }

    /// Multiply-accumulates of one forward pass at `size` x `size` (convolutions only).
    pub fn macs(&self) -> u64 {
        match &self.generator {
            GeneratorConfig::Unet256(u) => u.macs(self.size),
            GeneratorConfig::EffnetUnet(e) => e.macs(self.size),
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
