//! 2D convolution backward passes (added by tinct; see `VENDORED.md` at the crate root).
//!
//! burn-backend's default `conv2d_weight_backward` computes a grouped convolution's weight
//! gradient with one convolution per group, each using the whole output gradient as its kernel,
//! and its `conv2d_x_backward` goes through a grouped transposed convolution. For a depthwise
//! layer (`groups == channels_in == channels_out`) both cost about five times the forward pass
//! on this backend. Here depthwise layers in f32 get direct kernels that do the same arithmetic
//! as the forward pass (one multiply-add per tap and output pixel), parallel over planes (input
//! gradient) or channels (weight gradient). Every other case takes burn-backend's generic path,
//! reproduced below because it is crate-private there.

use alloc::vec;
use alloc::vec::Vec;

use burn_backend::ops::ConvOptions;
use burn_backend::ops::conv::{calculate_padding_out, pad_asymmetric_conv_input};
use burn_backend::ops::{ConvTransposeOptions, FloatTensorOps, ModuleOps};
use burn_backend::{DType, TensorMetadata};
use burn_std::{Bytes, Shape, Slice};

use crate::ops::conv::PhasedPlane;
use crate::{Flex, FlexTensor, Layout};

/// Shape facts of a depthwise f32 convolution, when `conv2d` with these inputs is one.
struct Depthwise {
    batch: usize,
    channels: usize,
    in_h: usize,
    in_w: usize,
    out_h: usize,
    out_w: usize,
    k_h: usize,
    k_w: usize,
    stride: [usize; 2],
    pad: [usize; 2],
    dilation: [usize; 2],
}

impl Depthwise {
    fn detect(
        x: &FlexTensor,
        weight: &FlexTensor,
        output_grad: &FlexTensor,
        options: &ConvOptions<2>,
    ) -> Option<Depthwise> {
        let (xs, ws, gs) = (x.shape(), weight.shape(), output_grad.shape());
        let all_f32 = [x.dtype(), weight.dtype(), output_grad.dtype()]
            .iter()
            .all(|d| *d == DType::F32);
        let depthwise = ws[1] == 1 && ws[0] == xs[1] && options.groups == xs[1] && gs[1] == xs[1];
        (all_f32 && depthwise).then(|| Depthwise {
            batch: xs[0],
            channels: xs[1],
            in_h: xs[2],
            in_w: xs[3],
            out_h: gs[2],
            out_w: gs[3],
            k_h: ws[2],
            k_w: ws[3],
            stride: options.stride,
            pad: options.padding_begin(),
            dilation: options.dilation,
        })
    }

    /// The phased padded plane of a dilation-1 layer with outputs (tinct's patch).
    fn phased(&self) -> Option<PhasedPlane> {
        (self.dilation == [1, 1] && self.out_h > 0 && self.out_w > 0)
            .then(|| PhasedPlane::new([self.out_h, self.out_w], [self.k_h, self.k_w], self.stride))
    }

    /// Output positions `[start, end)` whose input index `o * stride + k * dilation - pad`
    /// falls inside `[0, size_in)`, along axis `axis` for kernel tap `k`.
    fn valid(&self, axis: usize, k: usize) -> (usize, usize) {
        let (size_in, size_out) = if axis == 0 {
            (self.in_h, self.out_h)
        } else {
            (self.in_w, self.out_w)
        };
        let (s, p, off) = (self.stride[axis], self.pad[axis], k * self.dilation[axis]);
        let start = if off >= p { 0 } else { (p - off).div_ceil(s) };
        let end = if off >= size_in + p {
            0
        } else {
            (size_in + p - off).div_ceil(s)
        };
        // A tap that lies wholly in the padding of a small plane reads nothing: an empty range
        // within the output, never one that starts past its end.
        let start = start.min(size_out);
        (start, end.min(size_out).max(start))
    }
}

/// `sum(a[i] * b[i])` with eight independent accumulators, so that it vectorises.
#[inline]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    let mut s: f32 = acc.iter().sum();
    for (x, y) in ra.iter().zip(rb) {
        s += x * y;
    }
    s
}

