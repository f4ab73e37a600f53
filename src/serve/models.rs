//! The models a server offers, loaded once each and shared.
//!
//! Clients name models only by name: the shipped ones (`photo`, `anime`, `drawn`, see
//! [`crate::zoo`]) and the one given with `--model` (by its name, or by its label when it
//! is a file or run folder). A client can never make the server open a path of its choice.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use anyhow::Result;
use burn::prelude::Device;
use serde::Serialize;

use super::error::ApiError;
use crate::infer::Colorizer;
use crate::model::store::ModelSource;
use crate::model::{Generator, ModelConfig};

/// A generator in memory, from which per-request [`Colorizer`]s are made.
pub struct LoadedModel {
    generator: Generator,
    config: ModelConfig,
    /// Where the weights came from.
    pub source: ModelSource,
}

impl LoadedModel {
    /// Loads a generator.
    pub fn load(source: &ModelSource, device: &Device) -> Result<LoadedModel> {
        let (generator, config, source) = Colorizer::load(source, device)?.into_parts();
        Ok(LoadedModel {
            generator,
            config,
            source,
        })
    }

    /// The model's training (default working) size.
    pub fn size(&self) -> usize {
        self.config.size
    }

    /// A colouriser at `size` (default: the training size). The generator's tensors are
    /// shared, not copied.
    pub fn colorizer(&self, device: &Device, size: Option<usize>) -> Result<Colorizer> {
        let c = Colorizer::new(self.generator.clone(), self.config.clone(), device, self.source.clone());
        match size {
            Some(s) => c.with_size(s),
            None => Ok(c),
        }
    }
}

/// One model name the server knows.
#[derive(Clone, Debug, Serialize)]
pub struct ModelInfo {
    pub name: String,
    pub description: String,
    /// Whether requests without `model` use it.
    pub default: bool,
}

/// The models a server offers, with a cache of the loaded ones.
pub struct Registry {
    device: Device,
    entries: Vec<(ModelInfo, ModelSource)>,
    default: String,
    cache: Mutex<HashMap<String, Arc<LoadedModel>>>,
}

impl Registry {
    /// The shipped models found on this installation, plus `--model` when given (a shipped
    /// name, a run folder or a .safetensors file). Without `--model` the default is the
    /// shipped `photo` model.
    pub fn new(model: Option<&str>, device: Device) -> Result<Registry> {
        let mut entries: Vec<(ModelInfo, ModelSource)> = crate::zoo::available()
            .into_iter()
            .map(|a| {
                let info = ModelInfo {
                    name: a.name,
                    description: a.description,
                    default: false,
                };
                (info, a.source)
            })
            .collect();
        let default = match model {
            None => crate::zoo::DEFAULT_MODEL.to_string(),
            Some(spec)
                if crate::zoo::SHIPPED.iter().any(|(n, _)| *n == spec) && !std::path::Path::new(spec).exists() =>
            {
                spec.to_string()
            }
            Some(spec) => {
                let source = crate::zoo::resolve(spec)?;
                let name = source.name();
                let info = ModelInfo {
                    name: name.clone(),
                    description: "given with --model".into(),
                    default: false,
                };
                // A path whose label is a shipped name replaces that entry.
                entries.retain(|(i, _)| i.name != name);
                entries.insert(0, (info, source));
                name
            }
        };
        for (info, _) in &mut entries {
            info.default = info.name == default;
        }
        Ok(Registry {
            device,
            entries,
            default,
            cache: Mutex::new(HashMap::new()),
        })
    }

    /// The compute device models run on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// The default model's name.
    pub fn default_name(&self) -> &str {
        &self.default
    }

    /// Every model name the server knows.
    pub fn list(&self) -> Vec<ModelInfo> {
        self.entries.iter().map(|(i, _)| i.clone()).collect()
    }

    /// The loaded model of that name (the default for `None`), loading it on first use.
    /// Blocking (reads and builds the network): call it from a blocking thread.
    ///
    /// Errors: 400 for a name the server does not know, 500 for weights that fail to load.
    pub fn get(&self, name: Option<&str>) -> Result<Arc<LoadedModel>, ApiError> {
        let name = name.unwrap_or(&self.default);
        let Some((_, source)) = self.entries.iter().find(|(i, _)| i.name == name) else {
            let names: Vec<&str> = self.entries.iter().map(|(i, _)| i.name.as_str()).collect();
            return Err(ApiError::bad_request(format!(
                "unknown model '{name}' (known: {})",
                names.join(", ")
            )));
        };
        // Loading happens under the lock, so concurrent first requests load a model once.
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(m) = cache.get(name) {
            return Ok(m.clone());
        }
        let model = LoadedModel::load(source, &self.device)
            .map(Arc::new)
            .map_err(|e| ApiError::internal(format!("model '{name}' failed to load: {e:#}")))?;
        cache.insert(name.to_string(), model.clone());
        Ok(model)
    }
}
