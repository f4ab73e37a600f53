//! The streaming pipeline: decode → colourise + stabilise → encode, on three threads joined
//! by bounded channels, with staged (temporary-name) output and cancellation.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::time::Instant;

use image::RgbImage;
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;

use super::error::VideoError;
use super::ffmpeg::{self, AudioMode, Decoder, EncodeSpec, Encoder, VideoInfo};
use super::frames::{self, FrameDirReader, FrameDirWriter};
use super::keyframe::Keyframer;
use super::stabilize::Stabilizer;
use super::{FrameColorizer, FrameRate, VideoInput, VideoOptions, VideoOutput};
use crate::color::LabImage;

/// What [`run`] did.
#[derive(Clone, Debug, Serialize)]
pub struct RunSummary {
    /// The file or directory written.
    pub output: PathBuf,
    /// Frames written.
    pub frames: u64,
    pub width: u32,
    pub height: u32,
    /// Frame rate of the output.
    pub frame_rate: FrameRate,
    /// Scene cuts found by the stabiliser (0 when stabilisation is off).
    pub scene_cuts: u64,
    /// Frames the network coloured (the key frames); the others carried their colour.
    pub key_frames: u64,
    /// What happened to the input's audio.
    pub audio: AudioMode,
    /// Wall-clock seconds.
    pub seconds: f64,
    /// Complaints ffmpeg printed while decoding but recovered from (damaged packets...).
    pub decoder_warnings: Option<String>,
}

// ---------------------------------------------------------------------------------------------
// Colour conversions, parallel over rows
// ---------------------------------------------------------------------------------------------

// ---------------------------------------------------------------------------------------------
// Sources and sinks
// ---------------------------------------------------------------------------------------------

pub(crate) enum Source {
    Video(Decoder),
    Frames(FrameDirReader),
}

impl Source {
    fn read_frame(&mut self) -> Result<Option<RgbImage>, VideoError> {
        match self {
            Source::Video(d) => d.read_frame(),
            Source::Frames(r) => r.read_frame(),
        }
    }

    fn finish(self, stop_early: bool) -> Result<Option<String>, VideoError> {
        match self {
            Source::Video(d) => d.finish(stop_early),
            Source::Frames(_) => Ok(None),
        }
    }
}

/// An opened input.
pub(crate) struct OpenedSource {
    pub source: Source,
    /// The input path (for messages).
    pub path: PathBuf,
    pub width: u32,
    pub height: u32,
    pub frame_rate: FrameRate,
    pub frame_count: Option<u64>,
    /// Present for video files.
    pub info: Option<VideoInfo>,
}

pub(crate) fn open_source(input: &VideoInput, opts: &VideoOptions) -> Result<OpenedSource, VideoError> {
    match input {
        VideoInput::File(path) => {
            let info = ffmpeg::probe(path, &opts.tools)?;
            let decoder = Decoder::spawn(&info, &opts.tools, opts.max_frames)?;
            Ok(OpenedSource {
                source: Source::Video(decoder),
                path: path.clone(),
                width: info.width,
                height: info.height,
                frame_rate: info.frame_rate,
                frame_count: info.frame_count,
                info: Some(info),
            })
        }
        VideoInput::Frames { dir, frame_rate } => {
            let reader = FrameDirReader::open(dir)?;
            let (width, height) = reader.size();
            Ok(OpenedSource {
                frame_count: Some(reader.len() as u64),
                source: Source::Frames(reader),
                path: dir.clone(),
                width,
                height,
                frame_rate: *frame_rate,
                info: None,
            })
        }
    }
}

enum Sink {
    Video(Encoder),
    Frames(FrameDirWriter),
}

impl Sink {
    fn write_batch(&mut self, frames: &[RgbImage]) -> Result<(), VideoError> {
        match self {
            Sink::Video(e) => frames.iter().try_for_each(|f| e.write_frame(f)),
            Sink::Frames(w) => w.write_batch(frames),
        }
    }

