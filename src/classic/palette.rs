//! Brightness-to-colour mapping ("gradient map"): every pixel's (a, b) is read off a
//! palette at the pixel's own L, and L is kept.
//!
//! A palette is a list of stops `(position, colour)`: the position is an L* value in
//! [0, 100] and the colour an 8-bit sRGB colour, of which only its CIE (a, b) is used. A
//! pixel of lightness L gets the (a, b) linearly interpolated between the two stops whose
//! positions enclose L (interpolation in L*a*b*, so in chroma); below the first stop it gets
//! the first stop's (a, b), above the last the last's. Two stops may share a position (a hard
//! step); at exactly that L the later stop wins. The stop colours' own L* values are not
//! used, but the presets place each stop at its colour's own L* so that the result looks like
//! the stop colours themselves.
//!
//! # Presets ([`preset_names`])
//! | name | look | stops (position: colour) |
//! | --- | --- | --- |
//! | `sepia` | warm brown toning of old prints | 12 #2b1d0e, 34 #6b4a2b, 56 #a47e5a, 80 #d9c3a5, 96 #fbf3e4 |
//! | `selenium` | cool purple-brown selenium toning | 8 #1e1420, 27 #4d3a4a, 52 #8a7580, 77 #c9bcc0, 96 #f7f2f2 |
//! | `cyanotype` | Prussian-blue blueprint | 12 #0a1f3d, 27 #123f73, 46 #3f6fa6, 72 #8fb3d6, 94 #e6f0fa |
//! | `sunset` | purple shadows, red-orange mids, golden highlights | 7 #1d0b3a, 24 #6b1450, 45 #c2353d, 64 #f07a2a, 84 #ffc857, 96 #fff4d6 |
//! | `forest` | dark to pale greens | 10 #0d1f12, 26 #24452a, 47 #4d7a3d, 70 #93b56b, 94 #e8f0d2 |
//! | `thermal` | false-colour heat map (black, purple, red, orange, pale yellow; magma-like) | 0 #000000, 18 #3b0f70, 36 #8c2981, 53 #de4968, 74 #fe9f6d, 98 #fcfdbf |
//!
//! # Palette files
//! JSON with a list of `[position, "#rrggbb"]` pairs (`#rgb` also accepted), in any order,
//! and an optional name:
//!
//! ```json
//! {"name": "copper", "stops": [[0, "#000000"], [50, "#aa5500"], [100, "#ffffff"]]}
//! ```

use std::path::Path;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::{ClassicError, check_lab, format_hex_colour, parse_hex_colour, with_ab};
use crate::color::{LabImage, rgb8_to_lab};

/// Most stops a palette may have.
pub const MAX_STOPS: usize = 256;

/// One palette stop.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Stop {
    /// L* position in [0, 100].
    pub position: f32,
    /// The stop's colour, 8-bit sRGB.
    pub rgb: [u8; 3],
    /// The colour's CIE (a*, b*), what pixels at `position` receive.
    pub ab: [f32; 2],
}

/// A brightness-to-colour gradient; see the module documentation.
#[derive(Clone, Debug, PartialEq)]
pub struct Palette {
    pub name: String,
    stops: Vec<Stop>,
}

/// The JSON file form of a palette.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PaletteSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub stops: Vec<(f32, String)>,
}

