//! Live colour: a camera (V4L2), a network stream ffmpeg reads (`udp://`, `rtsp://`, `srt://`,
//! `http://`...) or standard input, coloured as it arrives and written to a file, a stream or
//! standard output, without ever falling behind the source.
//!
//! # Threads
//! ```text
//! ffmpeg (gray Y4M) -> reader -> [queue of `queue` frames] -> colour -> [2] -> encoder -> ffmpeg
//! ```
//! The reader always reads, so neither ffmpeg nor the network buffers grow. When the queue is
//! full its oldest frame is dropped (counted). The colour thread runs the network on a frame
//! when no newer frame is waiting; when one is (it is behind), it carries the last predicted
//! colour forward onto the new frame's L, at most `max_carry` times in a row, and the
//! stabiliser blends it as usual. A watchdog ends the run when the source sends nothing for
//! `timeout`: an error before the first frame, a clean end after it.
//!
//! Without `live` (`--no-live`), nothing is dropped or carried: every frame is coloured and
//! the reader waits for the colour thread (a file read at its own pace).

use std::collections::VecDeque;
use std::ffi::OsString;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use image::GrayImage;
use serde::Serialize;

use super::error::VideoError;
use super::feed::{FeedStatus, LiveFeed};
use super::ffmpeg::{ChildGuard, EncodeSpec, Encoder, FfmpegTools, StderrTail, command, spawn_error, summarize_stderr};
use super::keyframe::{KeyframeParams, Keyframer};
use super::pipeline::StagedOutput;
use super::stabilize::{Stabilizer, StabilizerParams};
use super::{FrameRate, OddSizePolicy, VideoOutput};
use crate::color::LabImage;
use crate::pipeline::Colorize;

/// Where live frames come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LiveSource {
    /// A V4L2 camera (`/dev/video0`).
    Device(PathBuf),
    /// A URL ffmpeg reads.
    Url(String),
    /// Standard input (`-`), in any container ffmpeg recognises.
    Stdin,
    /// A file, read at its own frame rate as if it were live (`tinct video FILE --live`).
    File(PathBuf),
}

/// Whether `s` is a URL (`scheme://...`).
pub fn is_url(s: &str) -> bool {
    s.split_once("://").is_some_and(|(scheme, _)| {
        !scheme.is_empty() && scheme.chars().all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
    })
}

impl LiveSource {
    /// The live source `arg` names (a device, a URL or `-`), or `None` for a file.
    pub fn parse(arg: &str) -> Option<LiveSource> {
        if arg == "-" {
            Some(LiveSource::Stdin)
        } else if arg.starts_with("/dev/video") {
            Some(LiveSource::Device(PathBuf::from(arg)))
        } else if is_url(arg) {
            Some(LiveSource::Url(arg.to_string()))
        } else {
            None
        }
    }

    /// The source as the user named it.
    pub fn describe(&self) -> String {
        match self {
            LiveSource::Device(p) | LiveSource::File(p) => p.display().to_string(),
            LiveSource::Url(u) => u.clone(),
            LiveSource::Stdin => "standard input".into(),
        }
    }

    fn input_args(&self) -> Vec<OsString> {
        let mut a: Vec<OsString> = Vec::new();
        match self {
            LiveSource::Device(p) => {
                a.extend(["-f".into(), "v4l2".into(), "-i".into()]);
                a.push(p.as_os_str().into());
            }
            // Half a second of stream is enough to find a video stream's size (ffmpeg's
            // default, 5 s, would delay the first frame by as much).
            LiveSource::Url(u) => a.extend(
                ["-analyzeduration", "500000", "-probesize", "2000000", "-i"]
                    .map(OsString::from)
                    .into_iter()
                    .chain([u.into()]),
            ),
            LiveSource::Stdin => {
                a.extend(["-analyzeduration", "500000", "-probesize", "2000000", "-i", "pipe:0"].map(OsString::from))
            }
            LiveSource::File(p) => {
                a.extend(["-re".into(), "-i".into()]);
                a.push(super::ffmpeg::file_arg(p));
            }
        }
        a
    }
}

