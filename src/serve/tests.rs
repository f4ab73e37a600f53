//! Router tests: requests go through the whole stack (limits, time-out, pool) with
//! `tower::ServiceExt::oneshot`, against a tiny untrained generator.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use image::{DynamicImage, GenericImageView, ImageFormat, Rgb, RgbImage};
use tower::ServiceExt;

use super::study::{StudyArgs, StudyMode};
use super::*;

/// A tiny untrained generator (32 px, ngf 4) in a temporary folder.
fn tiny_model() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tiny.safetensors");
    let cfg = crate::model::ModelConfig::unet_for_size(32, 4);
    let g = cfg.init(&burn::prelude::Device::flex());
    crate::model::store::save_generator(&g, &cfg, &path).unwrap();
    (dir, path)
}

fn args(model: &std::path::Path) -> ServeArgs {
    ServeArgs {
        model: Some(model.display().to_string()),
        addr: "127.0.0.1:0".parse().unwrap(),
        max_body_mb: 1.0,
        max_pixels: 1_000_000,
        timeout_s: 30.0,
        workers: Some(2),
        queue: 2,
        device: "cpu".into(),
        live: None,
        live_timeout: 10.0,
    }
}

fn app_with(a: &ServeArgs) -> Router {
    router(Arc::new(App::from_args(a).unwrap()))
}

/// A gray gradient (a B&W photo stored as RGB).
fn gray_image(w: u32, h: u32) -> RgbImage {
    RgbImage::from_fn(w, h, |x, y| {
        let v = ((x * 7 + y * 3) % 256) as u8;
        Rgb([v, v, v])
    })
}

fn encoded(img: &RgbImage, format: ImageFormat) -> Vec<u8> {
    let mut buf = std::io::Cursor::new(Vec::new());
    img.write_to(&mut buf, format).unwrap();
    buf.into_inner()
}

async fn send(app: &Router, req: Request<Body>) -> (StatusCode, axum::http::HeaderMap, Vec<u8>) {
    let res = app.clone().oneshot(req).await.unwrap();
    let status = res.status();
    let headers = res.headers().clone();
    let body = axum::body::to_bytes(res.into_body(), usize::MAX).await.unwrap();
    (status, headers, body.to_vec())
}

fn post_raw(uri: &str, body: Vec<u8>) -> Request<Body> {
    Request::post(uri)
        .header(header::CONTENT_TYPE, "application/octet-stream")
        .header(header::CONTENT_LENGTH, body.len())
        .body(Body::from(body))
        .unwrap()
}