/// Runs `f(index, chunk)` over the `chunk`-sized pieces of `out`, in parallel when rayon is on.
fn for_each_chunk(out: &mut [f32], chunk: usize, f: impl Fn(usize, &mut [f32]) + Sync + Send) {
    #[cfg(feature = "rayon")]
    {
        use rayon::prelude::*;
        out.par_chunks_mut(chunk).enumerate().for_each(|(i, c)| f(i, c));
    }
    #[cfg(not(feature = "rayon"))]
    for (i, c) in out.chunks_mut(chunk).enumerate() {
        f(i, c);
    }
}

fn tensor(data: Vec<f32>, dims: [usize; 4]) -> FlexTensor {
    FlexTensor::new(
        Bytes::from_elems(data),
        Layout::contiguous(Shape::from(dims.to_vec())),
        DType::F32,
    )
}

/// Calls `$f(args)` compiled for AVX2 and FMA where the CPU has them (checked at run time),
/// else as compiled for the build's target: tinct's patch, so that a portable build's loops
/// are as wide as a `target-cpu=native` one's. Both versions compute the same sums in the
/// same order (Rust does not contract multiply-adds), so the results are identical.
macro_rules! multiversion {
    ($f:ident($($arg:expr),*)) => {{
        #[cfg(all(feature = "std", target_arch = "x86_64"))]
        {
            #[target_feature(enable = "avx2,fma")]
            unsafe fn wide(dw: &Depthwise, a: &[f32], b: &[f32], c: usize, out: &mut [f32]) {
                $f(dw, a, b, c, out)
            }
            if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
                // SAFETY: the CPU has the features `wide` is compiled for.
                unsafe { wide($($arg),*) }
            } else {
                $f($($arg),*)
            }
        }
        #[cfg(not(all(feature = "std", target_arch = "x86_64")))]
        {
            $f($($arg),*)
        }
    }};
}

/// An output-gradient plane at a phased plane's row pitch `cols`: `g[oh, ow]` at
/// `oh * cols + ow`, zeros between the rows, up to the last output.
fn at_pitch(wide: &mut [f32], g: &[f32], out_w: usize, cols: usize) {
    for (oh, row) in g.chunks_exact(out_w).enumerate() {
        wide[oh * cols..oh * cols + out_w].copy_from_slice(row);
    }
}

/// [`x_grad_plane`] for dilation 1 through a [`PhasedPlane`]: each tap adds `w * g` to the
/// padded input gradient as one run over all output rows (the zeros between rows add
/// nothing), then the input's part is copied out. Each value receives the same products in
/// the same tap order as in [`x_grad_plane`].
#[inline(always)]
fn x_grad_plane_phased(dw: &Depthwise, w: &[f32], g: &[f32], c: usize, dx: &mut [f32]) {
    let Some(layout) = dw.phased() else {
        return x_grad_plane(dw, w, g, c, dx);
    };
    let cols = layout.cols;
    let len = (dw.out_h - 1) * cols + dw.out_w;
    let mut g_wide = vec![0.0f32; len];
    at_pitch(&mut g_wide, g, dw.out_w, cols);
    let mut acc = vec![0.0f32; layout.len()];
    let taps = dw.k_h * dw.k_w;
    for u in 0..dw.k_h {
        for v in 0..dw.k_w {
            let wt = w[c * taps + u * dw.k_w + v];
            let start = layout.tap(u, v);
            for (d, gv) in acc[start..start + len].iter_mut().zip(&g_wide) {
                *d += wt * gv;
            }
        }
    }
    layout.unfill(dx, &acc, [dw.in_h, dw.in_w], dw.pad);
}

/// [`weight_grad_channel`] for dilation 1 through a [`PhasedPlane`]: per image, each tap's
/// gradient is one dot product of the output gradient (at the plane's row pitch, zeros between
/// rows) with the tap's run of the padded input, summed over the images in f64.
#[inline(always)]
fn weight_grad_channel_phased(dw: &Depthwise, x: &[f32], g: &[f32], c: usize, out: &mut [f32]) {
    let Some(layout) = dw.phased() else {
        return weight_grad_channel(dw, x, g, c, out);
    };
    let (in_plane, out_plane, taps) = (dw.in_h * dw.in_w, dw.out_h * dw.out_w, dw.k_h * dw.k_w);
    let cols = layout.cols;
    let len = (dw.out_h - 1) * cols + dw.out_w;
    let mut acc = vec![0.0f64; taps];
    let mut plane = vec![0.0f32; layout.len()];
    let mut g_wide = vec![0.0f32; len];
    for n in 0..dw.batch {
        let bc = n * dw.channels + c;
        if n > 0 {
            plane.fill(0.0);
        }
        layout.fill(&mut plane, &x[bc * in_plane..(bc + 1) * in_plane], [dw.in_h, dw.in_w], dw.pad);
        at_pitch(&mut g_wide, &g[bc * out_plane..(bc + 1) * out_plane], dw.out_w, cols);
        for u in 0..dw.k_h {
            for v in 0..dw.k_w {
                let start = layout.tap(u, v);
                acc[u * dw.k_w + v] += dot(&g_wide, &plane[start..start + len]) as f64;
            }
        }
    }
    for (o, a) in out.iter_mut().zip(&acc) {
        *o = *a as f32;
    }
}

