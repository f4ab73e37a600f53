//! The colourisation methods a user can pick: the GAN (default) and the classic methods the
//! seed names (reference transfer, scribble hints, brightness-to-palette), plus the "gray"
//! baseline (ab = 0) used in evaluations. Every method keeps the input's L.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use image::RgbImage;

use crate::classic::{self, HintMap, Palette, SolverOptions};
use crate::color::LabImage;
use crate::infer::Colorizer;
use crate::pipeline::Colorize;

/// Which method `--method` names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum MethodKind {
    /// The GAN generator (default).
    Gan,
    /// Colour from a reference photo (Welsh et al. 2002 for gray inputs, Reinhard et al. 2001
    /// for colour inputs).
    Reference,
    /// Colour from scribbles (Levin et al. 2004).
    Hints,
    /// Colour from a brightness-to-colour gradient.
    Palette,
    /// No colour (a = b = 0): the baseline.
    Gray,
}

/// Where the user's scribbles come from.
#[derive(Clone, Debug)]
pub enum Hints {
    /// Points from a JSON file (resolved per image).
    Points(classic::HintSet),
    /// A PNG of colour marks over the gray image.
    Scribble(RgbImage),
}

impl Hints {
    /// Loads a `.json` point list or an image of scribbles.
    pub fn load(path: &Path) -> Result<Hints> {
        let is_json = path.extension().is_some_and(|e| e.eq_ignore_ascii_case("json"));
        if is_json {
            let text = std::fs::read_to_string(path).with_context(|| format!("{}: cannot read", path.display()))?;
            let set = classic::hints_from_json(&text).and_then(|s| s.check().map(|()| s));
            Ok(Hints::Points(
                set.map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?,
            ))
        } else {
            Ok(Hints::Scribble(crate::imageio::open(path)?.to_rgb8()))
        }
    }

    fn map(&self, gray: &LabImage) -> Result<HintMap> {
        Ok(match self {
            Hints::Points(set) => HintMap::from_points(set, gray.width, gray.height)?,
            Hints::Scribble(s) => classic::hints_from_scribble(gray, s, classic::SCRIBBLE_MIN_CHROMA)?,
        })
    }
}

/// Colour from a reference photo: Welsh et al. (2002) for gray inputs, Reinhard et al. (2001)
/// for colour inputs.
pub struct Reference {
    pub image: RgbImage,
    pub seed: u64,
}

impl Colorize for Reference {
    fn name(&self) -> String {
        "reference".into()
    }
    fn uses_colour(&self) -> bool {
        true
    }
    fn colorize_lab(&self, lab: &LabImage, colour: Option<&RgbImage>) -> Result<LabImage> {
        Ok(match colour {
            Some(rgb) => {
                let recoloured = classic::reinhard_transfer(rgb, &self.image)?;
                let mut out = LabImage::from_rgb8(&recoloured);
                out.l = lab.l.clone();
                out
            }
            None => classic::welsh_transfer(lab, &self.image, self.seed)?,
        })
    }
}

/// Colour spread from scribbles (Levin et al. 2004).
impl Colorize for Hints {
    fn name(&self) -> String {
        "hints".into()
    }
    fn colorize_lab(&self, lab: &LabImage, _: Option<&RgbImage>) -> Result<LabImage> {
        Ok(classic::colorize_with_hints(
            lab,
            &self.map(lab)?,
            &SolverOptions::default(),
        )?)
    }
}

/// Colour from a brightness-to-colour gradient.
pub struct PaletteMap {
    pub palette: Palette,
    pub strength: f32,
}

impl Colorize for PaletteMap {
    fn name(&self) -> String {
        format!("palette:{}", self.palette.name)
    }
    fn colorize_lab(&self, lab: &LabImage, _: Option<&RgbImage>) -> Result<LabImage> {
        Ok(classic::apply_palette(lab, &self.palette, self.strength)?)
    }
}

/// No colour (a = b = 0): the baseline.
pub struct Gray;

impl Colorize for Gray {
    fn name(&self) -> String {
        "gray".into()
    }
    fn colorize_lab(&self, lab: &LabImage, _: Option<&RgbImage>) -> Result<LabImage> {
        Ok(LabImage {
            a: vec![0.0; lab.l.len()],
            b: vec![0.0; lab.l.len()],
            ..lab.clone()
        })
    }
}

/// A ready-to-run method of any kind.
pub enum Method {
    Gan(Box<Colorizer>),
    Reference(Reference),
    Hints(Hints),
    Palette(PaletteMap),
    Gray,
}

impl Method {
    /// The method behind the one colourisation path.
    pub fn colorizer(&self) -> &dyn Colorize {
        match self {
            Method::Gan(c) => c.as_ref(),
            Method::Reference(r) => r,
            Method::Hints(h) => h,
            Method::Palette(p) => p,
            Method::Gray => &Gray,
        }
    }

    /// A short name for tables and file names.
    pub fn name(&self) -> String {
        self.colorizer().name()
    }

    /// Colourises a full-resolution L*a*b* image (only its L is read). `color_input` is the
    /// original colour image, when there is one (Reinhard transfer uses it).
    pub fn colorize(&self, lab: &LabImage, color_input: Option<&RgbImage>) -> Result<LabImage> {
        self.colorizer().colorize_lab(lab, color_input)
    }
}

/// Everything needed to build a method from command-line options.
#[derive(Clone, Debug, Default)]
pub struct MethodOptions {
    pub reference: Option<PathBuf>,
    pub hints: Option<PathBuf>,
    pub palette: Option<String>,
    pub palette_strength: f32,
    pub seed: u64,
}

impl Method {
    /// Builds a classic method (not `gan`, which needs a model) from options, with a clear
    /// error when its input is missing.
    pub fn classic(kind: MethodKind, o: &MethodOptions) -> Result<Method> {
        Ok(match kind {
            MethodKind::Gray => Method::Gray,
            MethodKind::Reference => {
                let Some(p) = &o.reference else {
                    bail!("--method reference needs --reference IMAGE")
                };
                Method::Reference(Reference {
                    image: crate::imageio::open(p)?.to_rgb8(),
                    seed: o.seed,
                })
            }
            MethodKind::Hints => {
                let Some(p) = &o.hints else {
                    bail!("--method hints needs --hints FILE (.json points or a scribble image)")
                };
                Method::Hints(Hints::load(p)?)
            }
            MethodKind::Palette => {
                let name = o.palette.as_deref().unwrap_or("sepia");
                classic::check_strength(o.palette_strength).map_err(|e| anyhow::anyhow!("--palette-strength: {e}"))?;
                Method::Palette(PaletteMap {
                    palette: classic::palette_by_name_or_file(name)?,
                    strength: o.palette_strength,
                })
            }
            MethodKind::Gan => bail!("the gan method needs a model"),
        })
    }
}
