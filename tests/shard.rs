//! End-to-end tests of colouring an archive as the tasks of an array job: `--shard`,
//! `--skip-existing`, `--report`, and SIGTERM from a scheduler.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{gray_colorize, stderr, synthetic, tinct, tinct_cmd};

/// An archive of `n` small images, a few of them in a sub-folder.
fn archive(dir: &Path, n: u32) {
    for i in 0..n {
        let sub = if i % 5 == 0 { dir.join("box") } else { dir.to_path_buf() };
        std::fs::create_dir_all(&sub).unwrap();
        synthetic(24, 16, i).save(sub.join(format!("p{i:03}.png"))).unwrap();
    }
}

fn report(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// The `input` fields of one list of a report.
fn inputs_of(r: &serde_json::Value, list: &str) -> Vec<String> {
    r[list]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["input"].as_str().unwrap().to_string())
        .collect()
}

/// Every file below `dir`, relative to it.
fn files_below(dir: &Path) -> BTreeSet<PathBuf> {
    let mut out = BTreeSet::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.insert(p.strip_prefix(dir).unwrap().to_path_buf());
            }
        }
    }
    out
}

/// Three shards colour every image exactly once; the same shards read from Slurm's variables
/// pick the same files; a retried shard with --skip-existing does only what is missing.
#[test]
fn shards_colour_every_input_once_and_resume() {
    let tmp = tempfile::tempdir().unwrap();
    let (input, out) = (tmp.path().join("in"), tmp.path().join("out"));
    archive(&input, 40);
    let (i, o) = (input.to_str().unwrap(), out.to_str().unwrap());
    let mut done = Vec::new();
    let mut shard_inputs = 0;
    for k in 0..3 {
        let rep = tmp.path().join(format!("r{k}.json"));
        let shard = format!("{k}/3");
        let run = gray_colorize(&[i, "-o", o, "--shard", &shard, "--report", rep.to_str().unwrap()]);
        assert!(run.status.success(), "{}", stderr(&run));
        let r = report(&rep);
        assert_eq!(r["command"], "colorize");
        assert_eq!(r["inputs_total"], 40);
        assert_eq!(
            (r["shard"]["index"].as_u64(), r["shard"]["count"].as_u64()),
            (Some(k), Some(3))
        );
        assert!(r["shard"]["from"].is_null());
        assert!(r["failed"].as_array().unwrap().is_empty() && r["skipped"].as_array().unwrap().is_empty());
        assert_eq!(r["interrupted"], false);
        shard_inputs += r["inputs"].as_u64().unwrap();
        done.extend(inputs_of(&r, "done"));
    }
    assert_eq!(shard_inputs, 40);
    let unique: BTreeSet<&String> = done.iter().collect();
    assert_eq!(
        (done.len(), unique.len()),
        (40, 40),
        "an image was coloured twice or not at all"
    );
    assert_eq!(files_below(&out), files_below(&input));

    // Slurm numbers an --array=1-3 job's tasks 1..3: task 2 is shard 1/3.
    let slurm_out = tmp.path().join("slurm");
    let rep = tmp.path().join("slurm.json");
    let run = tinct_cmd(&[
        "colorize",
        "--method",
        "gray",
        "-q",
        i,
        "-o",
        slurm_out.to_str().unwrap(),
        "--shard",
        "auto",
        "--report",
        rep.to_str().unwrap(),
    ])
    .env("SLURM_ARRAY_TASK_ID", "2")
    .env("SLURM_ARRAY_TASK_MIN", "1")
    .env("SLURM_ARRAY_TASK_STEP", "1")
    .env("SLURM_ARRAY_TASK_COUNT", "3")
    .output()
    .unwrap();
    assert!(run.status.success(), "{}", stderr(&run));
    let r = report(&rep);
    assert_eq!(r["shard"]["from"], "SLURM_ARRAY_TASK_ID");
    let by_slurm: BTreeSet<String> = inputs_of(&r, "done").into_iter().collect();
    let fixed: BTreeSet<String> = inputs_of(&report(&tmp.path().join("r1.json")), "done")
        .into_iter()
        .collect();
    assert_eq!(by_slurm, fixed);

    // A requeued shard: two of its outputs were lost; it redoes those two and skips the rest.
    let first: Vec<String> = inputs_of(&report(&tmp.path().join("r0.json")), "done");
    let outputs: Vec<String> = report(&tmp.path().join("r0.json"))["done"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["output"].as_str().unwrap().to_string())
        .collect();
    for gone in &outputs[..2] {
        std::fs::remove_file(gone).unwrap();
    }
    let rep = tmp.path().join("again.json");
    let run = gray_colorize(&[
        i,
        "-o",
        o,
        "--shard",
        "0/3",
        "--skip-existing",
        "--report",
        rep.to_str().unwrap(),
    ]);
    assert!(run.status.success(), "{}", stderr(&run));
    let r = report(&rep);
    assert_eq!(inputs_of(&r, "done"), first[..2].to_vec());
    assert_eq!(inputs_of(&r, "skipped").len(), first.len() - 2);
    assert!(r["skipped"][0]["reason"].as_str().unwrap().contains("exists"));
}

