//! `tinct video`: files, frame folders and live sources.

use super::*;

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

impl VideoArgs {
    fn stabilizer(&self) -> crate::video::StabilizerParams {
        crate::video::StabilizerParams {
            w_max: self.steadiness,
            ..Default::default()
        }
    }

    fn keyframes(&self) -> crate::video::KeyframeParams {
        crate::video::KeyframeParams {
            every: self.every,
            max_dl: self.key_dl,
            max_shift: self.key_shift,
        }
    }
}

pub(super) fn video(a: VideoArgs) -> Result<ExitCode> {
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
        stabilizer: a.stabilizer(),
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
        stabilizer: a.stabilizer(),
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
