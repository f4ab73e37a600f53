//! The shipped models, found by name (`photo`, `anime`, `drawn`) in the models folder.

use std::path::{Path, PathBuf};

use anyhow::{Result, bail};

/// Names and descriptions of the models tinct ships.
pub const SHIPPED: &[(&str, &str)] = &[
    ("photo", "photographs (default)"),
    ("anime", "anime-style faces"),
    ("drawn", "drawings and illustrations"),
];

/// The default model.
pub const DEFAULT_MODEL: &str = "photo";

/// Folders searched for shipped models, in order: `$TINCT_MODELS`, `models/` beside the
/// executable and two levels up (a cargo `target/release` build), and the source tree's
/// `models/` recorded at build time.
pub fn model_dirs() -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Some(d) = std::env::var_os("TINCT_MODELS") {
        dirs.push(PathBuf::from(d));
    }
    if let Ok(exe) = std::env::current_exe()
        && let Some(bin) = exe.parent()
    {
        dirs.push(bin.join("models"));
        if let Some(up) = bin.parent().and_then(Path::parent) {
            dirs.push(up.join("models"));
        }
    }
    dirs.push(PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/models")));
    dirs
}

/// A model available by name.
#[derive(Clone, Debug)]
pub struct Available {
    pub name: String,
    pub description: String,
    pub path: PathBuf,
}

/// The shipped models present on this installation.
pub fn available() -> Vec<Available> {
    let dirs = model_dirs();
    SHIPPED
        .iter()
        .filter_map(|(name, desc)| {
            dirs.iter()
                .map(|d| d.join(format!("{name}.safetensors")))
                .find(|p| p.is_file())
                .map(|path| Available {
                    name: name.to_string(),
                    description: desc.to_string(),
                    path,
                })
        })
        .collect()
}

/// Resolves `--model`: an existing file or run folder, or a shipped model's name.
pub fn resolve(spec: &str) -> Result<PathBuf> {
    let p = PathBuf::from(spec);
    if p.exists() {
        return Ok(p);
    }
    if let Some((name, _)) = SHIPPED.iter().find(|(n, _)| *n == spec) {
        if let Some(a) = available().into_iter().find(|a| a.name == *name) {
            return Ok(a.path);
        }
        bail!(
            "model '{spec}' is not installed (looked in {}); train one with `tinct train` and pass --model RUN_DIR",
            model_dirs()
                .iter()
                .map(|d| d.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let names: Vec<&str> = SHIPPED.iter().map(|(n, _)| *n).collect();
    bail!(
        "--model {spec}: no such file or folder, and not a shipped model ({})",
        names.join(", ")
    )
}

/// Resolves a model like [`resolve`], down to the generator file (a run folder's
/// `generator.safetensors`).
pub fn resolve_file(spec: &str) -> Result<PathBuf> {
    let p = resolve(spec)?;
    Ok(if p.is_dir() {
        crate::model::store::run_generator_path(&p)
    } else {
        p
    })
}

/// File name of the ImageNet EfficientNet-Lite0 weights used to start `effnet-unet` training.
pub const ENCODER_WEIGHTS: &str = "efficientnet-lite0.safetensors";

/// Finds the pretrained encoder weights: `$TINCT_WEIGHTS`, then `weights/` beside the models,
/// then the project's `../shared/weights/`.
pub fn encoder_weights() -> Result<PathBuf> {
    let mut candidates = Vec::new();
    if let Some(d) = std::env::var_os("TINCT_WEIGHTS") {
        let p = PathBuf::from(d);
        candidates.push(if p.is_dir() { p.join(ENCODER_WEIGHTS) } else { p });
    }
    candidates.extend(model_dirs().into_iter().map(|d| d.join(ENCODER_WEIGHTS)));
    candidates.push(PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../shared/weights/efficientnet-lite0.safetensors"
    )));
    match candidates.iter().find(|p| p.is_file()) {
        Some(p) => Ok(p.clone()),
        None => bail!(
            "ImageNet encoder weights ({ENCODER_WEIGHTS}) not found (looked at {}); pass --encoder-weights PATH",
            candidates
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}
