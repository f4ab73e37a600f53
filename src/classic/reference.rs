//! Colour from a reference image.
//!
//! * [`reinhard_transfer`]: Reinhard, Ashikhmin, Gooch & Shirley (2001), "Color Transfer
//!   between Images" — for a colour target.
//! * [`welsh_transfer`]: Welsh, Ashikhmin & Mueller (2002), "Transferring Color to Greyscale
//!   Images" — for a gray target (global matching, no swatches).

use image::RgbImage;
use rayon::prelude::*;

use super::{ClassicError, SplitMix64, check_lab, with_ab};
use crate::color::{LabImage, linear_to_srgb, rgb8_to_lab, srgb_to_linear};

// ---------------------------------------------------------------------------------------
// Reinhard et al. 2001

/// RGB -> LMS (Reinhard et al. 2001, eq. 4).
const RGB_TO_LMS: [[f64; 3]; 3] = [
    [0.3811, 0.5783, 0.0402],
    [0.1967, 0.7244, 0.0782],
    [0.0241, 0.1288, 0.8444],
];

/// LMS -> RGB: the exact inverse of [`RGB_TO_LMS`]. The paper's eq. 9 matrix (4.4679,
/// -3.5873, 0.1193; -1.2186, 2.3809, -0.1624; 0.0497, -0.2439, 1.2045) is not quite the
/// inverse of its eq. 4 (its last row is off by up to 0.02), so with it even a transfer to
/// identical statistics would shift colours by a few 8-bit levels.
fn lms_to_rgb() -> [[f64; 3]; 3] {
    let m = RGB_TO_LMS;
    let cof = |r: usize, c: usize| {
        let (r1, r2) = ((r + 1) % 3, (r + 2) % 3);
        let (c1, c2) = ((c + 1) % 3, (c + 2) % 3);
        m[r1][c1] * m[r2][c2] - m[r1][c2] * m[r2][c1]
    };
    let det = m[0][0] * cof(0, 0) + m[0][1] * cof(0, 1) + m[0][2] * cof(0, 2);
    // inverse[i][j] = cofactor(j, i) / det
    std::array::from_fn(|i| std::array::from_fn(|j| cof(j, i) / det))
}

/// Floor applied to linear LMS before the logarithm, so black pixels stay finite; it lies
/// below the smallest non-zero 8-bit value (linear 1/255/12.92 ≈ 3.0e-4) and converts back to
/// well under half an 8-bit level.
const LMS_FLOOR: f64 = 1e-4;

#[inline]
fn mat3(m: &[[f64; 3]; 3], v: [f64; 3]) -> [f64; 3] {
    [
        m[0][0] * v[0] + m[0][1] * v[1] + m[0][2] * v[2],
        m[1][0] * v[0] + m[1][1] * v[1] + m[1][2] * v[2],
        m[2][0] * v[0] + m[2][1] * v[1] + m[2][2] * v[2],
    ]
}

/// 8-bit sRGB -> Ruderman's lαβ via linear RGB, LMS and log10 (Reinhard eq. 4-6).
fn rgb8_to_lalphabeta(p: [u8; 3]) -> [f64; 3] {
    let lin = p.map(|c| srgb_to_linear(c as f32 / 255.0) as f64);
    let [l, m, s] = mat3(&RGB_TO_LMS, lin).map(|v| v.max(LMS_FLOOR).log10());
    [
        (l + m + s) / 3f64.sqrt(),
        (l + m - 2.0 * s) / 6f64.sqrt(),
        (l - m) / 2f64.sqrt(),
    ]
}

/// lαβ -> 8-bit sRGB (Reinhard eq. 8-9), clamping out-of-gamut linear values to [0, 1].
fn lalphabeta_to_rgb8(v: [f64; 3], lms_to_rgb: &[[f64; 3]; 3]) -> [u8; 3] {
    let (a, b, c) = (v[0] / 3f64.sqrt(), v[1] / 6f64.sqrt(), v[2] / 2f64.sqrt());
    let lms = [a + b + c, a + b - c, a - 2.0 * b].map(|x| 10f64.powf(x));
    mat3(lms_to_rgb, lms).map(|x| {
        let s = linear_to_srgb(x.clamp(0.0, 1.0) as f32);
        (s * 255.0).round().clamp(0.0, 255.0) as u8
    })
}

