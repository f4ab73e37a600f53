#!/usr/bin/env python3
"""A PyTorch twin of `tinct train --arch effnet-unet`, for training tinct's models on an NVIDIA GPU.

Why this exists: Burn 0.22's GPU backends cannot be used for training here. burn-cuda downloads
LLVM at build time, and the Vulkan backend spent more than 400 s compiling kernels before its
first effnet-unet training step (docs/experiments/2026-11-25-vulkan-on-h100.md). This script builds
the same networks with the same parameter names and layouts, the same losses (BCE + lambda L1
+ the colourfulness term of `train::loss::chroma_match`), the same L*a*b* scaling (L/50 - 1,
ab/110) and the same weight averaging, and it reads and writes tinct's safetensors files, so a
model trained here is used by `tinct colorize`/`eval`/`export` like any other. `--check` compares
its forward pass with tinct's (`cargo run --release --example forward_dump`).

Differences from `tinct train`: training is budgeted in seconds rather than epochs, the random
crops are taken on the GPU from images stored pre-resized, and there is no resumable checkpoint
(the weight-averaged generator is written at the `--snapshots` times).
"""
import argparse
import json
import os
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

# (kernel, stride, expand ratio, output channels, repeats) of EfficientNet-Lite0 stages 0-6.
STAGES = [(3, 1, 1, 16, 1), (3, 2, 6, 24, 2), (5, 2, 6, 40, 2), (3, 2, 6, 80, 3),
          (5, 1, 6, 112, 3), (5, 2, 6, 192, 4), (3, 1, 6, 320, 1)]
SKIP_CHANNELS = [112, 40, 24, 16, 1]
SKIP_STAGES = [0, 1, 2, 4, 6]
AB_SCALE = 110.0
CHROMA_MEAN_SHARE = 0.3
GEN_PREFIX = "EffUnet."


def relu6(x):
    return x.clamp(0.0, 6.0)


