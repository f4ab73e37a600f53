#!/usr/bin/env python3
"""Charges a perf profile of `tinct bench` to burn-flex functions
(docs/experiments/2026-11-26-training-step-profile.md).

    perf record -o p.data -F 149 --call-graph=dwarf,32768 target/release/tinct bench --arch effnet-unet \\
        --size 128 --batch 16 --steps 3 --runs 1 --l1-only
    perf script -i p.data --inline -F tid,time,period,ip,sym > p.txt
    python3 tools/profile/perf_ops.py p.txt

Each sample goes to the innermost burn-flex function on its stack (an op, a tensor copy, a SIMD
kernel); only samples inside the training steps' time window (first to last sample whose stack
holds `Trainer::step`) count. Rayon's worker stacks do not show which op queued their work, so a
layout copy is charged as a copy, not to the op that asked for it.
"""
import collections
import re
import sys

OP = re.compile(r"burn_flex::(ops::\w+::\w+|tensor::\w+|simd::kernels::\w+|zip::\w+)")


def samples(path):
    cur = None
    for line in open(path):
        if not line.strip():
            continue
        if not line.startswith("\t"):
            parts = line.split()
            cur = [float(parts[1].rstrip(":")), int(parts[2]) if len(parts) > 2 else 1, []]
            yield cur
        elif cur is not None:
            f = line.strip()
            cur[2].append(f.split(" ", 1)[1] if " " in f else "")


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    all_samples = list(samples(sys.argv[1]))
    steps = [t for t, _, fr in all_samples if any("Trainer::step" in f for f in fr)]
    if not steps:
        sys.exit("no sample inside Trainer::step: was the profile recorded with --call-graph=dwarf?")
    t0, t1 = min(steps), max(steps)
    shares, total = collections.Counter(), 0
    for t, period, frames in all_samples:
        if not t0 <= t <= t1:
            continue
        total += period
        label = next((m.group(1) for m in map(OP.search, frames) if m), None)
        shares[label or "other: " + (frames[0][:60] if frames else "?")] += period
    print(f"training window {t1 - t0:.1f} s")
    for label, v in shares.most_common(40):
        print(f"{100 * v / total:5.1f} % {label}")


if __name__ == "__main__":
    main()