/// Per-channel mean and (population) standard deviation.
fn stats3(px: &[[f64; 3]]) -> ([f64; 3], [f64; 3]) {
    let n = px.len() as f64;
    let mut mean = [0.0; 3];
    for p in px {
        for k in 0..3 {
            mean[k] += p[k];
        }
    }
    mean = mean.map(|m| m / n);
    let mut var = [0.0; 3];
    for p in px {
        for k in 0..3 {
            var[k] += (p[k] - mean[k]).powi(2);
        }
    }
    (mean, var.map(|v| (v / n).sqrt()))
}

/// Reinhard et al. (2001) colour transfer: gives `target` the colour statistics of
/// `reference`.
///
/// Both images go to Ruderman's lαβ space — sRGB is linearised first (the LMS matrix is a
/// linear-light transform), then RGB -> LMS (paper eq. 4), log10, and the decorrelating
/// lαβ transform (eq. 6); linear LMS is floored at 1e-4 so black stays finite. Each of the
/// three channels is shifted and scaled so that its mean and standard deviation equal the
/// reference's (eq. 10-11; a flat target channel is only shifted), and the result goes back
/// through eq. 8-9, with out-of-gamut linear values clipped to [0, 1].
///
/// A target whose statistics already equal the reference's (e.g. `target == reference`)
/// comes back unchanged to within one 8-bit level. An empty target gives an empty output.
///
/// # Errors
/// [`ClassicError::EmptyImage`] when `reference` has no pixels.
pub fn reinhard_transfer(target: &RgbImage, reference: &RgbImage) -> Result<RgbImage, ClassicError> {
    if reference.width() == 0 || reference.height() == 0 {
        return Err(ClassicError::EmptyImage { what: "reference" });
    }
    let convert = |img: &RgbImage| -> Vec<[f64; 3]> {
        img.as_raw()
            .par_chunks_exact(3)
            .with_min_len(4096)
            .map(|c| rgb8_to_lalphabeta([c[0], c[1], c[2]]))
            .collect()
    };
    let (tgt, rf) = rayon::join(|| convert(target), || convert(reference));
    if tgt.is_empty() {
        return Ok(target.clone());
    }
    let ((mt, st), (mr, sr)) = (stats3(&tgt), stats3(&rf));
    let scale: [f64; 3] = std::array::from_fn(|k| if st[k] > 0.0 { sr[k] / st[k] } else { 1.0 });
    let inv = lms_to_rgb();
    let mut out = RgbImage::new(target.width(), target.height());
    out.par_chunks_exact_mut(3)
        .zip(tgt.par_iter())
        .with_min_len(4096)
        .for_each(|(o, p)| {
            let v: [f64; 3] = std::array::from_fn(|k| (p[k] - mt[k]) * scale[k] + mr[k]);
            o.copy_from_slice(&lalphabeta_to_rgb8(v, &inv));
        });
    Ok(out)
}

// ---------------------------------------------------------------------------------------
// Welsh et al. 2002

/// Number of jittered-grid samples Welsh et al. take from the reference.
pub const WELSH_SAMPLES: usize = 200;
/// Side of the neighbourhood over which Welsh's luminance standard deviation is taken.
pub const WELSH_WINDOW: usize = 5;

/// One reference sample: remapped luminance, neighbourhood std, chroma.
#[derive(Clone, Copy, Debug)]
struct Sample {
    l: f32,
    sd: f32,
    a: f32,
    b: f32,
}

/// Mean and population standard deviation of a plane (f64 accumulation).
fn mean_sd(v: &[f32]) -> (f64, f64) {
    let n = v.len() as f64;
    let mean = v.par_iter().map(|&x| x as f64).sum::<f64>() / n;
    let var = v.par_iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / n;
    (mean, var.sqrt())
}

