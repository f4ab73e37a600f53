//! Image-quality metrics between a predicted and a ground-truth 8-bit sRGB image.
//!
//! Every metric is a plain function; [`compare`] computes all of them for one image pair
//! into a [`Metrics`] record (serialisable, so it can go straight into a JSON report), and
//! [`mean_metrics`] averages such records over a data set.
//!
//! | metric | function | range | better |
//! | --- | --- | --- | --- |
//! | PSNR over R, G, B (MAX = 255), capped at [`PSNR_CAP_DB`] | [`psnr`] | [0, 100] dB | higher |
//! | SSIM (Wang et al. 2004), mean of the R, G, B SSIMs | [`ssim`] | [-1, 1] | higher |
//! | mean CIEDE2000 colour difference | [`mean_ciede2000`] | >= 0 | lower |
//! | Hasler–Süsstrunk colourfulness of one image | [`colourfulness`] | >= 0 | (descriptive) |
//! | AuC of the cumulative ab-error curve, thresholds 0..=150 (Zhang et al. 2016) | [`ab_auc`] | [0, 1] | higher |
//! | colour cast: mean a\*, b\* of the prediction minus the truth's | [`Metrics::cast`] | >= 0 | lower |
//!
//! L*a*b* values come from [`crate::color::rgb8_to_lab`] (sRGB, D65).

use image::RgbImage;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

#[cfg(test)]
use crate::color::rgb8_to_lab;
use crate::color::{RGB_TO_XYZ, srgb_to_linear, xyz_to_lab};

/// PSNR reported for identical images (and the ceiling for any pair), in dB.
///
/// The true PSNR of identical images is infinite, which JSON cannot hold; 100 dB is far
/// above anything two different 8-bit images reach in practice (a single level of error in
/// one channel of one pixel of a 1-megapixel image is about 113 dB, which is also capped).
pub const PSNR_CAP_DB: f64 = 100.0;

/// Side of the SSIM Gaussian window (Wang et al. 2004).
pub const SSIM_WINDOW: usize = 11;
/// Standard deviation of the SSIM Gaussian window, in pixels.
pub const SSIM_SIGMA: f64 = 1.5;
/// SSIM stabilising constant K1.
pub const SSIM_K1: f64 = 0.01;
/// SSIM stabilising constant K2.
pub const SSIM_K2: f64 = 0.03;

/// Largest ab error threshold of [`ab_auc`]; thresholds are the integers `0..=AUC_MAX_THRESHOLD`.
pub const AUC_MAX_THRESHOLD: usize = 150;

/// Why two images could not be compared.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MetricsError {
    /// The two images do not have the same width and height.
    #[error("image sizes differ: prediction is {pred_w}x{pred_h}, ground truth is {truth_w}x{truth_h}")]
    SizeMismatch {
        pred_w: u32,
        pred_h: u32,
        truth_w: u32,
        truth_h: u32,
    },
    /// The images have no pixels.
    #[error("images are empty (0 pixels); nothing to compare")]
    Empty,
}

/// All metrics for one prediction / ground-truth pair, or their mean over several pairs
/// (see [`mean_metrics`]).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    /// How many image pairs these numbers describe (1 for [`compare`], N for a mean).
    pub images: usize,
    /// PSNR in dB over all three channels, capped at [`PSNR_CAP_DB`].
    pub psnr: f64,
    /// SSIM, mean over the R, G and B channels.
    pub ssim: f64,
    /// Mean CIEDE2000 ΔE over pixels.
    pub ciede2000: f64,
    /// Hasler–Süsstrunk colourfulness of the prediction.
    pub colourfulness: f64,
    /// Hasler–Süsstrunk colourfulness of the ground truth (for comparison).
    pub colourfulness_truth: f64,
    /// Area under the cumulative ab-error curve, in [0, 1].
    pub ab_auc: f64,
    /// Colour cast: the prediction's mean a\* over its pixels minus the truth's. Its mean over
    /// a set says whether a method tints everything one way (a sepia look is a positive a and
    /// b); see [`Metrics::cast`].
    #[serde(default)]
    pub cast_a: f64,
    /// The same for b\*.
    #[serde(default)]
    pub cast_b: f64,
}

impl Metrics {
    /// Size of the colour cast, `|(cast_a, cast_b)|` in a\*b\* units: of a mean over a set,
    /// the set-wide cast.
    pub fn cast(&self) -> f64 {
        self.cast_a.hypot(self.cast_b)
    }
}

/// Mean a\* and b\* of L\*a\*b\* pixels.
fn mean_ab(lab: &[[f32; 3]]) -> (f64, f64) {
    let (a, b) = lab
        .iter()
        .fold((0.0f64, 0.0f64), |(a, b), p| (a + p[1] as f64, b + p[2] as f64));
    let n = lab.len().max(1) as f64;
    (a / n, b / n)
}

fn check_sizes(pred: &RgbImage, truth: &RgbImage) -> Result<(), MetricsError> {
    if pred.dimensions() != truth.dimensions() {
        return Err(MetricsError::SizeMismatch {
            pred_w: pred.width(),
            pred_h: pred.height(),
            truth_w: truth.width(),
            truth_h: truth.height(),
        });
    }
    if pred.width() == 0 || pred.height() == 0 {
        return Err(MetricsError::Empty);
    }
    Ok(())
}

