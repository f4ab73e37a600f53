//! Pre-GAN colourisation methods, kept as baselines and as tools in their own right.
//!
//! * [`reference`](mod@reference): colour from a reference photo — Reinhard et al. (2001)
//!   colour transfer between colour images, and Welsh, Ashikhmin & Mueller (2002) transfer
//!   to a gray image.
//! * [`hints`]: colour from user scribbles — Levin, Lischinski & Weiss (2004),
//!   "Colorization using Optimization".
//! * [`palette`]: colour from a brightness-to-colour gradient (sepia, cyanotype, ...).
//!
//! The gray-target methods take a [`LabImage`] of which only the `l` plane is read and return
//! a [`LabImage`] whose `l` plane is a bit-exact copy of the input's; only `a` and `b` are
//! produced. [`lab_from_gray`] adapts an 8-bit [`GrayImage`].

pub mod hints;
pub mod palette;
pub mod reference;

use image::GrayImage;

use crate::color::LabImage;

pub use hints::{
    HintMap, HintPoint, HintSet, SCRIBBLE_MIN_CHROMA, SolveReport, SolverOptions, colorize_with_hints,
    colorize_with_hints_report, hints_from_json, hints_from_scribble, hints_to_json, load_hints_json, load_scribble,
};
pub use palette::{
    Palette, PaletteSpec, Stop, apply_palette, check_strength, palette_by_name_or_file, preset, preset_names,
};
pub use reference::{reinhard_transfer, welsh_transfer};

/// Everything that can go wrong in the classic methods; every message is one line.
#[derive(Debug, thiserror::Error)]
pub enum ClassicError {
    /// A [`LabImage`] whose planes do not hold `width * height` values.
    #[error("malformed L*a*b* image: {width}x{height} needs {expected} values per plane, got l={l}, a={a}, b={b}")]
    MalformedLab {
        width: u32,
        height: u32,
        expected: usize,
        l: usize,
        a: usize,
        b: usize,
    },
    /// An input image with no pixels where pixels are needed.
    #[error("the {what} image is empty (0 pixels)")]
    EmptyImage { what: &'static str },
    /// A hint point whose centre is not inside the image.
    #[error("hint #{index} at ({x}, {y}) lies outside the {width}x{height} image")]
    HintOutside {
        index: usize,
        x: i64,
        y: i64,
        width: u32,
        height: u32,
    },
    /// A hint point that is malformed in some other way (no colour, two colours, bad radius).
    #[error("hint #{index}: {reason}")]
    BadHint { index: usize, reason: String },
    /// A scribble image whose size differs from the gray image's.
    #[error(
        "scribble (hint) image is {scribble_w}x{scribble_h} but the gray image is {width}x{height}; they must be the same size"
    )]
    ScribbleSize {
        scribble_w: u32,
        scribble_h: u32,
        width: u32,
        height: u32,
    },
    /// No hint at all (empty point list, or a scribble with no coloured pixel).
    #[error("no colour hints: {0}")]
    NoHints(&'static str),
    /// Hints JSON that does not parse.
    #[error("invalid hints JSON: {0}")]
    HintsJson(serde_json::Error),
    /// A colour string that is not `#rrggbb` / `#rgb`.
    #[error("invalid colour {value:?}: expected #rrggbb or #rgb (hex digits)")]
    BadColour { value: String },
    /// A palette name that is neither a preset nor an existing file.
    #[error("unknown palette {name:?}: not a preset and no such file (presets: {valid})")]
    UnknownPalette { name: String, valid: String },
    /// A palette file that could not be used.
    #[error("palette file {path}: {reason} (or use a preset: {valid})")]
    PaletteFile {
        path: String,
        reason: String,
        valid: String,
    },
    /// A palette built in code with invalid stops.
    #[error("invalid palette: {0}")]
    BadPalette(String),
    /// A numeric parameter out of its range.
    #[error("invalid parameter {name} = {value}: {expected}")]
    BadParameter {
        name: &'static str,
        value: f64,
        expected: &'static str,
    },
    /// A file that could not be read.
    #[error("cannot read {path}: {error}")]
    Io { path: String, error: std::io::Error },
    /// An image file that could not be decoded.
    #[error("cannot load image {path}: {message}")]
    Image { path: String, message: String },
}