/// One plane of [`depthwise_x_grad`]: channel `c`'s output gradient `g` into `dx`.
#[inline(always)]
fn x_grad_plane(dw: &Depthwise, w: &[f32], g: &[f32], c: usize, dx: &mut [f32]) {
    let taps = dw.k_h * dw.k_w;
    for u in 0..dw.k_h {
        let (h0, h1) = dw.valid(0, u);
        for v in 0..dw.k_w {
            let (w0, w1) = dw.valid(1, v);
            if w1 <= w0 {
                continue;
            }
            let wt = w[c * taps + u * dw.k_w + v];
            for oh in h0..h1 {
                let ih = oh * dw.stride[0] + u * dw.dilation[0] - dw.pad[0];
                let g_row = &g[oh * dw.out_w + w0..oh * dw.out_w + w1];
                let row = &mut dx[ih * dw.in_w..(ih + 1) * dw.in_w];
                let first = w0 * dw.stride[1] + v * dw.dilation[1] - dw.pad[1];
                if dw.stride[1] == 1 {
                    for (d, gv) in row[first..first + g_row.len()].iter_mut().zip(g_row) {
                        *d += wt * gv;
                    }
                } else {
                    for (i, gv) in g_row.iter().enumerate() {
                        row[first + i * dw.stride[1]] += wt * gv;
                    }
                }
            }
        }
    }
}

/// One channel of [`depthwise_weight_grad`]: its `taps` weights' gradients into `out`.
#[inline(always)]
fn weight_grad_channel(dw: &Depthwise, x: &[f32], g: &[f32], c: usize, out: &mut [f32]) {
    let (in_plane, out_plane, taps) = (dw.in_h * dw.in_w, dw.out_h * dw.out_w, dw.k_h * dw.k_w);
    let mut acc = vec![0.0f64; taps];
    let mut strided = Vec::new();
    for n in 0..dw.batch {
        let bc = n * dw.channels + c;
        let xp = &x[bc * in_plane..(bc + 1) * in_plane];
        let gp = &g[bc * out_plane..(bc + 1) * out_plane];
        for u in 0..dw.k_h {
            let (h0, h1) = dw.valid(0, u);
            for v in 0..dw.k_w {
                let (w0, w1) = dw.valid(1, v);
                if w1 <= w0 {
                    continue;
                }
                let mut s = 0.0f64;
                for oh in h0..h1 {
                    let ih = oh * dw.stride[0] + u * dw.dilation[0] - dw.pad[0];
                    let g_row = &gp[oh * dw.out_w + w0..oh * dw.out_w + w1];
                    let first = ih * dw.in_w + w0 * dw.stride[1] + v * dw.dilation[1] - dw.pad[1];
                    let row = if dw.stride[1] == 1 {
                        &xp[first..first + g_row.len()]
                    } else {
                        strided.clear();
                        strided.extend((0..g_row.len()).map(|i| xp[first + i * dw.stride[1]]));
                        &strided[..]
                    };
                    s += dot(g_row, row) as f64;
                }
                acc[u * dw.k_w + v] += s;
            }
        }
    }
    for (o, a) in out.iter_mut().zip(&acc) {
        *o = *a as f32;
    }
}

