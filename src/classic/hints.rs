//! Colour from user hints: Levin, Lischinski & Weiss (2004), "Colorization using
//! Optimization".
//!
//! Hints come either as points (JSON, see [`HintSet`]) or as a scribble image (see
//! [`hints_from_scribble`]); both become a [`HintMap`], a per-pixel "this pixel's (a, b) is
//! fixed" raster, which [`colorize_with_hints`] propagates to the whole image.
//!
//! # The affinities
//! As in the authors' reference MATLAB code (`getColorExact.m`), on Y = L/100 in [0, 1]:
//! for every pixel r and each neighbour s in its 3x3 window (the in-image ones),
//! `w_rs = exp(-(Y_s - Y_r)² / c_r)` normalised to sum 1 over s, where `c_r` is 0.6 times the
//! variance of Y over the window (r included), raised if needed so that the most similar
//! neighbour gets at least exp(-ln 100) = 0.01 before normalisation
//! (`c_r >= min_s (Y_s - Y_r)² / ln 100`), and floored at 2e-6. (The MATLAB `c_r` plays the
//! role of 2σ_r² in the paper's formula.)
//!
//! # The energy and solver
//! The paper minimises `J(U) = Σ_r (U_r - Σ_s w_rs U_s)²` with U fixed at the hints, and the
//! reference code solves the square system `U_r = Σ_s w_rs U_s` (every free pixel the
//! weighted mean of its neighbours, hints fixed) with a direct sparse solver. That system is
//! not symmetric (`w_rs != w_sr`, each pixel's weights being normalised with its own `c_r`),
//! which rules out plain conjugate gradients. This module minimises instead the closely
//! related symmetric form, the affinity-weighted Dirichlet energy
//! `E(U) = Σ_r Σ_s w_rs (U_r - U_s)²`, whose minimiser satisfies, at every free pixel,
//! `U_r = Σ_s k_rs U_s / Σ_s k_rs` with the symmetrised weights `k_rs = w_rs + w_sr`: the
//! same "each pixel is a weighted average of its similar neighbours" condition, with
//! symmetrised weights (identical to Levin's where the weights are symmetric, e.g. inside
//! flat regions). The system `(D - K) U = 0` on free pixels (hints fixed) is symmetric
//! positive definite; it is solved for a and b in lock-step (two right-hand sides, each with
//! its own step sizes) by preconditioned conjugate gradients, starting from the mean hint
//! colour and stopping at a relative residual of [`SolverOptions::tolerance`].
//!
//! The preconditioner is a multigrid V-cycle: Galerkin coarse grids `Pᵀ A P` built by 2x2
//! aggregation (P copies a coarse cell's value to the free pixels of its 2x2 block, so
//! coarse weights are the sums of the fine weights between blocks and a weak edge stays
//! exactly as weak at every scale) down to at most 256 cells, which are solved with a dense
//! Cholesky factor; one damped-Jacobi sweep (ω = 0.7) before and after each coarse
//! correction keeps the cycle symmetric, and the coarse correction is weighted by 1.3. With
//! it the iteration count hardly grows with the image size (about 40 for a megapixel image
//! at the default tolerance), where diagonal preconditioning alone needs thousands. (A plain
//! coarse-to-fine start — solving a downsampled image and upsampling the result as the
//! initial guess — was tried first: it leaves low-frequency errors that conjugate gradients
//! removes only very slowly.)
//!
//! Memory: about 120 bytes per pixel at the peak (1 megapixel: about 120 MB).

use std::path::Path;

use image::RgbImage;
use rayon::prelude::*;
use serde::{Deserialize, Deserializer, Serialize};

use super::{ClassicError, check_lab, parse_hex_colour, with_ab};
use crate::color::{LabImage, rgb8_to_lab};

/// Default chroma threshold for [`hints_from_scribble`]: a scribble pixel is a hint when its
/// (a, b) lies more than this far from the gray image's (a, b) at that pixel.
pub const SCRIBBLE_MIN_CHROMA: f32 = 5.0;

// ---------------------------------------------------------------------------------------
// Hint points (JSON)

/// A set of hint points, as read from / written to JSON, e.g. posted by a web page:
///
/// ```json
/// {"points": [
///   {"x": 10, "y": 20, "color": "#ff0000"},
///   {"x": 40, "y": 25, "rgb": [0, 0, 255], "radius": 3},
///   {"x": 70, "y": 30, "ab": [0.0, 0.0]}
/// ]}
/// ```
///
/// Each point gives exactly one colour: `color` (alias `colour`, `#rrggbb` or `#rgb`), `rgb`
/// (8-bit sRGB) or `ab` (CIE a*, b* directly). Only the colour's (a, b) is used; the image's
/// own L is kept. `radius` (pixels, default 0) paints every pixel within that Euclidean
/// distance of the centre (clipped to the image); the centre itself must lie inside the image.
/// Coordinates may be given as JSON floats (they are rounded). Later points overwrite earlier
/// ones where discs overlap.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct HintSet {
    pub points: Vec<HintPoint>,
}

/// One hint point; see [`HintSet`] for the format.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct HintPoint {
    #[serde(deserialize_with = "de_coord")]
    pub x: i64,
    #[serde(deserialize_with = "de_coord")]
    pub y: i64,
    #[serde(default, alias = "colour", skip_serializing_if = "Option::is_none")]
    pub color: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rgb: Option<[u8; 3]>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ab: Option<[f32; 2]>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub radius: Option<f32>,
}

/// Accepts an integer or a finite float coordinate (rounded; saturating at the i64 range,
/// which then fails the inside-the-image check with a clear message).
fn de_coord<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    let v = f64::deserialize(d)?;
    if !v.is_finite() {
        return Err(serde::de::Error::custom("coordinate must be a finite number"));
    }
    Ok(v.round() as i64)
}

impl HintSet {
    /// Checks what can be checked without the image: at least one point, and each point's
    /// colour and radius (positions are checked against each image by [`HintMap::from_points`]).
    pub fn check(&self) -> Result<(), ClassicError> {
        if self.points.is_empty() {
            return Err(ClassicError::NoHints("the hint list has no points"));
        }
        for (index, p) in self.points.iter().enumerate() {
            p.chroma(index)?;
            let r = p.radius.unwrap_or(0.0);
            if !(r.is_finite() && r >= 0.0) {
                return Err(ClassicError::BadHint {
                    index,
                    reason: format!("radius {r} must be a finite number >= 0"),
                });
            }
        }
        Ok(())
    }
}

impl HintPoint {
    /// A point with an sRGB colour.
    pub fn rgb(x: i64, y: i64, rgb: [u8; 3]) -> Self {
        Self {
            x,
            y,
            rgb: Some(rgb),
            ..Self::default()
        }
    }

    /// A point with an (a, b) colour.
    pub fn ab(x: i64, y: i64, ab: [f32; 2]) -> Self {
        Self {
            x,
            y,
            ab: Some(ab),
            ..Self::default()
        }
    }

    /// The same point painted as a disc of `radius` pixels.
    pub fn with_radius(mut self, radius: f32) -> Self {
        self.radius = Some(radius);
        self
    }

    /// The point's (a, b); `index` is only used in error messages.
    pub fn chroma(&self, index: usize) -> Result<[f32; 2], ClassicError> {
        let bad = |reason: &str| ClassicError::BadHint {
            index,
            reason: reason.to_string(),
        };
        match (&self.color, self.rgb, self.ab) {
            (Some(s), None, None) => {
                let lab = rgb8_to_lab(parse_hex_colour(s)?);
                Ok([lab[1], lab[2]])
            }
            (None, Some(rgb), None) => {
                let lab = rgb8_to_lab(rgb);
                Ok([lab[1], lab[2]])
            }
            (None, None, Some(ab)) if ab.iter().all(|v| v.is_finite()) => Ok(ab),
            (None, None, Some(_)) => Err(bad("\"ab\" must be two finite numbers")),
            (None, None, None) => Err(bad("no colour: give one of \"color\", \"rgb\" or \"ab\"")),
            _ => Err(bad(
                "more than one colour: give only one of \"color\", \"rgb\" or \"ab\"",
            )),
        }
    }
}

