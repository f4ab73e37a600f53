//! Command-line interface: parses arguments and calls the library.

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

#[derive(Args, Debug)]
pub struct TrainArgs {
    /// Folder of colour images (searched recursively).
    #[arg(long)]
    pub data: PathBuf,
    /// Validation folder; without it a seeded 80/20 split of --data is used.
    #[arg(long)]
    pub val: Option<PathBuf>,
    /// Run directory for checkpoints, samples and the log.
    #[arg(long)]
    pub out: PathBuf,
    /// Generator architecture.
    #[arg(long, value_enum, default_value_t = Arch::Unet256)]
    pub arch: Arch,
    /// Training image size (square); the U-Net depth follows it (8 levels at 256)
    /// [default: 256; with --resume, the run's own: a new size continues at that resolution].
    #[arg(long)]
    pub size: Option<usize>,
    #[arg(long, default_value_t = 32)]
    pub batch_size: usize,
    /// Adversarial (GAN + L1) epochs [default: 100; with --resume, the run's own].
    #[arg(long)]
    pub epochs: Option<usize>,
    /// L1-only generator pretraining epochs, run first [default: 0; with --resume, the run's own].
    #[arg(long)]
    pub pretrain_epochs: Option<usize>,
    /// Critic pretraining epochs after the L1 stage: only the discriminator learns, on the
    /// generator's outputs, before the GAN epochs (DeOldify's NoGAN) [default: 0; with
    /// --resume, the run's own].
    #[arg(long)]
    pub critic_epochs: Option<usize>,
    /// Adam learning rate [default: 2e-4; with --resume, the run's own].
    #[arg(long)]
    pub lr: Option<f64>,
    /// Weight of the L1 term [default: 100; with --resume, the run's own].
    #[arg(long)]
    pub lambda_l1: Option<f32>,
    /// Keep an exponential moving average of the generator's weights with this decay (e.g.
    /// 0.99) and validate and save the average [default: 0, off; with --resume, the run's own].
    #[arg(long)]
    pub ema_decay: Option<f32>,
    /// Random-crop augmentation: train on random windows whose sides are this fraction (up to
    /// 1) of each image's, e.g. 0.6 [default: 1, whole images; with --resume, the run's own].
    #[arg(long)]
    pub crop_min: Option<f32>,
    /// Mirror term: pull the output towards the network's own (no-gradient) prediction for the
    /// mirrored image, with this weight (e.g. 30); distils `--flip-average` into one pass
    /// [default: 0, off; with --resume, the run's own].
    #[arg(long)]
    pub mirror_weight: Option<f32>,
    /// Colourfulness term: pull each output's mean chroma and chroma spread towards its
    /// truth's with this weight (e.g. 100, beside --lambda-l1 100), against L1's pull towards
    /// grey [default: 0, off; with --resume, the run's own].
    #[arg(long)]
    pub chroma_weight: Option<f32>,
    /// Perceptual term: compare the output with the truth, as sRGB, in the features of the
    /// frozen ImageNet encoder, with this weight (e.g. 5 beside --lambda-l1 10)
    /// [default: 0, off; with --resume, the run's own].
    #[arg(long)]
    pub perceptual_weight: Option<f32>,
    /// Generator filters at the outermost level (pix2pix ngf).
    #[arg(long, default_value_t = 64)]
    pub ngf: usize,
    /// Discriminator filters of the first layer (pix2pix ndf).
    #[arg(long, default_value_t = 64)]
    pub ndf: usize,
    /// Seed of the split, the order and the augmentation.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Turn off random horizontal flips.
    #[arg(long)]
    pub no_flip: bool,
    /// Most validation images scored per epoch (0: all).
    #[arg(long, default_value_t = 256)]
    pub val_limit: usize,
    /// Minutes between mid-epoch checkpoints.
    #[arg(long, default_value_t = 10.0)]
    pub checkpoint_minutes: f64,
    /// Epochs at the start with the pretrained encoder frozen (only the decoder learns)
    /// [default: 0; with --resume, the run's own].
    #[arg(long)]
    pub freeze_encoder_epochs: Option<usize>,
    /// Keep every epoch's generator in RUN_DIR/generators/.
    #[arg(long)]
    pub keep_generators: bool,
    /// ImageNet EfficientNet-Lite0 weights for --arch effnet-unet's encoder and for
    /// --perceptual-weight's feature network (default: `$TINCT_WEIGHTS`, else built in).
    #[arg(long)]
    pub encoder_weights: Option<PathBuf>,
    /// Start the generator from a trained model (a name such as `photo`, a .safetensors file or
    /// a run directory) instead of from scratch: fine-tuning. Its architecture must match --arch
    /// and --size's network.
    #[arg(long, value_name = "MODEL")]
    pub init_from: Option<String>,
    /// Continue the run in --out from its last checkpoint.
    #[arg(long)]
    pub resume: bool,
    /// Overwrite an existing run directory.
    #[arg(long)]
    pub force: bool,
    /// cpu (default), or vulkan / wgpu / cuda when built with that feature.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// No progress bars or per-epoch lines.
    #[arg(long, short)]
    pub quiet: bool,
}

