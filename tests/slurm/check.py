#!/usr/bin/env python3
"""Checks the outcome of tests/slurm/run.sh (standard library only).

The work folder holds in/ (the inputs), out/ (what the array job wrote) and
reports/task<T>-attempt<A>.json (one `tinct colorize --report` per run of a task).
It checks that
  - every input has exactly one output, at its relative path, a valid PNG of the input's size,
    and out/ holds nothing else (no `.partial-` file in particular);
  - the union of the `done` lists of ALL reports is every input exactly once;
  - each shard's report says which shard it was, and the shards' `inputs` sum to `inputs_total`
    and do not overlap; each input is in the shard its path's hash names;
  - the requeued task's first report is interrupted with some but not all of its inputs done,
    and its second one skipped exactly those and coloured the rest.
Prints a short summary; exits 1 on the first failed check.
"""

import argparse
import collections
import hashlib
import json
import os
import struct
import sys
import zlib

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}  # by PNG colour type


def fail(msg):
    print(f"slurm test: check failed: {msg}", file=sys.stderr)
    sys.exit(1)


def png_info(path):
    """(width, height, colour type) of a PNG after reading all of it: the chunks' CRCs, the
    IDAT stream (it must inflate to exactly the size its header implies) and the IEND chunk.
    Raises ValueError when the file is not a complete, valid PNG."""
    with open(path, "rb") as f:
        data = f.read()
    if not data.startswith(PNG_SIGNATURE):
        raise ValueError("not a PNG")
    pos, ihdr, idat, ended = len(PNG_SIGNATURE), None, [], False
    while pos < len(data):
        if pos + 8 > len(data):
            raise ValueError("truncated chunk header")
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        body = data[pos + 8 : pos + 8 + length]
        crc = data[pos + 8 + length : pos + 12 + length]
        if len(body) != length or len(crc) != 4:
            raise ValueError("truncated chunk")
        if zlib.crc32(kind + body) != struct.unpack(">I", crc)[0]:
            raise ValueError(f"bad CRC in {kind!r}")
        if ihdr is None and kind != b"IHDR":
            raise ValueError("IHDR is not the first chunk")
        if kind == b"IHDR":
            ihdr = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat.append(body)
        elif kind == b"IEND":
            ended = True
            break
        pos += 12 + length
    if not ended:
        raise ValueError("no IEND chunk")
    width, height, depth, ctype, _, _, interlace = ihdr
    raw = zlib.decompress(b"".join(idat))
    if interlace == 0:
        row = (width * CHANNELS[ctype] * depth + 7) // 8
        if len(raw) != height * (1 + row):
            raise ValueError(f"pixel data is {len(raw)} bytes, not {height * (1 + row)}")
    return width, height, ctype


def files_under(folder):
    """Every file under folder, as paths relative to it."""
    out = set()
    for dirpath, _, names in os.walk(folder):
        for name in names:
            out.add(os.path.relpath(os.path.join(dirpath, name), folder))
    return out


def shard_of(rel, count):
    """tinct's shard of an input: the first 8 bytes (big-endian) of the SHA-256 of its
    '/'-joined path relative to its folder, modulo the shard count."""
    key = "/".join(rel.split(os.sep)).encode()
    return int.from_bytes(hashlib.sha256(key).digest()[:8], "big") % count


def rel_input(path):
    """A report's input path (relative to the work folder, e.g. in/sub/x.png) as a path
    relative to in/."""
    return os.path.relpath(os.path.realpath(path), os.path.realpath("in"))


