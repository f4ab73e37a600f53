//! Driving the `ffmpeg` and `ffprobe` programs through pipes: probing, decoding to raw
//! `rgb24` frames on a pipe, and encoding raw `rgb24` frames from a pipe.
//!
//! Children are started in their own process group, so a Ctrl-C at the terminal reaches
//! only tinct (which then stops them itself) and never makes ffmpeg finalise a half file.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStderr, ChildStdin, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;

use image::RgbImage;
use serde::{Deserialize, Serialize};

use super::error::VideoError;
use super::{FrameRate, OddSizePolicy};

/// Where to find the ffmpeg programs. Defaults: `ffmpeg` and `ffprobe` on `PATH`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FfmpegTools {
    /// The `ffmpeg` program.
    pub ffmpeg: PathBuf,
    /// The `ffprobe` program.
    pub ffprobe: PathBuf,
}

impl Default for FfmpegTools {
    fn default() -> Self {
        Self {
            ffmpeg: PathBuf::from("ffmpeg"),
            ffprobe: PathBuf::from("ffprobe"),
        }
    }
}

impl FfmpegTools {
    /// Checks that both programs run (`-version`); the error says how to install them.
    pub fn check(&self) -> Result<(), VideoError> {
        for program in [&self.ffmpeg, &self.ffprobe] {
            let out = command(program)
                .arg("-version")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .map_err(|e| spawn_error(program, &e))?;
            if !out.success() {
                return Err(VideoError::FfmpegMissing {
                    program: program.display().to_string(),
                    detail: format!("`-version` exited with {out}"),
                });
            }
        }
        Ok(())
    }

    /// Whether both programs run.
    pub fn available(&self) -> bool {
        self.check().is_ok()
    }
}

/// A `Command` for an ffmpeg program, in its own process group (see the module docs).
pub(crate) fn command(program: &Path) -> Command {
    #[allow(unused_mut)]
    let mut cmd = Command::new(program);
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        cmd.process_group(0);
    }
    cmd
}

pub(crate) fn spawn_error(program: &Path, e: &std::io::Error) -> VideoError {
    let detail = if e.kind() == ErrorKind::NotFound {
        "not found".to_string()
    } else {
        e.to_string()
    };
    VideoError::FfmpegMissing {
        program: program.display().to_string(),
        detail,
    }
}

/// The argument that names a local file to ffmpeg: the `file:` protocol prefix stops a name
/// that starts with `-` or contains `:` from being read as an option or a protocol.
pub(crate) fn file_arg(path: &Path) -> OsString {
    let mut s = OsString::from("file:");
    s.push(path.as_os_str());
    s
}

// ---------------------------------------------------------------------------------------------
// Child process plumbing
// ---------------------------------------------------------------------------------------------

/// A child that is killed and reaped when dropped, unless it was waited for.
pub(crate) struct ChildGuard {
    pub(crate) child: Child,
    pub(crate) reaped: bool,
}

impl ChildGuard {
    pub(crate) fn wait(&mut self) -> std::io::Result<ExitStatus> {
        let status = self.child.wait();
        self.reaped = true;
        status
    }

