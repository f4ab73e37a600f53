//! Saving and loading networks as safetensors. A generator file is self-describing: its
//! [`GeneratorConfig`] is stored in the safetensors metadata under [`CONFIG_KEY`], and is also
//! written as JSON beside it for people and tools.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use burn::prelude::*;
use burn::store::{ModuleSnapshot, SafetensorsStore};

use super::{Generator, GeneratorConfig};
use crate::imageio::write_atomic;

/// Metadata key holding the generator's config JSON.
pub const CONFIG_KEY: &str = "tinct.generator";

/// Saves a module's tensors to `path` atomically, with extra metadata.
pub fn save_module<M: Module>(module: &M, path: &Path, metadata: &[(&str, String)]) -> Result<()> {
    write_atomic(path, |tmp| {
        let mut store = SafetensorsStore::from_file(tmp).overwrite(true);
        for (k, v) in metadata {
            store = store.metadata(*k, v.clone());
        }
        module
            .save_into(&mut store)
            .map_err(|e| anyhow!("{}: cannot save weights: {e}", path.display()))
    })
}

/// Loads tensors from `path` into `module`, which must have exactly the same structure.
/// Files stored in half precision (see [`export_generator`]) are widened to f32 on load.
pub fn load_module<M: Module>(mut module: M, path: &Path) -> Result<M> {
    let bytes = std::fs::read(path).with_context(|| format!("{}: cannot read", path.display()))?;
    let bytes = convert_floats(&bytes, safetensors::Dtype::F32, None)
        .map_err(|e| anyhow!("{}: not a safetensors file ({e})", path.display()))?
        .unwrap_or(bytes);
    let mut store = SafetensorsStore::from_bytes(Some(bytes));
    let result = module
        .load_from(&mut store)
        .map_err(|e| anyhow!("{}: cannot load weights: {e}", path.display()))?;
    if !result.errors.is_empty() || !result.missing.is_empty() {
        bail!(
            "{}: weights do not match the network ({} errors, {} missing tensors{})",
            path.display(),
            result.errors.len(),
            result.missing.len(),
            result
                .missing
                .first()
                .map(|m| format!(", e.g. {}", m.0))
                .unwrap_or_default()
        );
    }
    Ok(module)
}

/// Saves a generator with its config embedded, plus `<stem>.json` beside it.
pub fn save_generator(g: &Generator, config: &GeneratorConfig, path: &Path) -> Result<()> {
    let json = serde_json::to_string_pretty(config)?;
    save_module(g, path, &[(CONFIG_KEY, json.clone())])?;
    crate::imageio::write_bytes_atomic(&path.with_extension("json"), json.as_bytes())
}

/// Reads the generator config embedded in a safetensors file.
pub fn read_generator_config(path: &Path) -> Result<GeneratorConfig> {
    let bytes = std::fs::read(path).with_context(|| format!("{}: cannot read", path.display()))?;
    generator_config_of(&bytes, path)
}

/// The generator config of a safetensors file's bytes (`path` names it in errors and locates a
/// JSON file beside it as a fallback).
fn generator_config_of(bytes: &[u8], path: &Path) -> Result<GeneratorConfig> {
    let (_, meta) = safetensors::SafeTensors::read_metadata(bytes)
        .map_err(|e| anyhow!("{}: not a safetensors file ({e})", path.display()))?;
    if let Some(json) = meta.metadata().as_ref().and_then(|m| m.get(CONFIG_KEY)) {
        return serde_json::from_str(json)
            .with_context(|| format!("{}: bad embedded config", path.display()));
    }
    // Fall back to a JSON file beside the weights.
    let side = path.with_extension("json");
    let json = std::fs::read_to_string(&side).with_context(|| {
        format!(
            "{}: no embedded generator config and no {} beside it",
            path.display(),
            side.display()
        )
    })?;
    serde_json::from_str(&json).with_context(|| format!("{}: bad generator config", side.display()))
}

