//! Colour maths: sRGB <-> linear RGB <-> CIE XYZ (D65) <-> CIE L*a*b*, as the seed's
//! equations (2)-(13) specify, and the one place where L*a*b* is scaled into [-1, 1]
//! for the networks.
//!
//! All conversions work on `f32` values. sRGB components are in [0, 1]; L is in [0, 100];
//! a and b are unbounded but in practice within about [-110, 110] for sRGB colours.

use image::{GrayImage, Rgb32FImage, RgbImage};
use rayon::prelude::*;

/// Pixels per parallel work item in whole-image conversions.
const ROW_CHUNK: usize = 16 * 1024;

/// CIE epsilon, 216/24389 (the exact form of 0.008856, seed eq. 13).
pub const EPSILON: f32 = 216.0 / 24389.0;
/// CIE kappa, 24389/27 (the exact form of 903.3, seed eq. 13).
pub const KAPPA: f32 = 24389.0 / 27.0;

/// D65 reference white, Y normalised to 1.
pub const D65: [f32; 3] = [0.950_47, 1.0, 1.088_83];

/// sRGB (linear) -> XYZ matrix for the sRGB primaries and D65 white (seed eq. 3-5).
/// Rows are X, Y, Z; columns r, g, b.
pub const RGB_TO_XYZ: [[f32; 3]; 3] = [
    [0.412_456_4, 0.357_576_1, 0.180_437_5],
    [0.212_672_9, 0.715_152_2, 0.072_175],
    [0.019_333_9, 0.119_192, 0.950_304_1],
];

/// Inverse of [`RGB_TO_XYZ`].
pub const XYZ_TO_RGB: [[f32; 3]; 3] = [
    [3.240_454_2, -1.537_138_5, -0.498_531_4],
    [-0.969_266, 1.876_010_8, 0.041_556],
    [0.055_643_4, -0.204_025_9, 1.057_225_2],
];

/// Companded sRGB component V in [0, 1] -> linear v (seed eq. 2).
#[inline]
pub fn srgb_to_linear(v: f32) -> f32 {
    if v <= 0.04045 {
        v / 12.92
    } else {
        ((v + 0.055) / 1.055).powf(2.4)
    }
}

/// Linear component -> companded sRGB (inverse of eq. 2).
#[inline]
pub fn linear_to_srgb(v: f32) -> f32 {
    if v <= 0.003_130_8 {
        v * 12.92
    } else {
        1.055 * v.powf(1.0 / 2.4) - 0.055
    }
}

#[inline]
fn mat3(m: &[[f32; 3]; 3], v: [f32; 3]) -> [f32; 3] {
    [
        m[0][0] * v[0] + m[0][1] * v[1] + m[0][2] * v[2],
        m[1][0] * v[0] + m[1][1] * v[1] + m[1][2] * v[2],
        m[2][0] * v[0] + m[2][1] * v[1] + m[2][2] * v[2],
    ]
}

/// Seed eq. 9-11.
#[inline]
fn lab_f(t: f32) -> f32 {
    if t > EPSILON {
        t.cbrt()
    } else {
        (KAPPA * t + 16.0) / 116.0
    }
}

#[inline]
fn lab_f_inv(f: f32) -> f32 {
    let f3 = f * f * f;
    if f3 > EPSILON { f3 } else { (116.0 * f - 16.0) / KAPPA }
}

/// sRGB in [0, 1] -> XYZ (D65, Y of white = 1).
#[inline]
pub fn srgb_to_xyz(rgb: [f32; 3]) -> [f32; 3] {
    mat3(
        &RGB_TO_XYZ,
        [srgb_to_linear(rgb[0]), srgb_to_linear(rgb[1]), srgb_to_linear(rgb[2])],
    )
}

/// XYZ -> L*a*b* (seed eq. 6-12).
#[inline]
pub fn xyz_to_lab(xyz: [f32; 3]) -> [f32; 3] {
    let fx = lab_f(xyz[0] / D65[0]);
    let fy = lab_f(xyz[1] / D65[1]);
    let fz = lab_f(xyz[2] / D65[2]);
    [116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz)]
}

