//! `tinct bench`: training throughput, generator latency and end-to-end colourisation time,
//! measured on synthetic inputs (the speed of these networks does not depend on the data).

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Result;
use burn::prelude::*;
use clap::Args;
use serde::Serialize;

use crate::data::Batch;
use crate::infer::Colorizer;
use crate::model::store::ModelSource;
use crate::model::{ModelConfig, PatchGanConfig};
use crate::pipeline::Colorize;
use crate::train::{Stage, TrainConfig, Trainer};

#[derive(Args, Debug, Clone)]
pub struct BenchArgs {
    /// Image size for training and generator inference.
    #[arg(long, default_value_t = 256)]
    pub size: usize,
    /// Training batch size.
    #[arg(long, default_value_t = 8)]
    pub batch: usize,
    /// Timed training steps (after one warm-up step).
    #[arg(long, default_value_t = 3)]
    pub steps: usize,
    /// Timed inference runs (after one warm-up run).
    #[arg(long, default_value_t = 10)]
    pub runs: usize,
    /// Generator architecture.
    #[arg(long, value_enum, default_value_t = crate::model::Arch::Unet256)]
    pub arch: crate::model::Arch,
    /// Generator filters (64 is the seed's unet_256).
    #[arg(long, default_value_t = 64)]
    pub ngf: usize,
    /// Model for the end-to-end measurement (default: an untrained unet_256, same cost).
    #[arg(long)]
    pub model: Option<String>,
    /// Freeze a pretrained encoder in the training measurement.
    #[arg(long)]
    pub freeze_encoder: bool,
    /// Measure the L1-only (stage 1) step instead of the GAN step.
    #[arg(long)]
    pub l1_only: bool,
    /// Include the perceptual term (`train --perceptual-weight`) in the training step.
    #[arg(long)]
    pub perceptual: bool,
    /// Skip the training measurement.
    #[arg(long)]
    pub no_train: bool,
    /// Write the results as JSON here.
    #[arg(long)]
    pub json: Option<PathBuf>,
    #[arg(long, default_value = "cpu")]
    pub device: String,
}

#[derive(Debug, Serialize)]
pub struct BenchReport {
    pub size: usize,
    pub batch: usize,
    pub train_images_per_s: Option<f64>,
    pub generator_ms: f64,
    /// One pass over an image and its mirror together (what `--flip-average` runs).
    pub generator_flip_average_ms: f64,
    pub end_to_end_1mp_ms: f64,
    pub end_to_end_breakdown_ms: [f64; 4],
    pub generator_params: usize,
    pub generator_gmac: f64,
    pub arch: String,
    pub threads: usize,
}

fn random_batch(b: usize, size: usize, device: &Device) -> Batch {
    use burn::tensor::Distribution::Uniform;
    Batch {
        l: Tensor::random([b, 1, size, size], Uniform(-1.0, 1.0), device),
        ab: Tensor::random([b, 2, size, size], Uniform(-0.5, 0.5), device),
    }
}

/// A 1-megapixel (1155x866) synthetic photo-like JPEG.
fn synthetic_jpeg(path: &std::path::Path) -> Result<()> {
    let img = image::RgbImage::from_fn(1155, 866, |x, y| {
        let v = ((x as f32 * 0.05).sin() * 60.0 + (y as f32 * 0.03).cos() * 60.0 + 128.0) as u8;
        image::Rgb([v, v.wrapping_add((x / 7) as u8), v / 2 + (y / 9) as u8])
    });
    crate::imageio::save(&image::DynamicImage::ImageRgb8(img), path)
}

