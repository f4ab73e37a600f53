//! Video colourisation (`tinct video IN -o OUT`).
//!
//! # Engine
//! The Debian `ffmpeg`/`ffprobe` programs, driven through pipes: `ffprobe -print_format json`
//! describes the input, one `ffmpeg` decodes it to raw `rgb24` frames on its stdout, another
//! reads raw `rgb24` frames on its stdin and writes the output at the same size and frame rate
//! (H.264 `yuv420p` CRF 18 for `.mp4`/`.m4v`/`.mov`/`.mkv`, VP9 for `.webm`, ffmpeg's default
//! codec otherwise), tagged BT.709. The input's audio is copied unchanged (`-map 1:a? -c:a
//! copy`) or, when the container refuses that codec, re-encoded (AAC; Opus for WebM).
//! Frames with an odd width or height are written as `yuv444p` by default (4:2:0 cannot
//! represent odd sizes); [`OddSizePolicy::PadToEven`] pads one black row/column instead.
//! Image sequences work as input ([`VideoInput::Frames`]) and output ([`VideoOutput::Frames`],
//! `frame-000001.png`, ...); a frame-to-frame run needs no ffmpeg at all.
//!
//! # Pipeline
//! Three threads joined by bounded channels ([`VideoOptions::channel_batches`] batches each),
//! so memory does not grow with the length of the video:
//! decode (ffmpeg or image files) → colourise + stabilise (the calling thread, which owns the
//! [`FrameColorizer`]) → Lab→RGB + encode (ffmpeg or PNG files). The output is written under
//! a temporary name next to it (`.OUT.partial.mp4`, or the directory `.OUT.partial`) and
//! renamed only on success; on error or cancellation the ffmpeg children are killed and the
//! temporary output is removed.
//!
//! # Luminance
//! The output's L is the input's L: the pipeline overwrites the L plane the colouriser returns
//! with the exact L of the input frame, and the stabiliser changes only a,b. The Lab→8-bit RGB
//! conversion (with gamut clipping) and the video codec are the only losses.
//!
//! # Temporal consistency
//! See [`stabilize`]: a luminance-gated exponential moving average of a,b with scene-cut
//! resets. A global motion compensation is available ([`StabilizerParams::motion`]) but off
//! by default: on the sample clips it did not lower the flicker metric (it raised it on
//! panning shots, while raising PSNR; see its documentation).
//!
//! # Metrics
//! [`metrics`] has the flicker metric, PSNR, colourfulness and [`evaluate`], which runs the
//! whole comparison on a colour clip.

mod error;
pub mod feed;
pub mod ffmpeg;
pub mod frames;
pub mod keyframe;
pub mod live;
pub mod metrics;
mod pipeline;
pub mod stabilize;
#[cfg(test)]
pub mod testing;

#[cfg(test)]
mod tests;

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use serde::Serialize;

pub use error::VideoError;
pub use feed::{FeedFrame, FeedStatus, LiveFeed};
pub use ffmpeg::{AudioMode, FfmpegTools, VideoInfo, probe};
pub use keyframe::{KeyframeParams, Keyframer};
pub use live::{LiveOptions, LiveSink, LiveSource, LiveStats, run_live};
pub use metrics::{EvalReport, evaluate, flicker};
pub use pipeline::{RunSummary, run};
pub use stabilize::{SceneCutParams, Stabilizer, StabilizerParams};

/// Colourises a batch of frames at full resolution. Returns, per frame, a LabImage whose L plane is the
/// frame's own L and whose a,b are the prediction.
///
/// Frames arrive in display order, in batches of up to [`VideoOptions::batch_size`]; the
/// input frames may be colour (only their L matters). The video pipeline replaces the
/// returned L plane by the exact L of the input frame, so an implementation may return an
/// approximate L, but it must return one image per frame, of the frame's size.
pub trait FrameColorizer: Send {
    fn colorize_batch(&mut self, frames: &[image::RgbImage]) -> anyhow::Result<Vec<crate::color::LabImage>>;
}

