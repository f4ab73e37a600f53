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
    fn l1_is_mean_absolute_error() {
        let device = Device::flex();
        let a = Tensor::<2>::from_floats([[1.0, -1.0], [0.5, 2.0]], &device);
        let b = Tensor::<2>::from_floats([[0.0, 1.0], [0.5, -1.0]], &device);
        assert!((scalar(l1(a, b)) - 1.5).abs() < 1e-6);
    }
}
