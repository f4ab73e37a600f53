//! `tinct eval`: scores methods against ground truth (PSNR, SSIM, CIEDE2000, colourfulness,
//! ab-error AuC, colour cast) and writes `report.json` and a self-contained `report.html` with the table
//! and the best and worst images per method.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use base64::Engine;
use image::{RgbImage, imageops};
use indicatif::{ProgressBar, ProgressStyle};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::color::LabImage;
use crate::infer::Colorizer;
use crate::method::Method;
use crate::metrics::{self, Metrics};
use crate::pipeline::Colorize;

/// Options of an evaluation.
#[derive(Clone, Debug)]
pub struct EvalOptions {
    /// Folder for `report.json` and `report.html`.
    pub out: PathBuf,
    /// Evaluate at most this many images (sorted by path).
    pub limit: Option<usize>,
    /// Best and worst images shown per method.
    pub grid_rows: usize,
    pub quiet: bool,
}

/// Scores of one image under one method.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ImageScore {
    pub file: String,
    pub method: String,
    #[serde(flatten)]
    pub metrics: Metrics,
}

/// Mean scores of one method.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct MethodSummary {
    pub method: String,
    #[serde(flatten)]
    pub mean: Metrics,
    /// Mean seconds per image spent colourising (0 for precomputed predictions).
    pub seconds_per_image: f64,
    /// Standard error of each mean over the images ([`metrics::standard_errors`]).
    #[serde(default)]
    pub standard_error: Metrics,
    /// Mean colourfulness over the truth's, and its standard error.
    #[serde(default)]
    pub colourfulness_ratio: f64,
    #[serde(default)]
    pub colourfulness_ratio_se: f64,
}

/// The whole report (`report.json`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Report {
    pub truth_dir: String,
    pub summary: Vec<MethodSummary>,
    pub images: Vec<ImageScore>,
    /// Files that could not be evaluated, with the reason.
    pub errors: Vec<String>,
}

impl MethodSummary {
    /// The summary of per-image scores.
    fn of(method: String, all: &[Metrics], seconds_per_image: f64) -> MethodSummary {
        let (ratio, ratio_se) = metrics::colourfulness_ratio(all);
        MethodSummary {
            method,
            mean: metrics::mean_metrics(all),
            seconds_per_image,
            standard_error: metrics::standard_errors(all),
            colourfulness_ratio: ratio,
            colourfulness_ratio_se: ratio_se,
        }
    }

    /// The standard errors, formatted as [`Self::cells`] (no image count).
    fn error_cells(&self) -> [String; 8] {
        // The cast's size has no simple standard error; its components' are in the JSON.
        let mut c = format_cells(String::new(), &self.standard_error);
        c[7] = String::new();
        c
    }

    /// The image count and the mean metrics, formatted, in table order (shared by the text
    /// and HTML tables).
    fn cells(&self) -> [String; 8] {
        format_cells(self.mean.images.to_string(), &self.mean)
    }
}

fn format_cells(first: String, m: &Metrics) -> [String; 8] {
    [
        first,
        format!("{:.2}", m.psnr),
        format!("{:.3}", m.ssim),
        format!("{:.2}", m.ciede2000),
        format!("{:.3}", m.ab_auc),
        format!("{:.1}", m.colourfulness),
        format!("{:.1}", m.colourfulness_truth),
        format!("{:.2}", m.cast()),
    ]
}

impl Report {
    pub fn summary_table(&self) -> String {
        const WIDTHS: [usize; 8] = [6, 7, 6, 7, 6, 8, 8, 6];
        let row = |first: &str, cells: &[String]| {
            let mut line = format!("{first:<28}");
            for (c, w) in cells.iter().zip(WIDTHS) {
                line += &format!(" {c:>w$}");
            }
            line + "\n"
        };
        let header = ["images", "PSNR", "SSIM", "dE2000", "AuC", "CF", "CF truth", "cast"].map(String::from);
        let mut s = row("method", &header);
        for m in &self.summary {
            s += &row(&m.method, &m.cells());
            if m.standard_error.images > 1 {
                let label = format!(
                    "  ± s.e., CF {:.2}x ±{:.3}",
                    m.colourfulness_ratio, m.colourfulness_ratio_se
                );
                s += &row(&label, &m.error_cells());
            }
        }
        s
    }
}

