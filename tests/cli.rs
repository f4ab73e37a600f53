//! End-to-end tests of the `tinct` binary in temporary folders.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{gray_colorize, stderr, synthetic, tinct, tinct_cmd};

use image::{DynamicImage, ImageBuffer, Rgb, RgbImage};
use tinct::color::LabImage;

fn write_images(dir: &Path, n: u32, size: u32) {
    std::fs::create_dir_all(dir).unwrap();
    for i in 0..n {
        synthetic(size, size, i).save(dir.join(format!("img{i}.png"))).unwrap();
    }
}

/// Trains a tiny model once per test that needs one.
fn tiny_model(root: &Path) -> PathBuf {
    let data = root.join("data");
    write_images(&data, 8, 64);
    let run = root.join("run");
    let o = tinct(&[
        "train",
        "--data",
        data.to_str().unwrap(),
        "--out",
        run.to_str().unwrap(),
        "--size",
        "64",
        "--batch-size",
        "4",
        "--epochs",
        "1",
        "--ngf",
        "8",
        "--ndf",
        "8",
        "--quiet",
    ]);
    assert!(o.status.success(), "train failed: {}", stderr(&o));
    run
}

fn mean_abs_dl(a: &DynamicImage, b: &DynamicImage) -> f32 {
    let la = LabImage::from_rgb8(&a.to_rgb8());
    let lb = LabImage::from_rgb8(&b.to_rgb8());
    la.l.iter().zip(&lb.l).map(|(x, y)| (x - y).abs()).sum::<f32>() / la.l.len() as f32
}

/// `tinct colorize INPUT -o OUT --model MODEL`.
fn colorize(input: &Path, out: &Path, model: &Path) -> Output {
    colorize_with(input, out, model, &[])
}

/// Runs `tinct ARGS...`, expecting it refused (exit 2) with a message containing `says`.
fn assert_refused(args: &[&str], says: &str) {
    let o = tinct(args);
    assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
    assert!(stderr(&o).contains(says), "{args:?}: {}", stderr(&o));
}

/// `tinct colorize INPUT -o OUT --model MODEL EXTRA...`.
fn colorize_with(input: &Path, out: &Path, model: &Path, extra: &[&str]) -> Output {
    let mut args = vec![
        "colorize",
        input.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--model",
        model.to_str().unwrap(),
    ];
    args.extend(extra);
    tinct(&args)
}

#[test]
fn train_one_epoch_then_colorize_keeps_size_and_lightness() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tiny_model(tmp.path());
    for f in [
        "config.json",
        "log.csv",
        "generator.safetensors",
        "samples/epoch-001.png",
        "checkpoints/latest",
    ] {
        assert!(run.join(f).exists(), "missing {f}");
    }
    let log = std::fs::read_to_string(run.join("log.csv")).unwrap();
    assert_eq!(log.lines().count(), 2, "{log}");
    assert!(log.lines().nth(1).unwrap().starts_with("1,gan,"));

    // Non-square and odd sizes, gray and colour inputs.
    let inputs = tmp.path().join("in");
    std::fs::create_dir_all(&inputs).unwrap();
    synthetic(97, 41, 1).save(inputs.join("wide.png")).unwrap();
    DynamicImage::ImageRgb8(synthetic(33, 75, 2))
        .to_luma8()
        .save(inputs.join("tall-gray.png"))
        .unwrap();
    synthetic(50, 50, 3).save(inputs.join("photo.jpg")).unwrap();
    let out = tmp.path().join("out");
    let o = colorize(&inputs, &out, &run);
    assert!(o.status.success(), "{}", stderr(&o));
    for (name, w, h) in [("wide.png", 97, 41), ("tall-gray.png", 33, 75), ("photo.jpg", 50, 50)] {
        let input = image::open(inputs.join(name)).unwrap();
        let output = image::open(out.join(name)).unwrap();
        assert_eq!((output.width(), output.height()), (w, h), "{name}");
        // JPEG re-encoding adds its own error on top of the 8-bit rounding.
        let tol = if name.ends_with(".jpg") { 1.5 } else { 0.5 };
        let dl = mean_abs_dl(&input, &output);
        assert!(dl < tol, "{name}: mean |dL| = {dl}");
    }

    // A single input with an output file name picks the format from the extension.
    let single = tmp.path().join("single.webp");
    let o = colorize(&inputs.join("wide.png"), &single, &run.join("generator.safetensors"));
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        image::ImageFormat::from_path(&single).unwrap(),
        image::ImageFormat::WebP
    );
    assert_eq!(image::open(&single).unwrap().width(), 97);
}