/// Where live colour goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LiveSink {
    /// A video file, written under a temporary name and renamed when the stream ends.
    File(PathBuf),
    /// A URL ffmpeg writes to (MPEG-TS for `udp://`, `srt://`, `tcp://`; RTSP; FLV for RTMP).
    Url(String),
    /// Standard output (`-o -`), as MPEG-TS.
    Stdout,
    /// Viewers of a [`LiveFeed`] (the live page of `tinct serve`): each frame is published
    /// beside the source's gray frame; nothing is written.
    Page(Arc<LiveFeed>),
}

impl LiveSink {
    pub fn parse(arg: &Path) -> LiveSink {
        let s = arg.to_string_lossy();
        if s == "-" {
            LiveSink::Stdout
        } else if is_url(&s) {
            LiveSink::Url(s.into_owned())
        } else {
            LiveSink::File(arg.to_path_buf())
        }
    }

    pub fn describe(&self) -> String {
        match self {
            LiveSink::File(p) => p.display().to_string(),
            LiveSink::Url(u) => u.clone(),
            LiveSink::Stdout => "standard output".into(),
            LiveSink::Page(_) => "the live page".into(),
        }
    }
}

/// The muxer ffmpeg needs to write a stream to `url`.
fn stream_muxer(url: &str) -> &'static str {
    match url.split_once("://").map(|(s, _)| s.to_ascii_lowercase()).as_deref() {
        Some("rtsp" | "rtsps") => "rtsp",
        Some("rtmp" | "rtmps") => "flv",
        Some("rtp") => "rtp_mpegts",
        _ => "mpegts",
    }
}

/// Options of [`run_live`].
#[derive(Clone, Debug)]
pub struct LiveOptions {
    /// Drop and carry frames to keep up with the source (see the module docs). Default true.
    pub live: bool,
    /// Frames waiting for colour before the oldest is dropped. Default 3 (120 ms at 25 fps).
    pub queue: usize,
    /// Most frames in a row that reuse the last predicted colour. Default 3.
    pub max_carry: usize,
    /// How long the source may send nothing: before the first frame an error, after it the
    /// end of the stream. Default 10 s.
    pub timeout: Duration,
    pub stabilize: bool,
    pub stabilizer: StabilizerParams,
    /// Which frames the network colours when it keeps up (see [`super::keyframe`]); the others
    /// carry the key frame's colour. Default [`KeyframeParams::default`].
    pub keyframes: KeyframeParams,
    pub crf: u8,
    /// x264 preset. Default `veryfast`.
    pub preset: String,
    /// Stop after this many frames from the source.
    pub max_frames: Option<u64>,
    pub overwrite: bool,
    pub tools: FfmpegTools,
}

impl Default for LiveOptions {
    fn default() -> Self {
        Self {
            live: true,
            queue: 3,
            max_carry: 3,
            timeout: Duration::from_secs(10),
            stabilize: true,
            stabilizer: StabilizerParams::default(),
            keyframes: KeyframeParams::default(),
            crf: 23,
            preset: "veryfast".into(),
            max_frames: None,
            overwrite: false,
            tools: FfmpegTools::default(),
        }
    }
}

/// What a live run did (`--stats FILE`).
#[derive(Clone, Debug, Serialize)]
pub struct LiveStats {
    pub source: String,
    pub output: String,
    pub width: u32,
    pub height: u32,
    /// The source's declared frame rate.
    pub frame_rate: f64,
    /// Frames read from the source.
    pub frames_in: u64,
    /// Frames written.
    pub frames_out: u64,
    /// Frames dropped because colouring was behind.
    pub dropped: u64,
    /// Frames written with the last predicted colour carried forward (no network run): the
    /// frames between key frames, and those coloured while behind.
    pub carried: u64,
    /// Frames the network coloured.
    pub coloured: u64,
    /// The whole run, start-up included.
    pub seconds: f64,
    /// Frames per second from the source's first frame to the last frame written.
    pub fps_in: f64,
    pub fps_out: f64,
    /// From a frame's arrival from the source to its coloured frame written to the encoder.
    pub latency_ms_p50: f64,
    pub latency_ms_p99: f64,
    pub latency_ms_max: f64,
    /// `end of stream`, `stalled` (nothing for the timeout), `interrupted` or `max frames`.
    pub ended: &'static str,
}

