//! Image-quality metrics between a prediction and its ground truth.

use image::RgbImage;

/// PSNR returned for identical images (the true value is infinite), so that averages and JSON
/// stay finite.
pub const PSNR_CAP: f64 = 100.0;

/// Peak signal-to-noise ratio on 8-bit RGB over all channels, in dB, capped at [`PSNR_CAP`].
/// The images must have the same size.
pub fn psnr(pred: &RgbImage, truth: &RgbImage) -> f64 {
    assert_eq!(
        pred.dimensions(),
        truth.dimensions(),
        "psnr needs images of the same size"
    );
    let n = pred.as_raw().len().max(1) as f64;
    let se: f64 = pred
        .as_raw()
        .iter()
        .zip(truth.as_raw())
        .map(|(&a, &b)| (a as f64 - b as f64).powi(2))
        .sum();
    if se == 0.0 {
        PSNR_CAP
    } else {
        (10.0 * (255.0f64 * 255.0 / (se / n)).log10()).min(PSNR_CAP)
    }
}