pub fn run(a: &BenchArgs) -> Result<BenchReport> {
    let device = crate::device_by_name(&a.device)?;
    let gcfg = match a.arch {
        crate::model::Arch::Unet256 => ModelConfig::unet_for_size(a.size, a.ngf),
        crate::model::Arch::EffnetUnet => ModelConfig::effnet_unet(a.size),
    };
    gcfg.check_size(a.size)?;
    eprintln!(
        "{}: {:.2} GMAC per {} px image",
        gcfg.arch(),
        gcfg.macs() as f64 / 1e9,
        a.size
    );

    let train_images_per_s = if a.no_train {
        None
    } else {
        let cfg = TrainConfig::new(gcfg.clone(), PatchGanConfig::new())
            .with_batch_size(a.batch)
            .with_perceptual_weight(if a.perceptual { 1.0 } else { 0.0 });
        let mut t = Trainer::new(cfg, &device)?;
        t.g = t.g.clone().set_encoder_frozen(a.freeze_encoder);
        let batch = random_batch(a.batch, a.size, &t.device);
        let stage = if a.l1_only { Stage::L1 } else { Stage::Gan };
        t.step(&batch, stage);
        let t0 = Instant::now();
        for _ in 0..a.steps {
            t.step(&batch, stage);
        }
        let ips = (a.steps * a.batch) as f64 / t0.elapsed().as_secs_f64();
        eprintln!(
            "training: {ips:.2} images/s ({} px, batch {}, {} steps)",
            a.size, a.batch, a.steps
        );
        Some(ips)
    };

    // One network serves the latency measurement and, without --model, the end-to-end one
    // (an untrained network costs the same as a trained one).
    let net = gcfg.init(&device).valid().for_inference();
    let generator_params = net.num_params();
    let colorizer = match &a.model {
        Some(m) => Colorizer::load(&crate::zoo::resolve(m)?, &device)?,
        None => Colorizer::new(
            net.clone(),
            gcfg.clone(),
            &device,
            ModelSource::File(PathBuf::from("untrained")),
        ),
    };
    let x = Tensor::<4>::random(
        [1, 1, a.size, a.size],
        burn::tensor::Distribution::Uniform(-1.0, 1.0),
        &device,
    );
    let _ = net.forward(x.clone()).into_data();
    let t0 = Instant::now();
    for _ in 0..a.runs {
        let _ = net.forward(x.clone()).into_data();
    }
    let generator_ms = t0.elapsed().as_secs_f64() * 1000.0 / a.runs as f64;
    eprintln!(
        "generator inference: {generator_ms:.1} ms per image ({} px, batch 1)",
        a.size
    );
    let t0 = Instant::now();
    for _ in 0..a.runs {
        let _ = (net.forward(x.clone()) + net.forward(x.clone().flip([3])).flip([3])).into_data();
    }
    let generator_flip_average_ms = t0.elapsed().as_secs_f64() * 1000.0 / a.runs as f64;
    eprintln!(
        "generator inference with --flip-average: {generator_flip_average_ms:.1} ms per image ({:.2}x)",
        generator_flip_average_ms / generator_ms
    );

    let dir = tempfile_dir()?;
    let input = dir.join("bench-1mp.jpg");
    let output = dir.join("bench-1mp-out.jpg");
    synthetic_jpeg(&input)?;
    let mut best = [f64::MAX; 4];
    let mut best_total = f64::MAX;
    for _ in 0..=a.runs.min(5) {
        let t0 = Instant::now();
        let img = crate::imageio::open(&input)?;
        let t1 = Instant::now();
        let out = colorizer.colorize_image(&img)?;
        let t2 = Instant::now();
        crate::imageio::save(&out, &output)?;
        let t3 = Instant::now();
        let parts = [(t1 - t0), (t2 - t1), (t3 - t2), (t3 - t0)].map(|d| d.as_secs_f64() * 1000.0);
        if parts[3] < best_total {
            best_total = parts[3];
            best = parts;
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    eprintln!(
        "end to end, 1 MP JPEG: {:.0} ms (decode {:.0}, colorize {:.0}, encode {:.0}; best of {})",
        best[3],
        best[0],
        best[1],
        best[2],
        a.runs.min(5) + 1
    );
    let report = BenchReport {
        size: a.size,
        batch: a.batch,
        train_images_per_s,
        generator_ms,
        generator_flip_average_ms,
        end_to_end_1mp_ms: best[3],
        end_to_end_breakdown_ms: [best[0], best[1], best[2], best[3]],
        generator_params,
        generator_gmac: gcfg.macs() as f64 / 1e9,
        arch: gcfg.arch().to_string(),
        threads: rayon::current_num_threads(),
    };
    let json = serde_json::to_string_pretty(&report)?;
    println!("{json}");
    if let Some(p) = &a.json {
        crate::imageio::write_bytes_atomic(p, json.as_bytes())?;
    }
    Ok(report)
}

fn tempfile_dir() -> Result<PathBuf> {
    let d = std::env::temp_dir().join(format!("tinct-bench-{}", std::process::id()));
    std::fs::create_dir_all(&d)?;
    Ok(d)
}
