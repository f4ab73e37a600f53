//! The perceptual (feature) loss: the output and the truth, both turned back into sRGB, are
//! compared in the feature space of the frozen ImageNet EfficientNet-Lite0 rather than pixel by
//! pixel. L1 on ab pulls a colour the network is unsure of towards the median of its
//! candidates, a brown; features ask for a plausible colour of the right kind instead (the
//! VGG loss of DDColor and of Johnson et al., with the encoder at hand).

use crate::color::{D65, EPSILON, KAPPA, XYZ_TO_RGB, scale::AB_SCALE};
use crate::model::effnet::{Encoder, SKIP_STAGES};
use crate::model::store::ModelSource;
use anyhow::Result;
use burn::prelude::*;

/// `(116 f - 16) / kappa` below the cube's threshold, `f^3` above it (the inverse of seed
/// eq. 9-11), element-wise and differentiable.
fn lab_f_inv(f: Tensor<4>) -> Tensor<4> {
    let cube = f.clone().powi_scalar(3);
    let linear = f.mul_scalar(116.0 / KAPPA).sub_scalar(16.0 / KAPPA);
    linear.mask_where(cube.clone().greater_elem(EPSILON), cube)
}

/// Network-scaled L `[B, 1, H, W]` and ab `[B, 2, H, W]` to companded sRGB in [0, 1]
/// `[B, 3, H, W]`, differentiable: the tensor form of [`crate::color::lab_to_srgb`] for colours
/// inside the gamut; outside it each channel is clipped (no gamut mapping).
pub fn lab_to_srgb(l: Tensor<4>, ab: Tensor<4>) -> Tensor<4> {
    let l = l.add_scalar(1.0).mul_scalar(50.0);
    let a = ab.clone().narrow(1, 0, 1).mul_scalar(AB_SCALE);
    let b = ab.narrow(1, 1, 1).mul_scalar(AB_SCALE);
    let fy = l.clone().add_scalar(16.0).div_scalar(116.0);
    let fx = fy.clone() + a.div_scalar(500.0);
    let fz = fy.clone() - b.div_scalar(200.0);
    let y = l
        .clone()
        .div_scalar(KAPPA)
        .mask_where(l.greater_elem(KAPPA * EPSILON), fy.powi_scalar(3));
    let xyz = [
        lab_f_inv(fx).mul_scalar(D65[0]),
        y.mul_scalar(D65[1]),
        lab_f_inv(fz).mul_scalar(D65[2]),
    ];
    let channels = XYZ_TO_RGB
        .iter()
        .map(|row| {
            let lin = (xyz[0].clone().mul_scalar(row[0]) + xyz[1].clone().mul_scalar(row[1]))
                + xyz[2].clone().mul_scalar(row[2]);
            let lin = lin.clamp(0.0, 1.0);
            // The power branch sees only values above the threshold, so its gradient stays
            // finite at black.
            let power = lin
                .clone()
                .clamp_min(0.003_130_8)
                .powf_scalar(1.0 / 2.4)
                .mul_scalar(1.055)
                .sub_scalar(0.055);
            lin.clone()
                .mul_scalar(12.92)
                .mask_where(lin.greater_elem(0.003_130_8), power)
        })
        .collect();
    Tensor::cat(channels, 1)
}

/// The frozen feature network of the perceptual loss.
#[derive(Clone, Debug)]
pub struct Perceptual {
    encoder: Encoder,
}

impl Perceptual {
    /// EfficientNet-Lite0 with `source`'s ImageNet weights, batch norms folded (so it runs in
    /// inference form on an autodiff device) and its parameters frozen: gradients reach the
    /// generator's output through it, and it never learns.
    pub fn load(source: &ModelSource, device: &Device) -> Result<Perceptual> {
        let encoder = Encoder::new(device)
            .load_pretrained(source)?
            .fold_batch_norms()
            .no_grad();
        Ok(Perceptual { encoder })
    }