    pub(crate) fn kill(&mut self) {
        if !self.reaped {
            let _ = self.child.kill();
            let _ = self.child.wait();
            self.reaped = true;
        }
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Drains a child's stderr on a helper thread (so a chatty ffmpeg never blocks on a full
/// pipe) and keeps its last lines for error messages.
pub(crate) struct StderrTail(Option<JoinHandle<Vec<String>>>);

impl StderrTail {
    const KEEP: usize = 40;

    pub(crate) fn spawn(stderr: Option<ChildStderr>) -> Self {
        let Some(stderr) = stderr else {
            return Self(None);
        };
        let handle = std::thread::Builder::new().name("ffmpeg-stderr".into()).spawn(move || {
            let mut lines = VecDeque::new();
            let mut reader = BufReader::new(stderr);
            let mut buf = Vec::new();
            loop {
                buf.clear();
                match reader.read_until(b'\n', &mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {
                        let line = String::from_utf8_lossy(&buf).trim().to_string();
                        if !line.is_empty() {
                            if lines.len() == Self::KEEP {
                                lines.pop_front();
                            }
                            lines.push_back(line);
                        }
                    }
                }
            }
            lines.into_iter().collect()
        });
        Self(handle.ok())
    }

    /// The kept lines; call after the child has exited (or been killed).
    pub(crate) fn collect(mut self) -> Vec<String> {
        self.0.take().and_then(|h| h.join().ok()).unwrap_or_default()
    }
}

/// Condenses ffmpeg's stderr into one line: strips `[demuxer @ 0x...]` and `file:...: `
/// prefixes, drops repeats and keeps the last few distinct messages.
pub(crate) fn summarize_stderr(lines: &[String], path: &Path) -> String {
    let file = file_arg(path).to_string_lossy().into_owned();
    let plain = path.display().to_string();
    let mut out: Vec<String> = Vec::new();
    for line in lines {
        let mut s = line.as_str();
        if s.starts_with('[')
            && let Some(end) = s.find("] ")
        {
            s = &s[end + 2..];
        }
        for prefix in [&file, &plain] {
            if let Some(rest) = s.strip_prefix(prefix.as_str()).and_then(|r| r.strip_prefix(": ")) {
                s = rest;
            }
        }
        let s = s.trim().trim_end_matches(['.', ':']).trim();
        if s.is_empty() || s.starts_with("Conversion failed") {
            continue;
        }
        out.retain(|o| o != s);
        out.push(s.to_string());
    }
    let keep = out.len().saturating_sub(3);
    let mut joined = out[keep..].join("; ");
    if joined.len() > 400 {
        let mut cut = 400;
        while !joined.is_char_boundary(cut) {
            cut -= 1;
        }
        joined.truncate(cut);
        joined.push('…');
    }
    if joined.is_empty() {
        "ffmpeg gave no reason".to_string()
    } else {
        joined
    }
}

// ---------------------------------------------------------------------------------------------
// Probing
// ---------------------------------------------------------------------------------------------

/// What ffprobe says about an input video.
#[derive(Clone, Debug, Serialize)]
pub struct VideoInfo {
    /// The probed file.
    pub path: PathBuf,
    /// Container format name(s) as ffprobe reports them (e.g. `mov,mp4,m4a,3gp,3g2,mj2`).
    pub container: String,
    /// Index of the video stream that is decoded (the first one that is not cover art).
    pub stream_index: u32,
    /// Frame width as decoded, i.e. after applying rotation metadata.
    pub width: u32,
    /// Frame height as decoded, i.e. after applying rotation metadata.
    pub height: u32,
    /// Rotation metadata in degrees (0, 90, 180, 270); ffmpeg applies it while decoding.
    pub rotation: u32,
    /// The rate frames are decoded at (and written at): `r_frame_rate`, or `avg_frame_rate`
    /// for variable-frame-rate streams (which are then resampled to a constant rate).
    pub frame_rate: FrameRate,
    /// Whether `r_frame_rate` and `avg_frame_rate` disagree (variable frame rate).
    pub variable_frame_rate: bool,
    /// Number of frames: the container's count, else estimated from the duration.
    pub frame_count: Option<u64>,
    /// Whether `frame_count` came from the container (not an estimate).
    pub frame_count_exact: bool,
    /// Duration in seconds, if known.
    pub duration: Option<f64>,
    /// Video codec name (e.g. `h264`).
    pub video_codec: String,
    /// Codec of the first audio stream, if there is one.
    pub audio_codec: Option<String>,
    /// Number of audio streams.
    pub audio_streams: usize,
    /// Sample aspect ratio (e.g. `4:3` for anamorphic video) when it is not square.
    pub sample_aspect_ratio: Option<String>,
    /// Start of the video stream relative to the start of the file, in seconds (> 0 when the
    /// audio starts first); used to keep audio in sync.
    pub video_offset: f64,
}

impl VideoInfo {
    /// Whether the file has at least one audio stream.
    pub fn has_audio(&self) -> bool {
        self.audio_streams > 0
    }
}

#[derive(Deserialize)]
struct ProbeOutput {
    #[serde(default)]
    streams: Vec<ProbeStream>,
    format: Option<ProbeFormat>,
}

#[derive(Deserialize)]
struct ProbeFormat {
    format_name: Option<String>,
    duration: Option<String>,
    start_time: Option<String>,
}

#[derive(Deserialize)]
struct ProbeStream {
    index: u32,
    codec_type: Option<String>,
    codec_name: Option<String>,
    codec_tag_string: Option<String>,
    width: Option<u32>,
    height: Option<u32>,
    r_frame_rate: Option<String>,
    avg_frame_rate: Option<String>,
    nb_frames: Option<String>,
    duration: Option<String>,
    start_time: Option<String>,
    sample_aspect_ratio: Option<String>,
    #[serde(default)]
    tags: std::collections::HashMap<String, String>,
    #[serde(default)]
    side_data_list: Vec<serde_json::Value>,
    #[serde(default)]
    disposition: std::collections::HashMap<String, i64>,
}

impl ProbeStream {
    fn is_cover_art(&self) -> bool {
        self.disposition.get("attached_pic").copied().unwrap_or(0) != 0
    }

    fn describe(&self) -> String {
        let kind = self.codec_type.as_deref().unwrap_or("unknown");
        match self.codec_name.as_deref() {
            Some(c) if self.is_cover_art() => format!("{kind} ({c}, cover art)"),
            Some(c) => format!("{kind} ({c})"),
            None => kind.to_string(),
        }
    }

    fn rotation(&self) -> u32 {
        let from_side = self
            .side_data_list
            .iter()
            .find_map(|v| v.get("rotation").and_then(serde_json::Value::as_f64));
        let from_tag = self.tags.get("rotate").and_then(|s| s.trim().parse::<f64>().ok());
        let deg = from_side.or(from_tag).unwrap_or(0.0).round() as i64;
        (deg.rem_euclid(360) as u32 + 45) / 90 % 4 * 90
    }
}

fn parse_f64(s: &Option<String>) -> Option<f64> {
    s.as_deref()
        .and_then(|s| s.trim().parse::<f64>().ok())
        .filter(|v| v.is_finite())
}

/// Whether the start of a file looks like text (so "not a video" rather than "corrupt").
fn looks_like_text(path: &Path) -> bool {
    let mut head = [0u8; 4096];
    let n = match std::fs::File::open(path).and_then(|mut f| f.read(&mut head)) {
        Ok(n) => n,
        Err(_) => return false,
    };
    let head = &head[..n];
    let valid = match std::str::from_utf8(head) {
        Ok(s) => s,
        // A multi-byte character cut by the 4096-byte window is still text.
        Err(e) if e.error_len().is_none() => match std::str::from_utf8(&head[..e.valid_up_to()]) {
            Ok(s) => s,
            Err(_) => return false,
        },
        Err(_) => return false,
    };
    n > 0
        && valid
            .chars()
            .all(|c| !c.is_control() || matches!(c, '\n' | '\r' | '\t' | '\x0c'))
}

/// Probes `path` with `ffprobe -print_format json` and checks that it has a decodable video
/// stream; the errors say what is wrong with the file.
pub fn probe(path: &Path, tools: &FfmpegTools) -> Result<VideoInfo, VideoError> {
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == ErrorKind::NotFound => {
            return Err(VideoError::InputNotFound { path: path.into() });
        }
        Err(e) => return Err(VideoError::io(path, e)),
    };
    let not_a_video = |reason: &str| VideoError::NotAVideo {
        path: path.into(),
        reason: reason.into(),
    };
    if meta.is_dir() {
        return Err(not_a_video(
            "it is a directory (use the frame-sequence input for image folders)",
        ));
    }
    if meta.len() == 0 {
        return Err(not_a_video("the file is empty"));
    }
    let out = command(&tools.ffprobe)
        .args([
            "-hide_banner",
            "-v",
            "error",
            "-print_format",
            "json",
            "-show_format",
            "-show_streams",
        ])
        .arg(file_arg(path))
        .stdin(Stdio::null())
        .output()
        .map_err(|e| spawn_error(&tools.ffprobe, &e))?;
    if !out.status.success() {
        if looks_like_text(path) {
            return Err(not_a_video("it is a text file"));
        }
        let lines: Vec<String> = String::from_utf8_lossy(&out.stderr)
            .lines()
            .map(str::to_string)
            .collect();
        return Err(VideoError::Corrupt {
            path: path.into(),
            detail: summarize_stderr(&lines, path),
        });
    }
    let parsed: ProbeOutput = serde_json::from_slice(&out.stdout).map_err(|e| VideoError::Probe {
        path: path.into(),
        detail: e.to_string(),
    })?;
    info_from_probe(path, parsed)
}

fn info_from_probe(path: &Path, parsed: ProbeOutput) -> Result<VideoInfo, VideoError> {
    // ffmpeg's `tty` demuxer renders text files (.txt, .nfo, ...) as "video".
    if parsed.format.as_ref().and_then(|f| f.format_name.as_deref()) == Some("tty") {
        return Err(VideoError::NotAVideo {
            path: path.into(),
            reason: "it is a text file".into(),
        });
    }
    let Some(video) = parsed
        .streams
        .iter()
        .find(|s| s.codec_type.as_deref() == Some("video") && !s.is_cover_art())
    else {
        let found = if parsed.streams.is_empty() {
            "no streams at all".to_string()
        } else {
            parsed
                .streams
                .iter()
                .map(ProbeStream::describe)
                .collect::<Vec<_>>()
                .join(", ")
        };
        return Err(VideoError::NoVideoStream {
            path: path.into(),
            found,
        });
    };
    let codec = match video.codec_name.as_deref() {
        Some(c) if c != "none" && !c.is_empty() => c.to_string(),
        _ => {
            let tag = video.codec_tag_string.as_deref().unwrap_or("?");
            return Err(VideoError::UnsupportedCodec {
                path: path.into(),
                codec: format!("unknown codec, tag `{tag}`"),
            });
        }
    };
    let (w, h) = match (video.width, video.height) {
        (Some(w), Some(h)) if w > 0 && h > 0 => (w, h),
        _ => {
            return Err(VideoError::Corrupt {
                path: path.into(),
                detail: format!("the {codec} video stream has no frame size"),
            });
        }
    };
    let rotation = video.rotation();
    let (width, height) = if rotation % 180 == 90 { (h, w) } else { (w, h) };

    let r = video.r_frame_rate.as_deref().and_then(FrameRate::parse_ratio);
    let avg = video.avg_frame_rate.as_deref().and_then(FrameRate::parse_ratio);
    let (frame_rate, variable_frame_rate) = match (r, avg) {
        (Some(r), Some(a)) => {
            let (rf, af) = (r.as_f64(), a.as_f64());
            let vfr = (rf - af).abs() > 0.01 * af;
            // r_frame_rate is a timebase guess; for VFR streams (or absurd values) use the average.
            if vfr || rf > 240.0 { (a, vfr) } else { (r, false) }
        }
        (Some(r), None) => (r, false),
        (None, Some(a)) => (a, false),
        (None, None) => (FrameRate::default(), false),
    };

    let format = parsed.format.as_ref();
    let duration = parse_f64(&video.duration)
        .or_else(|| format.and_then(|f| parse_f64(&f.duration)))
        .filter(|d| *d > 0.0);
    let nb_frames = video
        .nb_frames
        .as_deref()
        .and_then(|s| s.trim().parse::<u64>().ok())
        .filter(|n| *n > 0);
    let (frame_count, frame_count_exact) = match nb_frames {
        Some(n) if !variable_frame_rate => (Some(n), true),
        _ => (
            duration.map(|d| (d * frame_rate.as_f64()).round().max(1.0) as u64),
            false,
        ),
    };

    let sample_aspect_ratio = video
        .sample_aspect_ratio
        .clone()
        .filter(|s| s != "1:1" && s != "0:1" && s.contains(':'));
    let video_start = parse_f64(&video.start_time).unwrap_or(0.0);
    let file_start = format.and_then(|f| parse_f64(&f.start_time)).unwrap_or(video_start);
    let video_offset = (video_start - file_start).max(0.0);

    let audio: Vec<&ProbeStream> = parsed
        .streams
        .iter()
        .filter(|s| s.codec_type.as_deref() == Some("audio"))
        .collect();
    Ok(VideoInfo {
        path: path.into(),
        container: format.and_then(|f| f.format_name.clone()).unwrap_or_default(),
        stream_index: video.index,
        width,
        height,
        rotation,
        frame_rate,
        variable_frame_rate,
        frame_count,
        frame_count_exact,
        duration,
        video_codec: codec,
        audio_codec: audio.first().and_then(|s| s.codec_name.clone()),
        audio_streams: audio.len(),
        sample_aspect_ratio,
        video_offset,
    })
}

// ---------------------------------------------------------------------------------------------
// Decoding
// ---------------------------------------------------------------------------------------------

/// An `ffmpeg` child decoding one video stream to raw `rgb24` frames on its stdout.
pub(crate) struct Decoder {
    child: ChildGuard,
    stdout: ChildStdout,
    stderr: StderrTail,
    path: PathBuf,
    width: u32,
    height: u32,
}

impl Decoder {
    /// Starts decoding `info`'s video stream at its (constant) frame rate.
    pub(crate) fn spawn(info: &VideoInfo, tools: &FfmpegTools, max_frames: Option<u64>) -> Result<Self, VideoError> {
        let mut cmd = command(&tools.ffmpeg);
        cmd.args(["-nostdin", "-hide_banner", "-loglevel", "error", "-i"])
            .arg(file_arg(&info.path))
            .args(["-map", &format!("0:{}", info.stream_index), "-an", "-sn", "-dn"])
            // A constant frame rate: a no-op for constant-rate input, resamples VFR input.
            .args(["-vf", &format!("fps={}", info.frame_rate)]);
        if let Some(n) = max_frames {
            cmd.args(["-frames:v", &n.to_string()]);
        }
        cmd.args(["-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:1"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().map_err(|e| spawn_error(&tools.ffmpeg, &e))?;
        let stderr = StderrTail::spawn(child.stderr.take());
        let stdout = child.stdout.take();
        let child = ChildGuard { child, reaped: false };
        let stdout = stdout.ok_or_else(|| VideoError::Decode {
            path: info.path.clone(),
            detail: "could not capture ffmpeg's output".into(),
        })?;
        Ok(Self {
            child,
            stdout,
            stderr,
            path: info.path.clone(),
            width: info.width,
            height: info.height,
        })
    }

    /// The next frame, or `None` at the end of the stream.
    pub(crate) fn read_frame(&mut self) -> Result<Option<RgbImage>, VideoError> {
        let len = self.width as usize * self.height as usize * 3;
        let mut buf = vec![0u8; len];
        let mut filled = 0;
        while filled < len {
            match self.stdout.read(&mut buf[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => {
                    return Err(VideoError::Decode {
                        path: self.path.clone(),
                        detail: e.to_string(),
                    });
                }
            }
        }
        if filled == 0 {
            return Ok(None);
        }
        if filled < len {
            // ffmpeg writes whole frames; a short one means it died. Its exit status explains.
            return Err(self.failure_after_eof());
        }
        Ok(RgbImage::from_raw(self.width, self.height, buf))
    }

    fn failure_after_eof(&mut self) -> VideoError {
        let status = self.child.wait();
        let lines = std::mem::replace(&mut self.stderr, StderrTail(None)).collect();
        classify_decode_failure(&self.path, status.ok(), &lines).unwrap_or_else(|| VideoError::Decode {
            path: self.path.clone(),
            detail: "ffmpeg stopped in the middle of a frame".into(),
        })
    }

    /// Waits for ffmpeg after the last frame (or kills it when `stop_early`); returns
    /// ffmpeg's complaints, if it had any but still succeeded.
    pub(crate) fn finish(mut self, stop_early: bool) -> Result<Option<String>, VideoError> {
        if stop_early {
            self.child.kill();
            return Ok(None);
        }
        let status = self.child.wait().map_err(|e| VideoError::Decode {
            path: self.path.clone(),
            detail: e.to_string(),
        })?;
        let lines = std::mem::replace(&mut self.stderr, StderrTail(None)).collect();
        if let Some(err) = classify_decode_failure(&self.path, Some(status), &lines) {
            return Err(err);
        }
        Ok((!lines.is_empty()).then(|| summarize_stderr(&lines, &self.path)))
    }
}

fn classify_decode_failure(path: &Path, status: Option<ExitStatus>, lines: &[String]) -> Option<VideoError> {
    if status.is_some_and(|s| s.success()) {
        return None;
    }
    if let Some(line) = lines
        .iter()
        .find(|l| l.contains("Decoder (codec") && l.contains("not found"))
    {
        let codec = line
            .split("(codec ")
            .nth(1)
            .and_then(|s| s.split(')').next())
            .unwrap_or("unknown")
            .to_string();
        return Some(VideoError::UnsupportedCodec {
            path: path.into(),
            codec,
        });
    }
    let mut detail = summarize_stderr(lines, path);
    if let Some(s) = status
        && lines.is_empty()
    {
        detail = format!("ffmpeg exited with {s}");
    }
    Some(VideoError::Decode {
        path: path.into(),
        detail,
    })
}

// ---------------------------------------------------------------------------------------------
// Encoding
// ---------------------------------------------------------------------------------------------

/// How the input's audio gets into the output.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AudioMode {
    /// No audio (the input has none, or the output is a frame sequence).
    None,
    /// Audio streams copied unchanged (`-c:a copy`).
    Copied,
    /// The container refused the original codec; audio re-encoded to this codec.
    Reencoded(String),
}

/// Everything the encoder needs to know.
#[derive(Clone, Debug)]
pub(crate) struct EncodeSpec {
    pub width: u32,
    pub height: u32,
    pub frame_rate: FrameRate,
    /// The file ffmpeg writes (the temporary name).
    pub output: PathBuf,
    /// The name the user asked for (for messages and the extension).
    pub final_output: PathBuf,
    /// Input file whose audio is mapped, and how.
    pub audio: Option<(PathBuf, AudioMode)>,
    pub video_offset: f64,
    pub sample_aspect_ratio: Option<String>,
    pub crf: u8,
    pub preset: String,
    pub odd_size: OddSizePolicy,
    /// Limits the output duration (used with `max_frames`, so audio is trimmed too).
    pub max_duration: Option<f64>,
    /// A stream, not a file: `output` is a URL (or `pipe:1`) written with this muxer, in H.264.
    pub stream_format: Option<String>,
    /// Encode for low latency (x264 `zerolatency`, a keyframe every 2 s): live colour.
    pub low_latency: bool,
}

/// The video codec family chosen from the output extension.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum VideoCodec {
    X264,
    Vp9,
    /// Whatever ffmpeg picks for the container.
    Default,
}

fn extension(path: &Path) -> Option<String> {
    path.extension().map(|e| e.to_string_lossy().to_ascii_lowercase())
}

fn codec_for(path: &Path) -> VideoCodec {
    match extension(path).as_deref() {
        Some("mp4" | "m4v" | "mov" | "mkv") => VideoCodec::X264,
        Some("webm") => VideoCodec::Vp9,
        _ => VideoCodec::Default,
    }
}

/// The audio codec used when the container rejects a copy.
pub(crate) fn fallback_audio_codec(path: &Path) -> &'static str {
    match extension(path).as_deref() {
        Some("webm") => "libopus",
        _ => "aac",
    }
}

/// The ffmpeg arguments for [`EncodeSpec`] (everything after the program name).
pub(crate) fn encoder_args(spec: &EncodeSpec) -> Vec<OsString> {
    let mut a: Vec<OsString> = Vec::new();
    let mut push = |s: &str| a.push(s.into());
    for s in ["-nostdin", "-hide_banner", "-loglevel", "error", "-y"] {
        push(s);
    }
    for s in ["-f", "rawvideo", "-pix_fmt", "rgb24"] {
        push(s);
    }
    push("-s");
    push(&format!("{}x{}", spec.width, spec.height));
    push("-framerate");
    push(&spec.frame_rate.to_string());
    if spec.video_offset > 0.0005 {
        push("-itsoffset");
        push(&format!("{:.6}", spec.video_offset));
    }
    push("-i");
    push("pipe:0");
    if let Some((input, _)) = &spec.audio {
        a.push("-i".into());
        a.push(file_arg(input));
    }
    let mut push = |s: &str| a.push(s.into());
    push("-map");
    push("0:v:0");
    let codec = if spec.stream_format.is_some() {
        VideoCodec::X264
    } else {
        codec_for(&spec.final_output)
    };
    let odd = spec.width % 2 == 1 || spec.height % 2 == 1;
    let (pad, pix_fmt) = match (codec, odd, spec.odd_size) {
        (VideoCodec::Default, _, _) => (false, None),
        (_, true, OddSizePolicy::Yuv444) => (false, Some("yuv444p")),
        (_, true, OddSizePolicy::PadToEven) => (true, Some("yuv420p")),
        (_, false, _) => (false, Some("yuv420p")),
    };
    // sRGB frames become BT.709 limited-range YUV, and are tagged so players convert back.
    let mut vf = Vec::new();
    if pad {
        vf.push("pad=ceil(iw/2)*2:ceil(ih/2)*2".to_string());
    }
    vf.push("scale=out_color_matrix=bt709:out_range=tv".to_string());
    if let Some(p) = pix_fmt {
        vf.push(format!("format={p}"));
    }
    if let Some(sar) = &spec.sample_aspect_ratio {
        vf.push(format!("setsar={}", sar.replace(':', "/")));
    }
    push("-vf");
    push(&vf.join(","));
    match codec {
        VideoCodec::X264 => {
            for s in [
                "-c:v",
                "libx264",
                "-preset",
                &spec.preset,
                "-crf",
                &spec.crf.to_string(),
            ] {
                push(s);
            }
            if spec.low_latency {
                let gop = (2.0 * spec.frame_rate.as_f64()).round().max(1.0).to_string();
                for s in ["-tune", "zerolatency", "-g", &gop] {
                    push(s);
                }
            }
        }
        VideoCodec::Vp9 => {
            let crf = (u32::from(spec.crf) + 13).min(63).to_string();
            for s in ["-c:v", "libvpx-vp9", "-crf", &crf, "-b:v", "0", "-row-mt", "1"] {
                push(s);
            }
        }
        VideoCodec::Default => {}
    }
    for s in [
        "-colorspace",
        "bt709",
        "-color_primaries",
        "bt709",
        "-color_trc",
        "bt709",
    ] {
        push(s);
    }
    match &spec.audio {
        Some((_, AudioMode::Copied)) => {
            for s in ["-map", "1:a?", "-c:a", "copy"] {
                push(s);
            }
        }
        Some((_, AudioMode::Reencoded(c))) => {
            for s in ["-map", "1:a?", "-c:a", c.as_str()] {
                push(s);
            }
        }
        Some((_, AudioMode::None)) | None => {}
    }
    if let Some(t) = spec.max_duration {
        push("-t");
        push(&format!("{t:.6}"));
    }
    if let Some(muxer) = &spec.stream_format {
        push("-f");
        push(muxer);
        a.push(spec.output.as_os_str().into());
        return a;
    }
    if matches!(extension(&spec.final_output).as_deref(), Some("mp4" | "m4v" | "mov")) {
        push("-movflags");
        push("+faststart");
    }
    a.push(file_arg(&spec.output));
    a
}

static CHECK_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Whether the audio of `input` can be copied into a container of `output`'s type: muxes a
/// fraction of a second into a scratch file (the only reliable test, since support depends on
/// the ffmpeg build and version).
pub(crate) fn audio_copy_works(tools: &FfmpegTools, input: &Path, output: &Path) -> bool {
    let ext = extension(output).unwrap_or_else(|| "mkv".into());
    let n = CHECK_COUNTER.fetch_add(1, Ordering::Relaxed);
    let scratch = std::env::temp_dir().join(format!(".tinct-audio-check-{}-{n}.{ext}", std::process::id()));
    let ok = command(&tools.ffmpeg)
        .args(["-nostdin", "-hide_banner", "-loglevel", "error", "-y", "-i"])
        .arg(file_arg(input))
        .args(["-map", "0:a", "-c:a", "copy", "-t", "0.5"])
        .arg(file_arg(&scratch))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    let _ = std::fs::remove_file(&scratch);
    ok
}

/// An `ffmpeg` child encoding raw `rgb24` frames from its stdin.
pub(crate) struct Encoder {
    child: ChildGuard,
    stdin: Option<ChildStdin>,
    stderr: StderrTail,
    final_output: PathBuf,
    frame_len: usize,
}

impl Encoder {
    pub(crate) fn spawn(spec: &EncodeSpec, tools: &FfmpegTools) -> Result<Self, VideoError> {
        let to_stdout = spec.stream_format.is_some() && spec.output.as_os_str() == "pipe:1";
        let mut child = command(&tools.ffmpeg)
            .args(encoder_args(spec))
            .stdin(Stdio::piped())
            .stdout(if to_stdout { Stdio::inherit() } else { Stdio::null() })
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| spawn_error(&tools.ffmpeg, &e))?;
        let stderr = StderrTail::spawn(child.stderr.take());
        let stdin = child.stdin.take();
        Ok(Self {
            child: ChildGuard { child, reaped: false },
            stdin,
            stderr,
            final_output: spec.final_output.clone(),
            frame_len: spec.width as usize * spec.height as usize * 3,
        })
    }