#[test]
fn sixteen_bit_input_gives_sixteen_bit_output() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tiny_model(tmp.path());
    let img: ImageBuffer<Rgb<u16>, Vec<u16>> =
        ImageBuffer::from_fn(40, 30, |x, y| Rgb([(x * 1600) as u16, (y * 2100) as u16, 30000]));
    let input = tmp.path().join("deep.png");
    DynamicImage::ImageRgb16(img).save(&input).unwrap();
    let out = tmp.path().join("o");
    let o = colorize(&input, &out, &run);
    assert!(o.status.success(), "{}", stderr(&o));
    let result = image::open(out.join("deep.png")).unwrap();
    assert!(matches!(result, DynamicImage::ImageRgb16(_)), "{:?}", result.color());
}

#[test]
fn bad_inputs_are_reported_and_the_rest_of_the_batch_is_done() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tiny_model(tmp.path());
    let inputs = tmp.path().join("mixed");
    std::fs::create_dir_all(&inputs).unwrap();
    synthetic(40, 30, 1).save(inputs.join("good1.png")).unwrap();
    synthetic(31, 17, 2).save(inputs.join("good2.jpg")).unwrap();
    std::fs::write(inputs.join("text.jpg"), "this is not an image\n").unwrap();
    let jpeg = std::fs::read(inputs.join("good2.jpg")).unwrap();
    std::fs::write(inputs.join("truncated.jpg"), &jpeg[..jpeg.len() / 2]).unwrap();
    let png = std::fs::read(inputs.join("good1.png")).unwrap();
    std::fs::write(inputs.join("truncated.png"), &png[..png.len() / 2]).unwrap();
    std::fs::write(inputs.join("empty.png"), b"").unwrap();
    let out = tmp.path().join("out");
    let o = tinct(&[
        "colorize",
        inputs.to_str().unwrap(),
        tmp.path().join("missing.png").to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--model",
        run.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let err = stderr(&o);
    for bad in ["text.jpg", "truncated.jpg", "truncated.png", "empty.png", "missing.png"] {
        let line = err.lines().find(|l| l.starts_with("error:") && l.contains(bad));
        assert!(line.is_some(), "no error line for {bad} in:\n{err}");
        assert!(!out.join(bad).exists(), "{bad} produced an output");
    }
    assert!(!err.contains("panicked"), "{err}");
    assert!(out.join("good1.png").exists() && out.join("good2.jpg").exists());
    // No temporary files are left behind.
    let leftovers: Vec<_> = std::fs::read_dir(&out)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with('.'))
        .collect();
    assert!(leftovers.is_empty());
}

