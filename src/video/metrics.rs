//! Video metrics (for docs/BENCHMARKS.md): temporal flicker, PSNR, colourfulness, and
//! [`evaluate`], which runs a whole comparison on a colour clip.
//!
//! PSNR and colourfulness are [`crate::metrics`]'s.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::sync_channel;
use std::time::Instant;

use image::RgbImage;
use rayon::prelude::*;
use serde::Serialize;

use super::error::VideoError;
use super::keyframe::{KeyframeParams, Keyframer};
use super::pipeline::{Batch, Stop, colorize_checked, decode_stage, first_failure, open_source, progress_bar};
use super::stabilize::{SceneCutParams, Stabilizer, StabilizerParams, scene_stats};
use super::{FrameColorizer, VideoInput, VideoOptions};
use crate::color::{LabImage, lab_to_rgb8};

/// Parameters of the flicker metric.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FlickerParams {
    /// Only pixels whose L changed by less than this (in L units) between two consecutive
    /// frames count: there the colour should not change either. Default 2.0.
    pub dl_threshold: f32,
    /// Frame pairs detected as scene cuts are skipped. Default [`SceneCutParams::default`].
    pub scene_cut: SceneCutParams,
}

impl Default for FlickerParams {
    fn default() -> Self {
        Self {
            dl_threshold: 2.0,
            scene_cut: SceneCutParams::default(),
        }
    }
}

/// Streaming flicker accumulator: push frames in order, read [`FlickerMeter::value`].
///
/// Flicker is the mean **Euclidean** chroma change `sqrt(da^2 + db^2)` between consecutive
/// frames, pooled over all pixels (of all non-cut frame pairs) whose L changed by less than
/// [`FlickerParams::dl_threshold`]. Lower is steadier; the unit is ΔE*ab-like (a,b units).
#[derive(Clone, Debug)]
pub struct FlickerMeter {
    params: FlickerParams,
    prev: Option<LabImage>,
    sum: f64,
    pixels: u64,
    total: u64,
    pairs: u64,
    cuts: u64,
}

impl FlickerMeter {
    pub fn new(params: FlickerParams) -> Self {
        Self {
            params,
            prev: None,
            sum: 0.0,
            pixels: 0,
            total: 0,
            pairs: 0,
            cuts: 0,
        }
    }

    /// Adds the next frame. A frame of another size restarts the comparison.
    pub fn push(&mut self, frame: &LabImage) {
        if let Some(prev) = &self.prev {
            let n = frame.l.len();
            let same = prev.width == frame.width && prev.height == frame.height && prev.l.len() == n;
            if same && frame.a.len() == n && frame.b.len() == n {
                if self.params.scene_cut.is_cut(&scene_stats(&prev.l, &frame.l)) {
                    self.cuts += 1;
                } else {
                    let t = self.params.dl_threshold;
                    let (sum, count) = (0..n)
                        .into_par_iter()
                        .with_min_len(4096)
                        .filter(|&i| (frame.l[i] - prev.l[i]).abs() < t)
                        .map(|i| {
                            let (da, db) = (frame.a[i] - prev.a[i], frame.b[i] - prev.b[i]);
                            (f64::from((da * da + db * db).sqrt()), 1u64)
                        })
                        .reduce(|| (0.0, 0), |x, y| (x.0 + y.0, x.1 + y.1));
                    self.sum += sum;
                    self.pixels += count;
                    self.total += n as u64;
                    self.pairs += 1;
                }
            }
        }
        match &mut self.prev {
            Some(p) if p.l.len() == frame.l.len() && p.a.len() == frame.a.len() && p.b.len() == frame.b.len() => {
                p.width = frame.width;
                p.height = frame.height;
                p.l.copy_from_slice(&frame.l);
                p.a.copy_from_slice(&frame.a);
                p.b.copy_from_slice(&frame.b);
            }
            _ => self.prev = Some(frame.clone()),
        }
    }

    /// The flicker so far (0.0 when no pixel qualified yet).
    pub fn value(&self) -> f64 {
        if self.pixels == 0 {
            0.0
        } else {
            self.sum / self.pixels as f64
        }
    }

    /// Fraction of the compared pixels that passed the |dL| threshold.
    pub fn static_fraction(&self) -> f64 {
        if self.total == 0 {
            0.0
        } else {
            self.pixels as f64 / self.total as f64
        }
    }

    /// Frame pairs compared (scene cuts excluded).
    pub fn pairs(&self) -> u64 {
        self.pairs
    }

    /// Frame pairs skipped as scene cuts.
    pub fn scene_cuts(&self) -> u64 {
        self.cuts
    }
}

/// Flicker of a frame sequence with the default [`FlickerParams`]: mean Euclidean |Δ(a,b)|
/// between consecutive frames over pixels whose L changed by less than 2, scene cuts skipped.
pub fn flicker(frames: &[LabImage]) -> f64 {
    flicker_with(frames, &FlickerParams::default())
}