    /// The encoder's stages at strides 2, 4, 8, 16 and 32 for sRGB `[B, 3, H, W]` in [0, 1].
    fn features(&self, rgb: Tensor<4>) -> Vec<Tensor<4>> {
        // The encoder takes (pixel - 127) / 128 with pixels in 0..=255.
        let x = rgb.mul_scalar(255.0 / 128.0).sub_scalar(127.0 / 128.0);
        let stages = self.encoder.forward_stages(x);
        SKIP_STAGES.iter().map(|&s| stages[s].clone()).collect()
    }

    /// The mean over the five stages of the mean absolute feature difference between the
    /// output `fake` and the truth `ab`, both with lightness `l` (network scale). The truth's
    /// side is a constant.
    pub fn loss(&self, l: &Tensor<4>, fake: &Tensor<4>, ab: &Tensor<4>) -> Tensor<1> {
        let truth = self.features(lab_to_srgb(l.clone().detach(), ab.clone().detach()));
        let pred = self.features(lab_to_srgb(l.clone().detach(), fake.clone()));
        let n = truth.len() as f32;
        let total = pred
            .into_iter()
            .zip(truth)
            .map(|(p, t)| (p - t.detach()).abs().mean())
            .reduce(|a, b| a + b)
            .expect("five stages");
        total.div_scalar(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::color::scale;

    #[test]
    fn lab_to_srgb_matches_the_scalar_conversion() {
        let device = Device::flex();
        // In-gamut colours, dark ones on the linear branches (L below 8, sRGB below 0.0031).
        let labs: [[f32; 3]; 6] = [
            [50.0, 0.0, 0.0],
            [53.24, 80.09, 67.2],
            [87.73, -86.18, 83.18],
            [32.3, 79.19, -107.86],
            [5.0, 2.0, -3.0],
            [0.5, 0.0, 0.0],
        ];
        let l: Vec<f32> = labs.iter().map(|c| scale::l_to_net(c[0])).collect();
        let ab: Vec<f32> = labs
            .iter()
            .map(|c| scale::ab_to_net(c[1]))
            .chain(labs.iter().map(|c| scale::ab_to_net(c[2])))
            .collect();
        let n = labs.len();
        let l = Tensor::<4>::from_data(TensorData::new(l, [1, 1, 1, n]), &device);
        let ab = Tensor::<4>::from_data(TensorData::new(ab, [1, 2, 1, n]), &device);
        let got: Vec<f32> = lab_to_srgb(l, ab).into_data().try_to_vec().unwrap();
        for (i, lab) in labs.iter().enumerate() {
            let want = crate::color::lab_to_srgb(*lab);
            for c in 0..3 {
                assert!(
                    (got[c * n + i] - want[c]).abs() < 2e-3,
                    "{lab:?}: channel {c} {} vs {}",
                    got[c * n + i],
                    want[c]
                );
            }
        }
    }

    #[test]
    fn the_loss_is_zero_at_the_truth_and_its_gradient_reaches_the_output() {
        // The built-in weights: the trainer's unless TINCT_WEIGHTS names others.
        let device = Device::flex().autodiff();
        let p = Perceptual::load(&ModelSource::Embedded(&crate::zoo::ENCODER), &device).unwrap();
        let ramp: Vec<f32> = (0..32 * 32).map(|i| (i % 32) as f32 / 31.0 - 0.5).collect();
        let l = Tensor::<4>::from_data(TensorData::new(ramp.clone(), [1, 1, 32, 32]), &device);
        let ab: Vec<f32> = ramp
            .iter()
            .map(|v| v * 0.4)
            .chain(ramp.iter().map(|v| -v * 0.3))
            .collect();
        let ab = Tensor::<4>::from_data(TensorData::new(ab, [1, 2, 32, 32]), &device);
        assert!(p.loss(&l, &ab, &ab).into_scalar::<f32>() < 1e-6);
        // A grey output is some distance away, and descending the loss gives it colour.
        let grey = ab.zeros_like().require_grad();
        let loss = p.loss(&l, &grey, &ab);
        assert!(loss.clone().into_scalar::<f32>() > 1e-3);
        let grads = loss.backward();
        let g: Vec<f32> = Tensor::<4>::from_inner(grey.grad(&grads).unwrap())
            .into_data()
            .try_to_vec()
            .unwrap();
        assert!(g.iter().all(|v| v.is_finite()) && g.iter().any(|v| v.abs() > 0.0));
    }
}
