//! The one colourisation path every method shares: a decoded image is reduced to L\*a\*b\*
//! (only L, unless the method reads the input's colour), the method predicts a and b at full
//! resolution beside the original L, and the result takes the input's form again (bit depth,
//! alpha). `tinct colorize`, `tinct serve`, `tinct eval` and `tinct video` all go through
//! [`Colorize`].

use anyhow::Result;
use image::{DynamicImage, RgbImage};

use crate::color::LabImage;

/// A colourisation method: the GAN generator (`infer::Colorizer`) and the classic
/// methods (`method`) alike. Every method keeps the input's L.
pub trait Colorize: Send + Sync {
    /// A short name for tables, file names and the server's `x-tinct-method` header.
    fn name(&self) -> String;

    /// Whether the method reads the input's own colour when it has some (reference transfer
    /// does); the others see only L.
    fn uses_colour(&self) -> bool {
        false
    }

    /// Colours full-resolution L\*a\*b\* images (only their L is read): the same L, with a
    /// and b. `colour` is the original colour image when there is one and the method uses it.
    fn colorize_lab(&self, lab: &LabImage, colour: Option<&RgbImage>) -> Result<LabImage>;

    /// Colours several images, as one batch where the method can (the generator runs them
    /// through the network together).
    fn colorize_labs(&self, labs: &[LabImage]) -> Result<Vec<LabImage>> {
        labs.iter().map(|l| self.colorize_lab(l, None)).collect()
    }

    /// Colours a decoded image: 16-bit inputs give 16-bit results, alpha is kept.
    fn colorize_image(&self, img: &DynamicImage) -> Result<DynamicImage> {
        let out = if self.uses_colour() {
            let rgb = img.to_rgb8();
            let colour = (!is_effectively_gray(&rgb)).then_some(&rgb);
            self.colorize_lab(&lab_of(img), colour)?
        } else {
            self.colorize_lab(&lightness_of(img), None)?
        };
        Ok(image_like(&out, img))
    }
}

/// L of a decoded image, with a and b left at zero: all most methods read.
pub fn lightness_of(img: &DynamicImage) -> LabImage {
    match img {
        DynamicImage::ImageRgb8(rgb) => LabImage::lightness_from_rgb8(rgb),
        _ => lab_of(img),
    }
}

/// A colourised image in the form of its `source`: 16-bit when the source is, and with the
/// source's alpha channel when it has one.
pub fn image_like(out: &LabImage, source: &DynamicImage) -> DynamicImage {
    let rgb = if crate::imageio::is_high_bit_depth(source) {
        DynamicImage::ImageRgb16(out.to_rgb16())
    } else {
        DynamicImage::ImageRgb8(out.to_rgb8())
    };
    crate::imageio::keep_alpha(rgb, source)
}

/// L*a*b* of a decoded image, at full precision for high-bit-depth inputs.
pub fn lab_of(img: &DynamicImage) -> LabImage {
    match img {
        DynamicImage::ImageLuma8(g) => LabImage::from_gray8(g),
        _ if crate::imageio::is_high_bit_depth(img) => LabImage::from_rgb32f(&img.to_rgb32f()),
        _ => LabImage::from_rgb8(&img.to_rgb8()),
    }
}

/// Whether an RGB image carries no colour (every pixel within 3 levels of gray): B&W photos
/// are often stored as RGB.
pub fn is_effectively_gray(img: &image::RgbImage) -> bool {
    img.pixels().all(|p| {
        let [r, g, b] = p.0;
        r.abs_diff(g) <= 3 && g.abs_diff(b) <= 3 && r.abs_diff(b) <= 3
    })
}