/// Standard deviation of `plane` over the `WELSH_WINDOW`² window centred on every pixel
/// (clipped at the borders: only in-image pixels count), via summed-area tables.
fn local_sd(plane: &[f32], w: usize, h: usize) -> Vec<f32> {
    let r = WELSH_WINDOW / 2;
    let stride = w + 1;
    let mut s1 = vec![0.0f64; stride * (h + 1)];
    let mut s2 = vec![0.0f64; stride * (h + 1)];
    for y in 0..h {
        let (mut r1, mut r2) = (0.0, 0.0);
        for x in 0..w {
            let v = plane[y * w + x] as f64;
            r1 += v;
            r2 += v * v;
            s1[(y + 1) * stride + x + 1] = s1[y * stride + x + 1] + r1;
            s2[(y + 1) * stride + x + 1] = s2[y * stride + x + 1] + r2;
        }
    }
    let mut out = vec![0.0f32; w * h];
    out.par_chunks_mut(w).enumerate().for_each(|(y, row)| {
        let (y0, y1) = (y.saturating_sub(r), (y + r + 1).min(h));
        for (x, o) in row.iter_mut().enumerate() {
            let (x0, x1) = (x.saturating_sub(r), (x + r + 1).min(w));
            let n = ((y1 - y0) * (x1 - x0)) as f64;
            let rect =
                |s: &[f64]| s[y1 * stride + x1] - s[y0 * stride + x1] - s[y1 * stride + x0] + s[y0 * stride + x0];
            let m = rect(&s1) / n;
            *o = (rect(&s2) / n - m * m).max(0.0).sqrt() as f32;
        }
    });
    out
}

/// Neighbourhood standard deviation at one pixel (same window as [`local_sd`]).
fn local_sd_at(plane: &[f32], w: usize, h: usize, x: usize, y: usize) -> f32 {
    let r = WELSH_WINDOW / 2;
    let (mut s1, mut s2, mut n) = (0.0f64, 0.0f64, 0.0f64);
    for yy in y.saturating_sub(r)..(y + r + 1).min(h) {
        for xx in x.saturating_sub(r)..(x + r + 1).min(w) {
            let v = plane[yy * w + xx] as f64;
            s1 += v;
            s2 += v * v;
            n += 1.0;
        }
    }
    let m = s1 / n;
    (s2 / n - m * m).max(0.0).sqrt() as f32
}

/// Columns and rows of the jittered sampling grid for a `w x h` reference: about
/// [`WELSH_SAMPLES`] cells shaped like the image, never more cells than pixels along an axis
/// nor more than [`WELSH_SAMPLES`] in all.
fn sample_grid(w: usize, h: usize) -> (usize, usize) {
    let n = WELSH_SAMPLES as f64;
    let cols = ((n * w as f64 / h as f64).sqrt().round() as usize).clamp(1, w.min(WELSH_SAMPLES));
    let rows = ((n / cols as f64).round() as usize).clamp(1, h);
    (cols, rows.min(WELSH_SAMPLES / cols).max(1))
}