class SameConv(nn.Conv2d):
    """Convolution with TensorFlow "SAME" padding for even inputs (asymmetric at stride 2)."""

    def __init__(self, cin, cout, k, stride, groups):
        super().__init__(cin, cout, k, stride=stride, groups=groups, bias=False, padding=0)
        if stride == 1:
            self.pad = (k // 2,) * 4
        else:
            total = k - stride
            before, after = total // 2, total - total // 2
            self.pad = (before, after, before, after)

    def forward(self, x):
        return super().forward(F.pad(x, self.pad))


def enc_bn(c):
    return nn.BatchNorm2d(c, eps=1e-3, momentum=0.01)


class Block(nn.Module):
    def __init__(self, cin, cout, k, stride, expand):
        super().__init__()
        if expand == 1:
            self.conv_dw = SameConv(cin, cin, k, stride, cin)
            self.bn1 = enc_bn(cin)
            self.conv_pw = SameConv(cin, cout, 1, 1, 1)
            self.bn2 = enc_bn(cout)
            self.expand = False
            self.residual = False
        else:
            hid = cin * expand
            self.conv_pw = SameConv(cin, hid, 1, 1, 1)
            self.bn1 = enc_bn(hid)
            self.conv_dw = SameConv(hid, hid, k, stride, hid)
            self.bn2 = enc_bn(hid)
            self.conv_pwl = SameConv(hid, cout, 1, 1, 1)
            self.bn3 = enc_bn(cout)
            self.expand = True
            self.residual = stride == 1 and cin == cout

    def forward(self, x):
        if not self.expand:
            return self.bn2(self.conv_pw(relu6(self.bn1(self.conv_dw(x)))))
        h = relu6(self.bn1(self.conv_pw(x)))
        h = relu6(self.bn2(self.conv_dw(h)))
        h = self.bn3(self.conv_pwl(h))
        return h + x if self.residual else h


class Encoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv_stem = SameConv(3, 32, 3, 2, 1)
        self.bn1 = enc_bn(32)
        cin = 32
        stages = []
        for k, s, e, cout, n in STAGES:
            blocks = []
            for i in range(n):
                blocks.append(Block(cin, cout, k, s if i == 0 else 1, e))
                cin = cout
            stages.append(nn.ModuleList(blocks))
        self.blocks = nn.ModuleList(stages)

    def forward(self, x):
        h = relu6(self.bn1(self.conv_stem(x)))
        outs = []
        for stage in self.blocks:
            for block in stage:
                h = block(h)
            outs.append(h)
        return outs


def init_pix2pix(module):
    """pix2pix's init: conv weights N(0, 0.02), biases 0, batch-norm scale N(1, 0.02)."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)


class UpBlock(nn.Module):
    """Bilinear x2 (corners aligned), concatenation with the skip, 1x1 mix + BN + ReLU,
    depthwise 3x3 + BN + ReLU (tinct's `effnet::UpBlock`)."""

    def __init__(self, cin, cout):
        super().__init__()
        self.mix = nn.Conv2d(cin, cout, 1, bias=False)
        self.norm1 = nn.BatchNorm2d(cout, eps=1e-5, momentum=0.1)
        self.spatial = nn.Conv2d(cout, cout, 3, padding=1, groups=cout, bias=False)
        self.norm2 = nn.BatchNorm2d(cout, eps=1e-5, momentum=0.1)

    def forward(self, x, skip):
        up = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=True)
        h = F.relu(self.norm1(self.mix(torch.cat([up, skip], 1))))
        return F.relu(self.norm2(self.spatial(h)))


class EffUnet(nn.Module):
    def __init__(self, decoder=(128, 64, 48, 32, 16)):
        super().__init__()
        self.encoder = Encoder()
        ups, cin = [], 320
        for i in range(5):
            ups.append(UpBlock(cin + SKIP_CHANNELS[i], decoder[i]))
            cin = decoder[i]
        self.up = nn.ModuleList(ups)
        self.head = nn.Conv2d(decoder[4], 2, 1)
        init_pix2pix(self.up)
        init_pix2pix(self.head)

    def forward(self, l):
        return torch.tanh(self.forward_head(l))

    def forward_head(self, l):
        stages = self.encoder(l.repeat(1, 3, 1, 1))
        h = stages[SKIP_STAGES[4]]
        skips = [stages[SKIP_STAGES[3]], stages[SKIP_STAGES[2]], stages[SKIP_STAGES[1]],
                 stages[SKIP_STAGES[0]], l]
        for block, skip in zip(self.up, skips):
            h = block(h, skip)
        return self.head(h)


class DLayer(nn.Module):
    def __init__(self, cin, cout, stride, norm):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 4, stride=stride, padding=1, bias=not norm)
        self.norm = nn.BatchNorm2d(cout) if norm else None


class PatchGan(nn.Module):
    """The 70x70 PatchGAN on (L, ab) (tinct's `patchgan::PatchGan`)."""

    def __init__(self, cin=3, ndf=64, n_layers=3):
        super().__init__()
        layers, mult = [DLayer(cin, ndf, 2, False)], 1
        for n in range(1, n_layers + 1):
            prev, mult = mult, min(1 << n, 8)
            layers.append(DLayer(ndf * prev, ndf * mult, 2 if n < n_layers else 1, True))
        self.layers = nn.ModuleList(layers)
        self.out = nn.Conv2d(ndf * mult, 1, 4, stride=1, padding=1)
        init_pix2pix(self)

    def forward(self, x):
        h = x
        for layer in self.layers:
            h = layer.conv(h)
            if layer.norm is not None:
                h = layer.norm(h)
            h = F.leaky_relu(h, 0.2)
        return self.out(h)


# ---- tinct's safetensors naming: BN gamma/beta for weight/bias, no batch counters ----

def to_tinct(state, prefix=""):
    out = {}
    for k, v in state.items():
        if k.endswith("num_batches_tracked"):
            continue
        parts = k.split(".")
        if parts[-1] in ("weight", "bias") and _is_bn_name(parts[-2]):
            parts[-1] = "gamma" if parts[-1] == "weight" else "beta"
        out[prefix + ".".join(parts)] = v
    return out


def _is_bn_name(name):
    return name.startswith("bn") or name.startswith("norm")


def from_tinct(tensors, prefix=""):
    out = {}
    for k, v in tensors.items():
        if prefix and not k.startswith(prefix):
            continue
        k = k[len(prefix):]
        parts = k.split(".")
        if parts[-1] == "gamma":
            parts[-1] = "weight"
        elif parts[-1] == "beta":
            parts[-1] = "bias"
        out[".".join(parts)] = v.float()
    return out