/// Video frames go through the same path as images, a batch at a time, with any method.
impl<T: crate::pipeline::Colorize> FrameColorizer for T {
    fn colorize_batch(&mut self, frames: &[image::RgbImage]) -> anyhow::Result<Vec<crate::color::LabImage>> {
        use crate::color::LabImage;
        // Only L is read: a and b of the frames would be computed for nothing.
        let labs: Vec<LabImage> = frames.iter().map(LabImage::lightness_from_rgb8).collect();
        self.colorize_labs(&labs)
    }
}

/// A frame rate as an exact ratio (`30000/1001` for NTSC).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct FrameRate {
    pub num: u32,
    pub den: u32,
}

impl FrameRate {
    /// `num/den` frames per second; `None` when either is zero.
    pub const fn new(num: u32, den: u32) -> Option<Self> {
        if num == 0 || den == 0 {
            None
        } else {
            Some(Self { num, den })
        }
    }

    /// Frames per second as a float.
    pub fn as_f64(self) -> f64 {
        f64::from(self.num) / f64::from(self.den)
    }

    /// Parses ffprobe's `num/den` (`0/0` and other degenerate values give `None`).
    pub fn parse_ratio(s: &str) -> Option<Self> {
        let (n, d) = s.trim().split_once('/')?;
        let (n, d) = (n.trim().parse::<u64>().ok()?, d.trim().parse::<u64>().ok()?);
        let g = gcd(n, d);
        if g == 0 {
            return None;
        }
        Self::new(u32::try_from(n / g).ok()?, u32::try_from(d / g).ok()?)
    }
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// 25 frames per second, the default rate of image-sequence input.
impl Default for FrameRate {
    fn default() -> Self {
        Self { num: 25, den: 1 }
    }
}

impl fmt::Display for FrameRate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.den == 1 {
            write!(f, "{}", self.num)
        } else {
            write!(f, "{}/{}", self.num, self.den)
        }
    }
}

/// Parses `25`, `29.97` (taken as `30000/1001`, likewise 23.976, 59.94, ...), `12.5` or `30000/1001`.
impl FromStr for FrameRate {
    type Err = VideoError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || VideoError::InvalidOption(format!("`{s}` is not a frame rate (e.g. 25, 29.97 or 30000/1001)"));
        if s.contains('/') {
            return Self::parse_ratio(s).ok_or_else(bad);
        }
        let v: f64 = s.trim().parse().map_err(|_| bad())?;
        if !v.is_finite() || v <= 0.0 || v > 10_000.0 {
            return Err(bad());
        }
        for k in [24u32, 30, 48, 60, 120, 240] {
            if (v - f64::from(k) * 1000.0 / 1001.0).abs() < 0.006 {
                return Ok(Self {
                    num: k * 1000,
                    den: 1001,
                });
            }
        }
        let milli = (v * 1000.0).round() as u64;
        let g = gcd(milli, 1000);
        Self::new((milli / g) as u32, (1000 / g) as u32).ok_or_else(bad)
    }
}

/// What to do with frames whose width or height is odd (H.264/VP9 4:2:0 cannot store them).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub enum OddSizePolicy {
    /// Keep the exact size and use 4:4:4 chroma (`yuv444p`; H.264 High 4:4:4 profile, which
    /// some hardware players and browsers do not play). The default.
    #[default]
    Yuv444,
    /// Keep 4:2:0 and pad the right/bottom edge with one black column/row.
    PadToEven,
}

/// What to read.
#[derive(Clone, Debug, PartialEq)]
pub enum VideoInput {
    /// A video file, read with ffmpeg.
    File(PathBuf),
    /// A directory of numbered images (`--from-frames DIR`), read in natural order
    /// (`2.png` before `10.png`) at `frame_rate` (CLI default 25, [`FrameRate::default`]).
    Frames { dir: PathBuf, frame_rate: FrameRate },
}

/// What to write.
#[derive(Clone, Debug, PartialEq)]
pub enum VideoOutput {
    /// A video file; the extension picks the container and codec.
    File(PathBuf),
    /// A directory of `frame-000001.png`, ... (`--to-frames DIR`).
    Frames(PathBuf),
}