impl LiveStats {
    pub fn write(&self, path: &Path) -> anyhow::Result<()> {
        crate::imageio::write_bytes_atomic(path, &serde_json::to_vec_pretty(self)?)
    }
}

/// A gray frame and when it arrived.
type Frame = (Vec<u8>, Instant);

/// The bounded queue between the reader and the colour thread.
struct FrameQueue {
    state: Mutex<(VecDeque<Frame>, bool)>,
    ready: Condvar,
    space: Condvar,
    cap: usize,
    /// Drop the oldest frame when full (live), or wait for space.
    drop_when_full: bool,
    dropped: AtomicU64,
}

impl FrameQueue {
    fn new(cap: usize, drop_when_full: bool) -> FrameQueue {
        FrameQueue {
            state: Mutex::new((VecDeque::with_capacity(cap + 1), false)),
            ready: Condvar::new(),
            space: Condvar::new(),
            cap: cap.max(1),
            drop_when_full,
            dropped: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, (VecDeque<Frame>, bool)> {
        lock(&self.state)
    }

    /// Adds a frame; returns false once the queue is closed.
    fn push(&self, f: Frame) -> bool {
        let mut s = self.lock();
        while s.0.len() >= self.cap && !s.1 {
            if self.drop_when_full {
                s.0.pop_front();
                self.dropped.fetch_add(1, Ordering::Relaxed);
            } else {
                s = self.space.wait(s).unwrap_or_else(|p| p.into_inner());
            }
        }
        if s.1 {
            return false;
        }
        s.0.push_back(f);
        self.ready.notify_one();
        true
    }

    /// The oldest frame and whether another is already waiting; `None` once closed and empty.
    fn pop(&self) -> Option<(Frame, bool)> {
        let mut s = self.lock();
        loop {
            if let Some(f) = s.0.pop_front() {
                self.space.notify_one();
                return Some((f, !s.0.is_empty()));
            }
            if s.1 {
                return None;
            }
            s = self.ready.wait(s).unwrap_or_else(|p| p.into_inner());
        }
    }

    fn close(&self) {
        self.lock().1 = true;
        self.ready.notify_all();
        self.space.notify_all();
    }
}

/// A YUV4MPEG2 stream of gray (`Cmono`) frames.
struct Y4m<R> {
    r: R,
    width: u32,
    height: u32,
    rate: FrameRate,
}

impl<R: BufRead> Y4m<R> {
    /// Reads the stream header; `None` when the stream ended before it.
    fn open(mut r: R) -> Result<Option<Y4m<R>>, String> {
        let mut line = Vec::new();
        if r.by_ref()
            .take(4096)
            .read_until(b'\n', &mut line)
            .map_err(|e| e.to_string())?
            == 0
        {
            return Ok(None);
        }
        let text = String::from_utf8_lossy(&line);
        let mut tokens = text.split_ascii_whitespace();
        if tokens.next() != Some("YUV4MPEG2") {
            return Err(format!("not a YUV4MPEG2 header: {:?}", text.trim()));
        }
        let (mut width, mut height, mut rate, mut colour) = (0, 0, FrameRate::default(), "420jpeg".to_string());
        for t in tokens {
            let (k, v) = t.split_at(1);
            match k {
                "W" => width = v.parse().unwrap_or(0),
                "H" => height = v.parse().unwrap_or(0),
                "F" => rate = FrameRate::parse_ratio(&v.replace(':', "/")).unwrap_or_default(),
                "C" => colour = v.to_string(),
                _ => {}
            }
        }
        if width == 0 || height == 0 {
            return Err(format!("no frame size in {:?}", text.trim()));
        }
        if colour != "mono" {
            return Err(format!("expected gray (Cmono) frames, got C{colour}"));
        }
        Ok(Some(Y4m { r, width, height, rate }))
    }

    /// The next frame's pixels; `None` at the end of the stream (a frame cut short by the
    /// stream's end is discarded).
    fn next(&mut self) -> Result<Option<Vec<u8>>, String> {
        let mut line = Vec::new();
        if self
            .r
            .by_ref()
            .take(1024)
            .read_until(b'\n', &mut line)
            .map_err(|e| e.to_string())?
            == 0
        {
            return Ok(None);
        }
        if !line.starts_with(b"FRAME") {
            return Err("lost the frame boundary".into());
        }
        let mut buf = vec![0u8; self.width as usize * self.height as usize];
        match self.r.read_exact(&mut buf) {
            Ok(()) => Ok(Some(buf)),
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(None),
            Err(e) => Err(e.to_string()),
        }
    }
}

/// Why the reader stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ended {
    EndOfStream,
    Stalled,
    Interrupted,
    MaxFrames,
}

impl Ended {
    fn as_str(self) -> &'static str {
        match self {
            Ended::EndOfStream => "end of stream",
            Ended::Stalled => "stalled",
            Ended::Interrupted => "interrupted",
            Ended::MaxFrames => "max frames",
        }
    }
}