/// `dx[n, c, oh*s + u*d - p, ow*s + v*d - p] += w[c, u, v] * dy[n, c, oh, ow]`, one plane per task.
fn depthwise_x_grad(dw: &Depthwise, weight: &FlexTensor, output_grad: &FlexTensor) -> FlexTensor {
    let (w, g) = (weight.to_contiguous(), output_grad.to_contiguous());
    let (w, g): (&[f32], &[f32]) = (w.storage(), g.storage());
    let (in_plane, out_plane) = (dw.in_h * dw.in_w, dw.out_h * dw.out_w);
    let mut dx = vec![0.0f32; dw.batch * dw.channels * in_plane];
    for_each_chunk(&mut dx, in_plane, |bc, dx| {
        let g = &g[bc * out_plane..(bc + 1) * out_plane];
        multiversion!(x_grad_plane_phased(dw, w, g, bc % dw.channels, dx))
    });
    tensor(dx, [dw.batch, dw.channels, dw.in_h, dw.in_w])
}

/// `dw[c, u, v] = sum over n, oh, ow of dy[n, c, oh, ow] * x[n, c, oh*s + u*d - p, ow*s + v*d - p]`,
/// one channel per task, rows summed in f32 and rows added in f64.
fn depthwise_weight_grad(dw: &Depthwise, x: &FlexTensor, output_grad: &FlexTensor) -> FlexTensor {
    let (x, g) = (x.to_contiguous(), output_grad.to_contiguous());
    let (x, g): (&[f32], &[f32]) = (x.storage(), g.storage());
    let taps = dw.k_h * dw.k_w;
    let mut dwt = vec![0.0f32; dw.channels * taps];
    for_each_chunk(&mut dwt, taps, |c, out| multiversion!(weight_grad_channel_phased(dw, x, g, c, out)));
    tensor(dwt, [dw.channels, 1, dw.k_h, dw.k_w])
}

pub(crate) fn conv2d_x_backward(
    x: FlexTensor,
    weight: FlexTensor,
    output_grad: FlexTensor,
    options: ConvOptions<2>,
) -> FlexTensor {
    if let Some(dw) = Depthwise::detect(&x, &weight, &output_grad, &options) {
        return depthwise_x_grad(&dw, &weight, &output_grad);
    }
    // burn-backend's generic path: a transposed convolution (on the padded input when the
    // padding is asymmetric, cropped afterwards).
    let input_shape = x.shape();
    let asymmetric = options.is_asymmetric();
    let padding = options.padding;
    let (x, options) = pad_asymmetric_conv_input::<Flex, 2>(x, options);
    let [_, _, h_in, w_in] = x.shape().dims();
    let [_, _, h_out, w_out] = output_grad.shape().dims();
    let [_, _, k_h, k_w] = weight.shape().dims();
    let p = options.padding_begin();
    let padding_out = [
        calculate_padding_out(k_h, options.stride[0], p[0], options.dilation[0], h_in, h_out),
        calculate_padding_out(k_w, options.stride[1], p[1], options.dilation[1], w_in, w_out),
    ];
    let grad = Flex::conv_transpose2d(
        output_grad,
        weight,
        None,
        ConvTransposeOptions::new(options.stride, p, padding_out, options.dilation, options.groups),
    );
    if !asymmetric {
        return grad;
    }
    let ranges = [
        Slice::from(0..input_shape[0]),
        Slice::from(0..input_shape[1]),
        Slice::from(padding[0].0..padding[0].0 + input_shape[2]),
        Slice::from(padding[1].0..padding[1].0 + input_shape[3]),
    ];
    Flex::float_slice(grad, &ranges)
}

