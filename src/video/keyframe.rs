//! Key frames: the network colours a frame only when the picture has moved on from the last
//! frame it coloured; in between, that frame's colour is carried onto each new frame's own L.
//!
//! A frame is a key frame when it is the first, when `every` frames have passed since the
//! last key frame, or when its L differs from the key frame's L by more than `max_dl` on
//! average (mean |ΔL| in L* units over the frame):
//!
//! ```text
//! key(t) = first  or  t - key >= every  or  min over s in {0, s*} of D(s) > max_dl
//! D(s)   = mean_i |L_t[i] - L_key[i - s]|
//! ab_t   = ab_key[i - s]                      (when t is not a key frame)
//! ```
//!
//! with `i - s` clamped to the frame in both, so the test measures the frame that carrying
//! makes, the strip the pan reveals included.
//!
//! `s*` is the global shift (a camera pan) from the key frame to this one, estimated by block
//! matching ([`super::stabilize`]), tried only when the unshifted test fails. So on a pan the
//! key frame's colour moves with the picture instead of a new key frame being made.
//!
//! While L stays close to the key frame's, its colour still fits the picture; the
//! stabiliser then smooths the step at the next key frame. On a still shot or a steady pan
//! this runs the network once every `every` frames and leaves no frame-to-frame flicker
//! between key frames; on cuts and motion within the picture the L test makes key frames as
//! often as every frame.

use rayon::prelude::*;
use serde::Serialize;

use super::stabilize::estimate_shift;
use crate::color::LabImage;

/// When a frame goes through the network; see the module docs.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct KeyframeParams {
    /// Most frames from one key frame to the next; 1 colours every frame. Default 4.
    pub every: u32,
    /// Largest mean |ΔL| (L* units) from the key frame before a new one is made. Default 3:
    /// with the pan test, 4 let a pan's colour drift (0.1 dB below every frame alone).
    pub max_dl: f32,
    /// Largest global shift (pixels) from the key frame that its colour may follow; 0 turns
    /// the pan test off. Default 32.
    pub max_shift: u32,
}

impl Default for KeyframeParams {
    fn default() -> Self {
        Self {
            every: 4,
            max_dl: 3.0,
            max_shift: 32,
        }
    }
}

impl KeyframeParams {
    /// Every frame through the network.
    pub fn every_frame() -> Self {
        Self {
            every: 1,
            max_dl: 0.0,
            max_shift: 0,
        }
    }
}

/// The last key frame, and the decision for the next frames.
pub struct Keyframer {
    params: KeyframeParams,
    /// The last key frame's L plane and size.
    key_l: Option<(Vec<f32>, u32, u32)>,
    /// The network's colouring of the last key frame.
    key: Option<LabImage>,
    /// Shift from the key frame to the frame last tested, applied by [`Self::carry`].
    shift: (i32, i32),
    since: u32,
    keys: u64,
}

impl Keyframer {
    pub fn new(params: KeyframeParams) -> Self {
        Self {
            params,
            key_l: None,
            key: None,
            shift: (0, 0),
            since: 0,
            keys: 0,
        }
    }