def rate(report):
    """Images per second of a run (the report calls it files_per_second)."""
    return report.get("files_per_second", report.get("images_per_second", float("nan")))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", required=True)
    ap.add_argument("--tasks", type=int, required=True)
    ap.add_argument("--killed", type=int, required=True)
    args = ap.parse_args()
    os.chdir(args.work)

    # --- the files -----------------------------------------------------------------------
    inputs = files_under("in")
    outputs = files_under("out")
    partial = sorted(p for p in outputs if ".partial-" in p)
    if partial:
        fail(f"{len(partial)} partial files left, e.g. out/{partial[0]}")
    if outputs != inputs:
        missing, extra = sorted(inputs - outputs), sorted(outputs - inputs)
        fail(f"outputs differ from inputs: {len(missing)} missing {missing[:3]}, "
             f"{len(extra)} unexpected {extra[:3]}")
    for rel in sorted(inputs):
        try:
            iw, ih, _ = png_info(os.path.join("in", rel))
            ow, oh, ctype = png_info(os.path.join("out", rel))
        except (ValueError, zlib.error, struct.error, KeyError) as e:
            fail(f"out/{rel} is not a valid PNG: {e}")
        if (ow, oh) != (iw, ih):
            fail(f"out/{rel} is {ow}x{oh}, its input {iw}x{ih}")
        if ctype not in (2, 6):
            fail(f"out/{rel} is not a colour image (PNG colour type {ctype})")
    print(f"slurm test: {len(outputs)} outputs for {len(inputs)} inputs, each a valid colour "
          f"PNG of its input's size; no partial files")

    # --- the reports ---------------------------------------------------------------------
    reports = {}  # (task, attempt) -> report
    for name in sorted(os.listdir("reports")):
        stem = name.removesuffix(".json")
        try:
            task, attempt = stem.removeprefix("task").split("-attempt")
            key = (int(task), int(attempt))
        except ValueError:
            fail(f"unexpected file reports/{name}")
        try:
            with open(os.path.join("reports", name)) as f:
                reports[key] = json.load(f)
        except (OSError, json.JSONDecodeError) as e:
            fail(f"reports/{name} is not valid JSON: {e}")
    tasks = sorted({t for t, _ in reports})
    if tasks != list(range(args.tasks)):
        fail(f"reports from tasks {tasks}, expected 0..{args.tasks - 1}")

    def entries(r, field):
        return [rel_input(e["input"]) for e in r[field]]

    coloured = collections.Counter()
    shard_inputs, shard_sets = [], []
    for t in tasks:
        attempts = sorted(a for tt, a in reports if tt == t)
        if attempts != list(range(len(attempts))):
            fail(f"task {t} has reports for attempts {attempts}")
        if t != args.killed and attempts != [0]:
            fail(f"task {t} ran {len(attempts)} times; only task {args.killed} was requeued")
        for a in attempts:
            r = reports[(t, a)]
            where = f"reports/task{t}-attempt{a}.json"
            shard = r.get("shard") or {}
            if r.get("command") != "colorize":
                fail(f"{where}: command is {r.get('command')!r}")
            if (shard.get("index"), shard.get("count")) != (t, args.tasks):
                fail(f"{where}: shard {shard}, expected index {t} of {args.tasks}")
            if shard.get("from") != "SLURM_ARRAY_TASK_ID":
                fail(f"{where}: shard from {shard.get('from')!r}")
            if r["inputs_total"] != len(inputs):
                fail(f"{where}: inputs_total {r['inputs_total']}, there are {len(inputs)}")
            listed = entries(r, "done") + entries(r, "skipped") + entries(r, "failed")
            if len(listed) != r["inputs"] or len(set(listed)) != len(listed):
                fail(f"{where}: done+skipped+failed list {len(listed)} entries "
                     f"({len(set(listed))} distinct), inputs is {r['inputs']}")
            for e in r["done"]:
                want = os.path.join("out", rel_input(e["input"]))
                if os.path.realpath(e["output"]) != os.path.realpath(want):
                    fail(f"{where}: {e['input']} was written to {e['output']}")
            coloured.update(entries(r, "done"))
        last = reports[(t, attempts[-1])]
        if last["failed"] or last["interrupted"]:
            fail(f"task {t}'s last report has {len(last['failed'])} failed, "
                 f"interrupted {last['interrupted']}")
        shard_inputs.append(last["inputs"])
        shard_sets.append(set(entries(last, "done") + entries(last, "skipped")))
        misplaced = sorted(p for p in shard_sets[-1] if shard_of(p, args.tasks) != t)
        if misplaced:
            fail(f"task {t} took {len(misplaced)} inputs that SHA-256 places elsewhere, "
                 f"e.g. {misplaced[:3]}")

    twice = sorted(p for p, n in coloured.items() if n > 1)
    if twice:
        fail(f"{len(twice)} inputs coloured more than once, e.g. {twice[:3]}")
    lost = sorted(inputs - set(coloured))
    if lost:
        fail(f"{len(lost)} inputs never coloured, e.g. {lost[:3]}")
    if sum(shard_inputs) != len(inputs):
        fail(f"the shards' inputs {shard_inputs} sum to {sum(shard_inputs)}, not {len(inputs)}")
    if set().union(*shard_sets) != inputs or sum(map(len, shard_sets)) != len(inputs):
        fail("the shards overlap or leave inputs out")
    print(f"slurm test: shards of {'+'.join(map(str, shard_inputs))} = {sum(shard_inputs)} "
          f"inputs (inputs_total {len(inputs)}); the done lists of all "
          f"{len(reports)} reports colour each input exactly once")

    # --- the requeued task ---------------------------------------------------------------
    k = args.killed
    first, second = reports.get((k, 0)), reports.get((k, 1))
    if first is None or second is None:
        fail(f"task {k} should have reports for attempts 0 and 1, has "
             f"{sorted(a for t, a in reports if t == k)}")
    if first["interrupted"] is not True:
        fail(f"task {k}'s first report is not interrupted")
    done1, failed1 = set(entries(first, "done")), set(entries(first, "failed"))
    if not done1 or not failed1 or first["skipped"]:
        fail(f"task {k}'s first run: {len(done1)} done, {len(failed1)} failed, "
             f"{len(first['skipped'])} skipped; expected some done and some not")
    if set(entries(second, "skipped")) != done1:
        fail(f"task {k}'s second run skipped {len(second['skipped'])}, not the {len(done1)} "
             f"its first run did")
    if set(entries(second, "done")) != failed1:
        fail(f"task {k}'s second run coloured {len(second['done'])}, not the {len(failed1)} "
             f"its first run left")
    print(f"slurm test: task {k}: first run interrupted with {len(done1)} of {first['inputs']} "
          f"done, second run skipped those {len(second['skipped'])} and coloured "
          f"{len(second['done'])} ({rate(second):.1f} images/s)")


if __name__ == "__main__":
    try:
        main()
    except (KeyError, TypeError, AttributeError) as e:
        fail(f"a report lacks a field or has one of the wrong type: {e!r}")
