//! Time of L*a*b* -> 8-bit sRGB on the shipped photo model's real outputs, and the share of
//! their pixels outside the sRGB gamut (which take the slow, gamut-mapping path):
//!
//!     cargo run --release --example colour_convert -- photo1.jpg photo2.jpg ...
use std::time::Instant;
use tinct::color::{LabImage, XYZ_TO_RGB, lab_to_xyz};
fn main() -> anyhow::Result<()> {
    let dev = burn::prelude::Device::flex();
    let c = tinct::infer::Colorizer::load(&tinct::zoo::resolve("photo")?, &dev)?;
    let mut total_oog = 0usize;
    let mut total = 0usize;
    let mut t_rgb = Vec::new();
    let mut t_col = Vec::new();
    for f in std::env::args().skip(1) {
        let img = image::open(&f)?.to_rgb8();
        let lab = LabImage::lightness_from_rgb8(&img);
        let t0 = Instant::now();
        let out = c.colorize_planes(std::slice::from_ref(&lab)).remove(0);
        t_col.push(t0.elapsed().as_secs_f64() * 1e3);
        for i in 0..out.l.len() {
            let xyz = lab_to_xyz([out.l[i], out.a[i], out.b[i]]);
            let oog = XYZ_TO_RGB.iter().any(|r| {
                let v = r[0] * xyz[0] + r[1] * xyz[1] + r[2] * xyz[2];
                !(-1e-4..=1.0001).contains(&v)
            });
            total_oog += oog as usize;
            total += 1;
        }
        let t0 = Instant::now();
        for _ in 0..5 {
            std::hint::black_box(out.to_rgb8());
        }
        t_rgb.push(t0.elapsed().as_secs_f64() * 1e3 / 5.0);
    }
    println!("out of gamut {:.1} %", 100.0 * total_oog as f64 / total as f64);
    println!(
        "colorize_planes ms {:?}",
        t_col.iter().map(|v| v.round()).collect::<Vec<_>>()
    );
    println!(
        "to_rgb8 ms {:?}",
        t_rgb.iter().map(|v| (v * 10.0).round() / 10.0).collect::<Vec<_>>()
    );
    Ok(())
}
