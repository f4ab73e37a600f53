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

/// All image files under `dir`, searched recursively, in a stable (sorted) order. Linked
/// folders are followed, but each folder is read once, so a link back up the tree cannot loop.
pub fn find_images(dir: &Path) -> Result<Vec<PathBuf>> {
    find_files(dir, imageio::is_image_path)
}

/// The files under `dir` that `wanted` accepts, searched recursively as [`find_images`] does.
pub fn find_files(dir: &Path, wanted: fn(&Path) -> bool) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        if !seen.insert(d.canonicalize().unwrap_or_else(|_| d.clone())) {
            continue;
        }
        let entries = std::fs::read_dir(&d).with_context(|| format!("{}: cannot read folder", d.display()))?;
        for entry in entries {
            let path = entry
                .with_context(|| format!("{}: cannot read folder", d.display()))?
                .path();
            if path.is_dir() {
                stack.push(path);
            } else if wanted(&path) {
                out.push(path);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// A deterministic split: the files are shuffled with `seed` and the last `val_fraction`
/// (at least one file when there are two or more) become the validation set.
pub fn split(mut files: Vec<PathBuf>, val_fraction: f64, seed: u64) -> (Vec<PathBuf>, Vec<PathBuf>) {
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

/// How one training image is augmented.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Augment {
    /// Mirror left to right.
    pub flip: bool,
    /// The window kept before resizing, as fractions of the image: `[x0, y0, width, height]`.
    pub crop: [f32; 4],
}

impl Augment {
    /// The whole image, not mirrored.
    pub const NONE: Augment = Augment {
        flip: false,
        crop: [0.0, 0.0, 1.0, 1.0],
    };
}

/// Decodes `path`, crops and mirrors it as `aug` says, resizes it to `size`x`size` with
/// bicubic filtering, and converts it to scaled L*a*b*.
pub fn load_sample(path: &Path, size: u32, aug: Augment) -> Result<Sample> {
    let img = imageio::open(path)?.to_rgb8();
    let (w, h) = img.dimensions();
    let [fx, fy, fw, fh] = aug.crop;
    let cw = ((fw * w as f32).round() as u32).clamp(1, w);
    let ch = ((fh * h as f32).round() as u32).clamp(1, h);
    let x0 = ((fx * w as f32).round() as u32).min(w - cw);
    let y0 = ((fy * h as f32).round() as u32).min(h - ch);
    let window = image::imageops::crop_imm(&img, x0, y0, cw, ch);
    let mut rgb = image::imageops::resize(&*window, size, size, FilterType::CatmullRom);
    if aug.flip {
        image::imageops::flip_horizontal_in_place(&mut rgb);
    }
    Ok(sample_from_lab(&LabImage::from_rgb8(&rgb)))
}

/// Scales a L*a*b* image into a [`Sample`].
pub fn sample_from_lab(lab: &LabImage) -> Sample {
    let l = lab.l.iter().map(|&v| scale::l_to_net(v)).collect();
    let ab = lab.a.iter().chain(lab.b.iter()).map(|&v| scale::ab_to_net(v)).collect();
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
        self.0.lock().map(|mut s| s.insert(path.to_path_buf())).unwrap_or(false)
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
    augs: &[Augment],
    bad: &BadFiles,
    on_error: &(dyn Fn(String) + Sync),
) -> Vec<Sample> {
    paths
        .par_iter()
        .zip(augs.par_iter())
        .filter(|(p, _)| !bad.contains(p))
        .filter_map(|(p, &aug)| match load_sample(p, size, aug) {
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

/// The order and augmentation of one epoch, derived from the run seed and the epoch number so
/// that a resumed run sees the same sequence. With `augment`, half the images are mirrored; with
/// `crop_min` below 1, each image is cropped to a random window whose sides are a fraction in
/// `[crop_min, 1]` of the image's (one fraction for both sides, so the aspect ratio is kept), at
/// a random position. The crops come from their own random stream, so the order and flips are
/// the same with and without them.
pub fn epoch_plan(n: usize, seed: u64, epoch: usize, augment: bool, crop_min: f32) -> (Vec<usize>, Vec<Augment>) {
    let mix = seed ^ (epoch as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let mut rng = StdRng::seed_from_u64(mix);
    let mut order: Vec<usize> = (0..n).collect();
    order.shuffle(&mut rng);
    let flips: Vec<bool> = (0..n)
        .map(|_| augment && rand::Rng::random_bool(&mut rng, 0.5))
        .collect();
    let mut crop_rng = StdRng::seed_from_u64(mix ^ 0x5EED_C0DE_CAFE_F00D);
    let augs = flips
        .into_iter()
        .map(|flip| {
            let crop = if crop_min < 1.0 {
                use rand::Rng;
                let f = crop_rng.random_range(crop_min.max(0.0)..=1.0);
                [
                    crop_rng.random_range(0.0..=1.0 - f),
                    crop_rng.random_range(0.0..=1.0 - f),
                    f,
                    f,
                ]
            } else {
                Augment::NONE.crop
            };
            Augment { flip, crop }
        })
        .collect();
    (order, augs)
}

/// Loads the batches of one epoch on a background thread, one batch ahead of the consumer,
/// so decoding overlaps training.
pub struct Prefetcher {
    rx: Receiver<Vec<Sample>>,
    handle: Option<std::thread::JoinHandle<()>>,
}

impl Prefetcher {
    /// `batches` lists the file paths and augmentations of every batch in order.
    pub fn start(
        batches: Vec<(Vec<PathBuf>, Vec<Augment>)>,
        size: u32,
        bad: BadFiles,
        on_error: Arc<dyn Fn(String) + Send + Sync>,
    ) -> Prefetcher {
        let (tx, rx): (SyncSender<Vec<Sample>>, _) = sync_channel(1);
        let handle = std::thread::spawn(move || {
            for (paths, augs) in batches {
                let samples = load_samples(&paths, size, &augs, &bad, &*on_error);
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
            imageio::IMAGE_EXTENSIONS.join(", ")
        );
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_is_deterministic_and_80_20() {
        let files: Vec<PathBuf> = (0..100).map(|i| PathBuf::from(format!("{i:03}.png"))).collect();
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
        let (o1, f1) = epoch_plan(50, 1, 3, true, 1.0);
        let (o2, f2) = epoch_plan(50, 1, 3, true, 1.0);
        assert_eq!((o1.clone(), f1.clone()), (o2, f2));
        let mut sorted = o1.clone();
        sorted.sort();
        assert_eq!(sorted, (0..50).collect::<Vec<_>>());
        assert!(f1.iter().any(|a| a.flip) && f1.iter().any(|a| !a.flip));
        assert!(f1.iter().all(|a| a.crop == Augment::NONE.crop));
        let (_, no_flips) = epoch_plan(50, 1, 3, false, 1.0);
        assert!(no_flips.iter().all(|a| !a.flip));
    }

    /// Crops lie inside the image, span the requested range of sizes, and leave the order and
    /// flips of the epoch unchanged.
    #[test]
    fn crops_are_inside_the_image_and_do_not_change_the_order() {
        let (o1, plain) = epoch_plan(400, 9, 2, true, 1.0);
        let (o2, cropped) = epoch_plan(400, 9, 2, true, 0.5);
        assert_eq!(o1, o2);
        let mut sizes = Vec::new();
        for (p, c) in plain.iter().zip(&cropped) {
            assert_eq!(p.flip, c.flip);
            let [x, y, w, h] = c.crop;
            assert_eq!(w, h);
            assert!((0.5..=1.0).contains(&w) && x >= 0.0 && y >= 0.0 && x + w <= 1.0 + 1e-6 && y + h <= 1.0 + 1e-6);
            sizes.push(w);
        }
        let (lo, hi) = sizes.iter().fold((1f32, 0f32), |(lo, hi), &w| (lo.min(w), hi.max(w)));
        assert!(lo < 0.55 && hi > 0.95, "crop sides span {lo}..{hi}");
    }

    /// A crop keeps exactly the chosen window: the left half of an image whose halves are
    /// black and white loads as black.
    #[test]
    fn load_sample_crops_the_chosen_window() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("halves.png");
        image::RgbImage::from_fn(40, 20, |x, _| {
            if x < 20 {
                image::Rgb([0, 0, 0])
            } else {
                image::Rgb([255, 255, 255])
            }
        })
        .save(&path)
        .unwrap();
        let mean_l = |aug| {
            let s = load_sample(&path, 8, aug).unwrap();
            s.l.iter().map(|&v| scale::l_from_net(v)).sum::<f32>() / s.l.len() as f32
        };
        let left = Augment {
            flip: false,
            crop: [0.0, 0.0, 0.5, 1.0],
        };
        let right = Augment {
            flip: true,
            crop: [0.5, 0.0, 0.5, 1.0],
        };
        assert!(mean_l(left) < 0.5, "{}", mean_l(left));
        assert!(mean_l(right) > 99.5, "{}", mean_l(right));
        assert!((mean_l(Augment::NONE) - 50.0).abs() < 5.0);
    }
}
