//! A live run's latest frames, for viewers that come and go (the live page of `tinct serve`).
//!
//! The colour thread of [`run_live`](super::run_live) publishes each frame it writes, the
//! source's gray frame beside the coloured one, as JPEG. Viewers hold a
//! [`tokio::sync::watch`] receiver: each sees the newest frame when it is ready for one, so a
//! slow viewer skips frames rather than queueing them, and nothing is encoded while nobody
//! watches. The running counts are published with every frame and when the run ends.

use std::io::Cursor;
use std::sync::Arc;

use image::codecs::jpeg::JpegEncoder;
use image::{ExtendedColorType, GrayImage, RgbImage};
use serde::Serialize;
use tokio::sync::watch;

/// JPEG quality of the published frames.
const QUALITY: u8 = 80;

/// Where a live run stands.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct FeedStatus {
    /// The source, as `tinct video` names it.
    pub source: String,
    /// `starting` (no frame yet), `live` or `ended`.
    pub state: &'static str,
    /// Why the run ended: `end of stream`, `stalled`, `interrupted`, or an error.
    pub ended: Option<String>,
    pub width: u32,
    pub height: u32,
    /// The source's declared frame rate.
    pub frame_rate: f64,
    pub frames_in: u64,
    pub frames_out: u64,
    pub dropped: u64,
    pub carried: u64,
    pub coloured: u64,
    /// Frames written per second over the last second or so.
    pub fps_out: f64,
    /// From the last frame's arrival to its coloured frame being ready.
    pub latency_ms: f64,
}

/// The newest frame pair and the status.
#[derive(Clone, Debug, Default)]
pub struct FeedFrame {
    /// Counts published frames; 0 before the first.
    pub seq: u64,
    /// The source's frame (gray), JPEG. Empty when nobody watched as it was made.
    pub gray: Arc<Vec<u8>>,
    /// The coloured frame, JPEG. Empty when nobody watched as it was made.
    pub colour: Arc<Vec<u8>>,
    pub status: FeedStatus,
}

/// The publishing side, shared by the live run and the server.
pub struct LiveFeed {
    tx: watch::Sender<FeedFrame>,
}

impl std::fmt::Debug for LiveFeed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveFeed").field("seq", &self.tx.borrow().seq).finish()
    }
}

/// Two feeds are equal only when they are the same feed.
impl PartialEq for LiveFeed {
    fn eq(&self, other: &Self) -> bool {
        std::ptr::eq(self, other)
    }
}
impl Eq for LiveFeed {}

impl LiveFeed {
    /// A feed for `source`, in the `starting` state.
    pub fn new(source: &str) -> LiveFeed {
        let status = FeedStatus {
            source: source.to_string(),
            state: "starting",
            ..FeedStatus::default()
        };
        LiveFeed {
            tx: watch::Sender::new(FeedFrame {
                status,
                ..FeedFrame::default()
            }),
        }
    }

    /// A viewer: sees the newest frame whenever it asks.
    pub fn subscribe(&self) -> watch::Receiver<FeedFrame> {
        self.tx.subscribe()
    }

    /// Whether anyone watches the frames.
    pub fn watched(&self) -> bool {
        self.tx.receiver_count() > 0
    }

    /// The current status.
    pub fn status(&self) -> FeedStatus {
        self.tx.borrow().status.clone()
    }

    /// Publishes `status` with a frame pair (the source's, the coloured one), which is
    /// encoded only while someone watches.
    pub fn publish(&self, frames: Option<(&GrayImage, &RgbImage)>, mut status: FeedStatus) {
        let (gray, colour) = match frames {
            Some((gray, colour)) if self.watched() => {
                let (w, h) = gray.dimensions();
                let (cw, ch) = colour.dimensions();
                (
                    Arc::new(jpeg(gray, w, h, ExtendedColorType::L8)),
                    Arc::new(jpeg(colour, cw, ch, ExtendedColorType::Rgb8)),
                )
            }
            _ => Default::default(),
        };
        status.state = "live";
        self.tx.send_modify(|f| {
            status.source = std::mem::take(&mut f.status.source);
            *f = FeedFrame {
                seq: f.seq + 1,
                gray,
                colour,
                status,
            };
        });
    }

    /// Marks the run ended, for `why`; viewers' streams finish after the last frame.
    pub fn end(&self, why: String) {
        self.tx.send_modify(|f| {
            f.status.state = "ended";
            f.status.ended = Some(why);
        });
    }
}

/// Raw 8-bit pixels of `colour` type as a JPEG.
fn jpeg(pixels: &[u8], width: u32, height: u32, colour: ExtendedColorType) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    // Encoding to memory fails only for sizes JPEG cannot hold (over 65,535 px a side),
    // which a live source does not send; such a frame is published empty.
    let _ = JpegEncoder::new_with_quality(&mut out, QUALITY).encode(pixels, width, height, colour);
    out.into_inner()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_encoded_only_while_watched_and_the_end_is_seen() {
        let feed = LiveFeed::new("udp://x");
        assert_eq!(feed.status().state, "starting");
        let gray = GrayImage::from_pixel(16, 8, image::Luma([100]));
        let colour = RgbImage::from_pixel(16, 8, image::Rgb([200, 40, 10]));
        feed.publish(Some((&gray, &colour)), FeedStatus::default());
        let mut rx = feed.subscribe();
        {
            let f = rx.borrow_and_update();
            assert_eq!((f.seq, f.gray.len(), f.status.state), (1, 0, "live"));
            assert_eq!(f.status.source, "udp://x");
        }
        feed.publish(Some((&gray, &colour)), FeedStatus::default());
        assert!(rx.has_changed().unwrap());
        let f = rx.borrow_and_update().clone();
        assert_eq!(f.seq, 2);
        let back = image::load_from_memory(&f.colour).unwrap().to_rgb8();
        assert_eq!(back.dimensions(), (16, 8));
        let p = back.get_pixel(8, 4).0;
        assert!(p[0] > 180 && p[1] < 70 && p[2] < 40, "{p:?}");
        let g = image::load_from_memory(&f.gray).unwrap();
        assert_eq!(g.color(), image::ColorType::L8);
        feed.end("end of stream".into());
        let f = rx.borrow_and_update();
        assert_eq!(
            (f.status.state, f.status.ended.as_deref()),
            ("ended", Some("end of stream"))
        );
    }
}