type Preset = (&'static str, &'static [(f32, &'static str)]);

const PRESETS: &[Preset] = &[
    (
        "sepia",
        &[
            (12.0, "#2b1d0e"),
            (34.0, "#6b4a2b"),
            (56.0, "#a47e5a"),
            (80.0, "#d9c3a5"),
            (96.0, "#fbf3e4"),
        ],
    ),
    (
        "selenium",
        &[
            (8.0, "#1e1420"),
            (27.0, "#4d3a4a"),
            (52.0, "#8a7580"),
            (77.0, "#c9bcc0"),
            (96.0, "#f7f2f2"),
        ],
    ),
    (
        "cyanotype",
        &[
            (12.0, "#0a1f3d"),
            (27.0, "#123f73"),
            (46.0, "#3f6fa6"),
            (72.0, "#8fb3d6"),
            (94.0, "#e6f0fa"),
        ],
    ),
    (
        "sunset",
        &[
            (7.0, "#1d0b3a"),
            (24.0, "#6b1450"),
            (45.0, "#c2353d"),
            (64.0, "#f07a2a"),
            (84.0, "#ffc857"),
            (96.0, "#fff4d6"),
        ],
    ),
    (
        "forest",
        &[
            (10.0, "#0d1f12"),
            (26.0, "#24452a"),
            (47.0, "#4d7a3d"),
            (70.0, "#93b56b"),
            (94.0, "#e8f0d2"),
        ],
    ),
    (
        "thermal",
        &[
            (0.0, "#000000"),
            (18.0, "#3b0f70"),
            (36.0, "#8c2981"),
            (53.0, "#de4968"),
            (74.0, "#fe9f6d"),
            (98.0, "#fcfdbf"),
        ],
    ),
];

const PRESET_NAMES: &[&str] = &["sepia", "selenium", "cyanotype", "sunset", "forest", "thermal"];

/// Names of the built-in palettes.
pub fn preset_names() -> &'static [&'static str] {
    PRESET_NAMES
}

fn valid_names() -> String {
    PRESET_NAMES.join(", ")
}

/// A built-in palette by name (case-insensitive).
pub fn preset(name: &str) -> Option<Palette> {
    let (pname, stops) = PRESETS.iter().find(|(n, _)| n.eq_ignore_ascii_case(name.trim()))?;
    let stops: Vec<(f32, [u8; 3])> = stops
        .iter()
        .map(|&(p, hex)| (p, parse_hex_colour(hex).unwrap_or([0, 0, 0])))
        .collect();
    Palette::new(*pname, &stops).ok()
}

/// A preset by name (case-insensitive), or else a palette file at path `s`.
///
/// # Errors
/// [`ClassicError::UnknownPalette`] when `s` is neither a preset nor an existing file, and
/// [`ClassicError::PaletteFile`] when the file cannot be read or is invalid; both messages
/// list the preset names.
pub fn palette_by_name_or_file(s: &str) -> Result<Palette, ClassicError> {
    if let Some(p) = preset(s) {
        return Ok(p);
    }
    let path = Path::new(s);
    if !path.is_file() {
        return Err(ClassicError::UnknownPalette {
            name: s.to_string(),
            valid: valid_names(),
        });
    }
    let file_err = |reason: String| ClassicError::PaletteFile {
        path: path.display().to_string(),
        reason,
        valid: valid_names(),
    };
    let text = std::fs::read_to_string(path).map_err(|e| file_err(e.to_string()))?;
    let default_name = path
        .file_stem()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    Palette::from_json(&default_name, &text).map_err(|e| match e {
        ClassicError::BadPalette(reason) => file_err(reason),
        other => file_err(other.to_string()),
    })
}

impl Palette {
    /// Builds a palette from `(position, sRGB colour)` stops (any order; sorted stably by
    /// position).
    ///
    /// # Errors
    /// [`ClassicError::BadPalette`] for no stops, more than [`MAX_STOPS`], or a position that
    /// is not a finite number in [0, 100].
    pub fn new(name: impl Into<String>, stops: &[(f32, [u8; 3])]) -> Result<Self, ClassicError> {
        if stops.is_empty() {
            return Err(ClassicError::BadPalette("a palette needs at least one stop".into()));
        }
        if stops.len() > MAX_STOPS {
            return Err(ClassicError::BadPalette(format!(
                "{} stops; at most {MAX_STOPS} allowed",
                stops.len()
            )));
        }
        let mut out: Vec<Stop> = Vec::with_capacity(stops.len());
        for (i, &(position, rgb)) in stops.iter().enumerate() {
            if !(position.is_finite() && (0.0..=100.0).contains(&position)) {
                return Err(ClassicError::BadPalette(format!(
                    "stop #{i}: position {position} is not an L* value in [0, 100]"
                )));
            }
            let lab = rgb8_to_lab(rgb);
            out.push(Stop {
                position,
                rgb,
                ab: [lab[1], lab[2]],
            });
        }
        out.sort_by(|p, q| p.position.total_cmp(&q.position));
        Ok(Self {
            name: name.into(),
            stops: out,
        })
    }

    /// Parses the JSON file format (see the module documentation); `default_name` is used
    /// when the JSON has no `"name"`.
    pub fn from_json(default_name: &str, json: &str) -> Result<Self, ClassicError> {
        let spec: PaletteSpec =
            serde_json::from_str(json).map_err(|e| ClassicError::BadPalette(format!("invalid JSON: {e}")))?;
        let mut stops = Vec::with_capacity(spec.stops.len());
        for (i, (pos, hex)) in spec.stops.iter().enumerate() {
            let rgb = parse_hex_colour(hex).map_err(|e| ClassicError::BadPalette(format!("stop #{i}: {e}")))?;
            stops.push((*pos, rgb));
        }
        Self::new(spec.name.unwrap_or_else(|| default_name.to_string()), &stops)
    }

    /// The palette in the JSON file format.
    pub fn to_spec(&self) -> PaletteSpec {
        PaletteSpec {
            name: Some(self.name.clone()),
            stops: self
                .stops
                .iter()
                .map(|s| (s.position, format_hex_colour(s.rgb)))
                .collect(),
        }
    }

    /// The stops, sorted by position.
    pub fn stops(&self) -> &[Stop] {
        &self.stops
    }

    /// The (a, b) the palette assigns to lightness `l`.
    pub fn ab_at(&self, l: f32) -> [f32; 2] {
        let s = &self.stops;
        // `new` guarantees at least one stop.
        let (Some(first), Some(last)) = (s.first(), s.last()) else {
            return [0.0, 0.0];
        };
        if l.is_nan() || l < first.position {
            return first.ab;
        }
        for pair in s.windows(2) {
            let (p, q) = (&pair[0], &pair[1]);
            if l < q.position {
                // p.position <= l < q.position, so the span is positive.
                let t = (l - p.position) / (q.position - p.position);
                return [p.ab[0] + t * (q.ab[0] - p.ab[0]), p.ab[1] + t * (q.ab[1] - p.ab[1])];
            }
        }
        last.ab
    }
}

/// Refuses a palette strength that is negative or not finite.
pub fn check_strength(strength: f32) -> Result<(), ClassicError> {
    if strength.is_finite() && strength >= 0.0 {
        Ok(())
    } else {
        Err(ClassicError::BadParameter {
            name: "strength",
            value: strength as f64,
            expected: "a finite number >= 0",
        })
    }
}

/// Colours `gray` (only its `l` plane is read) through `palette`: each pixel gets
/// `strength × palette.ab_at(L)` as (a, b), and keeps its L exactly. `strength` 1 is the
/// palette as designed, 0 gives gray, values above 1 exaggerate the chroma.
///
/// # Errors
/// [`ClassicError::MalformedLab`] for inconsistent planes, [`ClassicError::BadParameter`]
/// when `strength` is negative or not finite.
pub fn apply_palette(gray: &LabImage, palette: &Palette, strength: f32) -> Result<LabImage, ClassicError> {
    check_lab(gray)?;
    check_strength(strength)?;
    let (a, b): (Vec<f32>, Vec<f32>) = gray
        .l
        .par_iter()
        .with_min_len(4096)
        .map(|&l| {
            let ab = palette.ab_at(l);
            (ab[0] * strength, ab[1] * strength)
        })
        .unzip();
    Ok(with_ab(gray, a, b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ramp(n: usize) -> LabImage {
        let l: Vec<f32> = (0..n).map(|i| 100.0 * i as f32 / (n - 1) as f32).collect();
        LabImage {
            width: n as u32,
            height: 1,
            l,
            a: vec![9.0; n],
            b: vec![-9.0; n],
        }
    }

    #[test]
    fn all_presets_load_and_are_listed() {
        assert_eq!(preset_names().len(), PRESETS.len());
        for (name, stops) in PRESETS {
            assert!(preset_names().contains(name));
            let p = palette_by_name_or_file(name).unwrap();
            assert_eq!(p.stops().len(), stops.len());
            // Presets place each stop at its colour's own L* (within 1).
            for s in p.stops() {
                let l = rgb8_to_lab(s.rgb)[0];
                assert!((l - s.position).abs() <= 1.0, "{name}: {s:?} has L* {l}");
            }
        }
        assert!(palette_by_name_or_file("SePiA").is_ok(), "names are case-insensitive");
    }

    #[test]
    fn l_is_preserved_and_stops_are_hit_exactly() {
        let img = ramp(101);
        for name in preset_names() {
            let p = preset(name).unwrap();
            let out = apply_palette(&img, &p, 1.0).unwrap();
            assert_eq!(out.l, img.l, "{name}: L must be preserved exactly");
            for s in p.stops() {
                let probe = LabImage {
                    width: 1,
                    height: 1,
                    l: vec![s.position],
                    a: vec![0.0],
                    b: vec![0.0],
                };
                let o = apply_palette(&probe, &p, 1.0).unwrap();
                assert_eq!([o.a[0], o.b[0]], s.ab, "{name}: stop at {}", s.position);
            }
        }
    }

    #[test]
    fn interpolation_and_clamping_hand_computed() {
        // Stops: 20 -> (a, b) of #ff0000, 60 -> (a, b) of #0000ff.
        let p = Palette::new("t", &[(60.0, [0, 0, 255]), (20.0, [255, 0, 0])]).unwrap();
        let red = rgb8_to_lab([255, 0, 0]);
        let blue = rgb8_to_lab([0, 0, 255]);
        // Below the first / above the last stop: clamped.
        assert_eq!(p.ab_at(0.0), [red[1], red[2]]);
        assert_eq!(p.ab_at(100.0), [blue[1], blue[2]]);
        // L = 30 is a quarter of the way from 20 to 60.
        let got = p.ab_at(30.0);
        let want = [red[1] + 0.25 * (blue[1] - red[1]), red[2] + 0.25 * (blue[2] - red[2])];
        assert!((got[0] - want[0]).abs() < 1e-4 && (got[1] - want[1]).abs() < 1e-4);
        // Strength scales the chroma; 0 gives gray.
        let img = LabImage {
            width: 1,
            height: 1,
            l: vec![30.0],
            a: vec![0.0],
            b: vec![0.0],
        };
        let half = apply_palette(&img, &p, 0.5).unwrap();
        assert!((half.b[0] - 0.5 * got[1]).abs() < 1e-5);
        let none = apply_palette(&img, &p, 0.0).unwrap();
        assert_eq!((none.a[0], none.b[0]), (0.0, 0.0));
        assert!(apply_palette(&img, &p, -1.0).is_err());
        assert!(apply_palette(&img, &p, f32::NAN).is_err());
        // A hard step: two stops at 50; at exactly 50 the later one wins.
        let step = Palette::new("s", &[(50.0, [255, 0, 0]), (50.0, [0, 0, 255])]).unwrap();
        assert_eq!(step.ab_at(50.0), [blue[1], blue[2]]);
        assert_eq!(step.ab_at(49.9), [red[1], red[2]]);
    }

    #[test]
    fn palette_files_load_and_errors_list_presets() {
        let dir = std::env::temp_dir().join(format!("tinct-palette-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let good = dir.join("copper.json");
        std::fs::write(&good, r##"{"stops":[[0,"#000000"],[50,"#aa5500"],[100,"#ffffff"]]}"##).unwrap();
        let p = palette_by_name_or_file(good.to_str().unwrap()).unwrap();
        assert_eq!(p.name, "copper");
        assert_eq!(p.stops().len(), 3);
        let mid = rgb8_to_lab([0xaa, 0x55, 0x00]);
        assert_eq!(p.ab_at(50.0), [mid[1], mid[2]]);
        // Round trip through the spec.
        let json = serde_json::to_string(&p.to_spec()).unwrap();
        assert_eq!(Palette::from_json("x", &json).unwrap(), p);

        let cases = [
            ("bad-json.json", "{\"stops\": [[0, \"#000\"]"),
            ("bad-colour.json", r##"{"stops":[[0,"#00000g"]]}"##),
            ("bad-pos.json", r##"{"stops":[[150,"#000000"]]}"##),
            ("empty.json", r#"{"stops":[]}"#),
        ];
        for (file, text) in cases {
            let path = dir.join(file);
            std::fs::write(&path, text).unwrap();
            let err = palette_by_name_or_file(path.to_str().unwrap()).unwrap_err();
            assert!(matches!(err, ClassicError::PaletteFile { .. }), "{file}: {err}");
            let msg = err.to_string();
            assert!(
                msg.contains(file) && msg.contains("sepia, selenium, cyanotype"),
                "{msg}"
            );
            assert!(!msg.contains('\n'), "one line: {msg}");
        }
        let err = palette_by_name_or_file("no-such-palette").unwrap_err();
        assert!(matches!(err, ClassicError::UnknownPalette { .. }));
        let msg = err.to_string();
        for name in preset_names() {
            assert!(msg.contains(name), "{msg}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
