//! Helpers shared by the end-to-end tests.
#![allow(dead_code)]

use std::process::{Command, Output};

use image::{Rgb, RgbImage};

/// The scheduler variables `--shard auto` reads; removed from every run so that a test run
/// inside an array job behaves as anywhere else.
pub const SCHEDULER_VARS: &[&str] = &[
    "SLURM_ARRAY_TASK_ID",
    "SLURM_ARRAY_TASK_COUNT",
    "SLURM_ARRAY_TASK_MIN",
    "SLURM_ARRAY_TASK_STEP",
    "JOB_COMPLETION_INDEX",
    "AWS_BATCH_JOB_ARRAY_INDEX",
    "AWS_BATCH_JOB_ARRAY_SIZE",
    "BATCH_TASK_INDEX",
    "BATCH_TASK_COUNT",
];

/// `tinct ARGS...` with no scheduler variables.
pub fn tinct_cmd(args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_tinct"));
    c.args(args);
    for v in SCHEDULER_VARS {
        c.env_remove(v);
    }
    c
}

pub fn tinct(args: &[&str]) -> Output {
    tinct_cmd(args).output().expect("run tinct")
}

/// `tinct colorize --method gray -q ARGS...`: the batch machinery without a network.
pub fn gray_colorize(args: &[&str]) -> Output {
    let mut all = vec!["colorize", "--method", "gray", "-q"];
    all.extend_from_slice(args);
    tinct(&all)
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A small colourful synthetic image: hue varies across, lightness down.
pub fn synthetic(w: u32, h: u32, seed: u32) -> RgbImage {
    RgbImage::from_fn(w, h, |x, y| {
        let t = (x * 255 / w.max(1)) as u8;
        let v = (y * 255 / h.max(1)) as u8;
        Rgb([t.wrapping_add(seed as u8 * 40), v, 255 - t])
    })
}

#[path = "../../src/test_skip.rs"]
mod test_skip;
pub use test_skip::skip;

/// Writes a synthetic clip from ffmpeg's lavfi source `source` (e.g.
/// `testsrc=size=48x32:rate=10`), `seconds` long, in yuv420p, to `path`.
pub fn lavfi_clip(source: &str, seconds: &str, path: &std::path::Path) {
    let made = Command::new("ffmpeg")
        .args([
            "-v", "error", "-f", "lavfi", "-i", source, "-t", seconds, "-pix_fmt", "yuv420p",
        ])
        .arg(path)
        .status()
        .unwrap();
    assert!(made.success(), "ffmpeg could not write {}", path.display());
}

/// Whether the `ffmpeg` program runs; when not, [`skip`]s `test`.
pub fn have_ffmpeg(test: &str) -> bool {
    let ok = Command::new("ffmpeg").arg("-version").output().is_ok();
    if !ok {
        skip(test, "ffmpeg", "ffmpeg is not installed");
    }
    ok
}

/// `../shared/REL` when present; when not, [`skip`]s `test`.
pub fn shared(test: &str, rel: &str) -> Option<std::path::PathBuf> {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared")
        .join(rel);
    if p.exists() {
        Some(p)
    } else {
        skip(test, "shared", &format!("{} not present", p.display()));
        None
    }
}
