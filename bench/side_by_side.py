#!/usr/bin/env python3
"""tinct against PyTorch (training, inference) and ONNX Runtime (inference), on the same cores.

Each round measures every row once on each side, alternating which side goes first, and the
table gives the medians and tinct's ratio (above 1: tinct is faster). Not a test: run it on a
quiet machine (pause any background job first).

    python3 -m venv .venv-torch && .venv-torch/bin/pip install torch onnxruntime onnx onnxscript safetensors numpy
    cargo build --release
    .venv-torch/bin/python bench/side_by_side.py [--rounds 3] [--rows ROW ...] [--json FILE]

Rows:
  l1-128       effnet-unet L1 step, 128 px, batch 16, encoder trained   (tinct bench vs the twin)
  gan-128      effnet-unet GAN + L1 step, 128 px, batch 16              (tinct bench vs the twin)
  unet256      the seed's unet256 GAN + L1 step, 256 px, batch 8        (vs ../shared/bench/pix2pix_ref.py)
  infer-photo  `photo` generator, 256 px, batch 1                        (vs the twin and ONNX Runtime)
  infer-unet256 unet256 generator, 256 px, batch 1                       (vs pix2pix_ref.py)

PyTorch's effnet-unet is `tools/gpu-train/train.py` (the twin: the same networks, parameter names
and losses); ONNX Runtime runs the twin's `photo` exported to ONNX. Both use --threads threads.
"""
import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import warnings

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.path.join(os.path.dirname(ROOT), "shared")
ROWS = ["l1-128", "gan-128", "unet256", "infer-photo", "infer-unet256"]
# (what the figure is, higher is better?)
UNITS = {"train": ("images/s", True), "infer": ("ms", False)}