def load_into(module, tensors, what):
    missing, unexpected = module.load_state_dict(tensors, strict=False)
    missing = [m for m in missing if not m.endswith("num_batches_tracked")]
    if missing or unexpected:
        sys.exit(f"{what}: {len(missing)} missing, {len(unexpected)} unexpected tensors: "
                 f"{(missing + unexpected)[:5]}")


def load_imagenet_encoder(g, path):
    """timm-named EfficientNet-Lite0 weights (the classifier head is ignored)."""
    t = load_file(path)
    enc = {k: v.float() for k, v in t.items()
           if k.split(".")[0] in ("conv_stem", "bn1", "blocks")}
    load_into(g.encoder, enc, path)


def generator_config(size):
    """tinct's generator config."""
    effnet = {"decoder": [128, 64, 48, 32, 16]}
    return {"generator": {"arch": "effnet-unet", **effnet}, "size": size, "saturation": 1.0}


def save_generator(state, path, size, half):
    """A tinct generator file: tensors named as Burn names them, config embedded (tinct reads
    it from the metadata, so no `.json` is written beside it)."""
    tensors = {k: (v.half() if half and v.is_floating_point() else v).contiguous().cpu()
               for k, v in to_tinct(state, GEN_PREFIX).items()}
    cfg = json.dumps(generator_config(size), indent=2)
    tmp = path + ".tmp"
    save_file(tensors, tmp, metadata={"tinct.generator": cfg})
    os.replace(tmp, path)


# ---- colour (tinct's color.rs constants) ----

RGB_TO_XYZ = [[0.4124564, 0.3575761, 0.1804375],
              [0.2126729, 0.7151522, 0.0721750],
              [0.0193339, 0.1191920, 0.9503041]]
D65 = [0.95047, 1.0, 1.08883]
EPSILON = 216.0 / 24389.0
KAPPA = 24389.0 / 27.0


def rgb_to_lab(rgb):
    """`[B, 3, H, W]` sRGB in [0, 1] -> L in [0, 100], a, b (CIE 1976, D65)."""
    lin = torch.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)
    m = torch.tensor(RGB_TO_XYZ, device=rgb.device, dtype=rgb.dtype)
    xyz = torch.einsum("ij,bjhw->bihw", m, lin)
    xyz = xyz / torch.tensor(D65, device=rgb.device, dtype=rgb.dtype).view(1, 3, 1, 1)
    f = torch.where(xyz > EPSILON, xyz.clamp_min(1e-12) ** (1.0 / 3.0), (KAPPA * xyz + 16.0) / 116.0)
    l = 116.0 * f[:, 1:2] - 16.0
    a = 500.0 * (f[:, 0:1] - f[:, 1:2])
    b = 200.0 * (f[:, 1:2] - f[:, 2:3])
    return l, torch.cat([a, b], 1)


# ---- losses (tinct's train::loss) ----

def chroma_stats(ab):
    n = ab.shape[0]
    ab = ab.reshape(n, 2, -1)
    mean_chroma = (ab.pow(2).sum(1) + 1e-6).sqrt().mean(1)
    centred = ab - ab.mean(2, keepdim=True)
    spread = (centred.pow(2).mean(2).sum(1) + 1e-6).sqrt()
    return mean_chroma, spread


def chroma_match(pred, target):
    pm, ps = chroma_stats(pred)
    tm, ts = chroma_stats(target.detach())
    return ((ps - ts).abs() + CHROMA_MEAN_SHARE * (pm - tm).abs()).mean()


def bce(logits, y):
    return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, y))


# ---- data ----

