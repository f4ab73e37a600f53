//! Training data: finding images in a folder, the seeded train/validation split, decoding with
//! augmentation in parallel, and batching into network tensors.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result, bail};
use burn::prelude::*;
use image::imageops::FilterType;
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rayon::prelude::*;

use crate::color::{LabImage, scale};
use crate::imageio;

/// File extensions treated as images (lower case).
pub const IMAGE_EXTENSIONS: &[&str] = &["jpg", "jpeg", "png", "webp", "tif", "tiff", "bmp"];

/// Whether `path` has an image extension.
pub fn is_image_path(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
}

/// All image files under `dir`, searched recursively, in a stable (sorted) order.
pub fn find_images(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let entries = std::fs::read_dir(&d)
            .with_context(|| format!("{}: cannot read folder", d.display()))?;
        for entry in entries {
            let path = entry?.path();
            if path.is_dir() {
                stack.push(path);
            } else if is_image_path(&path) {
                out.push(path);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// A deterministic split: the files are shuffled with `seed` and the last `val_fraction`
/// (at least one file when there are two or more) become the validation set.
pub fn split(
    mut files: Vec<PathBuf>,
    val_fraction: f64,
    seed: u64,
) -> (Vec<PathBuf>, Vec<PathBuf>) {
    files.sort();
    files.shuffle(&mut StdRng::seed_from_u64(seed));
    let n_val = if files.len() < 2 {
        0
    } else {
        ((files.len() as f64 * val_fraction).round() as usize).clamp(1, files.len() - 1)
    };
    let val = files.split_off(files.len() - n_val);
    (files, val)
}

/// One training example in network scale: `l` is `size*size` values, `ab` is `2*size*size`
/// (the a plane then the b plane).
#[derive(Clone, Debug)]
pub struct Sample {
    pub l: Vec<f32>,
    pub ab: Vec<f32>,
}

/// Decodes `path`, resizes it to `size`x`size` with bicubic filtering, optionally mirrors it,
/// and converts it to scaled L*a*b*.
pub fn load_sample(path: &Path, size: u32, flip: bool) -> Result<Sample> {
    let img = imageio::open(path)?;
    let mut rgb = image::imageops::resize(&img.to_rgb8(), size, size, FilterType::CatmullRom);
    if flip {
        image::imageops::flip_horizontal_in_place(&mut rgb);
    }
    Ok(sample_from_lab(&LabImage::from_rgb8(&rgb)))
}

/// Scales a L*a*b* image into a [`Sample`].
pub fn sample_from_lab(lab: &LabImage) -> Sample {
    let l = lab.l.iter().map(|&v| scale::l_to_net(v)).collect();
    let ab = lab
        .a
        .iter()
        .chain(lab.b.iter())
        .map(|&v| scale::ab_to_net(v))
        .collect();
    Sample { l, ab }
}

/// A batch of samples as tensors: `l` `[B, 1, S, S]`, `ab` `[B, 2, S, S]`.
pub struct Batch {
    pub l: Tensor<4>,
    pub ab: Tensor<4>,
}

impl Batch {
    pub fn from_samples(samples: &[Sample], size: usize, device: &Device) -> Batch {
        let b = samples.len();
        let l: Vec<f32> = samples.iter().flat_map(|s| s.l.iter().copied()).collect();
        let ab: Vec<f32> = samples.iter().flat_map(|s| s.ab.iter().copied()).collect();
        Batch {
            l: Tensor::from_data(TensorData::new(l, [b, 1, size, size]), device),
            ab: Tensor::from_data(TensorData::new(ab, [b, 2, size, size]), device),
        }
    }
}

/// Remembers which files failed to decode, so each is reported once and then skipped.
#[derive(Clone, Default)]
pub struct BadFiles(Arc<Mutex<HashSet<PathBuf>>>);

impl BadFiles {
    /// Records a failure; returns true the first time a file fails.
    pub fn report(&self, path: &Path) -> bool {
        self.0
            .lock()
            .map(|mut s| s.insert(path.to_path_buf()))
            .unwrap_or(false)
    }
    pub fn contains(&self, path: &Path) -> bool {
        self.0.lock().map(|s| s.contains(path)).unwrap_or(false)
    }
    pub fn len(&self) -> usize {
        self.0.lock().map(|s| s.len()).unwrap_or(0)
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Decodes a list of files in parallel; files that fail are reported (once) through
/// `on_error` and left out.
pub fn load_samples(
    paths: &[PathBuf],
    size: u32,
    flips: &[bool],
    bad: &BadFiles,
    on_error: &(dyn Fn(String) + Sync),
) -> Vec<Sample> {
    paths
        .par_iter()
        .zip(flips.par_iter())
        .filter(|(p, _)| !bad.contains(p))
        .filter_map(|(p, &flip)| match load_sample(p, size, flip) {
            Ok(s) => Some(s),
            Err(e) => {
                if bad.report(p) {
                    on_error(format!("skipping {e:#}"));
                }
                None
            }
        })
        .collect()
}

/// The order and flips of one epoch, derived from the run seed and the epoch number so
/// that a resumed run sees the same sequence.
pub fn epoch_plan(n: usize, seed: u64, epoch: usize, augment: bool) -> (Vec<usize>, Vec<bool>) {
    let mut rng = StdRng::seed_from_u64(seed ^ (epoch as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let mut order: Vec<usize> = (0..n).collect();
    order.shuffle(&mut rng);
    let flips = (0..n)
        .map(|_| augment && rand::Rng::random_bool(&mut rng, 0.5))
        .collect();
    (order, flips)
}

/// Loads the batches of one epoch on a background thread, one batch ahead of the consumer,
/// so decoding overlaps training.
pub struct Prefetcher {
    rx: Receiver<Vec<Sample>>,
    handle: Option<std::thread::JoinHandle<()>>,
}

impl Prefetcher {
    /// `batches` lists the file paths and flips of every batch in order.
    pub fn start(
        batches: Vec<(Vec<PathBuf>, Vec<bool>)>,
        size: u32,
        bad: BadFiles,
        on_error: Arc<dyn Fn(String) + Send + Sync>,
    ) -> Prefetcher {
        let (tx, rx): (SyncSender<Vec<Sample>>, _) = sync_channel(1);
        let handle = std::thread::spawn(move || {
            for (paths, flips) in batches {
                let samples = load_samples(&paths, size, &flips, &bad, &*on_error);
                if tx.send(samples).is_err() {
                    break;
                }
            }
        });
        Prefetcher {
            rx,
            handle: Some(handle),
        }
    }

    /// The next batch's samples, or `None` at the end of the epoch.
    pub fn next_batch(&mut self) -> Option<Vec<Sample>> {
        self.rx.recv().ok()
    }
}

impl Drop for Prefetcher {
    fn drop(&mut self) {
        // Unblock the producer by dropping the receiver first, then wait for it.
        let (_, dummy_rx) = sync_channel(0);
        drop(std::mem::replace(&mut self.rx, dummy_rx));
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// Checks that a training folder holds images.
pub fn require_images(dir: &Path) -> Result<Vec<PathBuf>> {
    if !dir.is_dir() {
        bail!("{}: not a folder", dir.display());
    }
    let files = find_images(dir)?;
    if files.is_empty() {
        bail!(
            "{}: no images found (looked for {})",
            dir.display(),
            IMAGE_EXTENSIONS.join(", ")
        );
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_is_deterministic_and_80_20() {
        let files: Vec<PathBuf> = (0..100)
            .map(|i| PathBuf::from(format!("{i:03}.png")))
            .collect();
        let (t1, v1) = split(files.clone(), 0.2, 7);
        let (t2, v2) = split(files.iter().rev().cloned().collect(), 0.2, 7);
        assert_eq!((t1.len(), v1.len()), (80, 20));
        assert_eq!(v1, v2);
        assert_eq!(t1, t2);
        let (_, v3) = split(files, 0.2, 8);
        assert_ne!(v1, v3);
    }

    #[test]
    fn epoch_plan_is_a_permutation_and_reproducible() {
        let (o1, f1) = epoch_plan(50, 1, 3, true);
        let (o2, f2) = epoch_plan(50, 1, 3, true);
        assert_eq!((o1.clone(), f1.clone()), (o2, f2));
        let mut sorted = o1.clone();
        sorted.sort();
        assert_eq!(sorted, (0..50).collect::<Vec<_>>());
        assert!(f1.iter().any(|&f| f) && f1.iter().any(|&f| !f));
        let (_, no_flips) = epoch_plan(50, 1, 3, false);
        assert!(no_flips.iter().all(|&f| !f));
    }
}
