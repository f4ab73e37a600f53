//! Lab chroma statistics (mean chroma, chroma spread: the terms `--chroma-weight` matches) of a
//! model's outputs against the truth, before and after the gamut mapping of the RGB output:
//! `cargo run --release --example chroma_stats -- MODEL DIR [N]`.

use burn::prelude::*;
use tinct::color::LabImage;
use tinct::infer::Colorizer;

fn stats(lab: &LabImage) -> (f64, f64) {
    let n = lab.a.len() as f64;
    let (mut c, mut sa, mut sb, mut saa, mut sbb) = (0.0, 0.0, 0.0, 0.0, 0.0);
    for (&a, &b) in lab.a.iter().zip(&lab.b) {
        let (a, b) = (a as f64, b as f64);
        c += (a * a + b * b).sqrt();
        sa += a;
        sb += b;
        saa += a * a;
        sbb += b * b;
    }
    let var = saa / n - (sa / n).powi(2) + sbb / n - (sb / n).powi(2);
    (c / n, var.max(0.0).sqrt())
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let colorizer = Colorizer::load(&tinct::zoo::resolve(&args[0])?, &Device::flex())?;
    let n: usize = args.get(2).map(|s| s.parse()).transpose()?.unwrap_or(100);
    let mut files: Vec<_> = std::fs::read_dir(&args[1])?.map(|e| e.unwrap().path()).collect();
    files.sort();
    let mut sums = [0.0f64; 6];
    for f in files.iter().take(n) {
        let truth = LabImage::from_rgb8(&image::open(f)?.to_rgb8());
        let pred = colorizer.colorize_planes(std::slice::from_ref(&truth)).remove(0);
        let mapped = LabImage::from_rgb8(&pred.to_rgb8());
        for (i, s) in [stats(&truth), stats(&pred), stats(&mapped)].into_iter().enumerate() {
            sums[2 * i] += s.0;
            sums[2 * i + 1] += s.1;
        }
    }
    let k = n.min(files.len()) as f64;
    for (i, name) in ["truth", "prediction", "after gamut mapping"].iter().enumerate() {
        println!(
            "{name:>20}: mean chroma {:5.2}  spread {:5.2}",
            sums[2 * i] / k,
            sums[2 * i + 1] / k
        );
    }
    Ok(())
}