def load_images(dirs, size, holdout_every):
    """All images of `dirs`, resized (squashed) to size x size, as one uint8 `[N, 3, S, S]`
    array; every `holdout_every`-th file (sorted by name) is left out and listed."""
    from concurrent.futures import ThreadPoolExecutor
    from PIL import Image

    files = []
    for d in dirs:
        files += sorted(os.path.join(d, f) for f in os.listdir(d)
                        if f.lower().endswith((".jpg", ".jpeg", ".png", ".webp")))
    held = [f for i, f in enumerate(files) if holdout_every and i % holdout_every == 0]
    train = [f for f in files if f not in set(held)]

    def read(p):
        im = Image.open(p).convert("RGB")
        if im.size != (size, size):
            im = im.resize((size, size), Image.LANCZOS)
        return np.asarray(im).transpose(2, 0, 1)

    with ThreadPoolExecutor(16) as pool:
        arr = np.stack(list(pool.map(read, train)))
    return arr, held


class Batches:
    """Random crops (sides a fraction in [crop_min, 1] of the image's, aspect kept) resized to
    `size`, random mirroring, then L*a*b* scaled as tinct scales it."""

    def __init__(self, images, size, batch, crop_min, gen):
        self.images, self.size, self.batch, self.crop_min, self.gen = images, size, batch, crop_min, gen
        self.order, self.pos = None, 0

    def next(self):
        n = self.images.shape[0]
        if self.order is None or self.pos + self.batch > n:
            self.order = torch.randperm(n, generator=self.gen).to(self.images.device)
            self.pos = 0
        idx = self.order[self.pos:self.pos + self.batch]
        self.pos += self.batch
        dev = self.images.device
        b = idx.numel()
        u = torch.rand(b, 5, generator=self.gen).to(dev)
        f = self.crop_min + (1.0 - self.crop_min) * u[:, 0]
        x0, y0 = (1.0 - f) * u[:, 1], (1.0 - f) * u[:, 2]
        flip = torch.where(u[:, 3] < 0.5, -1.0, 1.0)
        theta = torch.zeros(b, 2, 3, device=dev)
        theta[:, 0, 0] = f * flip
        theta[:, 0, 2] = 2 * x0 - 1 + f
        theta[:, 1, 1] = f
        theta[:, 1, 2] = 2 * y0 - 1 + f
        grid = F.affine_grid(theta, [b, 3, self.size, self.size], align_corners=False)
        rgb = F.grid_sample(self.images[idx].float() / 255.0, grid, mode="bilinear",
                            padding_mode="border", align_corners=False).clamp(0, 1)
        l, ab = rgb_to_lab(rgb)
        return (l / 50.0 - 1.0).contiguous(memory_format=torch.channels_last), \
            (ab / AB_SCALE).contiguous(memory_format=torch.channels_last)


# ---- training ----

class Trainer:
    def __init__(self, g, d, args):
        self.g, self.d, self.args = g, d, args
        betas = (0.5, 0.999)
        self.opt_g = torch.optim.Adam(g.parameters(), lr=args.lr, betas=betas, eps=1e-8)
        self.opt_d = torch.optim.Adam(d.parameters(), lr=args.lr, betas=betas, eps=1e-8)
        self.ema = {k: v.detach().clone().float() for k, v in g.state_dict().items()
                    if v.is_floating_point()}
        self.ema_updates = 0

    def update_ema(self):
        decay = min(self.args.ema_decay, (1.0 + self.ema_updates) / (10.0 + self.ema_updates))
        with torch.no_grad():
            for k, v in self.g.state_dict().items():
                if k in self.ema:
                    self.ema[k].mul_(decay).add_(v.float(), alpha=1.0 - decay)
        self.ema_updates += 1

    def step(self, l, ab, adversarial, chroma_weight):
        a = self.args
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=a.bf16):
            fake = self.g(l)
        fake = fake.float()
        extra = chroma_weight * chroma_match(fake, ab) if chroma_weight > 0 else 0.0

        if not adversarial:
            loss_l1 = (fake - ab).abs().mean()
            self.opt_g.zero_grad(set_to_none=True)
            (loss_l1 + extra).backward()
            self.opt_g.step()
            self.update_ema()
            return {"g_l1": loss_l1.detach()}
        real_pair = torch.cat([l, ab], 1)
        fake_pair = torch.cat([l, fake], 1)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=a.bf16):
            loss_d_real = bce(self.d(real_pair).float(), 1.0)
            loss_d_fake = bce(self.d(fake_pair.detach()).float(), 0.0)
        self.opt_d.zero_grad(set_to_none=True)
        (0.5 * (loss_d_real + loss_d_fake)).backward()
        self.opt_d.step()
        for p in self.d.parameters():
            p.requires_grad_(False)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=a.bf16):
            loss_g_gan = bce(self.d(fake_pair).float(), 1.0)
        for p in self.d.parameters():
            p.requires_grad_(True)
        loss_g_l1 = (fake - ab).abs().mean()
        self.opt_g.zero_grad(set_to_none=True)
        (loss_g_gan + a.lambda_l1 * loss_g_l1 + extra).backward()
        self.opt_g.step()
        self.update_ema()
        return {"g_gan": loss_g_gan.detach(), "g_l1": loss_g_l1.detach(),
                "d_real": loss_d_real.detach(), "d_fake": loss_d_fake.detach()}


