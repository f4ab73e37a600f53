//! Reading and writing image files: format sniffing, decoding limits, EXIF orientation, and
//! atomic writes in the format the output extension names.

use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use image::codecs::jpeg::JpegEncoder;
use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader, Limits};

/// Largest image accepted, in pixels per side and in total (guards decoders against
/// decompression bombs).
pub const MAX_SIDE: u32 = 30_000;
pub const MAX_PIXELS: u64 = 120_000_000;
/// Largest decoder allocation, in bytes.
pub const MAX_ALLOC: u64 = 2 << 30;

/// JPEG quality used for outputs.
pub const JPEG_QUALITY: u8 = 95;

fn limits() -> Limits {
    let mut l = Limits::default();
    l.max_image_width = Some(MAX_SIDE);
    l.max_image_height = Some(MAX_SIDE);
    l.max_alloc = Some(MAX_ALLOC);
    l
}

/// Opens and decodes an image, sniffing the format from its content (falling back to the
/// extension), enforcing size limits and applying its EXIF orientation. Errors name the file.
pub fn open(path: &Path) -> Result<DynamicImage> {
    decode(path).with_context(|| path.display().to_string())
}

fn decode(path: &Path) -> Result<DynamicImage> {
    let bytes = std::fs::read(path).map_err(|e| anyhow!("cannot read: {e}"))?;
    decode_bytes(&bytes, ImageFormat::from_path(path).ok())
}

/// Decodes an in-memory image (format sniffed from the content, else `hint`), with the same
/// limits, checks and orientation handling as [`open`].
pub fn decode_bytes(bytes: &[u8], hint: Option<ImageFormat>) -> Result<DynamicImage> {
    if bytes.is_empty() {
        bail!("not an image: the file is empty (0 bytes)");
    }
    let mut reader = ImageReader::new(std::io::Cursor::new(bytes));
    reader.limits(limits());
    let reader = reader.with_guessed_format().map_err(|e| anyhow!("cannot read: {e}"))?;
    // Every supported format starts with a signature, so content that matches none is not an
    // image, whatever its extension says.
    if reader.format().is_none() {
        return Err(match hint {
            Some(f) => anyhow!("not an image: content is not {f:?} (or any supported format)"),
            None => anyhow!("not an image: unrecognised content"),
        });
    }
    if reader.format() == Some(ImageFormat::Jpeg) && !jpeg_is_complete(bytes) {
        return Err(anyhow!(
            "corrupt or truncated image: JPEG data ends before its end-of-image marker"
        ));
    }
    let mut decoder = reader.into_decoder().map_err(describe)?;
    let (w, h) = decoder.dimensions();
    if w == 0 || h == 0 {
        return Err(anyhow!("image has no pixels ({w}x{h})"));
    }
    if u64::from(w) * u64::from(h) > MAX_PIXELS {
        return Err(anyhow!(
            "image too large: {w}x{h} exceeds the limit of {MAX_PIXELS} pixels"
        ));
    }
    let orientation = decoder
        .orientation()
        .unwrap_or(image::metadata::Orientation::NoTransforms);
    let mut img = DynamicImage::from_decoder(decoder).map_err(describe)?;
    img.apply_orientation(orientation);
    Ok(img)
}

/// A JPEG is complete when an end-of-image marker (FF D9) follows its last start-of-scan
/// marker (FF DA). The decoder itself fills a truncated scan with gray instead of failing.
pub fn jpeg_is_complete(bytes: &[u8]) -> bool {
    let last_sos = bytes.windows(2).rposition(|w| w == [0xFF, 0xDA]);
    match last_sos {
        Some(i) => bytes[i..].windows(2).any(|w| w == [0xFF, 0xD9]),
        None => false,
    }
}

fn describe(e: image::ImageError) -> anyhow::Error {
    match e {
        image::ImageError::Limits(l) => anyhow!("image too large to decode within limits ({l})"),
        image::ImageError::Unsupported(u) => anyhow!("unsupported image: {u}"),
        image::ImageError::Decoding(d) => anyhow!("corrupt or truncated image: {d}"),
        image::ImageError::IoError(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
            anyhow!("corrupt or truncated image: the data ends early ({e})")
        }
        other => anyhow!("{other}"),
    }
}

/// Whether the image carries more than 8 bits per channel.
pub fn is_high_bit_depth(img: &DynamicImage) -> bool {
    !matches!(
        img,
        DynamicImage::ImageLuma8(_)
            | DynamicImage::ImageLumaA8(_)
            | DynamicImage::ImageRgb8(_)
            | DynamicImage::ImageRgba8(_)
    )
}

/// File extensions treated as images (lower case).
pub const IMAGE_EXTENSIONS: &[&str] = &["jpg", "jpeg", "png", "webp", "tif", "tiff", "bmp"];

/// Whether `path` has an image extension.
pub fn is_image_path(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
}

/// The image format an output path's extension names (one of [`IMAGE_EXTENSIONS`]).
pub fn format_for(path: &Path) -> Result<ImageFormat> {
    let format = is_image_path(path).then(|| ImageFormat::from_path(path).ok()).flatten();
    format.ok_or_else(|| {
        anyhow!(
            "{}: unknown output format (use .png, .jpg, .webp, .tif or .bmp)",
            path.display()
        )
    })
}

