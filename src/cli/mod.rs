//! Command-line interface: parses arguments and calls the library. Each command's arguments
//! and the call that runs it live in a module of their own; this one holds the options they
//! share.

mod colorize;
mod eval;
mod train;
mod video;

pub use colorize::ColorizeArgs;
pub use eval::EvalArgs;
pub use train::TrainArgs;
pub use video::VideoArgs;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Result, bail};

use crate::model::store::ModelSource;
use clap::{Args, Parser, Subcommand};

use crate::batch::{BatchOptions, Outcome, Shard, ShardSpec};
use crate::infer::{Colorizer, Fit};
use crate::method::{Method, MethodKind, MethodOptions};
use crate::model::{Arch, ModelConfig, PatchGanConfig};
use crate::train::{RunPaths, TrainConfig, TrainOptions};

/// Exit status when some inputs of a batch failed.
pub const EXIT_PARTIAL: u8 = 1;
/// Exit status for usage and fatal errors.
pub const EXIT_FATAL: u8 = 2;

#[derive(Parser, Debug)]
#[command(
    name = "tinct",
    version,
    about = "Colourise black-and-white photos, drawings and video with a conditional GAN"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Train a colourisation model on a folder of colour images.
    Train(TrainArgs),
    /// Colourise images (files, folders or glob patterns) at full resolution.
    Colorize(ColorizeArgs),
    /// Score models and methods against ground truth, with a JSON and an HTML report.
    Eval(EvalArgs),
    /// Colourise a video (or a folder of numbered frames) with temporal stabilisation.
    Video(VideoArgs),
    /// List the shipped models.
    Models,
    /// Package a trained model for shipping: half-precision weights, a chosen working size.
    Export(ExportArgs),
    /// Measure training and inference speed.
    Bench(crate::bench::BenchArgs),
    /// Serve a web page and an HTTP API for colourising photos.
    Serve(crate::serve::ServeArgs),
    /// Run the human real-vs-fake test as a web page, or summarise its results.
    Study(crate::serve::study::StudyArgs),
}

#[derive(Args, Debug)]
pub struct ExportArgs {
    /// The model: a shipped name, a .safetensors file or a run directory. Several models of one
    /// network (e.g. consecutive epochs of a run) are averaged weight by weight.
    #[arg(required = true, num_args = 1..)]
    pub model: Vec<String>,
    /// Where to write it (`<stem>.json` with its config is written beside it).
    #[arg(long, short)]
    pub output: PathBuf,
    /// Working size to colourise at (pixels; the model's training size by default).
    #[arg(long)]
    pub size: Option<usize>,
    /// Store the weights as 16-bit floats (half the file; widened to f32 on load).
    #[arg(long)]
    pub half: bool,
    /// The model's own chroma gain: its prediction is always multiplied by this, and
    /// `--saturation` at inference scales the result (calibrate it on images the model did not
    /// train on; `tinct models` shows it).
    #[arg(long)]
    pub saturation: Option<f32>,
}

/// How a batch of files is split, resumed and reported (an archive on a cluster).
#[derive(Args, Debug, Clone)]
pub struct BatchArgs {
    /// Colour only this task's share of the inputs: I/N (0-based, e.g. 0/4), or auto to read
    /// the array job's index and count from Slurm, Kubernetes, AWS Batch or Google Cloud Batch.
    /// An input's shard is a hash of its path below its folder, so adding files moves none.
    #[arg(long, value_name = "I/N|auto")]
    pub shard: Option<ShardSpec>,
    /// The number of tasks, for --shard auto where the scheduler does not give it (a
    /// Kubernetes Indexed Job's completions).
    #[arg(long, value_name = "N", requires = "shard")]
    pub shard_count: Option<u64>,
    /// Leave inputs whose output already exists alone (outputs are written atomically, so an
    /// existing one is complete): a retried task finishes only what is left.
    #[arg(long)]
    pub skip_existing: bool,
    /// Write a JSON summary: the files done, skipped and failed (with each failure's reason).
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
}

impl BatchArgs {
    /// Expands the inputs and keeps this task's shard. Refuses a run that found nothing.
    fn inputs(
        &self,
        args: &[String],
        out_dir: Option<&Path>,
        kind: crate::batch::Kind,
        quiet: bool,
    ) -> Result<Selected> {
        let shard = self.shard.map(|s| Shard::from_env(s, self.shard_count)).transpose()?;
        if self.shard_count == Some(0) {
            bail!("--shard-count 0: give the number of tasks, at least 1");
        }
        let (inputs, missing) = crate::batch::expand_inputs(args, out_dir, kind);
        for m in &missing {
            eprintln!("error: {m}");
        }
        if inputs.is_empty() {
            bail!("no input {}", kind.plural());
        }
        let total = inputs.len();
        let inputs = crate::batch::select(inputs, shard.as_ref());
        if let Some(s) = &shard
            && !quiet
        {
            eprintln!("{s}: {} of {total} input(s)", inputs.len());
        }
        Ok(Selected {
            shard,
            total,
            inputs,
            missing,
        })
    }

    /// Writes the report if one was asked for, prints how many inputs failed, and gives the
    /// exit status.
    fn finish(&self, report: crate::batch::Report) -> Result<ExitCode> {
        if let Some(path) = &self.report {
            report.write(path)?;
        }
        let failed = report.failed.len();
        if failed > 0 {
            // Arguments that matched nothing are failures beside the shard's inputs.
            let unmatched = report.done.len() + report.skipped.len() + failed - report.inputs;
            eprintln!("{failed} of {} input(s) failed", report.inputs + unmatched);
            return Ok(ExitCode::from(EXIT_PARTIAL));
        }
        Ok(ExitCode::SUCCESS)
    }
}