/// Parses hint points from JSON text (see [`HintSet`]). Only the syntax is checked here;
/// colours and positions are checked by [`HintMap::from_points`].
pub fn hints_from_json(json: &str) -> Result<HintSet, ClassicError> {
    serde_json::from_str(json).map_err(ClassicError::HintsJson)
}

/// Serialises hint points to JSON (the format [`hints_from_json`] reads).
pub fn hints_to_json(set: &HintSet) -> String {
    // Plain structs of numbers, strings and options always serialise; non-finite `ab` values
    // come out as `null` (and are then rejected when read back).
    serde_json::to_string(set).unwrap_or_else(|_| String::from("{\"points\":[]}"))
}

/// Reads a JSON hints file.
pub fn load_hints_json(path: impl AsRef<Path>) -> Result<HintSet, ClassicError> {
    let path = path.as_ref();
    let text = std::fs::read_to_string(path).map_err(|error| ClassicError::Io {
        path: path.display().to_string(),
        error,
    })?;
    hints_from_json(&text)
}

// ---------------------------------------------------------------------------------------
// Hint raster

/// Per-pixel hints for one image: `hints[y * width + x]` is `Some([a, b])` where the
/// colour is fixed.
#[derive(Clone, Debug, PartialEq)]
pub struct HintMap {
    pub width: u32,
    pub height: u32,
    pub hints: Vec<Option<[f32; 2]>>,
}

impl HintMap {
    /// A map without hints.
    pub fn empty(width: u32, height: u32) -> Self {
        Self {
            width,
            height,
            hints: vec![None; width as usize * height as usize],
        }
    }

    /// Number of hinted pixels.
    pub fn count(&self) -> usize {
        self.hints.iter().filter(|h| h.is_some()).count()
    }

    /// Rasterises hint points for a `width x height` image.
    ///
    /// # Errors
    /// [`ClassicError::NoHints`] for an empty list, [`ClassicError::HintOutside`] for a centre
    /// outside the image (the message names the point and the image size),
    /// [`ClassicError::BadHint`] / [`ClassicError::BadColour`] for a bad colour or radius.
    pub fn from_points(set: &HintSet, width: u32, height: u32) -> Result<Self, ClassicError> {
        set.check()?;
        let mut map = Self::empty(width, height);
        let (w, h) = (width as i64, height as i64);
        for (index, p) in set.points.iter().enumerate() {
            if p.x < 0 || p.y < 0 || p.x >= w || p.y >= h {
                return Err(ClassicError::HintOutside {
                    index,
                    x: p.x,
                    y: p.y,
                    width,
                    height,
                });
            }
            let ab = p.chroma(index)?;
            let r = p.radius.unwrap_or(0.0);
            // Clip the disc's bounding box to the image before looping.
            let ri = r.floor() as i64;
            let r2 = (r as f64) * (r as f64);
            for y in p.y.saturating_sub(ri).max(0)..=p.y.saturating_add(ri).min(h - 1) {
                for x in p.x.saturating_sub(ri).max(0)..=p.x.saturating_add(ri).min(w - 1) {
                    let (dx, dy) = ((x - p.x) as f64, (y - p.y) as f64);
                    if dx * dx + dy * dy <= r2 {
                        map.hints[(y * w + x) as usize] = Some(ab);
                    }
                }
            }
        }
        Ok(map)
    }
}

/// Hints from a scribble image drawn over the gray image, as in Levin et al.'s code: every
/// pixel whose (a, b) in the scribble differs from the gray image's (a, b) by more than
/// `min_chroma` (Euclidean, L*a*b* units; [`SCRIBBLE_MIN_CHROMA`] is a good default) is a
/// hint with the scribble's (a, b). Neutral (gray, white, black) strokes are therefore not
/// detected; use an `ab: [0, 0]` point to pin a pixel to gray.
///
/// # Errors
/// [`ClassicError::ScribbleSize`] when the sizes differ, [`ClassicError::NoHints`] when no
/// pixel qualifies, [`ClassicError::MalformedLab`] for an inconsistent `gray`,
/// [`ClassicError::BadParameter`] for a negative or non-finite threshold.
pub fn hints_from_scribble(gray: &LabImage, scribble: &RgbImage, min_chroma: f32) -> Result<HintMap, ClassicError> {
    check_lab(gray)?;
    if !(min_chroma.is_finite() && min_chroma >= 0.0) {
        return Err(ClassicError::BadParameter {
            name: "min_chroma",
            value: min_chroma as f64,
            expected: "a finite number >= 0",
        });
    }
    if scribble.dimensions() != (gray.width, gray.height) {
        return Err(ClassicError::ScribbleSize {
            scribble_w: scribble.width(),
            scribble_h: scribble.height(),
            width: gray.width,
            height: gray.height,
        });
    }
    let hints: Vec<Option<[f32; 2]>> = scribble
        .as_raw()
        .par_chunks_exact(3)
        .zip(gray.a.par_iter().zip(gray.b.par_iter()))
        .with_min_len(4096)
        .map(|(c, (&ga, &gb))| {
            let lab = rgb8_to_lab([c[0], c[1], c[2]]);
            let (da, db) = (lab[1] - ga, lab[2] - gb);
            (da * da + db * db > min_chroma * min_chroma).then_some([lab[1], lab[2]])
        })
        .collect();
    let map = HintMap {
        width: gray.width,
        height: gray.height,
        hints,
    };
    if map.count() == 0 {
        return Err(ClassicError::NoHints(
            "the scribble image has no pixel coloured differently from the gray image",
        ));
    }
    Ok(map)
}

/// Loads a scribble image (any format the `image` crate was built with, e.g. PNG) as 8-bit
/// sRGB.
pub fn load_scribble(path: impl AsRef<Path>) -> Result<RgbImage, ClassicError> {
    let path = path.as_ref();
    image::open(path)
        .map(|img| img.to_rgb8())
        .map_err(|e| ClassicError::Image {
            path: path.display().to_string(),
            message: e.to_string(),
        })
}

// ---------------------------------------------------------------------------------------
// Solver

/// Stopping rules and method of the solve.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct SolverOptions {
    /// Stop when, for both a and b, the residual's Euclidean norm has fallen to this fraction
    /// of the right-hand side's (the residual with every free pixel at 0).
    pub tolerance: f32,
    /// Conjugate-gradient iteration cap.
    pub max_iterations: usize,
    /// Precondition with a multigrid V-cycle (recommended); `false` uses the diagonal
    /// (Jacobi) preconditioner only, which needs far more iterations on large images.
    pub multigrid: bool,
}

impl Default for SolverOptions {
    fn default() -> Self {
        Self {
            tolerance: 3e-4,
            max_iterations: 300,
            multigrid: true,
        }
    }
}

/// How a solve went.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SolveReport {
    /// Grids in the multigrid hierarchy (1 without multigrid).
    pub levels: usize,
    /// Conjugate-gradient iterations done.
    pub iterations: usize,
    /// Final relative residual per channel (a, b).
    pub residual: [f32; 2],
    /// Whether both channels reached the tolerance.
    pub converged: bool,
}

/// Two values per pixel: the a and b channels, solved in lock-step.
type V2 = [f32; 2];

/// Coarsening stops at this many cells; that grid is solved densely.
const DENSE_MAX_CELLS: usize = 256;
/// Damped-Jacobi smoother weight (one sweep before and one after each coarse correction).
const OMEGA: f32 = 0.7;
/// Over-weighting of the coarse-grid correction, which speeds up plain-aggregation
/// multigrid (about 25% fewer iterations here); any value in (0, 2) keeps the
/// preconditioner symmetric positive definite.
const COARSE_WEIGHT: f32 = 1.3;

