//! The error type of the video module: one variant per thing that can go wrong, each
//! rendering as a single line that names the file and the problem.

use std::path::PathBuf;

use thiserror::Error;

/// Everything that can go wrong while reading, colourising or writing a video.
///
/// Every message is one line and names the file it is about, so the CLI can print it as is.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum VideoError {
    /// `ffmpeg` or `ffprobe` is not installed (or not runnable).
    #[error(
        "`{program}` could not be run ({detail}); video needs ffmpeg: install ffmpeg, e.g. `apt-get install ffmpeg`"
    )]
    FfmpegMissing { program: String, detail: String },

    /// The input path does not exist.
    #[error("input `{}` does not exist", path.display())]
    InputNotFound { path: PathBuf },

    /// The input is not a media file at all (a text file, a directory, an empty file...).
    #[error("`{}` is not a video: {reason}", path.display())]
    NotAVideo { path: PathBuf, reason: String },

    /// ffprobe recognised nothing usable in a binary file: corrupt, truncated or an unknown format.
    #[error("`{}` is corrupt, truncated or not a video ffmpeg can read: {detail}", path.display())]
    Corrupt { path: PathBuf, detail: String },

    /// The file is a readable media file without a video stream (e.g. audio only).
    #[error("`{}` has no video stream (it contains: {found})", path.display())]
    NoVideoStream { path: PathBuf, found: String },

    /// The video stream uses a codec this ffmpeg cannot decode.
    #[error("`{}`: the video codec ({codec}) cannot be decoded by this ffmpeg", path.display())]
    UnsupportedCodec { path: PathBuf, codec: String },

    /// ffmpeg failed while decoding.
    #[error("decoding `{}` failed: {detail}", path.display())]
    Decode { path: PathBuf, detail: String },

    /// The input decoded to zero frames.
    #[error("`{}` contains no decodable video frames", path.display())]
    NoFrames { path: PathBuf },

    /// ffprobe's answer could not be understood (or lacked a needed field).
    #[error("could not understand ffprobe's description of `{}`: {detail}", path.display())]
    Probe { path: PathBuf, detail: String },

    /// A `--from-frames` directory is unusable (missing, unreadable, no images).
    #[error("frame directory `{}`: {detail}", path.display())]
    FrameDir { path: PathBuf, detail: String },

    /// One image of a frame sequence could not be read.
    #[error("cannot read frame `{}`: {detail}", path.display())]
    FrameImage { path: PathBuf, detail: String },

    /// One image of a frame sequence has a different size from the first.
    #[error(
        "frame `{}` is {got_width}x{got_height}, but the sequence started at {width}x{height}",
        path.display()
    )]
    FrameSize {
        path: PathBuf,
        width: u32,
        height: u32,
        got_width: u32,
        got_height: u32,
    },

    /// The output path cannot be written as asked (no or unknown extension...).
    #[error("cannot write `{}`: {detail}", path.display())]
    UnsupportedOutput { path: PathBuf, detail: String },

    /// The output exists and overwriting was not allowed.
    #[error("output `{}` already exists (allow overwriting to replace it)", path.display())]
    OutputExists { path: PathBuf },

    /// The output would replace the input.
    #[error("output `{}` is the input file itself", path.display())]
    SameFile { path: PathBuf },

    /// ffmpeg failed while encoding.
    #[error("encoding `{}` failed: {detail}", path.display())]
    Encode { path: PathBuf, detail: String },

    /// A filesystem operation failed.
    #[error("`{}`: {err}", path.display())]
    Io { path: PathBuf, err: std::io::Error },

    /// The colouriser returned an error.
    #[error("colouriser failed on frames {first}..{end}: {err:#}")]
    Colorizer { first: u64, end: u64, err: anyhow::Error },

    /// The colouriser returned the wrong number of frames or frames of the wrong size.
    #[error("colouriser broke its contract: {0}")]
    ColorizerContract(String),

    /// An option has an unusable value.
    #[error("invalid video option: {0}")]
    InvalidOption(String),

    /// The caller's cancel flag was set; nothing was written.
    #[error("interrupted; no output was written")]
    Cancelled,
}

impl VideoError {
    pub(crate) fn io(path: impl Into<PathBuf>, err: std::io::Error) -> Self {
        VideoError::Io { path: path.into(), err }
    }
}