/// A multipart/form-data request with file fields (name, bytes) and text fields.
fn post_multipart(files: &[(&str, &[u8])], fields: &[(&str, &str)]) -> Request<Body> {
    let boundary = "tinct-test-boundary-7d3f";
    let mut body = Vec::new();
    for (name, bytes) in files {
        body.extend(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"; filename=\"{name}.png\"\r\nContent-Type: image/png\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(bytes);
        body.extend(b"\r\n");
    }
    for (name, value) in fields {
        body.extend(
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n").as_bytes(),
        );
    }
    body.extend(format!("--{boundary}--\r\n").as_bytes());
    Request::post("/api/colorize")
        .header(
            header::CONTENT_TYPE,
            format!("multipart/form-data; boundary={boundary}"),
        )
        .body(Body::from(body))
        .unwrap()
}

fn json_error(status: StatusCode, headers: &axum::http::HeaderMap, body: &[u8]) -> String {
    assert_eq!(
        headers.get(header::CONTENT_TYPE).unwrap(),
        "application/json",
        "status {status}"
    );
    let v: serde_json::Value = serde_json::from_slice(body).unwrap();
    v["error"].as_str().expect("an error message").to_string()
}

/// Mean chroma (sqrt(a² + b²)) of an image.
fn mean_chroma(img: &DynamicImage) -> f32 {
    let lab = crate::color::LabImage::from_rgb8(&img.to_rgb8());
    lab.a
        .iter()
        .zip(&lab.b)
        .map(|(a, b)| (a * a + b * b).sqrt())
        .sum::<f32>()
        / lab.a.len() as f32
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_valid_image_comes_back_coloured_at_its_size() {
    let (_dir, model) = tiny_model();
    let app = app_with(&args(&model));
    let input = encoded(&gray_image(45, 30), ImageFormat::Png);
    let (status, headers, body) = send(&app, post_raw("/api/colorize", input.clone())).await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    assert_eq!(headers.get(header::CONTENT_TYPE).unwrap(), "image/png");
    assert_eq!(headers.get("x-tinct-method").unwrap(), "gan:tiny");
    let out = image::load_from_memory(&body).unwrap();
    assert_eq!(out.dimensions(), (45, 30));

    // Query options, other formats, a working size.
    // The method header names the settings that changed the model's output.
    for (q, ct, fmt, label) in [
        (
            "format=jpg&size=64&fit=pad",
            "image/jpeg",
            ImageFormat::Jpeg,
            "gan:tiny",
        ),
        ("format=webp&model=tiny", "image/webp", ImageFormat::WebP, "gan:tiny"),
        ("saturation=1.5", "image/png", ImageFormat::Png, "gan:tiny+sat1.5"),
    ] {
        let (status, headers, body) = send(&app, post_raw(&format!("/api/colorize?{q}"), input.clone())).await;
        assert_eq!(status, StatusCode::OK, "{q}: {}", String::from_utf8_lossy(&body));
        assert_eq!(headers.get(header::CONTENT_TYPE).unwrap(), ct);
        assert_eq!(headers.get("x-tinct-method").unwrap(), label, "{q}");
        assert_eq!(
            image::load_from_memory_with_format(&body, fmt).unwrap().dimensions(),
            (45, 30)
        );
    }

    // Saturation 0 takes the GAN's colour away.
    let (status, _, body) = send(&app, post_raw("/api/colorize?saturation=0", input.clone())).await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    assert!(mean_chroma(&image::load_from_memory(&body).unwrap()) < 1.0);

    // Multipart, palette: clearly coloured; the lightness is the input's.
    let (status, headers, body) = send(
        &app,
        post_multipart(&[("image", &input)], &[("method", "palette"), ("palette", "sunset")]),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    assert_eq!(headers.get("x-tinct-method").unwrap(), "palette:sunset");
    let out = image::load_from_memory(&body).unwrap();
    assert_eq!(out.dimensions(), (45, 30));
    assert!(mean_chroma(&out) > 10.0, "chroma {}", mean_chroma(&out));

    // Hints: the hinted colour spreads.
    let hints = r##"{"points":[{"x":5,"y":5,"color":"#ff0000","radius":2},{"x":40,"y":25,"color":"#0000ff"}]}"##;
    let (status, _, body) = send(
        &app,
        post_multipart(&[("image", &input)], &[("method", "hints"), ("hints", hints)]),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    assert!(mean_chroma(&image::load_from_memory(&body).unwrap()) > 10.0);

    // Reference and gray.
    let reference = encoded(
        &RgbImage::from_fn(20, 20, |x, _| Rgb([200, (x * 10) as u8, 40])),
        ImageFormat::Png,
    );
    let (status, _, body) = send(
        &app,
        post_multipart(
            &[("image", &input), ("reference", &reference)],
            &[("method", "reference")],
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    let (status, _, body) = send(&app, post_raw("/api/colorize?method=gray", input.clone())).await;
    assert_eq!(status, StatusCode::OK);
    assert!(mean_chroma(&image::load_from_memory(&body).unwrap()) < 1.0);

    // Transparency comes back in PNG and WebP replies.
    let rgba = image::RgbaImage::from_fn(12, 9, |x, y| image::Rgba([90, 90, 90, (x * 20 + y) as u8]));
    let mut upload = Vec::new();
    rgba.write_to(&mut std::io::Cursor::new(&mut upload), ImageFormat::Png)
        .unwrap();
    for q in ["format=png", "format=webp"] {
        let (status, _, body) = send(&app, post_raw(&format!("/api/colorize?{q}"), upload.clone())).await;
        assert_eq!(status, StatusCode::OK, "{q}: {}", String::from_utf8_lossy(&body));
        let alpha: Vec<u8> = image::load_from_memory(&body)
            .unwrap()
            .to_rgba8()
            .pixels()
            .map(|p| p.0[3])
            .collect();
        assert_eq!(alpha, rgba.pixels().map(|p| p.0[3]).collect::<Vec<_>>(), "{q}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_uploads_get_json_errors() {
    let (_dir, model) = tiny_model();
    let mut a = args(&model);
    a.max_pixels = 2_000;
    let app = app_with(&a);
    let png = encoded(&gray_image(40, 40), ImageFormat::Png);

    let cases: Vec<(&str, Request<Body>, StatusCode, &str)> = vec![
        (
            "not an image",
            post_raw("/api/colorize", b"hello, this is text".to_vec()),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "not an image",
        ),
        (
            "truncated",
            post_raw("/api/colorize", png[..png.len() / 2].to_vec()),
            StatusCode::UNPROCESSABLE_ENTITY,
            "image",
        ),
        (
            "empty",
            post_raw("/api/colorize", Vec::new()),
            StatusCode::BAD_REQUEST,
            "no image",
        ),
        (
            "too many pixels",
            post_raw("/api/colorize", encoded(&gray_image(50, 50), ImageFormat::Png)),
            StatusCode::PAYLOAD_TOO_LARGE,
            "too large",
        ),
        (
            "unknown model",
            post_raw("/api/colorize?model=nope", png.clone()),
            StatusCode::BAD_REQUEST,
            "unknown model 'nope'",
        ),
        (
            "model path",
            post_raw("/api/colorize?model=/etc/passwd", png.clone()),
            StatusCode::BAD_REQUEST,
            "unknown model",
        ),
        (
            "unknown option",
            post_raw("/api/colorize?colour=red", png.clone()),
            StatusCode::BAD_REQUEST,
            "unknown option",
        ),
        (
            "bad saturation",
            post_raw("/api/colorize?saturation=9", png.clone()),
            StatusCode::BAD_REQUEST,
            "invalid saturation 9",
        ),
        (
            "temperature, an option classifying models had",
            post_raw("/api/colorize?temperature=0.3", png.clone()),
            StatusCode::BAD_REQUEST,
            "unknown option 'temperature'",
        ),
        (
            "bad method",
            post_raw("/api/colorize?method=magic", png.clone()),
            StatusCode::BAD_REQUEST,
            "invalid method",
        ),
        (
            "bad size",
            post_raw("/api/colorize?size=99999", png.clone()),
            StatusCode::BAD_REQUEST,
            "invalid size",
        ),
        (
            "hints missing",
            post_raw("/api/colorize?method=hints", png.clone()),
            StatusCode::BAD_REQUEST,
            "needs hint points",
        ),
        (
            "bad hints json",
            post_raw("/api/colorize?method=hints&hints=%7Bx", png.clone()),
            StatusCode::BAD_REQUEST,
            "hints JSON",
        ),
        (
            "hint outside",
            post_multipart(
                &[("image", &png)],
                &[
                    ("method", "hints"),
                    ("hints", r##"{"points":[{"x":400,"y":1,"color":"#f00"}]}"##),
                ],
            ),
            StatusCode::UNPROCESSABLE_ENTITY,
            "outside",
        ),
        (
            "no reference",
            post_raw("/api/colorize?method=reference", png.clone()),
            StatusCode::BAD_REQUEST,
            "reference",
        ),
        (
            "unknown palette",
            post_raw("/api/colorize?method=palette&palette=/etc/passwd", png.clone()),
            StatusCode::BAD_REQUEST,
            "unknown palette",
        ),
        (
            "multipart without image",
            post_multipart(&[], &[("method", "gray")]),
            StatusCode::BAD_REQUEST,
            "no field 'image'",
        ),
        (
            "broken multipart",
            Request::post("/api/colorize")
                .header(header::CONTENT_TYPE, "multipart/form-data; boundary=x")
                .body(Body::from("garbage"))
                .unwrap(),
            StatusCode::BAD_REQUEST,
            "multipart",
        ),
    ];
    for (what, req, want, needle) in cases {
        let (status, headers, body) = send(&app, req).await;
        assert_eq!(status, want, "{what}: {}", String::from_utf8_lossy(&body));
        let msg = json_error(status, &headers, &body);
        assert!(msg.contains(needle), "{what}: {msg}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_over_the_limit_is_413() {
    let (_dir, model) = tiny_model();
    let mut a = args(&model);
    a.max_body_mb = 0.01; // 10 KiB
    let app = app_with(&a);
    let big = vec![0u8; 64 * 1024];
    // Declared length.
    let (status, headers, body) = send(&app, post_raw("/api/colorize", big.clone())).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(json_error(status, &headers, &body).contains("too large"));
    // No declared length (streamed).
    let stream = futures_stream(big.clone());
    let req = Request::post("/api/colorize").body(Body::from_stream(stream)).unwrap();
    let (status, headers, body) = send(&app, req).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    json_error(status, &headers, &body);
    // Multipart.
    let (status, headers, body) = send(&app, post_multipart(&[("image", &big)], &[])).await;
    assert_eq!(
        status,
        StatusCode::PAYLOAD_TOO_LARGE,
        "{}",
        String::from_utf8_lossy(&body)
    );
    json_error(status, &headers, &body);
}

/// A body in 4 KiB chunks with no length.
fn futures_stream(bytes: Vec<u8>) -> impl futures_core::Stream<Item = Result<Vec<u8>, std::io::Error>> + Send {
    struct Chunks(Vec<u8>);
    impl futures_core::Stream for Chunks {
        type Item = Result<Vec<u8>, std::io::Error>;
        fn poll_next(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<Self::Item>> {
            if self.0.is_empty() {
                return std::task::Poll::Ready(None);
            }
            let n = self.0.len().min(4096);
            let chunk: Vec<u8> = self.0.drain(..n).collect();
            std::task::Poll::Ready(Some(Ok(chunk)))
        }
    }
    Chunks(bytes)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_is_served_or_shed_and_health_stays_fast() {
    let (_dir, model) = tiny_model();
    let mut a = args(&model);
    a.workers = Some(2);
    a.queue = 1;
    let app = app_with(&a);
    let input = encoded(&gray_image(500, 400), ImageFormat::Png);
    let mut tasks = Vec::new();
    for i in 0..16 {
        let app = app.clone();
        let input = input.clone();
        // Half GAN, half Levin hints (slower), so the pool fills up.
        let uri = if i % 2 == 0 {
            "/api/colorize".to_string()
        } else {
            "/api/colorize?method=hints&hints=%7B%22points%22%3A%5B%7B%22x%22%3A3%2C%22y%22%3A3%2C%22color%22%3A%22%23f00%22%7D%5D%7D".to_string()
        };
        tasks.push(tokio::spawn(async move { send(&app, post_raw(&uri, input)).await }));
    }
    // /healthz answers while the burst is in flight.
    let t = Instant::now();
    let (status, _, body) = send(&app, Request::get("/healthz").body(Body::empty()).unwrap()).await;
    assert_eq!((status, body.as_slice()), (StatusCode::OK, b"ok".as_slice()));
    assert!(t.elapsed() < Duration::from_secs(2), "healthz took {:?}", t.elapsed());
    let (mut ok, mut shed) = (0, 0);
    for task in tasks {
        let (status, headers, body) = task.await.unwrap();
        match status {
            StatusCode::OK => {
                ok += 1;
                assert_eq!(image::load_from_memory(&body).unwrap().dimensions(), (500, 400));
            }
            StatusCode::SERVICE_UNAVAILABLE => {
                shed += 1;
                assert!(headers.get(header::RETRY_AFTER).is_some());
                assert!(json_error(status, &headers, &body).contains("busy"));
            }
            other => panic!("unexpected status {other}: {}", String::from_utf8_lossy(&body)),
        }
    }
    assert!(ok >= 1, "no request was served");
    assert_eq!(ok + shed, 16);
    eprintln!("burst: {ok} served, {shed} shed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_request_times_out_with_503() {
    let (_dir, model) = tiny_model();
    let mut a = args(&model);
    a.timeout_s = 0.001;
    let app = app_with(&a);
    let input = encoded(&gray_image(600, 400), ImageFormat::Png);
    let (status, headers, body) = send(&app, post_raw("/api/colorize?method=hints&hints=%7B%22points%22%3A%5B%7B%22x%22%3A3%2C%22y%22%3A3%2C%22color%22%3A%22%23f00%22%7D%5D%7D", input)).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(headers.get(header::RETRY_AFTER).is_some());
    assert!(json_error(status, &headers, &body).contains("timed out"));
    // Health and metadata are not subject to the time-out.
    let (status, _, _) = send(&app, Request::get("/healthz").body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn models_openapi_and_fallbacks() {
    let (_dir, model) = tiny_model();
    let app = app_with(&args(&model));
    let (status, _, body) = send(&app, Request::get("/api/models").body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["default_model"], "tiny");
    assert!(
        v["models"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["name"] == "tiny" && m["default"] == true)
    );
    assert_eq!(v["methods"].as_array().unwrap().len(), 5);
    assert_eq!(v["limits"]["workers"], 2);

    let (status, headers, body) = send(&app, Request::get("/api/openapi.json").body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers.get(header::CONTENT_TYPE).unwrap(), "application/json");
    let doc: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.0"));
    let paths: Vec<&String> = doc["paths"].as_object().unwrap().keys().collect();
    assert_eq!(paths.len(), 5);
    for p in paths {
        let method = doc["paths"][p]
            .as_object()
            .unwrap()
            .keys()
            .next()
            .unwrap()
            .to_uppercase();
        let req = Request::builder()
            .method(method.as_str())
            .uri(p.as_str())
            .body(Body::empty())
            .unwrap();
        let (status, _, body) = send(&app, req).await;
        // Without --live, /api/live answers its own 404, not the unknown-route one.
        let own_404 = String::from_utf8_lossy(&body).contains("no live source");
        assert!(
            status != StatusCode::NOT_FOUND || own_404,
            "{method} {p} is documented but not routed"
        );
    }
    // Every documented method is one the server knows.
    let methods = &doc["components"]["schemas"]["Method"]["enum"];
    assert_eq!(methods.as_array().unwrap().len(), 5);

    let (status, headers, body) = send(&app, Request::get("/").body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    assert!(headers.get(header::CONTENT_SECURITY_POLICY).is_some());
    assert!(String::from_utf8_lossy(&body).contains("/assets/app.js"));
    for asset in ["/assets/app.js", "/assets/style.css"] {
        let (status, _, _) = send(&app, Request::get(asset).body(Body::empty()).unwrap()).await;
        assert_eq!(status, StatusCode::OK, "{asset}");
    }

    let (status, headers, body) = send(&app, Request::get("/nope").body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    json_error(status, &headers, &body);
    let (status, headers, body) = send(&app, Request::get("/api/colorize").body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    json_error(status, &headers, &body);
}

#[test]
fn a_bad_model_path_fails_at_startup() {
    let mut a = args(std::path::Path::new("/no/such/model.safetensors"));
    a.model = Some("/no/such/model.safetensors".into());
    assert!(App::from_args(&a).is_err());
}

// ---------------------------------------------------------------------------------------
// Study

fn study_dirs(root: &std::path::Path, n: u32) -> (PathBuf, PathBuf, PathBuf) {
    let (real, gan, gray) = (root.join("real"), root.join("gan"), root.join("gray"));
    for d in [&real, &gan, &gray] {
        std::fs::create_dir_all(d).unwrap();
    }
    for i in 0..n {
        let img = RgbImage::from_fn(24, 16, |x, y| Rgb([(x * 10) as u8, (y * 15) as u8, (i * 40) as u8]));
        img.save(real.join(format!("p{i}.jpg"))).unwrap();
        img.save(gan.join(format!("p{i}.png"))).unwrap();
        DynamicImage::ImageRgb8(img)
            .grayscale()
            .to_rgb8()
            .save(gray.join(format!("p{i}.png")))
            .unwrap();
    }
    (real, gan, gray)
}

fn study_args(dirs: Vec<PathBuf>, results: PathBuf, mode: StudyMode, set_size: usize) -> StudyArgs {
    StudyArgs {
        dirs,
        addr: "127.0.0.1:0".parse().unwrap(),
        results,
        set_size,
        mode,
        summary: false,
        display_size: 512,
        seed: Some(7),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn study_answers_are_appended_to_the_csv() {
    let tmp = tempfile::tempdir().unwrap();
    let (real, gan, gray) = study_dirs(tmp.path(), 4);
    let results = tmp.path().join("out/results.csv");
    for (mode, set_size) in [(StudyMode::TwoAfc, 2), (StudyMode::Sets, 3)] {
        let study = Arc::new(
            study::Study::open(&study_args(
                vec![real.clone(), gan.clone(), gray.clone()],
                results.clone(),
                mode,
                set_size,
            ))
            .unwrap(),
        );
        let app = study::router(study);
        let before = std::fs::read_to_string(&results).unwrap().lines().count();

        let (status, _, body) = send(
            &app,
            Request::get("/api/study/trial?participant=alice")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
        let t: serde_json::Value = serde_json::from_slice(&body).unwrap();
        let images = t["images"].as_array().unwrap();
        assert_eq!(images.len(), set_size);
        for url in images {
            let (status, headers, body) =
                send(&app, Request::get(url.as_str().unwrap()).body(Body::empty()).unwrap()).await;
            assert_eq!(status, StatusCode::OK);
            assert_eq!(headers.get(header::CONTENT_TYPE).unwrap(), "image/png");
            assert_eq!(image::load_from_memory(&body).unwrap().dimensions(), (24, 16));
        }
        let answer = serde_json::json!({"trial": t["trial"], "choice": 1, "response_ms": 1234}).to_string();
        let post = |body: String| {
            Request::post("/api/study/answer")
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(body))
                .unwrap()
        };
        let (status, _, body) = send(&app, post(answer.clone())).await;
        assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
        let r: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(r["recorded"], true);

        let csv = std::fs::read_to_string(&results).unwrap();
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(lines[0], study::CSV_HEADER);
        assert_eq!(lines.len(), before.max(1) + 1, "{csv}");
        let f = super::stats::split_csv_line(lines.last().unwrap());
        assert_eq!(f.len(), 11, "{f:?}");
        assert_eq!(f[1], "alice");
        assert_eq!(f[2], mode.name());
        assert_eq!(f[3], set_size.to_string());
        assert!(f[4] == "gan" || f[4] == "gray", "{f:?}");
        assert_eq!(f[7], "1");
        assert_eq!(f[9], if f[8] == "real" { "1" } else { "0" });
        assert_eq!(f[10], "1234");
        assert_eq!(f[6].split(';').count(), set_size);

        // A trial is answered once; bad input is a JSON error.
        let (status, headers, body) = send(&app, post(answer)).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        json_error(status, &headers, &body);
        let (status, headers, body) = send(&app, post("{\"trial\": 3}".into())).await;
        assert!(status.is_client_error());
        json_error(status, &headers, &body);
        let (status, _, _) = send(
            &app,
            Request::get("/api/study/trial?participant=bad%20id")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
    }
    // The summary reads what was written.
    let summary = super::stats::summary_of_file(&results).unwrap();
    assert!(summary.contains("2afc") && summary.contains("sets"), "{summary}");
}

#[test]
fn study_rejects_unusable_folders() {
    let tmp = tempfile::tempdir().unwrap();
    let (real, gan, _) = study_dirs(tmp.path(), 3);
    let results = tmp.path().join("r.csv");
    // Sets of 10 need 9 fakes; there are 3.
    assert!(
        study::Study::open(&study_args(
            vec![real.clone(), gan.clone()],
            results.clone(),
            StudyMode::Sets,
            10
        ))
        .is_err()
    );
    assert!(study::Study::open(&study_args(vec![real.clone()], results.clone(), StudyMode::TwoAfc, 2)).is_err());
    // A results file that is something else is not appended to.
    std::fs::write(&results, "name,age\n").unwrap();
    assert!(study::Study::open(&study_args(vec![real, gan], results, StudyMode::TwoAfc, 2)).is_err());
}

/// Without --live the live routes answer a JSON 404; with it, the status shows the run and a
/// viewer's Motion JPEG stream carries each published frame and ends with the run.
#[tokio::test]
async fn the_live_page_streams_published_frames_until_the_run_ends() {
    let (_dir, model) = tiny_model();
    let app = app_with(&args(&model));
    for uri in ["/api/live", "/live/colour.mjpg"] {
        let (status, _, body) = send(&app, Request::get(uri).body(Body::empty()).unwrap()).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{uri}");
        assert!(String::from_utf8_lossy(&body).contains("--live"), "{uri}");
    }

    let mut a = args(&model);
    a.live = Some("udp://127.0.0.1:9".into());
    let state = Arc::new(App::from_args(&a).unwrap());
    let feed = state.live.as_ref().unwrap().feed.clone();
    let app = router(state);
    let (status, _, body) = send(&app, Request::get("/api/live").body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        (v["state"].as_str(), v["source"].as_str()),
        (Some("starting"), Some("udp://127.0.0.1:9"))
    );
    let (status, _, _) = send(&app, Request::get("/live/sepia.mjpg").body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // The handler subscribes as it answers; the body follows the feed.
    let res = app
        .clone()
        .oneshot(Request::get("/live/colour.mjpg").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(
        res.headers().get(header::CONTENT_TYPE).unwrap(),
        "multipart/x-mixed-replace; boundary=tinctframe"
    );
    let gray = image::GrayImage::from_pixel(8, 6, image::Luma([90]));
    let colour = RgbImage::from_pixel(8, 6, Rgb([30, 90, 200]));
    feed.publish(Some((&gray, &colour)), crate::video::FeedStatus::default());
    feed.end("end of stream".into());
    let body = axum::body::to_bytes(res.into_body(), 1 << 20).await.unwrap();
    let head = b"--tinctframe\r\nContent-Type: image/jpeg\r\nContent-Length: ";
    assert!(body.starts_with(head), "{:?}", &body[..40.min(body.len())]);
    let rest = &body[head.len()..];
    let eol = rest.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let len: usize = std::str::from_utf8(&rest[..eol]).unwrap().parse().unwrap();
    let jpeg = &rest[eol + 4..eol + 4 + len];
    assert_eq!(&rest[eol + 4 + len..], b"\r\n", "one frame, then the end");
    let img = image::load_from_memory(jpeg).unwrap().to_rgb8();
    assert_eq!(img.dimensions(), (8, 6));
    assert!(img.get_pixel(4, 3).0[2] > 150);
    let (_, _, body) = send(&app, Request::get("/api/live").body(Body::empty()).unwrap()).await;
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        (v["state"].as_str(), v["ended"].as_str()),
        (Some("ended"), Some("end of stream"))
    );
}