/// Computes every metric for one image pair.
///
/// # Errors
/// [`MetricsError::SizeMismatch`] when the sizes differ (the message names both),
/// [`MetricsError::Empty`] for 0-pixel images.
pub fn compare(pred: &RgbImage, truth: &RgbImage) -> Result<Metrics, MetricsError> {
    check_sizes(pred, truth)?;
    // The L*a*b* conversion is shared by CIEDE2000 and the ab AuC.
    let (lab_p, lab_t) = rayon::join(|| lab_pixels(pred), || lab_pixels(truth));
    let ((psnr, ssim), (de, (cf, cf_t))) = rayon::join(
        || (psnr_unchecked(pred, truth), ssim_unchecked(pred, truth)),
        || {
            (
                mean_ciede2000_lab(&lab_p, &lab_t),
                (colourfulness(pred), colourfulness(truth)),
            )
        },
    );
    let (mean_p, mean_t) = (mean_ab(&lab_p), mean_ab(&lab_t));
    Ok(Metrics {
        images: 1,
        psnr,
        ssim,
        ciede2000: de,
        colourfulness: cf,
        colourfulness_truth: cf_t,
        ab_auc: ab_auc_lab(&lab_p, &lab_t),
        cast_a: mean_p.0 - mean_t.0,
        cast_b: mean_p.1 - mean_t.1,
    })
}

/// Averages per-image metrics: every field is the plain mean over the records, weighted by
/// each record's `images` count (so means of means stay correct). PSNR is therefore averaged
/// per image in dB (each already capped at [`PSNR_CAP_DB`]), as image-colourisation papers
/// report it, not recomputed from a pooled MSE.
///
/// An empty slice (or records that all have `images == 0`) gives `Metrics::default()`,
/// i.e. `images == 0` and all values 0.
pub fn mean_metrics(all: &[Metrics]) -> Metrics {
    let n: usize = all.iter().map(|m| m.images).sum();
    if n == 0 {
        return Metrics::default();
    }
    let mean = |f: fn(&Metrics) -> f64| all.iter().map(|m| f(m) * m.images as f64).sum::<f64>() / n as f64;
    Metrics::per_measure(n, mean)
}

impl Metrics {
    /// A record of `images` whose every measure is `stat` of that measure.
    fn per_measure(images: usize, stat: impl Fn(fn(&Metrics) -> f64) -> f64) -> Metrics {
        Metrics {
            images,
            psnr: stat(|m| m.psnr),
            ssim: stat(|m| m.ssim),
            ciede2000: stat(|m| m.ciede2000),
            colourfulness: stat(|m| m.colourfulness),
            colourfulness_truth: stat(|m| m.colourfulness_truth),
            ab_auc: stat(|m| m.ab_auc),
            cast_a: stat(|m| m.cast_a),
            cast_b: stat(|m| m.cast_b),
        }
    }
}

