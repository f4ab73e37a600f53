//! The live page of `tinct serve --live SOURCE`: a camera or a stream, coloured as it
//! arrives by the live pipeline of `tinct video` ([`crate::video::run_live`]), shown in the
//! browser beside the source's gray frames.
//!
//! | method | path | what |
//! | --- | --- | --- |
//! | GET | `/live` | the page: the gray and the coloured stream side by side, with counts |
//! | GET | `/live/gray.mjpg`, `/live/colour.mjpg` | the two streams, Motion JPEG (`multipart/x-mixed-replace`) |
//! | GET | `/api/live` | the run's status: state, frames in, out, dropped, carried, frames/s, latency (JSON) |
//!
//! A viewer always gets the newest frame: a slow one skips frames rather than queueing them,
//! and while nobody watches no frame is encoded. The streams end after the last frame when
//! the source ends or the server stops.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

use super::App;
use super::error::ApiError;
use crate::pipeline::Colorize;
use crate::video::{FeedFrame, LiveFeed, LiveOptions, LiveSink, LiveSource};

/// The boundary between the parts of a Motion JPEG stream, and the stream's content type.
const BOUNDARY: &str = "tinctframe";
const MJPEG: &str = "multipart/x-mixed-replace; boundary=tinctframe";

/// A live source being coloured for the page.
pub struct Live {
    pub source: LiveSource,
    pub feed: Arc<LiveFeed>,
    pub timeout: Duration,
}

impl Live {
    /// The live source `arg` names: a camera, a stream URL, `-`, or a file (read at its own
    /// frame rate).
    pub fn new(arg: &str, timeout: Duration) -> Live {
        let source = LiveSource::parse(arg).unwrap_or_else(|| LiveSource::File(arg.into()));
        Live {
            feed: Arc::new(LiveFeed::new(&source.describe())),
            source,
            timeout,
        }
    }

    /// Colours the source on a thread of its own until it ends or `stop` is set; the feed
    /// then says why (an error included, which is also printed).
    pub fn start(&self, colorizer: Box<dyn Colorize>, stop: Arc<AtomicBool>) -> JoinHandle<()> {
        let (source, feed) = (self.source.clone(), self.feed.clone());
        let opts = LiveOptions {
            timeout: self.timeout,
            ..LiveOptions::default()
        };
        std::thread::spawn(move || {
            let sink = LiveSink::Page(feed.clone());
            let why = match crate::video::run_live(&source, &sink, colorizer.as_ref(), &opts, &stop) {
                Ok(stats) => stats.ended.to_string(),
                Err(e) if stop.load(Ordering::SeqCst) => format!("interrupted ({e})"),
                Err(e) => {
                    eprintln!("tinct serve: live source {}: {e}", source.describe());
                    format!("error: {e}")
                }
            };
            feed.end(why);
        })
    }
}

/// The feed, or 404 when the server has no live source.
fn feed(app: &App) -> Result<&Arc<LiveFeed>, ApiError> {
    app.live
        .as_ref()
        .map(|l| &l.feed)
        .ok_or_else(|| ApiError::not_found("no live source: start tinct serve with --live SOURCE"))
}

/// `GET /api/live`.
pub async fn status(State(app): State<Arc<App>>) -> Response {
    match feed(&app) {
        Ok(f) => axum::Json(f.status()).into_response(),
        Err(e) => e.into_response(),
    }
}

/// `GET /live/{view}`: `gray.mjpg` or `colour.mjpg`.
pub async fn stream(State(app): State<Arc<App>>, Path(view): Path<String>) -> Response {
    let pick: fn(&FeedFrame) -> Arc<Vec<u8>> = match view.as_str() {
        "gray.mjpg" => |f| f.gray.clone(),
        "colour.mjpg" | "color.mjpg" => |f| f.colour.clone(),
        _ => return ApiError::not_found(format!("no live stream '{view}': gray.mjpg or colour.mjpg")).into_response(),
    };
    let rx = match feed(&app) {
        Ok(f) => f.subscribe(),
        Err(e) => return e.into_response(),
    };
    let parts = futures_util::stream::unfold((rx, 0u64, false), move |(mut rx, last, done)| async move {
        if done {
            return None;
        }
        loop {
            let (jpeg, seq, ended) = {
                let f = rx.borrow_and_update();
                (pick(&f), f.seq, f.status.state == "ended")
            };
            if seq != last && !jpeg.is_empty() {
                return Some((Ok::<_, Infallible>(part(&jpeg)), (rx, seq, ended)));
            }
            if ended || rx.changed().await.is_err() {
                return None;
            }
        }
    });
    let mut res = Body::from_stream(parts).into_response();
    let h = res.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(MJPEG));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache, no-store"));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    res
}

/// One part of a Motion JPEG stream.
fn part(jpeg: &[u8]) -> Bytes {
    let head = format!(
        "--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {}\r\n\r\n",
        jpeg.len()
    );
    let mut out = Vec::with_capacity(head.len() + jpeg.len() + 2);
    out.extend(head.as_bytes());
    out.extend(jpeg);
    out.extend(b"\r\n");
    Bytes::from(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_carry_the_boundary_and_length() {
        let p = part(&[1, 2, 3]);
        assert_eq!(
            &p[..],
            b"--tinctframe\r\nContent-Type: image/jpeg\r\nContent-Length: 3\r\n\r\n\x01\x02\x03\r\n"
        );
        assert!(MJPEG.ends_with(BOUNDARY));
    }
}
