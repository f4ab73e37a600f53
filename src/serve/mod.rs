//! `tinct serve`: an HTTP API and a web page for colourising photos, and `tinct study`: a
//! web page for the human real-vs-fake test.
//!
//! # Endpoints of `tinct serve`
//! | method | path | what |
//! | --- | --- | --- |
//! | GET | `/` | the web page (drop a photo, pick model and method, click colour hints) |
//! | POST | `/api/colorize` | colourise an upload; see [`colorize`](mod@colorize) |
//! | GET | `/api/models` | models, methods, palettes, formats and limits (JSON) |
//! | GET | `/api/openapi.json` | the OpenAPI 3.0 description of the API |
//! | GET | `/healthz` | `ok`, never waiting for inference |
//! | GET | `/live`, `/live/*.mjpg`, `/api/live` | with `--live SOURCE`: the source coloured as it arrives, beside its gray frames; see [`live`](mod@live) |
//!
//! Every error is JSON `{"error": "..."}` with a fitting status: 400 bad option, 404 unknown
//! route, 413 body or image too large, 415 not an image, 422 corrupt
//! image or unusable hints, 503 (with `Retry-After`) when saturated or timed out, 500 for
//! faults of the server (also logged to stderr).
//!
//! # Safety
//! Decoding, inference and encoding run on a bounded [`pool`] of blocking threads, never on
//! the async threads; when its workers and its wait queue are full, requests are refused at
//! once with 503 (load shedding). Uploads stay in memory, bounded by `--max-body-mb`;
//! images are checked against `--max-pixels` from their header before decoding. Clients name
//! models by name only, never by path. The server binds 127.0.0.1 unless told otherwise and
//! shuts down gracefully on Ctrl-C or SIGTERM.

pub mod colorize;
pub mod error;
pub mod live;
pub mod models;
pub mod pool;
pub mod stats;
pub mod study;

#[cfg(test)]
mod tests;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, Result};
use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use clap::Args;

use self::error::ApiError;
use self::models::Registry;
use self::pool::Pool;

/// Options of `tinct serve`.
#[derive(Args, Debug, Clone)]
pub struct ServeArgs {
    /// Default model: a shipped name (photo, anime, drawn), a run folder or a .safetensors
    /// file [default: photo].
    #[arg(long)]
    pub model: Option<String>,
    /// Address to listen on (port 0: any free port; the address is printed).
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub addr: SocketAddr,
    /// Largest request body, in MiB.
    #[arg(long, default_value_t = 25.0)]
    pub max_body_mb: f64,
    /// Largest decoded image, in pixels (width x height), for the image and the reference.
    #[arg(long, default_value_t = 16_777_216)]
    pub max_pixels: u64,
    /// Seconds a colourisation request may take, upload included, before a 503.
    #[arg(long, default_value_t = 60.0)]
    pub timeout_s: f64,
    /// Concurrent colourisations [default: the number of CPU cores, at most 4].
    #[arg(long)]
    pub workers: Option<usize>,
    /// Requests that may wait for a worker; more are refused with 503 at once.
    #[arg(long, default_value_t = 8)]
    pub queue: usize,
    /// cpu (default), or vulkan / wgpu / cuda when built with that feature.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Colour a live source with the default model and show it at /live beside the gray
    /// frames: a camera (/dev/video0), a stream URL ffmpeg reads (udp://, rtsp://, srt://,
    /// http://...), - for standard input, or a file, read at its own frame rate.
    #[arg(long, value_name = "SOURCE")]
    pub live: Option<String>,
    /// Seconds the live source may send nothing before it counts as ended (before its first
    /// frame: an error, shown on the page).
    #[arg(long, default_value_t = 10.0, value_name = "SECONDS")]
    pub live_timeout: f64,
}

/// Request limits.
#[derive(Clone, Debug)]
pub struct Limits {
    pub max_body_bytes: usize,
    pub max_pixels: u64,
    pub timeout: Duration,
}

