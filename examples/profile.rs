//! Times the effnet-unet generator and its building blocks at 256 px (batch 1), to see where
//! inference time goes: `cargo run --release --example profile`.
use burn::prelude::*;
use std::time::Instant;
use tinct::model::effnet::*;
fn t(name: &str, n: usize, f: impl Fn()) {
    f();
    let t0 = Instant::now();
    for _ in 0..n {
        f();
    }
    eprintln!("{name}: {:.1} ms", t0.elapsed().as_secs_f64() * 1000.0 / n as f64);
}
fn main() {
    let d = Device::flex();
    let g = EffUnetConfig::new().init(&d).valid();
    let x = Tensor::<4>::random([1, 1, 256, 256], burn::tensor::Distribution::Uniform(-1.0, 1.0), &d);
    t("full", 10, || {
        let _ = g.forward(x.clone()).into_data();
    });
    let x3 = x.clone().repeat_dim(1, 3);
    t("encoder", 10, || {
        let o = g.encoder.forward_stages(x3.clone());
        let _ = o.last().unwrap().clone().into_data();
    });
    let a = Tensor::<4>::random([1, 96, 128, 128], burn::tensor::Distribution::Uniform(-1.0, 1.0), &d);
    let dw = burn::nn::conv::Conv2dConfig::new([96, 96], [3, 3])
        .with_groups(96)
        .with_padding(burn::nn::PaddingConfig2d::Explicit(1, 1, 1, 1))
        .init(&d);
    t("dw3 96x128x128", 10, || {
        let _ = dw.forward(a.clone()).into_data();
    });
    let pw = burn::nn::conv::Conv2dConfig::new([96, 96], [1, 1]).init(&d);
    t("pw 96->96 128x128", 10, || {
        let _ = pw.forward(a.clone()).into_data();
    });
    let bn = burn::nn::BatchNormConfig::new(96).init(&d);
    t("bn 96x128x128", 10, || {
        let _ = bn.forward(a.clone()).into_data();
    });
    t("clamp 96x128x128", 10, || {
        let _ = a.clone().clamp(0.0, 6.0).into_data();
    });
    let s = Tensor::<4>::random([1, 32, 128, 128], burn::tensor::Distribution::Uniform(-1.0, 1.0), &d);
    t("interp 32x64->128", 10, || {
        let _ = burn::tensor::module::interpolate(
            s.clone().slice([0..1, 0..32, 0..64, 0..64]),
            burn::tensor::ops::InterpolateOptions::new(burn::tensor::ops::InterpolateMode::Bilinear)
                .with_output_size([128, 128]),
        )
        .into_data();
    });
    t("cat", 10, || {
        let _ = Tensor::cat(vec![a.clone(), s.clone()], 1).into_data();
    });
    let c3 = burn::nn::conv::Conv2dConfig::new([48, 32], [3, 3])
        .with_padding(burn::nn::PaddingConfig2d::Explicit(1, 1, 1, 1))
        .init(&d);
    let s48 = Tensor::<4>::random([1, 48, 128, 128], burn::tensor::Distribution::Uniform(-1.0, 1.0), &d);
    t("conv3 48->32 128x128", 10, || {
        let _ = c3.forward(s48.clone()).into_data();
    });
}
