//! Key frames: the network colours a frame only when the picture has moved on from the last
//! frame it coloured; in between, that frame's colour is carried onto each new frame's own L.
//!
//! A frame is a key frame when it is the first, when `every` frames have passed since the
//! last key frame, or when its L differs from the key frame's L by more than `max_dl` on
//! average (mean |ΔL| in L* units over the frame):
//!
//! ```text
//! key(t) = first  or  t - key >= every  or  mean_i |L_t[i] - L_key[i]| > max_dl
//! ab_t   = ab_key                         (when t is not a key frame)
//! ```
//!
//! While L stays close to the key frame's, its colour still fits the picture; the
//! stabiliser then smooths the step at the next key frame. On a still shot this runs the
//! network once every `every` frames and leaves no frame-to-frame flicker between key frames;
//! on a pan or fast motion the L test makes key frames as often as every frame.

use rayon::prelude::*;
use serde::Serialize;

use crate::color::LabImage;

/// When a frame goes through the network; see the module docs.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct KeyframeParams {
    /// Most frames from one key frame to the next; 1 colours every frame. Default 4.
    pub every: u32,
    /// Largest mean |ΔL| (L* units) from the key frame before a new one is made. Default 4.
    pub max_dl: f32,
}

impl Default for KeyframeParams {
    fn default() -> Self {
        Self { every: 4, max_dl: 4.0 }
    }
}

impl KeyframeParams {
    /// Every frame through the network.
    pub fn every_frame() -> Self {
        Self { every: 1, max_dl: 0.0 }
    }
}

/// The last key frame, and the decision for the next frames.
pub struct Keyframer {
    params: KeyframeParams,
    /// The last key frame's L plane and size.
    key_l: Option<(Vec<f32>, u32, u32)>,
    /// The network's colouring of the last key frame.
    key: Option<LabImage>,
    since: u32,
    keys: u64,
}

impl Keyframer {
    pub fn new(params: KeyframeParams) -> Self {
        Self {
            params,
            key_l: None,
            key: None,
            since: 0,
            keys: 0,
        }
    }

    /// Whether the frame whose L plane is `l` (`width` x `height`) must go through the
    /// network. Call once per frame, in display order.
    pub fn is_key(&mut self, l: &[f32], width: u32, height: u32) -> bool {
        let key = match &self.key_l {
            Some((kl, w, h)) if (*w, *h) == (width, height) && kl.len() == l.len() => {
                self.since + 1 >= self.params.every.max(1) || mean_abs_diff(kl, l) > self.params.max_dl
            }
            _ => true,
        };
        if key {
            self.since = 0;
            self.keys += 1;
            match &mut self.key_l {
                Some((kl, w, h)) if kl.len() == l.len() => {
                    kl.copy_from_slice(l);
                    (*w, *h) = (width, height);
                }
                _ => self.key_l = Some((l.to_vec(), width, height)),
            }
        } else {
            self.since += 1;
        }
        key
    }

    /// Remembers the network's colouring of a key frame.
    pub fn keep(&mut self, coloured: &LabImage) {
        match &mut self.key {
            Some(k) if k.a.len() == coloured.a.len() => {
                k.width = coloured.width;
                k.height = coloured.height;
                k.a.copy_from_slice(&coloured.a);
                k.b.copy_from_slice(&coloured.b);
            }
            _ => {
                self.key = Some(LabImage {
                    l: Vec::new(),
                    ..coloured.clone()
                })
            }
        }
    }

    /// A frame of L plane `l` with the key frame's colour. `None` before any key frame was
    /// kept, or when the size changed.
    pub fn carry(&self, l: Vec<f32>, width: u32, height: u32) -> Option<LabImage> {
        let k = self
            .key
            .as_ref()
            .filter(|k| k.a.len() == l.len() && (k.width, k.height) == (width, height))?;
        Some(LabImage {
            width,
            height,
            l,
            a: k.a.clone(),
            b: k.b.clone(),
        })
    }

    /// Key frames so far.
    pub fn keys(&self) -> u64 {
        self.keys
    }
}

/// Mean |a - b| over two planes of the same length.
fn mean_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    let sum: f64 = a
        .par_chunks(8192)
        .zip(b.par_chunks(8192))
        .map(|(a, b)| a.iter().zip(b).map(|(a, b)| (a - b).abs()).sum::<f32>() as f64)
        .sum();
    (sum / a.len().max(1) as f64) as f32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lab(l: f32, a: f32) -> LabImage {
        LabImage {
            width: 4,
            height: 2,
            l: vec![l; 8],
            a: vec![a; 8],
            b: vec![-a; 8],
        }
    }

    #[test]
    fn key_frames_come_every_n_frames_and_when_l_moves_away() {
        let mut k = Keyframer::new(KeyframeParams { every: 3, max_dl: 2.0 });
        // Still picture: frames 0, 3, 6 are key frames.
        let keys: Vec<bool> = (0..7).map(|_| k.is_key(&[50.0; 8], 4, 2)).collect();
        assert_eq!(keys, [true, false, false, true, false, false, true]);
        // L drifting 1 unit a frame from 50: 52.5 is past max_dl from the key frame at 50.
        let mut k = Keyframer::new(KeyframeParams { every: 10, max_dl: 2.0 });
        let keys: Vec<bool> = [50.0, 51.0, 52.0, 52.5, 53.0]
            .iter()
            .map(|&v| k.is_key(&[v; 8], 4, 2))
            .collect();
        assert_eq!(keys, [true, false, false, true, false]);
        // A new size is always a key frame.
        assert!(k.is_key(&[53.0; 6], 3, 2));
        assert_eq!(k.keys(), 3);
        // Every frame.
        let mut k = Keyframer::new(KeyframeParams::every_frame());
        assert!((0..4).all(|_| k.is_key(&[50.0; 8], 4, 2)));
    }

    #[test]
    fn carried_frames_keep_their_own_l_and_the_key_colour() {
        let mut k = Keyframer::new(KeyframeParams::default());
        assert!(k.carry(vec![1.0; 8], 4, 2).is_none());
        k.keep(&lab(40.0, 12.0));
        let c = k.carry(vec![41.0; 8], 4, 2).unwrap();
        assert_eq!((c.l[0], c.a[0], c.b[0]), (41.0, 12.0, -12.0));
        assert!(k.carry(vec![41.0; 6], 3, 2).is_none());
        k.keep(&lab(45.0, 3.0));
        assert_eq!(k.carry(vec![45.0; 8], 4, 2).unwrap().a[7], 3.0);
    }

    #[test]
    fn mean_abs_diff_is_the_plain_mean() {
        let a: Vec<f32> = (0..20_000).map(|i| (i % 7) as f32).collect();
        let b: Vec<f32> = (0..20_000).map(|i| (i % 5) as f32).collect();
        let plain = a.iter().zip(&b).map(|(x, y)| (x - y).abs() as f64).sum::<f64>() / 20_000.0;
        assert!((mean_abs_diff(&a, &b) as f64 - plain).abs() < 1e-5);
    }
}