/// Everything the handlers share.
pub struct App {
    pub registry: Registry,
    pub pool: Pool,
    pub limits: Limits,
    /// The live source (`--live`), not started yet by [`App::from_args`].
    pub live: Option<live::Live>,
}

impl App {
    /// Builds the state from command-line options (no model is loaded yet).
    pub fn from_args(a: &ServeArgs) -> Result<App> {
        if !(a.max_body_mb.is_finite() && a.max_body_mb > 0.0) {
            anyhow::bail!("--max-body-mb must be a positive number");
        }
        if !(a.timeout_s.is_finite() && a.timeout_s > 0.0) {
            anyhow::bail!("--timeout-s must be a positive number");
        }
        let device = crate::device_by_name(&a.device)?;
        let workers = a.workers.unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
                .min(4)
        });
        if workers == 0 {
            anyhow::bail!("--workers must be at least 1");
        }
        if !(a.live_timeout.is_finite() && a.live_timeout > 0.0) {
            anyhow::bail!("--live-timeout must be a positive number of seconds");
        }
        Ok(App {
            registry: Registry::new(a.model.as_deref(), device)?,
            pool: Pool::new(workers, a.queue),
            limits: Limits {
                max_body_bytes: (a.max_body_mb * 1024.0 * 1024.0) as usize,
                max_pixels: a.max_pixels,
                timeout: Duration::from_secs_f64(a.timeout_s),
            },
            live: a
                .live
                .as_deref()
                .map(|s| live::Live::new(s, Duration::from_secs_f64(a.live_timeout))),
        })
    }
}

/// The router of `tinct serve`.
pub fn router(app: Arc<App>) -> Router {
    let api = Router::new()
        .route("/api/colorize", post(colorize::colorize))
        .layer(DefaultBodyLimit::max(app.limits.max_body_bytes))
        .layer(axum::middleware::from_fn_with_state(app.clone(), timeout));
    Router::new()
        .route("/", get(|| async { html(INDEX_HTML) }))
        .route(
            "/assets/app.js",
            get(|| async { asset("text/javascript; charset=utf-8", APP_JS) }),
        )
        .route(
            "/assets/style.css",
            get(|| async { asset("text/css; charset=utf-8", STYLE_CSS) }),
        )
        .route("/live", get(|| async { html(LIVE_HTML) }))
        .route(
            "/assets/live.js",
            get(|| async { asset("text/javascript; charset=utf-8", LIVE_JS) }),
        )
        .route("/live/{view}", get(live::stream))
        .route("/api/live", get(live::status))
        .route("/healthz", get(healthz))
        .route("/api/models", get(models))
        .route(
            "/api/openapi.json",
            get(|| async { asset("application/json", OPENAPI_JSON) }),
        )
        .merge(api)
        .fallback(error::not_found)
        .method_not_allowed_fallback(error::method_not_allowed)
        .with_state(app)
}

/// The web page, script and styles of `tinct serve`, and the OpenAPI document.
const INDEX_HTML: &str = include_str!("assets/index.html");
const APP_JS: &str = include_str!("assets/app.js");
const STYLE_CSS: &str = include_str!("assets/style.css");
const OPENAPI_JSON: &str = include_str!("assets/openapi.json");
const LIVE_HTML: &str = include_str!("assets/live.html");
const LIVE_JS: &str = include_str!("assets/live.js");

/// An embedded HTML page with a strict content security policy (no outside resources).
pub(crate) fn html(body: &'static str) -> Response {
    let mut res = asset("text/html; charset=utf-8", body);
    res.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; img-src 'self' blob: data:; style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'",
        ),
    );
    res
}

/// An embedded file with its content type.
pub(crate) fn asset(content_type: &'static str, body: &'static str) -> Response {
    let mut res = body.into_response();
    let h = res.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    res
}

async fn healthz() -> &'static str {
    "ok"
}