/// L*a*b* -> XYZ (inverse of eq. 6-12; for L the exact inverse of the linear branch is used).
#[inline]
pub fn lab_to_xyz(lab: [f32; 3]) -> [f32; 3] {
    let fy = (lab[0] + 16.0) / 116.0;
    let fx = fy + lab[1] / 500.0;
    let fz = fy - lab[2] / 200.0;
    let yr = if lab[0] > KAPPA * EPSILON {
        fy * fy * fy
    } else {
        lab[0] / KAPPA
    };
    [lab_f_inv(fx) * D65[0], yr * D65[1], lab_f_inv(fz) * D65[2]]
}

/// sRGB in [0, 1] -> L*a*b*.
#[inline]
pub fn srgb_to_lab(rgb: [f32; 3]) -> [f32; 3] {
    xyz_to_lab(srgb_to_xyz(rgb))
}

/// L*a*b* -> linear sRGB, unclamped.
#[inline]
fn lab_to_linear(lab: [f32; 3]) -> [f32; 3] {
    mat3(&XYZ_TO_RGB, lab_to_xyz(lab))
}

/// Tolerance of the gamut test on linear sRGB components.
const GAMUT_TOL: f32 = 1e-4;

#[inline]
fn in_gamut(lin: [f32; 3]) -> bool {
    lin.iter().all(|&v| (-GAMUT_TOL..=1.0 + GAMUT_TOL).contains(&v))
}

/// How far a linear sRGB colour lies outside [0, 1] (beyond the tolerance): positive outside,
/// zero or negative inside.
#[inline]
fn gamut_excess(lin: [f32; 3]) -> f32 {
    lin.iter()
        .fold(f32::MIN, |m, &v| m.max(v - (1.0 + GAMUT_TOL)).max(-GAMUT_TOL - v))
}

/// Precision of the chroma scale found by the gamut mapping (a 1e-3 share of the chroma:
/// 0.1 a*b* units at chroma 100).
const GAMUT_SCALE_TOL: f32 = 1e-3;

/// L*a*b* -> linear sRGB in [0, 1]. Colours outside the sRGB gamut are brought inside by
/// reducing their chroma at constant L and hue ([`gamut_scale`]), so the lightness of the
/// result is the requested L; per-channel clipping would change it.
#[inline]
fn lab_to_linear_in_gamut(lab: [f32; 3]) -> [f32; 3] {
    if lab[1] == 0.0 && lab[2] == 0.0 {
        // Neutral: R = G = B = Y exactly (the matrix would leave 1e-6-level differences that
        // can round a channel to a different 8-bit code and tint a gray image).
        return [lab_to_xyz(lab)[1].clamp(0.0, 1.0); 3];
    }
    let lin = lab_to_linear(lab);
    let lin = if in_gamut(lin) { lin } else { gamut_scale(lab, lin).1 };
    lin.map(|v| v.clamp(0.0, 1.0))
}

/// For an out-of-gamut `lab` (`lin` is its linear sRGB), the largest chroma scale `s` in
/// [0, 1) whose colour `(L, s a, s b)` is in gamut, to [`GAMUT_SCALE_TOL`], and that colour's
/// linear sRGB. Found by false position with the Illinois modification on the gamut excess
/// (continuous in `s`, negative at `s = 0`, where the colour is the gray of that L), keeping a
/// bracket whose lower end is always in gamut (a bisection needs 10 steps for this precision;
/// the loop stops after 16).
fn gamut_scale(lab: [f32; 3], lin: [f32; 3]) -> (f32, [f32; 3]) {
    let at = |s: f32| lab_to_linear([lab[0], lab[1] * s, lab[2] * s]);
    let (mut lo, mut hi) = (0.0f32, 1.0f32);
    let mut lin_lo = at(0.0);
    let (mut f_lo, mut f_hi) = (gamut_excess(lin_lo), gamut_excess(lin));
    let mut last_side = 0i8;
    for _ in 0..16 {
        if hi - lo <= GAMUT_SCALE_TOL {
            break;
        }
        // False position, kept inside the bracket (a bisection step if it would not be).
        let mut s = if f_hi > f_lo {
            lo + (hi - lo) * (-f_lo / (f_hi - f_lo))
        } else {
            0.5 * (lo + hi)
        };
        if !(s > lo && s < hi) {
            s = 0.5 * (lo + hi);
        }
        let lin_s = at(s);
        let f = gamut_excess(lin_s);
        if f <= 0.0 {
            (lo, f_lo, lin_lo) = (s, f, lin_s);
            if last_side == -1 {
                f_hi *= 0.5;
            }
            last_side = -1;
        } else {
            (hi, f_hi) = (s, f);
            if last_side == 1 {
                f_lo *= 0.5;
            }
            last_side = 1;
        }
    }
    (lo, lin_lo)
}

