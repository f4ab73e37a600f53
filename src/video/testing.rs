//! Helpers for tests, examples and benchmarks: a deterministic synthetic colouriser, a
//! synthetic clip maker (ffmpeg `lavfi` sources) and peak-RSS readings from `/proc`.

use std::ffi::OsStr;
use std::path::Path;
use std::process::{Command, Stdio};

use image::RgbImage;

use super::FrameColorizer;
use super::error::VideoError;
use super::ffmpeg::{FfmpegTools, file_arg};
use crate::color::LabImage;
use crate::color::l_plane_rgb8 as l_plane;

/// A deterministic stand-in for the network: a,b are a smooth function of L, plus (when
/// `noise > 0`) a per-frame random offset and per-pixel random noise of that amplitude (in
/// a,b units), which makes the output flicker like an unstable colouriser. The chroma is
/// scaled down towards L = 0 and L = 100 so that colours stay inside the sRGB gamut.
#[derive(Clone, Debug)]
pub struct SyntheticColorizer {
    /// Amplitude of the random part, in a,b units.
    pub noise: f32,
    /// Seed of the noise.
    pub seed: u64,
    frame: u64,
}

impl SyntheticColorizer {
    pub fn new(noise: f32, seed: u64) -> Self {
        Self { noise, seed, frame: 0 }
    }
}

/// SplitMix64: a tiny, good-enough hash for reproducible noise.
fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// Uniform in [-1, 1).
fn unit(x: u64) -> f32 {
    (splitmix(x) >> 40) as f32 / (1u64 << 23) as f32 - 1.0
}

impl FrameColorizer for SyntheticColorizer {
    fn colorize_batch(&mut self, frames: &[RgbImage]) -> anyhow::Result<Vec<LabImage>> {
        let mut out = Vec::with_capacity(frames.len());
        for frame in frames {
            let key = splitmix(self.seed ^ self.frame.wrapping_mul(0x2545_f491_4f6c_dd1d));
            self.frame += 1;
            let l = l_plane(frame);
            let (ga, gb) = (unit(key) * 0.5, unit(key ^ 1) * 0.5);
            let noise = self.noise;
            let (a, b): (Vec<f32>, Vec<f32>) = l
                .iter()
                .enumerate()
                .map(|(i, &l)| {
                    let k = (l * (100.0 - l) / 2500.0).clamp(0.0, 1.0);
                    let (pa, pb) = if noise > 0.0 {
                        let h = splitmix(key ^ (i as u64).wrapping_mul(0x9e37_79b9));
                        (unit(h) * 0.5, unit(h ^ 0x55) * 0.5)
                    } else {
                        (0.0, 0.0)
                    };
                    let a = k * (25.0 * (l / 9.0).sin() + noise * (ga + pa));
                    let b = k * (25.0 * (l / 13.0).cos() + noise * (gb + pb));
                    (a, b)
                })
                .unzip();
            out.push(LabImage {
                width: frame.width(),
                height: frame.height(),
                l,
                a,
                b,
            });
        }
        Ok(out)
    }
}

/// Runs `ffmpeg` with `args` (after `-nostdin -hide_banner -loglevel error -y`).
pub fn run_ffmpeg<S: AsRef<OsStr>>(tools: &FfmpegTools, args: &[S]) -> Result<(), VideoError> {
    let out = Command::new(&tools.ffmpeg)
        .args(["-nostdin", "-hide_banner", "-loglevel", "error", "-y"])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| VideoError::FfmpegMissing {
            program: tools.ffmpeg.display().to_string(),
            detail: e.to_string(),
        })?;
    if out.status.success() {
        Ok(())
    } else {
        Err(VideoError::Encode {
            path: tools.ffmpeg.clone(),
            detail: String::from_utf8_lossy(&out.stderr).trim().replace('\n', "; "),
        })
    }
}

/// A synthetic clip: ffmpeg's `testsrc` pattern (moving, with a frame counter), H.264
/// (`yuv420p`, or `yuv444p` for odd sizes), optionally with a 440 Hz AAC sine track.
#[derive(Clone, Debug)]
pub struct ClipSpec {
    pub width: u32,
    pub height: u32,
    pub rate: u32,
    pub frames: u64,
    pub audio: bool,
    /// x264 preset used to write it.
    pub preset: String,
}

impl Default for ClipSpec {
    /// 64x48, 10 fps, 10 frames, with audio, `ultrafast`.
    fn default() -> Self {
        Self {
            width: 64,
            height: 48,
            rate: 10,
            frames: 10,
            audio: true,
            preset: "ultrafast".into(),
        }
    }
}

/// Writes the synthetic clip `spec` to `path`.
pub fn synthetic_clip(tools: &FfmpegTools, path: &Path, spec: &ClipSpec) -> Result<(), VideoError> {
    let ClipSpec {
        width,
        height,
        rate,
        frames,
        audio,
        ref preset,
    } = *spec;
    let pix = if width % 2 == 1 || height % 2 == 1 {
        "yuv444p"
    } else {
        "yuv420p"
    };
    let mut args: Vec<std::ffi::OsString> = Vec::new();
    let mut push = |s: &str| args.push(s.into());
    push("-f");
    push("lavfi");
    push("-i");
    push(&format!("testsrc=size={width}x{height}:rate={rate}"));
    if audio {
        push("-f");
        push("lavfi");
        push("-i");
        push("sine=frequency=440:sample_rate=44100");
        push("-c:a");
        push("aac");
        push("-shortest");
    }
    for s in [
        "-frames:v",
        &frames.to_string(),
        "-c:v",
        "libx264",
        "-preset",
        preset,
        "-pix_fmt",
        pix,
    ] {
        push(s);
    }
    if audio {
        push("-t");
        push(&format!("{:.6}", frames as f64 / f64::from(rate)));
    }
    args.push(file_arg(path));
    run_ffmpeg(tools, &args)
}

fn proc_status_kib(key: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(key))?;
    line[key.len()..].trim().trim_end_matches("kB").trim().parse().ok()
}

/// Peak resident set size of this process so far (`VmHWM` in `/proc/self/status`), in KiB.
/// `None` where `/proc` is not available. Child processes (ffmpeg) are not included.
pub fn peak_rss_kib() -> Option<u64> {
    proc_status_kib("VmHWM:")
}

/// Current resident set size (`VmRSS`), in KiB.
pub fn current_rss_kib() -> Option<u64> {
    proc_status_kib("VmRSS:")
}

/// Resets the peak RSS to the current RSS (writes `5` to `/proc/self/clear_refs`, Linux ≥ 4.0);
/// returns whether that worked.
pub fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}