/// `GET /api/models`.
async fn models(State(app): State<Arc<App>>) -> Response {
    let methods = serde_json::json!([
        {"name": "gan", "description": "the GAN generator (the model option picks which)"},
        {"name": "hints", "description": "colour from clicked points (Levin et al. 2004); needs hints"},
        {"name": "palette", "description": "brightness-to-colour gradient; palette option"},
        {"name": "reference", "description": "colour from a reference photo (multipart field 'reference')"},
        {"name": "gray", "description": "no colour (baseline)"},
    ]);
    axum::Json(serde_json::json!({
        "default_model": app.registry.default_name(),
        "models": app.registry.list(),
        "methods": methods,
        "default_method": "gan",
        "palettes": crate::classic::preset_names(),
        "formats": ["png", "jpg", "webp"],
        "live": app.live.as_ref().map(|l| l.source.describe()),
        "limits": {
            "max_body_bytes": app.limits.max_body_bytes,
            "max_pixels": app.limits.max_pixels,
            "timeout_s": app.limits.timeout.as_secs_f64(),
            "workers": app.pool.workers(),
            "queue": app.pool.queue(),
        },
    }))
    .into_response()
}

/// Bounds the time of a request (upload included): 503 with `Retry-After` past the limit.
/// Work already running on the pool finishes (and still counts against the pool's bounds).
async fn timeout(State(app): State<Arc<App>>, req: Request, next: Next) -> Response {
    let limit = app.limits.timeout;
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(res) => res,
        Err(_) => ApiError::unavailable(
            format!("request timed out after {:.0} s (see --timeout-s)", limit.as_secs_f64()),
            app.pool.retry_after_s(),
        )
        .into_response(),
    }
}

/// Runs `tinct serve` until Ctrl-C or SIGTERM.
pub fn run(a: &ServeArgs) -> Result<()> {
    let app = Arc::new(App::from_args(a)?);
    // Load the default model up front: a bad --model fails now, not at the first request.
    match app.registry.get(None) {
        Ok(m) => eprintln!(
            "model '{}' loaded from {} (working size {})",
            app.registry.default_name(),
            m.source,
            m.size()
        ),
        Err(e) => anyhow::bail!("--model {}: {}", app.registry.default_name(), e.message),
    }
    eprintln!(
        "{} workers, queue {}, body limit {} bytes, pixel limit {}, timeout {} s",
        app.pool.workers(),
        app.pool.queue(),
        app.limits.max_body_bytes,
        app.limits.max_pixels,
        app.limits.timeout.as_secs_f64()
    );
    let stop = Arc::new(AtomicBool::new(false));
    let live = match &app.live {
        Some(l) => {
            let model = app.registry.get(None).map_err(|e| anyhow::anyhow!(e.message))?;
            let colorizer = model.colorizer(app.registry.device(), None)?;
            eprintln!("live: colouring {} (page at /live)", l.source.describe());
            Some(l.start(Box::new(colorizer), stop.clone()))
        }
        None => None,
    };
    let stopping = stop.clone();
    let served = serve_blocking(router(app), a.addr, "tinct serve", move || {
        stopping.store(true, Ordering::SeqCst)
    });
    stop.store(true, Ordering::SeqCst);
    if let Some(t) = live {
        let _ = t.join();
    }
    served
}

/// Builds a tokio runtime and serves `router` on `addr` until Ctrl-C or SIGTERM, printing
/// `NAME: listening on http://ADDR` (the bound address, useful with port 0) to stdout.
/// `on_shutdown` runs when the signal arrives, before the requests in flight finish.
pub fn serve_blocking(
    router: Router,
    addr: SocketAddr,
    name: &str,
    on_shutdown: impl FnOnce() + Send + 'static,
) -> Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot listen on {addr}"))?;
        let bound = listener.local_addr()?;
        println!("{name}: listening on http://{bound}");
        use std::io::Write;
        let _ = std::io::stdout().flush();
        axum::serve(listener, router)
            .with_graceful_shutdown(async move {
                shutdown_signal().await;
                on_shutdown();
            })
            .await
            .context("server error")?;
        eprintln!("{name}: stopped");
        Ok(())
    })
}

/// Resolves on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
    eprintln!("shutting down: finishing requests in flight");
}
