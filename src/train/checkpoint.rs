//! Resumable checkpoints. Each checkpoint is a folder `RUN_DIR/checkpoints/step-NNNNNNNN`
//! holding both networks (safetensors), both optimiser states (burnpack) and `state.json`.
//! It is written completely under a temporary name, renamed, and only then recorded in
//! `RUN_DIR/checkpoints/latest` (itself replaced atomically), so a crash at any moment leaves
//! the previous checkpoint intact.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow};
use burn::module::Module;
use serde::{Deserialize, Serialize};

use super::{LossSums, RunPaths, TrainConfig, Trainer};
use crate::imageio::write_bytes_atomic;
use crate::model::store::{load_module, save_module};

/// Progress through the run.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct TrainState {
    /// Completed epochs.
    pub epoch: usize,
    /// Completed batches of the current epoch.
    pub step: usize,
    /// Running loss sums of the current epoch.
    pub sums: LossSums,
    /// Optimiser steps taken overall.
    #[serde(default)]
    pub total_steps: u64,
}

/// The run's saved config and paths (`RUN_DIR/config.json`).
#[derive(Serialize, Deserialize)]
struct RunFile {
    config: TrainConfig,
    paths: RunPaths,
}

pub fn write_run_config(out: &Path, config: &TrainConfig, paths: &RunPaths) -> Result<()> {
    let json = serde_json::to_string_pretty(&RunFile {
        config: config.clone(),
        paths: paths.clone(),
    })?;
    write_bytes_atomic(&out.join("config.json"), json.as_bytes())
}

pub fn read_run_config(out: &Path) -> Result<(TrainConfig, RunPaths)> {
    let path = out.join("config.json");
    let text = std::fs::read_to_string(&path).with_context(|| format!("{}: cannot read", path.display()))?;
    let bad = || format!("{}: not a tinct run config", path.display());
    let mut file: serde_json::Value = serde_json::from_str(&text).with_context(bad)?;
    // Hyper-parameters added after the run was started take their defaults.
    if let Some(saved) = file.get_mut("config").and_then(|c| c.as_object_mut()) {
        let nets = (saved.get("generator").cloned(), saved.get("discriminator").cloned());
        if let (Some(g), Some(d)) = nets {
            let g = serde_json::from_value(g).with_context(bad)?;
            let d = serde_json::from_value(d).with_context(bad)?;
            if let serde_json::Value::Object(defaults) = serde_json::to_value(TrainConfig::new(g, d))? {
                for (k, v) in defaults {
                    saved.entry(k).or_insert(v);
                }
            }
        }
    }
    let f: RunFile = serde_json::from_value(file).with_context(bad)?;
    Ok((f.config, f.paths))
}

/// Removes what a previous run left (only the files and folders tinct writes).
pub fn clear_run_dir(out: &Path) -> Result<()> {
    for name in ["checkpoints", "samples"] {
        let p = out.join(name);
        if p.exists() {
            std::fs::remove_dir_all(&p).with_context(|| format!("{}: cannot remove", p.display()))?;
        }
    }
    for name in ["config.json", "log.csv", "generator.safetensors", "generator.json"] {
        let p = out.join(name);
        if p.exists() {
            std::fs::remove_file(&p).with_context(|| format!("{}: cannot remove", p.display()))?;
        }
    }
    Ok(())
}

/// The generator's weight average, in checkpoints of runs that keep one.
const EMA_FILE: &str = "generator-ema.safetensors";

pub struct Checkpoint {
    dir: PathBuf,
}

impl Checkpoint {
    fn root(out: &Path) -> PathBuf {
        out.join("checkpoints")
    }

    /// The most recent complete checkpoint, if any.
    pub fn latest(out: &Path) -> Result<Option<Checkpoint>> {
        let pointer = Self::root(out).join("latest");
        if !pointer.exists() {
            return Ok(None);
        }
        let name = std::fs::read_to_string(&pointer).with_context(|| format!("{}: cannot read", pointer.display()))?;
        let dir = Self::root(out).join(name.trim());
        if !dir.join("state.json").exists() {
            return Err(anyhow!("{}: checkpoint is incomplete", dir.display()));
        }
        Ok(Some(Checkpoint { dir }))
    }