/// Neighbour offsets (dx, dy); `NEIGH[7 - j]` is the opposite of `NEIGH[j]`, and
/// `NEIGH[4..]` are the "forward" ones (later in row-major order).
const NEIGH: [(isize, isize); 8] = [(-1, -1), (0, -1), (1, -1), (-1, 0), (1, 0), (-1, 1), (0, 1), (1, 1)];

/// Index in [`NEIGH`] of the offset (dx, dy), both in {-1, 0, 1}, not both 0.
fn neigh_index(dx: isize, dy: isize) -> usize {
    let i = ((dy + 1) * 3 + dx + 1) as usize;
    if i > 4 { i - 1 } else { i }
}

#[inline]
fn add2(a: [f64; 2], b: [f64; 2]) -> [f64; 2] {
    [a[0] + b[0], a[1] + b[1]]
}

/// Normalised Levin affinities of every pixel to its 8 neighbours (0 outside the image).
fn affinities(y: &[f32], w: usize, h: usize) -> Vec<[f32; 8]> {
    let ln100 = 100f64.ln();
    let mut out = vec![[0.0f32; 8]; w * h];
    out.par_chunks_mut(w.max(1)).enumerate().for_each(|(py, row)| {
        for (px, o) in row.iter_mut().enumerate() {
            let yr = y[py * w + px] as f64;
            let mut vals = [0.0f64; 8];
            let mut inside = [false; 8];
            let (mut s1, mut s2, mut n) = (yr, yr * yr, 1.0f64);
            let mut min_d2 = f64::INFINITY;
            for (j, &(dx, dy)) in NEIGH.iter().enumerate() {
                let (sx, sy) = (px as isize + dx, py as isize + dy);
                if sx < 0 || sy < 0 || sx >= w as isize || sy >= h as isize {
                    continue;
                }
                let v = y[sy as usize * w + sx as usize] as f64;
                vals[j] = v;
                inside[j] = true;
                s1 += v;
                s2 += v * v;
                n += 1.0;
                min_d2 = min_d2.min((v - yr) * (v - yr));
            }
            if n < 2.0 {
                continue; // 1x1 image: no neighbours.
            }
            let mean = s1 / n;
            let var = (s2 / n - mean * mean).max(0.0);
            let csig = (var * 0.6).max(min_d2 / ln100).max(2e-6);
            let mut wts = [0.0f64; 8];
            for j in 0..8 {
                if inside[j] {
                    wts[j] = (-(vals[j] - yr).powi(2) / csig).exp();
                }
            }
            // The sum is at least 0.01 thanks to the min_d2 floor on csig.
            let sum: f64 = wts.iter().sum();
            for j in 0..8 {
                o[j] = (wts[j] / sum) as f32;
            }
        }
    });
    out
}

/// The symmetric system `A = D - K` of one grid level, on the grid padded by one cell on
/// every side (row pitch `pw = w + 2`, cell (x, y) at `(y + 1) * pw + x + 1`).
///
/// Only the four "forward" weights of each cell are stored (`K` is symmetric; the backward
/// ones are the neighbours' forward ones). Fixed cells — hints, pads, and coarse cells with
/// nothing free — have `diag == inv_diag == 0` and their rows of A are treated as zero; all
/// work vectors are kept 0 there, except the outer solution, which holds the hint values.
struct Grid {
    w: usize,
    h: usize,
    pw: usize,
    /// `k[i][f]`: weight between cell i and its neighbour `NEIGH[4 + f]`. On the finest grid
    /// it is set for every pair of pixels (so hints enter the right-hand side); on coarse
    /// grids only between free cells.
    k: Vec<[f32; 4]>,
    diag: Vec<f32>,
    inv_diag: Vec<f32>,
    /// Padded-index offsets of the forward neighbours.
    fwd: [usize; 4],
}

impl Grid {
    fn empty(w: usize, h: usize) -> Grid {
        let pw = w + 2;
        let n = pw * (h + 2);
        Grid {
            w,
            h,
            pw,
            k: vec![[0.0; 4]; n],
            diag: vec![0.0; n],
            inv_diag: vec![0.0; n],
            fwd: [1, pw - 1, pw, pw + 1],
        }
    }

    fn len(&self) -> usize {
        self.pw * (self.h + 2)
    }

    /// Minimum rows per parallel task (about 16k cells), so small grids run as one task.
    fn min_rows(&self) -> usize {
        (16_384 / self.pw).max(1)
    }

    fn padded(&self, x: usize, y: usize) -> usize {
        (y + 1) * self.pw + x + 1
    }

    /// Weight between padded cell i and its neighbour `NEIGH[j]`.
    fn weight(&self, i: usize, j: usize) -> f32 {
        if j >= 4 {
            self.k[i][j - 4]
        } else {
            self.k[i - self.fwd[3 - j]][3 - j]
        }
    }

    /// The finest level: symmetrised affinities `k_rs = w_rs + w_sr`.
    fn finest(y: &[f32], w: usize, h: usize, hint: &[Option<V2>]) -> Grid {
        let wn = affinities(y, w, h);
        let mut g = Grid::empty(w, h);
        let pw = g.pw;
        g.k[pw..pw * (h + 1)]
            .par_chunks_mut(pw)
            .enumerate()
            .for_each(|(y, krow)| {
                for x in 0..w {
                    let i = y * w + x;
                    for f in 0..4 {
                        let (dx, dy) = NEIGH[4 + f];
                        let (sx, sy) = (x as isize + dx, y as isize + dy);
                        if sx >= 0 && sx < w as isize && sy < h as isize {
                            let s = sy as usize * w + sx as usize;
                            krow[x + 1][f] = wn[i][4 + f] + wn[s][3 - f];
                        }
                    }
                }
            });
        drop(wn);
        let k = &g.k;
        let fwd = g.fwd;
        g.diag[pw..pw * (h + 1)]
            .par_chunks_mut(pw)
            .zip(g.inv_diag[pw..pw * (h + 1)].par_chunks_mut(pw))
            .enumerate()
            .for_each(|(y, (drow, irow))| {
                for x in 0..w {
                    if hint[y * w + x].is_some() {
                        continue;
                    }
                    let i = (y + 1) * pw + x + 1;
                    let d: f64 = (0..4).map(|f| k[i][f] as f64 + k[i - fwd[f]][f] as f64).sum();
                    if d > 0.0 {
                        drow[x + 1] = d as f32;
                        irow[x + 1] = (1.0 / d) as f32;
                    }
                }
            });
        g
    }

    /// Galerkin coarsening `Pᵀ A P` with 2x2 aggregation (P copies a coarse value to the free
    /// cells of its 2x2 block). Coarse weights are sums of the fine weights between blocks,
    /// so a weak edge stays exactly as weak on every level.
    fn coarsen(&self) -> Grid {
        let (w, h) = (self.w.div_ceil(2), self.h.div_ceil(2));
        let mut c = Grid::empty(w, h);
        let pw = c.pw;
        c.k[pw..pw * (h + 1)]
            .par_chunks_mut(pw)
            .zip(c.diag[pw..pw * (h + 1)].par_chunks_mut(pw))
            .zip(c.inv_diag[pw..pw * (h + 1)].par_chunks_mut(pw))
            .enumerate()
            .for_each(|(cy, ((krow, drow), irow))| {
                for cx in 0..w {
                    let (mut kc, mut dc, mut any) = ([0.0f64; 8], 0.0f64, false);
                    for fy in 2 * cy..(2 * cy + 2).min(self.h) {
                        for fx in 2 * cx..(2 * cx + 2).min(self.w) {
                            let i = self.padded(fx, fy);
                            if self.inv_diag[i] == 0.0 {
                                continue;
                            }
                            any = true;
                            dc += self.diag[i] as f64;
                            for (j, &(dx, dy)) in NEIGH.iter().enumerate() {
                                let s = (i as isize + dy * self.pw as isize + dx) as usize;
                                let kv = self.weight(i, j) as f64;
                                if kv == 0.0 || self.inv_diag[s] == 0.0 {
                                    continue; // fixed neighbour: stays in the diagonal only
                                }
                                // s is free, hence inside the image.
                                let (nx, ny) = ((fx as isize + dx) as usize, (fy as isize + dy) as usize);
                                let (ddx, ddy) = ((nx / 2) as isize - cx as isize, (ny / 2) as isize - cy as isize);
                                if ddx == 0 && ddy == 0 {
                                    dc -= kv;
                                } else {
                                    kc[neigh_index(ddx, ddy)] += kv;
                                }
                            }
                        }
                    }
                    if any && dc > 0.0 {
                        krow[cx + 1] = [kc[4] as f32, kc[5] as f32, kc[6] as f32, kc[7] as f32];
                        drow[cx + 1] = dc as f32;
                        irow[cx + 1] = (1.0 / dc) as f32;
                    }
                }
            });
        c
    }

