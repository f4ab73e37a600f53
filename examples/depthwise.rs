//! Depthwise convolution, forward + backward, at the shapes of effnet-unet training (batch 16,
//! 128 px): Burn's grouped `Conv2d` against `depthwise_conv2d_shifted`. Checks that both give the
//! same output and gradients, and times them: `cargo run --release --example depthwise`.
use std::time::Instant;

use burn::nn::PaddingConfig2d;
use burn::nn::conv::Conv2dConfig;
use burn::prelude::*;
use burn::tensor::Distribution::Uniform;

/// The reference formulation, compiled here from the library's source (it is test-only there).
#[allow(dead_code)]
#[path = "../src/model/depthwise.rs"]
mod depthwise;
use depthwise::depthwise_conv2d_shifted;

fn time(runs: usize, mut f: impl FnMut()) -> f64 {
    f();
    let t0 = Instant::now();
    for _ in 0..runs {
        f();
    }
    t0.elapsed().as_secs_f64() * 1000.0 / runs as f64
}

fn max_diff(a: Tensor<4>, b: Tensor<4>) -> f32 {
    (a - b).abs().max().into_scalar::<f32>()
}

fn main() {
    let device = Device::flex().autodiff();
    let n = 16;
    // (channels, input size, kernel, stride, where)
    let shapes = [
        (128, 8, 3, 1, "decoder 1"),
        (64, 16, 3, 1, "decoder 2"),
        (48, 32, 3, 1, "decoder 3"),
        (32, 64, 3, 1, "decoder 4"),
        (16, 128, 3, 1, "decoder 5"),
        (32, 64, 3, 1, "encoder stage 0"),
        (96, 64, 3, 2, "encoder stage 1"),
        (144, 32, 5, 2, "encoder stage 2"),
        (240, 16, 3, 2, "encoder stage 3"),
        (672, 8, 5, 2, "encoder stage 5"),
        (1152, 4, 3, 1, "encoder stage 6"),
    ];
    println!("| layer | C x H | k/s | grouped Conv2d fwd+bwd ms | shifted fwd+bwd ms | speed-up | max diff |");
    println!("|---|---|---|---|---|---|---|");
    let (mut tot_native, mut tot_shift) = (0.0, 0.0);
    for (c, h, k, s, name) in shapes {
        let pad = if s == 1 {
            [k / 2; 4]
        } else {
            [(k - s) / 2, (k - s) / 2, k - s - (k - s) / 2, k - s - (k - s) / 2]
        };
        let mut conv = Conv2dConfig::new([c, c], [k, k])
            .with_groups(c)
            .with_stride([s, s])
            .with_padding(PaddingConfig2d::Explicit(pad[0], pad[1], pad[2], pad[3]))
            .with_bias(false)
            .init(&device);
        let x = Tensor::<4>::random([n, c, h, h], Uniform(-1.0, 1.0), &device).require_grad();
        let w = conv.weight.val();
        let native = |x: Tensor<4>, conv: &burn::nn::conv::Conv2d| {
            let y = conv.forward(x.clone());
            let g = y.clone().sum().backward();
            (y, x.grad(&g).unwrap(), conv.weight.val().grad(&g).unwrap())
        };
        let shifted = |x: Tensor<4>, w: Tensor<4>| {
            let y = depthwise_conv2d_shifted(x.clone(), w.clone(), s, pad);
            let g = y.clone().sum().backward();
            (y, x.grad(&g).unwrap(), w.grad(&g).unwrap())
        };
        conv.weight = conv.weight.clone().set_require_grad(true);
        let (y1, gx1, gw1) = native(x.clone(), &conv);
        let (y2, gx2, gw2) = shifted(x.clone(), w.clone());
        let diff = max_diff(y1.inner(), y2.inner())
            .max(max_diff(Tensor::from_inner(gx1), Tensor::from_inner(gx2)))
            .max(max_diff(Tensor::from_inner(gw1), Tensor::from_inner(gw2)));
        let runs = 3;
        let tn = time(runs, || {
            let _ = native(x.clone(), &conv).2.into_data();
        });
        let ts = time(runs, || {
            let _ = shifted(x.clone(), w.clone()).2.into_data();
        });
        tot_native += tn;
        tot_shift += ts;
        println!(
            "| {name} | {c} x {h} | {k}/{s} | {tn:.1} | {ts:.1} | {:.1}x | {diff:.1e} |",
            tn / ts
        );
    }
    println!(
        "| all | | | {tot_native:.0} | {tot_shift:.0} | {:.1}x | |",
        tot_native / tot_shift
    );
}
