//! The losses of the seed's eq. (17)-(20), written out.

use burn::prelude::*;

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

    #[test]
    fn l1_is_mean_absolute_error() {
        let device = Device::flex();
        let a = Tensor::<2>::from_floats([[1.0, -1.0], [0.5, 2.0]], &device);
        let b = Tensor::<2>::from_floats([[0.0, 1.0], [0.5, -1.0]], &device);
        assert!((scalar(l1(a, b)) - 1.5).abs() < 1e-6);
    }
}