/// Welsh, Ashikhmin & Mueller (2002) global colour transfer to a gray image.
///
/// Works in CIE L*a*b* (the project's space) where the paper used lαβ; L plays the role of
/// the paper's luminance and (a, b) of its chromatic channels:
///
/// 1. Luminance remapping: the reference's L is mapped linearly to the target's L mean and
///    standard deviation, `L' = (σ_t/σ_r)(L - μ_r) + μ_t` (only shifted if σ_r = 0).
/// 2. About [`WELSH_SAMPLES`] samples are drawn from the reference on a jittered grid (one
///    uniformly random pixel per cell of a grid of ~200 cells shaped like the image), using a
///    SplitMix64 generator seeded with `seed`; each keeps its remapped L, the standard
///    deviation of remapped L over its 5x5 neighbourhood (clipped at the borders), and its
///    (a, b).
/// 3. For every target pixel, with its own L and 5x5 standard deviation, the sample
///    minimising `0.5 |ΔL| + 0.5 |Δσ|` (the paper's equal weighting) gives the pixel's (a, b);
///    the search runs over the samples sorted by L and stops once `0.5 |ΔL|` alone exceeds the
///    best score, which is exact and fast. Ties go to the sample of lower remapped L.
///
/// The output's L plane is an exact copy of `target_l.l`; `target_l.a`/`.b` are ignored.
///
/// # Errors
/// [`ClassicError::MalformedLab`] for inconsistent planes, [`ClassicError::EmptyImage`] for a
/// reference without pixels.
pub fn welsh_transfer(target_l: &LabImage, reference: &RgbImage, seed: u64) -> Result<LabImage, ClassicError> {
    let n = check_lab(target_l)?;
    if reference.width() == 0 || reference.height() == 0 {
        return Err(ClassicError::EmptyImage { what: "reference" });
    }
    if n == 0 {
        return Ok(with_ab(target_l, Vec::new(), Vec::new()));
    }
    let (tw, th) = (target_l.width as usize, target_l.height as usize);
    let (rw, rh) = (reference.width() as usize, reference.height() as usize);
    let rf: Vec<[f32; 3]> = reference
        .as_raw()
        .par_chunks_exact(3)
        .with_min_len(4096)
        .map(|c| rgb8_to_lab([c[0], c[1], c[2]]))
        .collect();
    let ref_l: Vec<f32> = rf.iter().map(|p| p[0]).collect();

    // 1. Luminance remapping.
    let ((mt, st), (mr, sr)) = (mean_sd(&target_l.l), mean_sd(&ref_l));
    let k = if sr > 0.0 { st / sr } else { 1.0 };
    let remapped: Vec<f32> = ref_l.par_iter().map(|&l| ((l as f64 - mr) * k + mt) as f32).collect();

    // 2. Jittered-grid samples.
    let (cols, rows) = sample_grid(rw, rh);
    let mut rng = SplitMix64::new(seed);
    let mut samples = Vec::with_capacity(rows * cols);
    for gy in 0..rows {
        let (y0, y1) = (gy * rh / rows, (gy + 1) * rh / rows);
        for gx in 0..cols {
            let (x0, x1) = (gx * rw / cols, (gx + 1) * rw / cols);
            let x = x0 + rng.below(x1 - x0);
            let y = y0 + rng.below(y1 - y0);
            let i = y * rw + x;
            samples.push(Sample {
                l: remapped[i],
                sd: local_sd_at(&remapped, rw, rh, x, y),
                a: rf[i][1],
                b: rf[i][2],
            });
        }
    }
    samples.sort_by(|p, q| p.l.total_cmp(&q.l));
    let keys: Vec<f32> = samples.iter().map(|s| s.l).collect();

    // 3. Matching.
    let sd = local_sd(&target_l.l, tw, th);
    let mut a = vec![0.0f32; n];
    let mut b = vec![0.0f32; n];
    a.par_iter_mut()
        .zip(b.par_iter_mut())
        .zip(target_l.l.par_iter().zip(sd.par_iter()))
        .with_min_len(1024)
        .for_each(|((pa, pb), (&l, &s))| {
            let best = &samples[best_match(&samples, &keys, l, s)];
            *pa = best.a;
            *pb = best.b;
        });
    Ok(with_ab(target_l, a, b))
}

/// Index of the sample minimising `0.5 |ΔL| + 0.5 |Δσ|`; `samples` is sorted by `l` and
/// `keys[i] == samples[i].l`. Ties go to the lower index.
fn best_match(samples: &[Sample], keys: &[f32], l: f32, sd: f32) -> usize {
    let start = keys.partition_point(|&k| k < l);
    let score = |s: &Sample| 0.5 * (s.l - l).abs() + 0.5 * (s.sd - sd).abs();
    let (mut best, mut best_i) = (f32::INFINITY, 0);
    // Walk downwards from just below `l`, then upwards, pruning on the L term alone.
    for i in (0..start).rev() {
        if 0.5 * (l - keys[i]) > best {
            break;
        }
        let v = score(&samples[i]);
        if v <= best {
            (best, best_i) = (v, i);
        }
    }
    for (i, s) in samples.iter().enumerate().skip(start) {
        if 0.5 * (keys[i] - l) > best {
            break;
        }
        let v = score(s);
        if v < best {
            (best, best_i) = (v, i);
        }
    }
    best_i
}

