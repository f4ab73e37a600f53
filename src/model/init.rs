//! Weight initialisation shared by the networks: pix2pix's `init_weights(..., 'normal', 0.02)`,
//! i.e. convolution weights from N(0, 0.02), biases 0, batch-norm scale from N(1, 0.02).

use burn::module::{Param, ParamId};
use burn::nn::conv::{Conv2d, Conv2dConfig, ConvTranspose2d, ConvTranspose2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, Initializer};
use burn::prelude::*;
use burn::tensor::Distribution;

/// Standard deviation of pix2pix's normal initialisation.
pub const INIT_STD: f64 = 0.02;

/// A convolution config that can be initialised with N(0, 0.02) weights and zero bias.
pub trait NormalInit {
    type Module;
    fn init_normal(self, device: &Device) -> Self::Module;
}

/// Both convolution kinds take N(0, 0.02) weights and a zero bias the same way.
macro_rules! normal_init_for {
    ($config:ty => $module:ty) => {
        impl NormalInit for $config {
            type Module = $module;
            fn init_normal(self, device: &Device) -> $module {
                let mut conv = self
                    .with_initializer(Initializer::Normal {
                        mean: 0.0,
                        std: INIT_STD,
                    })
                    .init(device);
                conv.bias = conv
                    .bias
                    .map(|b| Param::initialized(ParamId::new(), b.val().zeros_like()));
                conv
            }
        }
    };
}

normal_init_for!(Conv2dConfig => Conv2d);
normal_init_for!(ConvTranspose2dConfig => ConvTranspose2d);

/// Builds a convolution (plain or transposed) with N(0, 0.02) weights and zero bias.
pub fn normal_init<C: NormalInit>(config: C, device: &Device) -> C::Module {
    config.init_normal(device)
}

/// Batch norm with scale from N(1, 0.02) and zero shift, as pix2pix initialises it.
pub fn init_batch_norm(channels: usize, device: &Device) -> BatchNorm {
    let mut bn = BatchNormConfig::new(channels).init(device);
    bn.gamma = Param::initialized(
        ParamId::new(),
        Tensor::random([channels], Distribution::Normal(1.0, INIT_STD), device),
    );
    bn
}