/// The weight gradient of a dense 1x1 f32 convolution at stride 1 without padding (tinct's
/// patch): `dw[co, ci] = sum over n of dy[n] · x[n]^T`, one `[c_out, h*w] x [h*w, c_in]` gemm
/// per image, reading both tensors in place. The generic path swaps batch and channels of both
/// (two copies), then runs a convolution whose kernel is the whole output gradient: `c_in`
/// matrix-vector products over `batch * h * w` values, each reading the whole gradient again.
fn pointwise_weight_grad(
    x: &FlexTensor,
    weight: &FlexTensor,
    output_grad: &FlexTensor,
    options: &ConvOptions<2>,
) -> Option<FlexTensor> {
    let (xs, ws, gs) = (x.shape(), weight.shape(), output_grad.shape());
    let all_f32 = [x.dtype(), weight.dtype(), output_grad.dtype()]
        .iter()
        .all(|d| *d == DType::F32);
    let pointwise = options.groups == 1
        && ws[2] == 1
        && ws[3] == 1
        && options.stride == [1, 1]
        && options.padding_begin() == [0, 0]
        && options.padding_end() == [0, 0]
        && gs[2] == xs[2]
        && gs[3] == xs[3];
    if !(all_f32 && pointwise) {
        return None;
    }
    let (batch, c_in, c_out, hw) = (xs[0], xs[1], ws[0], xs[2] * xs[3]);
    let (x, g) = (x.to_contiguous(), output_grad.to_contiguous());
    let (x, g): (&[f32], &[f32]) = (x.storage(), g.storage());
    let mut dw = vec![0.0f32; c_out * c_in];
    let parallelism = if c_out * c_in * hw >= 64 * 64 * 64 {
        #[cfg(feature = "rayon")]
        {
            gemm::Parallelism::Rayon(0)
        }
        #[cfg(not(feature = "rayon"))]
        {
            gemm::Parallelism::None
        }
    } else {
        gemm::Parallelism::None
    };
    for n in 0..batch {
        let (xn, gn) = (&x[n * c_in * hw..(n + 1) * c_in * hw], &g[n * c_out * hw..(n + 1) * c_out * hw]);
        // SAFETY: `dw` is `[c_out, c_in]` row-major, `gn` `[c_out, hw]` and `xn` `[c_in, hw]`
        // row-major, read as its transpose `[hw, c_in]` (row stride 1, column stride hw);
        // every index the strides reach lies inside the slices.
        unsafe {
            gemm::gemm(
                c_out,
                c_in,
                hw,
                dw.as_mut_ptr(),
                1,
                c_in as isize,
                n > 0,
                gn.as_ptr(),
                1,
                hw as isize,
                xn.as_ptr(),
                hw as isize,
                1,
                1.0,
                1.0,
                false,
                false,
                false,
                parallelism,
            );
        }
    }
    Some(tensor(dw, [c_out, c_in, 1, 1]))
}

pub(crate) fn conv2d_weight_backward(
    x: FlexTensor,
    weight: FlexTensor,
    output_grad: FlexTensor,
    options: ConvOptions<2>,
) -> FlexTensor {
    if let Some(dw) = Depthwise::detect(&x, &weight, &output_grad, &options) {
        return depthwise_weight_grad(&dw, &x, &output_grad);
    }
    if let Some(grad) = pointwise_weight_grad(&x, &weight, &output_grad, &options) {
        return grad;
    }
    // burn-backend's generic path: per group, a convolution of the (batch <-> channel swapped)
    // input with the output gradient as the kernel.
    let (x, options) = pad_asymmetric_conv_input::<Flex, 2>(x, options);
    let weight_shape = weight.shape();
    let [c_out, ci_per_group, k_h, k_w] = weight_shape.dims();
    let co_per_group = c_out / options.groups;
    let x = Flex::float_swap_dims(x, 0, 1);
    let output_grad = Flex::float_swap_dims(output_grad, 0, 1);
    let grad_options = ConvOptions::new(options.dilation, options.padding_begin(), options.stride, 1);
    let crop = |t: FlexTensor, co: usize| {
        let t = Flex::float_swap_dims(t, 0, 1);
        let [_, _, th, tw] = t.shape().dims();
        if th == k_h && tw == k_w {
            t
        } else {
            Flex::float_slice(
                t,
                &[Slice::from(0..co), Slice::from(0..ci_per_group), Slice::from(0..k_h), Slice::from(0..k_w)],
            )
        }
    };
    if options.groups == 1 {
        return crop(Flex::conv2d(x, output_grad, None, grad_options), c_out);
    }
    let mut grad = Flex::float_zeros(weight_shape, &weight.device(), weight.dtype().into());
    for g in 0..options.groups {
        let xs = Flex::float_slice(x.clone(), &[Slice::from(g * ci_per_group..(g + 1) * ci_per_group)]);
        let gs = Flex::float_slice(
            output_grad.clone(),
            &[Slice::from(g * co_per_group..(g + 1) * co_per_group)],
        );
        let part = crop(Flex::conv2d(xs, gs, None, grad_options.clone()), co_per_group);
        grad = Flex::float_slice_assign(
            grad,
            &[
                Slice::from(g * co_per_group..(g + 1) * co_per_group),
                Slice::from(0..ci_per_group),
                Slice::from(0..k_h),
                Slice::from(0..k_w),
            ],
            part,
        );
    }
    grad
}
