//! Depthwise convolution written as a sum of shifted, per-channel-scaled views of the input.
//!
//! Burn 0.22's generic backward pass computes a grouped convolution's weight gradient with one
//! convolution per group (`conv2d_weight_grad_groups` in burn-backend), each of which treats
//! the whole output gradient as a kernel: for a depthwise layer that is C small convolutions
//! with an H x W kernel plus C slice-assigns of the whole gradient. burn-flex has a fast
//! depthwise forward but, in 0.22.1, no backward of its own, so each gradient cost about five
//! times the forward pass (measured in docs/experiments/2026-11-25-depthwise-backward.md).
//!
//! `y[n, c, i, j] = sum_{u, v} w[c, u, v] * x_pad[n, c, s*i + u, s*j + v]` is the same layer
//! written with k*k strided slices, multiplies and adds. Its backward is again slices, multiplies
//! and one reduction per tap, which every backend's autodiff handles in time linear in the
//! tensor sizes. It was the candidate fix at the model level; the fix made instead is in the
//! backend (`vendor/burn-flex`), which is faster (docs/BENCHMARKS.md). This formulation stays as
//! the independent reference the backend's gradients are tested against, and in
//! `examples/depthwise.rs` for the comparison.

use burn::prelude::*;
use burn::tensor::Slice;
use burn::tensor::ops::PadMode;