    /// Writes a new checkpoint and makes it the latest; older ones are removed.
    pub fn save(out: &Path, t: &Trainer, state: &TrainState) -> Result<Checkpoint> {
        let root = Self::root(out);
        std::fs::create_dir_all(&root).with_context(|| format!("{}: cannot create", root.display()))?;
        let name = format!("epoch-{:04}-step-{:06}", state.epoch, state.step);
        let tmp = root.join(format!(".{name}.partial"));
        if tmp.exists() {
            std::fs::remove_dir_all(&tmp)?;
        }
        std::fs::create_dir_all(&tmp)?;
        // `valid()` folds pending batch-norm running-statistics updates into the saved values
        // (a training module's running state lags one update behind until synchronised).
        save_module(&t.g.valid(), &tmp.join("generator.safetensors"), &[])?;
        save_module(&t.d.valid(), &tmp.join("discriminator.safetensors"), &[])?;
        if let Some(ema) = &t.g_ema {
            save_module(ema, &tmp.join(EMA_FILE), &[])?;
        }
        t.opt_g
            .save(tmp.join("optim-generator.bpk"))
            .map_err(|e| anyhow!("cannot save generator optimiser state: {e:?}"))?;
        t.opt_d
            .save(tmp.join("optim-discriminator.bpk"))
            .map_err(|e| anyhow!("cannot save discriminator optimiser state: {e:?}"))?;
        std::fs::write(tmp.join("state.json"), serde_json::to_string_pretty(state)?)?;
        let dir = root.join(&name);
        if dir.exists() {
            std::fs::remove_dir_all(&dir)?;
        }
        std::fs::rename(&tmp, &dir).with_context(|| format!("{}: cannot rename checkpoint", dir.display()))?;
        write_bytes_atomic(&root.join("latest"), name.as_bytes())?;
        // Keep only the latest.
        for entry in std::fs::read_dir(&root)?.flatten() {
            let p = entry.path();
            if p.is_dir() && p != dir {
                let _ = std::fs::remove_dir_all(&p);
            }
        }
        Ok(Checkpoint { dir })
    }

    /// Restores networks, optimiser states and progress.
    pub fn load_into(&self, t: &mut Trainer, state: &mut TrainState) -> Result<()> {
        t.g = load_module(t.g.clone(), &self.dir.join("generator.safetensors"))?;
        t.d = load_module(t.d.clone(), &self.dir.join("discriminator.safetensors"))?;
        // The saved average, or (a run that turns the average on when resumed) the current weights.
        t.reset_ema();
        let ema_path = self.dir.join(EMA_FILE);
        if let Some(ema) = t.g_ema.take_if(|_| ema_path.exists()) {
            t.g_ema = Some(load_module(ema, &ema_path)?);
        }
        t.opt_g = load_optimizer(t.opt_g.clone(), &self.dir.join("optim-generator.bpk"))?;
        t.opt_d = load_optimizer(t.opt_d.clone(), &self.dir.join("optim-discriminator.bpk"))?;
        let p = self.dir.join("state.json");
        let text = std::fs::read_to_string(&p).with_context(|| format!("{}: cannot read", p.display()))?;
        *state = serde_json::from_str(&text).with_context(|| format!("{}: bad state", p.display()))?;
        Ok(())
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

/// An optimiser state read whole into memory. Burn's `load(path)` reads the file lazily, and
/// the next checkpoint removes this one's folder: a state tensor first touched after that
/// (a frozen layer's, or one still unsaved) could no longer be read.
fn load_optimizer(opt: burn::optim::ModuleOptimizer, path: &Path) -> Result<burn::optim::ModuleOptimizer> {
    let bytes = std::fs::read(path).with_context(|| format!("{}: cannot read", path.display()))?;
    opt.from_bytes(burn::tensor::Bytes::from_bytes_vec(bytes))
        .map_err(|e| anyhow!("{}: cannot load optimiser state: {e:?}", path.display()))
}