    /// `(A x)_i` for a free interior cell, with `x` given cell-wise by `xv`.
    #[inline]
    fn row_with(&self, i: usize, xv: impl Fn(usize) -> V2) -> V2 {
        let (kk, d, xi) = (&self.k[i], self.diag[i], xv(i));
        let mut acc = [d * xi[0], d * xi[1]];
        for (f, (&ks, &off)) in kk.iter().zip(&self.fwd).enumerate() {
            let (s, t) = (i + off, i - off);
            let (kt, xs, xt) = (self.k[t][f], xv(s), xv(t));
            acc[0] -= ks * xs[0] + kt * xt[0];
            acc[1] -= ks * xs[1] + kt * xt[1];
        }
        acc
    }

    #[inline]
    fn row(&self, x: &[V2], i: usize) -> V2 {
        self.row_with(i, |s| x[s])
    }

    /// Runs `f(padded index, output cell)` over the interior cells, in parallel by rows,
    /// summing the per-channel values `f` returns.
    fn for_interior(&self, out: &mut [V2], f: impl Fn(usize, &mut V2) -> [f64; 2] + Sync) -> [f64; 2] {
        let (pw, w) = (self.pw, self.w);
        out[pw..pw * (self.h + 1)]
            .par_chunks_mut(pw)
            .enumerate()
            .with_min_len(self.min_rows())
            .map(|(y, orow)| {
                let base = (y + 1) * pw;
                let mut sum = [0.0f64; 2];
                for (x, o) in orow.iter_mut().enumerate().take(w + 1).skip(1) {
                    sum = add2(sum, f(base + x, o));
                }
                sum
            })
            .reduce(|| [0.0; 2], add2)
    }

    /// `q = A p` on free rows (0 elsewhere); returns `<p, q>` per channel. With `p` holding
    /// hint values at the hinted cells of the finest grid, this includes their contribution.
    fn apply(&self, p: &[V2], q: &mut [V2]) -> [f64; 2] {
        self.for_interior(q, |i, o| {
            if self.diag[i] == 0.0 {
                *o = [0.0; 2];
                return [0.0; 2];
            }
            *o = self.row(p, i);
            [(p[i][0] * o[0]) as f64, (p[i][1] * o[1]) as f64]
        })
    }

    /// Pre-smoothing and restriction in one pass: `x = ω D⁻¹ b` (one Jacobi sweep from 0),
    /// then `bc = Pᵀ (b - A x)` on the coarse grid `c`.
    fn presmooth_restrict(&self, b: &[V2], x: &mut [V2], c: &Grid, bc: &mut [V2]) {
        let (pw, cpw) = (self.pw, c.pw);
        let x0 = |s: usize| {
            let v = OMEGA * self.inv_diag[s];
            [v * b[s][0], v * b[s][1]]
        };
        // Fine rows 2cy and 2cy + 1 belong to coarse row cy.
        x[pw..pw * (self.h + 1)]
            .par_chunks_mut(2 * pw)
            .zip(bc[cpw..cpw * (c.h + 1)].par_chunks_mut(cpw))
            .enumerate()
            .with_min_len((c.min_rows() / 2).max(1))
            .for_each(|(cy, (xrows, crow))| {
                crow.iter_mut().for_each(|v| *v = [0.0; 2]);
                for (r, xrow) in xrows.chunks_mut(pw).enumerate() {
                    let base = (2 * cy + r + 1) * pw;
                    for fx in 0..self.w {
                        let i = base + fx + 1;
                        if self.diag[i] == 0.0 {
                            xrow[fx + 1] = [0.0; 2];
                            continue;
                        }
                        let xi = x0(i);
                        xrow[fx + 1] = xi;
                        let ax = self.row_with(i, x0);
                        let cell = &mut crow[fx / 2 + 1];
                        cell[0] += b[i][0] - ax[0];
                        cell[1] += b[i][1] - ax[1];
                    }
                }
                for (cx, cell) in crow.iter_mut().enumerate() {
                    if c.inv_diag[cy * cpw + cpw + cx] == 0.0 {
                        *cell = [0.0; 2];
                    }
                }
            });
    }

    /// Coarse correction: `x += COARSE_WEIGHT · P xc` on free cells.
    fn prolong_add(&self, c: &Grid, xc: &[V2], x: &mut [V2]) {
        let (pw, cpw, w) = (self.pw, c.pw, self.w);
        x[pw..pw * (self.h + 1)]
            .par_chunks_mut(pw)
            .enumerate()
            .with_min_len(self.min_rows())
            .for_each(|(fy, xrow)| {
                let crow = &xc[(fy / 2 + 1) * cpw..(fy / 2 + 2) * cpw];
                let drow = &self.diag[(fy + 1) * pw..(fy + 2) * pw];
                for fx in 0..w {
                    if drow[fx + 1] != 0.0 {
                        let v = crow[fx / 2 + 1];
                        let o = &mut xrow[fx + 1];
                        *o = [o[0] + COARSE_WEIGHT * v[0], o[1] + COARSE_WEIGHT * v[1]];
                    }
                }
            });
    }

    /// One damped-Jacobi sweep, `out = x + ω D⁻¹ (b - A x)`; returns `<b, out>` per channel.
    fn jacobi(&self, b: &[V2], x: &[V2], out: &mut [V2]) -> [f64; 2] {
        self.for_interior(out, |i, o| {
            if self.diag[i] == 0.0 {
                *o = [0.0; 2];
                return [0.0; 2];
            }
            let ax = self.row(x, i);
            let s = OMEGA * self.inv_diag[i];
            *o = [x[i][0] + s * (b[i][0] - ax[0]), x[i][1] + s * (b[i][1] - ax[1])];
            [(b[i][0] * o[0]) as f64, (b[i][1] * o[1]) as f64]
        })
    }
}

/// Dense Cholesky factor of the coarsest grid's free cells.
struct Dense {
    cells: Vec<usize>,
    chol: Vec<f64>,
}

impl Dense {
    fn new(g: &Grid) -> Dense {
        let cells: Vec<usize> = (0..g.len()).filter(|&i| g.inv_diag[i] != 0.0).collect();
        let n = cells.len();
        let mut a = vec![0.0f64; n * n];
        for (r, &i) in cells.iter().enumerate() {
            a[r * n + r] = g.diag[i] as f64;
            for (j, &(dx, dy)) in NEIGH.iter().enumerate() {
                let s = (i as isize + dy * g.pw as isize + dx) as usize;
                if let Ok(c) = cells.binary_search(&s) {
                    a[r * n + c] -= g.weight(i, j) as f64;
                }
            }
        }
        // In-place lower Cholesky; a pivot that vanishes (a free cluster with no path to a
        // hint, possible only when affinities underflow) is regularised.
        let scale = cells.iter().map(|&i| g.diag[i] as f64).fold(0.0, f64::max).max(1e-30);
        for j in 0..n {
            let mut d = a[j * n + j];
            for k in 0..j {
                d -= a[j * n + k] * a[j * n + k];
            }
            let d = d.max(1e-9 * scale).sqrt();
            a[j * n + j] = d;
            for i in j + 1..n {
                let mut s = a[i * n + j];
                for k in 0..j {
                    s -= a[i * n + k] * a[j * n + k];
                }
                a[i * n + j] = s / d;
            }
        }
        Dense { cells, chol: a }
    }