    fn finish(self) -> Result<(), VideoError> {
        match self {
            Sink::Video(e) => e.finish(),
            Sink::Frames(_) => Ok(()),
        }
    }

    fn abort(self) {
        if let Sink::Video(e) = self {
            e.abort();
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Staged output
// ---------------------------------------------------------------------------------------------

/// The output, written under a temporary name next to its final place and moved there by
/// [`StagedOutput::commit`]; dropped uncommitted, it removes the temporary file/directory.
pub(crate) struct StagedOutput {
    pub(crate) partial: PathBuf,
    target: PathBuf,
    dir: bool,
    committed: bool,
}

fn parent_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

impl StagedOutput {
    /// Checks the output path without touching the filesystem; `input_file` is the input
    /// when it is a file, which the output may not be.
    pub(crate) fn plan(output: &VideoOutput, input_file: Option<&Path>, overwrite: bool) -> Result<Self, VideoError> {
        let (target, dir) = match output {
            VideoOutput::File(p) => (p.clone(), false),
            VideoOutput::Frames(p) => (p.clone(), true),
        };
        let unsupported = |detail: &str| VideoError::UnsupportedOutput {
            path: target.clone(),
            detail: detail.into(),
        };
        let Some(name) = target.file_name().map(|n| n.to_string_lossy().into_owned()) else {
            return Err(unsupported("not a file name"));
        };
        let parent = parent_of(&target);
        if !parent.is_dir() {
            return Err(unsupported("its directory does not exist"));
        }
        let exists = target.symlink_metadata().is_ok();
        let partial = if dir {
            if exists && !target.is_dir() {
                return Err(unsupported("exists and is not a directory"));
            }
            let nonempty = std::fs::read_dir(&target)
                .map(|mut d| d.next().is_some())
                .unwrap_or(false);
            if nonempty && !overwrite {
                return Err(VideoError::OutputExists { path: target });
            }
            parent.join(format!(".{name}.partial"))
        } else {
            let Some(ext) = target.extension().map(|e| e.to_string_lossy().into_owned()) else {
                return Err(unsupported(
                    "it has no extension to choose the format by (e.g. .mp4, .mkv, .mov, .webm)",
                ));
            };
            if target.is_dir() {
                return Err(unsupported("it is a directory"));
            }
            if let Some(input) = input_file
                && let (Ok(a), Ok(b)) = (input.canonicalize(), target.canonicalize())
                && a == b
            {
                return Err(VideoError::SameFile { path: target });
            }
            if exists && !overwrite {
                return Err(VideoError::OutputExists { path: target });
            }
            let stem = target
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            parent.join(format!(".{stem}.partial.{ext}"))
        };
        Ok(Self {
            partial,
            target,
            dir,
            committed: true,
        })
    }

    /// Creates the temporary directory (for frame output); from here on, dropping cleans up.
    pub(crate) fn start(&mut self) -> Result<(), VideoError> {
        self.committed = false;
        if self.dir {
            if self.partial.exists() {
                std::fs::remove_dir_all(&self.partial).map_err(|e| VideoError::io(&self.partial, e))?;
            }
            std::fs::create_dir(&self.partial).map_err(|e| VideoError::io(&self.partial, e))?;
        }
        Ok(())
    }

    pub(crate) fn commit(mut self) -> Result<(), VideoError> {
        let io = |p: &Path, e| VideoError::io(p, e);
        if self.dir {
            let nonempty = std::fs::read_dir(&self.target)
                .map(|mut d| d.next().is_some())
                .unwrap_or(false);
            if !nonempty {
                if self.target.is_dir() {
                    std::fs::remove_dir(&self.target).map_err(|e| io(&self.target, e))?;
                }
                std::fs::rename(&self.partial, &self.target).map_err(|e| io(&self.target, e))?;
            } else {
                // Overwriting a directory that has other files: replace only our frame files.
                for entry in std::fs::read_dir(&self.target).map_err(|e| io(&self.target, e))? {
                    let entry = entry.map_err(|e| io(&self.target, e))?;
                    if frames::is_frame_file_name(&entry.file_name().to_string_lossy()) {
                        std::fs::remove_file(entry.path()).map_err(|e| io(&entry.path(), e))?;
                    }
                }
                for entry in std::fs::read_dir(&self.partial).map_err(|e| io(&self.partial, e))? {
                    let entry = entry.map_err(|e| io(&self.partial, e))?;
                    let to = self.target.join(entry.file_name());
                    std::fs::rename(entry.path(), &to).map_err(|e| io(&to, e))?;
                }
                std::fs::remove_dir(&self.partial).map_err(|e| io(&self.partial, e))?;
            }
        } else {
            std::fs::rename(&self.partial, &self.target).map_err(|e| io(&self.target, e))?;
        }
        self.committed = true;
        Ok(())
    }
}

impl Drop for StagedOutput {
    fn drop(&mut self) {
        if !self.committed {
            if self.dir {
                let _ = std::fs::remove_dir_all(&self.partial);
            } else {
                let _ = std::fs::remove_file(&self.partial);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Stages
// ---------------------------------------------------------------------------------------------

/// Why a stage stopped early.
pub(crate) enum Stop {
    /// This stage failed (or saw the cancel flag).
    Failed(VideoError),
    /// A neighbouring stage went away; it reports the reason.
    Halted,
}

impl From<VideoError> for Stop {
    fn from(e: VideoError) -> Self {
        Stop::Failed(e)
    }
}

/// A batch on a channel; `None` marks the clean end of the stream (a channel that closes
/// without it means the sender failed).
pub(crate) type Batch<T> = Option<Vec<T>>;

/// Reads frames, sends them in batches. Returns the number of frames and decoder warnings.
pub(crate) fn decode_stage(
    mut source: Source,
    path: &Path,
    tx: SyncSender<Batch<RgbImage>>,
    batch_size: usize,
    max_frames: Option<u64>,
    cancel: &AtomicBool,
) -> Result<(u64, Option<String>), Stop> {
    let mut batch = Vec::with_capacity(batch_size);
    let mut count = 0u64;
    let mut stopped_early = false;
    loop {
        if cancel.load(Ordering::Relaxed) {
            return Err(Stop::Failed(VideoError::Cancelled));
        }
        if max_frames.is_some_and(|m| count >= m) {
            stopped_early = true;
            break;
        }
        let Some(frame) = source.read_frame()? else {
            break;
        };
        count += 1;
        batch.push(frame);
        if batch.len() == batch_size {
            tx.send(Some(std::mem::replace(&mut batch, Vec::with_capacity(batch_size))))
                .map_err(|_| Stop::Halted)?;
        }
    }
    let warnings = source.finish(stopped_early)?;
    if count == 0 {
        return Err(Stop::Failed(VideoError::NoFrames { path: path.into() }));
    }
    if !batch.is_empty() {
        tx.send(Some(batch)).map_err(|_| Stop::Halted)?;
    }
    tx.send(None).map_err(|_| Stop::Halted)?;
    Ok((count, warnings))
}

/// Calls the colouriser on a batch, checks its answer and puts the frames' exact L back
/// (`ls`, the frames' L planes when already computed).
pub(crate) fn colorize_checked(
    colorizer: &mut dyn FrameColorizer,
    frames: &[RgbImage],
    first: u64,
    ls: Option<Vec<Vec<f32>>>,
) -> Result<Vec<LabImage>, VideoError> {
    let end = first + frames.len() as u64;
    let mut labs = colorizer
        .colorize_batch(frames)
        .map_err(|err| VideoError::Colorizer { first, end, err })?;
    if labs.len() != frames.len() {
        return Err(VideoError::ColorizerContract(format!(
            "returned {} images for {} frames ({first}..{end})",
            labs.len(),
            frames.len()
        )));
    }
    let mut ls = ls.filter(|ls| ls.len() == frames.len()).map(Vec::into_iter);
    for (k, (lab, frame)) in labs.iter_mut().zip(frames).enumerate() {
        let n = frame.width() as usize * frame.height() as usize;
        if (lab.width, lab.height) != frame.dimensions() || lab.a.len() != n || lab.b.len() != n {
            return Err(VideoError::ColorizerContract(format!(
                "frame {} is {}x{} but the colouriser returned a {}x{} image (planes of {}/{} values)",
                first + k as u64,
                frame.width(),
                frame.height(),
                lab.width,
                lab.height,
                lab.a.len(),
                lab.b.len()
            )));
        }
        lab.l = match ls.as_mut().and_then(Iterator::next) {
            Some(l) if l.len() == n => l,
            _ => crate::color::l_plane_rgb8(frame),
        };
    }
    Ok(labs)
}

/// [`colorize_checked`] on the key frames of a batch only; the other frames get the last key
/// frame's colour on their own L (see [`super::keyframe`]).
pub(crate) fn colorize_keyed(
    colorizer: &mut dyn FrameColorizer,
    frames: &[RgbImage],
    first: u64,
    keys: &mut Keyframer,
) -> Result<Vec<LabImage>, VideoError> {
    let ls: Vec<Vec<f32>> = frames.iter().map(crate::color::l_plane_rgb8).collect();
    let is_key: Vec<bool> = ls
        .iter()
        .zip(frames)
        .map(|(l, f)| keys.is_key(l, f.width(), f.height()))
        .collect();
    // The key frames' L planes go with them; the others' stay for carrying.
    let mut key_ls = Vec::new();
    let ls: Vec<Option<Vec<f32>>> = ls
        .into_iter()
        .zip(&is_key)
        .map(|(l, &key)| {
            if key {
                key_ls.push(l);
                None
            } else {
                Some(l)
            }
        })
        .collect();
    let mut coloured = if is_key.iter().all(|&k| k) {
        colorize_checked(colorizer, frames, first, Some(key_ls))?
    } else {
        let key_frames: Vec<RgbImage> = frames
            .iter()
            .zip(&is_key)
            .filter(|(_, k)| **k)
            .map(|(f, _)| f.clone())
            .collect();
        if key_frames.is_empty() {
            Vec::new()
        } else {
            colorize_checked(colorizer, &key_frames, first, Some(key_ls))?
        }
    }
    .into_iter();
    let mut out = Vec::with_capacity(frames.len());
    for ((l, f), key) in ls.into_iter().zip(frames).zip(is_key) {
        let lab = match l {
            None => coloured.next(),
            Some(l) => keys.carry(l, f.width(), f.height()),
        };
        let lab =
            lab.ok_or_else(|| VideoError::ColorizerContract("a frame had no key frame to take colour from".into()))?;
        if key {
            keys.keep(&lab);
        }
        out.push(lab);
    }
    Ok(out)
}

fn colorize_stage(
    rx: Receiver<Batch<RgbImage>>,
    tx: SyncSender<Batch<LabImage>>,
    colorizer: &mut dyn FrameColorizer,
    mut stabilizer: Option<Stabilizer>,
    mut keys: Keyframer,
    cancel: &AtomicBool,
) -> Result<(u64, u64), Stop> {
    let mut next = 0u64;
    loop {
        let Ok(msg) = rx.recv() else {
            return Err(Stop::Halted);
        };
        let Some(frames) = msg else {
            tx.send(None).map_err(|_| Stop::Halted)?;
            return Ok((stabilizer.map_or(0, |s| s.scene_cuts()), keys.keys()));
        };
        if cancel.load(Ordering::Relaxed) {
            return Err(Stop::Failed(VideoError::Cancelled));
        }
        let mut labs = colorize_keyed(colorizer, &frames, next, &mut keys)?;
        next += frames.len() as u64;
        drop(frames);
        if let Some(stab) = stabilizer.as_mut() {
            for lab in &mut labs {
                stab.process(lab);
            }
        }
        tx.send(Some(labs)).map_err(|_| Stop::Halted)?;
    }
}

fn encode_stage(
    rx: Receiver<Batch<LabImage>>,
    mut sink: Sink,
    progress: &ProgressBar,
    cancel: &AtomicBool,
) -> Result<u64, Stop> {
    let mut written = 0u64;
    loop {
        match rx.recv() {
            Ok(Some(labs)) => {
                if cancel.load(Ordering::Relaxed) {
                    sink.abort();
                    return Err(Stop::Failed(VideoError::Cancelled));
                }
                let rgb: Vec<RgbImage> = labs.iter().map(LabImage::to_rgb8).collect();
                drop(labs);
                if let Err(e) = sink.write_batch(&rgb) {
                    sink.abort();
                    return Err(Stop::Failed(e));
                }
                written += rgb.len() as u64;
                progress.inc(rgb.len() as u64);
            }
            Ok(None) => {
                sink.finish()?;
                return Ok(written);
            }
            Err(_) => {
                sink.abort();
                return Err(Stop::Halted);
            }
        }
    }
}

/// A progress bar with frames/s and ETA; hidden when `quiet` or stderr is not a terminal.
pub(crate) fn progress_bar(len: Option<u64>, quiet: bool) -> ProgressBar {
    if quiet || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    match len {
        Some(n) => ProgressBar::new(n).with_style(
            ProgressStyle::with_template(
                "{spinner} {elapsed_precise} [{wide_bar}] {pos}/{len} frames, {per_sec}, ETA {eta}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        ),
        None => ProgressBar::new_spinner().with_style(
            ProgressStyle::with_template("{spinner} {elapsed_precise} {pos} frames, {per_sec}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        ),
    }
}

/// Picks the error to report: cancellation first, then the first stage that failed in its
/// own right (the others only saw a closed channel).
pub(crate) fn first_failure<I: IntoIterator<Item = Option<Stop>>>(stops: I, cancel: &AtomicBool) -> Option<VideoError> {
    let mut halted = false;
    let mut failure = None;
    for stop in stops.into_iter().flatten() {
        match stop {
            Stop::Failed(e) if failure.is_none() => failure = Some(e),
            Stop::Failed(_) => {}
            Stop::Halted => halted = true,
        }
    }
    if cancel.load(Ordering::Relaxed) {
        return Some(VideoError::Cancelled);
    }
    failure.or_else(|| halted.then_some(VideoError::Cancelled))
}

fn join<T>(handle: std::thread::ScopedJoinHandle<'_, T>) -> T {
    handle.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}

/// Colourises `input` into `output`: the whole `tinct video` command.
///
/// Streams with bounded memory (see [`VideoOptions::channel_batches`]), shows a progress bar
/// unless `opts.quiet`, and stops cleanly when `cancel` becomes true (returning
/// [`VideoError::Cancelled`]). The output appears only when everything succeeded.
pub fn run(
    input: &VideoInput,
    output: &VideoOutput,
    colorizer: &mut dyn FrameColorizer,
    opts: &VideoOptions,
    cancel: &AtomicBool,
) -> Result<RunSummary, VideoError> {
    let started = Instant::now();
    opts.validate()?;
    let input_file = match input {
        VideoInput::File(p) => Some(p.as_path()),
        VideoInput::Frames { .. } => None,
    };
    let mut staged = StagedOutput::plan(output, input_file, opts.overwrite)?;
    let src = open_source(input, opts)?;
    let (width, height, frame_rate) = (src.width, src.height, src.frame_rate);

    staged.start()?;
    let (sink, audio) = match output {
        VideoOutput::Frames(_) => (
            Sink::Frames(FrameDirWriter::new(staged.partial.clone())),
            AudioMode::None,
        ),
        VideoOutput::File(target) => {
            let audio = match &src.info {
                Some(info) if info.has_audio() => {
                    if ffmpeg::audio_copy_works(&opts.tools, &info.path, target) {
                        AudioMode::Copied
                    } else {
                        AudioMode::Reencoded(ffmpeg::fallback_audio_codec(target).to_string())
                    }
                }
                _ => AudioMode::None,
            };
            let max_duration = opts
                .max_frames
                .filter(|&m| src.frame_count.is_none_or(|n| m < n))
                .map(|m| m as f64 / frame_rate.as_f64());
            let spec = EncodeSpec {
                width,
                height,
                frame_rate,
                output: staged.partial.clone(),
                final_output: target.clone(),
                audio: src
                    .info
                    .as_ref()
                    .filter(|_| audio != AudioMode::None)
                    .map(|i| (i.path.clone(), audio.clone())),
                video_offset: src.info.as_ref().map_or(0.0, |i| i.video_offset),
                sample_aspect_ratio: src.info.as_ref().and_then(|i| i.sample_aspect_ratio.clone()),
                crf: opts.crf,
                preset: opts.preset.clone(),
                odd_size: opts.odd_size,
                max_duration,
                stream_format: None,
                low_latency: false,
            };
            (Sink::Video(Encoder::spawn(&spec, &opts.tools)?), audio)
        }
    };

    let expected = match (src.frame_count, opts.max_frames) {
        (Some(n), Some(m)) => Some(n.min(m)),
        (n, None) => n,
        (None, Some(_)) => None,
    };
    let progress = progress_bar(expected, opts.quiet);
    let stabilizer = opts.stabilize.then(|| Stabilizer::new(opts.stabilizer.clone()));
    let cap = opts.channel_batches;
    let (batch_size, max_frames) = (opts.batch_size, opts.max_frames);
    let OpenedSource {
        source,
        path: input_path,
        ..
    } = src;

    let (decoded, colorized, encoded) = std::thread::scope(|s| {
        let (tx_frames, rx_frames) = sync_channel::<Batch<RgbImage>>(cap);
        let (tx_labs, rx_labs) = sync_channel::<Batch<LabImage>>(cap);
        let input_path = &input_path;
        let progress = &progress;
        let decoder = std::thread::Builder::new()
            .name("tinct-decode".into())
            .spawn_scoped(s, move || {
                decode_stage(source, input_path, tx_frames, batch_size, max_frames, cancel)
            });
        let encoder = std::thread::Builder::new()
            .name("tinct-encode".into())
            .spawn_scoped(s, move || encode_stage(rx_labs, sink, progress, cancel));
        match (decoder, encoder) {
            (Ok(d), Ok(e)) => {
                let keys = Keyframer::new(opts.keyframes.clone());
                let colorized = colorize_stage(rx_frames, tx_labs, colorizer, stabilizer, keys, cancel);
                (join(d), colorized, join(e))
            }
            // Could not start a thread: the closures (and the children they own) are dropped.
            (d, e) => {
                drop((rx_frames, tx_labs));
                let err = |r: std::io::Error| Stop::Failed(VideoError::io("<thread>", r));
                let d = match d {
                    Ok(h) => join(h),
                    Err(r) => Err(err(r)),
                };
                let e = match e {
                    Ok(h) => join(h),
                    Err(r) => Err(err(r)),
                };
                (d, Err(Stop::Halted), e)
            }
        }
    });

    let (decoded, colorized, encoded) = match (decoded, colorized, encoded) {
        (Ok(d), Ok(c), Ok(e)) if !cancel.load(Ordering::Relaxed) => (d, c, e),
        (d, c, e) => {
            progress.abandon();
            let err = first_failure([d.err(), c.err(), e.err()], cancel);
            return Err(err.unwrap_or(VideoError::Cancelled));
        }
    };
    debug_assert_eq!(decoded.0, encoded);
    staged.commit()?;
    progress.finish_and_clear();
    Ok(RunSummary {
        output: match output {
            VideoOutput::File(p) | VideoOutput::Frames(p) => p.clone(),
        },
        frames: encoded,
        width,
        height,
        frame_rate,
        scene_cuts: colorized.0,
        key_frames: colorized.1,
        audio,
        seconds: started.elapsed().as_secs_f64(),
        decoder_warnings: decoded.1,
    })
}