#[cfg(test)]
mod tests {
    use super::*;

    use image::Rgb;

    fn textured(w: u32, h: u32) -> RgbImage {
        RgbImage::from_fn(w, h, |x, y| {
            Rgb([
                (40 + (x * 7 + y * 3) % 180) as u8,
                (30 + (x * 2 + y * 11) % 200) as u8,
                (60 + (x * 5 + y * 5) % 150) as u8,
            ])
        })
    }

    #[test]
    fn lalphabeta_round_trips() {
        // The exact inverse is close to the paper's eq. 9 matrix (within 0.02).
        let paper = [
            [4.4679, -3.5873, 0.1193],
            [-1.2186, 2.3809, -0.1624],
            [0.0497, -0.2439, 1.2045],
        ];
        let inv = lms_to_rgb();
        for i in 0..3 {
            for j in 0..3 {
                assert!((inv[i][j] - paper[i][j]).abs() < 0.02, "{inv:?}");
            }
        }
        for p in [[0u8, 0, 0], [255, 255, 255], [255, 0, 0], [12, 200, 77], [1, 1, 1]] {
            assert_eq!(lalphabeta_to_rgb8(rgb8_to_lalphabeta(p), &lms_to_rgb()), p);
        }
        // Gray (R = G = B) has α ≈ β ≈ 0 (the LMS rows sum to 1 within 1e-4).
        let g = rgb8_to_lalphabeta([128, 128, 128]);
        assert!(g[1].abs() < 1e-3 && g[2].abs() < 1e-3, "{g:?}");
    }

    #[test]
    fn reinhard_with_target_equal_to_reference_is_identity() {
        let img = textured(37, 23);
        let out = reinhard_transfer(&img, &img).unwrap();
        for (p, q) in img.pixels().zip(out.pixels()) {
            for k in 0..3 {
                assert!(p.0[k].abs_diff(q.0[k]) <= 1, "{p:?} -> {q:?}");
            }
        }
    }

    #[test]
    fn reinhard_matches_reference_statistics() {
        // A bluish target and a warm reference (moderate colours, so little clipping).
        let target = RgbImage::from_fn(32, 32, |x, y| {
            Rgb([(60 + x * 2) as u8, (80 + y) as u8, (150 + (x + y) % 40) as u8])
        });
        let reference = RgbImage::from_fn(24, 20, |x, y| {
            Rgb([(170 + x) as u8, (110 + y * 2) as u8, (60 + (x * y) % 30) as u8])
        });
        let out = reinhard_transfer(&target, &reference).unwrap();
        let stats = |img: &RgbImage| {
            let v: Vec<[f64; 3]> = img.pixels().map(|p| rgb8_to_lalphabeta(p.0)).collect();
            stats3(&v)
        };
        let ((mo, so), (mr, sr)) = (stats(&out), stats(&reference));
        for k in 0..3 {
            assert!((mo[k] - mr[k]).abs() < 0.01, "mean {k}: {mo:?} vs {mr:?}");
            assert!((so[k] - sr[k]).abs() < 0.01, "sd {k}: {so:?} vs {sr:?}");
        }
        assert!(reinhard_transfer(&target, &RgbImage::new(0, 0)).is_err());
    }

    /// Left half dark, right half bright.
    fn two_tone_target(w: u32, h: u32) -> LabImage {
        let mut img = LabImage::from_gray8(&image::GrayImage::from_fn(w, h, |x, _| {
            image::Luma([if x < w / 2 { 50 } else { 210 }])
        }));
        // Colour in the input's a, b must be ignored.
        img.a.iter_mut().for_each(|v| *v = 55.0);
        img
    }

