//! The shipped models, compiled into the binary and found by name (`photo`, `anime`,
//! `drawn`); a models folder may override them.

use std::path::PathBuf;

use anyhow::{Result, bail};

use crate::model::store::{Embedded, ModelSource};

/// Names and descriptions of the models tinct ships.
pub const SHIPPED: &[(&str, &str)] = &[
    ("photo", "photographs (default)"),
    ("anime", "anime-style faces"),
    ("drawn", "drawings and illustrations"),
];

macro_rules! embedded {
    ($name:literal) => {
        Embedded {
            name: $name,
            weights: include_bytes!(concat!("../models/", $name, ".safetensors")),
            config: include_str!(concat!("../models/", $name, ".json")),
        }
    };
}

/// The shipped models' weights and configs, in the order of [`SHIPPED`].
static BUILT_IN: [Embedded; 3] = [embedded!("photo"), embedded!("anime"), embedded!("drawn")];

/// The default model.
pub const DEFAULT_MODEL: &str = "photo";

/// Folders searched for models that override the built-in ones, in order: `$TINCT_MODELS`
/// and `models/` beside the executable.
pub fn model_dirs() -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Some(d) = std::env::var_os("TINCT_MODELS") {
        dirs.push(PathBuf::from(d));
    }
    if let Ok(exe) = std::env::current_exe()
        && let Some(bin) = exe.parent()
    {
        dirs.push(bin.join("models"));
    }
    dirs
}

/// A shipped model and where its weights come from.
#[derive(Clone, Debug)]
pub struct Available {
    pub name: String,
    pub description: String,
    pub source: ModelSource,
}

/// The shipped models: each from the first models folder that has it, else built in.
pub fn available() -> Vec<Available> {
    let dirs = model_dirs();
    SHIPPED
        .iter()
        .zip(&BUILT_IN)
        .map(|((name, desc), built_in)| {
            let source = dirs
                .iter()
                .map(|d| d.join(format!("{name}.safetensors")))
                .find(|p| p.is_file())
                .map_or(ModelSource::Embedded(built_in), ModelSource::File);
            Available {
                name: name.to_string(),
                description: desc.to_string(),
                source,
            }
        })
        .collect()
}

/// Resolves `--model`: an existing file or run folder, or a shipped model's name.
pub fn resolve(spec: &str) -> Result<ModelSource> {
    let p = PathBuf::from(spec);
    if p.exists() {
        return Ok(ModelSource::file(&p));
    }
    if let Some(a) = available().into_iter().find(|a| a.name == spec) {
        return Ok(a.source);
    }
    let names: Vec<&str> = SHIPPED.iter().map(|(n, _)| *n).collect();
    bail!(
        "--model {spec}: no such file or folder, and not a shipped model ({})",
        names.join(", ")
    )
}

/// File name of the ImageNet EfficientNet-Lite0 weights used to start `effnet-unet` training.
pub const ENCODER_WEIGHTS: &str = "efficientnet-lite0.safetensors";

/// The ImageNet EfficientNet-Lite0 encoder weights (stem and stages, f16), from
/// `weights/` in the source tree.
pub static ENCODER: Embedded = Embedded {
    name: "efficientnet-lite0",
    weights: include_bytes!("../weights/efficientnet-lite0.safetensors"),
    config: "",
};

/// The pretrained encoder weights: `$TINCT_WEIGHTS` (a file, or a folder holding
/// [`ENCODER_WEIGHTS`]) where set, else the built-in ones.
pub fn encoder_weights() -> Result<ModelSource> {
    let Some(d) = std::env::var_os("TINCT_WEIGHTS") else {
        return Ok(ModelSource::Embedded(&ENCODER));
    };
    let p = PathBuf::from(d);
    let p = if p.is_dir() { p.join(ENCODER_WEIGHTS) } else { p };
    if !p.is_file() {
        bail!("TINCT_WEIGHTS: {}: no such file", p.display());
    }
    Ok(ModelSource::File(p))
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::prelude::Device;

    /// Each shipped model is compiled in: its config is the JSON in `models/`, and its
    /// weights load into that network.
    #[test]
    fn built_in_models_load() {
        let device = Device::flex();
        for (built_in, (name, _)) in BUILT_IN.iter().zip(SHIPPED) {
            assert_eq!(built_in.name, *name);
            let source = ModelSource::Embedded(built_in);
            let (_, config) = source.load_generator(&device).unwrap();
            let json: crate::model::ModelConfig = serde_json::from_str(built_in.config).unwrap();
            let value = |c| serde_json::to_value(c).unwrap();
            assert_eq!(value(&config), value(&json), "{name}");
            assert_eq!(source.name(), *name);
            assert_eq!(source.to_string(), format!("{name} (built in)"));
        }
    }

    /// The built-in encoder weights load into the encoder without `../shared`, and are the
    /// ImageNet originals rounded to f16 (relative error at most 2^-11, or 2^-25 absolute for
    /// values in f16's subnormal range) where those originals are present.
    #[test]
    fn built_in_encoder_weights_are_the_originals_in_f16() {
        use safetensors::SafeTensors;
        crate::model::effnet::Encoder::new(&Device::flex())
            .load_pretrained(&ModelSource::Embedded(&ENCODER))
            .unwrap();
        let original =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/weights/efficientnet-lite0.safetensors");
        let Ok(original) = std::fs::read(&original) else {
            let why = format!("{} not present", original.display());
            crate::test_skip::skip("built_in_encoder_weights_are_the_originals_in_f16", "shared", &why);
            return;
        };
        let original = SafeTensors::deserialize(&original).unwrap();
        let widened = ModelSource::Embedded(&ENCODER).f32_bytes().unwrap();
        let ours = SafeTensors::deserialize(&widened).unwrap();
        let floats = |b: &[u8]| -> Vec<f32> {
            b.chunks_exact(4)
                .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
                .collect()
        };
        let mut names = ours.names();
        names.sort();
        assert_eq!(names.len(), 240);
        for name in names {
            let (a, b) = (ours.tensor(name).unwrap(), original.tensor(name).unwrap());
            assert_eq!(a.shape(), b.shape(), "{name}");
            for (x, y) in floats(a.data()).into_iter().zip(floats(b.data())) {
                assert!((x - y).abs() <= y.abs() / 2048.0 + 3e-8, "{name}: {x} vs {y}");
            }
        }
    }
}