/// The inputs a batch run colours.
struct Selected {
    shard: Option<Shard>,
    /// Inputs found before sharding.
    total: usize,
    /// This shard's inputs.
    inputs: Vec<crate::batch::Input>,
    /// Arguments that matched nothing.
    missing: Vec<String>,
}

/// Prints one line for a finished input: what it became, or its error.
fn print_outcome(r: &crate::batch::FileResult, quiet: bool) {
    match &r.outcome {
        Outcome::Done(o) if !quiet => eprintln!("{} -> {}", r.input.display(), o.display()),
        Outcome::Skipped(o) if !quiet => eprintln!("{}: skipped, {} exists", r.input.display(), o.display()),
        Outcome::Failed(e) => eprintln!("error: {e}"),
        _ => {}
    }
}

/// How a generator is run.
#[derive(Args, Debug, Clone)]
pub struct GanArgs {
    /// Working size of the network (default: the model's own).
    #[arg(long)]
    pub size: Option<usize>,
    /// How the image is fitted to the network's square input.
    #[arg(long, value_enum, default_value_t = Fit::Stretch)]
    pub fit: Fit,
    /// Colour strength relative to the model's own: its chroma is multiplied by this (1 = the
    /// model's colour, 0 = gray).
    #[arg(long, default_value_t = 1.0)]
    pub saturation: f32,
    /// Also colour the mirrored image and average both predictions: slightly more accurate,
    /// slightly more muted colour at twice the network time.
    #[arg(long)]
    pub flip_average: bool,
}

/// Inputs of the classic methods.
#[derive(Args, Debug, Clone)]
pub struct ClassicArgs {
    /// Reference colour photo for --method reference.
    #[arg(long)]
    pub reference: Option<PathBuf>,
    /// Scribbles for --method hints: a JSON list of points and colours, or an image of colour
    /// marks over the gray image.
    #[arg(long)]
    pub hints: Option<PathBuf>,
    /// Palette preset name or JSON file for --method palette (presets: sepia, selenium,
    /// cyanotype, sunset, forest, thermal).
    #[arg(long)]
    pub palette: Option<String>,
    /// Chroma multiplier of the palette.
    #[arg(long, default_value_t = 1.0)]
    pub palette_strength: f32,
}

impl ClassicArgs {
    /// Refuses options of a classic method that none of `methods` reads (they would be
    /// silently ignored otherwise).
    fn check_used(&self, methods: &[MethodKind]) -> Result<()> {
        let given = [
            (
                self.reference.is_some(),
                "--reference",
                MethodKind::Reference,
                "reference",
            ),
            (self.hints.is_some(), "--hints", MethodKind::Hints, "hints"),
            (
                self.palette.is_some() || self.palette_strength != 1.0,
                "--palette/--palette-strength",
                MethodKind::Palette,
                "palette",
            ),
        ];
        for (present, flag, kind, name) in given {
            if present && !methods.contains(&kind) {
                anyhow::bail!("{flag} is read only by --method {name}; add --method {name} or drop {flag}");
            }
        }
        Ok(())
    }

    fn options(&self) -> MethodOptions {
        MethodOptions {
            reference: self.reference.clone(),
            hints: self.hints.clone(),
            palette: self.palette.clone(),
            palette_strength: self.palette_strength,
            seed: 42,
        }
    }
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Train(a) => train::train(a),
        Command::Colorize(a) => colorize::colorize(a),
        Command::Eval(a) => eval::eval(a),
        Command::Video(a) => video::video(a),
        Command::Models => {
            for a in crate::zoo::available() {
                let gain = match a.source.config() {
                    Ok(c) if c.saturation() != 1.0 => format!(" (saturation {})", c.saturation()),
                    Ok(_) => String::new(),
                    Err(e) => format!(" (unreadable: {e:#})"),
                };
                println!("{:<8} {:<32} {}{gain}", a.name, a.description, a.source)
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Export(a) => {
            let srcs = a
                .model
                .iter()
                .map(|m| crate::zoo::resolve(m))
                .collect::<Result<Vec<_>>>()?;
            let cfg = crate::model::store::export_generator(&srcs, &a.output, a.size, a.half, a.saturation)?;
            println!(
                "{}: {} model{}, working size {} px, {} weights{}",
                a.output.display(),
                cfg.arch(),
                if srcs.len() > 1 {
                    format!(" (average of {})", srcs.len())
                } else {
                    String::new()
                },
                cfg.size,
                if a.half { "f16" } else { "f32" },
                if cfg.saturation() != 1.0 {
                    format!(", own chroma gain {}", cfg.saturation())
                } else {
                    String::new()
                }
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Bench(a) => crate::bench::run(&a).map(|_| ExitCode::SUCCESS),
        Command::Serve(a) => crate::serve::run(&a).map(|_| ExitCode::SUCCESS),
        Command::Study(a) => crate::serve::study::run(&a).map(|_| ExitCode::SUCCESS),
    }
}

/// First Ctrl-C sets `stop`; a second one exits at once.
fn install_interrupt(stop: Arc<AtomicBool>, message: &'static str) {
    let _ = ctrlc::set_handler(move || {
        if stop.swap(true, Ordering::SeqCst) {
            std::process::exit(130);
        }
        eprintln!("\ninterrupted: {message}");
    });
}

fn load_colorizer(spec: &str, device: &burn::prelude::Device, o: &GanArgs) -> Result<Colorizer> {
    let mut c = Colorizer::load(&crate::zoo::resolve(spec)?, device)?
        .with_fit(o.fit)
        .with_flip_average(o.flip_average)
        .with_saturation(o.saturation)?;
    if let Some(s) = o.size {
        c = c.with_size(s)?;
    }
    Ok(c)
}