def build(args, device):
    g = EffUnet()
    d = PatchGan()
    if args.imagenet:
        load_imagenet_encoder(g, args.imagenet)
    if args.init_g:
        t = from_tinct(load_file(args.init_g), GEN_PREFIX)
        load_into(g, t, args.init_g)
    if args.init_d:
        load_into(d, from_tinct(load_file(args.init_d)), args.init_d)
    g = g.to(device).to(memory_format=torch.channels_last)
    d = d.to(device).to(memory_format=torch.channels_last)
    return g, d


def sync():
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def bench(args, device):
    """Training throughput at --size, --batch: images/s of GAN + L1 and L1-only steps."""
    g, d = build(args, device)
    t = Trainer(g, d, args)
    gen = torch.Generator().manual_seed(0)
    l = (torch.rand(args.batch, 1, args.size, args.size, generator=gen) * 2 - 1).to(device)
    ab = (torch.rand(args.batch, 2, args.size, args.size, generator=gen) * 0.6 - 0.3).to(device)
    l, ab = l.contiguous(memory_format=torch.channels_last), ab.contiguous(memory_format=torch.channels_last)
    for adversarial in (True, False):
        for _ in range(args.bench_warmup):
            t.step(l, ab, adversarial, args.chroma_weight)
        sync()
        t0 = time.perf_counter()
        for _ in range(args.bench_steps):
            t.step(l, ab, adversarial, args.chroma_weight)
        sync()
        dt = time.perf_counter() - t0
        what = "GAN + L1" if adversarial else "L1 only"
        print(f"bench {what}: {args.bench_steps * args.batch / dt:.1f} images/s "
              f"({dt / args.bench_steps * 1000:.1f} ms/step, size {args.size}, batch {args.batch}, "
              f"{'bf16 autocast' if args.bf16 else 'fp32/TF32'})", flush=True)
    g.eval()
    x = l[:1]
    with torch.no_grad():
        for _ in range(10):
            g(x)
        sync()
        t0 = time.perf_counter()
        for _ in range(50):
            g(x)
        sync()
    print(f"bench inference: {(time.perf_counter() - t0) / 50 * 1000:.2f} ms per {args.size} px image "
          f"(batch 1)", flush=True)


