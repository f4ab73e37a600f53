//! The losses of the seed's eq. (17)-(20), written out.

use burn::prelude::*;
use burn::tensor::activation::log_softmax;

/// Binary cross-entropy on logits against a constant target `y` (1 = real, 0 = fake),
/// averaged over every element (seed eq. 17 with y_hat = sigmoid(x)), in the numerically
/// stable form `max(x, 0) - x*y + log(1 + exp(-|x|))`.
pub fn bce_with_logits<const D: usize>(logits: Tensor<D>, y: f32) -> Tensor<1> {
    let stable = logits.clone().clamp_min(0.0) - logits.clone().mul_scalar(y);
    let softplus = logits.abs().neg().exp().add_scalar(1.0).log();
    (stable + softplus).mean()
}

/// Mean absolute error (seed eq. 19).
pub fn l1<const D: usize>(pred: Tensor<D>, target: Tensor<D>) -> Tensor<1> {
    (pred - target).abs().mean()
}

/// Per-image chroma statistics of a batch of ab planes `[N, 2, H, W]`: the mean chroma
/// `mean(sqrt(a^2 + b^2))` and the chroma spread `sqrt(var(a) + var(b))`, each `[N]`. These are
/// the two terms of Hasler and Suesstrunk's colourfulness measure written in a, b rather than
/// in their opponent RGB axes. A small epsilon keeps the square roots differentiable at grey.
pub fn chroma_stats(ab: Tensor<4>) -> (Tensor<1>, Tensor<1>) {
    const EPS: f32 = 1e-6;
    let [n, _, h, w] = ab.dims();
    let ab = ab.reshape([n, 2, h * w]);
    let chroma = ab.clone().powi_scalar(2).sum_dim(1).add_scalar(EPS).sqrt();
    let mean_chroma = chroma.mean_dim(2).reshape([n]);
    let centred = ab.clone() - ab.mean_dim(2);
    let spread = centred.powi_scalar(2).mean_dim(2).sum_dim(1).add_scalar(EPS).sqrt();
    (mean_chroma, spread.reshape([n]))
}

/// Weight of the mean-chroma difference against the spread difference in [`chroma_match`]:
/// Hasler and Suesstrunk's colourfulness is `sigma + 0.3 mu`, dominated by the spread.
pub const CHROMA_MEAN_SHARE: f32 = 0.3;

/// Colourfulness matching: the batch mean of `|spread(pred) - spread(target)| + 0.3 |mean
/// chroma(pred) - mean chroma(target)|` per image ([`chroma_stats`]), weighted as Hasler and
/// Suesstrunk weight the two in their measure. L1 alone pulls an uncertain colour towards its
/// median, which is greyer than any of the colours it could be; this term says how colourful
/// each image should be as a whole without saying where. The spread carries most of the
/// weight: a mean-chroma term alone is met most cheaply by one cast over the whole image (the
/// sepia look), while the spread asks for different colours in different places.
pub fn chroma_match(pred: Tensor<4>, target: Tensor<4>) -> Tensor<1> {
    let (pm, ps) = chroma_stats(pred);
    let (tm, ts) = chroma_stats(target.detach());
    ((ps - ts).abs() + (pm - tm).abs().mul_scalar(CHROMA_MEAN_SHARE)).mean()
}

/// Cross-entropy of ab bin logits `[B, K*K, H, W]` (`k` bins per axis, as in
/// [`crate::model::effnet::ab_bin_centres`]) against the true ab `[B, 2, H, W]` in network
/// units. Each true colour is soft-encoded over the four bins around it with bilinear weights,
/// whose weighted centre is the colour itself, so the loss is
/// `-mean over pixels of sum_corners w * log softmax(z)[corner]` (Zhang et al. 2016 use a
/// Gaussian over five neighbours; the bilinear form is exact for a grid and needs no tensor
/// of all K*K targets).
///
/// With `class_weights` (`[K*K]`, one per bin), each pixel's term is multiplied by the weight
/// of its true colour, interpolated over the same four bins: Zhang et al.'s class rebalancing
/// inside the loss, which makes rare (saturated) colours count more than the common greyish
/// ones.
pub fn ab_cross_entropy(logits: Tensor<4>, target: Tensor<4>, k: usize, class_weights: Option<Tensor<1>>) -> Tensor<1> {
    let top = (k - 1) as f32;
    let t = target.detach().clamp(-1.0, 1.0).add_scalar(1.0).mul_scalar(top / 2.0);
    let i0 = t.clone().floor().clamp(0.0, top - 1.0);
    let f = t - i0.clone();
    let (ia, ib) = (i0.clone().narrow(1, 0, 1), i0.narrow(1, 1, 1));
    let (fa, fb) = (f.clone().narrow(1, 0, 1), f.narrow(1, 1, 1));
    let (ga, gb) = (fa.clone().neg().add_scalar(1.0), fb.clone().neg().add_scalar(1.0));
    // Bin (i, j) is channel i * k + j: a step in a is k channels, a step in b one.
    let base = ia.mul_scalar(k as f32) + ib;
    let kf = k as f32;
    let idx = Tensor::cat(
        vec![
            base.clone(),
            base.clone().add_scalar(kf),
            base.clone().add_scalar(1.0),
            base.add_scalar(kf + 1.0),
        ],
        1,
    )
    .round()
    .int();
    let weights = Tensor::cat(
        vec![ga.clone() * gb.clone(), fa.clone() * gb, ga * fb.clone(), fa * fb],
        1,
    );
    let per_pixel = (log_softmax(logits, 1).gather(1, idx.clone()) * weights.clone()).sum_dim(1);
    let per_pixel = match class_weights {
        Some(w) => {
            let dims = idx.dims();
            let of_corners = w.select(0, idx.flatten::<1>(0, 3)).reshape(dims);
            per_pixel * (of_corners * weights).sum_dim(1)
        }
        None => per_pixel,
    };
    per_pixel.mean().neg()
}

