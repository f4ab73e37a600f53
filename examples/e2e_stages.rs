//! Where the time of one full-resolution colourisation goes, stage by stage:
//! `cargo run --release --example e2e_stages -- PHOTO [MODEL]` (default model: the shipped
//! `photo`). Each stage is timed over 10 runs after a warm-up; the image is colourised at
//! its own resolution.
use std::time::Instant;

use burn::prelude::*;
use tinct::color::LabImage;
use tinct::infer::Colorizer;
use tinct::pipeline::Colorize;

fn time<T>(name: &str, mut f: impl FnMut() -> T) -> T {
    let _ = f();
    let t0 = Instant::now();
    for _ in 0..9 {
        let _ = f();
    }
    let out = f();
    eprintln!("{name:>28}: {:6.1} ms", t0.elapsed().as_secs_f64() * 100.0);
    out
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let photo = args.first().expect("usage: e2e_stages PHOTO [MODEL]");
    let model = args.get(1).map(String::as_str).unwrap_or("models/photo.safetensors");
    let colorizer = Colorizer::load(&tinct::zoo::resolve(model)?, &Device::flex())?;
    let img = image::open(photo)?;
    let rgb = img.to_rgb8();
    eprintln!("{photo}: {}x{}", rgb.width(), rgb.height());
    let lab = time("RGB -> L", || LabImage::lightness_from_rgb8(&rgb));
    let out = time("network + resampling", || {
        colorizer.colorize_planes(std::slice::from_ref(&lab))
    });
    let rgb_out = time("Lab -> RGB (gamut mapped)", || out[0].to_rgb8());
    let mut buf = Vec::new();
    time("JPEG encode (quality 95)", || {
        buf.clear();
        let enc = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut buf, 95);
        rgb_out.write_with_encoder(enc)
    })?;
    time("whole colorize_image", || colorizer.colorize_image(&img).unwrap());
    Ok(())
}