/// Gray [`LabImage`] (a = b = 0) from an 8-bit gray image read as sRGB gray levels; the
/// adapter for the functions here that take a `LabImage` target.
pub fn lab_from_gray(img: &GrayImage) -> LabImage {
    LabImage::from_gray8(img)
}

/// Checks that every plane of `img` holds `width * height` values.
pub(crate) fn check_lab(img: &LabImage) -> Result<usize, ClassicError> {
    let expected = img.width as usize * img.height as usize;
    if img.l.len() != expected || img.a.len() != expected || img.b.len() != expected {
        return Err(ClassicError::MalformedLab {
            width: img.width,
            height: img.height,
            expected,
            l: img.l.len(),
            a: img.a.len(),
            b: img.b.len(),
        });
    }
    Ok(expected)
}

/// Output image with the target's exact `l` plane and the given `a`, `b` planes.
pub(crate) fn with_ab(target: &LabImage, a: Vec<f32>, b: Vec<f32>) -> LabImage {
    LabImage {
        width: target.width,
        height: target.height,
        l: target.l.clone(),
        a,
        b,
    }
}

/// Parses `#rrggbb`, `rrggbb`, `#rgb` or `rgb` (hex digits, either case) to 8-bit sRGB.
pub fn parse_hex_colour(s: &str) -> Result<[u8; 3], ClassicError> {
    let bad = || ClassicError::BadColour { value: s.to_string() };
    let hex = s.trim();
    let hex = hex.strip_prefix('#').unwrap_or(hex);
    if !hex.bytes().all(|c| c.is_ascii_hexdigit()) {
        return Err(bad());
    }
    let digit = |i: usize| u8::from_str_radix(&hex[i..i + 1], 16).map_err(|_| bad());
    match hex.len() {
        6 => Ok([
            digit(0)? * 16 + digit(1)?,
            digit(2)? * 16 + digit(3)?,
            digit(4)? * 16 + digit(5)?,
        ]),
        3 => Ok([digit(0)? * 17, digit(1)? * 17, digit(2)? * 17]),
        _ => Err(bad()),
    }
}

/// Formats 8-bit sRGB as `#rrggbb`.
pub fn format_hex_colour(rgb: [u8; 3]) -> String {
    format!("#{:02x}{:02x}{:02x}", rgb[0], rgb[1], rgb[2])
}

/// SplitMix64: a tiny, seedable, dependency-free PRNG for reproducible sampling.
pub(crate) struct SplitMix64(u64);

impl SplitMix64 {
    pub(crate) fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform integer in `0..n` (`n > 0`; the modulo bias is negligible for image sizes).
    pub(crate) fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_colours_parse_and_format() {
        assert_eq!(parse_hex_colour("#ff8000").unwrap(), [255, 128, 0]);
        assert_eq!(parse_hex_colour("FF8000").unwrap(), [255, 128, 0]);
        assert_eq!(parse_hex_colour("#f80").unwrap(), [255, 136, 0]);
        assert_eq!(format_hex_colour([255, 128, 0]), "#ff8000");
        for bad in ["", "#", "#ff80", "#gg0000", "#ff00001", "red", "#+f0000", "#ééé"] {
            let err = parse_hex_colour(bad).unwrap_err();
            assert!(matches!(err, ClassicError::BadColour { .. }), "{bad}");
            assert!(err.to_string().contains("#rrggbb"));
        }
    }

    #[test]
    fn malformed_lab_is_rejected() {
        let img = LabImage {
            width: 2,
            height: 2,
            l: vec![0.0; 4],
            a: vec![0.0; 3],
            b: vec![0.0; 4],
        };
        let err = check_lab(&img).unwrap_err();
        assert!(err.to_string().contains("a=3"), "{err}");
    }
}
