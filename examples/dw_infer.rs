//! Depthwise convolution inference (forward only, batch 1) at the shapes of EfficientNet-Lite0's
//! 16 depthwise layers for a 256 px image, with TF "SAME" padding as in `tinct::model::effnet`:
//! times each layer through Burn's `Conv2d` on the CPU backend.
//! `cargo run --release --example dw_infer`.
use std::time::Instant;

use burn::nn::PaddingConfig2d;
use burn::nn::conv::Conv2dConfig;
use burn::prelude::*;
use burn::tensor::Distribution::Uniform;

fn main() {
    let device = Device::flex();
    let shapes = [
        (32, 128, 3, 1),
        (96, 128, 3, 2),
        (144, 64, 3, 1),
        (144, 64, 5, 2),
        (240, 32, 5, 1),
        (240, 32, 3, 2),
        (480, 16, 3, 1),
        (480, 16, 3, 1),
        (480, 16, 5, 1),
        (672, 16, 5, 1),
        (672, 16, 5, 1),
        (672, 16, 5, 2),
        (1152, 8, 5, 1),
        (1152, 8, 5, 1),
        (1152, 8, 5, 1),
        (1152, 8, 3, 1),
    ];
    let mut total = 0.0;
    for (c, h, k, s) in shapes {
        // TF "SAME" for even sizes: symmetric at stride 1, one more at the bottom-right at 2.
        let pad = if s == 1 {
            [k / 2; 4]
        } else {
            [k / 2 - 1, k / 2 - 1, k / 2, k / 2]
        };
        let layer = Conv2dConfig::new([c, c], [k, k])
            .with_groups(c)
            .with_stride([s, s])
            .with_padding(PaddingConfig2d::Explicit(pad[0], pad[1], pad[2], pad[3]))
            .init(&device);
        let x = Tensor::<4>::random([1, c, h, h], Uniform(-1.0, 1.0), &device);
        let _ = layer.forward(x.clone());
        let runs = 50;
        let t0 = Instant::now();
        for _ in 0..runs {
            let _ = layer.forward(x.clone());
        }
        let ms = t0.elapsed().as_secs_f64() * 1000.0 / runs as f64;
        total += ms;
        let macs = (c * (h / s) * (h / s) * k * k) as f64;
        println!(
            "{c:5} ch {h:3} px k{k} s{s}: {ms:6.3} ms  {:5.2} GMAC/s",
            macs / ms / 1e6
        );
    }
    println!("total {total:.2} ms");
}
