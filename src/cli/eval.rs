//! `tinct eval`.

use super::*;

#[derive(Args, Debug)]
pub struct EvalArgs {
    /// Folder of colour ground-truth images to colourise and score.
    pub dir: Option<PathBuf>,
    /// Models to evaluate (names, run folders or files); repeatable.
    #[arg(long)]
    pub model: Vec<String>,
    /// Classic methods to evaluate beside the models (gray is always included; hints needs
    /// per-image scribbles and cannot be scored on a folder); repeatable.
    #[arg(long, value_enum)]
    pub method: Vec<MethodKind>,
    #[command(flatten)]
    pub classic: ClassicArgs,
    /// Precomputed predictions to score against --truth, instead of running methods.
    #[arg(long, requires = "truth")]
    pub pred: Option<PathBuf>,
    /// Ground truth for --pred.
    #[arg(long)]
    pub truth: Option<PathBuf>,
    /// Folder for report.json and report.html.
    #[arg(short, long, default_value = "eval-report")]
    pub out: PathBuf,
    /// Evaluate only the first N images.
    #[arg(long)]
    pub limit: Option<usize>,
    /// Best and worst images shown per method in the HTML report.
    #[arg(long, default_value_t = 3)]
    pub grid_rows: usize,
    /// Scales each model's colour so that its mean colourfulness on DIR is this share of the
    /// truth's (e.g. 0.92), prints the gain, and scores with it: the calibration for `tinct
    /// export --saturation`, on images the model did not train on.
    #[arg(long, value_name = "RATIO")]
    pub match_colourfulness: Option<f64>,
    /// With --match-colourfulness: take the truth's colourfulness from all the colour images
    /// of this folder (e.g. the whole training folder) instead of DIR's. The model's colour
    /// varies less between samples than the truth's, so a small held-out DIR estimates the one
    /// better than the other.
    #[arg(long, value_name = "FOLDER", requires = "match_colourfulness")]
    pub colourfulness_of: Option<PathBuf>,
    #[command(flatten)]
    pub gan: GanArgs,
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// No progress bar: print only the table and errors.
    #[arg(long, short)]
    pub quiet: bool,
}

pub(super) fn eval(a: EvalArgs) -> Result<ExitCode> {
    if a.limit == Some(0) {
        bail!("--limit 0: nothing to evaluate; give at least 1");
    }
    let opts = crate::eval::EvalOptions {
        out: a.out.clone(),
        limit: a.limit,
        grid_rows: a.grid_rows,
        quiet: a.quiet,
    };
    let report = if let (Some(pred), Some(truth)) = (&a.pred, &a.truth) {
        if a.dir.is_some() || !a.model.is_empty() || !a.method.is_empty() || a.match_colourfulness.is_some() {
            bail!(
                "--pred/--truth scores existing predictions; do not combine them with DIR, --model, --method or --match-colourfulness"
            );
        }
        crate::eval::eval_pairs(pred, truth, &opts)?
    } else {
        let Some(dir) = &a.dir else {
            bail!("give a ground-truth folder (tinct eval --model M DIR) or --pred DIR --truth DIR")
        };
        let device = crate::device_by_name(&a.device)?;
        a.classic.check_used(&a.method)?;
        let mut methods = Vec::new();
        // The shipped photo model unless models are named or only classic methods are asked for.
        let default_gan = a.method.is_empty() || a.method.contains(&MethodKind::Gan);
        let models = if a.model.is_empty() && default_gan {
            vec![crate::zoo::DEFAULT_MODEL.to_string()]
        } else {
            a.model.clone()
        };
        let truth_cf = match &a.colourfulness_of {
            Some(d) => {
                let (cf, n) = crate::eval::mean_colourfulness(d)?;
                eprintln!("truth colourfulness {cf:.2} over {n} images of {}", d.display());
                Some(cf)
            }
            None => None,
        };
        for m in &models {
            let mut c = load_colorizer(m, &device, &a.gan)?;
            if let Some(ratio) = a.match_colourfulness {
                let g = crate::eval::matching_gain(&c, dir, ratio, truth_cf, a.limit)?;
                let gain = c.saturation * g.gain;
                // Both printed to the 4 decimals the search rounds to (not as raw f32 products).
                let stored = (gain * c.model_saturation() * 1e4).round() / 1e4;
                eprintln!(
                    "{m}: --saturation {gain:.4} gives colourfulness {:.1}, {ratio} x the truth's {:.1} (to store it: tinct export --saturation {stored:.4})",
                    g.colourfulness, g.colourfulness_truth,
                );
                c = c.with_saturation(gain)?;
            }
            methods.push(Method::Gan(Box::new(c)));
        }
        for &k in &a.method {
            match k {
                MethodKind::Gan => {}
                MethodKind::Hints => {
                    bail!("--method hints needs per-image scribbles and cannot be evaluated on a folder")
                }
                k => methods.push(Method::classic(k, &a.classic.options())?),
            }
        }
        crate::eval::eval_methods(methods, dir, &opts)?
    };
    print!("{}", report.summary_table());
    for e in &report.errors {
        eprintln!("error: {e}");
    }
    eprintln!("report: {}", a.out.join("report.html").display());
    Ok(if report.errors.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_PARTIAL)
    })
}