/// Options of [`run`] and [`evaluate`]. `VideoOptions::default()` gives the documented defaults.
#[derive(Clone, Debug)]
pub struct VideoOptions {
    /// Temporal stabilisation of a,b (see [`stabilize`]). Default true (`--no-stabilize` turns it off).
    pub stabilize: bool,
    /// Parameters of the stabiliser. Default [`StabilizerParams::default`].
    pub stabilizer: StabilizerParams,
    /// Which frames go through the network (see [`keyframe`]). Default
    /// [`KeyframeParams::default`].
    pub keyframes: KeyframeParams,
    /// Frames per call of [`FrameColorizer::colorize_batch`]. Default 8.
    pub batch_size: usize,
    /// Capacity of each of the two inter-thread channels, in batches. Default 2. Memory is
    /// bounded by the frames in flight: about `channel_batches + 2` batches of RGB frames
    /// (3 bytes/pixel) before the colouriser and `channel_batches + 2` batches of Lab frames
    /// (12 bytes/pixel) after it, whatever the length of the video (measured at 854x480 with
    /// the defaults: peak RSS 137 MiB for 100 frames, 173 MiB for 3000).
    pub channel_batches: usize,
    /// x264 constant rate factor (lower is better quality; VP9 uses `crf + 13`). Default 17.
    pub crf: u8,
    /// x264 preset. Default `veryfast`: at CRF 17 it writes the same size as `medium` at
    /// CRF 18, 1.4 dB lower (48.7 against 50.1 dB PSNR to the source on an 854x480 clip), in a
    /// third of the encoder's CPU time.
    pub preset: String,
    /// Odd frame sizes. Default [`OddSizePolicy::Yuv444`].
    pub odd_size: OddSizePolicy,
    /// Stop after this many frames (audio is trimmed to match). Default `None` (all).
    pub max_frames: Option<u64>,
    /// Replace an existing output. Default false.
    pub overwrite: bool,
    /// No progress bar. Default false; the bar is also hidden when stderr is not a terminal.
    pub quiet: bool,
    /// The ffmpeg programs. Default `ffmpeg` and `ffprobe` on `PATH`.
    pub tools: FfmpegTools,
}

impl Default for VideoOptions {
    fn default() -> Self {
        Self {
            stabilize: true,
            stabilizer: StabilizerParams::default(),
            keyframes: KeyframeParams::default(),
            batch_size: 8,
            channel_batches: 2,
            crf: 17,
            preset: "veryfast".into(),
            odd_size: OddSizePolicy::default(),
            max_frames: None,
            overwrite: false,
            quiet: false,
            tools: FfmpegTools::default(),
        }
    }
}

impl VideoOptions {
    pub(crate) fn validate(&self) -> Result<(), VideoError> {
        if self.batch_size == 0 {
            return Err(VideoError::InvalidOption("batch size must be at least 1".into()));
        }
        if self.channel_batches == 0 {
            return Err(VideoError::InvalidOption(
                "channel capacity must be at least 1 batch".into(),
            ));
        }
        if self.crf > 51 {
            return Err(VideoError::InvalidOption(format!("crf {} is outside 0..=51", self.crf)));
        }
        if self.preset.is_empty() || !self.preset.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(VideoError::InvalidOption(format!(
                "`{}` is not an x264 preset",
                self.preset
            )));
        }
        let p = &self.stabilizer;
        if !(0.0..1.0).contains(&p.w_max) || p.sigma_l.is_nan() || p.sigma_l <= 0.0 {
            return Err(VideoError::InvalidOption(
                "stabiliser needs 0 <= w_max < 1 and sigma_l > 0".into(),
            ));
        }
        if self.keyframes.every == 0 || self.keyframes.max_dl.is_nan() || self.keyframes.max_dl < 0.0 {
            return Err(VideoError::InvalidOption(
                "key frames need every >= 1 and a mean L change >= 0".into(),
            ));
        }
        if self.max_frames == Some(0) {
            return Err(VideoError::InvalidOption("max frames must be at least 1".into()));
        }
        Ok(())
    }
}
