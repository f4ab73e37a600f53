//! Image sequences: reading numbered image files in natural order (`--from-frames DIR`) and
//! writing `frame-000001.png`, ... (`--to-frames DIR`).

use std::cmp::Ordering;
use std::path::{Path, PathBuf};

use image::{ImageFormat, RgbImage};
use rayon::prelude::*;

use super::error::VideoError;

/// Compares file names the way people number frames: digit runs by value, so `f2.png` comes
/// before `f10.png`, and `frame-0009.png` before `frame-0010.png`.
pub fn natural_cmp(a: &str, b: &str) -> Ordering {
    let (ta, tb) = (tokens(a), tokens(b));
    for (x, y) in ta.iter().zip(&tb) {
        let ord = match (x, y) {
            (Token::Num(x), Token::Num(y)) => {
                let (xs, ys) = (x.trim_start_matches('0'), y.trim_start_matches('0'));
                xs.len()
                    .cmp(&ys.len())
                    .then_with(|| xs.cmp(ys))
                    .then_with(|| x.len().cmp(&y.len()))
            }
            (Token::Text(x), Token::Text(y)) => x.cmp(y),
            (Token::Num(_), Token::Text(_)) => Ordering::Less,
            (Token::Text(_), Token::Num(_)) => Ordering::Greater,
        };
        if ord != Ordering::Equal {
            return ord;
        }
    }
    ta.len().cmp(&tb.len()).then_with(|| a.cmp(b))
}

enum Token<'a> {
    Num(&'a str),
    Text(&'a str),
}

fn tokens(s: &str) -> Vec<Token<'_>> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut digit = None;
    for (i, c) in s.char_indices() {
        let d = c.is_ascii_digit();
        if digit.is_some_and(|prev| prev != d) {
            let t = &s[start..i];
            out.push(if digit == Some(true) {
                Token::Num(t)
            } else {
                Token::Text(t)
            });
            start = i;
        }
        digit = Some(d);
    }
    if start < s.len() {
        let t = &s[start..];
        out.push(if digit == Some(true) {
            Token::Num(t)
        } else {
            Token::Text(t)
        });
    }
    out
}

/// The image files of `dir` that this build can decode, in natural order; hidden files and
/// anything that is not an image are skipped.
pub fn list_frames(dir: &Path) -> Result<Vec<PathBuf>, VideoError> {
    let err = |detail: String| VideoError::FrameDir {
        path: dir.into(),
        detail,
    };
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(err("does not exist".into()));
        }
        Err(e) => return Err(err(e.to_string())),
    };
    let mut files: Vec<(String, PathBuf)> = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| err(e.to_string()))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = entry.path();
        if name.starts_with('.') || !path.is_file() {
            continue;
        }
        if ImageFormat::from_path(&path).is_ok_and(|f| f.reading_enabled()) {
            files.push((name, path));
        }
    }
    if files.is_empty() {
        return Err(err("contains no image files".into()));
    }
    files.sort_by(|a, b| natural_cmp(&a.0, &b.0));
    Ok(files.into_iter().map(|(_, p)| p).collect())
}

/// Reads a frame sequence one image at a time; every image must have the first one's size.
pub(crate) struct FrameDirReader {
    files: Vec<PathBuf>,
    next: usize,
    width: u32,
    height: u32,
}

impl FrameDirReader {
    pub(crate) fn open(dir: &Path) -> Result<Self, VideoError> {
        let files = list_frames(dir)?;
        let (width, height) = image::image_dimensions(&files[0]).map_err(|e| VideoError::FrameImage {
            path: files[0].clone(),
            detail: e.to_string(),
        })?;
        Ok(Self {
            files,
            next: 0,
            width,
            height,
        })
    }

    pub(crate) fn len(&self) -> usize {
        self.files.len()
    }

    pub(crate) fn size(&self) -> (u32, u32) {
        (self.width, self.height)
    }

    pub(crate) fn read_frame(&mut self) -> Result<Option<RgbImage>, VideoError> {
        let Some(path) = self.files.get(self.next) else {
            return Ok(None);
        };
        self.next += 1;
        // The same decoder as still images: size limits, EXIF orientation, truncation check.
        let img = std::fs::read(path)
            .map_err(anyhow::Error::from)
            .and_then(|b| crate::imageio::decode_bytes(&b, image::ImageFormat::from_path(path).ok()))
            .map_err(|e| VideoError::FrameImage {
                path: path.clone(),
                detail: format!("{e:#}"),
            })?
            .to_rgb8();
        if img.dimensions() != (self.width, self.height) {
            return Err(VideoError::FrameSize {
                path: path.clone(),
                width: self.width,
                height: self.height,
                got_width: img.width(),
                got_height: img.height(),
            });
        }
        Ok(Some(img))
    }
}

/// The file name of frame `index` (0-based) in a written sequence: `frame-000001.png`, ...
pub fn frame_file_name(index: u64) -> String {
    format!("frame-{:06}.png", index + 1)
}

/// Whether `name` is one of the names [`frame_file_name`] produces.
pub(crate) fn is_frame_file_name(name: &str) -> bool {
    name.strip_prefix("frame-")
        .and_then(|r| r.strip_suffix(".png"))
        .is_some_and(|d| d.len() >= 6 && d.bytes().all(|b| b.is_ascii_digit()))
}

/// Writes PNG frames into a (temporary) directory, a batch at a time, encoding in parallel.
pub(crate) struct FrameDirWriter {
    dir: PathBuf,
    written: u64,
}

impl FrameDirWriter {
    pub(crate) fn new(dir: PathBuf) -> Self {
        Self { dir, written: 0 }
    }

    pub(crate) fn write_batch(&mut self, frames: &[RgbImage]) -> Result<(), VideoError> {
        let first = self.written;
        frames.par_iter().enumerate().try_for_each(|(i, img)| {
            let path = self.dir.join(frame_file_name(first + i as u64));
            img.save_with_format(&path, ImageFormat::Png).map_err(|e| match e {
                image::ImageError::IoError(err) => VideoError::io(path, err),
                other => VideoError::io(path, std::io::Error::other(other.to_string())),
            })
        })?;
        self.written += frames.len() as u64;
        Ok(())
    }
}
