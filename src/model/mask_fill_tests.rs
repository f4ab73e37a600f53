//! The vendored backend's `mask_fill` (patched to a branch-free select, split across threads for
//! large tensors) against the plain formulation, on both sides of the threading threshold.

use burn::prelude::*;
use burn::tensor::{Bool, Distribution};

#[test]
fn mask_fill_matches_the_plain_formulation() {
    let device = Device::flex();
    // 2 x 3 x 7 x 11 is below the threshold; 3 x 40 x 65 x 65 (over 500k values, not a multiple
    // of the chunk) is above it.
    for dims in [[2, 3, 7, 11], [3, 40, 65, 65]] {
        let x = Tensor::<4>::random(dims, Distribution::Uniform(-1.0, 1.0), &device);
        let mask: Tensor<4, Bool> = x.clone().lower_elem(-0.2);
        let xs = x.clone().into_data().try_to_vec::<f32>().unwrap();
        let ms = mask.clone().into_data().try_to_vec::<bool>().unwrap();
        let got = x.mask_fill(mask, 7.5).into_data().try_to_vec::<f32>().unwrap();
        let want: Vec<f32> = xs.iter().zip(&ms).map(|(&v, &m)| if m { 7.5 } else { v }).collect();
        assert_eq!(got, want, "{dims:?}");
        assert!(ms.iter().any(|&m| m) && ms.iter().any(|&m| !m));
    }
}