def train(args, device):
    torch.manual_seed(args.seed)
    images = torch.from_numpy(np.load(args.cache) if args.cache and os.path.exists(args.cache) else
                              load_images(args.data, args.store_size, args.holdout_every)[0])
    images = images.to(device)
    print(f"[{args.name}] {images.shape[0]} training images on {device}", flush=True)
    g, d = build(args, device)
    g.train()
    d.train()
    t = Trainer(g, d, args)
    batches = Batches(images, args.size, args.batch, args.crop_min, torch.Generator().manual_seed(args.seed))
    os.makedirs(args.out, exist_ok=True)
    snaps = sorted(float(s) for s in args.snapshots.split(",")) if args.snapshots else []
    start = time.perf_counter()
    steps, seen, last_log = 0, 0, start
    encoder_frozen = False
    sums, window = {}, 0
    # The clock (--seconds, --snapshots and the stage times) leaves out the first step of each
    # phase (L1 or GAN, encoder frozen or not), where cuDNN tries kernels for the new shapes: with
    # four runs starting side by side that took up to 20 s a step (the drawn runs on the H100).
    phases_seen, uncounted = set(), 0.0
    while True:
        elapsed = time.perf_counter() - start - uncounted
        while snaps and elapsed >= snaps[0]:
            s = snaps.pop(0)
            path = os.path.join(args.out, f"{args.name}-{int(s):04d}s.safetensors")
            save_generator(t.ema, path, args.gen_size, args.half)
            print(f"[{args.name}] {elapsed:.0f} s: saved {path} (step {steps}, "
                  f"{seen / images.shape[0]:.1f} epochs)", flush=True)
        if elapsed >= args.seconds:
            break
        frozen = elapsed < args.freeze_encoder_seconds
        if frozen != encoder_frozen:
            for p in g.encoder.parameters():
                p.requires_grad_(not frozen)
            encoder_frozen = frozen
            print(f"[{args.name}] {elapsed:.0f} s: encoder {'frozen' if frozen else 'trained'}", flush=True)
        adversarial = elapsed >= args.pretrain_seconds
        cw = args.chroma_weight if adversarial else args.pretrain_chroma_weight
        l, ab = batches.next()
        phase = (adversarial, encoder_frozen)
        first = phase not in phases_seen
        phases_seen.add(phase)
        step_start = time.perf_counter()
        losses = t.step(l, ab, adversarial, cw)
        if first:
            sync()
            uncounted += time.perf_counter() - step_start
        for k, v in losses.items():
            sums[k] = sums.get(k, 0.0) + v
        steps += 1
        window += 1
        seen += l.shape[0]
        if time.perf_counter() - last_log > args.log_seconds:
            last_log = time.perf_counter()
            means = " ".join(f"{k} {float(v) / window:.4f}" for k, v in sums.items())
            print(f"[{args.name}] {elapsed:.0f} s step {steps} ({seen / images.shape[0]:.1f} epochs, "
                  f"{seen / max(elapsed, 1e-9):.0f} images/s, {'GAN' if adversarial else 'L1'}): {means}",
                  flush=True)
            sums, window = {}, 0
    save_generator(t.ema, os.path.join(args.out, f"{args.name}-final.safetensors"), args.gen_size, args.half)
    print(f"[{args.name}] done: {seen} images in {time.perf_counter() - start:.0f} s "
          f"({uncounted:.0f} s of first steps not counted)", flush=True)


def average(args):
    """Weight-by-weight mean of tinct generator files of one network (tinct export A B C does the
    same), written with the first file's config and dtype."""
    from safetensors import safe_open
    out, files = args.average[0], args.average[1:]
    if not files:
        sys.exit("--average OUT FILE...: no files to average")
    with safe_open(files[0], "pt") as f:
        meta = f.metadata()
    first = load_file(files[0])
    sums = {k: v.double() for k, v in first.items()}
    for path in files[1:]:
        t = load_file(path)
        if t.keys() != first.keys() or any(t[k].shape != first[k].shape for k in t):
            sys.exit(f"{path}: a different network from {files[0]}")
        for k, v in t.items():
            sums[k] += v.double()
    mean = {k: (v / len(files)).to(first[k].dtype) if first[k].is_floating_point() else first[k]
            for k, v in sums.items()}
    tmp = out + ".tmp"
    save_file(mean, tmp, metadata=meta)
    os.replace(tmp, out)
    print(f"{out}: average of {len(files)}")


def pack(args):
    """What a device call carries for clean.sh (it must fit, with the repository, in 64 MiB): the
    training photos at 256x256 as JPEG quality 80 (same file names, so the same files are held
    out) and the encoder's ImageNet weights alone, in fp16 (the classifier head dropped)."""
    from PIL import Image
    out = args.pack
    os.makedirs(os.path.join(out, "data"), exist_ok=True)
    total = 0
    for d in args.data:
        for f in sorted(os.listdir(d)):
            if not f.lower().endswith((".jpg", ".jpeg", ".png", ".webp")):
                continue
            im = Image.open(os.path.join(d, f)).convert("RGB").resize((256, 256), Image.LANCZOS)
            dst = os.path.join(out, "data", os.path.splitext(f)[0] + ".jpg")
            im.save(dst, quality=80)
            total += os.path.getsize(dst)
    if args.imagenet:
        t = load_file(args.imagenet)
        enc = {k: v.half() for k, v in t.items() if k.split(".")[0] in ("conv_stem", "bn1", "blocks")}
        dst = os.path.join(out, "effnet-enc.safetensors")
        save_file(enc, dst)
        total += os.path.getsize(dst)
    print(f"{out}: {total / 2**20:.1f} MiB")