/// Standard errors of [`mean_metrics`] over per-image records (`images == 1` each): the sample
/// standard deviation of each measure over the images divided by sqrt(n): how far the mean could
/// move on another set of images of the same kind (two sets' means differ by sqrt(2) times this
/// by chance alone). Two models scored on the same images differ by less noise, as the hard
/// images are hard for both. Fewer than two images give zeros.
pub fn standard_errors(all: &[Metrics]) -> Metrics {
    let n = all.len();
    if n < 2 {
        return Metrics {
            images: n,
            ..Metrics::default()
        };
    }
    let se = |f: fn(&Metrics) -> f64| {
        let mean = all.iter().map(f).sum::<f64>() / n as f64;
        let var = all.iter().map(|m| (f(m) - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
        (var / n as f64).sqrt()
    };
    Metrics::per_measure(n, se)
}

/// The ratio of the mean colourfulness of the predictions to the truth's over per-image records,
/// and its standard error (delta method: the residuals `o_i - R t_i` of the ratio estimate). The
/// ratio is what colourfulness targets are stated in ("0.9x the truth's").
pub fn colourfulness_ratio(all: &[Metrics]) -> (f64, f64) {
    let n = all.len() as f64;
    let truth = all.iter().map(|m| m.colourfulness_truth).sum::<f64>() / n;
    if all.is_empty() || truth <= 0.0 {
        return (0.0, 0.0);
    }
    let r = all.iter().map(|m| m.colourfulness).sum::<f64>() / n / truth;
    if all.len() < 2 {
        return (r, 0.0);
    }
    let ss: f64 = all
        .iter()
        .map(|m| (m.colourfulness - r * m.colourfulness_truth).powi(2))
        .sum();
    (r, (ss / (n * (n - 1.0))).sqrt() / truth)
}

// ---------------------------------------------------------------------------------------
// PSNR

/// Peak signal-to-noise ratio in dB over all pixels and all three channels, MAX = 255:
/// `min(10 log10(255² / MSE), PSNR_CAP_DB)`; identical images give exactly [`PSNR_CAP_DB`].
pub fn psnr(pred: &RgbImage, truth: &RgbImage) -> Result<f64, MetricsError> {
    check_sizes(pred, truth)?;
    Ok(psnr_unchecked(pred, truth))
}

fn psnr_unchecked(pred: &RgbImage, truth: &RgbImage) -> f64 {
    let (p, t): (&[u8], &[u8]) = (pred.as_raw(), truth.as_raw());
    let sse: u64 = p
        .par_chunks(1 << 16)
        .zip(t.par_chunks(1 << 16))
        .map(|(a, b)| {
            a.iter()
                .zip(b)
                .map(|(&x, &y)| {
                    let d = x.abs_diff(y) as u64;
                    d * d
                })
                .sum::<u64>()
        })
        .sum();
    if sse == 0 {
        return PSNR_CAP_DB;
    }
    let mse = sse as f64 / p.len() as f64;
    (10.0 * (255.0f64 * 255.0 / mse).log10()).min(PSNR_CAP_DB)
}

// ---------------------------------------------------------------------------------------
// SSIM

/// Structural similarity (Wang, Bovik, Sheikh & Simoncelli 2004), computed on each of the
/// R, G, B channels separately (8-bit values, L = 255) and averaged over the three channels.
///
/// Conventions, following the authors' reference `ssim.m` (without its optional automatic
/// downsampling): an 11x11 Gaussian window with σ = 1.5 normalised to sum 1, K1 = 0.01,
/// K2 = 0.03, local statistics only where the window lies fully inside the image ("valid"
/// filtering), and the SSIM map averaged over those positions. Images narrower or shorter
/// than 11 pixels use the window truncated to the largest odd size that fits along that
/// axis (renormalised). Identical images give exactly 1.
pub fn ssim(pred: &RgbImage, truth: &RgbImage) -> Result<f64, MetricsError> {
    check_sizes(pred, truth)?;
    Ok(ssim_unchecked(pred, truth))
}

/// Normalised 1-D Gaussian taps of half-width `half` (at most the SSIM window's).
fn gaussian_taps(half: usize) -> Vec<f32> {
    let g: Vec<f64> = (0..=2 * half)
        .map(|i| {
            let d = i as f64 - half as f64;
            (-(d * d) / (2.0 * SSIM_SIGMA * SSIM_SIGMA)).exp()
        })
        .collect();
    let s: f64 = g.iter().sum();
    g.iter().map(|v| (v / s) as f32).collect()
}

/// Separable "valid" filtering of a `w x h` plane: output is `(w - kx + 1) x (h - ky + 1)`.
fn filter_valid(input: &[f32], w: usize, h: usize, gx: &[f32], gy: &[f32]) -> Vec<f32> {
    let (wo, ho) = (w + 1 - gx.len(), h + 1 - gy.len());
    // Horizontal pass: h rows of wo.
    let mut tmp = vec![0.0f32; wo * h];
    tmp.par_chunks_mut(wo).enumerate().for_each(|(y, out)| {
        let row = &input[y * w..(y + 1) * w];
        for (k, &g) in gx.iter().enumerate() {
            for (o, &v) in out.iter_mut().zip(&row[k..k + wo]) {
                *o += g * v;
            }
        }
    });
    // Vertical pass: ho rows of wo.
    let mut out = vec![0.0f32; wo * ho];
    out.par_chunks_mut(wo).enumerate().for_each(|(y, o_row)| {
        for (k, &g) in gy.iter().enumerate() {
            let src = &tmp[(y + k) * wo..(y + k + 1) * wo];
            for (o, &v) in o_row.iter_mut().zip(src) {
                *o += g * v;
            }
        }
    });
    out
}

fn ssim_unchecked(pred: &RgbImage, truth: &RgbImage) -> f64 {
    let (w, h) = (pred.width() as usize, pred.height() as usize);
    let half = |n: usize| (SSIM_WINDOW / 2).min((n - 1) / 2);
    let (gx, gy) = (gaussian_taps(half(w)), gaussian_taps(half(h)));
    let c1 = (SSIM_K1 * 255.0) * (SSIM_K1 * 255.0);
    let c2 = (SSIM_K2 * 255.0) * (SSIM_K2 * 255.0);
    let (p, t) = (pred.as_raw(), truth.as_raw());
    let mut total = 0.0;
    for c in 0..3 {
        // Values are centred on 128 before filtering: the variances E[x²] - μ² are
        // shift-invariant, and the smaller magnitudes keep f32 cancellation negligible.
        let x: Vec<f32> = p.iter().skip(c).step_by(3).map(|&v| v as f32 - 128.0).collect();
        let y: Vec<f32> = t.iter().skip(c).step_by(3).map(|&v| v as f32 - 128.0).collect();
        let xx: Vec<f32> = x.iter().map(|v| v * v).collect();
        let yy: Vec<f32> = y.iter().map(|v| v * v).collect();
        let xy: Vec<f32> = x.iter().zip(&y).map(|(a, b)| a * b).collect();
        let f = |plane: &[f32]| filter_valid(plane, w, h, &gx, &gy);
        let (mx, my, sxx, syy, sxy) = (f(&x), f(&y), f(&xx), f(&yy), f(&xy));
        // Identical inputs give bit-identical maps here, so each ratio is exactly 1.
        let sum: f64 = (0..mx.len())
            .into_par_iter()
            .with_min_len(4096)
            .map(|i| {
                let (cx, cy) = (mx[i] as f64, my[i] as f64);
                let vx = sxx[i] as f64 - cx * cx;
                let vy = syy[i] as f64 - cy * cy;
                let cxy = sxy[i] as f64 - cx * cy;
                let (mx, my) = (cx + 128.0, cy + 128.0);
                ((2.0 * mx * my + c1) * (2.0 * cxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))
            })
            .sum();
        total += sum / mx.len() as f64;
    }
    total / 3.0
}

// ---------------------------------------------------------------------------------------
// CIEDE2000

/// CIEDE2000 colour difference ΔE00 between two L*a*b* colours (kL = kC = kH = 1),
/// following Sharma, Wu & Dalal (2005); computed in `f64` (see [`ciede2000_f64`]).
pub fn ciede2000(lab1: [f32; 3], lab2: [f32; 3]) -> f32 {
    ciede2000_f64(lab1.map(f64::from), lab2.map(f64::from)) as f32
}

/// CIEDE2000 in double precision, exactly as in Sharma, Wu & Dalal (2005), eq. (1)-(22):
/// hue angles in degrees in [0, 360), h' = 0 for a neutral colour, Δh' = 0 and
/// h̄' = h'1 + h'2 when either chroma is 0, and the `|h'1 - h'2| <= 180` branch taken for a
/// difference of exactly 180°.
pub fn ciede2000_f64(lab1: [f64; 3], lab2: [f64; 3]) -> f64 {
    const POW25_7: f64 = 6_103_515_625.0; // 25^7
    let [l1, a1, b1] = lab1;
    let [l2, a2, b2] = lab2;
    let c_ab = ((a1 * a1 + b1 * b1).sqrt() + (a2 * a2 + b2 * b2).sqrt()) / 2.0;
    let c7 = c_ab.powi(7);
    let g = 0.5 * (1.0 - (c7 / (c7 + POW25_7)).sqrt());
    let (a1p, a2p) = ((1.0 + g) * a1, (1.0 + g) * a2);
    let (c1p, c2p) = ((a1p * a1p + b1 * b1).sqrt(), (a2p * a2p + b2 * b2).sqrt());
    let hue = |b: f64, a: f64| {
        if a == 0.0 && b == 0.0 {
            0.0
        } else {
            let h = b.atan2(a).to_degrees();
            if h < 0.0 { h + 360.0 } else { h }
        }
    };
    let (h1p, h2p) = (hue(b1, a1p), hue(b2, a2p));

    let dl = l2 - l1;
    let dc = c2p - c1p;
    let neutral = c1p * c2p == 0.0;
    let dh = if neutral {
        0.0
    } else {
        let d = h2p - h1p;
        if d > 180.0 {
            d - 360.0
        } else if d < -180.0 {
            d + 360.0
        } else {
            d
        }
    };
    let dhh = 2.0 * (c1p * c2p).sqrt() * (dh.to_radians() / 2.0).sin();

    let lbar = (l1 + l2) / 2.0;
    let cbar = (c1p + c2p) / 2.0;
    let hbar = if neutral {
        h1p + h2p
    } else if (h1p - h2p).abs() <= 180.0 {
        (h1p + h2p) / 2.0
    } else if h1p + h2p < 360.0 {
        (h1p + h2p + 360.0) / 2.0
    } else {
        (h1p + h2p - 360.0) / 2.0
    };
    let cos_deg = |d: f64| d.to_radians().cos();
    let t = 1.0 - 0.17 * cos_deg(hbar - 30.0) + 0.24 * cos_deg(2.0 * hbar) + 0.32 * cos_deg(3.0 * hbar + 6.0)
        - 0.20 * cos_deg(4.0 * hbar - 63.0);
    let dtheta = 30.0 * (-((hbar - 275.0) / 25.0).powi(2)).exp();
    let cbar7 = cbar.powi(7);
    let rc = 2.0 * (cbar7 / (cbar7 + POW25_7)).sqrt();
    let l50 = (lbar - 50.0) * (lbar - 50.0);
    let sl = 1.0 + 0.015 * l50 / (20.0 + l50).sqrt();
    let sc = 1.0 + 0.045 * cbar;
    let sh = 1.0 + 0.015 * cbar * t;
    let rt = -(2.0 * dtheta).to_radians().sin() * rc;
    let (tl, tc, th) = (dl / sl, dc / sc, dhh / sh);
    (tl * tl + tc * tc + th * th + rt * tc * th).max(0.0).sqrt()
}

/// Mean CIEDE2000 ΔE over all pixels (both images converted with
/// [`crate::color::rgb8_to_lab`]).
pub fn mean_ciede2000(pred: &RgbImage, truth: &RgbImage) -> Result<f64, MetricsError> {
    check_sizes(pred, truth)?;
    let (p, t) = rayon::join(|| lab_pixels(pred), || lab_pixels(truth));
    Ok(mean_ciede2000_lab(&p, &t))
}

fn mean_ciede2000_lab(p: &[[f32; 3]], t: &[[f32; 3]]) -> f64 {
    let sum: f64 = p
        .par_iter()
        .zip(t)
        .with_min_len(4096)
        .map(|(&a, &b)| {
            if a == b {
                0.0
            } else {
                ciede2000_f64(a.map(f64::from), b.map(f64::from))
            }
        })
        .sum();
    sum / p.len() as f64
}

/// Converts every pixel to L*a*b*, bit-for-bit as [`crate::color::rgb8_to_lab`] does, but
/// with the sRGB linearisation (a `powf` per channel) taken from a 256-entry table.
fn lab_pixels(img: &RgbImage) -> Vec<[f32; 3]> {
    let lut: [f32; 256] = std::array::from_fn(|v| srgb_to_linear(v as f32 / 255.0));
    let m = &RGB_TO_XYZ;
    img.as_raw()
        .par_chunks_exact(3)
        .with_min_len(4096)
        .map(|c| {
            let v = [lut[c[0] as usize], lut[c[1] as usize], lut[c[2] as usize]];
            // Same operations in the same order as `color::srgb_to_xyz`.
            xyz_to_lab([
                m[0][0] * v[0] + m[0][1] * v[1] + m[0][2] * v[2],
                m[1][0] * v[0] + m[1][1] * v[1] + m[1][2] * v[2],
                m[2][0] * v[0] + m[2][1] * v[1] + m[2][2] * v[2],
            ])
        })
        .collect()
}

// ---------------------------------------------------------------------------------------
// Colourfulness

/// Hasler & Süsstrunk (2003) colourfulness M of an 8-bit sRGB image, on the raw 0..255
/// values: `rg = R - G`, `yb = (R + G)/2 - B`, `M = σ_rgyb + 0.3 μ_rgyb` with
/// `σ_rgyb = sqrt(σ_rg² + σ_yb²)`, `μ_rgyb = sqrt(μ_rg² + μ_yb²)`, σ being the population
/// standard deviation over all pixels. A gray image gives 0; an empty image gives 0.
pub fn colourfulness(img: &RgbImage) -> f64 {
    let n = (img.width() as u64) * (img.height() as u64);
    if n == 0 {
        return 0.0;
    }
    // Exact integer sums of rg and 2*yb (= R + G - 2B) and their squares.
    let (s_rg, s_rg2, s_yb2x, s_yb2x2) = img
        .as_raw()
        .par_chunks_exact(3)
        .with_min_len(4096)
        .fold(
            || (0i64, 0i64, 0i64, 0i64),
            |(a, b, c, d), p| {
                let rg = p[0] as i64 - p[1] as i64;
                let yb = p[0] as i64 + p[1] as i64 - 2 * p[2] as i64;
                (a + rg, b + rg * rg, c + yb, d + yb * yb)
            },
        )
        .reduce(|| (0, 0, 0, 0), |x, y| (x.0 + y.0, x.1 + y.1, x.2 + y.2, x.3 + y.3));
    let n128 = n as i128;
    // Population variance n²·σ² = n·Σx² - (Σx)², exact and non-negative in i128.
    let var = |s: i64, s2: i64| ((n128 * s2 as i128 - (s as i128) * (s as i128)) as f64) / (n as f64 * n as f64);
    let (mu_rg, mu_yb) = (s_rg as f64 / n as f64, s_yb2x as f64 / (2.0 * n as f64));
    let var_rg = var(s_rg, s_rg2);
    let var_yb = var(s_yb2x, s_yb2x2) / 4.0;
    (var_rg + var_yb).sqrt() + 0.3 * (mu_rg * mu_rg + mu_yb * mu_yb).sqrt()
}

// ---------------------------------------------------------------------------------------
// AuC of the ab error

/// Area under the cumulative per-pixel ab-error curve (Zhang, Isola & Efros 2016,
/// "Colorful Image Colorization", Table 1 "AuC").
///
/// Convention: both images are converted to L*a*b* with [`crate::color::rgb8_to_lab`]; each
/// pixel's error is the Euclidean distance between the (a, b) pairs, ignoring L. For every
/// integer threshold t = 0, 1, ..., 150 the fraction of pixels with error <= t is taken, and
/// the AuC is the mean of those 151 fractions, so it lies in [0, 1] and identical images give
/// exactly 1. (Zhang et al. report it as a percentage, i.e. 100 times this value, and also a
/// class-rebalanced variant, which this is not.)
pub fn ab_auc(pred: &RgbImage, truth: &RgbImage) -> Result<f64, MetricsError> {
    check_sizes(pred, truth)?;
    let (p, t) = rayon::join(|| lab_pixels(pred), || lab_pixels(truth));
    Ok(ab_auc_lab(&p, &t))
}

fn ab_auc_lab(p: &[[f32; 3]], t: &[[f32; 3]]) -> f64 {
    const BINS: usize = AUC_MAX_THRESHOLD + 1;
    // counts[k] = number of pixels whose smallest admissible threshold is k (k = ceil(err)).
    let counts = p
        .par_iter()
        .zip(t)
        .with_min_len(4096)
        .fold(
            || [0u64; BINS],
            |mut acc, (a, b)| {
                let (da, db) = (a[1] - b[1], a[2] - b[2]);
                let err = (da * da + db * db).sqrt();
                if err <= AUC_MAX_THRESHOLD as f32 {
                    acc[err.ceil() as usize] += 1;
                }
                acc
            },
        )
        .reduce(
            || [0u64; BINS],
            |mut x, y| {
                for (a, b) in x.iter_mut().zip(y) {
                    *a += b;
                }
                x
            },
        );
    let n = p.len() as f64;
    let mut cum = 0u64;
    let mut area = 0.0;
    for c in counts {
        cum += c;
        area += cum as f64 / n;
    }
    area / BINS as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::Rgb;

    /// Sharma, Wu & Dalal (2005), Table 1: L1 a1 b1, L2 a2 b2, ΔE00.
    const SHARMA: [[f64; 7]; 34] = [
        [50.0000, 2.6772, -79.7751, 50.0000, 0.0000, -82.7485, 2.0425],
        [50.0000, 3.1571, -77.2803, 50.0000, 0.0000, -82.7485, 2.8615],
        [50.0000, 2.8361, -74.0200, 50.0000, 0.0000, -82.7485, 3.4412],
        [50.0000, -1.3802, -84.2814, 50.0000, 0.0000, -82.7485, 1.0000],
        [50.0000, -1.1848, -84.8006, 50.0000, 0.0000, -82.7485, 1.0000],
        [50.0000, -0.9009, -85.5211, 50.0000, 0.0000, -82.7485, 1.0000],
        [50.0000, 0.0000, 0.0000, 50.0000, -1.0000, 2.0000, 2.3669],
        [50.0000, -1.0000, 2.0000, 50.0000, 0.0000, 0.0000, 2.3669],
        [50.0000, 2.4900, -0.0010, 50.0000, -2.4900, 0.0009, 7.1792],
        [50.0000, 2.4900, -0.0010, 50.0000, -2.4900, 0.0010, 7.1792],
        [50.0000, 2.4900, -0.0010, 50.0000, -2.4900, 0.0011, 7.2195],
        [50.0000, 2.4900, -0.0010, 50.0000, -2.4900, 0.0012, 7.2195],
        [50.0000, -0.0010, 2.4900, 50.0000, 0.0009, -2.4900, 4.8045],
        [50.0000, -0.0010, 2.4900, 50.0000, 0.0010, -2.4900, 4.8045],
        [50.0000, -0.0010, 2.4900, 50.0000, 0.0011, -2.4900, 4.7461],
        [50.0000, 2.5000, 0.0000, 50.0000, 0.0000, -2.5000, 4.3065],
        [50.0000, 2.5000, 0.0000, 73.0000, 25.0000, -18.0000, 27.1492],
        [50.0000, 2.5000, 0.0000, 61.0000, -5.0000, 29.0000, 22.8977],
        [50.0000, 2.5000, 0.0000, 56.0000, -27.0000, -3.0000, 31.9030],
        [50.0000, 2.5000, 0.0000, 58.0000, 24.0000, 15.0000, 19.4535],
        [50.0000, 2.5000, 0.0000, 50.0000, 3.1736, 0.5854, 1.0000],
        [50.0000, 2.5000, 0.0000, 50.0000, 3.2972, 0.0000, 1.0000],
        [50.0000, 2.5000, 0.0000, 50.0000, 1.8634, 0.5757, 1.0000],
        [50.0000, 2.5000, 0.0000, 50.0000, 3.2592, 0.3350, 1.0000],
        [60.2574, -34.0099, 36.2677, 60.4626, -34.1751, 39.4387, 1.2644],
        [63.0109, -31.0961, -5.8663, 62.8187, -29.7946, -4.0864, 1.2630],
        [61.2901, 3.7196, -5.3901, 61.4292, 2.2480, -4.9620, 1.8731],
        [35.0831, -44.1164, 3.7933, 35.0232, -40.0716, 1.5901, 1.8645],
        [22.7233, 20.0904, -46.6940, 23.0331, 14.9730, -42.5619, 2.0373],
        [36.4612, 47.8580, 18.3852, 36.2715, 50.5065, 21.2231, 1.4146],
        [90.8027, -2.0831, 1.4410, 91.1528, -1.6435, 0.0447, 1.4441],
        [90.9257, -0.5406, -0.9208, 88.6381, -0.8985, -0.7239, 1.5381],
        [6.7747, -0.2908, -2.4247, 5.8714, -0.0985, -2.2286, 0.6377],
        [2.0776, 0.0795, -1.1350, 0.9033, -0.0636, -0.5514, 0.9082],
    ];

    #[test]
    fn ciede2000_matches_all_34_sharma_pairs() {
        for (i, r) in SHARMA.iter().enumerate() {
            let (p1, p2) = ([r[0], r[1], r[2]], [r[3], r[4], r[5]]);
            let d64 = ciede2000_f64(p1, p2);
            assert!((d64 - r[6]).abs() <= 1e-4, "pair {}: f64 {d64}, want {}", i + 1, r[6]);
            // Symmetric.
            let back = ciede2000_f64(p2, p1);
            assert!((back - r[6]).abs() <= 1e-4, "pair {} reversed: {back}", i + 1);
            // The f32 interface too (inputs rounded to f32).
            let d32 = ciede2000(p1.map(|v| v as f32), p2.map(|v| v as f32));
            assert!(
                (d32 as f64 - r[6]).abs() <= 1e-4,
                "pair {}: f32 {d32}, want {}",
                i + 1,
                r[6]
            );
        }
    }

    #[test]
    fn ciede2000_of_identical_colours_is_zero() {
        assert_eq!(ciede2000([40.0, 30.0, -20.0], [40.0, 30.0, -20.0]), 0.0);
        assert_eq!(ciede2000([0.0; 3], [0.0; 3]), 0.0);
        // Pure lightness difference at L̄ = 50: S_L = 1, so ΔE = ΔL.
        assert!((ciede2000([45.0, 0.0, 0.0], [55.0, 0.0, 0.0]) - 10.0).abs() < 1e-5);
    }

    /// The cast of a prediction is its mean a* and b* minus the truth's: gray against half
    /// orange, half blue is minus the mean of the two colours' (a*, b*), from the plain
    /// conversion; a prediction equal to the truth has none.
    #[test]
    fn the_cast_is_the_mean_ab_difference() {
        let (orange, blue) = ([230u8, 140, 40], [40u8, 90, 200]);
        let truth = RgbImage::from_fn(8, 4, |x, _| Rgb(if x < 4 { orange } else { blue }));
        let gray = RgbImage::from_pixel(8, 4, Rgb([128, 128, 128]));
        let m = compare(&gray, &truth).unwrap();
        let (lo, lb, lg) = (
            crate::color::rgb8_to_lab(orange),
            crate::color::rgb8_to_lab(blue),
            crate::color::rgb8_to_lab([128, 128, 128]),
        );
        let want_a = lg[1] as f64 - (lo[1] as f64 + lb[1] as f64) / 2.0;
        let want_b = lg[2] as f64 - (lo[2] as f64 + lb[2] as f64) / 2.0;
        assert!(
            (m.cast_a - want_a).abs() < 1e-3 && (m.cast_b - want_b).abs() < 1e-3,
            "{m:?}"
        );
        assert!(lg[1].abs() < 0.01 && lg[2].abs() < 0.01, "sRGB gray is neutral: {lg:?}");
        let same = compare(&truth, &truth).unwrap();
        assert_eq!((same.cast_a, same.cast_b, same.cast()), (0.0, 0.0, 0.0));
    }

    fn noise_image(w: u32, h: u32, seed: u32) -> RgbImage {
        let mut s = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
        RgbImage::from_fn(w, h, |_, _| {
            let mut next = || {
                s ^= s << 13;
                s ^= s >> 17;
                s ^= s << 5;
                (s >> 24) as u8
            };
            Rgb([next(), next(), next()])
        })
    }

    #[test]
    fn fast_lab_conversion_is_bit_identical() {
        let img = noise_image(64, 64, 11);
        let fast = lab_pixels(&img);
        for (p, l) in img.pixels().zip(&fast) {
            assert_eq!(rgb8_to_lab(p.0), *l);
        }
        let grays = RgbImage::from_fn(256, 1, |x, _| Rgb([x as u8, x as u8, x as u8]));
        for (p, l) in grays.pixels().zip(lab_pixels(&grays)) {
            assert_eq!(rgb8_to_lab(p.0), l);
        }
    }

    #[test]
    fn identical_images_score_perfectly() {
        let img = noise_image(23, 17, 7);
        let m = compare(&img, &img).unwrap();
        assert_eq!(m.images, 1);
        assert_eq!(m.psnr, PSNR_CAP_DB);
        assert_eq!(m.ssim, 1.0);
        assert_eq!(m.ciede2000, 0.0);
        assert_eq!(m.ab_auc, 1.0);
        assert_eq!(m.colourfulness, m.colourfulness_truth);
        // Also for images smaller than the SSIM window.
        let tiny = noise_image(3, 2, 1);
        assert_eq!(ssim(&tiny, &tiny).unwrap(), 1.0);
        // JSON round trip (no infinities).
        let json = serde_json::to_string(&m).unwrap();
        let back: Metrics = serde_json::from_str(&json).unwrap();
        assert_eq!(back, m);
    }

    #[test]
    fn psnr_of_known_mse() {
        // Every channel of every pixel off by exactly 5: MSE = 25,
        // PSNR = 10 log10(65025 / 25) = 34.1514 dB.
        let a = RgbImage::from_pixel(8, 4, Rgb([100, 150, 200]));
        let b = RgbImage::from_pixel(8, 4, Rgb([105, 145, 205]));
        let p = psnr(&a, &b).unwrap();
        assert!((p - 10.0 * (65025.0f64 / 25.0).log10()).abs() < 1e-9, "{p}");
        assert!((p - 34.1514).abs() < 1e-4);
    }

    #[test]
    fn ssim_of_constant_images_has_closed_form() {
        // Constant images: σ terms vanish, SSIM = (2 μx μy + C1) / (μx² + μy² + C1)
        // with C1 = 6.5025; for μx = 100, μy = 120: 24006.5025 / 24406.5025 = 0.983611.
        let a = RgbImage::from_pixel(16, 16, Rgb([100, 100, 100]));
        let b = RgbImage::from_pixel(16, 16, Rgb([120, 120, 120]));
        let s = ssim(&a, &b).unwrap();
        let c1 = 6.5025;
        let want = (2.0 * 100.0 * 120.0 + c1) / (100.0f64 * 100.0 + 120.0 * 120.0 + c1);
        assert!((s - want).abs() < 1e-5, "{s} vs {want}");
        // Structure destroyed: noise vs its inverse correlates negatively.
        let n = noise_image(32, 32, 3);
        let mut inv = n.clone();
        inv.pixels_mut().for_each(|p| p.0 = p.0.map(|v| 255 - v));
        assert!(ssim(&n, &inv).unwrap() < 0.0);
    }

    #[test]
    fn colourfulness_hand_computed() {
        // Half the pixels pure red (255, 0, 0), half black:
        // rg ∈ {255, 0}: μ = 127.5, σ = 127.5; yb ∈ {127.5, 0}: μ = 63.75, σ = 63.75.
        // σ_rgyb = μ_rgyb = sqrt(127.5² + 63.75²) = 142.549334...
        // M = 1.3 × 142.549334 = 185.314134...
        let img = RgbImage::from_fn(10, 6, |x, _| if x < 5 { Rgb([255, 0, 0]) } else { Rgb([0, 0, 0]) });
        let want = 1.3 * (127.5f64 * 127.5 + 63.75 * 63.75).sqrt();
        assert!((colourfulness(&img) - want).abs() < 1e-9);
        assert!((colourfulness(&img) - 185.3141).abs() < 1e-4);
        // Any gray image has zero colourfulness.
        let gray = RgbImage::from_fn(9, 7, |x, y| {
            let v = (x * 20 + y * 7) as u8;
            Rgb([v, v, v])
        });
        assert_eq!(colourfulness(&gray), 0.0);
    }

    #[test]
    fn auc_counts_thresholds_inclusively() {
        // Prediction = truth except half of the pixels get a different colour whose ab
        // distance e is computed below; AuC = (1/151) Σ_t frac(err <= t)
        //   = (1/151) [ (ceil(e)) × 0.5 + (151 - ceil(e)) × 1 ].
        let truth = RgbImage::from_pixel(4, 4, Rgb([128, 128, 128]));
        let mut pred = truth.clone();
        for y in 0..2 {
            for x in 0..4 {
                pred.put_pixel(x, y, Rgb([150, 110, 128]));
            }
        }
        let (lp, lt) = (rgb8_to_lab([150, 110, 128]), rgb8_to_lab([128, 128, 128]));
        let e = ((lp[1] - lt[1]).powi(2) + (lp[2] - lt[2]).powi(2)).sqrt();
        let k = e.ceil() as f64;
        let want = (k * 0.5 + (151.0 - k)) / 151.0;
        let got = ab_auc(&pred, &truth).unwrap();
        assert!((got - want).abs() < 1e-12, "{got} vs {want} (e = {e})");
        // Errors above 150 never count: pure green vs pure magenta are > 150 apart in ab.
        let g = RgbImage::from_pixel(2, 2, Rgb([0, 255, 0]));
        let m = RgbImage::from_pixel(2, 2, Rgb([255, 0, 255]));
        assert_eq!(ab_auc(&g, &m).unwrap(), 0.0);
    }

    #[test]
    fn size_mismatch_is_a_clear_error() {
        let a = RgbImage::new(4, 3);
        let b = RgbImage::new(3, 4);
        let err = compare(&a, &b).unwrap_err();
        assert_eq!(
            err,
            MetricsError::SizeMismatch {
                pred_w: 4,
                pred_h: 3,
                truth_w: 3,
                truth_h: 4
            }
        );
        let msg = err.to_string();
        assert!(msg.contains("4x3") && msg.contains("3x4"), "{msg}");
        assert_eq!(
            compare(&RgbImage::new(0, 0), &RgbImage::new(0, 0)),
            Err(MetricsError::Empty)
        );
    }

    /// Hand-computed: PSNR 1, 2, 3, 4 has sample variance 5/3, so the standard error of its mean
    /// is sqrt(5/12); a constant measure has none; colourfulness 1 and 3 against a truth of 1
    /// and 1 is a ratio of 2 whose standard error equals that of the mean of 1 and 3 (1).
    #[test]
    fn standard_errors_of_the_means() {
        let one = |psnr: f64, cf: f64| Metrics {
            images: 1,
            psnr,
            ssim: 0.5,
            colourfulness: cf,
            colourfulness_truth: 1.0,
            ..Metrics::default()
        };
        let all = [one(1.0, 1.0), one(2.0, 3.0), one(3.0, 1.0), one(4.0, 3.0)];
        let se = standard_errors(&all);
        assert_eq!(se.images, 4);
        assert!((se.psnr - (5.0f64 / 12.0).sqrt()).abs() < 1e-12, "{}", se.psnr);
        assert_eq!(se.ssim, 0.0);
        assert_eq!(standard_errors(&all[..1]).psnr, 0.0);
        let (r, r_se) = colourfulness_ratio(&all[..2]);
        assert!((r - 2.0).abs() < 1e-12 && (r_se - 1.0).abs() < 1e-12, "{r} {r_se}");
        // Outputs exactly proportional to the truth: the ratio is known without error.
        let prop = [
            one(0.0, 2.0),
            Metrics {
                colourfulness_truth: 3.0,
                ..one(0.0, 6.0)
            },
        ];
        assert_eq!(colourfulness_ratio(&prop), (2.0, 0.0));
        assert_eq!(colourfulness_ratio(&[]), (0.0, 0.0));
    }

    #[test]
    fn mean_metrics_weights_by_image_count() {
        let m1 = Metrics {
            images: 1,
            psnr: 30.0,
            ssim: 0.9,
            ciede2000: 5.0,
            colourfulness: 10.0,
            colourfulness_truth: 20.0,
            ab_auc: 0.8,
            cast_a: 4.0,
            cast_b: -1.0,
        };
        let m2 = Metrics {
            images: 3,
            psnr: 100.0,
            ssim: 0.5,
            ciede2000: 1.0,
            colourfulness: 30.0,
            colourfulness_truth: 40.0,
            ab_auc: 0.4,
            cast_a: 0.0,
            cast_b: 3.0,
        };
        let m = mean_metrics(&[m1, m2]);
        assert_eq!(m.images, 4);
        assert!((m.psnr - 82.5).abs() < 1e-12);
        assert!((m.ssim - 0.6).abs() < 1e-12);
        assert!((m.ciede2000 - 2.0).abs() < 1e-12);
        assert!((m.colourfulness - 25.0).abs() < 1e-12);
        assert!((m.colourfulness_truth - 35.0).abs() < 1e-12);
        assert!((m.ab_auc - 0.5).abs() < 1e-12);
        assert!((m.cast_a - 1.0).abs() < 1e-12 && (m.cast_b - 2.0).abs() < 1e-12);
        assert!((m.cast() - 5f64.sqrt()).abs() < 1e-12);
        assert_eq!(mean_metrics(&[]), Metrics::default());
    }
}