/// Adds the soft (bilinear, as in [`ab_cross_entropy`]) counts of one image's ab planes (`a`
/// then `b`, network units) over the `k` x `k` bins to `histogram`.
pub fn add_ab_soft_counts(ab: &[f32], k: usize, histogram: &mut [f64]) {
    let n = ab.len() / 2;
    let top = (k - 1) as f32;
    for (&a, &b) in ab[..n].iter().zip(&ab[n..]) {
        let t = |v: f32| (v.clamp(-1.0, 1.0) + 1.0) * top / 2.0;
        let (ta, tb) = (t(a), t(b));
        let (ia, ib) = (ta.floor().min(top - 1.0), tb.floor().min(top - 1.0));
        let (fa, fb) = ((ta - ia) as f64, (tb - ib) as f64);
        let base = ia as usize * k + ib as usize;
        histogram[base] += (1.0 - fa) * (1.0 - fb);
        histogram[base + k] += fa * (1.0 - fb);
        histogram[base + 1] += (1.0 - fa) * fb;
        histogram[base + k + 1] += fa * fb;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scalar(t: Tensor<1>) -> f32 {
        t.into_scalar::<f32>()
    }

    #[test]
    fn bce_matches_hand_computed_values() {
        let device = Device::flex();
        let x = Tensor::<1>::from_floats([0.0, 2.0, -3.0, 40.0], &device);
        // -log(sigmoid(x)) for y = 1: log 2, log(1+e^-2), log(1+e^3), ~0.
        let want1 = [2f32.ln(), (1.0 + (-2f32).exp()).ln(), (1.0 + 3f32.exp()).ln(), 0.0];
        let got1 = scalar(bce_with_logits(x.clone(), 1.0));
        assert!((got1 - want1.iter().sum::<f32>() / 4.0).abs() < 1e-5);
        // -log(1 - sigmoid(x)) for y = 0: softplus(x); 40 must not overflow.
        let want0 = [2f32.ln(), (1.0 + 2f32.exp()).ln(), (1.0 + (-3f32).exp()).ln(), 40.0];
        let got0 = scalar(bce_with_logits(x, 0.0));
        assert!((got0 - want0.iter().sum::<f32>() / 4.0).abs() < 1e-4, "{got0}");
    }

    #[test]
    fn chroma_stats_match_hand_computed_values() {
        let device = Device::flex();
        // Image 0: (a, b) = (0.3, 0.4) and (-0.3, -0.4): chroma 0.5 at both pixels, zero
        // means, var a = 0.09, var b = 0.16, spread 0.5. Image 1: one constant colour
        // (0.6, 0.8): chroma 1, spread 0.
        let ab = Tensor::<4>::from_floats([[[[0.3, -0.3]], [[0.4, -0.4]]], [[[0.6, 0.6]], [[0.8, 0.8]]]], &device);
        let (m, s) = chroma_stats(ab);
        let (m, s) = (
            m.into_data().try_to_vec::<f32>().unwrap(),
            s.into_data().try_to_vec::<f32>().unwrap(),
        );
        for (got, want) in m.iter().zip([0.5, 1.0]).chain(s.iter().zip([0.5, 0.0])) {
            assert!((got - want).abs() < 2e-3, "{m:?} {s:?}");
        }
    }

    #[test]
    fn chroma_match_is_zero_at_the_target_and_pushes_grey_outwards() {
        let device = Device::flex().autodiff();
        let target = Tensor::<4>::from_floats([[[[0.3, -0.3]], [[0.4, -0.4]]]], &device);
        assert!(scalar(chroma_match(target.clone(), target.clone())) < 1e-6);
        // Half the colour: both statistics are half the target's, 0.25 short each, the mean's
        // weighted 0.3.
        let half = target.clone().mul_scalar(0.5);
        assert!((scalar(chroma_match(half.clone(), target.clone())) - 0.325).abs() < 1e-3);
        // Gradient descent on the term moves every pixel away from grey, along its own hue.
        let pred = half.require_grad();
        let grads = chroma_match(pred.clone(), target).backward();
        let g = Tensor::<4>::from_inner(pred.grad(&grads).unwrap());
        let g = g.into_data().try_to_vec::<f32>().unwrap();
        let p = [0.15f32, -0.15, 0.2, -0.2];
        for (gi, pi) in g.iter().zip(p) {
            assert!(gi * pi < 0.0, "gradient {g:?} does not point towards grey");
        }
    }

    /// Uniform logits: every bin has probability 1/Q, so the cross-entropy is ln Q whatever the
    /// target. Logits equal to the log of the soft encoding minimise it (the entropy of the
    /// encoding), and decoding them at temperature 1 gives the target colour back.
    #[test]
    fn ab_cross_entropy_matches_hand_computed_values() {
        let device = Device::flex().autodiff();
        let k = 5; // centres -1, -0.5, 0, 0.5, 1 on each axis
        let target = Tensor::<4>::from_floats([[[[0.25]], [[-0.5]]]], &device);
        let uniform = Tensor::<4>::zeros([1, k * k, 1, 1], &device);
        assert!((scalar(ab_cross_entropy(uniform, target.clone(), k, None)) - 25f32.ln()).abs() < 1e-5);
        // a = 0.25 lies halfway between bins i = 2 and 3; b = -0.5 is exactly bin j = 1.
        let mut q = vec![1e-12f32; k * k];
        q[2 * k + 1] = 0.5;
        q[3 * k + 1] = 0.5;
        let z: Vec<f32> = q.iter().map(|v| v.ln()).collect();
        let z = Tensor::<4>::from_data(TensorData::new(z, [1, k * k, 1, 1]), &device).require_grad();
        let ce = ab_cross_entropy(z.clone(), target.clone(), k, None);
        assert!((scalar(ce.clone()) - 2f32.ln()).abs() < 1e-4, "entropy of (1/2, 1/2)");
        let g = Tensor::<4>::from_inner(z.grad(&ce.backward()).unwrap());
        let gmax: f32 = g.abs().max().into_scalar();
        assert!(gmax < 1e-4, "the soft encoding is a minimum (gradient {gmax})");
        let ab = crate::model::effnet::annealed_mean(z.inner(), k, 1.0);
        let ab = ab.into_data().try_to_vec::<f32>().unwrap();
        assert!((ab[0] - 0.25).abs() < 1e-5 && (ab[1] + 0.5).abs() < 1e-5, "{ab:?}");
    }

    /// Class weights scale each pixel's term by its colour's weight, interpolated like the soft
    /// encoding: with uniform logits every pixel's cross-entropy is ln 25, so the loss is
    /// ln 25 times the mean of the pixels' interpolated weights.
    #[test]
    fn class_weights_scale_each_pixel_by_its_colour() {
        let device = Device::flex();
        let k = 5;
        // Pixel 0: (0.25, -0.5), halfway between bins (2, 1) and (3, 1); pixel 1: (1, 1), bin 24.
        let target = Tensor::<4>::from_floats([[[[0.25, 1.0]], [[-0.5, 1.0]]]], &device);
        let mut w = vec![1.0f32; k * k];
        w[2 * k + 1] = 2.0;
        w[3 * k + 1] = 4.0;
        w[24] = 0.5;
        let w = Tensor::<1>::from_data(TensorData::new(w, [k * k]), &device);
        let uniform = Tensor::<4>::zeros([1, k * k, 1, 2], &device);
        let ce = scalar(ab_cross_entropy(uniform, target, k, Some(w)));
        // Pixel 0 weighs 0.5 * 2 + 0.5 * 4 = 3, pixel 1 weighs 0.5.
        let want = 25f32.ln() * (3.0 + 0.5) / 2.0;
        assert!((ce - want).abs() < 1e-4, "{ce} vs {want}");
    }

    #[test]
    fn soft_counts_split_a_colour_over_its_four_bins() {
        // k = 5: centres -1, -0.5, 0, 0.5, 1. (0.25, -0.5) is halfway between a-bins 2 and 3
        // and on b-bin 1; (1, 1) is the last bin exactly.
        let mut h = vec![0.0; 25];
        add_ab_soft_counts(&[0.25, 1.0, -0.5, 1.0], 5, &mut h);
        let mut want = vec![0.0; 25];
        want[2 * 5 + 1] = 0.5;
        want[3 * 5 + 1] = 0.5;
        want[24] = 1.0;
        for (i, (g, w)) in h.iter().zip(&want).enumerate() {
            assert!((g - w).abs() < 1e-6, "bin {i}: {g} vs {w}");
        }
    }

    #[test]
    fn l1_is_mean_absolute_error() {
        let device = Device::flex();
        let a = Tensor::<2>::from_floats([[1.0, -1.0], [0.5, 2.0]], &device);
        let b = Tensor::<2>::from_floats([[0.0, 1.0], [0.5, -1.0]], &device);
        assert!((scalar(l1(a, b)) - 1.5).abs() < 1e-6);
    }
}
