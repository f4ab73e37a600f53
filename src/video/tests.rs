//! Tests of the video module. Those that need ffmpeg print a note and return when it is not
//! installed. All clips are tiny (64x48, 10 frames at 10 fps, unless a test needs more).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use image::RgbImage;

use super::ffmpeg::{Decoder, encoder_args, summarize_stderr};
use super::frames::{frame_file_name, list_frames, natural_cmp};
use super::metrics::{FlickerMeter, FlickerParams};
use crate::metrics::colourfulness as colorfulness;

fn psnr_rgb8(a: &image::RgbImage, b: &image::RgbImage) -> f64 {
    crate::metrics::psnr(a, b).unwrap_or(0.0)
}
use super::stabilize::{FrameEvent, box_blur, estimate_shift, scene_stats};
use super::testing::{ClipSpec, SyntheticColorizer, run_ffmpeg, synthetic_clip};
use super::*;
use crate::color::LabImage;
use crate::color::l_plane_rgb8 as l_plane;

/// ffmpeg, or `None` after printing why the test is skipped.
fn ffmpeg_or_skip(test: &str) -> Option<FfmpegTools> {
    let tools = FfmpegTools::default();
    if tools.available() {
        Some(tools)
    } else {
        crate::test_skip::skip(test, "ffmpeg", "ffmpeg/ffprobe not installed (apt-get install ffmpeg)");
        None
    }
}

macro_rules! require_ffmpeg {
    ($name:expr) => {
        match ffmpeg_or_skip($name) {
            Some(t) => t,
            None => return,
        }
    };
}

fn quiet() -> VideoOptions {
    VideoOptions {
        quiet: true,
        preset: "veryfast".into(),
        ..VideoOptions::default()
    }
}

fn no_cancel() -> AtomicBool {
    AtomicBool::new(false)
}

/// The default test clip with `n` frames.
fn frames(n: u64) -> ClipSpec {
    ClipSpec {
        frames: n,
        ..ClipSpec::default()
    }
}

/// Colours a video file into another, not cancelled.
fn run_files(
    input: PathBuf,
    output: PathBuf,
    colorizer: &mut dyn FrameColorizer,
    opts: &VideoOptions,
) -> Result<RunSummary, VideoError> {
    run(
        &VideoInput::File(input),
        &VideoOutput::File(output),
        colorizer,
        opts,
        &no_cancel(),
    )
}

fn make_clip(tools: &FfmpegTools, dir: &Path, name: &str, spec: ClipSpec) -> PathBuf {
    let path = dir.join(name);
    synthetic_clip(tools, &path, &spec).expect("ffmpeg writes the test clip");
    path
}

/// (width, height, r_frame_rate, frames counted by decoding, audio codec) via ffprobe.
fn ffprobe_counts(path: &Path) -> (u32, u32, String, u64, Option<String>) {
    let out = std::process::Command::new("ffprobe")
        .args(["-v", "error", "-count_frames", "-print_format", "json", "-show_streams"])
        .arg(path)
        .output()
        .expect("ffprobe runs");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("ffprobe json");
    let streams = v["streams"].as_array().expect("streams").clone();
    let video = streams
        .iter()
        .find(|s| s["codec_type"] == "video")
        .expect("video stream");
    let audio = streams.iter().find(|s| s["codec_type"] == "audio");
    (
        video["width"].as_u64().unwrap_or(0) as u32,
        video["height"].as_u64().unwrap_or(0) as u32,
        video["r_frame_rate"].as_str().unwrap_or("").to_string(),
        video["nb_read_frames"]
            .as_str()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0),
        audio.and_then(|a| a["codec_name"].as_str().map(str::to_string)),
    )
}

/// Runs ffmpeg with `args` and then the output file `out`.
fn ffmpeg_to(tools: &FfmpegTools, args: &[&str], out: &Path) {
    let mut v: Vec<std::ffi::OsString> = args.iter().map(Into::into).collect();
    v.push(ffmpeg::file_arg(out));
    run_ffmpeg(tools, &v).expect("ffmpeg makes the test input");
}

fn decode_frames(path: &Path, tools: &FfmpegTools) -> Vec<RgbImage> {
    let info = probe(path, tools).expect("probe");
    let mut dec = Decoder::spawn(&info, tools, None).expect("decoder");
    let mut frames = Vec::new();
    while let Some(f) = dec.read_frame().expect("frame") {
        frames.push(f);
    }
    dec.finish(false).expect("decoder finishes");
    frames
}

fn read_png_dir(dir: &Path) -> Vec<RgbImage> {
    list_frames(dir)
        .expect("frames")
        .iter()
        .map(|p| image::open(p).expect("png").to_rgb8())
        .collect()
}

