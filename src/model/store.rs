//! Saving and loading networks as safetensors. A generator file is self-describing: its
//! [`ModelConfig`] is stored in the safetensors metadata under [`CONFIG_KEY`], and is also
//! written as JSON beside it for people and tools.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use burn::prelude::*;
use burn::store::{ModuleSnapshot, SafetensorsStore};

use super::{Generator, ModelConfig};
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
pub fn load_module<M: Module>(module: M, path: &Path) -> Result<M> {
    let bytes = std::fs::read(path).with_context(|| format!("{}: cannot read", path.display()))?;
    load_module_bytes(module, bytes, &path.display().to_string())
}

/// [`load_module`] from a safetensors file's bytes; `label` names them in errors.
pub fn load_module_bytes<M: Module>(mut module: M, bytes: Vec<u8>, label: &str) -> Result<M> {
    let bytes = convert_floats(&bytes, safetensors::Dtype::F32, None)
        .map_err(|e| anyhow!("{label}: not a safetensors file ({e})"))?
        .unwrap_or(bytes);
    let mut store = SafetensorsStore::from_bytes(Some(bytes));
    let result = module
        .load_from(&mut store)
        .map_err(|e| anyhow!("{label}: cannot load weights: {e}"))?;
    if !result.errors.is_empty() || !result.missing.is_empty() {
        bail!(
            "{label}: weights do not match the network ({} errors, {} missing tensors{})",
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

/// A model compiled into the binary: its name, safetensors bytes and config JSON.
#[derive(Debug)]
pub struct Embedded {
    pub name: &'static str,
    pub weights: &'static [u8],
    pub config: &'static str,
}

/// Where a generator's weights come from: a file (or run folder's generator file), or the
/// binary itself.
#[derive(Clone, Debug)]
pub enum ModelSource {
    File(PathBuf),
    Embedded(&'static Embedded),
}

impl std::fmt::Display for ModelSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ModelSource::File(p) => write!(f, "{}", p.display()),
            ModelSource::Embedded(e) => write!(f, "{} (built in)", e.name),
        }
    }
}

impl ModelSource {
    /// A file, or a run folder's generator file.
    pub fn file(path: &Path) -> ModelSource {
        ModelSource::File(if path.is_dir() {
            run_generator_path(path)
        } else {
            path.to_path_buf()
        })
    }

    /// The model's short name: a built-in model's name, a file's stem, or a run folder's name
    /// for its `generator.safetensors`.
    pub fn name(&self) -> String {
        match self {
            ModelSource::File(p) => model_label(p),
            ModelSource::Embedded(e) => e.name.to_string(),
        }
    }

    /// The generator config (for a file, the JSON beside it where there is one).
    pub fn config(&self) -> Result<ModelConfig> {
        match self {
            ModelSource::File(p) => read_generator_config(p),
            ModelSource::Embedded(e) => {
                let c = serde_json::from_str(e.config).with_context(|| format!("{self}: bad generator config"))?;
                checked(c, Path::new(e.name))
            }
        }
    }

    /// The safetensors bytes.
    pub fn bytes(&self) -> Result<Vec<u8>> {
        match self {
            ModelSource::File(p) => std::fs::read(p).with_context(|| format!("{}: cannot read", p.display())),
            ModelSource::Embedded(e) => Ok(e.weights.to_vec()),
        }
    }

    /// The safetensors bytes with any f16 tensors widened to f32.
    pub fn f32_bytes(&self) -> Result<Vec<u8>> {
        let bytes = self.bytes()?;
        Ok(convert_floats(&bytes, safetensors::Dtype::F32, None)
            .map_err(|e| anyhow!("{self}: not a safetensors file ({e})"))?
            .unwrap_or(bytes))
    }

    /// Loads the generator and its config.
    pub fn load_generator(&self, device: &Device) -> Result<(Generator, ModelConfig)> {
        if let ModelSource::File(p) = self
            && !p.is_file()
        {
            bail!("{}: no trained generator here", p.display());
        }
        let config = self.config()?;
        let g = load_module_bytes(config.init(device), self.bytes()?, &self.to_string())?;
        Ok((g, config))
    }
}

/// Saves a generator with its config embedded, plus `<stem>.json` beside it.
pub fn save_generator(g: &Generator, config: &ModelConfig, path: &Path) -> Result<()> {
    let json = serde_json::to_string_pretty(config)?;
    save_module(g, path, &[(CONFIG_KEY, json.clone())])?;
    crate::imageio::write_bytes_atomic(&path.with_extension("json"), json.as_bytes())
}

/// Reads a safetensors file's generator config (the JSON beside it, else the embedded one; see
/// `generator_config_from`). Only the file's header is read (the weights are checked when they
/// are loaded).
pub fn read_generator_config(path: &Path) -> Result<ModelConfig> {
    let meta = read_header_metadata(path)?;
    checked(generator_config_from(meta.as_ref(), path)?, path)
}

/// The `__metadata__` map of a safetensors file, read from its header alone: 8 bytes of
/// little-endian header length, then the header's JSON.
fn read_header_metadata(path: &Path) -> Result<Option<std::collections::HashMap<String, String>>> {
    use std::io::Read;
    /// safetensors' own limit on the header (`MAX_HEADER_SIZE`).
    const MAX_HEADER: u64 = 100_000_000;
    let not_safetensors = |why: &str| anyhow!("{}: not a safetensors file ({why})", path.display());
    let mut f = std::fs::File::open(path).with_context(|| format!("{}: cannot read", path.display()))?;
    let mut len = [0u8; 8];
    f.read_exact(&mut len)
        .map_err(|_| not_safetensors("shorter than its header"))?;
    let n = u64::from_le_bytes(len);
    if n > MAX_HEADER {
        return Err(not_safetensors("header too large"));
    }
    let mut header = Vec::with_capacity(n as usize);
    f.take(n).read_to_end(&mut header)?;
    if header.len() as u64 != n {
        return Err(not_safetensors("truncated header"));
    }
    #[derive(serde::Deserialize)]
    struct Header {
        #[serde(rename = "__metadata__")]
        metadata: Option<std::collections::HashMap<String, String>>,
    }
    let h: Header = serde_json::from_slice(&header).map_err(|e| not_safetensors(&format!("bad header: {e}")))?;
    Ok(h.metadata)
}

/// `config`, once its effnet part (if any) is consistent.
fn checked(config: ModelConfig, path: &Path) -> Result<ModelConfig> {
    config
        .validate()
        .with_context(|| format!("{}: bad generator config", path.display()))?;
    Ok(config)
}

/// A model file's config: the `<stem>.json` beside it where there is one, else the config
/// embedded in its metadata. `tinct export` and training write the two alike; the JSON wins so
/// that a model's settings (such as a shipped model's chroma gain) can be changed without
/// rewriting, or re-committing, its weights file.
fn generator_config_from(meta: Option<&std::collections::HashMap<String, String>>, path: &Path) -> Result<ModelConfig> {
    let side = path.with_extension("json");
    match std::fs::read_to_string(&side) {
        Ok(json) => {
            return serde_json::from_str(&json).with_context(|| format!("{}: bad generator config", side.display()));
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("{}: cannot read", side.display())),
    }
    match meta.and_then(|m| m.get(CONFIG_KEY)) {
        Some(json) => serde_json::from_str(json).with_context(|| format!("{}: bad embedded config", path.display())),
        None => bail!(
            "{}: no embedded generator config and no {} beside it",
            path.display(),
            side.display()
        ),
    }
}

/// Loads a generator (config and weights) from a safetensors file.
pub fn load_generator(path: &Path, device: &Device) -> Result<(Generator, ModelConfig)> {
    ModelSource::File(path.to_path_buf()).load_generator(device)
}

/// A readable label for a model file: its run folder or file stem.
pub fn model_label(path: &Path) -> String {
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    if stem == "generator"
        && let Some(dir) = path.parent().and_then(|p| p.file_name())
    {
        return dir.to_string_lossy().into_owned();
    }
    stem
}

/// The generator file of a run directory.
pub fn run_generator_path(run_dir: &Path) -> PathBuf {
    run_dir.join("generator.safetensors")
}

/// Averages the floating-point tensors of several safetensors files value by value (in f32),
/// keeping the first file's metadata and its non-float tensors. Every file must hold the same
/// tensor names and shapes.
fn average_floats(files: &[(String, Vec<u8>)]) -> Result<Vec<u8>> {
    use safetensors::{Dtype, SafeTensors, tensor::TensorView};
    let widened = files
        .iter()
        .map(|(p, b)| {
            let b = convert_floats(b, Dtype::F32, None)
                .map_err(|e| anyhow!("{}: not a safetensors file ({e})", p))?
                .unwrap_or_else(|| b.clone());
            Ok((p, b))
        })
        .collect::<Result<Vec<_>>>()?;
    let parsed = widened
        .iter()
        .map(|(p, b)| SafeTensors::deserialize(b).map_err(|e| anyhow!("{}: not a safetensors file ({e})", p)))
        .collect::<Result<Vec<_>>>()?;
    let (first_path, first) = (&files[0].0, &parsed[0]);
    let n = files.len() as f32;
    let mut owned: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = Vec::new();
    let mut names = first.names();
    names.sort();
    for name in names {
        let t = first.tensor(name)?;
        let data = if t.dtype() == Dtype::F32 {
            let mut sum: Vec<f32> = vec![0.0; t.data().len() / 4];
            for (k, st) in parsed.iter().enumerate() {
                let u = st
                    .tensor(name)
                    .map_err(|_| anyhow!("{}: has no tensor {name} (in {})", files[k].0, first_path))?;
                if u.shape() != t.shape() || u.dtype() != Dtype::F32 {
                    bail!(
                        "{}: tensor {name} is {:?} {:?}, {} has {:?} {:?}",
                        files[k].0,
                        u.dtype(),
                        u.shape(),
                        first_path,
                        t.dtype(),
                        t.shape()
                    );
                }
                for (s, c) in sum.iter_mut().zip(u.data().chunks_exact(4)) {
                    *s += f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
                }
            }
            sum.iter().flat_map(|s| (s / n).to_le_bytes()).collect()
        } else {
            t.data().to_vec()
        };
        owned.push((name.to_string(), t.dtype(), t.shape().to_vec(), data));
    }
    let views = owned
        .iter()
        .map(|(n, d, s, b)| Ok((n.clone(), TensorView::new(*d, s.clone(), b)?)))
        .collect::<std::result::Result<Vec<_>, safetensors::SafeTensorError>>()?;
    let (_, meta) = SafeTensors::read_metadata(&widened[0].1)?;
    Ok(safetensors::serialize(views, meta.metadata())?)
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
                .flat_map(|c| half::f16::from_f32(f32::from_le_bytes([c[0], c[1], c[2], c[3]])).to_le_bytes())
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
/// With several sources (checkpoints of one architecture, e.g. consecutive epochs of a run),
/// their weights are averaged value by value (checkpoint averaging, as in stochastic weight
/// averaging); the first source's config is kept. Sources whose own chroma gains differ average only
/// when `saturation` gives the result's.
pub fn export_generator(
    srcs: &[ModelSource],
    dst: &Path,
    size: Option<usize>,
    half: bool,
    saturation: Option<f32>,
) -> Result<ModelConfig> {
    let Some(src) = srcs.first() else {
        bail!("no model to export")
    };
    let mut bytes = src.bytes()?;
    let mut config = src.config()?;
    if srcs.len() > 1 {
        let mut all = vec![(src.to_string(), bytes)];
        for p in &srcs[1..] {
            let b = p.bytes()?;
            let mut c = p.config()?.with_size(config.size);
            // Own chroma gains may differ when the result's is given: it replaces them all.
            let (own, first) = (c.saturation(), config.saturation());
            c.saturation = first;
            if serde_json::to_value(&c)? != serde_json::to_value(&config)? {
                bail!("{p}: a different network from {src}; only checkpoints of one network can be averaged");
            }
            if own != first && saturation.is_none() {
                bail!("{p}: its own chroma gain is {own} and {src}'s is {first}; give the average's with --saturation");
            }
            all.push((p.to_string(), b));
        }
        bytes = average_floats(&all)?;
    }
    if let Some(s) = size {
        config.size = s;
    }
    if let Some(g) = saturation {
        config.saturation = super::effnet::check_saturation(g)?;
    }
    config.check_size(config.size)?;
    let json = serde_json::to_string_pretty(&config)?;
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes)
        .map_err(|e| anyhow!("{}: not a safetensors file ({e})", src))?;
    let mut info = meta.metadata().clone().unwrap_or_default();
    info.insert(CONFIG_KEY.to_string(), json.clone());
    let to = if half {
        safetensors::Dtype::F16
    } else {
        safetensors::Dtype::F32
    };
    let out = convert_floats(&bytes, to, Some(info))
        .map_err(|e| anyhow!("{}: cannot convert ({e})", src))?
        .expect("metadata given, so always rewritten");
    crate::imageio::write_bytes_atomic(dst, &out)?;
    crate::imageio::write_bytes_atomic(&dst.with_extension("json"), json.as_bytes())?;
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn floats(bytes: &[u8]) -> Vec<(String, Vec<f32>)> {
        let st = safetensors::SafeTensors::deserialize(bytes).unwrap();
        let mut out: Vec<(String, Vec<f32>)> = st
            .tensors()
            .into_iter()
            .filter(|(_, t)| t.dtype() == safetensors::Dtype::F32)
            .map(|(n, t)| {
                let v = t
                    .data()
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect();
                (n, v)
            })
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// Exporting several checkpoints averages every weight; the result loads as a generator;
    /// a checkpoint of another network is refused.
    fn files(paths: &[PathBuf]) -> Vec<ModelSource> {
        paths.iter().cloned().map(ModelSource::File).collect()
    }

    #[test]
    fn export_averages_checkpoints_of_one_network() {
        let dir = tempfile::tempdir().unwrap();
        let device = Device::flex();
        let cfg = ModelConfig::unet_for_size(32, 4);
        let paths: Vec<PathBuf> = (0..3)
            .map(|k| {
                let p = dir.path().join(format!("g{k}.safetensors"));
                save_generator(&cfg.init(&device), &cfg, &p).unwrap();
                p
            })
            .collect();
        let avg = dir.path().join("avg.safetensors");
        export_generator(&files(&paths), &avg, None, false, None).unwrap();
        let inputs: Vec<_> = paths.iter().map(|p| floats(&std::fs::read(p).unwrap())).collect();
        let out = floats(&std::fs::read(&avg).unwrap());
        assert_eq!(out.len(), inputs[0].len());
        let mut differing = 0;
        for (k, (name, v)) in out.iter().enumerate() {
            assert_eq!(name, &inputs[0][k].0);
            for (i, got) in v.iter().enumerate() {
                let xs: Vec<f32> = inputs.iter().map(|t| t[k].1[i]).collect();
                let want = xs.iter().sum::<f32>() / 3.0;
                assert!(
                    (got - want).abs() <= 1e-6 * (1.0 + want.abs()),
                    "{name}[{i}]: {got} vs {want}"
                );
                differing += usize::from(xs[0] != xs[1]);
            }
        }
        assert!(differing > 1000, "the three initialisations should differ");
        load_generator(&avg, &device).unwrap();

        let other = ModelConfig::unet_for_size(32, 8);
        let odd = dir.path().join("odd.safetensors");
        save_generator(&other.init(&device), &other, &odd).unwrap();
        let err = export_generator(&files(&[paths[0].clone(), odd]), &avg, None, false, None)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("odd.safetensors") && err.contains("different network"),
            "{err}"
        );
    }

    /// `export --saturation` stores the model's own chroma gain in the file and in the JSON
    /// beside it, for any architecture; a file written before the field existed reads as gain
    /// 1; files of different gains average only with the average's gain given; a negative gain
    /// is refused.
    #[test]
    fn export_stores_a_default_gain() {
        let dir = tempfile::tempdir().unwrap();
        let device = Device::flex();
        let cfg = ModelConfig::effnet_unet(32);
        let src = dir.path().join("g.safetensors");
        save_generator(&cfg.init(&device), &cfg, &src).unwrap();
        let dst = dir.path().join("tuned.safetensors");
        export_generator(&files(std::slice::from_ref(&src)), &dst, None, true, Some(1.25)).unwrap();
        assert_eq!(read_generator_config(&dst).unwrap().saturation(), 1.25);
        let json = std::fs::read_to_string(dir.path().join("tuned.json")).unwrap();
        assert!(json.contains("\"saturation\": 1.25"), "{json}");
        assert_eq!(load_generator(&dst, &device).unwrap().1.saturation(), 1.25);

        let mut old = serde_json::to_value(&cfg).unwrap();
        old.as_object_mut().unwrap().remove("saturation");
        let old: ModelConfig = serde_json::from_value(old).unwrap();
        assert_eq!(old.saturation(), 1.0);

        // Averaging files of different own gains needs the average's gain.
        let both = [src.clone(), dst.clone()];
        let avg = dir.path().join("avg.safetensors");
        let err = export_generator(&files(&both), &avg, None, false, None)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("tuned.safetensors") && err.contains("own chroma gain is 1.25"),
            "{err}"
        );
        export_generator(&files(&both), &avg, None, false, Some(1.1)).unwrap();
        assert_eq!(read_generator_config(&avg).unwrap().saturation(), 1.1);

        let err = export_generator(&files(std::slice::from_ref(&src)), &dst, None, false, Some(-0.5))
            .unwrap_err()
            .to_string();
        assert!(err.contains("saturation -0.5"), "{err}");
        // The gain is the model's, whatever its architecture.
        let unet = ModelConfig::unet_for_size(32, 4);
        save_generator(&unet.init(&device), &unet, &src).unwrap();
        export_generator(&files(&[src]), &dst, None, false, Some(1.1)).unwrap();
        assert_eq!(read_generator_config(&dst).unwrap().saturation(), 1.1);
    }

    /// Configs in the flat form written before the generator became an enum (`arch`, `size`,
    /// `unet`, and `effnet` holding the gain) read as the same model.
    #[test]
    fn flat_configs_of_older_files_still_read() {
        let flat = r#"{"unet": {"in_channels": 1, "out_channels": 2, "ngf": 64, "depth": 8, "dropout": 0.5},
            "effnet": {"decoder": [128, 64, 48, 32, 16], "ab_bins": 0, "temperature": 0.38,
                       "ab_log_weights": [], "rebalance": 0.0, "saturation": 1.4252},
            "arch": "effnet-unet", "size": 256}"#;
        let c: ModelConfig = serde_json::from_str(flat).unwrap();
        assert_eq!(c, ModelConfig::effnet_unet(256).with_saturation(1.4252));
        let unet = r#"{"unet": {"in_channels": 1, "out_channels": 2, "ngf": 32, "depth": 5, "dropout": 0.5},
            "effnet": null, "arch": "unet256", "size": 32}"#;
        let c: ModelConfig = serde_json::from_str(unet).unwrap();
        assert_eq!(c, ModelConfig::unet_for_size(32, 32));
        // The current form round-trips.
        let json = serde_json::to_string(&c).unwrap();
        assert!(json.contains(r#""generator":{"arch":"unet256""#), "{json}");
        assert_eq!(serde_json::from_str::<ModelConfig>(&json).unwrap(), c);
    }

    /// The config is read from the header alone: it matches what the whole file gives, and a
    /// file that is not safetensors, or whose header is cut short, is refused by name.
    #[test]
    fn config_is_read_from_the_header_alone() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = ModelConfig::effnet_unet(32);
        let src = dir.path().join("g.safetensors");
        save_generator(&cfg.init(&Device::flex()), &cfg, &src).unwrap();
        let bytes = std::fs::read(&src).unwrap();
        let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
        let whole: ModelConfig = serde_json::from_str(&meta.metadata().as_ref().unwrap()[CONFIG_KEY]).unwrap();
        let header = read_generator_config(&src).unwrap();
        assert_eq!(
            serde_json::to_value(&header).unwrap(),
            serde_json::to_value(&whole).unwrap()
        );

        // The header alone suffices: the weights may be missing (they are checked on loading).
        let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
        let head_only = dir.path().join("head.safetensors");
        std::fs::write(&head_only, &bytes[..8 + n]).unwrap();
        assert_eq!(read_generator_config(&head_only).unwrap().size, whole.size);

        for (name, data, why) in [
            ("cut.safetensors", &bytes[..8 + n / 2], "truncated header"),
            ("tiny.safetensors", &bytes[..5], "shorter than its header"),
            (
                "text.safetensors",
                &b"not a model at all, just some text"[..],
                "header too large",
            ),
        ] {
            let p = dir.path().join(name);
            std::fs::write(&p, data).unwrap();
            let err = format!("{:#}", read_generator_config(&p).unwrap_err());
            assert!(err.contains(name) && err.contains(why), "{err}");
        }
    }

    /// The JSON beside a model file overrides its embedded config (a shipped model's gain is
    /// changed there), and an export of it carries the JSON's settings; without the JSON, the
    /// embedded config is used.
    #[test]
    fn the_json_beside_a_model_overrides_its_embedded_config() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = ModelConfig::effnet_unet(32);
        let src = dir.path().join("g.safetensors");
        save_generator(&cfg.init(&Device::flex()), &cfg, &src).unwrap();
        let mut edited = serde_json::to_value(&cfg).unwrap();
        edited["saturation"] = serde_json::json!(1.5);
        std::fs::write(src.with_extension("json"), edited.to_string()).unwrap();
        let read = read_generator_config(&src).unwrap();
        assert_eq!(serde_json::to_value(&read).unwrap(), edited);
        let dst = dir.path().join("out.safetensors");
        export_generator(&files(std::slice::from_ref(&src)), &dst, None, false, None).unwrap();
        std::fs::remove_file(dst.with_extension("json")).unwrap();
        assert_eq!(
            serde_json::to_value(read_generator_config(&dst).unwrap()).unwrap(),
            edited
        );
        std::fs::remove_file(src.with_extension("json")).unwrap();
        assert_eq!(
            serde_json::to_value(read_generator_config(&src).unwrap()).unwrap(),
            serde_json::to_value(&cfg).unwrap()
        );
        std::fs::write(src.with_extension("json"), "{ not json").unwrap();
        let err = format!("{:#}", read_generator_config(&src).unwrap_err());
        assert!(err.contains("g.json") && err.contains("bad generator config"), "{err}");
    }
}