def check(args):
    """Forward pass of a tinct generator file here against tinct's own (forward_dump)."""
    g = EffUnet()
    load_into(g, from_tinct(load_file(args.check[0]), GEN_PREFIX), args.check[0])
    g.eval()
    size = int(args.check[2])
    x = torch.from_numpy(np.fromfile(args.check[1], dtype="<f4").reshape(1, 1, size, size))
    want = np.fromfile(args.check[3], dtype="<f4").reshape(1, 2, size, size)
    with torch.no_grad():
        y = g(x).numpy()
    diff = np.abs(y - want).max()
    print(f"max |torch - tinct| = {diff:.2e}")
    if args.check_out:
        save_generator(g.state_dict(), args.check_out, size, args.half)
    return diff


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", nargs="*", default=[], help="folders of training images")
    p.add_argument("--cache", help="a .npy of the decoded images (written by --prepare)")
    p.add_argument("--prepare", action="store_true", help="decode --data into --cache and stop")
    p.add_argument("--holdout-every", type=int, default=10,
                   help="leave out every N-th file (sorted) for calibration; 0 keeps all")
    p.add_argument("--store-size", type=int, default=256)
    p.add_argument("--out", default="runs")
    p.add_argument("--name", default="run")
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--gen-size", type=int, default=256, help="working size written into the config")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--lr", type=float, default=2e-4)
    p.add_argument("--lambda-l1", type=float, default=100.0)
    p.add_argument("--chroma-weight", type=float, default=0.0)
    p.add_argument("--pretrain-chroma-weight", type=float, default=0.0)
    p.add_argument("--ema-decay", type=float, default=0.999)
    p.add_argument("--crop-min", type=float, default=0.6)
    p.add_argument("--seconds", type=float, default=60.0)
    p.add_argument("--pretrain-seconds", type=float, default=0.0, help="L1-only stage first")
    p.add_argument("--freeze-encoder-seconds", type=float, default=0.0,
                   help="keep the encoder's weights fixed for this long (tinct's --freeze-encoder-epochs; "
                        "its batch-norm statistics still follow the data)")
    p.add_argument("--snapshots", default="", help="comma-separated seconds at which to save")
    p.add_argument("--log-seconds", type=float, default=30.0)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--imagenet", help="EfficientNet-Lite0 weights (timm names) for the encoder")
    p.add_argument("--init-g", help="a tinct generator file to start from")
    p.add_argument("--init-d", help="a tinct discriminator file to start from")
    p.add_argument("--half", action="store_true", help="write generators in fp16")
    p.add_argument("--bf16", action="store_true", help="bf16 autocast for the networks")
    p.add_argument("--bench", action="store_true")
    p.add_argument("--bench-steps", type=int, default=20)
    p.add_argument("--bench-warmup", type=int, default=5)
    p.add_argument("--check", nargs=4, metavar=("MODEL", "IN", "SIZE", "OUT"))
    p.add_argument("--pack", metavar="DIR",
                   help="write --data (256 px JPEGs) and the --imagenet encoder (fp16) into DIR for clean.sh")
    p.add_argument("--average", nargs="+", metavar="OUT FILE",
                   help="write OUT, the weight-by-weight mean of the generator files, and stop")
    p.add_argument("--check-out", help="with --check: write the model back through this script")
    args = p.parse_args()
    torch.backends.cudnn.benchmark = True
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    if args.check:
        check(args)
        return
    if args.average:
        average(args)
        return
    if args.pack:
        pack(args)
        return
    if args.prepare:
        arr, held = load_images(args.data, args.store_size, args.holdout_every)
        np.save(args.cache, arr)
        print(f"{arr.shape[0]} images cached, {len(held)} held out")
        with open(os.path.splitext(args.cache)[0] + "-holdout.txt", "w") as f:
            f.write("\n".join(os.path.basename(h) for h in held) + "\n")
        return
    device = "cuda" if torch.cuda.is_available() else "cpu"
    if args.bench:
        bench(args, device)
    else:
        train(args, device)


if __name__ == "__main__":
    main()