    /// Whether the frame whose L plane is `l` (`width` x `height`) must go through the
    /// network. Call once per frame, in display order.
    pub fn is_key(&mut self, l: &[f32], width: u32, height: u32) -> bool {
        self.shift = (0, 0);
        let key = match &self.key_l {
            Some((kl, w, h)) if (*w, *h) == (width, height) && kl.len() == l.len() => {
                if self.since + 1 >= self.params.every.max(1) {
                    true
                } else if mean_abs_diff(kl, l) <= self.params.max_dl {
                    false
                } else if self.params.max_shift == 0 {
                    true
                } else {
                    let (w, h) = (*w as usize, *h as usize);
                    let s = estimate_shift(kl, l, w, h, self.params.max_shift as usize);
                    let fits = s != (0, 0) && mean_abs_diff(&shifted(kl, w, h, s), l) <= self.params.max_dl;
                    if fits {
                        self.shift = s;
                    }
                    !fits
                }
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

    /// A frame of L plane `l` with the key frame's colour, moved by the shift that
    /// [`Self::is_key`] found for it. `None` before any key frame was kept, or when the size
    /// changed.
    pub fn carry(&self, l: Vec<f32>, width: u32, height: u32) -> Option<LabImage> {
        let (a, b) = self.carry_ab(width, height).filter(|(a, _)| a.len() == l.len())?;
        Some(LabImage { width, height, l, a, b })
    }

    /// The a and b planes that [`Self::carry`] puts on a `width` x `height` frame.
    pub fn carry_ab(&self, width: u32, height: u32) -> Option<(Vec<f32>, Vec<f32>)> {
        let k = self.key.as_ref().filter(|k| (k.width, k.height) == (width, height))?;
        let (w, h) = (width as usize, height as usize);
        Some((shifted(&k.a, w, h, self.shift), shifted(&k.b, w, h, self.shift)))
    }

    /// Key frames so far.
    pub fn keys(&self) -> u64 {
        self.keys
    }
}

/// `out(x, y) = src(x - dx, y - dy)`, with coordinates clamped to the frame.
fn shifted(src: &[f32], w: usize, h: usize, (dx, dy): (i32, i32)) -> Vec<f32> {
    if (dx, dy) == (0, 0) {
        return src.to_vec();
    }
    let mut out = vec![0.0f32; src.len()];
    out.par_chunks_mut(w).enumerate().for_each(|(y, row)| {
        let sy = (y as i64 - dy as i64).clamp(0, h as i64 - 1) as usize;
        let from = &src[sy * w..(sy + 1) * w];
        for (x, o) in row.iter_mut().enumerate() {
            *o = from[(x as i64 - dx as i64).clamp(0, w as i64 - 1) as usize];
        }
    });
    out
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
        let mut k = Keyframer::new(KeyframeParams {
            every: 3,
            max_dl: 2.0,
            ..Default::default()
        });
        // Still picture: frames 0, 3, 6 are key frames.
        let keys: Vec<bool> = (0..7).map(|_| k.is_key(&[50.0; 8], 4, 2)).collect();
        assert_eq!(keys, [true, false, false, true, false, false, true]);
        // L drifting 1 unit a frame from 50: 52.5 is past max_dl from the key frame at 50.
        let mut k = Keyframer::new(KeyframeParams {
            every: 10,
            max_dl: 2.0,
            ..Default::default()
        });
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

    /// A smooth textured plane (values 10..90) seen through a window moved by `(dx, dy)`:
    /// `plane(x, y) = f(x - dx, y - dy)`.
    fn textured(w: usize, h: usize, dx: i64, dy: i64) -> Vec<f32> {
        (0..w * h)
            .map(|i| {
                let (x, y) = ((i % w) as i64 - dx, (i / w) as i64 - dy);
                50.0 + 25.0 * ((x as f32) * 0.21).sin() * ((y as f32) * 0.17).cos()
                    + 15.0 * ((x + 2 * y) as f32 * 0.05).sin()
            })
            .collect()
    }

    #[test]
    fn a_pan_moves_the_key_colour_instead_of_making_a_key_frame() {
        let (w, h) = (96usize, 64usize);
        let key_l = textured(w, h, 0, 0);
        // The colour: a at x + 100 y, so a shift is easy to read off.
        let a: Vec<f32> = (0..w * h).map(|i| ((i % w) + 100 * (i / w)) as f32).collect();
        let key = LabImage {
            width: w as u32,
            height: h as u32,
            l: key_l.clone(),
            a: a.clone(),
            b: a.iter().map(|v| -v).collect(),
        };
        let panned = textured(w, h, 5, -2);
        assert!(
            mean_abs_diff(&key_l, &panned) > 4.0,
            "unshifted, the pan fails the L test"
        );
        let mut k = Keyframer::new(KeyframeParams::default());
        assert!(k.is_key(&key_l, w as u32, h as u32));
        k.keep(&key);
        assert!(!k.is_key(&panned, w as u32, h as u32), "the shifted L test passes");
        let c = k.carry(panned.clone(), w as u32, h as u32).unwrap();
        // out(x, y) = key(x - 5, y + 2), clamped at the edges.
        assert_eq!(c.a[10 + 20 * w], a[5 + 22 * w]);
        assert_eq!(c.b[10 + 20 * w], -a[5 + 22 * w]);
        assert_eq!(c.a[2 + (h - 1) * w], a[(h - 1) * w], "clamped at the corner");
        // Without the pan test the same frame is a key frame.
        let mut k = Keyframer::new(KeyframeParams {
            max_shift: 0,
            ..Default::default()
        });
        k.is_key(&key_l, w as u32, h as u32);
        k.keep(&key);
        assert!(k.is_key(&panned, w as u32, h as u32));
        // A new picture matches no shift: a key frame.
        let mut k = Keyframer::new(KeyframeParams::default());
        k.is_key(&key_l, w as u32, h as u32);
        k.keep(&key);
        let other: Vec<f32> = key_l.iter().rev().map(|v| 100.0 - v).collect();
        assert!(k.is_key(&other, w as u32, h as u32));
    }

    #[test]
    fn the_shifted_l_test_is_the_plain_mean_with_clamped_coordinates() {
        let (w, h) = (23usize, 17usize);
        let key: Vec<f32> = (0..w * h).map(|i| ((i * 7) % 13) as f32).collect();
        let cur: Vec<f32> = (0..w * h).map(|i| ((i * 5) % 11) as f32).collect();
        for (dx, dy) in [(0i64, 0i64), (3, -2), (-4, 5)] {
            let (mut sum, mut n) = (0.0f64, 0usize);
            for y in 0..h as i64 {
                for x in 0..w as i64 {
                    let kx = (x - dx).clamp(0, w as i64 - 1) as usize;
                    let ky = (y - dy).clamp(0, h as i64 - 1) as usize;
                    sum += (cur[y as usize * w + x as usize] - key[ky * w + kx]).abs() as f64;
                    n += 1;
                }
            }
            let got = mean_abs_diff(&shifted(&key, w, h, (dx as i32, dy as i32)), &cur) as f64;
            assert!((got - sum / n as f64).abs() < 1e-4, "shift ({dx}, {dy})");
        }
    }

    #[test]
    fn mean_abs_diff_is_the_plain_mean() {
        let a: Vec<f32> = (0..20_000).map(|i| (i % 7) as f32).collect();
        let b: Vec<f32> = (0..20_000).map(|i| (i % 5) as f32).collect();
        let plain = a.iter().zip(&b).map(|(x, y)| (x - y).abs() as f64).sum::<f64>() / 20_000.0;
        assert!((mean_abs_diff(&a, &b) as f64 - plain).abs() < 1e-5);
    }
}