/// L*a*b* -> sRGB in [0, 1], out-of-gamut colours mapped at constant L (see
/// [`lab_to_linear_in_gamut`]).
#[inline]
pub fn lab_to_srgb(lab: [f32; 3]) -> [f32; 3] {
    lab_to_linear_in_gamut(lab).map(linear_to_srgb)
}

/// Linear component in [0, 1] -> 8-bit sRGB, `round(255 * linear_to_srgb(v))` without a
/// power function: the 255 linear values where the rounded code steps up are tabulated
/// (computed in f64), and a 4096-bin index gives the code at each bin's start. Steps are at
/// least 3.0e-4 apart (the slope of the linear segment: 1 / (255 * 12.92)), wider than a bin
/// (2.4e-4), so a bin holds at most one step and one comparison, without a branch, finishes
/// the job.
#[inline]
pub fn linear_to_srgb8(v: f32) -> u8 {
    srgb8_table().encode(v)
}

const SRGB8_BINS: usize = 4096;

/// [`linear_to_srgb8`]'s tables.
pub(crate) struct Srgb8Table {
    /// Where code k + 1 starts (`steps[255]` is a sentinel above every input).
    steps: [f32; 256],
    /// The code at the start of each bin.
    start: [u8; SRGB8_BINS + 1],
}

impl Srgb8Table {
    #[inline(always)]
    pub(crate) fn encode(&self, v: f32) -> u8 {
        let v = v.clamp(0.0, 1.0);
        let k = self.start[(v * SRGB8_BINS as f32) as usize];
        k + (v >= self.steps[k as usize]) as u8
    }
}

pub(crate) fn srgb8_table() -> &'static Srgb8Table {
    static TABLE: std::sync::OnceLock<Srgb8Table> = std::sync::OnceLock::new();
    TABLE.get_or_init(|| {
        // Code k + 1 starts where 255 * srgb(v) = k + 0.5.
        let steps: [f32; 256] = std::array::from_fn(|k| {
            if k == 255 {
                return f32::INFINITY;
            }
            let s = (k as f64 + 0.5) / 255.0;
            let lin = if s <= 0.04045 {
                s / 12.92
            } else {
                ((s + 0.055) / 1.055).powf(2.4)
            };
            lin as f32
        });
        let start = std::array::from_fn(|i| steps.partition_point(|&x| x <= i as f32 / SRGB8_BINS as f32) as u8);
        Srgb8Table { steps, start }
    })
}

/// Linear value of an 8-bit sRGB component: `srgb_to_linear(v / 255)`, tabulated.
#[inline]
fn srgb8_to_linear(v: u8) -> f32 {
    static LUT: std::sync::OnceLock<[f32; 256]> = std::sync::OnceLock::new();
    LUT.get_or_init(|| std::array::from_fn(|i| srgb_to_linear(i as f32 / 255.0)))[v as usize]
}

/// 8-bit sRGB -> L*a*b* (the same values as `srgb_to_lab` of `p / 255`).
#[inline]
pub fn rgb8_to_lab(p: [u8; 3]) -> [f32; 3] {
    xyz_to_lab(mat3(&RGB_TO_XYZ, p.map(srgb8_to_linear)))
}

/// L*a*b* -> 8-bit sRGB (rounded, clamped).
#[inline]
pub fn lab_to_rgb8(lab: [f32; 3]) -> [u8; 3] {
    lab_to_linear_in_gamut(lab).map(linear_to_srgb8)
}

