//! Raw generator output for checking a port of the networks (e.g. `tools/gpu-train`):
//! `cargo run --release --example forward_dump -- MODEL IN.f32 SIZE OUT.f32` reads `[1, 1, SIZE,
//! SIZE]` network-scaled L (little-endian f32), runs the generator in inference mode and writes
//! its `[1, 2, SIZE, SIZE]` tanh output (ab / 110) the same way.
use std::path::Path;

use burn::prelude::*;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    anyhow::ensure!(args.len() == 4, "usage: forward_dump MODEL IN.f32 SIZE OUT.f32");
    let device = Device::flex();
    let (g, _) = tinct::model::store::load_generator(Path::new(&args[0]), &device)?;
    let size: usize = args[2].parse()?;
    let bytes = std::fs::read(&args[1])?;
    let l: Vec<f32> = bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    anyhow::ensure!(l.len() == size * size, "{}: expected {} values", args[1], size * size);
    let x = Tensor::<4>::from_data(TensorData::new(l, [1, 1, size, size]), &device);
    let y: Vec<f32> = g.forward(x).into_data().try_into_vec().unwrap();
    let out: Vec<u8> = y.iter().flat_map(|v| v.to_le_bytes()).collect();
    std::fs::write(&args[3], out)?;
    Ok(())
}