#[test]
fn usage_and_fatal_errors_exit_2_with_one_line() {
    let tmp = tempfile::tempdir().unwrap();
    let o = tinct(&["colorize"]);
    assert_eq!(o.status.code(), Some(2));
    // A U-Net size its levels cannot halve evenly is refused, not a panic.
    let o = tinct(&["bench", "--size", "192", "--no-train", "--runs", "1"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("multiple of 128") && !stderr(&o).contains("panicked"),
        "{}",
        stderr(&o)
    );
    let img = tmp.path().join("a.png");
    synthetic(8, 8, 0).save(&img).unwrap();
    let o = tinct(&[
        "colorize",
        img.to_str().unwrap(),
        "--model",
        tmp.path().join("nope").to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(err.starts_with("error:") && err.trim().lines().count() == 1, "{err}");
    // x264's quality scale ends at 51, for files and live sources alike.
    let o = tinct(&["video", "clip.mp4", "-o", "out.mp4", "--crf", "60"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("--crf") && stderr(&o).contains("0..=51"),
        "{}",
        stderr(&o)
    );
    // A run directory is never overwritten without --force.
    let run = tiny_model(tmp.path());
    assert_refused(
        &[
            "train",
            "--data",
            tmp.path().join("data").to_str().unwrap(),
            "--out",
            run.to_str().unwrap(),
            "--size",
            "64",
        ],
        "--force",
    );
}

#[test]
fn resume_continues_a_finished_run_with_more_epochs() {
    let tmp = tempfile::tempdir().unwrap();
    // The run folder is moved before it is resumed: it continues where it now is.
    let run = tmp.path().join("moved");
    std::fs::rename(tiny_model(tmp.path()), &run).unwrap();
    let o = tinct(&[
        "train",
        "--data",
        tmp.path().join("data").to_str().unwrap(),
        "--out",
        run.to_str().unwrap(),
        "--epochs",
        "2",
        "--resume",
        "--quiet",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let log = std::fs::read_to_string(run.join("log.csv")).unwrap();
    let epochs: Vec<&str> = log.lines().skip(1).map(|l| l.split(',').next().unwrap()).collect();
    assert_eq!(epochs, ["1", "2"]);
    let config: serde_json::Value = serde_json::from_slice(&std::fs::read(run.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["paths"]["out"].as_str().unwrap(), run.to_str().unwrap());
}

/// Trains on a slice of the real photos when `../shared` is present (skips otherwise).
#[test]
fn trains_on_shared_photos_when_present() {
    let Some(shared) = common::shared("trains_on_shared_photos_when_present", "data/photos/val") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("photos");
    std::fs::create_dir_all(&data).unwrap();
    let mut files: Vec<_> = std::fs::read_dir(&shared)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    files.sort();
    for f in files.iter().take(6) {
        std::fs::copy(f, data.join(f.file_name().unwrap())).unwrap();
    }
    let run = tmp.path().join("run");
    let o = tinct(&[
        "train",
        "--data",
        data.to_str().unwrap(),
        "--out",
        run.to_str().unwrap(),
        "--size",
        "32",
        "--batch-size",
        "2",
        "--epochs",
        "1",
        "--ngf",
        "4",
        "--ndf",
        "4",
        "--quiet",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
}

/// An eval run's `report.json` in `out`.
fn read_report(out: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(out.join("report.json")).unwrap()).unwrap()
}

/// `tinct eval --pred PRED --truth TRUTH -o OUT -q`: scores precomputed predictions.
fn eval_pred(pred: &Path, truth: &Path, out: &Path) -> Output {
    let path = |p: &Path| p.to_str().unwrap().to_owned();
    let (pred, truth, out) = (path(pred), path(truth), path(out));
    tinct(&["eval", "--pred", &pred, "--truth", &truth, "-o", &out, "-q"])
}

/// The method of each row of an eval report's summary, in order.
fn method_names(report: &serde_json::Value) -> Vec<&str> {
    report["summary"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["method"].as_str().unwrap())
        .collect()
}

#[test]
fn eval_scores_methods_and_writes_reports() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tiny_model(tmp.path());
    let truth = tmp.path().join("truth");
    write_images(&truth, 3, 48);
    let reference = tmp.path().join("ref.png");
    synthetic(40, 40, 5).save(&reference).unwrap();
    let out = tmp.path().join("report");
    let o = tinct(&[
        "eval",
        truth.to_str().unwrap(),
        "--model",
        run.to_str().unwrap(),
        "--method",
        "palette",
        "--method",
        "reference",
        "--reference",
        reference.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--quiet",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let report = read_report(&out);
    let methods = method_names(&report);
    assert_eq!(methods, ["gray", "gan:run", "palette:sepia", "reference"]);
    // The gray baseline has no colour at all.
    assert_eq!(report["summary"][0]["colourfulness"].as_f64().unwrap(), 0.0);
    assert_eq!(report["images"].as_array().unwrap().len(), 3 * 4);
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(html.contains("<table>") && html.contains("data:image/jpeg;base64,") && !html.contains("http"));

    // Saturation 0 (here with flip averaging) takes the colour away: the GAN row scores as gray.
    let o = tinct(&[
        "eval",
        truth.to_str().unwrap(),
        "--model",
        run.to_str().unwrap(),
        "--saturation",
        "0",
        "--flip-average",
        "-o",
        out.to_str().unwrap(),
        "-q",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let report = read_report(&out);
    let (gray, gan) = (&report["summary"][0], &report["summary"][1]);
    assert_eq!(gan["method"], "gan:run+flip+sat0");
    for key in ["psnr", "ssim", "ciede2000", "colourfulness"] {
        assert_eq!(gan[key], gray[key], "{key}");
    }

    // Scoring a folder against itself: PSNR at the cap, SSIM 1, dE 0, AuC 1.
    let o = eval_pred(&truth, &truth, &out);
    assert!(o.status.success(), "{}", stderr(&o));
    let report = read_report(&out);
    let m = &report["summary"][0];
    assert_eq!(m["psnr"].as_f64().unwrap(), tinct::metrics::PSNR_CAP_DB);
    assert_eq!(m["ssim"].as_f64().unwrap(), 1.0);
    assert_eq!(m["ciede2000"].as_f64().unwrap(), 0.0);
    assert_eq!(m["ab_auc"].as_f64().unwrap(), 1.0);

    // Naming the gan method beside a classic one keeps the default (shipped photo) model.
    let o = tinct(&[
        "eval",
        truth.to_str().unwrap(),
        "--method",
        "gan",
        "--method",
        "palette",
        "--limit",
        "1",
        "-o",
        out.to_str().unwrap(),
        "-q",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let report = read_report(&out);
    let methods = method_names(&report);
    assert_eq!(methods, ["gray", "gan:photo", "palette:sepia"]);
}

#[test]
fn eval_and_classic_methods_reject_bad_inputs_clearly() {
    let tmp = tempfile::tempdir().unwrap();
    let truth = tmp.path().join("truth");
    let pred = tmp.path().join("pred");
    write_images(&truth, 2, 32);
    std::fs::create_dir_all(&pred).unwrap();
    synthetic(32, 32, 0).save(pred.join("img0.png")).unwrap();
    synthetic(20, 32, 1).save(pred.join("img1.png")).unwrap(); // wrong size
    let out = tmp.path().join("r");
    let o = eval_pred(&pred, &truth, &out);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(
        err.contains("img1.png") && err.contains("20x32") && err.contains("32x32"),
        "{err}"
    );

    // A missing prediction.
    std::fs::remove_file(pred.join("img1.png")).unwrap();
    let o = eval_pred(&pred, &truth, &out);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("no prediction"), "{}", stderr(&o));

    // Hints outside the image.
    let img = truth.join("img0.png");
    let hints = tmp.path().join("hints.json");
    std::fs::write(
        &hints,
        r##"{"points":[{"x":5,"y":5,"color":"#ff0000"},{"x":500,"y":3,"color":"#0000ff"}]}"##,
    )
    .unwrap();
    let o = tinct(&[
        "colorize",
        img.to_str().unwrap(),
        "-o",
        tmp.path().join("o").to_str().unwrap(),
        "--method",
        "hints",
        "--hints",
        hints.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("500"), "{}", stderr(&o));

    // A method without its input is a usage error.
    assert_refused(
        &["colorize", img.to_str().unwrap(), "--method", "reference"],
        "--reference",
    );
}

#[test]
fn classic_methods_colourise_and_keep_lightness() {
    let tmp = tempfile::tempdir().unwrap();
    let gray = tmp.path().join("gray.png");
    DynamicImage::ImageRgb8(synthetic(60, 40, 1))
        .to_luma8()
        .save(&gray)
        .unwrap();
    let hints = tmp.path().join("h.json");
    std::fs::write(
        &hints,
        r##"{"points":[{"x":5,"y":5,"color":"#ff0000"},{"x":50,"y":30,"rgb":[0,0,255]}]}"##,
    )
    .unwrap();
    let reference = tmp.path().join("ref.png");
    synthetic(40, 40, 5).save(&reference).unwrap();
    for (method, extra) in [
        ("palette", vec!["--palette", "cyanotype"]),
        ("hints", vec!["--hints", hints.to_str().unwrap()]),
        ("reference", vec!["--reference", reference.to_str().unwrap()]),
    ] {
        let out = tmp.path().join(format!("{method}.png"));
        let mut args = vec![
            "colorize",
            gray.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
            "--method",
            method,
        ];
        args.extend(extra);
        let o = tinct(&args);
        assert!(o.status.success(), "{method}: {}", stderr(&o));
        let result = image::open(&out).unwrap();
        let input = image::open(&gray).unwrap();
        assert!(mean_abs_dl(&input, &result) < 0.5, "{method}");
        assert!(
            !tinct::pipeline::is_effectively_gray(&result.to_rgb8()),
            "{method} added no colour"
        );
    }
}

#[test]
fn video_command_colourises_a_clip_and_reports_flicker() {
    if !common::have_ffmpeg("video_command_colourises_a_clip_and_reports_flicker") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let run = tiny_model(tmp.path());
    let clip = tmp.path().join("clip.mp4");
    common::lavfi_clip("testsrc=size=64x48:rate=10", "1", &clip);
    let out = tmp.path().join("out.mp4");
    let o = tinct(&[
        "video",
        clip.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--model",
        run.to_str().unwrap(),
        "-q",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(out.exists());
    let o = tinct(&[
        "video",
        clip.to_str().unwrap(),
        "--eval",
        "--model",
        run.to_str().unwrap(),
        "-q",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(report["frames"].as_u64(), Some(10));
    assert!(report["flicker_stabilized"].as_f64().unwrap() <= report["flicker_raw"].as_f64().unwrap() + 1e-9);
    // Not a video: a clear error, exit 2, no output.
    let bad = tmp.path().join("bad.mp4");
    std::fs::write(&bad, "not a video").unwrap();
    let out2 = tmp.path().join("out2.mp4");
    let o = tinct(&[
        "video",
        bad.to_str().unwrap(),
        "-o",
        out2.to_str().unwrap(),
        "--model",
        run.to_str().unwrap(),
        "-q",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("bad.mp4"), "{}", stderr(&o));
    assert!(!out2.exists());
}

/// `tinct export --half` halves the file, keeps the colours (to f16 rounding) and can change the
/// working size; `train --init-from` starts from an exported model and refuses another arch.
#[test]
fn export_halves_a_model_and_init_from_fine_tunes_it() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tiny_model(tmp.path());
    let full = run.join("generator.safetensors");
    let half = tmp.path().join("half.safetensors");
    let o = tinct(&["export", run.to_str().unwrap(), "-o", half.to_str().unwrap(), "--half"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let (a, b) = (
        std::fs::metadata(&full).unwrap().len(),
        std::fs::metadata(&half).unwrap().len(),
    );
    assert!(b * 10 < a * 6, "f16 file {b} bytes vs f32 {a}");
    let cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(tmp.path().join("half.json")).unwrap()).unwrap();
    assert_eq!(cfg["size"], 64);

    // Same input through both files: the colours agree to f16 rounding.
    let input = tmp.path().join("in.png");
    synthetic(64, 64, 3).save(&input).unwrap();
    let outs: Vec<RgbImage> = [&full, &half]
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let out = tmp.path().join(format!("out{i}.png"));
            let o = colorize(&input, &out, m);
            assert!(o.status.success(), "{}", stderr(&o));
            image::open(&out).unwrap().to_rgb8()
        })
        .collect();
    let max_diff = outs[0]
        .as_raw()
        .iter()
        .zip(outs[1].as_raw())
        .map(|(x, y)| (*x as i32 - *y as i32).abs())
        .max()
        .unwrap();
    assert!(max_diff <= 2, "f16 changed a channel by {max_diff}");

    // A size the network cannot take, or a negative own gain, is refused; a valid size is
    // recorded.
    let h = half.to_str().unwrap();
    assert_refused(&["export", h, "-o", h, "--size", "100"], "--size 100");
    assert_refused(&["export", h, "-o", h, "--saturation=-1"], "saturation -1");

    // Fine-tuning from the f16 file trains; an effnet-unet run cannot start from a unet256.
    let data = tmp.path().join("data");
    let ft = tmp.path().join("ft");
    let common = [
        "train",
        "--data",
        data.to_str().unwrap(),
        "--size",
        "64",
        "--batch-size",
        "4",
    ];
    let mut args = common.to_vec();
    args.extend([
        "--out",
        ft.to_str().unwrap(),
        "--epochs",
        "1",
        "--ngf",
        "8",
        "--ndf",
        "8",
        "-q",
    ]);
    args.extend(["--init-from", half.to_str().unwrap()]);
    let o = tinct(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(ft.join("generator.safetensors").is_file());
    let mut args = common.to_vec();
    let bad = tmp.path().join("bad");
    args.extend(["--out", bad.to_str().unwrap(), "--arch", "effnet-unet", "-q"]);
    args.extend(["--init-from", half.to_str().unwrap()]);
    assert_refused(&args, "but this run trains effnet-unet");
}

/// The shipped models are compiled in: a `tinct` copied alone to an empty folder lists and
/// runs all three; a models folder overrides them by name; on the first 24 images of its
/// own validation set (where `../shared` is present) each has a lower ΔE2000 than gray and
/// over half the truth's colourfulness.
#[test]
fn shipped_models_are_built_in_and_beat_gray_on_their_validation_sets() {
    let tmp = tempfile::tempdir().unwrap();
    let alone = tmp.path().join("alone");
    std::fs::create_dir(&alone).unwrap();
    let exe = alone.join("tinct");
    if std::fs::hard_link(env!("CARGO_BIN_EXE_tinct"), &exe).is_err() {
        std::fs::copy(env!("CARGO_BIN_EXE_tinct"), &exe).unwrap();
    }
    let run_alone = |args: &[&str]| {
        let mut c = Command::new(&exe);
        c.args(args).current_dir(&alone).env_remove("TINCT_MODELS");
        c.output().unwrap()
    };
    let listed = String::from_utf8_lossy(&run_alone(&["models"]).stdout).into_owned();
    for (name, val) in [("photo", "photos"), ("anime", "anime"), ("drawn", "drawn")] {
        let line = listed.lines().find(|l| l.starts_with(name)).unwrap_or_default();
        assert!(line.contains("(built in)"), "`tinct models` lists {name} as: {listed}");

        let input = alone.join(format!("{name}-in.png"));
        synthetic(48, 40, 1).save(&input).unwrap();
        let out = alone.join(format!("{name}-out.png"));
        let o = run_alone(&[
            "colorize",
            input.to_str().unwrap(),
            "--model",
            name,
            "-o",
            out.to_str().unwrap(),
        ]);
        assert!(o.status.success(), "{name}: {}", stderr(&o));
        let (a, b) = (image::open(&input).unwrap(), image::open(&out).unwrap());
        assert_eq!((b.width(), b.height()), (48, 40));
        assert!(mean_abs_dl(&a, &b) < 1.5, "{name} changed lightness");

        let test = format!("shipped_models_are_built_in_and_beat_gray_on_their_validation_sets ({name})");
        let Some(data) = common::shared(&test, &format!("data/{val}/val")) else {
            continue;
        };
        let report = tmp.path().join(format!("eval-{name}"));
        let o = tinct(&[
            "eval",
            data.to_str().unwrap(),
            "--model",
            name,
            "--limit",
            "24",
            "--out",
            report.to_str().unwrap(),
        ]);
        assert!(o.status.success(), "{name}: {}", stderr(&o));
        let json: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(report.join("report.json")).unwrap()).unwrap();
        let rows = json["summary"].as_array().unwrap();
        let gray = rows.iter().find(|r| r["method"] == "gray").unwrap();
        let ours = rows.iter().find(|r| r["method"] != "gray").unwrap();
        let f = |r: &serde_json::Value, k: &str| r[k].as_f64().unwrap();
        assert!(f(ours, "ciede2000") < f(gray, "ciede2000"), "{name}: {ours} vs {gray}");
        assert!(
            f(ours, "colourfulness") > 0.5 * f(ours, "colourfulness_truth"),
            "{name}: {ours}"
        );
    }

    // A models folder overrides a built-in model by name.
    let over = tmp.path().join("over");
    std::fs::create_dir(&over).unwrap();
    let o = tinct(&[
        "export",
        "anime",
        "-o",
        over.join("photo.safetensors").to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = tinct_cmd(&["models"]).env("TINCT_MODELS", &over).output().unwrap();
    let listed = String::from_utf8_lossy(&o.stdout).into_owned();
    let line = listed.lines().find(|l| l.starts_with("photo")).unwrap_or_default();
    assert!(
        line.contains(over.join("photo.safetensors").to_str().unwrap()),
        "{listed}"
    );
}

/// Outputs never overwrite an input or each other, a folder scan skips the output folder
/// inside it and does not loop on a linked folder, and `-o`/`--format` are checked up front.
#[test]
fn outputs_never_clash_with_inputs_or_each_other() {
    let tmp = tempfile::tempdir().unwrap();
    let p = |s: &str| tmp.path().join(s).to_str().unwrap().to_string();
    for d in ["coll/a", "coll/b"] {
        std::fs::create_dir_all(p(d)).unwrap();
        synthetic(12, 10, 1).save(p(&format!("{d}/p.png"))).unwrap();
    }
    // A glob keeps the folders below its fixed part, so same-named files do not collide.
    let o = gray_colorize(&[&p("coll/*/p.png"), "-o", &p("globbed")]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(Path::new(&p("globbed/a/p.png")).exists() && Path::new(&p("globbed/b/p.png")).exists());
    // Two files named alike into one folder: the second is refused, naming the first.
    let o = gray_colorize(&[&p("coll/a/p.png"), &p("coll/b/p.png"), "-o", &p("flat")]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("is also the output of"), "{}", stderr(&o));
    assert!(Path::new(&p("flat/p.png")).exists());
    // Never over an input, and the input is untouched.
    let before = std::fs::read(p("coll/a/p.png")).unwrap();
    let o = gray_colorize(&[&p("coll/a/p.png"), "-o", &p("coll/a/p.png")]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("would overwrite an input"), "{}", stderr(&o));
    assert_eq!(before, std::fs::read(p("coll/a/p.png")).unwrap());
    // Colouring a folder into a folder inside it, twice, does not colour the first output;
    // a link back up the tree does not loop.
    #[cfg(unix)]
    std::os::unix::fs::symlink(p("coll"), p("coll/a/up")).unwrap();
    for _ in 0..2 {
        let o = gray_colorize(&[&p("coll"), "-o", &p("coll/colorized")]);
        assert!(o.status.success(), "{}", stderr(&o));
    }
    assert!(!Path::new(&p("coll/colorized/colorized")).exists());
    let n = std::fs::read_dir(p("coll/colorized/a")).unwrap().count();
    assert_eq!(n, 1, "the linked folder was scanned as well");
    // An output folder above the inputs is not skipped: its files are the inputs.
    let o = gray_colorize(&[&p("coll/b"), "-o", &p("coll")]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(Path::new(&p("coll/p.png")).is_file());
    // -o naming a file with several inputs, an unknown --format, and a disagreement between
    // them are usage errors; a trailing / makes a folder of any name.
    for args in [
        vec![p("coll"), "-o".into(), p("two.png")],
        vec![p("coll/a/p.png"), "--format".into(), "gif".into()],
        vec![
            p("coll/a/p.png"),
            "-o".into(),
            p("x.png"),
            "--format".into(),
            "jpg".into(),
        ],
        vec![p("coll/a/p.png"), "--palette".into(), "sepia".into()],
    ] {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let o = gray_colorize(&args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        assert_eq!(stderr(&o).trim().lines().count(), 1, "{}", stderr(&o));
    }
    let o = gray_colorize(&[&p("typo.png"), "-o", &p("out.png")]);
    assert!(stderr(&o).contains("no such file"), "{}", stderr(&o));
    let o = gray_colorize(&[
        &p("coll/a/p.png"),
        "-o",
        &format!("{}/", p("v1.2.png")),
        "--format",
        ".PNG",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(Path::new(&p("v1.2.png/p.png")).is_file());
}

/// Transparency survives colourisation into PNG and WebP.
#[test]
fn alpha_is_kept() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("cut.png");
    let rgba = image::RgbaImage::from_fn(9, 7, |x, y| {
        image::Rgba([(x * 20) as u8, (y * 30) as u8, 90, (x * 25 + y) as u8])
    });
    rgba.save(&input).unwrap();
    for ext in ["png", "webp"] {
        let out = tmp.path().join(format!("out.{ext}"));
        let o = gray_colorize(&[input.to_str().unwrap(), "-o", out.to_str().unwrap()]);
        assert!(o.status.success(), "{}", stderr(&o));
        let got = image::open(&out).unwrap().to_rgba8();
        let alphas = |im: &image::RgbaImage| im.pixels().map(|p| p.0[3]).collect::<Vec<_>>();
        assert_eq!(alphas(&got), alphas(&rgba), "{ext}");
    }
}

/// Training refuses what it cannot do before it writes anything.
#[test]
fn train_checks_its_settings_before_writing_a_run() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    write_images(&data, 4, 32);
    let run = tmp.path().join("run");
    let d = data.to_str().unwrap();
    let r = run.to_str().unwrap();
    let nodata = tmp.path().join("nodata");
    // With --force, an old run is cleared only once the new one's data has been checked.
    std::fs::create_dir_all(&run).unwrap();
    let o = tinct(&[
        "train",
        "--quiet",
        "--data",
        nodata.to_str().unwrap(),
        "--out",
        r,
        "--force",
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    std::fs::write(run.join("config.json"), "old").unwrap();
    let o = tinct(&[
        "train",
        "--quiet",
        "--data",
        nodata.to_str().unwrap(),
        "--out",
        r,
        "--force",
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert_eq!(std::fs::read_to_string(run.join("config.json")).unwrap(), "old");
    std::fs::remove_file(run.join("config.json")).unwrap();
    let o = tinct(&["train", "--quiet", "--data", d, "--out", r, "--resume"]);
    assert!(
        stderr(&o).contains("no run to resume"),
        "an empty folder: {}",
        stderr(&o)
    );
    std::fs::remove_dir(&run).unwrap();
    for (args, says) in [
        (vec!["--data", d, "--out", r, "--resume"], "no run to resume"),
        (vec!["--data", nodata.to_str().unwrap(), "--out", r], "nodata"),
        (vec!["--data", d, "--out", r, "--size", "16"], "at least 24 px"),
    ] {
        let mut all = vec!["train", "--quiet", "--epochs", "1"];
        all.extend(args);
        assert_refused(&all, says);
        assert!(!run.exists(), "{all:?} left a run folder");
    }
}

/// A model whose config says its head classifies colour over ab bins (which earlier versions
/// could train) is refused with one line naming the file, and the removed flags are unknown.
#[test]
fn a_model_with_a_classifying_head_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let models = Path::new(env!("CARGO_MANIFEST_DIR")).join("models");
    let model = tmp.path().join("bins.safetensors");
    std::fs::copy(models.join("photo.safetensors"), &model).unwrap();
    let mut cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(models.join("photo.json")).unwrap()).unwrap();
    cfg["generator"]["ab_bins"] = 13.into();
    std::fs::write(model.with_extension("json"), cfg.to_string()).unwrap();
    let input = tmp.path().join("in.png");
    synthetic(64, 64, 5).save(&input).unwrap();
    let out = tmp.path().join("out.png");
    let o = colorize_with(&input, &out, &model, &[]);
    let err = stderr(&o);
    assert!(!o.status.success() && !out.exists(), "{err}");
    assert!(
        err.contains("bins.safetensors") && err.contains("13x13 ab bins"),
        "{err}"
    );
    let (input_s, out_s) = (input.to_str().unwrap(), out.to_str().unwrap());
    assert_refused(
        &["colorize", input_s, "-o", out_s, "--temperature", "0.2"],
        "--temperature",
    );
    assert_refused(
        &["train", "--data", input_s, "--out", out_s, "--ab-bins", "13"],
        "--ab-bins",
    );
}
