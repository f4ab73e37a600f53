//! `tinct colorize`.

use super::*;

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

pub(super) fn colorize(a: ColorizeArgs) -> Result<ExitCode> {
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