    #[test]
    fn welsh_colours_dark_blue_and_bright_yellow() {
        let (w, h) = (40u32, 24u32);
        let target = two_tone_target(w, h);
        // Reference: a dark blue half on top, a bright yellow half below (different layout
        // from the target on purpose: matching is by luminance, not position).
        let reference = RgbImage::from_fn(30, 30, |_, y| {
            if y < 15 {
                Rgb([20, 30, 110])
            } else {
                Rgb([235, 220, 60])
            }
        });
        let out = welsh_transfer(&target, &reference, 7).unwrap();
        assert_eq!(out.l, target.l, "L must be preserved exactly");
        let blue = rgb8_to_lab([20, 30, 110]);
        let yellow = rgb8_to_lab([235, 220, 60]);
        for y in 0..h as usize {
            for x in 0..w as usize {
                let i = y * w as usize + x;
                // Away from the edge (std 0 there), the match is exact.
                if x + 3 < w as usize / 2 {
                    assert!(out.b[i] < 0.0, "dark pixel ({x},{y}) b = {}", out.b[i]);
                    assert_eq!([out.a[i], out.b[i]], [blue[1], blue[2]]);
                } else if x >= w as usize / 2 + 3 {
                    assert!(out.b[i] > 0.0, "bright pixel ({x},{y}) b = {}", out.b[i]);
                    assert_eq!([out.a[i], out.b[i]], [yellow[1], yellow[2]]);
                }
            }
        }
        // Deterministic for a seed.
        assert_eq!(welsh_transfer(&target, &reference, 7).unwrap(), out);
    }

    #[test]
    fn welsh_best_match_is_exhaustive_minimum() {
        let mut rng = SplitMix64::new(3);
        let mut f = || (rng.next_u64() % 10_000) as f32 / 100.0;
        let mut samples: Vec<Sample> = (0..200)
            .map(|_| Sample {
                l: f(),
                sd: f() / 5.0,
                a: 0.0,
                b: 0.0,
            })
            .collect();
        samples.sort_by(|p, q| p.l.total_cmp(&q.l));
        let keys: Vec<f32> = samples.iter().map(|s| s.l).collect();
        for _ in 0..2000 {
            let (l, sd) = (f(), f() / 5.0);
            let score = |s: &Sample| 0.5 * (s.l - l).abs() + 0.5 * (s.sd - sd).abs();
            let brute = samples.iter().map(score).fold(f32::INFINITY, f32::min);
            assert_eq!(score(&samples[best_match(&samples, &keys, l, sd)]), brute);
        }
    }

    #[test]
    fn welsh_rejects_bad_inputs_and_handles_tiny_ones() {
        let target = two_tone_target(4, 4);
        assert!(matches!(
            welsh_transfer(&target, &RgbImage::new(0, 3), 1),
            Err(ClassicError::EmptyImage { .. })
        ));
        let mut bad = target.clone();
        bad.l.pop();
        assert!(matches!(
            welsh_transfer(&bad, &textured(4, 4), 1),
            Err(ClassicError::MalformedLab { .. })
        ));
        // A 1x1 reference and a 1x1 target work.
        let one = welsh_transfer(&two_tone_target(1, 1), &textured(1, 1), 1).unwrap();
        assert_eq!(one.a.len(), 1);
    }

    #[test]
    fn sample_grid_has_about_200_cells_of_the_image_shape() {
        for (w, h) in [
            (640, 480),
            (480, 640),
            (1000, 1000),
            (30, 30),
            (10_000, 1),
            (1, 10_000),
            (3, 2),
            (1, 1),
        ] {
            let (cols, rows) = sample_grid(w, h);
            let n = cols * rows;
            assert!(n <= WELSH_SAMPLES && cols <= w && rows <= h, "{w}x{h}: {cols}x{rows}");
            if w * h >= WELSH_SAMPLES && w >= 15 && h >= 15 {
                assert!(n >= 180, "{w}x{h}: only {n} samples");
            }
        }
        assert_eq!(sample_grid(10_000, 1), (200, 1));
    }

    #[test]
    fn local_sd_matches_direct_computation() {
        let (w, h) = (9, 7);
        let plane: Vec<f32> = (0..w * h).map(|i| ((i * 37) % 23) as f32 * 1.5).collect();
        let fast = local_sd(&plane, w, h);
        for y in 0..h {
            for x in 0..w {
                let d = local_sd_at(&plane, w, h, x, y);
                assert!((fast[y * w + x] - d).abs() < 1e-4);
            }
        }
    }
}