    /// `x = A⁻¹ b` on the free cells (0 elsewhere); returns `<b, x>` per channel.
    fn solve(&self, b: &[V2], x: &mut [V2]) -> [f64; 2] {
        let n = self.cells.len();
        x.iter_mut().for_each(|v| *v = [0.0; 2]);
        let mut bx = [0.0; 2];
        for (c, bxc) in bx.iter_mut().enumerate() {
            let mut y: Vec<f64> = self.cells.iter().map(|&i| b[i][c] as f64).collect();
            // L y = b, then Lᵀ x = y.
            for i in 0..n {
                let row = &self.chol[i * n..i * n + i];
                let dot: f64 = row.iter().zip(&y[..i]).map(|(l, v)| l * v).sum();
                y[i] = (y[i] - dot) / self.chol[i * n + i];
            }
            for i in (0..n).rev() {
                let dot: f64 = y[i + 1..]
                    .iter()
                    .enumerate()
                    .map(|(m, v)| self.chol[(i + 1 + m) * n + i] * v)
                    .sum();
                y[i] = (y[i] - dot) / self.chol[i * n + i];
            }
            for (&i, v) in self.cells.iter().zip(y) {
                x[i][c] = v as f32;
                *bxc += b[i][c] as f64 * v;
            }
        }
        bx
    }
}

/// Work vectors of one level: right-hand side (levels below the finest), the smoothed
/// approximation, and the output of the post-smoothing sweep.
struct Work {
    b: Vec<V2>,
    x: Vec<V2>,
    out: Vec<V2>,
}

/// The multigrid preconditioner: a symmetric V-cycle (one damped-Jacobi sweep before and
/// after the coarse correction, Galerkin coarse grids, dense solve at the bottom).
struct Multigrid {
    grids: Vec<Grid>,
    work: Vec<Work>,
    dense: Dense,
}

impl Multigrid {
    fn new(finest: Grid) -> Multigrid {
        let mut grids = vec![finest];
        while let Some(g) = grids.last() {
            if g.w * g.h <= DENSE_MAX_CELLS || (g.w == 1 && g.h == 1) {
                break;
            }
            let c = g.coarsen();
            grids.push(c);
        }
        // The finest level's right-hand side is the caller's residual: no `b` there.
        let work = grids
            .iter()
            .enumerate()
            .map(|(level, g)| {
                let z = vec![[0.0f32; 2]; g.len()];
                let b = if level == 0 { Vec::new() } else { z.clone() };
                Work {
                    b,
                    x: z.clone(),
                    out: z,
                }
            })
            .collect();
        let dense = match grids.last() {
            Some(g) => Dense::new(g),
            None => Dense {
                cells: Vec::new(),
                chol: Vec::new(),
            },
        };
        Multigrid { grids, work, dense }
    }
}

/// One V-cycle on `grids[0]` for right-hand side `b`; the result is left in `work[0].out`
/// and `<b, result>` is returned. The pre- and post-smoothing sweeps are the same Jacobi
/// sweep, so the cycle is a symmetric operator, as conjugate gradients requires.
fn vcycle(grids: &[Grid], work: &mut [Work], dense: &Dense, b: &[V2]) -> [f64; 2] {
    let (Some((g, coarser)), Some((wk, rest))) = (grids.split_first(), work.split_first_mut()) else {
        return [0.0; 2];
    };
    let Some((c, next)) = coarser.first().zip(rest.first_mut()) else {
        return dense.solve(b, &mut wk.out);
    };
    g.presmooth_restrict(b, &mut wk.x, c, &mut next.b);
    let cb = std::mem::take(&mut next.b);
    vcycle(coarser, rest, dense, &cb);
    let next = &mut rest[0];
    next.b = cb;
    g.prolong_add(c, &next.out, &mut wk.x);
    g.jacobi(b, &wk.x, &mut wk.out)
}

/// The preconditioner of the conjugate-gradient solve.
enum Preconditioner {
    Jacobi(Grid),
    Multigrid(Multigrid),
}

impl Preconditioner {
    fn grid(&self) -> &Grid {
        match self {
            Preconditioner::Jacobi(g) => g,
            Preconditioner::Multigrid(m) => &m.grids[0],
        }
    }

    fn levels(&self) -> usize {
        match self {
            Preconditioner::Jacobi(_) => 1,
            Preconditioner::Multigrid(m) => m.grids.len(),
        }
    }

    /// `z = M⁻¹ r`; returns `<r, z>` per channel.
    fn apply(&mut self, r: &[V2], z: &mut Vec<V2>) -> [f64; 2] {
        match self {
            Preconditioner::Jacobi(g) => z
                .par_iter_mut()
                .zip(r.par_iter())
                .zip(g.inv_diag.par_iter())
                .with_min_len(16_384)
                .map(|((z, r), &inv)| {
                    *z = [r[0] * inv, r[1] * inv];
                    [(r[0] * z[0]) as f64, (r[1] * z[1]) as f64]
                })
                .reduce(|| [0.0; 2], add2),
            Preconditioner::Multigrid(m) => {
                let rz = vcycle(&m.grids, &mut m.work, &m.dense, r);
                // The V-cycle overwrites every cell of work[0].out, so swapping is enough.
                std::mem::swap(z, &mut m.work[0].out);
                rz
            }
        }
    }
}

fn norm2(v: &[V2]) -> [f64; 2] {
    v.par_iter()
        .with_min_len(16_384)
        .map(|a| [(a[0] as f64).powi(2), (a[1] as f64).powi(2)])
        .reduce(|| [0.0; 2], add2)
}

/// Preconditioned conjugate gradients on the finest grid `g`, from `x` (hinted cells hold
/// the hint values, free cells the starting guess). Both channels run in lock-step, each
/// with its own step sizes; a channel that has converged is frozen.
fn pcg(g: Grid, x: &mut [V2], options: &SolverOptions) -> SolveReport {
    let n = g.len();
    let mut q = vec![[0.0f32; 2]; n];
    // The right-hand side b = -A_fh x_h: the residual with every free cell at 0.
    let hints_only: Vec<V2> = x
        .iter()
        .zip(&g.diag)
        .map(|(v, &d)| if d == 0.0 { *v } else { [0.0; 2] })
        .collect();
    g.apply(&hints_only, &mut q);
    drop(hints_only);
    let b2 = norm2(&q);
    // r = b - A_ff x_f = -(A x) on free rows.
    g.apply(x, &mut q);
    let mut r: Vec<V2> = q.par_iter().with_min_len(16_384).map(|v| [-v[0], -v[1]]).collect();
    let mut pre = if options.multigrid {
        Preconditioner::Multigrid(Multigrid::new(g))
    } else {
        Preconditioner::Jacobi(g)
    };
    let tol2: [f64; 2] = std::array::from_fn(|c| (options.tolerance as f64).powi(2) * b2[c]);
    let mut r2 = norm2(&r);
    let mut active: [bool; 2] = std::array::from_fn(|c| r2[c] > tol2[c]);
    let mut z = vec![[0.0f32; 2]; n];
    let mut rz = pre.apply(&r, &mut z);
    let mut p = z.clone();
    let mut iterations = 0;
    while iterations < options.max_iterations && active.iter().any(|&a| a) {
        let pq = pre.grid().apply(&p, &mut q);
        let alpha: [f32; 2] = std::array::from_fn(|c| {
            if active[c] && pq[c] > 0.0 && rz[c] > 0.0 {
                (rz[c] / pq[c]) as f32
            } else {
                0.0
            }
        });
        let r2_new = x
            .par_iter_mut()
            .zip(r.par_iter_mut())
            .zip(p.par_iter().zip(q.par_iter()))
            .with_min_len(16_384)
            .map(|((x, r), (p, q))| {
                for c in 0..2 {
                    x[c] += alpha[c] * p[c];
                    r[c] -= alpha[c] * q[c];
                }
                [(r[0] as f64).powi(2), (r[1] as f64).powi(2)]
            })
            .reduce(|| [0.0; 2], add2);
        let rz_new = pre.apply(&r, &mut z);
        let beta: [f32; 2] = std::array::from_fn(|c| {
            if alpha[c] != 0.0 {
                (rz_new[c] / rz[c]) as f32
            } else {
                0.0
            }
        });
        p.par_iter_mut()
            .zip(z.par_iter())
            .with_min_len(16_384)
            .for_each(|(p, z)| {
                *p = [z[0] + beta[0] * p[0], z[1] + beta[1] * p[1]];
            });
        for c in 0..2 {
            if alpha[c] != 0.0 {
                r2[c] = r2_new[c];
                rz[c] = rz_new[c];
            }
            // Converged, or no further progress possible (breakdown).
            active[c] = alpha[c] != 0.0 && r2[c] > tol2[c];
        }
        iterations += 1;
    }
    let residual: [f32; 2] = std::array::from_fn(|c| {
        if b2[c] > 0.0 {
            (r2[c] / b2[c]).sqrt() as f32
        } else {
            r2[c].sqrt() as f32
        }
    });
    SolveReport {
        levels: pre.levels(),
        iterations,
        residual,
        converged: (0..2).all(|c| r2[c] <= tol2[c]),
    }
}

