//! `tinct train`.

use super::*;

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

pub(super) fn train(a: TrainArgs) -> Result<ExitCode> {
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
