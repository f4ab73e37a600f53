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
pub fn load_module<M: Module>(mut module: M, path: &Path) -> Result<M> {
    let mut store = SafetensorsStore::from_file(path);
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
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes)
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