/// Bad shard settings are usage errors (exit 2) that say what is wrong; an empty shard is not
/// an error.
#[test]
fn shard_settings_are_checked() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("one.png");
    synthetic(8, 8, 1).save(&input).unwrap();
    let (i, o) = (input.to_str().unwrap(), tmp.path().join("out"));
    let o = o.to_str().unwrap();
    for (args, says) in [
        (vec!["--shard", "3/3"], "below the count"),
        (vec!["--shard", "x"], "I/N"),
        (vec!["--shard", "auto"], "SLURM_ARRAY_TASK_ID"),
        (vec!["--shard", "1/3", "--shard-count", "4"], "disagree"),
    ] {
        let mut all = vec![i, "-o", o];
        all.extend(&args);
        let run = gray_colorize(&all);
        assert_eq!(run.status.code(), Some(2), "{args:?}: {}", stderr(&run));
        assert!(stderr(&run).contains(says), "{args:?}: {}", stderr(&run));
        if args[1] == "auto" || args.len() > 2 {
            // tinct's own checks (clap's parse errors add a usage line).
            assert_eq!(stderr(&run).trim().lines().count(), 1, "{}", stderr(&run));
        }
    }
    // Kubernetes gives only the index; --shard-count gives the count. One image in 50 shards:
    // most shards are empty, and succeed with nothing to do.
    let owner = (0..50)
        .find(|k| {
            let r = tinct_cmd(&[
                "colorize",
                "--method",
                "gray",
                "-q",
                i,
                "-o",
                o,
                "--shard",
                "auto",
                "--shard-count",
                "50",
            ])
            .env("JOB_COMPLETION_INDEX", k.to_string())
            .output()
            .unwrap();
            assert!(r.status.success(), "{}", stderr(&r));
            Path::new(o).join("one.png").exists()
        })
        .expect("some shard colours the image");
    assert!(owner < 50);
}

