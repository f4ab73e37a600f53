//! The CPU backend's batch norm in training (`vendor/burn-flex`, tinct's patch: the per-channel
//! reductions run on a `[batch, channels, rest]` view instead of a transposed copy) against batch
//! norm written out of tensor operations and differentiated by autodiff.

use burn::nn::{BatchNorm, BatchNormConfig};
use burn::prelude::*;
use burn::tensor::Distribution::Uniform;

fn close(a: Tensor<4>, b: Tensor<4>, tol: f32, what: &str) {
    let a: Vec<f32> = a.into_data().convert::<f32>().try_to_vec().unwrap();
    let b: Vec<f32> = b.into_data().convert::<f32>().try_to_vec().unwrap();
    assert_eq!(a.len(), b.len());
    for (i, (x, y)) in a.iter().zip(&b).enumerate() {
        assert!((x - y).abs() <= tol * (1.0 + y.abs()), "{what}[{i}]: {x} vs {y}");
    }
}

fn as4(t: Tensor<1>) -> Tensor<4> {
    let c = t.dims()[0];
    t.reshape([1, c, 1, 1])
}

/// Output, running statistics and the gradients of input, gamma and beta: the definition
/// `(x - mean) / sqrt(var + eps) * gamma + beta`, with the biased variance over batch and space.
#[test]
fn batch_norm_training_matches_its_definition() {
    let device = Device::flex().autodiff();
    let (eps, momentum) = (1e-3, 0.1);
    for dims in [[4, 3, 5, 6], [2, 8, 1, 1], [1, 2, 3, 7], [3, 5, 4, 4]] {
        let c = dims[1];
        let x = Tensor::<4>::random(dims, Uniform(-2.0, 3.0), &device);
        let r = Tensor::<4>::random(dims, Uniform(-1.0, 1.0), &device);
        let gamma = Tensor::<1>::random([c], Uniform(0.5, 1.5), &device);
        let beta = Tensor::<1>::random([c], Uniform(-0.5, 0.5), &device);
        let mut bn: BatchNorm = BatchNormConfig::new(c)
            .with_epsilon(eps)
            .with_momentum(momentum)
            .init(&device);
        bn.gamma = burn::module::Param::from_tensor(gamma.clone());
        bn.beta = burn::module::Param::from_tensor(beta.clone());

        let x1 = x.clone().require_grad();
        let y1 = bn.forward(x1.clone());
        let g1 = (y1.clone() * r.clone()).sum().backward();

        let (x2, gamma2, beta2) = (x.require_grad(), gamma.require_grad(), beta.require_grad());
        let mean = x2.clone().mean_dim(0).mean_dim(2).mean_dim(3);
        let centred = x2.clone() - mean.clone();
        let var = (centred.clone() * centred.clone()).mean_dim(0).mean_dim(2).mean_dim(3);
        let y2 = centred / (var.clone() + eps).sqrt() * as4(gamma2.clone()) + as4(beta2.clone());
        let g2 = (y2.clone() * r).sum().backward();

        close(y1, y2, 1e-5, "output");
        close(x1.grad(&g1).unwrap(), x2.grad(&g2).unwrap(), 1e-4, "x grad");
        close(
            as4(bn.gamma.val().grad(&g1).unwrap()),
            as4(gamma2.grad(&g2).unwrap()),
            1e-4,
            "gamma grad",
        );
        close(
            as4(bn.beta.val().grad(&g1).unwrap()),
            as4(beta2.grad(&g2).unwrap()),
            1e-4,
            "beta grad",
        );
        // Running statistics start at 0 and 1 and move by `momentum` towards the batch's.
        let want_mean = mean.detach().inner() * momentum;
        let want_var = var.detach().inner() * momentum + (1.0 - momentum);
        close(as4(bn.running_mean.value_sync()), want_mean, 1e-5, "running mean");
        close(as4(bn.running_var.value_sync()), want_var, 1e-5, "running var");
    }
}