/// Names in `dir` (to check that nothing, not even a temporary file, was left behind).
fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .expect("read dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// |L(x) - L(y)| over every pixel of paired frames.
fn l_differences(a: &[RgbImage], b: &[RgbImage]) -> Vec<f32> {
    a.iter()
        .zip(b)
        .flat_map(|(x, y)| {
            l_plane(x)
                .into_iter()
                .zip(l_plane(y))
                .map(|(p, q)| (p - q).abs())
                .collect::<Vec<_>>()
        })
        .collect()
}

fn mean_and_p99(mut v: Vec<f32>) -> (f32, f32) {
    let mean = v.iter().sum::<f32>() / v.len().max(1) as f32;
    v.sort_by(f32::total_cmp);
    let p99 = v.get(v.len() * 99 / 100).copied().unwrap_or(0.0);
    (mean, p99)
}

// ----------------------------------------------------------------------------------------------
// Pure unit tests (no ffmpeg)
// ----------------------------------------------------------------------------------------------

#[test]
fn natural_order_sorts_numbers_by_value() {
    let mut v = vec!["f10.png", "f2.png", "f1.png", "f02.png", "a.png", "f100.png", "g1.png"];
    v.sort_by(|a, b| natural_cmp(a, b));
    assert_eq!(
        v,
        ["a.png", "f1.png", "f2.png", "f02.png", "f10.png", "f100.png", "g1.png"]
    );
    assert_eq!(frame_file_name(0), "frame-000001.png");
    assert_eq!(frame_file_name(1_234_567), "frame-1234568.png");
}

#[test]
fn frame_rate_parsing() {
    assert_eq!("25".parse::<FrameRate>().ok(), FrameRate::new(25, 1));
    assert_eq!("29.97".parse::<FrameRate>().ok(), FrameRate::new(30000, 1001));
    assert_eq!("12.5".parse::<FrameRate>().ok(), FrameRate::new(25, 2));
    assert_eq!("30000/1001".parse::<FrameRate>().ok(), FrameRate::new(30000, 1001));
    assert_eq!(FrameRate::parse_ratio("50/2"), FrameRate::new(25, 1));
    assert!(FrameRate::parse_ratio("0/0").is_none());
    for bad in ["", "abc", "-5", "0", "1/0", "nan"] {
        assert!(bad.parse::<FrameRate>().is_err(), "{bad}");
    }
    assert_eq!(
        FrameRate::new(30000, 1001).map(|r| r.to_string()).as_deref(),
        Some("30000/1001")
    );
}

#[test]
fn l_plane_is_bit_identical_to_color_module() {
    let img = RgbImage::from_fn(37, 11, |x, y| {
        image::Rgb([(x * 7) as u8, (y * 23) as u8, ((x * y) % 256) as u8])
    });
    let reference = LabImage::from_rgb8(&img);
    assert_eq!(l_plane(&img), reference.l);
    assert_eq!(LabImage::from_rgb8(&img), reference);
    assert_eq!(reference.to_rgb8(), reference.to_rgb8());
}

#[test]
fn out_of_gamut_predictions_keep_l() {
    // Far outside sRGB: per-channel clipping would move L by several units.
    let (l, a, b) = (
        vec![42.4f32, 90.0, 15.0],
        vec![-60.0f32, 80.0, 0.0],
        vec![-60.0f32, -20.0, 90.0],
    );
    let img = LabImage {
        width: 3,
        height: 1,
        l: l.clone(),
        a,
        b,
    }
    .to_rgb8();
    for (got, want) in l_plane(&img).iter().zip(&l) {
        assert!((got - want).abs() < 0.6, "L {want} came back as {got}");
    }
}

fn lab(w: u32, h: u32, l: impl Fn(usize) -> f32, a: f32, b: f32) -> LabImage {
    let n = (w * h) as usize;
    LabImage {
        width: w,
        height: h,
        l: (0..n).map(l).collect(),
        a: vec![a; n],
        b: vec![b; n],
    }
}

#[test]
fn stabilizer_blends_static_pixels_and_never_touches_l() {
    let mut stab = Stabilizer::new(StabilizerParams::default());
    let f0 = lab(16, 16, |i| 40.0 + (i % 16) as f32, 10.0, -10.0);
    let mut first = f0.clone();
    assert_eq!(stab.process(&mut first), FrameEvent::First);
    assert_eq!(first, f0);
    // Same L, different prediction: mostly the previous colour survives (w_max = 0.95).
    let mut f1 = lab(16, 16, |i| 40.0 + (i % 16) as f32, 30.0, 10.0);
    let l_before = f1.l.clone();
    assert!(matches!(stab.process(&mut f1), FrameEvent::Blended { .. }));
    assert_eq!(f1.l, l_before, "L must never change");
    assert!((f1.a[0] - (0.95 * 10.0 + 0.05 * 30.0)).abs() < 1e-3, "{}", f1.a[0]);
    // Where L changes a lot (but not enough for a cut), the new prediction wins.
    let mut f2 = lab(
        16,
        16,
        |i| {
            if i < 224 { 40.0 + (i % 16) as f32 } else { 80.0 }
        },
        -20.0,
        0.0,
    );
    stab.process(&mut f2);
    assert!((f2.a[255] - -20.0).abs() < 0.5, "{}", f2.a[255]);
    assert!(f2.a[0] > 0.0, "static pixel keeps its history: {}", f2.a[0]);
}

#[test]
fn stabilizer_resets_on_scene_cut() {
    let mut stab = Stabilizer::new(StabilizerParams::default());
    let mut a = lab(32, 32, |i| 20.0 + (i % 32) as f32 * 0.5, 30.0, 30.0);
    stab.process(&mut a);
    let mut b = lab(32, 32, |i| 85.0 - (i % 7) as f32, -30.0, -30.0);
    assert_eq!(stab.process(&mut b), FrameEvent::SceneCut);
    assert!(b.a.iter().all(|&v| v == -30.0));
    assert_eq!(stab.scene_cuts(), 1);
}

#[test]
fn box_blur_keeps_constants_and_shift_is_found() {
    let (w, h) = (200usize, 120usize);
    let c = vec![5.0f32; w * h];
    assert!(box_blur(&c, w, h, 2).iter().all(|v| (v - 5.0).abs() < 1e-4));
    let pattern = |x: i64, y: i64| {
        ((x as f32 * 0.21).sin() * 30.0 + (y as f32 * 0.13).cos() * 20.0 + ((x * y) % 17) as f32) + 50.0
    };
    let prev: Vec<f32> = (0..w * h).map(|i| pattern((i % w) as i64, (i / w) as i64)).collect();
    let cur: Vec<f32> = (0..w * h)
        .map(|i| pattern((i % w) as i64 - 7, (i / w) as i64 + 3))
        .collect();
    assert_eq!(estimate_shift(&prev, &cur, w, h, 32), (7, -3));
    assert_eq!(estimate_shift(&prev, &prev, w, h, 32), (0, 0));
}

#[test]
fn metrics_basics() {
    let img = RgbImage::from_fn(20, 10, |x, _| image::Rgb([x as u8 * 10, 50, 200]));
    let gray = RgbImage::from_pixel(20, 10, image::Rgb([90, 90, 90]));
    assert_eq!(psnr_rgb8(&img, &img), 100.0);
    assert!(psnr_rgb8(&img, &gray) < 20.0);
    assert_eq!(colorfulness(&gray), 0.0);
    assert!(colorfulness(&img) > 50.0);
    // Static L, chroma jumping by (3, 4) every frame: flicker 5 (Euclidean).
    let frames: Vec<LabImage> = (0..4)
        .map(|t| {
            lab(
                8,
                8,
                |_| 50.0,
                if t % 2 == 0 { 0.0 } else { 3.0 },
                if t % 2 == 0 { 0.0 } else { 4.0 },
            )
        })
        .collect();
    assert!((flicker(&frames) - 5.0).abs() < 1e-6);
    // Pixels whose L changed by >= 2 are ignored; scene cuts are skipped.
    let moving = vec![lab(8, 8, |_| 50.0, 0.0, 0.0), lab(8, 8, |_| 53.0, 9.0, 9.0)];
    assert_eq!(flicker(&moving), 0.0);
    let mut m = FlickerMeter::new(FlickerParams::default());
    m.push(&lab(8, 8, |_| 10.0, 0.0, 0.0));
    m.push(&lab(8, 8, |_| 90.0, 50.0, 0.0));
    assert_eq!((m.scene_cuts(), m.pairs()), (1, 0));
    let s = scene_stats(&[10.0; 4], &[90.0; 4]);
    assert!(s.mean_abs_dl > 79.0 && s.hist_diff > 0.99);
}

#[test]
fn stderr_is_condensed_to_one_line() {
    let path = Path::new("/tmp/x.mp4");
    let lines = vec![
        "[mov,mp4,m4a,3gp,3g2,mj2 @ 0x5585] moov atom not found".to_string(),
        "file:/tmp/x.mp4: Invalid data found when processing input".to_string(),
    ];
    assert_eq!(
        summarize_stderr(&lines, path),
        "moov atom not found; Invalid data found when processing input"
    );
}

#[test]
fn odd_sizes_get_yuv444_or_padding() {
    let spec = ffmpeg::EncodeSpec {
        width: 63,
        height: 47,
        frame_rate: FrameRate::default(),
        output: ".o.partial.mp4".into(),
        final_output: "o.mp4".into(),
        audio: None,
        video_offset: 0.0,
        sample_aspect_ratio: None,
        crf: 18,
        preset: "medium".into(),
        odd_size: OddSizePolicy::Yuv444,
        max_duration: None,
        stream_format: None,
        low_latency: false,
    };
    let joined = |s: &ffmpeg::EncodeSpec| {
        encoder_args(s)
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(" ")
    };
    assert!(joined(&spec).contains("format=yuv444p"), "{}", joined(&spec));
    let padded = ffmpeg::EncodeSpec {
        odd_size: OddSizePolicy::PadToEven,
        ..spec.clone()
    };
    assert!(joined(&padded).contains("pad=ceil(iw/2)*2:ceil(ih/2)*2"));
    assert!(joined(&padded).contains("format=yuv420p"));
    let even = ffmpeg::EncodeSpec {
        width: 64,
        height: 48,
        ..spec
    };
    assert!(joined(&even).contains("format=yuv420p") && joined(&even).contains("-crf 18"));
}

#[test]
fn missing_ffmpeg_is_a_clear_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = dir.path().join("in.mp4");
    std::fs::write(&input, b"\0\0\0\x18ftypmp42").expect("write");
    let opts = VideoOptions {
        tools: FfmpegTools {
            ffmpeg: "/nonexistent/ffmpeg".into(),
            ffprobe: "/nonexistent/ffprobe".into(),
        },
        ..quiet()
    };
    let out = dir.path().join("out.mp4");
    let err = run_files(input, out, &mut SyntheticColorizer::new(0.0, 1), &opts).expect_err("no ffmpeg");
    assert!(matches!(err, VideoError::FfmpegMissing { .. }), "{err}");
    assert!(err.to_string().contains("apt-get install ffmpeg"), "{err}");
    assert_eq!(names(dir.path()), ["in.mp4"]);
}