fn bar(len: usize, quiet: bool) -> ProgressBar {
    if quiet {
        return ProgressBar::hidden();
    }
    let b = ProgressBar::new(len as u64);
    b.set_style(
        ProgressStyle::with_template("[{bar:30}] {pos}/{len} images {per_sec} {eta_precise}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    b
}

fn truth_files(dir: &Path, limit: Option<usize>) -> Result<Vec<PathBuf>> {
    let mut files = crate::data::require_images(dir)?;
    if let Some(n) = limit {
        files.truncate(n);
    }
    Ok(files)
}

fn rel_name(path: &Path, dir: &Path) -> String {
    path.strip_prefix(dir).unwrap_or(path).to_string_lossy().into_owned()
}

/// The gain at which a colouriser's colour matches a share of the truth's.
#[derive(Clone, Copy, Debug)]
pub struct GainMatch {
    /// Multiplies the colouriser's current colour (rounded to 4 decimals, so that
    /// `--saturation` reproduces it).
    pub gain: f32,
    /// Mean colourfulness of the outputs at that gain.
    pub colourfulness: f64,
    /// The truth's mean colourfulness the ratio was taken of.
    pub colourfulness_truth: f64,
}

/// Mean colourfulness (Hasler and Süsstrunk) of the colour images in `dir`, and how many were
/// read. Unreadable files are skipped; a folder with none readable is an error.
pub fn mean_colourfulness(dir: &Path) -> Result<(f64, usize)> {
    let files = truth_files(dir, None)?;
    let cf: Vec<f64> = files
        .par_iter()
        .filter_map(|f| crate::imageio::open(f).ok())
        .map(|img| metrics::colourfulness(&img.to_rgb8()))
        .collect();
    if cf.is_empty() {
        bail!("{}: no readable image to take the colourfulness of", dir.display());
    }
    Ok((cf.iter().sum::<f64>() / cf.len() as f64, cf.len()))
}

/// Finds the gain at which `c`'s mean colourfulness (Hasler and Süsstrunk) on the colour
/// images of `truth_dir` (the first `limit`) is `ratio` times the truth's: the calibration of
/// `tinct export --saturation`, to be done on images the model did not train on. The truth's
/// colourfulness is that of the same images, or `truth_colourfulness` when given (the mean over
/// a larger set of the same kind of image, such as the whole training folder: the model's
/// colour varies less from sample to sample than the truth's, so a small held-out set is a
/// better estimate of the one than of the other). Each image is colourised once; the chroma is
/// then scaled and converted to RGB for each trial gain (secant steps on this increasing
/// function, until within 0.1 % of the target). Unreadable files are skipped here (the
/// evaluation itself reports them).
pub fn matching_gain(
    c: &Colorizer,
    truth_dir: &Path,
    ratio: f64,
    truth_colourfulness: Option<f64>,
    limit: Option<usize>,
) -> Result<GainMatch> {
    if !(ratio.is_finite() && ratio > 0.0 && ratio <= 2.0) {
        bail!("colourfulness ratio {ratio}: must be a number in (0, 2]");
    }
    if let Some(t) = truth_colourfulness
        && !(t.is_finite() && t > 0.0)
    {
        bail!("truth colourfulness {t}: must be a positive number");
    }
    let files = truth_files(truth_dir, limit)?;
    // Unreadable files are left out, as in scoring; the colouring is the one every command uses.
    let pairs: Vec<(LabImage, f64)> = files
        .par_iter()
        .filter_map(|f| crate::imageio::open(f).ok())
        .map(|img| {
            let truth = img.to_rgb8();
            let out = c.colorize_lab(&LabImage::from_rgb8(&truth), None)?;
            Ok((out, metrics::colourfulness(&truth)))
        })
        .collect::<Result<_>>()?;
    if pairs.is_empty() {
        bail!("{}: no readable image to calibrate on", truth_dir.display());
    }
    let n = pairs.len() as f64;
    let truth = truth_colourfulness.unwrap_or_else(|| pairs.iter().map(|p| p.1).sum::<f64>() / n);
    let at = |g: f64| -> f64 {
        let scale = |v: &[f32]| v.iter().map(|x| x * g as f32).collect::<Vec<f32>>();
        pairs
            .par_iter()
            .map(|(o, _)| {
                let lab = LabImage {
                    width: o.width,
                    height: o.height,
                    l: o.l.clone(),
                    a: scale(&o.a),
                    b: scale(&o.b),
                };
                metrics::colourfulness(&lab.to_rgb8())
            })
            .sum::<f64>()
            / n
    };
    let target = ratio * truth;
    let (mut g0, mut cf0) = (0.0, at(0.0));
    let (mut g1, mut cf1) = (1.0, at(1.0));
    if cf1 <= cf0 {
        bail!(
            "the model predicts no colour on {}: no gain can match",
            truth_dir.display()
        );
    }
    for _ in 0..12 {
        if (cf1 - target).abs() <= 1e-3 * target {
            break;
        }
        let g2 = (g1 + (target - cf1) * (g1 - g0) / (cf1 - cf0)).clamp(0.0, 20.0);
        (g0, cf0) = (g1, cf1);
        (g1, cf1) = (g2, at(g2));
        if cf1 == cf0 {
            break;
        }
    }
    let gain = ((g1 * 1e4).round() / 1e4) as f32;
    Ok(GainMatch {
        gain,
        colourfulness: at(gain as f64),
        colourfulness_truth: truth,
    })
}

/// Evaluates `methods` on the colour images of `truth_dir`: each is reduced to its L,
/// colourised, and compared with the original. The gray baseline is always included.
pub fn eval_methods(methods: Vec<Method>, truth_dir: &Path, opts: &EvalOptions) -> Result<Report> {
    let mut methods = methods;
    if !methods.iter().any(|m| matches!(m, Method::Gray)) {
        methods.insert(0, Method::Gray);
    }
    let files = truth_files(truth_dir, opts.limit)?;
    let names: Vec<String> = methods.iter().map(Method::name).collect();
    let progress = bar(files.len(), opts.quiet);
    // Images are evaluated in parallel; each yields per-method scores and timings.
    type PerImage = (Vec<(usize, Metrics, f64)>, Vec<String>);
    let results: Vec<PerImage> = files
        .par_iter()
        .map(|f| {
            let mut scores = Vec::new();
            let mut errors = Vec::new();
            match crate::imageio::open(f) {
                Err(e) => errors.push(format!("{e:#}")),
                Ok(img) => {
                    let truth = img.to_rgb8();
                    let lab = LabImage::from_rgb8(&truth);
                    for (i, m) in methods.iter().enumerate() {
                        let t0 = Instant::now();
                        let out = m.colorize(&lab, None).map(|o| o.to_rgb8());
                        let secs = t0.elapsed().as_secs_f64();
                        match out.and_then(|p| metrics::compare(&p, &truth).map_err(Into::into)) {
                            Ok(s) => scores.push((i, s, secs)),
                            Err(e) => errors.push(format!("{}: {}: {e:#}", f.display(), names[i])),
                        }
                    }
                }
            }
            progress.inc(1);
            (scores, errors)
        })
        .collect();
    progress.finish_and_clear();

    let mut images = Vec::new();
    let mut errors = Vec::new();
    let mut per_method: Vec<(Vec<Metrics>, f64)> = vec![(Vec::new(), 0.0); methods.len()];
    for (f, (scores, errs)) in files.iter().zip(results) {
        errors.extend(errs);
        for (i, s, secs) in scores {
            per_method[i].0.push(s.clone());
            per_method[i].1 += secs;
            images.push(ImageScore {
                file: rel_name(f, truth_dir),
                method: names[i].clone(),
                metrics: s,
            });
        }
    }
    let summary = names
        .iter()
        .zip(&per_method)
        .map(|(n, (all, secs))| MethodSummary::of(n.clone(), all, secs / all.len().max(1) as f64))
        .collect();
    let report = Report {
        truth_dir: truth_dir.display().to_string(),
        summary,
        images,
        errors,
    };
    let grids = grids_for_methods(&report, &methods, truth_dir, opts.grid_rows)?;
    write_report(&report, &grids, &opts.out)?;
    Ok(report)
}

/// Evaluates precomputed predictions against ground truth, matching files by their path
/// relative to each folder (or, failing that, by file stem).
pub fn eval_pairs(pred_dir: &Path, truth_dir: &Path, opts: &EvalOptions) -> Result<Report> {
    let truths = truth_files(truth_dir, opts.limit)?;
    let preds = crate::data::require_images(pred_dir)?;
    let mut by_rel: BTreeMap<String, PathBuf> = BTreeMap::new();
    let mut by_stem: BTreeMap<String, PathBuf> = BTreeMap::new();
    for p in preds {
        by_rel.insert(rel_name(&p, pred_dir), p.clone());
        if let Some(s) = p.file_stem() {
            by_stem.insert(s.to_string_lossy().into_owned(), p);
        }
    }
    let progress = bar(truths.len(), opts.quiet);
    let results: Vec<Result<ImageScore, String>> = truths
        .par_iter()
        .map(|t| {
            let rel = rel_name(t, truth_dir);
            let stem = t
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            let r = (|| -> Result<ImageScore> {
                let p = by_rel
                    .get(&rel)
                    .or_else(|| by_stem.get(&stem))
                    .with_context(|| format!("{}: no prediction for it in {}", t.display(), pred_dir.display()))?;
                let pred = crate::imageio::open(p)?.to_rgb8();
                let truth = crate::imageio::open(t)?.to_rgb8();
                let m =
                    metrics::compare(&pred, &truth).with_context(|| format!("{} vs {}", p.display(), t.display()))?;
                Ok(ImageScore {
                    file: rel,
                    method: "pred".into(),
                    metrics: m,
                })
            })();
            progress.inc(1);
            r.map_err(|e| format!("{e:#}"))
        })
        .collect();
    progress.finish_and_clear();
    let mut images = Vec::new();
    let mut errors = Vec::new();
    for r in results {
        match r {
            Ok(s) => images.push(s),
            Err(e) => errors.push(e),
        }
    }
    if images.is_empty() {
        bail!(
            "no prediction could be scored: {}",
            errors.first().cloned().unwrap_or_default()
        );
    }
    let all: Vec<Metrics> = images.iter().map(|i| i.metrics.clone()).collect();
    let summary = vec![MethodSummary::of("pred".into(), &all, 0.0)];
    let report = Report {
        truth_dir: truth_dir.display().to_string(),
        summary,
        images,
        errors,
    };
    write_report(&report, &[], &opts.out)?;
    Ok(report)
}

/// Height of the thumbnails in the HTML grids.
const THUMB_H: u32 = 128;

fn thumb(img: &RgbImage) -> RgbImage {
    let w = (img.width() as u64 * THUMB_H as u64 / img.height().max(1) as u64).max(1) as u32;
    imageops::resize(img, w, THUMB_H, imageops::FilterType::Triangle)
}

/// For each method, a grid of its best and worst images (by CIEDE2000): each row is
/// gray | every method | truth.
fn grids_for_methods(
    report: &Report,
    methods: &[Method],
    truth_dir: &Path,
    rows: usize,
) -> Result<Vec<(String, RgbImage)>> {
    let mut grids = Vec::new();
    for m in methods.iter().filter(|m| !matches!(m, Method::Gray)) {
        let name = m.name();
        let mut scored: Vec<&ImageScore> = report.images.iter().filter(|s| s.method == name).collect();
        scored.sort_by(|a, b| a.metrics.ciede2000.total_cmp(&b.metrics.ciede2000));
        let mut picks: Vec<(&str, &ImageScore)> = scored.iter().take(rows).map(|s| ("best", *s)).collect();
        picks.extend(scored.iter().rev().take(rows).rev().map(|s| ("worst", *s)));
        picks.dedup_by(|a, b| a.1.file == b.1.file);
        let mut row_imgs = Vec::new();
        for (_, s) in &picks {
            let truth = crate::imageio::open(&truth_dir.join(&s.file))?.to_rgb8();
            let lab = LabImage::from_rgb8(&truth);
            let mut tiles = Vec::new();
            for mm in methods {
                tiles.push(thumb(&mm.colorize(&lab, None)?.to_rgb8()));
            }
            tiles.push(thumb(&truth));
            row_imgs.push(tiles);
        }
        if row_imgs.is_empty() {
            continue;
        }
        let widths: Vec<u32> = (0..row_imgs[0].len())
            .map(|c| row_imgs.iter().map(|r| r[c].width()).max().unwrap_or(0))
            .collect();
        let mut grid = RgbImage::from_pixel(
            widths.iter().sum::<u32>() + 4 * widths.len() as u32,
            (THUMB_H + 4) * row_imgs.len() as u32,
            image::Rgb([255, 255, 255]),
        );
        for (r, tiles) in row_imgs.iter().enumerate() {
            let mut x = 0;
            for (c, t) in tiles.iter().enumerate() {
                imageops::replace(&mut grid, t, x as i64, (r as u32 * (THUMB_H + 4)) as i64);
                x += widths[c] + 4;
            }
        }
        grids.push((name, grid));
    }
    Ok(grids)
}

/// The grid as an inline JPEG (quality 85 keeps reports small).
fn jpeg_data_uri(img: &RgbImage) -> Result<String> {
    let mut bytes = Vec::new();
    let enc = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut bytes, 85);
    img.write_with_encoder(enc).context("cannot encode grid")?;
    Ok(format!(
        "data:image/jpeg;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(bytes)
    ))
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn write_report(report: &Report, grids: &[(String, RgbImage)], out: &Path) -> Result<()> {
    std::fs::create_dir_all(out).with_context(|| format!("{}: cannot create", out.display()))?;
    crate::imageio::write_bytes_atomic(
        &out.join("report.json"),
        serde_json::to_string_pretty(report)?.as_bytes(),
    )?;
    let mut h = String::from(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>tinct eval</title><style>\
body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}td,th{padding:4px 10px;border-bottom:1px solid #ddd;text-align:right}\
td:first-child,th:first-child{text-align:left}img{max-width:100%}</style></head><body>",
    );
    h += &format!(
        "<h1>tinct eval</h1><p>Ground truth: {}</p>",
        html_escape(&report.truth_dir)
    );
    h += "<table><tr><th>method</th><th>images</th><th>PSNR (dB)</th><th>SSIM</th><th>ΔE2000</th><th>AuC</th><th>colourfulness</th><th>truth colourfulness</th><th>cast</th><th>s/image</th></tr>";
    for m in &report.summary {
        h += &format!("<tr><td>{}</td>", html_escape(&m.method));
        for c in m.cells() {
            h += &format!("<td>{c}</td>");
        }
        h += &format!("<td>{:.3}</td></tr>", m.seconds_per_image);
    }
    h += "</table><p>PSNR and SSIM on 8-bit RGB (PSNR capped at 100 dB for identical images); ΔE2000 is the mean over pixels; \
AuC is the area under the cumulative ab-error curve for thresholds 0..150 (Zhang et al. 2016); colourfulness is Hasler and Süsstrunk's M; cast is the size of the mean over images of the output's mean (a*, b*) minus the truth's.</p>";
    for (name, grid) in grids {
        h += &format!(
            "<h2>{}: best and worst by ΔE2000</h2><p>columns: each method in table order (gray first), then the truth</p><img src=\"{}\">",
            html_escape(name),
            jpeg_data_uri(grid)?
        );
    }
    if !report.errors.is_empty() {
        h += "<h2>Errors</h2><ul>";
        for e in &report.errors {
            h += &format!("<li>{}</li>", html_escape(e));
        }
        h += "</ul>";
    }
    h += "</body></html>";
    crate::imageio::write_bytes_atomic(&out.join("report.html"), h.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The matched gain gives the asked share of the truth's colourfulness, and colourising
    /// with it reproduces that figure; a ratio outside (0, 2] is refused.
    #[test]
    fn matching_gain_reaches_the_asked_share_of_the_truths_colourfulness() {
        let dir = tempfile::tempdir().unwrap();
        for k in 0..3u32 {
            let img = RgbImage::from_fn(40, 32, |x, y| {
                image::Rgb([(x * 6 + k * 20) as u8, (y * 7) as u8, ((x * y + k * 50) % 256) as u8])
            });
            img.save(dir.path().join(format!("{k}.png"))).unwrap();
        }
        let c = crate::infer::tests::shifted_colorizer();
        let m = matching_gain(&c, dir.path(), 0.5, None, None).unwrap();
        assert!(m.colourfulness_truth > 10.0, "{m:?}");
        assert!((m.colourfulness / m.colourfulness_truth - 0.5).abs() < 0.01, "{m:?}");
        let c = c.with_saturation(m.gain).unwrap();
        let mut cf = 0.0;
        for k in 0..3 {
            let truth = image::open(dir.path().join(format!("{k}.png"))).unwrap().to_rgb8();
            let out = c.colorize_planes(&[LabImage::from_rgb8(&truth)]).remove(0);
            cf += metrics::colourfulness(&out.to_rgb8()) / 3.0;
        }
        assert!((cf - m.colourfulness).abs() < 1e-9, "{cf} vs {m:?}");
        assert!(matching_gain(&c, dir.path(), 0.0, None, None).is_err());
        assert!(matching_gain(&c, dir.path(), 2.5, None, None).is_err());
        assert!(matching_gain(&c, dir.path(), 0.5, Some(0.0), None).is_err());
    }

    /// With the truth's colourfulness taken from another folder, the gain matches a share of
    /// that figure instead; `mean_colourfulness` skips unreadable files and is the mean of the
    /// per-image figures (0 for a gray image).
    #[test]
    fn matching_gain_can_take_the_truths_colourfulness_from_a_larger_folder() {
        let dir = tempfile::tempdir().unwrap();
        let colour = RgbImage::from_fn(40, 32, |x, y| image::Rgb([(x * 6) as u8, (y * 7) as u8, 200]));
        colour.save(dir.path().join("a.png")).unwrap();
        RgbImage::from_pixel(40, 32, image::Rgb([90, 90, 90]))
            .save(dir.path().join("b.png"))
            .unwrap();
        std::fs::write(dir.path().join("c.png"), b"not a png").unwrap();
        let (cf, n) = mean_colourfulness(dir.path()).unwrap();
        assert_eq!(n, 2);
        assert!((cf - metrics::colourfulness(&colour) / 2.0).abs() < 1e-9, "{cf}");
        let c = crate::infer::tests::shifted_colorizer();
        let m = matching_gain(&c, dir.path(), 0.5, Some(30.0), None).unwrap();
        assert_eq!(m.colourfulness_truth, 30.0);
        assert!((m.colourfulness - 15.0).abs() < 0.015 * 15.0, "{m:?}");
        let empty = tempfile::tempdir().unwrap();
        std::fs::write(empty.path().join("x.png"), b"nope").unwrap();
        assert!(mean_colourfulness(empty.path()).is_err());
    }
}