/// The L plane of an 8-bit sRGB image, bit-identical to `LabImage::from_rgb8(img).l` (same
/// operations in the same order) but computing only Y, in parallel: colourising needs no more.
pub fn l_plane_rgb8(img: &RgbImage) -> Vec<f32> {
    let m = RGB_TO_XYZ[1];
    let mut l = vec![0.0f32; img.width() as usize * img.height() as usize];
    let row = (img.width() as usize).max(1);
    l.par_chunks_mut(row)
        .zip(img.as_raw().par_chunks(row * 3))
        .for_each(|(out, px)| {
            for (o, p) in out.iter_mut().zip(px.chunks_exact(3)) {
                let y = m[0] * srgb8_to_linear(p[0]) + m[1] * srgb8_to_linear(p[1]) + m[2] * srgb8_to_linear(p[2]);
                *o = xyz_to_lab([0.0, y, 0.0])[0];
            }
        });
    l
}

/// L* of a gray sRGB value in [0, 1] (R = G = B), which is exact: Y = linear(v).
#[inline]
pub fn gray_to_l(v: f32) -> f32 {
    let y = srgb_to_linear(v);
    116.0 * lab_f(y) - 16.0
}

/// The one place where L*a*b* is scaled for the networks: L in [0, 100] maps to [-1, 1],
/// a and b are divided by [`AB_SCALE`] (so the sRGB gamut, |a|,|b| < 110, lies in [-1, 1]).
pub mod scale {
    /// a and b are divided by this before entering a network, and the tanh output
    /// is multiplied by it.
    pub const AB_SCALE: f32 = 110.0;

    #[inline]
    pub fn l_to_net(l: f32) -> f32 {
        l / 50.0 - 1.0
    }
    #[inline]
    pub fn l_from_net(x: f32) -> f32 {
        (x + 1.0) * 50.0
    }
    #[inline]
    pub fn ab_to_net(ab: f32) -> f32 {
        ab / AB_SCALE
    }
    #[inline]
    pub fn ab_from_net(x: f32) -> f32 {
        x * AB_SCALE
    }
}

/// A planar L*a*b* image: three `width * height` planes, row-major.
#[derive(Clone, Debug, PartialEq)]
pub struct LabImage {
    pub width: u32,
    pub height: u32,
    pub l: Vec<f32>,
    pub a: Vec<f32>,
    pub b: Vec<f32>,
}

impl LabImage {
    /// Builds the planes from interleaved samples, converting pixels in parallel.
    fn from_samples<T: Sync>(
        width: u32,
        height: u32,
        samples: &[T],
        convert: impl Fn(&[T]) -> [f32; 3] + Sync,
    ) -> Self {
        let n = (width * height) as usize;
        let (mut l, mut a, mut b) = (vec![0.0; n], vec![0.0; n], vec![0.0; n]);
        l.par_chunks_mut(ROW_CHUNK)
            .zip(a.par_chunks_mut(ROW_CHUNK))
            .zip(b.par_chunks_mut(ROW_CHUNK))
            .zip(samples.par_chunks(3 * ROW_CHUNK))
            .for_each(|(((l, a), b), px)| {
                for (i, p) in px.chunks_exact(3).enumerate() {
                    let lab = convert(p);
                    (l[i], a[i], b[i]) = (lab[0], lab[1], lab[2]);
                }
            });
        Self { width, height, l, a, b }
    }

    /// Converts an 8-bit sRGB image.
    pub fn from_rgb8(img: &RgbImage) -> Self {
        Self::from_samples(img.width(), img.height(), img.as_raw(), |p| {
            rgb8_to_lab([p[0], p[1], p[2]])
        })
    }

    /// Converts a floating-point sRGB image (components in [0, 1]; 16-bit inputs keep
    /// their precision this way).
    pub fn from_rgb32f(img: &Rgb32FImage) -> Self {
        Self::from_samples(img.width(), img.height(), img.as_raw(), |p| {
            srgb_to_lab([p[0].clamp(0.0, 1.0), p[1].clamp(0.0, 1.0), p[2].clamp(0.0, 1.0)])
        })
    }