/// The decoding ffmpeg and what the watchdog and the reader share about it.
struct Decoding {
    process: Mutex<ChildGuard>,
    /// When the last frame (or the stream's header) arrived.
    last_data: Mutex<Instant>,
    /// Why the read stops, once something stops it.
    ended: Mutex<Ended>,
    /// When the run began.
    started: Instant,
}

impl Decoding {
    fn kill(&self) {
        lock(&self.process).kill();
    }
    fn touch(&self, now: Instant) {
        *lock(&self.last_data) = now;
    }
    fn quiet_for(&self) -> Duration {
        lock(&self.last_data).elapsed()
    }
    fn end(&self, why: Ended) {
        *lock(&self.ended) = why;
    }
    fn ended(&self) -> Ended {
        *lock(&self.ended)
    }
}

/// A mutex's value, also after a thread panicked holding it: the threads here only store
/// plain values under their locks, so a poisoned one still holds a usable value.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The percentile `p` (0..=100) of sorted values, nearest rank.
fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Colours `source` into `sink` as it arrives until the stream ends, stalls for
/// `opts.timeout`, reaches `opts.max_frames` or `stop` is set; the output is finished cleanly
/// in every one of those cases.
pub fn run_live(
    source: &LiveSource,
    sink: &LiveSink,
    colorizer: &dyn Colorize,
    opts: &LiveOptions,
    stop: &AtomicBool,
) -> Result<LiveStats, VideoError> {
    let started = Instant::now();
    let src_name = PathBuf::from(source.describe());
    if let LiveSource::Device(p) | LiveSource::File(p) = source
        && !p.exists()
    {
        return Err(VideoError::InputNotFound { path: p.clone() });
    }
    // A file output is written under a temporary name and renamed when the stream ends.
    let staged = match (sink, source) {
        (LiveSink::File(p), LiveSource::File(input)) => Some(StagedOutput::plan(
            &VideoOutput::File(p.clone()),
            Some(input),
            opts.overwrite,
        )?),
        (LiveSink::File(p), _) => Some(StagedOutput::plan(&VideoOutput::File(p.clone()), None, opts.overwrite)?),
        _ => None,
    };
    opts.tools.check()?;
    let mut cmd = command(&opts.tools.ffmpeg);
    cmd.args(["-hide_banner", "-loglevel", "error"]);
    if *source != LiveSource::Stdin {
        cmd.arg("-nostdin");
    }
    cmd.args(source.input_args())
        .args([
            "-map",
            "0:v:0",
            "-an",
            "-sn",
            "-dn",
            "-pix_fmt",
            "gray",
            "-f",
            "yuv4mpegpipe",
            "pipe:1",
        ])
        .stdin(if *source == LiveSource::Stdin {
            Stdio::inherit()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(|e| spawn_error(&opts.tools.ffmpeg, &e))?;
    let stderr = StderrTail::spawn(child.stderr.take());
    let stdout = child.stdout.take().ok_or_else(|| VideoError::Decode {
        path: src_name.clone(),
        detail: "could not capture ffmpeg's output".into(),
    })?;
    let decoding = Decoding {
        process: Mutex::new(ChildGuard { child, reaped: false }),
        last_data: Mutex::new(Instant::now()),
        ended: Mutex::new(Ended::EndOfStream),
        started,
    };
    let reading = AtomicBool::new(true);

    // The watchdog: ends the read on Ctrl-C or when the source goes quiet. Joined by the
    // scope, after `reading` is cleared.
    std::thread::scope(|s| {
        s.spawn(|| {
            while reading.load(Ordering::SeqCst) {
                let why = if stop.load(Ordering::SeqCst) {
                    Some(Ended::Interrupted)
                } else if decoding.quiet_for() > opts.timeout {
                    Some(Ended::Stalled)
                } else {
                    None
                };
                if let Some(why) = why {
                    decoding.end(why);
                    decoding.kill();
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        let out = colour_stream(source, sink, staged, colorizer, opts, (stdout, stderr), &decoding);
        reading.store(false, Ordering::SeqCst);
        out
    })
}

/// The running counts of a live run, for the page's status.
struct Counts<'a> {
    frames_in: &'a AtomicU64,
    dropped: &'a AtomicU64,
    carried: &'a AtomicU64,
    coloured: &'a AtomicU64,
    width: u32,
    height: u32,
    rate: f64,
}

/// Where the colour thread's frames go.
enum Output {
    Encoder(Encoder),
    /// The feed, and when the frames of about the last second were written.
    Page {
        feed: Arc<LiveFeed>,
        recent: VecDeque<Instant>,
    },
}

impl Output {
    /// Writes the coloured frame `lab` (the `frames_out`-th); `gray` is the source's frame.
    fn write(
        &mut self,
        lab: &LabImage,
        gray: Option<&GrayImage>,
        latency_ms: f64,
        counts: &Counts,
        frames_out: u64,
    ) -> Result<(), VideoError> {
        match self {
            Output::Encoder(e) => e.write_frame(&lab.to_rgb8()),
            Output::Page { feed, recent } => {
                let now = Instant::now();
                recent.push_back(now);
                while recent.len() > 2 && now.duration_since(recent[0]) > Duration::from_secs(1) {
                    recent.pop_front();
                }
                let span = now.duration_since(recent[0]).as_secs_f64();
                let status = FeedStatus {
                    width: counts.width,
                    height: counts.height,
                    frame_rate: counts.rate,
                    frames_in: counts.frames_in.load(Ordering::Relaxed),
                    frames_out,
                    dropped: counts.dropped.load(Ordering::Relaxed),
                    carried: counts.carried.load(Ordering::Relaxed),
                    coloured: counts.coloured.load(Ordering::Relaxed),
                    fps_out: if span > 0.0 {
                        (recent.len() - 1) as f64 / span
                    } else {
                        0.0
                    },
                    latency_ms,
                    ..FeedStatus::default()
                };
                match gray {
                    Some(gray) if feed.watched() => feed.publish(Some((gray, &lab.to_rgb8())), status),
                    _ => feed.publish(None, status),
                }
                Ok(())
            }
        }
    }

    fn finish(self) -> Result<(), VideoError> {
        match self {
            Output::Encoder(e) => e.finish(),
            Output::Page { .. } => Ok(()),
        }
    }
}

/// [`run_live`] once ffmpeg reads the source: the stream's header, the output, the three
/// threads, the statistics.
fn colour_stream(
    source: &LiveSource,
    sink: &LiveSink,
    mut staged: Option<StagedOutput>,
    colorizer: &dyn Colorize,
    opts: &LiveOptions,
    (stdout, stderr): (std::process::ChildStdout, StderrTail),
    decoding: &Decoding,
) -> Result<LiveStats, VideoError> {
    let src_name = PathBuf::from(source.describe());
    let mut reader = BufReader::with_capacity(1 << 20, stdout);
    let header = Y4m::open(&mut reader);
    let y4m = match header {
        Ok(Some(y)) => y,
        other => {
            let why = decoding.ended();
            decoding.kill();
            let lines = stderr.collect();
            return Err(match (why, other) {
                (Ended::Interrupted, _) => VideoError::Cancelled,
                (Ended::Stalled, _) => VideoError::Decode {
                    path: src_name,
                    detail: format!("no video arrived within {} s", opts.timeout.as_secs_f64()),
                },
                (_, Err(e)) => VideoError::Decode {
                    path: src_name,
                    detail: e,
                },
                _ => VideoError::Decode {
                    detail: if lines.is_empty() {
                        "the source ended before its first frame".into()
                    } else {
                        summarize_stderr(&lines, &src_name)
                    },
                    path: src_name,
                },
            });
        }
    };
    let (width, height, rate) = (y4m.width, y4m.height, y4m.rate);
    let first_frame = Instant::now();
    decoding.touch(Instant::now());

    // The output.
    let (output, final_output, stream_format) = match (sink, staged.as_mut()) {
        (LiveSink::File(p), Some(staged)) => {
            staged.start()?;
            (staged.partial.clone(), p.clone(), None)
        }
        (LiveSink::Url(u), _) => (PathBuf::from(u), PathBuf::from(u), Some(stream_muxer(u).to_string())),
        _ => (PathBuf::from("pipe:1"), PathBuf::from("-"), Some("mpegts".to_string())),
    };
    let mut output = match sink {
        LiveSink::Page(feed) => Output::Page {
            feed: feed.clone(),
            recent: VecDeque::new(),
        },
        _ => Output::Encoder(Encoder::spawn(
            &EncodeSpec {
                width,
                height,
                frame_rate: rate,
                output,
                final_output: final_output.clone(),
                audio: None,
                video_offset: 0.0,
                sample_aspect_ratio: None,
                crf: opts.crf,
                preset: opts.preset.clone(),
                odd_size: OddSizePolicy::PadToEven,
                max_duration: None,
                stream_format,
                low_latency: true,
            },
            &opts.tools,
        )?),
    };
    let keep_gray = matches!(output, Output::Page { .. });

    let queue = FrameQueue::new(opts.queue, opts.live);
    let frames_in = AtomicU64::new(0);
    let (carried, coloured) = (AtomicU64::new(0), AtomicU64::new(0));
    let max_frames = opts.max_frames;
    let result = std::thread::scope(|s| -> Result<(Vec<f64>, Option<Instant>), VideoError> {
        let (queue, frames_in) = (&queue, &frames_in);
        let read = s.spawn(move || -> Result<(), String> {
            let mut y4m = y4m;
            let out = loop {
                match y4m.next() {
                    Ok(Some(px)) => {
                        let now = Instant::now();
                        decoding.touch(now);
                        let n = frames_in.fetch_add(1, Ordering::Relaxed) + 1;
                        if !queue.push((px, now)) {
                            break Ok(());
                        }
                        if max_frames.is_some_and(|m| n >= m) {
                            decoding.end(Ended::MaxFrames);
                            break Ok(());
                        }
                    }
                    Ok(None) => break Ok(()),
                    Err(e) => break Err(e),
                }
            };
            queue.close();
            out
        });
        let (tx, rx) = std::sync::mpsc::sync_channel::<(LabImage, Option<GrayImage>, Instant)>(2);
        let counts = Counts {
            frames_in,
            dropped: &queue.dropped,
            carried: &carried,
            coloured: &coloured,
            width,
            height,
            rate: rate.as_f64(),
        };
        let encode = s.spawn(move || -> Result<(Output, Vec<f64>, Option<Instant>), VideoError> {
            let (mut latencies, mut last) = (Vec::new(), None);
            for (lab, gray, arrived) in rx {
                let latency = arrived.elapsed().as_secs_f64() * 1000.0;
                output.write(&lab, gray.as_ref(), latency, &counts, latencies.len() as u64 + 1)?;
                latencies.push(latency);
                last = Some(Instant::now());
            }
            Ok((output, latencies, last))
        });
        // The colour thread: this one.
        let mut stabilizer = opts.stabilize.then(|| Stabilizer::new(opts.stabilizer.clone()));
        let mut in_a_row = 0;
        let mut failed = None;
        let mut keys = Keyframer::new(opts.keyframes.clone());
        while let Some(((px, arrived), behind)) = queue.pop() {
            let gray = GrayImage::from_raw(width, height, px).expect("a frame has width x height pixels");
            let lab = LabImage::from_gray8(&gray);
            let gray = keep_gray.then_some(gray);
            let key = keys.is_key(&lab.l, width, height);
            let catch_up = key && opts.live && behind && in_a_row < opts.max_carry;
            let mut out = match (!key || catch_up).then(|| keys.carry_ab(width, height)).flatten() {
                Some((a, b)) => {
                    if catch_up {
                        in_a_row += 1;
                    }
                    carried.fetch_add(1, Ordering::Relaxed);
                    LabImage { a, b, ..lab }
                }
                None => {
                    in_a_row = 0;
                    coloured.fetch_add(1, Ordering::Relaxed);
                    let n = coloured.load(Ordering::Relaxed);
                    let out = match colorizer.colorize_labs(std::slice::from_ref(&lab)).map(|mut v| v.pop()) {
                        Ok(Some(out)) if out.a.len() == lab.l.len() && out.b.len() == lab.l.len() => {
                            LabImage { l: lab.l, ..out }
                        }
                        Ok(_) => {
                            failed = Some(VideoError::ColorizerContract(format!(
                                "frame {n}: the colouriser did not return one {width}x{height} image"
                            )));
                            break;
                        }
                        Err(err) => {
                            failed = Some(VideoError::Colorizer {
                                first: n,
                                end: n + 1,
                                err,
                            });
                            break;
                        }
                    };
                    keys.keep(&out);
                    out
                }
            };
            if let Some(st) = stabilizer.as_mut() {
                st.process(&mut out);
            }
            if tx.send((out, gray, arrived)).is_err() {
                queue.close();
                break;
            }
        }
        drop(tx);
        if failed.is_some() {
            queue.close();
            decoding.kill();
        }
        let read = read.join().unwrap_or_else(|p| std::panic::resume_unwind(p));
        let encoded = encode.join().unwrap_or_else(|p| std::panic::resume_unwind(p));
        if let Some(e) = failed {
            return Err(e);
        }
        let (output, latencies, last) = encoded?;
        output.finish()?;
        read.map_err(|detail| VideoError::Decode {
            path: src_name.clone(),
            detail,
        })?;
        Ok((latencies, last))
    });
    decoding.kill();
    let _ = stderr.collect();
    // On an error the staged output is dropped uncommitted, which removes it.
    let (mut latencies, last_written) = result?;
    if let Some(staged) = staged {
        staged.commit()?;
    }
    latencies.sort_by(f64::total_cmp);
    let seconds = decoding.started.elapsed().as_secs_f64();
    // Rates over the stream itself: from the first frame's arrival to the last frame written.
    let streaming = match last_written {
        Some(t) => t.duration_since(first_frame).as_secs_f64(),
        None => seconds,
    };
    let frames_in = frames_in.load(Ordering::Relaxed);
    let frames_out = latencies.len() as u64;
    let ended = decoding.ended();
    Ok(LiveStats {
        source: source.describe(),
        output: sink.describe(),
        width,
        height,
        frame_rate: rate.as_f64(),
        frames_in,
        frames_out,
        dropped: queue.dropped.load(Ordering::Relaxed),
        carried: carried.load(Ordering::Relaxed),
        coloured: coloured.load(Ordering::Relaxed),
        seconds,
        fps_in: frames_in as f64 / streaming.max(1e-9),
        fps_out: frames_out as f64 / streaming.max(1e-9),
        latency_ms_p50: percentile(&latencies, 50.0),
        latency_ms_p99: percentile(&latencies, 99.0),
        latency_ms_max: latencies.last().copied().unwrap_or(0.0),
        ended: ended.as_str(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn sources_and_sinks_are_told_apart() {
        assert_eq!(LiveSource::parse("-"), Some(LiveSource::Stdin));
        assert_eq!(
            LiveSource::parse("/dev/video0"),
            Some(LiveSource::Device("/dev/video0".into()))
        );
        assert_eq!(
            LiveSource::parse("udp://127.0.0.1:5000"),
            Some(LiveSource::Url("udp://127.0.0.1:5000".into()))
        );
        assert_eq!(LiveSource::parse("clip.mp4"), None);
        assert_eq!(LiveSource::parse("c:/x.mp4"), None);
        assert_eq!(LiveSink::parse(Path::new("-")), LiveSink::Stdout);
        assert_eq!(LiveSink::parse(Path::new("out.ts")), LiveSink::File("out.ts".into()));
        assert_eq!(stream_muxer("udp://h:1"), "mpegts");
        assert_eq!(stream_muxer("rtsp://h/x"), "rtsp");
        assert_eq!(stream_muxer("rtmp://h/x"), "flv");
    }

    #[test]
    fn y4m_gray_frames_are_read_and_a_cut_frame_ends_the_stream() {
        let mut data = b"YUV4MPEG2 W3 H2 F25:1 Ip A1:1 Cmono\n".to_vec();
        data.extend(b"FRAME\n");
        data.extend([1, 2, 3, 4, 5, 6]);
        data.extend(b"FRAME\n");
        data.extend([9, 9]);
        let mut y = Y4m::open(&data[..]).unwrap().unwrap();
        assert_eq!((y.width, y.height, y.rate.as_f64()), (3, 2, 25.0));
        assert_eq!(y.next().unwrap(), Some(vec![1, 2, 3, 4, 5, 6]));
        assert_eq!(y.next().unwrap(), None);
        assert!(Y4m::open(&b"YUV4MPEG2 W3 H2 C420jpeg\n"[..]).is_err());
        assert!(Y4m::open(&b""[..]).unwrap().is_none());
    }

    /// The live queue drops its oldest frame when full and says whether another is waiting;
    /// the non-live queue makes the producer wait instead.
    #[test]
    fn the_queue_drops_the_oldest_frame_when_full() {
        let q = FrameQueue::new(2, true);
        let t = Instant::now();
        for k in 0..5u8 {
            assert!(q.push((vec![k], t)));
        }
        assert_eq!(q.dropped.load(Ordering::Relaxed), 3);
        let ((f, _), behind) = q.pop().unwrap();
        assert_eq!((f, behind), (vec![3], true));
        let ((f, _), behind) = q.pop().unwrap();
        assert_eq!((f, behind), (vec![4], false));
        q.close();
        assert!(q.pop().is_none());
        assert!(!q.push((vec![0], t)));

        let q = Arc::new(FrameQueue::new(1, false));
        assert!(q.push((vec![1], t)));
        let q2 = q.clone();
        let producer = std::thread::spawn(move || q2.push((vec![2], Instant::now())));
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(q.pop().unwrap().0.0, vec![1]);
        assert!(producer.join().unwrap());
        assert_eq!(q.pop().unwrap().0.0, vec![2]);
        assert_eq!(q.dropped.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), 50.0);
        assert_eq!(percentile(&v, 99.0), 99.0);
        assert_eq!(percentile(&[], 50.0), 0.0);
    }
}