/// Depthwise convolution of `x` [N, C, H, W] with `weight` [C, 1, K, K] (no bias), `stride`,
/// and explicit zero padding `(top, left, bottom, right)`, as in `Conv2d` with `groups = C`.
pub fn depthwise_conv2d_shifted(x: Tensor<4>, weight: Tensor<4>, stride: usize, padding: [usize; 4]) -> Tensor<4> {
    let [n, c, h, w] = x.dims();
    let [cw, one, k, k2] = weight.dims();
    assert!(
        cw == c && one == 1 && k == k2,
        "depthwise weight {:?} for input {:?}",
        weight.dims(),
        x.dims()
    );
    let [top, left, bottom, right] = padding;
    let x = if padding == [0; 4] {
        x
    } else {
        x.pad((left, right, top, bottom), PadMode::Constant(0.0))
    };
    let (hp, wp) = (h + top + bottom, w + left + right);
    let (ho, wo) = ((hp - k) / stride + 1, (wp - k) / stride + 1);
    let mut out: Option<Tensor<4>> = None;
    for u in 0..k {
        for v in 0..k {
            let tap = x.clone().slice([
                Slice::from(0..n),
                Slice::from(0..c),
                Slice::from_range_stepped(u..u + (ho - 1) * stride + 1, stride as isize),
                Slice::from_range_stepped(v..v + (wo - 1) * stride + 1, stride as isize),
            ]);
            let wk = weight
                .clone()
                .slice([0..c, 0..1, u..u + 1, v..v + 1])
                .reshape([1, c, 1, 1]);
            let term = tap * wk;
            out = Some(match out {
                Some(acc) => acc + term,
                None => term,
            });
        }
    }
    out.expect("kernel has at least one tap")
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::nn::PaddingConfig2d;
    use burn::nn::conv::{Conv2d, Conv2dConfig};
    use burn::tensor::Distribution::Uniform;

    fn conv(
        cin: usize,
        cout: usize,
        k: usize,
        stride: usize,
        groups: usize,
        pad: [usize; 4],
        device: &Device,
    ) -> Conv2d {
        Conv2dConfig::new([cin, cout], [k, k])
            .with_groups(groups)
            .with_stride([stride, stride])
            .with_padding(PaddingConfig2d::Explicit(pad[0], pad[1], pad[2], pad[3]))
            .with_bias(false)
            .init(device)
    }

    fn close(a: Tensor<4>, b: Tensor<4>, what: &str) {
        let scale = b.clone().abs().max().into_scalar::<f32>().max(1.0);
        let diff = (a - b).abs().max().into_scalar::<f32>();
        assert!(diff <= 1e-4 * scale, "{what}: differs by {diff} (scale {scale})");
    }

    /// The Conv2d gradients (the backend's depthwise backward) against autodiff through the
    /// shifted-slices formulation, which uses no convolution at all; the loss weights every
    /// output differently so that a misplaced gradient cannot cancel out.
    #[test]
    fn depthwise_gradients_match_an_independent_formulation() {
        let device = Device::flex().autodiff();
        // (channels, size, kernel, stride, padding): EfficientNet's TF-"SAME" asymmetric
        // padding at stride 2, odd sizes, and the decoder's 3x3.
        for (c, h, k, s, pad) in [
            (5, 9, 3, 1, [1, 1, 1, 1]),
            (4, 10, 3, 2, [0, 0, 1, 1]),
            (3, 11, 5, 2, [1, 1, 2, 2]),
            (6, 8, 5, 1, [2, 2, 2, 2]),
            // Output planes over 8192 values take the backend's row-outer loop.
            (2, 96, 3, 1, [1, 1, 1, 1]),
            (2, 183, 5, 2, [1, 1, 2, 2]),
            // Padding wider than anything the kernel reads (the output sees only zeros).
            (2, 1, 2, 3, [3, 3, 0, 0]),
            // A 5x5 kernel on a 1x1 plane, as in EfficientNet's deepest stages at 32 px: most
            // taps lie wholly in the padding.
            (2, 1, 5, 1, [2, 2, 2, 2]),
        ] {
            let mut layer = conv(c, c, k, s, c, pad, &device);
            layer.weight = layer.weight.clone().set_require_grad(true);
            let x = Tensor::<4>::random([2, c, h, h], Uniform(-1.0, 1.0), &device).require_grad();
            let y1 = layer.forward(x.clone());
            let r = Tensor::<4>::random(y1.dims(), Uniform(-1.0, 1.0), &device);
            let g1 = (y1.clone() * r.clone()).sum().backward();
            let w = layer.weight.val().detach().require_grad();
            let x2 = x.clone().detach().require_grad();
            let y2 = depthwise_conv2d_shifted(x2.clone(), w.clone(), s, pad);
            let g2 = (y2.clone() * r).sum().backward();
            let what = format!("c {c}, {h}px, k {k}, stride {s}");
            close(y1.inner(), y2.inner(), &format!("{what}: output"));
            close(
                Tensor::from_inner(x.grad(&g1).unwrap()),
                Tensor::from_inner(x2.grad(&g2).unwrap()),
                &format!("{what}: input gradient"),
            );
            close(
                Tensor::from_inner(layer.weight.val().grad(&g1).unwrap()),
                Tensor::from_inner(w.grad(&g2).unwrap()),
                &format!("{what}: weight gradient"),
            );
        }
    }

    /// Grouped but not depthwise convolutions keep the generic backward: a 2-group convolution's
    /// gradients equal those of its two halves run as separate dense convolutions.
    #[test]
    fn grouped_gradients_equal_the_split_dense_ones() {
        let device = Device::flex().autodiff();
        let pad = [0, 0, 1, 1];
        let mut grouped = conv(4, 6, 3, 2, 2, pad, &device);
        grouped.weight = grouped.weight.clone().set_require_grad(true);
        let x = Tensor::<4>::random([2, 4, 9, 9], Uniform(-1.0, 1.0), &device).require_grad();
        let y = grouped.forward(x.clone());
        let r = Tensor::<4>::random(y.dims(), Uniform(-1.0, 1.0), &device);
        let g = (y.clone() * r.clone()).sum().backward();

        let w = grouped.weight.val().detach();
        let x2 = x.clone().detach().require_grad();
        let mut wg = Vec::new();
        let mut loss = None;
        for i in 0..2 {
            let mut half = conv(2, 3, 3, 2, 1, pad, &device);
            let wi = Tensor::<4>::from_data(w.clone().slice(i * 3..i * 3 + 3).into_data(), &device);
            half.weight = burn::module::Param::from_tensor(wi.require_grad());
            let yi = half.forward(x2.clone().slice([0..2, i * 2..i * 2 + 2]));
            let li = (yi * r.clone().slice([0..2, i * 3..i * 3 + 3])).sum();
            loss = Some(match loss {
                Some(l) => l + li,
                None => li,
            });
            wg.push(half);
        }
        let g2 = loss.unwrap().backward();
        close(
            Tensor::from_inner(x.grad(&g).unwrap()),
            Tensor::from_inner(x2.grad(&g2).unwrap()),
            "input gradient",
        );
        let split = Tensor::cat(
            wg.iter()
                .map(|h| Tensor::from_inner(h.weight.val().grad(&g2).unwrap()))
                .collect(),
            0,
        );
        close(
            Tensor::from_inner(grouped.weight.val().grad(&g).unwrap()),
            split,
            "weight gradient",
        );
    }

    /// A dense 1x1 convolution's gradients (the backend's pointwise weight gradient) against
    /// autodiff through the same product written as a batched matrix multiplication.
    #[test]
    fn pointwise_gradients_match_a_matrix_product() {
        let device = Device::flex().autodiff();
        for (cin, cout, h, w) in [(5, 7, 6, 9), (16, 24, 32, 32), (3, 1, 1, 1)] {
            let mut layer = conv(cin, cout, 1, 1, 1, [0, 0, 0, 0], &device);
            layer.weight = layer.weight.clone().set_require_grad(true);
            let x = Tensor::<4>::random([3, cin, h, w], Uniform(-1.0, 1.0), &device).require_grad();
            let y1 = layer.forward(x.clone());
            let r = Tensor::<4>::random(y1.dims(), Uniform(-1.0, 1.0), &device);
            let g1 = (y1.clone() * r.clone()).sum().backward();

            let wt = layer.weight.val().detach().require_grad();
            let x2 = x.clone().detach().require_grad();
            let y2 = wt
                .clone()
                .reshape([1, cout, cin])
                .matmul(x2.clone().reshape([3, cin, h * w]))
                .reshape([3, cout, h, w]);
            let g2 = (y2.clone() * r).sum().backward();
            let what = format!("{cin} -> {cout}, {h}x{w}");
            close(y1.inner(), y2.inner(), &format!("{what}: output"));
            close(
                Tensor::from_inner(layer.weight.val().grad(&g1).unwrap()),
                Tensor::from_inner(wt.grad(&g2).unwrap()),
                &format!("{what}: weight gradient"),
            );
            close(
                Tensor::from_inner(x.grad(&g1).unwrap()),
                Tensor::from_inner(x2.grad(&g2).unwrap()),
                &format!("{what}: input gradient"),
            );
        }
    }
}