    /// Writes every pixel's gamut-mapped linear sRGB value through `store`, in parallel. The
    /// same values as [`lab_to_linear_in_gamut`] pixel by pixel, computed a block at a time:
    /// first the unclamped linear sRGB of the whole block, a loop without branches that the
    /// compiler vectorises, then the rare neutral and out-of-gamut pixels one by one.
    fn to_samples<T: Send + Copy + Default>(&self, store: impl Fn([f32; 3]) -> [T; 3] + Sync) -> Vec<T> {
        const BLOCK: usize = 256;
        let mut out = vec![T::default(); 3 * self.l.len()];
        out.par_chunks_mut(3 * ROW_CHUNK).enumerate().for_each(|(c, px)| {
            let k0 = c * ROW_CHUNK;
            let mut lin = [[0.0f32; 3]; BLOCK];
            for (bi, block) in px.chunks_mut(3 * BLOCK).enumerate() {
                let s = k0 + bi * BLOCK;
                let n = block.len() / 3;
                let (l, a, b) = (&self.l[s..s + n], &self.a[s..s + n], &self.b[s..s + n]);
                for (((v, &l), &a), &b) in lin.iter_mut().zip(l).zip(a).zip(b) {
                    *v = lab_to_linear([l, a, b]);
                }
                for (i, p) in block.chunks_exact_mut(3).enumerate() {
                    let lab = [l[i], a[i], b[i]];
                    let v = if lab[1] == 0.0 && lab[2] == 0.0 {
                        [lab_to_xyz(lab)[1]; 3]
                    } else if in_gamut(lin[i]) {
                        lin[i]
                    } else {
                        gamut_scale(lab, lin[i]).1
                    };
                    p.copy_from_slice(&store(v.map(|x| x.clamp(0.0, 1.0))));
                }
            }
        });
        out
    }

    /// The lightness of an 8-bit sRGB image with a = b = 0 (what colourising needs; see
    /// [`l_plane_rgb8`]).
    pub fn lightness_from_rgb8(img: &RgbImage) -> Self {
        let l = l_plane_rgb8(img);
        let n = l.len();
        Self {
            width: img.width(),
            height: img.height(),
            l,
            a: vec![0.0; n],
            b: vec![0.0; n],
        }
    }

    /// Gray image (a = b = 0) from an 8-bit luma image interpreted as sRGB gray.
    pub fn from_gray8(img: &GrayImage) -> Self {
        let lut: Vec<f32> = (0..256).map(|v| gray_to_l(v as f32 / 255.0)).collect();
        let l: Vec<f32> = img.pixels().map(|p| lut[p.0[0] as usize]).collect();
        let n = l.len();
        Self {
            width: img.width(),
            height: img.height(),
            l,
            a: vec![0.0; n],
            b: vec![0.0; n],
        }
    }

    /// Converts back to 8-bit sRGB.
    pub fn to_rgb8(&self) -> RgbImage {
        let table = srgb8_table();
        let raw = self.to_samples(|c| c.map(|v| table.encode(v)));
        RgbImage::from_raw(self.width, self.height, raw).expect("buffer matches the size")
    }

    /// Converts back to 16-bit sRGB.
    pub fn to_rgb16(&self) -> image::ImageBuffer<image::Rgb<u16>, Vec<u16>> {
        let raw = self.to_samples(|c| c.map(|v| (linear_to_srgb(v) * 65535.0).round() as u16));
        image::ImageBuffer::from_raw(self.width, self.height, raw).expect("buffer matches the size")
    }