/// A frame-to-frame run needs no ffmpeg: natural order in, `frame-000001.png`... out, L kept.
#[test]
fn frames_to_frames_in_natural_order() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = dir.path().join("in");
    std::fs::create_dir(&input).expect("mkdir");
    // Gray levels increase with the frame number; names sort wrongly as plain strings.
    for (k, name) in ["1.png", "2.png", "10.png", "11.png", "3.png"].iter().enumerate() {
        let level = [20u8, 40, 100, 120, 60][k];
        RgbImage::from_pixel(9, 7, image::Rgb([level; 3]))
            .save(input.join(name))
            .expect("save");
    }
    std::fs::write(input.join("notes.txt"), "not a frame").expect("write");
    let out = dir.path().join("out");
    let summary = run(
        &VideoInput::Frames {
            dir: input,
            frame_rate: FrameRate::default(),
        },
        &VideoOutput::Frames(out.clone()),
        &mut SyntheticColorizer::new(3.0, 7),
        &quiet(),
        &no_cancel(),
    )
    .expect("run");
    assert_eq!(summary.frames, 5);
    assert_eq!(names(&out), (0..5).map(frame_file_name).collect::<Vec<_>>());
    let got = read_png_dir(&out);
    for (img, level) in got.iter().zip([20u8, 40, 60, 100, 120]) {
        let want = LabImage::from_rgb8(&RgbImage::from_pixel(1, 1, image::Rgb([level; 3]))).l[0];
        let l = l_plane(img);
        assert!(
            l.iter().all(|v| (v - want).abs() < 0.5),
            "level {level}: {} vs {want}",
            l[0]
        );
        assert!(colorfulness(img) > 0.0 || level < 30, "colourised");
    }
    assert_eq!(names(dir.path()), ["in", "out"]);
}