/// [`flicker`] with explicit parameters.
pub fn flicker_with(frames: &[LabImage], params: &FlickerParams) -> f64 {
    let mut meter = FlickerMeter::new(params.clone());
    for f in frames {
        meter.push(f);
    }
    meter.value()
}

/// The gray version of a frame a colouriser sees: R = G = B rendering of its L.
fn gray_from_l(lab: &LabImage) -> RgbImage {
    let mut out = vec![0u8; lab.l.len() * 3];
    out.par_chunks_mut(3 * 1024)
        .zip(lab.l.par_chunks(1024))
        .for_each(|(px, l)| {
            for (p, &l) in px.chunks_exact_mut(3).zip(l) {
                p.copy_from_slice(&lab_to_rgb8([l, 0.0, 0.0]));
            }
        });
    RgbImage::from_raw(lab.width, lab.height, out).unwrap_or_else(|| RgbImage::new(lab.width, lab.height))
}

/// Result of [`evaluate`]; serialises to JSON for docs/BENCHMARKS.md.
///
/// "raw" is the colouriser's output on every frame; "stabilized" is what `tinct video`
/// writes with the same options: the key frames' colour (the others carry it, see
/// [`super::keyframe`]) after the temporal filter. All flicker values are measured on the 8-bit RGB frames as they would be written
/// (converted back to Lab), with [`FlickerParams`]; PSNR and colourfulness are per-frame
/// means against / of the ground-truth colour frames.
#[derive(Clone, Debug, Serialize)]
pub struct EvalReport {
    pub input: PathBuf,
    pub frames: u64,
    pub width: u32,
    pub height: u32,
    pub frame_rate: f64,
    /// Scene cuts found by the stabiliser.
    pub scene_cuts: u64,
    /// Frames of the "stabilized" output that the network coloured.
    pub key_frames: u64,
    /// Flicker of the original colour clip (the floor a perfect colouriser would reach).
    pub flicker_ground_truth: f64,
    pub flicker_raw: f64,
    pub flicker_stabilized: f64,
    /// Fraction of pixel pairs of the ground truth that were static enough to enter the
    /// flicker metric.
    pub flicker_static_fraction: f64,
    /// PSNR of the gray input itself (a,b = 0), for reference.
    pub psnr_gray_db: f64,
    pub psnr_raw_db: f64,
    pub psnr_stabilized_db: f64,
    pub colorfulness_ground_truth: f64,
    pub colorfulness_raw: f64,
    pub colorfulness_stabilized: f64,
    /// Live mode's pattern, measured: the network on every other frame, its colour carried
    /// onto the next frame's L, then stabilised.
    pub flicker_carried: f64,
    pub psnr_carried_db: f64,
    pub colorfulness_carried: f64,
    pub flicker_params: FlickerParams,
    pub stabilizer: StabilizerParams,
    pub keyframes: KeyframeParams,
    /// Wall-clock seconds of the evaluation.
    pub seconds: f64,
}

#[derive(Default)]
struct Sums {
    psnr_gray: f64,
    psnr_raw: f64,
    psnr_stab: f64,
    psnr_carried: f64,
    cf_gt: f64,
    cf_raw: f64,
    cf_stab: f64,
    cf_carried: f64,
}