/// Loads a generator (config and weights) from a safetensors file.
pub fn load_generator(path: &Path, device: &Device) -> Result<(Generator, GeneratorConfig)> {
    let config = read_generator_config(path)?;
    let g = load_module(config.init(device), path)?;
    Ok((g, config))
}

/// The generator file of a run directory.
pub fn run_generator_path(run_dir: &Path) -> PathBuf {
    run_dir.join("generator.safetensors")
}

/// Rewrites a safetensors file's floating-point tensors as `to` (F16 or F32), keeping names,
/// shapes and metadata (with `metadata` replacing it when given). Returns `None` when nothing
/// would change.
fn convert_floats(
    bytes: &[u8],
    to: safetensors::Dtype,
    metadata: Option<std::collections::HashMap<String, String>>,
) -> std::result::Result<Option<Vec<u8>>, safetensors::SafeTensorError> {
    use safetensors::{Dtype, SafeTensors, tensor::TensorView};
    let (_, meta) = SafeTensors::read_metadata(bytes)?;
    let st = SafeTensors::deserialize(bytes)?;
    let floats = |d: Dtype| matches!(d, Dtype::F16 | Dtype::F32);
    if metadata.is_none() && st.tensors().iter().all(|(_, t)| !floats(t.dtype()) || t.dtype() == to) {
        return Ok(None);
    }
    let mut owned: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = Vec::new();
    for (name, t) in st.tensors() {
        let data = match (t.dtype(), to) {
            (Dtype::F32, Dtype::F16) => t
                .data()
                .chunks_exact(4)
                .flat_map(|c| {
                    half::f16::from_f32(f32::from_le_bytes([c[0], c[1], c[2], c[3]])).to_le_bytes()
                })
                .collect(),
            (Dtype::F16, Dtype::F32) => t
                .data()
                .chunks_exact(2)
                .flat_map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32().to_le_bytes())
                .collect(),
            _ => t.data().to_vec(),
        };
        let dtype = if floats(t.dtype()) { to } else { t.dtype() };
        owned.push((name, dtype, t.shape().to_vec(), data));
    }
    let views = owned
        .iter()
        .map(|(n, d, s, b)| Ok((n.clone(), TensorView::new(*d, s.clone(), b)?)))
        .collect::<std::result::Result<Vec<_>, safetensors::SafeTensorError>>()?;
    let info = metadata.or_else(|| meta.metadata().clone());
    safetensors::serialize(views, &info).map(Some)
}

/// Packages a trained generator for shipping: `half` stores its weights as f16 (half the size;
/// they are widened to f32 on load), and `size` changes the working size it colourises at.
pub fn export_generator(src: &Path, dst: &Path, size: Option<usize>, half: bool) -> Result<GeneratorConfig> {
    let bytes = std::fs::read(src).with_context(|| format!("{}: cannot read", src.display()))?;
    let mut config = generator_config_of(&bytes, src)?;
    if let Some(s) = size {
        config.size = s;
    }
    let stride = config.stride_multiple();
    if config.size == 0 || !config.size.is_multiple_of(stride) {
        bail!("--size {}: must be a positive multiple of {stride} for this model", config.size);
    }
    let json = serde_json::to_string_pretty(&config)?;
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes)
        .map_err(|e| anyhow!("{}: not a safetensors file ({e})", src.display()))?;
    let mut info = meta.metadata().clone().unwrap_or_default();
    info.insert(CONFIG_KEY.to_string(), json.clone());
    let to = if half { safetensors::Dtype::F16 } else { safetensors::Dtype::F32 };
    let out = convert_floats(&bytes, to, Some(info))
        .map_err(|e| anyhow!("{}: cannot convert ({e})", src.display()))?
        .expect("metadata given, so always rewritten");
    crate::imageio::write_bytes_atomic(dst, &out)?;
    crate::imageio::write_bytes_atomic(&dst.with_extension("json"), json.as_bytes())?;
    Ok(config)
}