#[derive(Args, Debug)]
pub struct ColorizeArgs {
    /// Image files, folders or glob patterns.
    #[arg(required = true)]
    pub inputs: Vec<String>,
    /// Output folder, or an output file (a name with an image extension) when there is one
    /// input file; end it with / to make a folder of any name.
    #[arg(short, long, default_value = "colorized")]
    pub out: PathBuf,
    /// Shipped model name (photo, anime, drawn), run directory or .safetensors file.
    #[arg(long, default_value = crate::zoo::DEFAULT_MODEL)]
    pub model: String,
    #[command(flatten)]
    pub gan: GanArgs,
    /// Output format (extension) instead of the input's: png, jpg, webp, tif, bmp.
    #[arg(long)]
    pub format: Option<String>,
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Print nothing but errors.
    #[arg(long, short)]
    pub quiet: bool,
    /// Colourisation method: the GAN, or one of the classic methods.
    #[arg(long, value_enum, default_value_t = MethodKind::Gan)]
    pub method: MethodKind,
    #[command(flatten)]
    pub classic: ClassicArgs,
    #[command(flatten)]
    pub batch: BatchArgs,
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

#[derive(Args, Debug)]
pub struct VideoArgs {
    /// Input videos: files (any format ffmpeg reads), folders (searched for video files) or
    /// glob patterns; omit with --from-frames.
    #[arg(required_unless_present = "from_frames")]
    pub inputs: Vec<String>,
    /// Output video file (the extension picks the container), or with several inputs a folder
    /// (each output keeps its input's path below its folder, as .mp4); omit with --to-frames.
    #[arg(short, long, required_unless_present_any = ["to_frames", "eval"])]
    pub out: Option<PathBuf>,
    /// Read numbered image files from this folder instead of a video.
    #[arg(long, conflicts_with = "inputs")]
    pub from_frames: Option<PathBuf>,
    /// Frame rate of --from-frames input.
    #[arg(long, default_value = "25")]
    pub fps: crate::video::FrameRate,
    /// Write numbered PNG frames to this folder instead of a video.
    #[arg(long, conflicts_with = "out")]
    pub to_frames: Option<PathBuf>,
    /// Colour every frame on its own (no temporal stabilisation).
    #[arg(long)]
    pub no_stabilize: bool,
    /// Weight of the previous frame's colour where L did not change, in [0, 1): higher is
    /// steadier, lower follows the network sooner.
    #[arg(long, default_value_t = crate::video::StabilizerParams::default().w_max, value_name = "W")]
    pub steadiness: f32,
    /// Shipped model name, run directory or .safetensors file.
    #[arg(long, default_value = crate::zoo::DEFAULT_MODEL)]
    pub model: String,
    #[command(flatten)]
    pub gan: GanArgs,
    /// Frames per network batch.
    #[arg(long, default_value_t = 8)]
    pub batch_size: usize,
    /// Colour at most this many frames in a row with one network run: the frames after a key
    /// frame take its colour on their own L until the picture moves on (--key-dl). 1 runs the
    /// network on every frame.
    #[arg(long, default_value_t = crate::video::KeyframeParams::default().every, value_name = "N")]
    pub every: u32,
    /// Mean change of L* (over the frame) from the key frame that makes a new key frame.
    #[arg(long, default_value_t = crate::video::KeyframeParams::default().max_dl, value_name = "L")]
    pub key_dl: f32,
    /// Largest camera pan, in pixels, along which a key frame's colour is moved instead of
    /// making a new key frame; 0 turns the pan test off.
    #[arg(long, default_value_t = crate::video::KeyframeParams::default().max_shift, value_name = "PX")]
    pub key_shift: u32,
    /// x264 quality, 0 to 51 (lower is better) [default: 17 for a file, 23 for a live source].
    #[arg(long, value_parser = clap::value_parser!(u8).range(0..=51))]
    pub crf: Option<u8>,
    /// x264 preset: slower ones write smaller files at the same quality (veryfast, faster,
    /// fast, medium, slow...).
    #[arg(long, default_value = "veryfast")]
    pub preset: String,
    /// Stop after this many frames.
    #[arg(long)]
    pub max_frames: Option<u64>,
    /// Replace an existing output.
    #[arg(long, conflicts_with = "skip_existing")]
    pub force: bool,
    #[command(flatten)]
    pub batch: BatchArgs,
    /// Colour as the frames arrive and never fall behind: when colouring is slower than the
    /// source, carry the last colour forward or drop frames. On by default for a camera
    /// (/dev/videoN), a stream URL (udp://, rtsp://, srt://, http://...) or standard input
    /// (-); for a file, reads it at its own frame rate as a camera would deliver it.
    #[arg(long, overrides_with = "no_live")]
    pub live: bool,
    /// Colour every frame of a camera or stream, however far behind that falls.
    #[arg(long)]
    pub no_live: bool,
    /// Live input: seconds without a frame before the stream counts as ended (before the
    /// first frame: an error).
    #[arg(long, default_value_t = 10.0, value_name = "SECONDS")]
    pub timeout: f64,
    /// Live input: write frames in, out, dropped and carried, frames/s and latency as JSON.
    #[arg(long, value_name = "FILE")]
    pub stats: Option<PathBuf>,
    /// Instead of writing a video, treat the input as colour ground truth: colourise its gray
    /// frames with and without stabilisation and print flicker, PSNR and colourfulness (JSON).
    #[arg(long)]
    pub eval: bool,
    #[arg(long, default_value = "cpu")]
    pub device: String,
    #[arg(long, short)]
    pub quiet: bool,
}

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

/// Runs a parsed command line.
pub fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Train(a) => train(a),
        Command::Colorize(a) => colorize(a),
        Command::Eval(a) => eval(a),
        Command::Video(a) => video(a),
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

fn train(a: TrainArgs) -> Result<ExitCode> {
    let device = crate::device_by_name(&a.device)?;
    let size = a.size.unwrap_or(256);
    let generator = match a.arch {
        Arch::Unet256 => ModelConfig::unet_for_size(size, a.ngf),
        Arch::EffnetUnet => ModelConfig::effnet_unet(size),
    };
    if let Some(d) = a.ema_decay
        && !(0.0..1.0).contains(&d)
    {
        anyhow::bail!("--ema-decay {d}: must be at least 0 and below 1");
    }
    if let Some(c) = a.crop_min
        && !(0.1..=1.0).contains(&c)
    {
        anyhow::bail!("--crop-min {c}: must be between 0.1 and 1");
    }
    for (flag, w) in [
        ("--mirror-weight", a.mirror_weight),
        ("--chroma-weight", a.chroma_weight),
        ("--perceptual-weight", a.perceptual_weight),
    ] {
        if let Some(w) = w
            && !(w >= 0.0 && w.is_finite())
        {
            anyhow::bail!("{flag} {w}: must be a finite number, at least 0");
        }
    }
    // Settings a resumed run may change are left at TrainConfig's defaults here unless given.
    let schedule = crate::train::Schedule {
        epochs: a.epochs,
        pretrain_epochs: a.pretrain_epochs,
        critic_epochs: a.critic_epochs,
        freeze_encoder_epochs: a.freeze_encoder_epochs,
        lr: a.lr,
        lambda_l1: a.lambda_l1,
        ema_decay: a.ema_decay,
        crop_min: a.crop_min,
        mirror_weight: a.mirror_weight,
        chroma_weight: a.chroma_weight,
        perceptual_weight: a.perceptual_weight,
        size: a.size,
    };
    let mut config = TrainConfig::new(generator, PatchGanConfig::new().with_ndf(a.ndf))
        .with_batch_size(a.batch_size)
        .with_seed(a.seed)
        .with_augment(!a.no_flip)
        .with_val_limit(a.val_limit)
        .with_checkpoint_minutes(a.checkpoint_minutes)
        .with_keep_generators(a.keep_generators);
    schedule.apply(&mut config);
    let stop = Arc::new(AtomicBool::new(false));
    install_interrupt(
        stop.clone(),
        "finishing the current step and saving a checkpoint (Ctrl-C again to quit now)",
    );
    let init_from = a.init_from.as_deref().map(crate::zoo::resolve).transpose()?;
    let encoder_weights = match (a.arch, a.encoder_weights) {
        (Arch::EffnetUnet, None) if !a.resume && init_from.is_none() => Some(crate::zoo::encoder_weights()?),
        (_, w) => w.map(ModelSource::File),
    };
    let paths = RunPaths {
        data: a.data,
        val: a.val,
        out: a.out,
    };
    let opts = TrainOptions {
        encoder_weights,
        init_from,
        resume: a.resume,
        force: a.force,
        quiet: a.quiet,
        stop,
        schedule,
    };
    crate::train::train(config, &paths, &opts, &device)?;
    Ok(ExitCode::SUCCESS)
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

fn colorize(a: ColorizeArgs) -> Result<ExitCode> {
    let device = crate::device_by_name(&a.device)?;
    a.classic.check_used(&[a.method])?;
    let format = a.format.as_deref().map(crate::imageio::parse_format).transpose()?;
    // `-o` names a file when it has an image extension, is not a folder and does not end in /.
    let out_text = a.out.as_os_str().to_string_lossy();
    let out_format = image::ImageFormat::from_path(&a.out).ok();
    let names_file = !a.out.is_dir() && !out_text.ends_with(['/', std::path::MAIN_SEPARATOR]) && out_format.is_some();
    let several = a.inputs.len() > 1 || Path::new(&a.inputs[0]).is_dir() || a.inputs[0].contains(['*', '?', '[']);
    if names_file {
        if several {
            bail!(
                "-o {out_text} names a file, but more than one image may be coloured: give a folder (end it with / to make a folder of this name)"
            );
        }
        crate::imageio::format_for(&a.out)?;
        if let Some(f) = &format
            && image::ImageFormat::from_extension(f) != out_format
        {
            bail!("-o {out_text} and --format {f} disagree; give one of them");
        }
    }
    let Selected {
        shard,
        total,
        inputs,
        missing,
    } = a.batch.inputs(
        &a.inputs,
        (!names_file).then_some(a.out.as_path()),
        crate::batch::Kind::Images,
        a.quiet,
    )?;
    let method = match a.method {
        MethodKind::Gan => Method::Gan(Box::new(load_colorizer(&a.model, &device, &a.gan)?)),
        kind => Method::classic(kind, &a.classic.options())?,
    };
    let stop = Arc::new(AtomicBool::new(false));
    install_interrupt(stop.clone(), "stopping after the current image");
    let opts = BatchOptions {
        out_dir: a.out.clone(),
        format,
        out_file: names_file.then(|| a.out.clone()),
        skip_existing: a.batch.skip_existing,
        stop: Some(stop.clone()),
    };
    let quiet = a.quiet;
    let started = std::time::Instant::now();
    let results = crate::batch::run_batch(&inputs, &opts, &|img| method.colorizer().colorize_image(img), &|r| {
        print_outcome(r, quiet)
    });
    let report = crate::batch::Report::new(
        "colorize",
        shard,
        total,
        &results,
        &missing,
        stop.load(Ordering::SeqCst),
        started,
    );
    a.batch.finish(report)
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

fn eval(a: EvalArgs) -> Result<ExitCode> {
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

impl VideoArgs {
    fn keyframes(&self) -> crate::video::KeyframeParams {
        crate::video::KeyframeParams {
            every: self.every,
            max_dl: self.key_dl,
            max_shift: self.key_shift,
        }
    }
}

fn video(a: VideoArgs) -> Result<ExitCode> {
    use crate::video::{VideoInput, VideoOptions, VideoOutput};
    let device = crate::device_by_name(&a.device)?;
    let sharded = a.batch.shard.is_some() || a.batch.skip_existing || a.batch.report.is_some();
    let several = a.inputs.len() > 1
        || a.inputs
            .iter()
            .any(|i| Path::new(i).is_dir() || i.contains(['*', '?', '[']));
    let live_source = match a.inputs.as_slice() {
        [one] => crate::video::LiveSource::parse(one),
        _ => None,
    };
    if live_source.is_some() || a.live {
        return live(&a, live_source, &device);
    }
    if a.stats.is_some() {
        bail!("--stats describes a live run: give a camera, a stream, - or --live");
    }
    if a.from_frames.is_some() && sharded {
        bail!("--shard, --skip-existing and --report take video inputs, not --from-frames");
    }
    if a.eval && (several || sharded) {
        bail!("--eval scores one clip; give one input file without --shard, --skip-existing or --report");
    }
    let mut colorizer = load_colorizer(&a.model, &device, &a.gan)?;
    let opts = VideoOptions {
        stabilize: !a.no_stabilize,
        stabilizer: crate::video::StabilizerParams {
            w_max: a.steadiness,
            ..Default::default()
        },
        keyframes: a.keyframes(),
        batch_size: a.batch_size,
        crf: a.crf.unwrap_or(VideoOptions::default().crf),
        preset: a.preset.clone(),
        max_frames: a.max_frames,
        overwrite: a.force,
        quiet: a.quiet,
        ..VideoOptions::default()
    };
    let stop = Arc::new(AtomicBool::new(false));
    install_interrupt(stop.clone(), "stopping; the partial output is removed");
    // One input (a file or a frames folder): that one video, as always.
    let single = match (&a.from_frames, several || sharded) {
        (Some(dir), _) => Some(VideoInput::Frames {
            dir: dir.clone(),
            frame_rate: a.fps,
        }),
        (None, false) => Some(VideoInput::File(PathBuf::from(&a.inputs[0]))),
        (None, true) => None,
    };
    if let Some(input) = single {
        if a.eval {
            let report = crate::video::evaluate(&input, &mut colorizer, &opts, &stop)?;
            println!("{}", serde_json::to_string_pretty(&report)?);
            return Ok(ExitCode::SUCCESS);
        }
        let output = match (&a.out, &a.to_frames, &input) {
            (_, Some(dir), _) => VideoOutput::Frames(dir.clone()),
            // A folder for one input file: the input's name, as .mp4.
            (Some(dir), None, VideoInput::File(f))
                if dir.is_dir() || dir.as_os_str().to_string_lossy().ends_with('/') =>
            {
                VideoOutput::File(crate::batch::output_path(f, None, dir, Some("mp4")))
            }
            (Some(f), None, _) => VideoOutput::File(f.clone()),
            (None, None, _) => bail!("give an output file (-o) or --to-frames DIR"),
        };
        let summary = crate::video::run(&input, &output, &mut colorizer, &opts, &stop)?;
        if !a.quiet {
            eprintln!(
                "{} frames ({}x{}, {:.3} fps, {} through the network) in {:.1} s: {:.2} frames/s -> {}",
                summary.frames,
                summary.width,
                summary.height,
                summary.frame_rate.as_f64(),
                summary.key_frames,
                summary.seconds,
                summary.frames as f64 / summary.seconds.max(1e-9),
                summary.output.display()
            );
        }
        return Ok(ExitCode::SUCCESS);
    }
    // A batch of videos: -o is a folder, and each video is one unit of a shard.
    if a.to_frames.is_some() {
        bail!("--to-frames takes one input video; give -o FOLDER for several");
    }
    let Some(out_dir) = a.out.clone() else {
        bail!("give an output folder (-o) for several input videos")
    };
    if out_dir.is_file() {
        bail!(
            "-o {}: is a file; several input videos need an output folder",
            out_dir.display()
        );
    }
    let Selected {
        shard,
        total,
        inputs,
        missing,
    } = a
        .batch
        .inputs(&a.inputs, Some(&out_dir), crate::batch::Kind::Videos, a.quiet)?;
    let started = std::time::Instant::now();
    let outputs = inputs
        .iter()
        .map(|i| crate::batch::output_path(&i.path, Some(&i.rel), &out_dir, Some("mp4")))
        .collect();
    let results = crate::batch::run_each(
        &inputs,
        outputs,
        a.batch.skip_existing,
        &stop,
        &mut |input, out| {
            let (input, output) = (
                VideoInput::File(input.path.clone()),
                VideoOutput::File(out.to_path_buf()),
            );
            Ok(crate::video::run(&input, &output, &mut colorizer, &opts, &stop).map(|_| ())?)
        },
        &|r| print_outcome(r, a.quiet),
    );
    let report = crate::batch::Report::new(
        "video",
        shard,
        total,
        &results,
        &missing,
        stop.load(Ordering::SeqCst),
        started,
    );
    a.batch.finish(report)
}

/// `tinct video` on a camera, a stream, standard input or a file with `--live`.
fn live(a: &VideoArgs, source: Option<crate::video::LiveSource>, device: &burn::prelude::Device) -> Result<ExitCode> {
    use crate::video::{LiveOptions, LiveSink, LiveSource};
    let source = match (source, a.inputs.as_slice()) {
        (Some(s), _) => s,
        (None, [file]) => LiveSource::File(PathBuf::from(file)),
        _ => bail!("--live takes one input: a camera, a stream URL, - or a file"),
    };
    if a.eval || a.from_frames.is_some() || a.to_frames.is_some() {
        bail!("a live source is coloured into a file, a stream URL or - (standard output); not --eval or frames");
    }
    if a.batch.shard.is_some() || a.batch.skip_existing || a.batch.report.is_some() {
        bail!("--shard, --skip-existing and --report take video files, not a live source");
    }
    if !(a.timeout > 0.0 && a.timeout.is_finite()) {
        bail!("--timeout {}: give a number of seconds above 0", a.timeout);
    }
    let Some(out) = &a.out else {
        bail!("give an output: -o FILE, -o udp://HOST:PORT (or another stream URL), or -o - for standard output")
    };
    let sink = LiveSink::parse(out);
    let colorizer = load_colorizer(&a.model, device, &a.gan)?;
    let opts = LiveOptions {
        live: !a.no_live,
        timeout: std::time::Duration::from_secs_f64(a.timeout),
        stabilize: !a.no_stabilize,
        stabilizer: crate::video::StabilizerParams {
            w_max: a.steadiness,
            ..Default::default()
        },
        keyframes: a.keyframes(),
        max_frames: a.max_frames,
        overwrite: a.force,
        crf: a.crf.unwrap_or(LiveOptions::default().crf),
        preset: a.preset.clone(),
        ..LiveOptions::default()
    };
    let stop = Arc::new(AtomicBool::new(false));
    install_interrupt(stop.clone(), "finishing the output");
    let stats = crate::video::run_live(&source, &sink, &colorizer, &opts, &stop)?;
    if let Some(p) = &a.stats {
        stats.write(p)?;
    }
    if !a.quiet {
        eprintln!(
            "{}: {} frames in, {} out ({} coloured, {} carried, {} dropped), {:.1} frames/s, latency p50 {:.0} ms, p99 {:.0} ms ({}) -> {}",
            stats.source,
            stats.frames_in,
            stats.frames_out,
            stats.coloured,
            stats.carried,
            stats.dropped,
            stats.fps_out,
            stats.latency_ms_p50,
            stats.latency_ms_p99,
            stats.ended,
            stats.output
        );
    }
    Ok(ExitCode::SUCCESS)
}