/// On a still shot the network sees every N-th frame; the frames between keep the key frame's
/// colour exactly, and a change of L makes a key frame at once.
#[test]
fn key_frames_colour_every_nth_frame_and_when_l_changes() {
    struct Counting(SyntheticColorizer, usize);
    impl FrameColorizer for Counting {
        fn colorize_batch(&mut self, frames: &[RgbImage]) -> anyhow::Result<Vec<LabImage>> {
            self.1 += frames.len();
            self.0.colorize_batch(frames)
        }
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let input = dir.path().join("in");
    std::fs::create_dir(&input).expect("mkdir");
    // Nine frames of one still picture, then three of a brighter one.
    for k in 0..12u32 {
        let lift = if k < 9 { 0 } else { 40 };
        RgbImage::from_fn(16, 12, |x, y| {
            image::Rgb([(60 + x * 4 + lift) as u8, (50 + y * 5 + lift) as u8, 90])
        })
        .save(input.join(format!("{k}.png")))
        .expect("save");
    }
    let out = dir.path().join("out");
    let mut colorizer = Counting(SyntheticColorizer::new(6.0, 5), 0);
    let summary = run(
        &VideoInput::Frames {
            dir: input,
            frame_rate: FrameRate::default(),
        },
        &VideoOutput::Frames(out.clone()),
        &mut colorizer,
        &VideoOptions {
            stabilize: false,
            batch_size: 5,
            keyframes: super::KeyframeParams {
                every: 4,
                max_dl: 2.0,
                ..Default::default()
            },
            ..quiet()
        },
        &no_cancel(),
    )
    .expect("run");
    // Key frames: 0, 4, 8 (every 4th), 9 (L changed); 10 and 11 carry 9's colour.
    assert_eq!((summary.frames, summary.key_frames, colorizer.1), (12, 4, 4));
    let got = read_png_dir(&out);
    for k in [1, 2, 3] {
        assert_eq!(got[k], got[0], "frame {k} carries frame 0's colour");
    }
    assert_ne!(
        got[4], got[3],
        "frame 4 is coloured anew (the colouriser's noise differs)"
    );
    assert_eq!(got[10], got[9]);
    assert_eq!(got[11], got[9]);
    assert_ne!(got[9], got[8]);
}

#[test]
fn colorizer_errors_and_contract_violations_leave_nothing() {
    struct Broken(bool);
    impl FrameColorizer for Broken {
        fn colorize_batch(&mut self, frames: &[RgbImage]) -> anyhow::Result<Vec<LabImage>> {
            if self.0 {
                anyhow::bail!("out of GPU memory")
            }
            Ok(frames.iter().map(|_| lab(2, 2, |_| 50.0, 0.0, 0.0)).collect())
        }
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let input = dir.path().join("in");
    std::fs::create_dir(&input).expect("mkdir");
    for k in 0..3 {
        RgbImage::from_pixel(5, 4, image::Rgb([k * 50; 3]))
            .save(input.join(format!("{k}.png")))
            .expect("save");
    }
    let src = VideoInput::Frames {
        dir: input,
        frame_rate: FrameRate::default(),
    };
    let out = VideoOutput::Frames(dir.path().join("out"));
    let err = run(&src, &out, &mut Broken(true), &quiet(), &no_cancel()).expect_err("fails");
    assert!(
        matches!(err, VideoError::Colorizer { .. }) && err.to_string().contains("out of GPU memory"),
        "{err}"
    );
    let err = run(&src, &out, &mut Broken(false), &quiet(), &no_cancel()).expect_err("fails");
    assert!(matches!(err, VideoError::ColorizerContract(_)), "{err}");
    assert_eq!(names(dir.path()), ["in"]);
}

// ----------------------------------------------------------------------------------------------
// With ffmpeg
// ----------------------------------------------------------------------------------------------

#[test]
fn video_keeps_size_rate_frames_audio_and_luma() {
    let tools = require_ffmpeg!("video_keeps_size_rate_frames_audio_and_luma");
    let dir = tempfile::tempdir().expect("tempdir");
    let input = make_clip(&tools, dir.path(), "in.mp4", ClipSpec::default());
    let output = dir.path().join("out.mp4");
    let summary = run_files(
        input.clone(),
        output.clone(),
        &mut SyntheticColorizer::new(4.0, 1),
        &quiet(),
    )
    .expect("run");
    assert_eq!(summary.frames, 10);
    assert_eq!(summary.audio, AudioMode::Copied);
    assert_eq!(
        ffprobe_counts(&output),
        (64, 48, "10/1".to_string(), 10, Some("aac".to_string()))
    );
    assert_eq!(names(dir.path()), ["in.mp4", "out.mp4"], "no temporary file left");

    // Luma: the output's L is the input's L up to the codec. 4:2:0 chroma subsampling leaks
    // into L near colour edges, so compare the mean and the 99th percentile, not the max.
    let (a, b) = (decode_frames(&input, &tools), decode_frames(&output, &tools));
    assert_eq!(a.len(), b.len());
    let diffs = l_differences(&a, &b);
    let (mean, p99) = mean_and_p99(diffs);
    eprintln!("L difference after H.264 yuv420p: mean {mean:.3}, p99 {p99:.3}");
    assert!(mean < 1.5 && p99 < 8.0, "mean {mean}, p99 {p99}");
    // The test colouriser did colourise.
    assert!(b.iter().map(colorfulness).sum::<f64>() / b.len() as f64 > 5.0);
}

#[test]
fn luma_is_exact_up_to_rgb_rounding_with_lossless_frames() {
    let tools = require_ffmpeg!("luma_is_exact_up_to_rgb_rounding_with_lossless_frames");
    let dir = tempfile::tempdir().expect("tempdir");
    let input = make_clip(
        &tools,
        dir.path(),
        "in.mp4",
        ClipSpec {
            audio: false,
            ..ClipSpec::default()
        },
    );
    let out = dir.path().join("frames");
    run(
        &VideoInput::File(input.clone()),
        &VideoOutput::Frames(out.clone()),
        &mut SyntheticColorizer::new(4.0, 2),
        &quiet(),
        &no_cancel(),
    )
    .expect("run");
    let (a, b) = (decode_frames(&input, &tools), read_png_dir(&out));
    assert_eq!(b.len(), 10);
    let diffs = l_differences(&a, &b);
    let (mean, p99) = mean_and_p99(diffs.clone());
    let max = diffs.iter().copied().fold(0.0, f32::max);
    eprintln!("L difference through Lab -> 8-bit RGB: mean {mean:.3}, p99 {p99:.3}, max {max:.3}");
    // 8-bit rounding of R, G, B moves L by at most ~0.5 (more in the darkest shades).
    assert!(
        mean < 0.2 && p99 < 0.5 && max < 1.0,
        "mean {mean}, p99 {p99}, max {max}"
    );
}

#[test]
fn stabilization_lowers_flicker() {
    let tools = require_ffmpeg!("stabilization_lowers_flicker");
    let dir = tempfile::tempdir().expect("tempdir");
    let input = make_clip(
        &tools,
        dir.path(),
        "in.mp4",
        ClipSpec {
            frames: 15,
            audio: false,
            ..ClipSpec::default()
        },
    );
    let mut values = Vec::new();
    for stabilize in [false, true] {
        let out = dir.path().join(format!("frames-{stabilize}"));
        let opts = VideoOptions {
            stabilize,
            keyframes: super::KeyframeParams::every_frame(),
            ..quiet()
        };
        run(
            &VideoInput::File(input.clone()),
            &VideoOutput::Frames(out.clone()),
            &mut SyntheticColorizer::new(8.0, 3),
            &opts,
            &no_cancel(),
        )
        .expect("run");
        let labs: Vec<LabImage> = read_png_dir(&out).iter().map(LabImage::from_rgb8).collect();
        values.push(flicker(&labs));
    }
    eprintln!(
        "flicker without / with stabilisation: {:.3} / {:.3}",
        values[0], values[1]
    );
    assert!(values[1] < 0.6 * values[0], "{values:?}");
}

#[test]
fn scene_cut_resets_blending() {
    let tools = require_ffmpeg!("scene_cut_resets_blending");
    let dir = tempfile::tempdir().expect("tempdir");
    let input = dir.path().join("cut.mp4");
    ffmpeg_to(
        &tools,
        &[
            "-f",
            "lavfi",
            "-i",
            "testsrc=size=64x48:rate=10:duration=1[a];mandelbrot=size=64x48:rate=10,trim=duration=1[b];[a][b]concat=n=2[out0]",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-pix_fmt",
            "yuv420p",
        ],
        &input,
    );
    let frames = decode_frames(&input, &tools);
    assert_eq!(frames.len(), 20);
    // A prediction of +30 in the first scene and -30 in the second: without a reset the first
    // frame of the second scene would be pulled towards +30 where L happens to match.
    let mut stab = Stabilizer::new(StabilizerParams::default());
    for (t, f) in frames.iter().enumerate() {
        let value = if t < 10 { 30.0 } else { -30.0 };
        let l = l_plane(f);
        let n = l.len();
        let mut lab = LabImage {
            width: f.width(),
            height: f.height(),
            l,
            a: vec![value; n],
            b: vec![value; n],
        };
        let event = stab.process(&mut lab);
        assert_eq!(event == FrameEvent::SceneCut, t == 10, "frame {t}: {event:?}");
        if t == 10 {
            assert!(lab.a.iter().all(|&v| v == -30.0), "reset frame is taken as predicted");
        }
    }
    assert_eq!(stab.scene_cuts(), 1);
    // And the pipeline reports it.
    let summary = run_files(
        input,
        dir.path().join("o.mkv"),
        &mut SyntheticColorizer::new(2.0, 4),
        &quiet(),
    )
    .expect("run");
    assert_eq!((summary.frames, summary.scene_cuts), (20, 1));
}

#[test]
fn bad_inputs_give_one_line_errors_and_no_output() {
    let tools = require_ffmpeg!("bad_inputs_give_one_line_errors_and_no_output");
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let good = make_clip(&tools, d, "good.mp4", ClipSpec::default());
    std::fs::write(d.join("text.mp4"), "this is just text, not a video\n").expect("write");
    let bytes = std::fs::read(&good).expect("read");
    std::fs::write(d.join("truncated.mp4"), &bytes[..bytes.len() / 3]).expect("write");
    std::fs::write(d.join("empty.mp4"), b"").expect("write");
    let noise: Vec<u8> = (0..20_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(d.join("noise.mkv"), noise).expect("write");
    ffmpeg_to(
        &tools,
        &["-f", "lavfi", "-i", "sine=frequency=440:duration=1", "-c:a", "aac"],
        &d.join("audio.mp4"),
    );
    // H.264 stored in AVI under an unknown FourCC: demuxable, not decodable.
    let good_arg = ffmpeg::file_arg(&good);
    let good_arg = good_arg.to_str().expect("utf-8 temp path");
    ffmpeg_to(
        &tools,
        &[
            "-i",
            good_arg,
            "-c:v",
            "copy",
            "-an",
            "-tag:v",
            "ZZZZ",
            "-strict",
            "unofficial",
        ],
        &d.join("unknown.avi"),
    );
    let before = names(d);

    type Check = fn(&VideoError) -> bool;
    let cases: [(&str, Check); 7] = [
        ("text.mp4", |e| matches!(e, VideoError::NotAVideo { .. })),
        ("empty.mp4", |e| matches!(e, VideoError::NotAVideo { .. })),
        ("truncated.mp4", |e| matches!(e, VideoError::Corrupt { .. })),
        ("noise.mkv", |e| matches!(e, VideoError::Corrupt { .. })),
        ("audio.mp4", |e| matches!(e, VideoError::NoVideoStream { .. })),
        ("unknown.avi", |e| matches!(e, VideoError::UnsupportedCodec { .. })),
        ("missing.mp4", |e| matches!(e, VideoError::InputNotFound { .. })),
    ];
    for (name, is_expected) in cases {
        let out = d.join(format!("out-{name}.mp4"));
        let err = run_files(
            d.join(name),
            out.clone(),
            &mut SyntheticColorizer::new(0.0, 0),
            &quiet(),
        )
        .expect_err(name);
        let msg = err.to_string();
        eprintln!("{name}: {msg}");
        assert!(is_expected(&err), "{name}: {msg}");
        assert!(msg.contains(name) && !msg.contains('\n'), "{name}: {msg}");
        assert!(!out.exists());
        // evaluate() reports the same way.
        let err2 = evaluate(
            &VideoInput::File(d.join(name)),
            &mut SyntheticColorizer::new(0.0, 0),
            &quiet(),
            &no_cancel(),
        )
        .expect_err(name);
        assert_eq!(std::mem::discriminant(&err2), std::mem::discriminant(&err));
    }
    assert_eq!(names(d), before, "no output or temporary file left behind");
}

#[test]
fn frames_round_trip_through_video() {
    let tools = require_ffmpeg!("frames_round_trip_through_video");
    let dir = tempfile::tempdir().expect("tempdir");
    let input = make_clip(&tools, dir.path(), "in.mp4", ClipSpec::default());
    let frames = dir.path().join("frames");
    let s = run(
        &VideoInput::File(input),
        &VideoOutput::Frames(frames.clone()),
        &mut SyntheticColorizer::new(0.0, 5),
        &quiet(),
        &no_cancel(),
    )
    .expect("to frames");
    assert_eq!(s.frames, 10);
    assert_eq!(names(&frames), (0..10).map(frame_file_name).collect::<Vec<_>>());
    let video = dir.path().join("back.mov");
    let rate: FrameRate = "12.5".parse().expect("rate");
    let s = run(
        &VideoInput::Frames {
            dir: frames.clone(),
            frame_rate: rate,
        },
        &VideoOutput::File(video.clone()),
        &mut SyntheticColorizer::new(0.0, 5),
        &quiet(),
        &no_cancel(),
    )
    .expect("from frames");
    assert_eq!((s.frames, s.audio), (10, AudioMode::None));
    assert_eq!(ffprobe_counts(&video), (64, 48, "25/2".to_string(), 10, None));
    // Overwriting needs permission; with it, the frame directory is replaced.
    let again = run(
        &VideoInput::File(video.clone()),
        &VideoOutput::Frames(frames.clone()),
        &mut SyntheticColorizer::new(0.0, 5),
        &quiet(),
        &no_cancel(),
    );
    assert!(matches!(again, Err(VideoError::OutputExists { .. })), "{again:?}");
    let opts = VideoOptions {
        overwrite: true,
        max_frames: Some(4),
        ..quiet()
    };
    std::fs::write(frames.join("keep.txt"), "user file").expect("write");
    run(
        &VideoInput::File(video),
        &VideoOutput::Frames(frames.clone()),
        &mut SyntheticColorizer::new(0.0, 5),
        &opts,
        &no_cancel(),
    )
    .expect("overwrite");
    let mut want: Vec<String> = (0..4).map(frame_file_name).collect();
    want.insert(0, "keep.txt".into());
    want.sort();
    assert_eq!(names(&frames), want);
}

#[test]
fn odd_frame_size_works() {
    let tools = require_ffmpeg!("odd_frame_size_works");
    let dir = tempfile::tempdir().expect("tempdir");
    let input = make_clip(
        &tools,
        dir.path(),
        "odd.mp4",
        ClipSpec {
            width: 63,
            height: 47,
            ..ClipSpec::default()
        },
    );
    let out = dir.path().join("out.mp4");
    run_files(
        input.clone(),
        out.clone(),
        &mut SyntheticColorizer::new(4.0, 6),
        &quiet(),
    )
    .expect("run");
    assert_eq!(
        ffprobe_counts(&out),
        (63, 47, "10/1".to_string(), 10, Some("aac".to_string()))
    );
    let padded = dir.path().join("padded.mkv");
    let opts = VideoOptions {
        odd_size: OddSizePolicy::PadToEven,
        ..quiet()
    };
    run_files(input, padded.clone(), &mut SyntheticColorizer::new(4.0, 6), &opts).expect("run");
    let (w, h, _, n, _) = ffprobe_counts(&padded);
    assert_eq!((w, h, n), (64, 48, 10));
}

#[test]
fn audio_is_reencoded_when_the_container_refuses_it() {
    let tools = require_ffmpeg!("audio_is_reencoded_when_the_container_refuses_it");
    let dir = tempfile::tempdir().expect("tempdir");
    let input = make_clip(&tools, dir.path(), "in.mp4", frames(5));
    let out = dir.path().join("out.webm");
    let s = run_files(input, out.clone(), &mut SyntheticColorizer::new(0.0, 8), &quiet()).expect("run");
    assert_eq!(s.audio, AudioMode::Reencoded("libopus".into()));
    let (w, h, _, n, audio) = ffprobe_counts(&out);
    assert_eq!((w, h, n, audio.as_deref()), (64, 48, 5, Some("opus")));
}

#[test]
fn cancellation_stops_cleanly_and_removes_the_partial_output() {
    struct CancelAfterFirst<'a>(&'a AtomicBool, SyntheticColorizer);
    impl FrameColorizer for CancelAfterFirst<'_> {
        fn colorize_batch(&mut self, frames: &[RgbImage]) -> anyhow::Result<Vec<LabImage>> {
            let out = self.1.colorize_batch(frames);
            self.0.store(true, Ordering::SeqCst);
            out
        }
    }
    let tools = require_ffmpeg!("cancellation_stops_cleanly_and_removes_the_partial_output");
    let dir = tempfile::tempdir().expect("tempdir");
    let input = make_clip(&tools, dir.path(), "in.mp4", frames(40));
    let cancel = AtomicBool::new(false);
    let opts = VideoOptions {
        batch_size: 2,
        ..quiet()
    };
    let mut colorizer = CancelAfterFirst(&cancel, SyntheticColorizer::new(0.0, 9));
    let err = run(
        &VideoInput::File(input),
        &VideoOutput::File(dir.path().join("out.mp4")),
        &mut colorizer,
        &opts,
        &cancel,
    )
    .expect_err("cancelled");
    assert!(matches!(err, VideoError::Cancelled), "{err}");
    assert_eq!(names(dir.path()), ["in.mp4"]);
}

#[test]
fn existing_outputs_are_protected() {
    let tools = require_ffmpeg!("existing_outputs_are_protected");
    let dir = tempfile::tempdir().expect("tempdir");
    let input = make_clip(&tools, dir.path(), "in.mp4", frames(3));
    let out = dir.path().join("out.mkv");
    std::fs::write(&out, "precious").expect("write");
    let mut c = SyntheticColorizer::new(0.0, 1);
    let err = run_files(input.clone(), out.clone(), &mut c, &quiet()).expect_err("exists");
    assert!(matches!(err, VideoError::OutputExists { .. }), "{err}");
    let err = run(
        &VideoInput::File(input.clone()),
        &VideoOutput::File(input.clone()),
        &mut c,
        &VideoOptions {
            overwrite: true,
            ..quiet()
        },
        &no_cancel(),
    )
    .expect_err("same file");
    assert!(matches!(err, VideoError::SameFile { .. }), "{err}");
    let err = run_files(input.clone(), dir.path().join("noext"), &mut c, &quiet()).expect_err("no ext");
    assert!(matches!(err, VideoError::UnsupportedOutput { .. }), "{err}");
    run(
        &VideoInput::File(input),
        &VideoOutput::File(out.clone()),
        &mut c,
        &VideoOptions {
            overwrite: true,
            ..quiet()
        },
        &no_cancel(),
    )
    .expect("overwrite");
    assert_eq!(ffprobe_counts(&out).3, 3);
}

#[test]
fn evaluation_reports_lower_flicker_when_stabilised() {
    let tools = require_ffmpeg!("evaluation_reports_lower_flicker_when_stabilised");
    let dir = tempfile::tempdir().expect("tempdir");
    let input = make_clip(&tools, dir.path(), "in.mp4", frames(12));
    let opts = VideoOptions {
        max_frames: Some(10),
        keyframes: super::KeyframeParams::every_frame(),
        ..quiet()
    };
    let r = evaluate(
        &VideoInput::File(input),
        &mut SyntheticColorizer::new(8.0, 11),
        &opts,
        &no_cancel(),
    )
    .expect("evaluate");
    let json = serde_json::to_string_pretty(&r).expect("json");
    eprintln!("{json}");
    assert_eq!(r.frames, 10);
    assert!(r.flicker_stabilized < r.flicker_raw, "{json}");
    assert!(r.flicker_ground_truth < r.flicker_raw, "{json}");
    // Live mode's pattern repeats every other prediction: half the frame-to-frame changes of
    // the noisy colouriser are gone before the stabiliser sees them.
    assert!(r.flicker_carried < r.flicker_stabilized, "{json}");
    for v in [
        r.psnr_gray_db,
        r.psnr_raw_db,
        r.psnr_stabilized_db,
        r.psnr_carried_db,
        r.colorfulness_ground_truth,
        r.colorfulness_raw,
        r.colorfulness_carried,
    ] {
        assert!(v.is_finite() && v > 0.0, "{json}");
    }
}

/// Peak RSS for a short and a long synthetic 854x480 clip. Not for CI (the long clip takes
/// minutes): `cargo test --release peak_rss -- --ignored --nocapture`.
#[test]
#[ignore]
fn peak_rss_short_vs_long_clip() {
    let tools = require_ffmpeg!("peak_rss_short_vs_long_clip");
    let dir = tempfile::tempdir().expect("tempdir");
    for frames in [100u64, 3000] {
        let input = make_clip(
            &tools,
            dir.path(),
            &format!("in{frames}.mp4"),
            ClipSpec {
                width: 854,
                height: 480,
                rate: 25,
                frames,
                audio: true,
                preset: "ultrafast".into(),
            },
        );
        assert!(testing::reset_peak_rss(), "needs Linux /proc/self/clear_refs");
        let base = testing::peak_rss_kib().unwrap_or(0);
        let s = run(
            &VideoInput::File(input),
            &VideoOutput::File(dir.path().join(format!("out{frames}.mp4"))),
            &mut SyntheticColorizer::new(4.0, 1),
            &VideoOptions {
                preset: "ultrafast".into(),
                ..quiet()
            },
            &no_cancel(),
        )
        .expect("run");
        let peak = testing::peak_rss_kib().unwrap_or(0);
        eprintln!(
            "{frames} frames: peak RSS {} MiB (before: {} MiB), {:.1} s",
            peak / 1024,
            base / 1024,
            s.seconds
        );
    }
}
