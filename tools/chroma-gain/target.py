#!/usr/bin/env python3
"""The colour target for a model's one look at val (docs/experiments/2026-11-26-gain-rule-b.md).

Given `tinct eval` reports of one model on the held-out files at two gains (from
`--match-colourfulness 0.92` and `0.97`, both with `--colourfulness-of TRAIN`), the gray report on
the held-out files, and the gray report on the whole training folder (for the truth's
colourfulness), it picks the ratio r in [0.88, 0.98] that maximises

    Phi((r - 0.90) / se_r) * Phi((PSNR(r) - bar) / se_p),

the chance of passing both quality bars on val if the two errors were independent:
- PSNR(r) is linear through the two held-out points; bar is the held-out gray PSNR - 0.5 dB;
- se_p is the held-out PSNR's standard error, widened for val's own sampling error (val's taken
  as the held-out one's times sqrt(n_held / n_val));
- se_r combines, in the ratio, the sampling error of the model's mean colourfulness on the
  held-out files, that of the truth's mean over the training folder, and val's own ratio error
  (the held-out ratio's standard error times sqrt(n_held / n_val)).

Usage: target.py AT092/report.json AT097/report.json HOLD_GRAY/report.json TRAIN_GRAY/report.json N_VAL
Prints the two points, the standard errors and the target.
"""
import json
import math
import sys


def phi(x):
    return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))


def model_row(path):
    r = json.load(open(path))
    rows = [m for m in r["summary"] if m["method"] != "gray"]
    if len(rows) != 1:
        sys.exit(f"{path}: expected one model besides gray, found {len(rows)}")
    m = rows[0]
    outs = [i["colourfulness"] for i in r["images"] if i["method"] == m["method"]]
    return m, outs


def gray_row(path):
    r = json.load(open(path))
    return next(m for m in r["summary"] if m["method"] == "gray")


def main():
    if len(sys.argv) != 6:
        sys.exit(__doc__)
    (m1, o1), (m2, o2) = model_row(sys.argv[1]), model_row(sys.argv[2])
    hold, train = gray_row(sys.argv[3]), gray_row(sys.argv[4])
    n_val = int(sys.argv[5])
    t = train["colourfulness_truth"]
    se_t = train["standard_error"]["colourfulness_truth"] / t
    n = len(o1)
    widen = math.sqrt(n / n_val)
    points = []
    for m, o in ((m1, o1), (m2, o2)):
        mean = sum(o) / n
        sd = math.sqrt(sum((x - mean) ** 2 for x in o) / (n - 1))
        r = mean / t
        se_r = r * math.sqrt((sd / math.sqrt(n) / mean) ** 2 + se_t**2
                             + (m["colourfulness_ratio_se"] * widen / m["colourfulness_ratio"]) ** 2)
        se_p = m["standard_error"]["psnr"] * math.sqrt(1.0 + widen**2)
        points.append((r, m["psnr"], se_r / r, se_p))
        print(f"{m['method']}: r {r:.4f} (held-out truth {m['colourfulness_ratio']:.4f}), "
              f"PSNR {m['psnr']:.3f}, se_r {se_r:.4f}, se_p {se_p:.3f}")
    (r1, p1, rel1, sp1), (r2, p2, rel2, sp2) = points
    bar = hold["psnr"] - 0.5
    best = None
    for k in range(0, 101):
        r = 0.88 + 0.001 * k
        p = p1 + (p2 - p1) * (r - r1) / (r2 - r1)
        w = (r - r1) / (r2 - r1)
        se_r = r * ((1 - w) * rel1 + w * rel2)
        se_p = (1 - w) * sp1 + w * sp2
        v = phi((r - 0.90) / se_r) * phi((p - bar) / se_p)
        if best is None or v > best[0]:
            best = (v, r, p, se_r, se_p)
    v, r, p, se_r, se_p = best
    print(f"truth over the training folder {t:.2f} (se {se_t * t:.2f}); held-out gray "
          f"{hold['psnr']:.3f}, bar {bar:.3f}")
    print(f"target r {r:.3f}: PSNR {p:.3f} on the held-out line, se_r {se_r:.4f}, se_p {se_p:.3f}, "
          f"chance {v:.2f}")


if __name__ == "__main__":
    main()