/// A `--format` value as a file extension (`PNG`, `.png` -> `png`), or an error naming the
/// formats written.
pub fn parse_format(s: &str) -> Result<String> {
    let ext = s.trim_start_matches('.').to_ascii_lowercase();
    if IMAGE_EXTENSIONS.contains(&ext.as_str()) {
        Ok(ext)
    } else {
        bail!("--format {s}: unknown output format (use png, jpg, webp, tif or bmp)")
    }
}

/// A temporary sibling of `path` with the same extension (so encoders pick the format).
pub fn temp_sibling(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.partial-{}", std::process::id()))
}

/// Writes `f`'s output to a temporary file next to `path` and renames it into place, so a
/// crash never leaves a half-written file under the final name.
pub fn write_atomic(path: &Path, f: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("{}: cannot create folder", dir.display()))?;
    }
    let tmp = temp_sibling(path);
    let result = f(&tmp).and_then(|_| {
        std::fs::rename(&tmp, path).with_context(|| format!("{}: cannot rename into place", path.display()))
    });
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Saves an image atomically in the format of `path`'s extension. 16-bit images are kept
/// 16-bit where the format allows it (PNG, TIFF); JPEG is written at quality 95.
pub fn save(img: &DynamicImage, path: &Path) -> Result<()> {
    let format = format_for(path)?;
    write_atomic(path, |tmp| {
        let res = match format {
            ImageFormat::Jpeg => {
                let file = File::create(tmp)?;
                let enc = JpegEncoder::new_with_quality(BufWriter::new(file), JPEG_QUALITY);
                img.to_rgb8().write_with_encoder(enc)
            }
            ImageFormat::Png | ImageFormat::Tiff => img.save_with_format(tmp, format),
            ImageFormat::WebP if img.color().has_alpha() => {
                DynamicImage::ImageRgba8(img.to_rgba8()).save_with_format(tmp, format)
            }
            _ => DynamicImage::ImageRgb8(img.to_rgb8()).save_with_format(tmp, format),
        };
        res.with_context(|| format!("{}: cannot write image", path.display()))
    })
}

/// `colored` (a colourised RGB image the size of `source`) with `source`'s alpha channel, when
/// it has one, so transparency survives colourisation (JPEG and BMP outputs still drop it).
pub fn keep_alpha(colored: DynamicImage, source: &DynamicImage) -> DynamicImage {
    if !source.color().has_alpha() || colored.width() != source.width() || colored.height() != source.height() {
        return colored;
    }
    match colored {
        DynamicImage::ImageRgb16(rgb) => {
            let mut out = source.to_rgba16();
            for (o, p) in out.pixels_mut().zip(rgb.pixels()) {
                o.0[..3].copy_from_slice(&p.0);
            }
            DynamicImage::ImageRgba16(out)
        }
        other => {
            let mut out = source.to_rgba8();
            for (o, p) in out.pixels_mut().zip(other.to_rgb8().pixels()) {
                o.0[..3].copy_from_slice(&p.0);
            }
            DynamicImage::ImageRgba8(out)
        }
    }
}

/// Writes bytes atomically.
pub fn write_bytes_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomic(path, |tmp| {
        std::fs::write(tmp, bytes).with_context(|| format!("{}: cannot write", path.display()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::ImageEncoder;

    /// A minimal little-endian TIFF/EXIF block with one Orientation (0x0112) entry.
    fn exif_orientation(value: u16) -> Vec<u8> {
        let mut v = b"II*\0".to_vec();
        v.extend_from_slice(&8u32.to_le_bytes()); // offset of IFD0
        v.extend_from_slice(&1u16.to_le_bytes()); // one entry
        v.extend_from_slice(&0x0112u16.to_le_bytes());
        v.extend_from_slice(&3u16.to_le_bytes()); // SHORT
        v.extend_from_slice(&1u32.to_le_bytes()); // count
        v.extend_from_slice(&value.to_le_bytes());
        v.extend_from_slice(&[0, 0]); // value padding
        v.extend_from_slice(&0u32.to_le_bytes()); // no next IFD
        v
    }

    #[test]
    fn exif_orientation_is_applied() {
        // 20x10, left half black, right half white; orientation 6 = rotate 90 degrees clockwise.
        let img = image::GrayImage::from_fn(20, 10, |x, _| image::Luma([if x < 10 { 0 } else { 255 }]));
        let mut bytes = Vec::new();
        let mut enc = JpegEncoder::new_with_quality(&mut bytes, 95);
        enc.set_exif_metadata(exif_orientation(6)).unwrap();
        enc.write_image(img.as_raw(), 20, 10, image::ExtendedColorType::L8)
            .unwrap();
        let decoded = decode_bytes(&bytes, None).unwrap().to_luma8();
        assert_eq!(decoded.dimensions(), (10, 20));
        // After a clockwise turn the former left (black) half is on top.
        assert!(decoded.get_pixel(5, 2).0[0] < 60 && decoded.get_pixel(5, 17).0[0] > 200);
    }

    #[test]
    fn truncated_jpeg_and_non_images_are_errors() {
        let img = image::RgbImage::from_pixel(16, 16, image::Rgb([10, 200, 30]));
        let mut bytes = Vec::new();
        img.write_with_encoder(JpegEncoder::new_with_quality(&mut bytes, 90))
            .unwrap();
        assert!(decode_bytes(&bytes, None).is_ok());
        let err = decode_bytes(&bytes[..bytes.len() - 10], None).unwrap_err().to_string();
        assert!(err.contains("truncated"), "{err}");
        let err = decode_bytes(b"hello", Some(ImageFormat::Jpeg)).unwrap_err().to_string();
        assert!(err.starts_with("not an image"), "{err}");
    }
}