    /// Writes one frame; on failure, reaps ffmpeg and reports why it stopped reading.
    pub(crate) fn write_frame(&mut self, frame: &RgbImage) -> Result<(), VideoError> {
        if frame.as_raw().len() != self.frame_len {
            return Err(VideoError::Encode {
                path: self.final_output.clone(),
                detail: format!(
                    "frame of {}x{} does not match the video size",
                    frame.width(),
                    frame.height()
                ),
            });
        }
        let result = match self.stdin.as_mut() {
            Some(stdin) => stdin.write_all(frame.as_raw()),
            None => Err(std::io::Error::from(ErrorKind::BrokenPipe)),
        };
        result.map_err(|e| {
            self.stdin = None;
            let _ = self.child.wait();
            let lines = std::mem::replace(&mut self.stderr, StderrTail(None)).collect();
            let detail = if lines.is_empty() {
                e.to_string()
            } else {
                summarize_stderr(&lines, &self.final_output)
            };
            VideoError::Encode {
                path: self.final_output.clone(),
                detail,
            }
        })
    }

    /// Closes the pipe and waits for ffmpeg to finish the file.
    pub(crate) fn finish(mut self) -> Result<(), VideoError> {
        drop(self.stdin.take());
        let status = self.child.wait().map_err(|e| VideoError::Encode {
            path: self.final_output.clone(),
            detail: e.to_string(),
        })?;
        let lines = std::mem::replace(&mut self.stderr, StderrTail(None)).collect();
        if status.success() {
            Ok(())
        } else {
            let detail = if lines.is_empty() {
                format!("ffmpeg exited with {status}")
            } else {
                summarize_stderr(&lines, &self.final_output)
            };
            Err(VideoError::Encode {
                path: self.final_output.clone(),
                detail,
            })
        }
    }

    /// Kills ffmpeg without finishing the file.
    pub(crate) fn abort(mut self) {
        drop(self.stdin.take());
        self.child.kill();
    }
}