/// Colourises `gray` (only its `l` plane is read) from the hints, returning the image with
/// `gray.l` copied exactly and the propagated (a, b). See the module documentation for the
/// method.
///
/// # Errors
/// [`ClassicError::MalformedLab`], [`ClassicError::ScribbleSize`] when the hint map's size
/// differs from the image's, [`ClassicError::NoHints`] without any hinted pixel,
/// [`ClassicError::BadParameter`] for a tolerance outside (0, 1) or zero iterations.
pub fn colorize_with_hints(
    gray: &LabImage,
    hints: &HintMap,
    options: &SolverOptions,
) -> Result<LabImage, ClassicError> {
    colorize_with_hints_report(gray, hints, options).map(|(img, _)| img)
}

/// [`colorize_with_hints`], also reporting how the solve went (an unconverged solve after
/// `max_iterations` is not an error; check [`SolveReport::converged`]).
pub fn colorize_with_hints_report(
    gray: &LabImage,
    hints: &HintMap,
    options: &SolverOptions,
) -> Result<(LabImage, SolveReport), ClassicError> {
    let n = check_lab(gray)?;
    if (hints.width, hints.height) != (gray.width, gray.height) || hints.hints.len() != n {
        return Err(ClassicError::ScribbleSize {
            scribble_w: hints.width,
            scribble_h: hints.height,
            width: gray.width,
            height: gray.height,
        });
    }
    if !(options.tolerance > 0.0 && options.tolerance < 1.0) {
        return Err(ClassicError::BadParameter {
            name: "tolerance",
            value: options.tolerance as f64,
            expected: "a number in (0, 1)",
        });
    }
    if options.max_iterations == 0 {
        return Err(ClassicError::BadParameter {
            name: "max_iterations",
            value: 0.0,
            expected: "at least 1",
        });
    }
    let (count, sum) = hints.hints.iter().flatten().fold((0usize, [0.0f64; 2]), |(n, s), v| {
        (n + 1, [s[0] + v[0] as f64, s[1] + v[1] as f64])
    });
    if count == 0 {
        return Err(ClassicError::NoHints("the hint map has no hinted pixel"));
    }
    let mean = [(sum[0] / count as f64) as f32, (sum[1] / count as f64) as f32];
    let (w, h) = (gray.width as usize, gray.height as usize);
    let y: Vec<f32> = gray.l.par_iter().map(|&l| l / 100.0).collect();
    let grid = Grid::finest(&y, w, h, &hints.hints);
    drop(y);
    // Start: hint values where hinted, the mean hint colour elsewhere.
    let mut x = vec![[0.0f32; 2]; grid.len()];
    for yy in 0..h {
        for xx in 0..w {
            x[grid.padded(xx, yy)] = hints.hints[yy * w + xx].unwrap_or(mean);
        }
    }
    let pw = grid.pw;
    let report = pcg(grid, &mut x, options);
    let mut a = Vec::with_capacity(n);
    let mut b = Vec::with_capacity(n);
    for yy in 0..h {
        for v in &x[(yy + 1) * pw + 1..(yy + 1) * pw + 1 + w] {
            a.push(v[0]);
            b.push(v[1]);
        }
    }
    Ok((with_ab(gray, a, b), report))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn two_region_gray(w: u32, h: u32) -> LabImage {
        let n = (w * h) as usize;
        let l = (0..n)
            .map(|i| if (i as u32 % w) < w / 2 { 30.0 } else { 70.0 })
            .collect();
        LabImage {
            width: w,
            height: h,
            l,
            a: vec![0.0; n],
            b: vec![0.0; n],
        }
    }

    fn region_mean(img: &LabImage, cols: std::ops::Range<u32>) -> [f32; 2] {
        let (mut s, mut n) = ([0.0f32; 2], 0.0);
        for y in 0..img.height {
            for x in cols.clone() {
                let i = (y * img.width + x) as usize;
                s = [s[0] + img.a[i], s[1] + img.b[i]];
                n += 1.0;
            }
        }
        [s[0] / n, s[1] / n]
    }

    fn dist(p: [f32; 2], q: [f32; 2]) -> f32 {
        ((p[0] - q[0]).powi(2) + (p[1] - q[1]).powi(2)).sqrt()
    }

    #[test]
    fn two_flat_regions_take_their_scribbles_colour_with_a_sharp_edge() {
        // Left L = 30, right L = 70, sharp vertical edge at x = 40; one red scribble left,
        // one blue scribble right.
        let (w, h) = (96u32, 64u32);
        let gray = two_region_gray(w, h);
        // Each scribble is a vertical stroke of discs of radius 2 (13 pixels each).
        let mut points = Vec::new();
        for y in (8..=56).step_by(4) {
            points.push(HintPoint {
                x: 10,
                y,
                color: Some("#ff0000".into()),
                radius: Some(2.0),
                ..Default::default()
            });
            points.push(HintPoint::rgb(85, y, [0, 0, 255]).with_radius(2.0));
        }
        let map = HintMap::from_points(&HintSet { points }, w, h).unwrap();
        assert!(map.count() > 2 * 13 * 4);
        let (out, report) = colorize_with_hints_report(&gray, &map, &SolverOptions::default()).unwrap();
        assert!(report.levels >= 2 && report.converged, "{report:?}");
        assert_eq!(out.l, gray.l, "L must be preserved exactly");
        let red = rgb8_to_lab([255, 0, 0]);
        let blue = rgb8_to_lab([0, 0, 255]);
        let (red, blue) = ([red[1], red[2]], [blue[1], blue[2]]);
        let gap = dist(red, blue); // ≈ 175
        // The exact minimiser leaks a little colour through the weak cross-edge affinities
        // (w ≈ 1e-4 here), falling off linearly from the stroke to the edge: about 3% of the
        // red-blue distance at the edge, under 2% on average.
        let left = region_mean(&out, 0..w / 2);
        let right = region_mean(&out, w / 2..w);
        assert!(dist(left, red) < 0.025 * gap, "left {left:?} vs red {red:?}");
        assert!(dist(right, blue) < 0.025 * gap, "right {right:?} vs blue {blue:?}");
        // Sharp boundary: the columns just either side of the edge keep their own colour.
        let col_l = region_mean(&out, w / 2 - 1..w / 2);
        let col_r = region_mean(&out, w / 2..w / 2 + 1);
        assert!(dist(col_l, red) < 0.05 * gap, "column left of edge {col_l:?}");
        assert!(dist(col_r, blue) < 0.05 * gap, "column right of edge {col_r:?}");
        for y in 0..h {
            let i = (y * w + w / 2 - 1) as usize;
            assert!(
                out.b[i] > 0.0 && out.b[i + 1] < 0.0,
                "row {y}: {} | {}",
                out.b[i],
                out.b[i + 1]
            );
        }
    }

    /// Dense Gaussian elimination of the same symmetric system, for checking the solver.
    fn dense_solve(y: &[f32], w: usize, h: usize, hint: &[Option<[f32; 2]>]) -> Vec<[f32; 2]> {
        let n = w * h;
        let wn = affinities(y, w, h);
        let mut out = vec![[0.0f32; 2]; n];
        for c in 0..2 {
            let mut a = vec![vec![0.0f64; n + 1]; n];
            for i in 0..n {
                if let Some(ab) = hint[i] {
                    a[i][i] = 1.0;
                    a[i][n] = ab[c] as f64;
                    continue;
                }
                let (x, y) = ((i % w) as isize, (i / w) as isize);
                for (j, &(dx, dy)) in NEIGH.iter().enumerate() {
                    let (sx, sy) = (x + dx, y + dy);
                    if sx < 0 || sy < 0 || sx >= w as isize || sy >= h as isize {
                        continue;
                    }
                    let s = sy as usize * w + sx as usize;
                    let k = wn[i][j] as f64 + wn[s][7 - j] as f64;
                    a[i][i] += k;
                    a[i][s] -= k;
                }
            }
            for col in 0..n {
                let piv = (col..n)
                    .max_by(|&p, &q| a[p][col].abs().total_cmp(&a[q][col].abs()))
                    .unwrap();
                a.swap(col, piv);
                let pivot = a[col].clone();
                for (r, row) in a.iter_mut().enumerate() {
                    if r != col && row[col] != 0.0 {
                        let f = row[col] / pivot[col];
                        for (dst, src) in row[col..].iter_mut().zip(&pivot[col..]) {
                            *dst -= f * src;
                        }
                    }
                }
            }
            for i in 0..n {
                out[i][c] = (a[i][n] / a[i][i]) as f32;
            }
        }
        out
    }

    #[test]
    fn conjugate_gradients_match_a_dense_solve() {
        // A 40x33 textured image with a few hints: 5 multigrid levels down to 3x3.
        let (w, h) = (40usize, 33usize);
        let l: Vec<f32> = (0..w * h)
            .map(|i| ((i * 7919) % 101) as f32 * 0.3 + (i % w) as f32)
            .collect();
        let gray = LabImage {
            width: w as u32,
            height: h as u32,
            l: l.clone(),
            a: vec![0.0; w * h],
            b: vec![0.0; w * h],
        };
        let set = HintSet {
            points: vec![
                HintPoint::ab(3, 4, [40.0, -20.0]),
                HintPoint::ab(30, 20, [-35.0, 50.0]).with_radius(1.5),
                HintPoint::ab(12, 30, [0.0, 0.0]),
            ],
        };
        let map = HintMap::from_points(&set, w as u32, h as u32).unwrap();
        let y: Vec<f32> = l.iter().map(|v| v / 100.0).collect();
        let exact = dense_solve(&y, w, h, &map.hints);
        for multigrid in [true, false] {
            let opts = SolverOptions {
                tolerance: 1e-6,
                max_iterations: 5000,
                multigrid,
            };
            let (out, report) = colorize_with_hints_report(&gray, &map, &opts).unwrap();
            assert!(report.converged, "{report:?}");
            for (i, want) in exact.iter().enumerate() {
                let got = [out.a[i], out.b[i]];
                assert!(
                    dist(got, *want) < 1e-2,
                    "multigrid {multigrid}, pixel {i}: {got:?} vs {want:?}"
                );
            }
        }
        let out = colorize_with_hints(&gray, &map, &SolverOptions::default()).unwrap();
        // The solution interpolates: every value lies within the hints' range.
        assert!(out.a.iter().all(|&v| (-35.01..=40.01).contains(&v)));
    }

    #[test]
    fn multigrid_agrees_with_a_tight_jacobi_solve() {
        let (w, h) = (150u32, 130u32);
        let n = (w * h) as usize;
        let l: Vec<f32> = (0..n)
            .map(|i| {
                let (x, y) = ((i as u32 % w) as f32, (i as u32 / w) as f32);
                50.0 + 30.0 * ((x / 9.0).sin() * (y / 13.0).cos()) + if x > 90.0 { 15.0 } else { 0.0 }
            })
            .collect();
        let gray = LabImage {
            width: w,
            height: h,
            l,
            a: vec![0.0; n],
            b: vec![0.0; n],
        };
        let set = HintSet {
            points: vec![
                HintPoint::rgb(20, 20, [200, 40, 40]).with_radius(3.0),
                HintPoint::rgb(120, 100, [40, 40, 200]).with_radius(3.0),
                HintPoint::rgb(60, 110, [40, 180, 60]).with_radius(3.0),
            ],
        };
        let map = HintMap::from_points(&set, w, h).unwrap();
        let tight = SolverOptions {
            tolerance: 1e-7,
            max_iterations: 50_000,
            multigrid: false,
        };
        let (reference, rep) = colorize_with_hints_report(&gray, &map, &tight).unwrap();
        assert!(rep.converged, "{rep:?}");
        // Default tolerance: well under one a*b* unit anywhere; tighter: near-exact.
        for (tolerance, max_allowed) in [(SolverOptions::default().tolerance, 0.25), (1e-6, 0.005)] {
            let opts = SolverOptions {
                tolerance,
                ..SolverOptions::default()
            };
            let (fast, report) = colorize_with_hints_report(&gray, &map, &opts).unwrap();
            assert!(
                report.levels >= 4 && report.converged && report.iterations < 100,
                "{report:?}"
            );
            let max_err = (0..n)
                .map(|i| dist([fast.a[i], fast.b[i]], [reference.a[i], reference.b[i]]))
                .fold(0.0f32, f32::max);
            assert!(
                max_err < max_allowed,
                "max ab difference {max_err}, {report:?} vs {rep:?}"
            );
        }
    }

    #[test]
    fn hint_errors_are_clear() {
        let gray = two_region_gray(20, 10);
        // Outside the image.
        let set = HintSet {
            points: vec![HintPoint::rgb(5, 5, [255, 0, 0]), HintPoint::rgb(20, 3, [0, 0, 255])],
        };
        let err = HintMap::from_points(&set, 20, 10).unwrap_err();
        assert!(matches!(
            err,
            ClassicError::HintOutside {
                index: 1,
                x: 20,
                y: 3,
                width: 20,
                height: 10
            }
        ));
        let msg = err.to_string();
        assert!(msg.contains("(20, 3)") && msg.contains("20x10"), "{msg}");
        let neg = HintSet {
            points: vec![HintPoint::rgb(-1, 0, [255, 0, 0])],
        };
        assert!(matches!(
            HintMap::from_points(&neg, 20, 10),
            Err(ClassicError::HintOutside { x: -1, .. })
        ));
        // Empty.
        assert!(matches!(
            HintMap::from_points(&HintSet::default(), 20, 10),
            Err(ClassicError::NoHints(_))
        ));
        assert!(matches!(
            colorize_with_hints(&gray, &HintMap::empty(20, 10), &SolverOptions::default()),
            Err(ClassicError::NoHints(_))
        ));
        // Hint map of the wrong size.
        assert!(matches!(
            colorize_with_hints(&gray, &HintMap::empty(10, 20), &SolverOptions::default()),
            Err(ClassicError::ScribbleSize { .. })
        ));
        // Bad JSON, bad colour, no / two colours, bad radius.
        assert!(matches!(
            hints_from_json("{\"points\": [{\"x\": 1}"),
            Err(ClassicError::HintsJson(_))
        ));
        assert!(matches!(
            hints_from_json("{\"points\": [{\"x\": 1, \"y\": \"a\"}]}"),
            Err(ClassicError::HintsJson(_))
        ));
        let bad_colour = hints_from_json(r##"{"points":[{"x":1,"y":1,"color":"#12345"}]}"##).unwrap();
        assert!(matches!(
            HintMap::from_points(&bad_colour, 20, 10),
            Err(ClassicError::BadColour { .. })
        ));
        let none = hints_from_json(r#"{"points":[{"x":1,"y":1}]}"#).unwrap();
        assert!(matches!(
            HintMap::from_points(&none, 20, 10),
            Err(ClassicError::BadHint { index: 0, .. })
        ));
        let two = hints_from_json(r##"{"points":[{"x":1,"y":1,"color":"#fff","rgb":[1,2,3]}]}"##).unwrap();
        assert!(matches!(
            HintMap::from_points(&two, 20, 10),
            Err(ClassicError::BadHint { .. })
        ));
        // A huge radius paints the whole image (clipped, no overflow).
        let huge = r##"{"points":[{"x":1,"y":1,"color":"#fff","radius":1e30}]}"##;
        let huge = hints_from_json(huge).unwrap();
        assert_eq!(HintMap::from_points(&huge, 20, 10).unwrap().count(), 200);
        let rad = hints_from_json(r##"{"points":[{"x":1,"y":1,"color":"#fff","radius":-2}]}"##).unwrap();
        assert!(matches!(
            HintMap::from_points(&rad, 20, 10),
            Err(ClassicError::BadHint { .. })
        ));
        // Bad solver options.
        let ok = HintMap::from_points(&set_one(), 20, 10).unwrap();
        let opts = SolverOptions {
            tolerance: 0.0,
            ..Default::default()
        };
        assert!(matches!(
            colorize_with_hints(&gray, &ok, &opts),
            Err(ClassicError::BadParameter { .. })
        ));
    }

    fn set_one() -> HintSet {
        HintSet {
            points: vec![HintPoint::rgb(1, 1, [255, 0, 0])],
        }
    }

    #[test]
    fn json_round_trip_and_formats() {
        let json = r##"{"points":[
            {"x":10,"y":20,"color":"#ff0000"},
            {"x":3.6,"y":4,"rgb":[0,0,255],"radius":2.5},
            {"x":5,"y":6,"colour":"#0f0"},
            {"x":7,"y":8,"ab":[10.5,-3]}
        ]}"##;
        let set = hints_from_json(json).unwrap();
        assert_eq!(set.points[1].x, 4, "float coordinates are rounded");
        assert_eq!(set.points[2].color.as_deref(), Some("#0f0"));
        let back = hints_from_json(&hints_to_json(&set)).unwrap();
        assert_eq!(back, set);
        let map = HintMap::from_points(&set, 32, 32).unwrap();
        assert_eq!(map.hints[7 + 8 * 32], Some([10.5, -3.0]));
        let red = rgb8_to_lab([255, 0, 0]);
        assert_eq!(map.hints[10 + 20 * 32], Some([red[1], red[2]]));
    }

    #[test]
    fn scribble_pixels_become_hints() {
        let (w, h) = (12u32, 8u32);
        let g = image::GrayImage::from_fn(w, h, |x, _| image::Luma([(x * 20) as u8]));
        let gray = super::super::lab_from_gray(&g);
        let mut scribble = RgbImage::from_fn(w, h, |x, y| {
            let v = g.get_pixel(x, y).0[0];
            image::Rgb([v, v, v])
        });
        scribble.put_pixel(2, 3, image::Rgb([220, 30, 30]));
        scribble.put_pixel(9, 5, image::Rgb([30, 30, 220]));
        // A faint tint (chroma < 5) is not a hint.
        scribble.put_pixel(5, 5, image::Rgb([102, 100, 100]));
        let map = hints_from_scribble(&gray, &scribble, SCRIBBLE_MIN_CHROMA).unwrap();
        assert_eq!(map.count(), 2);
        let red = rgb8_to_lab([220, 30, 30]);
        assert_eq!(map.hints[(3 * w + 2) as usize], Some([red[1], red[2]]));
        assert!(map.hints[(5 * w + 9) as usize].is_some());
        // Errors: wrong size, nothing coloured.
        let small = RgbImage::new(w - 1, h);
        let err = hints_from_scribble(&gray, &small, 5.0).unwrap_err();
        assert!(
            err.to_string().contains("11x8") && err.to_string().contains("12x8"),
            "{err}"
        );
        let plain = RgbImage::from_fn(w, h, |x, y| {
            let v = g.get_pixel(x, y).0[0];
            image::Rgb([v, v, v])
        });
        assert!(matches!(
            hints_from_scribble(&gray, &plain, 5.0),
            Err(ClassicError::NoHints(_))
        ));
        // The whole pipeline on the scribble.
        let out = colorize_with_hints(&gray, &map, &SolverOptions::default()).unwrap();
        assert_eq!(out.l, gray.l);
        assert!(out.a[(3 * w + 2) as usize] > 30.0);
    }

    #[test]
    fn files_load_and_file_errors_are_clear() {
        let dir = std::env::temp_dir().join(format!("tinct-hints-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        // A scribble PNG over a flat gray image.
        let (w, h) = (16u32, 12u32);
        let gray = super::super::lab_from_gray(&image::GrayImage::from_pixel(w, h, image::Luma([128])));
        let mut scribble = RgbImage::from_pixel(w, h, image::Rgb([128, 128, 128]));
        for x in 2..6 {
            scribble.put_pixel(x, 3, image::Rgb([200, 40, 40]));
        }
        let png = dir.join("scribble.png");
        scribble.save(&png).unwrap();
        let loaded = load_scribble(&png).unwrap();
        assert_eq!(loaded, scribble);
        assert_eq!(
            hints_from_scribble(&gray, &loaded, SCRIBBLE_MIN_CHROMA)
                .unwrap()
                .count(),
            4
        );
        // A hints JSON file.
        let json = dir.join("hints.json");
        std::fs::write(&json, r##"{"points":[{"x":1,"y":2,"color":"#00ff00","radius":1}]}"##).unwrap();
        let set = load_hints_json(&json).unwrap();
        assert_eq!(HintMap::from_points(&set, w, h).unwrap().count(), 5);
        // Missing files and a file that is not an image.
        let missing = dir.join("missing.json");
        let err = load_hints_json(&missing).unwrap_err();
        assert!(
            matches!(err, ClassicError::Io { .. }) && err.to_string().contains("missing.json"),
            "{err}"
        );
        let err = load_scribble(&json).unwrap_err();
        assert!(
            matches!(err, ClassicError::Image { .. }) && err.to_string().contains("hints.json"),
            "{err}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn tiny_images_work() {
        let one = LabImage {
            width: 1,
            height: 1,
            l: vec![50.0],
            a: vec![0.0],
            b: vec![0.0],
        };
        let map = HintMap::from_points(
            &HintSet {
                points: vec![HintPoint::ab(0, 0, [5.0, 6.0])],
            },
            1,
            1,
        )
        .unwrap();
        let out = colorize_with_hints(&one, &map, &SolverOptions::default()).unwrap();
        assert_eq!((out.a[0], out.b[0]), (5.0, 6.0));
        let row = two_region_gray(7, 1);
        let map = HintMap::from_points(
            &HintSet {
                points: vec![HintPoint::ab(0, 0, [5.0, 6.0])],
            },
            7,
            1,
        )
        .unwrap();
        let out = colorize_with_hints(&row, &map, &SolverOptions::default()).unwrap();
        assert!(out.a.iter().all(|&v| (v - 5.0).abs() < 0.05), "{:?}", out.a);
    }
}