def twin():
    spec = importlib.util.spec_from_file_location("twin", os.path.join(ROOT, "tools/gpu-train/train.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def run_tinct(tinct, threads, args):
    env = dict(os.environ, RAYON_NUM_THREADS=str(threads))
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "bench.json")
        r = subprocess.run([tinct, "bench", *args, "--json", path], env=env,
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        if r.returncode != 0:
            sys.exit(f"side_by_side: tinct bench {' '.join(args)} failed:\n{r.stderr}")
        with open(path) as f:
            return json.load(f)


def tinct_side(tinct, row, steps, runs, threads):
    if row in ("l1-128", "gan-128"):
        extra = ["--l1-only"] if row == "l1-128" else []
        r = run_tinct(tinct, threads, ["--arch", "effnet-unet", "--size", "128", "--batch", "16",
                              "--steps", str(steps), "--runs", "1", *extra])
        return r["train_images_per_s"]
    if row == "unet256":
        r = run_tinct(tinct, threads, ["--arch", "unet256", "--size", "256", "--batch", "8",
                              "--steps", str(max(2, steps // 2)), "--runs", "1"])
        return r["train_images_per_s"]
    if row == "infer-photo":
        return run_tinct(tinct, threads, ["--arch", "effnet-unet", "--no-train", "--model", "photo",
                                 "--runs", str(runs)])["generator_ms"]
    return run_tinct(tinct, threads, ["--arch", "unet256", "--no-train", "--runs", str(max(3, runs // 3))])["generator_ms"]


class Torch:
    """The PyTorch and ONNX Runtime sides, built once and timed per round."""

    def __init__(self, threads, photo, imagenet):
        import torch
        torch.set_num_threads(threads)
        self.torch, self.threads, self.t = torch, threads, twin()
        self.photo, self.imagenet = photo, imagenet
        self.ort = None
        self.reference_round = None

    def args(self):
        import types
        return types.SimpleNamespace(imagenet=self.imagenet, init_g=None, init_d=None, lr=2e-4,
                                     ema_decay=0.0, bf16=False, lambda_l1=100.0)

    def train(self, adversarial, steps):
        torch, t = self.torch, self.t
        g, d = t.build(self.args(), "cpu")
        trainer = t.Trainer(g, d, self.args())
        trainer.update_ema = lambda: None  # tinct bench keeps no moving average either
        gen = torch.Generator().manual_seed(0)
        l = (torch.rand(16, 1, 128, 128, generator=gen) * 2 - 1).contiguous(memory_format=torch.channels_last)
        ab = (torch.rand(16, 2, 128, 128, generator=gen) * 0.6 - 0.3).contiguous(memory_format=torch.channels_last)
        trainer.step(l, ab, adversarial, 0.0)  # warm-up, as tinct bench does
        t0 = time.perf_counter()
        for _ in range(steps):
            trainer.step(l, ab, adversarial, 0.0)
        return steps * 16 / (time.perf_counter() - t0)

    def photo_net(self):
        t = self.t
        g = t.EffUnet()
        t.load_into(g, t.from_tinct(t.load_file(self.photo), t.GEN_PREFIX), self.photo)
        return g.eval()

    def infer(self, runs):
        torch = self.torch
        g = self.photo_net().to(memory_format=torch.channels_last)
        x = torch.rand(1, 1, 256, 256) * 2 - 1
        with torch.no_grad():
            g(x)
            t0 = time.perf_counter()
            for _ in range(runs):
                g(x)
        return (time.perf_counter() - t0) / runs * 1000

    def onnx(self, runs):
        import numpy as np
        import onnxruntime as ort
        if self.ort is None:
            g = self.photo_net()
            so = ort.SessionOptions()
            so.intra_op_num_threads, so.inter_op_num_threads = self.threads, 1
            so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            with tempfile.TemporaryDirectory() as d:
                path = os.path.join(d, "photo.onnx")
                self.torch.onnx.export(g, (self.torch.rand(1, 1, 256, 256) * 2 - 1,), path,
                                       input_names=["l"], output_names=["ab"], dynamo=False)
                self.ort = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
            x = np.random.default_rng(1).random((1, 1, 256, 256), dtype=np.float32) * 2 - 1
            with self.torch.no_grad():
                want = g(self.torch.from_numpy(x)).numpy()
            diff = float(np.abs(self.ort.run(None, {"l": x})[0] - want).max())
            if diff > 1e-3:
                sys.exit(f"side_by_side: the ONNX export differs from the twin by {diff:.2e}")
        x = np.random.default_rng(0).random((1, 1, 256, 256), dtype=np.float32) * 2 - 1
        self.ort.run(None, {"l": x})
        t0 = time.perf_counter()
        for _ in range(runs):
            self.ort.run(None, {"l": x})
        return (time.perf_counter() - t0) / runs * 1000

    def reference(self, train, round_):
        """../shared/bench/pix2pix_ref.py, the seed's unet256 and PatchGAN, in its own process;
        one run per round gives both of its rows."""
        if self.reference_round != round_:
            ref = os.path.join(SHARED, "bench/pix2pix_ref.py")
            out = subprocess.run([sys.executable, ref, "--size", "256", "--batch", "8", "--steps", "4",
                                  "--threads", str(self.threads)], capture_output=True, text=True)
            if out.returncode != 0:
                sys.exit(f"side_by_side: {ref} failed:\n{out.stderr}")
            self.reference_result = json.loads(out.stdout.strip().splitlines()[-1])
            self.reference_round = round_
        r = self.reference_result
        return r["train_images_per_s"] if train else r["g_infer_ms"]

    def sides(self, row, steps, runs, round_):
        if row == "l1-128":
            return {"PyTorch": self.train(False, steps)}
        if row == "gan-128":
            return {"PyTorch": self.train(True, steps)}
        if row == "unet256":
            return {"PyTorch": self.reference(True, round_)}
        if row == "infer-photo":
            return {"PyTorch": self.infer(runs), "ONNX Runtime": self.onnx(runs)}
        return {"PyTorch": self.reference(False, round_)}


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--tinct", default=os.path.join(os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target")),
                                                   "release/tinct"))
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--rows", nargs="+", choices=ROWS, default=ROWS)
    p.add_argument("--steps", type=int, default=5, help="timed training steps per measurement")
    p.add_argument("--runs", type=int, default=30, help="timed inference runs per measurement")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--photo", default=os.path.join(ROOT, "models/photo.safetensors"))
    p.add_argument("--imagenet", default=os.path.join(ROOT, "weights/efficientnet-lite0.safetensors"))
    p.add_argument("--json", help="write every measurement here")
    a = p.parse_args()
    warnings.filterwarnings("ignore")  # the ONNX exporter's notes on constant folding
    if not os.access(a.tinct, os.X_OK):
        sys.exit(f"side_by_side: {a.tinct}: not found; run cargo build --release or pass --tinct")
    if any(r.startswith("unet256") or r == "infer-unet256" for r in a.rows) and not os.path.exists(
            os.path.join(SHARED, "bench/pix2pix_ref.py")):
        print(f"side_by_side: SKIPPING unet256 rows: {SHARED}/bench/pix2pix_ref.py is absent", file=sys.stderr)
        a.rows = [r for r in a.rows if "unet256" not in r]
    if not os.path.exists(a.imagenet):
        a.imagenet = None  # random encoder weights: the same cost
    torch_side = Torch(a.threads, a.photo, a.imagenet)
    print(f"torch {torch_side.torch.__version__}, {a.threads} threads; tinct {a.tinct}; "
          f"{a.rounds} rounds", flush=True)
    results = {row: {} for row in a.rows}
    for r in range(a.rounds):
        for row in a.rows:
            def ours():
                results[row].setdefault("tinct", []).append(tinct_side(a.tinct, row, a.steps, a.runs, a.threads))

            def theirs():
                for k, v in torch_side.sides(row, a.steps, a.runs, r).items():
                    results[row].setdefault(k, []).append(v)
            for f in ((ours, theirs) if r % 2 == 0 else (theirs, ours)):
                f()
            print(f"round {r + 1} {row}: " + ", ".join(f"{k} {v[-1]:.2f}" for k, v in results[row].items()),
                  flush=True)
    print("\n| row | unit | tinct | other | median | tinct's speed ratio |\n|---|---|---|---|---|---|")
    for row in a.rows:
        unit, higher = UNITS["infer" if row.startswith("infer") else "train"]
        ours = statistics.median(results[row]["tinct"])
        for k, v in results[row].items():
            if k == "tinct":
                continue
            theirs = statistics.median(v)
            ratio = ours / theirs if higher else theirs / ours
            print(f"| {row} | {unit} | {ours:.2f} | {k} | {theirs:.2f} | {ratio:.2f}x |")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