/// SIGTERM (what Slurm and Kubernetes send to stop a task) finishes the image in hand, writes
/// the report with the rest marked interrupted, leaves no partial file, and exits 1; the
/// retried task then finishes the rest.
#[cfg(unix)]
#[test]
fn sigterm_finishes_the_image_in_hand_and_reports() {
    let tmp = tempfile::tempdir().unwrap();
    let (input, out) = (tmp.path().join("in"), tmp.path().join("out"));
    std::fs::create_dir_all(&input).unwrap();
    for k in 0..60 {
        synthetic(640, 480, k).save(input.join(format!("f{k:02}.png"))).unwrap();
    }
    let rep = tmp.path().join("r.json");
    let args = [
        "colorize",
        "--method",
        "hints",
        "--hints",
        "marks.json",
        input.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "-q",
        "--skip-existing",
        "--report",
        rep.to_str().unwrap(),
    ];
    std::fs::write(
        tmp.path().join("marks.json"),
        r##"{"points": [{"x": 10, "y": 10, "color": "#b03020", "radius": 4}]}"##,
    )
    .unwrap();
    let mut child = tinct_cmd(&args).current_dir(tmp.path()).spawn().unwrap();
    let t0 = std::time::Instant::now();
    while !out.exists()
        || std::fs::read_dir(&out)
            .unwrap()
            .filter(|e| !e.as_ref().unwrap().file_name().to_string_lossy().starts_with('.'))
            .count()
            == 0
    {
        assert!(t0.elapsed().as_secs() < 120, "no output after 2 minutes");
        assert!(
            child.try_wait().unwrap().is_none(),
            "finished before it could be stopped"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(1), "a stopped run exits 1");
    let r = report(&rep);
    assert_eq!(r["interrupted"], true);
    let done = inputs_of(&r, "done");
    let failed = r["failed"].as_array().unwrap();
    assert!(!done.is_empty() && !failed.is_empty(), "{r}");
    assert!(
        failed
            .iter()
            .all(|f| f["error"].as_str().unwrap().contains("interrupted")),
        "{r}"
    );
    assert_eq!(done.len() + failed.len(), 60);
    let written = files_below(&out);
    assert!(
        written.iter().all(|f| !f.to_string_lossy().contains(".partial")),
        "{written:?}"
    );
    assert_eq!(
        written.len(),
        done.len(),
        "every finished image, and only those, is on disk"
    );
    // The retry does exactly the rest.
    let again = tinct_cmd(&args).current_dir(tmp.path()).output().unwrap();
    assert!(again.status.success(), "{}", stderr(&again));
    let r2 = report(&rep);
    assert_eq!(inputs_of(&r2, "skipped").len(), done.len());
    assert_eq!(inputs_of(&r2, "done").len(), 60 - done.len());
    assert_eq!(files_below(&out).len(), 60);
}

/// `tinct video` over a folder: one whole file per unit of a shard, outputs as .mp4 below -o,
/// a bad file fails alone, and a retry skips the finished videos.
#[test]
fn video_batches_shard_whole_files_and_resume() {
    if !common::have_ffmpeg("video_batches_shard_whole_files_and_resume") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let clips = tmp.path().join("clips");
    std::fs::create_dir_all(clips.join("reel")).unwrap();
    for (name, src) in [("a.mp4", "testsrc"), ("reel/b.mkv", "testsrc2")] {
        common::lavfi_clip(&format!("{src}=size=48x32:rate=10"), "0.5", &clips.join(name));
    }
    std::fs::write(clips.join("c.mp4"), "not a video").unwrap();
    let (c, out, rep) = (
        clips.to_str().unwrap(),
        tmp.path().join("out"),
        tmp.path().join("r.json"),
    );
    let o = out.to_str().unwrap();
    let run = tinct(&[
        "video",
        c,
        "-o",
        o,
        "-q",
        "--skip-existing",
        "--report",
        rep.to_str().unwrap(),
    ]);
    assert_eq!(run.status.code(), Some(1), "{}", stderr(&run));
    let r = report(&rep);
    assert_eq!((r["command"].as_str(), r["inputs"].as_u64()), (Some("video"), Some(3)));
    assert_eq!(inputs_of(&r, "done").len(), 2, "{r}");
    assert!(r["failed"][0]["error"].as_str().unwrap().contains("c.mp4"), "{r}");
    assert_eq!(
        files_below(&out),
        ["a.mp4", "reel/b.mp4"].into_iter().map(PathBuf::from).collect()
    );
    let again = tinct(&[
        "video",
        c,
        "-o",
        o,
        "-q",
        "--skip-existing",
        "--report",
        rep.to_str().unwrap(),
    ]);
    assert_eq!(again.status.code(), Some(1));
    assert_eq!(inputs_of(&report(&rep), "skipped").len(), 2);
    // Two shards split the three files between them.
    let mut seen = 0;
    for k in ["0/2", "1/2"] {
        let run = tinct(&[
            "video",
            c,
            "-o",
            o,
            "-q",
            "--shard",
            k,
            "--report",
            rep.to_str().unwrap(),
            "--force",
        ]);
        assert!(run.status.code().is_some_and(|s| s <= 1), "{}", stderr(&run));
        seen += report(&rep)["inputs"].as_u64().unwrap();
    }
    assert_eq!(seen, 3);
}

/// Videos named alike in one folder (`a.mkv`, `a.avi`) both become `a.mp4`: the second is
/// refused, naming the first, and neither overwrites an input `a.mp4` beside them.
#[test]
fn video_outputs_never_clash_with_inputs_or_each_other() {
    if !common::have_ffmpeg("video_outputs_never_clash_with_inputs_or_each_other") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    for name in ["a.mkv", "a.avi"] {
        common::lavfi_clip("testsrc=size=48x32:rate=10", "0.3", &tmp.path().join(name));
    }
    let (dir, out) = (tmp.path().to_str().unwrap(), tmp.path().join("out"));
    let run = tinct(&["video", dir, "-o", out.to_str().unwrap(), "-q"]);
    assert_eq!(run.status.code(), Some(1), "{}", stderr(&run));
    assert!(stderr(&run).contains("is also the output of"), "{}", stderr(&run));
    assert_eq!(files_below(&out), [PathBuf::from("a.mp4")].into_iter().collect());
    // Into the inputs' own folder, a.mp4 (now an input) is never overwritten.
    std::fs::rename(out.join("a.mp4"), tmp.path().join("a.mp4")).unwrap();
    let before = std::fs::read(tmp.path().join("a.mp4")).unwrap();
    let run = tinct(&["video", dir, "-o", dir, "-q", "--force"]);
    assert_eq!(run.status.code(), Some(1), "{}", stderr(&run));
    assert!(stderr(&run).contains("would overwrite an input"), "{}", stderr(&run));
    assert_eq!(before, std::fs::read(tmp.path().join("a.mp4")).unwrap());
}
