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

/// Records that a unit test cannot run for want of `resource` (`ffmpeg` or `shared`): a
/// failure when `TINCT_TEST_REQUIRE` names it, otherwise a `SKIPPED` line on stderr and in
/// the file `TINCT_SKIP_LOG` names (as the integration tests' `common::skip`).
#[cfg(test)]
pub(crate) fn skip_test(test: &str, resource: &str, why: &str) {
    let required = std::env::var("TINCT_TEST_REQUIRE").unwrap_or_default();
    if required.split(',').any(|r| r.trim() == resource) {
        panic!("{test}: {why}, and TINCT_TEST_REQUIRE requires {resource}");
    }
    let line = format!("SKIPPED {test}: {why}");
    eprintln!("{line}");
    if let Some(log) = std::env::var_os("TINCT_SKIP_LOG") {
        use std::io::Write;
        let file = std::fs::OpenOptions::new().create(true).append(true).open(log);
        if let Ok(mut f) = file {
            let _ = writeln!(f, "{line}");
        }
    }
}

#[allow(dead_code)]
fn not_built(name: &str) -> anyhow::Result<burn::prelude::Device> {
    anyhow::bail!(
        "--device {name}: this build has no {name} support; rebuild with `cargo build --release --features {name}`"
    )
}
