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

/// Records that `test` cannot run for want of `resource` (`ffmpeg` or `shared`): a failure when
/// `TINCT_TEST_REQUIRE` names the resource (CI installs ffmpeg, so its tests must run there),
/// otherwise a `SKIPPED` line on stderr and in the file `TINCT_SKIP_LOG` names, which CI prints.
pub fn skip(test: &str, resource: &str, why: &str) {
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