/// Evaluates a colouriser on a colour clip: decodes it, turns each frame into gray (its L
/// with a = b = 0), colourises the gray frames, and measures the per-frame output with and
/// without stabilisation ([`VideoOptions::stabilizer`]; `opts.stabilize` is ignored, both are
/// measured) against the original. Streams like [`super::run`]; writes nothing.
pub fn evaluate(
    input: &VideoInput,
    colorizer: &mut dyn FrameColorizer,
    opts: &VideoOptions,
    cancel: &AtomicBool,
) -> Result<EvalReport, VideoError> {
    let started = Instant::now();
    opts.validate()?;
    let src = open_source(input, opts)?;
    let (width, height, frame_rate) = (src.width, src.height, src.frame_rate);
    let expected = match (src.frame_count, opts.max_frames) {
        (Some(n), Some(m)) => Some(n.min(m)),
        (n, m) => n.or(m),
    };
    let progress = progress_bar(expected, opts.quiet);
    let flicker_params = FlickerParams {
        scene_cut: opts.stabilizer.scene_cut.clone(),
        ..FlickerParams::default()
    };
    let mut meters = [(); 4].map(|_| FlickerMeter::new(flicker_params.clone()));
    let mut stabilizer = Stabilizer::new(opts.stabilizer.clone());
    let mut keys = Keyframer::new(opts.keyframes.clone());
    // Live mode's pattern: the network's colour on even frames, carried onto odd ones.
    let mut carrier = Stabilizer::new(opts.stabilizer.clone());
    let mut carried_ab: Option<(Vec<f32>, Vec<f32>)> = None;
    let mut sums = Sums::default();
    let mut frames = 0u64;
    let (batch_size, max_frames, cap) = (opts.batch_size, opts.max_frames, opts.channel_batches);
    let path = src.path.clone();

    let (decoded, evaluated) = std::thread::scope(|s| {
        let (tx, rx) = sync_channel::<Batch<RgbImage>>(cap);
        let path = &path;
        let decoder = s.spawn(move || decode_stage(src.source, path, tx, batch_size, max_frames, cancel));
        let mut body = || -> Result<(), Stop> {
            loop {
                let Ok(msg) = rx.recv() else {
                    return Err(Stop::Halted);
                };
                let Some(batch) = msg else { return Ok(()) };
                if cancel.load(Ordering::Relaxed) {
                    return Err(Stop::Failed(VideoError::Cancelled));
                }
                let truth: Vec<LabImage> = batch.iter().map(LabImage::from_rgb8).collect();
                let grays: Vec<RgbImage> = truth.iter().map(gray_from_l).collect();
                let preds = colorize_checked(colorizer, &grays, frames, None)?;
                for (((frame, gt), gray), raw) in batch.iter().zip(&truth).zip(&grays).zip(preds) {
                    let mut live = match &carried_ab {
                        Some((a, b)) if frames % 2 == 1 => LabImage {
                            width: raw.width,
                            height: raw.height,
                            l: raw.l.clone(),
                            a: a.clone(),
                            b: b.clone(),
                        },
                        _ => {
                            carried_ab = Some((raw.a.clone(), raw.b.clone()));
                            raw.clone()
                        }
                    };
                    carrier.process(&mut live);
                    let live_rgb = live.to_rgb8();
                    meters[3].push(&LabImage::from_rgb8(&live_rgb));
                    sums.psnr_carried += crate::metrics::psnr(frame, &live_rgb).unwrap_or(0.0);
                    sums.cf_carried += crate::metrics::colourfulness(&live_rgb);
                    let raw_rgb = raw.to_rgb8();
                    // What `tinct video` writes: key frames coloured, the others carried.
                    let mut stab = if keys.is_key(&raw.l, raw.width, raw.height) {
                        keys.keep(&raw);
                        raw
                    } else {
                        let (w, h) = (raw.width, raw.height);
                        keys.carry(raw.l, w, h).ok_or_else(|| {
                            Stop::Failed(VideoError::ColorizerContract("a frame had no key frame".into()))
                        })?
                    };
                    stabilizer.process(&mut stab);
                    let stab_rgb = stab.to_rgb8();
                    meters[0].push(gt);
                    meters[1].push(&LabImage::from_rgb8(&raw_rgb));
                    meters[2].push(&LabImage::from_rgb8(&stab_rgb));
                    sums.psnr_gray += crate::metrics::psnr(frame, gray).unwrap_or(0.0);
                    sums.psnr_raw += crate::metrics::psnr(frame, &raw_rgb).unwrap_or(0.0);
                    sums.psnr_stab += crate::metrics::psnr(frame, &stab_rgb).unwrap_or(0.0);
                    sums.cf_gt += crate::metrics::colourfulness(frame);
                    sums.cf_raw += crate::metrics::colourfulness(&raw_rgb);
                    sums.cf_stab += crate::metrics::colourfulness(&stab_rgb);
                    frames += 1;
                }
                progress.inc(batch.len() as u64);
            }
        };
        let evaluated = body();
        drop(rx);
        let decoded = decoder.join().unwrap_or_else(|p| std::panic::resume_unwind(p));
        (decoded, evaluated)
    });
    if let Some(err) = first_failure([decoded.err(), evaluated.err()], cancel) {
        progress.abandon();
        return Err(err);
    }
    progress.finish_and_clear();
    let mean = |v: f64| if frames == 0 { 0.0 } else { v / frames as f64 };
    Ok(EvalReport {
        input: path,
        frames,
        width,
        height,
        frame_rate: frame_rate.as_f64(),
        scene_cuts: stabilizer.scene_cuts(),
        key_frames: keys.keys(),
        flicker_ground_truth: meters[0].value(),
        flicker_raw: meters[1].value(),
        flicker_stabilized: meters[2].value(),
        flicker_static_fraction: meters[0].static_fraction(),
        psnr_gray_db: mean(sums.psnr_gray),
        psnr_raw_db: mean(sums.psnr_raw),
        psnr_stabilized_db: mean(sums.psnr_stab),
        colorfulness_ground_truth: mean(sums.cf_gt),
        colorfulness_raw: mean(sums.cf_raw),
        colorfulness_stabilized: mean(sums.cf_stab),
        flicker_carried: meters[3].value(),
        psnr_carried_db: mean(sums.psnr_carried),
        colorfulness_carried: mean(sums.cf_carried),
        flicker_params,
        stabilizer: opts.stabilizer.clone(),
        keyframes: opts.keyframes.clone(),
        seconds: started.elapsed().as_secs_f64(),
    })
}
