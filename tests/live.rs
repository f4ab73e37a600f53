//! End-to-end tests of live colour (`tinct video SOURCE`): standard input, a UDP stream that
//! never starts or stops mid-way, a missing camera. The streams are made by ffmpeg in the test.

mod common;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use common::{have_ffmpeg, stderr, tinct, tinct_cmd};

/// `ffmpeg ARGS` writing to its stdout.
fn ffmpeg_bytes(args: &[&str]) -> Vec<u8> {
    let o = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error"])
        .args(args)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    o.stdout
}

/// Frames of a video file, counted by decoding it.
fn frames_of(path: &Path) -> u64 {
    let o = Command::new("ffprobe")
        .args(["-v", "error", "-count_frames", "-select_streams", "v:0"])
        .args(["-show_entries", "stream=nb_read_frames", "-of", "csv=p=0"])
        .arg(path)
        .output()
        .unwrap();
    String::from_utf8_lossy(&o.stdout).trim().parse().unwrap_or(0)
}

fn stats(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// A UDP port nobody is using right now.
fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Standard input, every frame coloured (--no-live), into a playable file; in live mode the
/// same burst of frames (far faster than real time) is thinned by dropping, and every frame
/// read is either written or counted as dropped.
#[test]
fn standard_input_is_coloured_into_a_playable_file() {
    if !have_ffmpeg("standard_input_is_coloured_into_a_playable_file") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let y4m = ffmpeg_bytes(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc=size=96x64:rate=25",
        "-t",
        "1.2",
        "-pix_fmt",
        "yuv420p",
        "-f",
        "yuv4mpegpipe",
        "pipe:1",
    ]);
    for (mode, name) in [("--no-live", "all.mkv"), ("--live", "live.mkv")] {
        let out = tmp.path().join(name);
        let st = tmp.path().join(format!("{name}.json"));
        let mut child = tinct_cmd(&[
            "video",
            "-",
            "-o",
            out.to_str().unwrap(),
            "-q",
            mode,
            "--stats",
            st.to_str().unwrap(),
        ])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
        child.stdin.take().unwrap().write_all(&y4m).unwrap();
        let o = child.wait_with_output().unwrap();
        assert!(o.status.success(), "{mode}: {}", stderr(&o));
        let s = stats(&st);
        assert_eq!(s["frames_in"], 30, "{s}");
        assert_eq!(s["ended"], "end of stream");
        let (out_n, dropped) = (s["frames_out"].as_u64().unwrap(), s["dropped"].as_u64().unwrap());
        assert_eq!(out_n + dropped, 30, "{s}");
        assert_eq!(frames_of(&out), out_n, "{s}");
        assert_eq!(
            s["coloured"].as_u64().unwrap() + s["carried"].as_u64().unwrap(),
            out_n,
            "{s}"
        );
        if mode == "--no-live" {
            // Every frame is written; those between key frames carry a key frame's colour.
            assert_eq!((out_n, dropped), (30, 0), "{s}");
            assert!(s["coloured"].as_u64().unwrap() >= 30 / 4, "{s}");
        }
        let names: Vec<String> = std::fs::read_dir(tmp.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(!names.iter().any(|n| n.contains("partial")), "{names:?}");
    }
}

/// A stream that never starts is an error after the timeout, and leaves no output; a camera
/// that does not exist is an error at once.
#[test]
fn a_silent_stream_or_a_missing_camera_is_a_clear_error() {
    if !have_ffmpeg("a_silent_stream_or_a_missing_camera_is_a_clear_error") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("never.mp4");
    let url = format!("udp://127.0.0.1:{}", free_udp_port());
    let t0 = std::time::Instant::now();
    let o = tinct(&["video", &url, "-o", out.to_str().unwrap(), "--timeout", "1"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("no video arrived within 1 s") && stderr(&o).contains(&url),
        "{}",
        stderr(&o)
    );
    assert_eq!(stderr(&o).trim().lines().count(), 1, "{}", stderr(&o));
    assert!(t0.elapsed().as_secs_f64() < 20.0);
    assert!(
        std::fs::read_dir(tmp.path()).unwrap().next().is_none(),
        "something was written"
    );
    let o = tinct(&["video", "/dev/video97", "-o", out.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("/dev/video97") && stderr(&o).contains("does not exist"),
        "{}",
        stderr(&o)
    );
}

/// A UDP stream pushed at real-time rate that stops mid-way: tinct finishes a playable file
/// with what arrived, and says the stream stalled.
#[test]
fn a_stream_that_stops_leaves_a_finished_file() {
    if !have_ffmpeg("a_stream_that_stops_leaves_a_finished_file") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let (out, st) = (tmp.path().join("cut.mp4"), tmp.path().join("s.json"));
    let url = format!("udp://127.0.0.1:{}", free_udp_port());
    let rx = tinct_cmd(&[
        "video",
        &url,
        "-o",
        out.to_str().unwrap(),
        "-q",
        "--timeout",
        "3",
        "--stats",
        st.to_str().unwrap(),
    ])
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(700));
    let sent = Command::new("ffmpeg")
        .args([
            "-nostdin",
            "-v",
            "error",
            "-re",
            "-f",
            "lavfi",
            "-i",
            "testsrc=size=128x96:rate=25",
            "-t",
            "2",
        ])
        .args([
            "-c:v",
            "libx264",
            "-tune",
            "zerolatency",
            "-g",
            "10",
            "-pix_fmt",
            "yuv420p",
            "-f",
            "mpegts",
        ])
        .arg(format!("{url}?pkt_size=1316"))
        .status()
        .unwrap();
    assert!(sent.success());
    let o = rx.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let s = stats(&st);
    assert_eq!(s["ended"], "stalled", "{s}");
    let n = s["frames_out"].as_u64().unwrap();
    assert!(n >= 10, "only {n} frames of 50 came through: {s}");
    assert_eq!(frames_of(&out), n);
    assert!(s["latency_ms_p99"].as_f64().unwrap() > 0.0);
}
