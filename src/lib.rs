//! tinct: colourise black-and-white photos, drawings and video with a conditional GAN
//! (pix2pix in CIE L*a*b*: L is kept, a and b are predicted).

pub mod batch;
pub mod bench;
pub mod classic;
pub mod cli;
pub mod color;
pub mod data;
pub mod eval;
pub mod imageio;
pub mod infer;
pub mod method;
pub mod metrics;
pub mod model;
pub mod pipeline;
pub mod serve;
pub mod train;
pub mod video;
pub mod zoo;

/// The compute device named by `--device`.
pub fn device_by_name(name: &str) -> anyhow::Result<burn::prelude::Device> {
    use burn::prelude::Device;
    match name {
        "cpu" => Ok(Device::flex()),
        #[cfg(feature = "vulkan")]
        "vulkan" => Ok(Device::vulkan(burn::tensor::DeviceKind::default())),
        #[cfg(feature = "wgpu")]
        "wgpu" => Ok(Device::wgpu(burn::tensor::DeviceKind::default())),
        #[cfg(feature = "cuda")]
        "cuda" => Ok(Device::cuda(0usize)),
        #[cfg(not(feature = "vulkan"))]
        "vulkan" => not_built(name),
        #[cfg(not(feature = "wgpu"))]
        "wgpu" => not_built(name),
        #[cfg(not(feature = "cuda"))]
        "cuda" => not_built(name),
        other => anyhow::bail!("--device {other}: unknown device (use cpu, vulkan, wgpu or cuda)"),
    }
}

/// The skip helper of the unit tests (`src/test_skip.rs`, shared with the integration tests).
#[cfg(test)]
pub(crate) mod test_skip;

#[allow(dead_code)]
fn not_built(name: &str) -> anyhow::Result<burn::prelude::Device> {
    anyhow::bail!(
        "--device {name}: this build has no {name} support; rebuild with `cargo build --release --features {name}`"
    )
}