    /// The L plane rendered as an 8-bit gray sRGB image (R = G = B), for sample grids.
    pub fn l_as_rgb8(&self) -> RgbImage {
        let mut out = RgbImage::new(self.width, self.height);
        for (i, p) in out.pixels_mut().enumerate() {
            let v = lab_to_rgb8([self.l[i], 0.0, 0.0]);
            p.0 = v;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f32, b: f32, tol: f32) -> bool {
        (a - b).abs() <= tol
    }

    #[test]
    fn white_is_l100_a0_b0() {
        let lab = rgb8_to_lab([255, 255, 255]);
        assert!(close(lab[0], 100.0, 1e-3), "{lab:?}");
        assert!(close(lab[1], 0.0, 1e-2), "{lab:?}");
        assert!(close(lab[2], 0.0, 1e-2), "{lab:?}");
    }

    #[test]
    fn black_is_l0() {
        let lab = rgb8_to_lab([0, 0, 0]);
        assert!(lab.iter().all(|v| v.abs() < 1e-4), "{lab:?}");
    }

    #[test]
    fn published_reference_values() {
        // Published (e.g. Lindbloom's calculator, D65, sRGB) values.
        let cases: [([u8; 3], [f32; 3]); 4] = [
            ([255, 0, 0], [53.24, 80.09, 67.20]),
            ([0, 255, 0], [87.73, -86.18, 83.18]),
            ([0, 0, 255], [32.30, 79.19, -107.86]),
            ([128, 128, 128], [53.59, 0.0, 0.0]),
        ];
        for (rgb, want) in cases {
            let got = rgb8_to_lab(rgb);
            for k in 0..3 {
                assert!(close(got[k], want[k], 0.02), "{rgb:?}: got {got:?}, want {want:?}");
            }
        }
    }

    /// The blocked image conversion gives exactly the per-pixel conversion, for neutral,
    /// in-gamut and out-of-gamut colours, over a length that ends mid-block.
    #[test]
    fn image_conversion_equals_the_per_pixel_one() {
        let (w, h) = (181u32, 97u32);
        let n = (w * h) as usize;
        let mut lab = LabImage {
            width: w,
            height: h,
            l: vec![0.0; n],
            a: vec![0.0; n],
            b: vec![0.0; n],
        };
        for i in 0..n {
            let t = i as f32 / n as f32;
            lab.l[i] = (i * 37 % 1001) as f32 / 10.0;
            // Every seventh pixel neutral; chroma up to 140, far outside sRGB at many L.
            let c = if i % 7 == 0 {
                0.0
            } else {
                140.0 * ((i * 13 % 97) as f32 / 96.0)
            };
            lab.a[i] = c * (t * 40.0).cos();
            lab.b[i] = c * (t * 40.0).sin();
        }
        let rgb = lab.to_rgb8();
        let wide = lab.to_rgb16();
        let mut outside = 0;
        for i in 0..n {
            let px = [lab.l[i], lab.a[i], lab.b[i]];
            assert_eq!(rgb.as_raw()[3 * i..3 * i + 3], lab_to_rgb8(px), "pixel {i}: {px:?}");
            let want = lab_to_linear_in_gamut(px).map(|v| (linear_to_srgb(v) * 65535.0).round() as u16);
            assert_eq!(wide.as_raw()[3 * i..3 * i + 3], want, "pixel {i}: {px:?}");
            outside += !in_gamut(lab_to_linear(px)) as usize;
        }
        assert!(
            outside > n / 10,
            "only {outside} out-of-gamut pixels: the test is too easy"
        );
    }

    #[test]
    fn linear_to_srgb8_equals_rounded_power_function() {
        let mut mismatches = 0;
        for i in 0..=200_000 {
            let v = i as f32 / 200_000.0;
            let want = (linear_to_srgb(v) * 255.0).round() as u8;
            let got = linear_to_srgb8(v);
            assert!(got.abs_diff(want) <= 1, "{v}: {got} vs {want}");
            mismatches += (got != want) as u32;
        }
        // Only values within f32 rounding of a step can differ.
        assert!(mismatches <= 20, "{mismatches} mismatches");
        assert_eq!(linear_to_srgb8(0.0), 0);
        assert_eq!(linear_to_srgb8(1.0), 255);
    }

    #[test]
    fn neutral_colours_stay_exactly_gray() {
        for l in 0..=1000 {
            let [r, g, b] = lab_to_rgb8([l as f32 / 10.0, 0.0, 0.0]);
            assert!(r == g && g == b, "L {}: {r} {g} {b}", l as f32 / 10.0);
        }
    }

    #[test]
    fn lightness_only_conversion_matches_the_full_one() {
        let img = RgbImage::from_fn(37, 23, |x, y| {
            image::Rgb([(x * 7) as u8, (y * 11) as u8, ((x * y) % 256) as u8])
        });
        let full = LabImage::from_rgb8(&img);
        let l = LabImage::lightness_from_rgb8(&img);
        assert_eq!(l.l, full.l);
        assert!(l.a.iter().chain(&l.b).all(|&v| v == 0.0));
    }

    #[test]
    fn round_trip_within_one_level() {
        // Every 5th level on each axis plus the extremes: 52^3 colours.
        let levels: Vec<u8> = (0..=255u16).step_by(5).map(|v| v as u8).chain([255]).collect();
        for &r in &levels {
            for &g in &levels {
                for &b in &levels {
                    let back = lab_to_rgb8(rgb8_to_lab([r, g, b]));
                    for (x, y) in [r, g, b].iter().zip(back) {
                        assert!((*x as i16 - y as i16).abs() <= 1, "{:?} -> {back:?}", [r, g, b]);
                    }
                }
            }
        }
    }

    #[test]
    fn out_of_gamut_colours_keep_their_lightness_and_hue() {
        // Very saturated red on a dark and on a light gray: far outside sRGB.
        for l in [5.0f32, 30.0, 60.0, 95.0] {
            let (a, b) = (90.0f32, 70.0f32);
            let rgb = lab_to_srgb([l, a, b]);
            let back = srgb_to_lab(rgb);
            assert!((back[0] - l).abs() < 0.3, "L {l} -> {back:?}");
            // Same hue angle (where there is any chroma left).
            if back[1].hypot(back[2]) > 2.0 {
                let dh = (back[2].atan2(back[1]) - b.atan2(a)).abs();
                assert!(dh < 0.05, "hue moved by {dh} rad at L {l}");
            }
        }
    }

    /// The mapping takes off no more chroma than it must: the result is in gamut, and the same
    /// hue and lightness with a little more chroma (0.3 % more) is not.
    #[test]
    fn gamut_mapping_stops_at_the_gamut_boundary() {
        let mut mapped = 0;
        for l in [3.0f32, 20.0, 45.0, 70.0, 97.0] {
            for h in 0..24 {
                let angle = h as f32 * std::f32::consts::TAU / 24.0;
                for c in [40.0f32, 80.0, 130.0] {
                    let lab = [l, c * angle.cos(), c * angle.sin()];
                    if in_gamut(lab_to_linear(lab)) {
                        continue;
                    }
                    mapped += 1;
                    let s = gamut_scale(lab, lab_to_linear(lab)).0;
                    assert!(in_gamut(lab_to_linear([l, lab[1] * s, lab[2] * s])), "{lab:?}");
                    let more = s + 3e-3;
                    assert!(
                        !in_gamut(lab_to_linear([l, lab[1] * more, lab[2] * more])),
                        "{lab:?}: scale {s} is not the largest"
                    );
                }
            }
        }
        assert!(mapped > 100, "only {mapped} colours needed mapping");
    }

    #[test]
    fn gray_l_matches_full_conversion() {
        for v in 0..=255u8 {
            let full = rgb8_to_lab([v, v, v])[0];
            assert!(close(gray_to_l(v as f32 / 255.0), full, 1e-3));
        }
    }

    #[test]
    fn net_scaling_is_inverse_and_bounded() {
        use scale::*;
        assert_eq!(l_to_net(0.0), -1.0);
        assert_eq!(l_to_net(100.0), 1.0);
        assert!(close(l_from_net(l_to_net(37.5)), 37.5, 1e-5));
        assert!(close(ab_from_net(ab_to_net(-86.18)), -86.18, 1e-4));
        // The whole sRGB gamut's a, b fit in [-1, 1] after scaling.
        for rgb in [[0, 255, 0], [0, 0, 255], [255, 0, 255], [255, 255, 0]] {
            let lab = rgb8_to_lab(rgb);
            assert!(ab_to_net(lab[1]).abs() <= 1.0 && ab_to_net(lab[2]).abs() <= 1.0);
        }
    }
}
