#!/usr/bin/env python3
"""Writes the encoder part of EfficientNet-Lite0's ImageNet weights as float16 safetensors.

Usage: to_f16.py SRC.safetensors DST.safetensors

Keeps the stem (`conv_stem`, `bn1`) and the blocks (`blocks.*`), which are what tinct's
effnet-unet encoder loads; drops the classification head (`conv_head`, `bn2`, `classifier`).
Float32 tensors become float16 (round to nearest even); the header metadata is kept. Pure
Python, no dependencies.
"""
import json
import struct
import sys
from array import array


def main(src, dst):
    with open(src, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    meta = header.pop("__metadata__", {})
    keep = sorted(k for k in header if k.startswith(("conv_stem.", "bn1.", "blocks.")))
    out_header, chunks, offset = {}, [], 0
    for k in keep:
        t = header[k]
        if t["dtype"] != "F32":
            raise SystemExit(f"{k}: expected F32, got {t['dtype']}")
        begin, end = t["data_offsets"]
        values = array("f")
        values.frombytes(data[begin:end])
        if sys.byteorder != "little":
            values.byteswap()
        half = struct.pack(f"<{len(values)}e", *values)
        out_header[k] = {"dtype": "F16", "shape": t["shape"], "data_offsets": [offset, offset + len(half)]}
        chunks.append(half)
        offset += len(half)
    meta = dict(meta, stored="float16, encoder only (stem and blocks); classification head dropped")
    out_header["__metadata__"] = meta
    head = json.dumps(out_header, separators=(",", ":")).encode()
    head += b" " * (-len(head) % 8)
    with open(dst, "wb") as f:
        f.write(struct.pack("<Q", len(head)))
        f.write(head)
        for c in chunks:
            f.write(c)
    print(f"{dst}: {len(keep)} tensors, {offset // 2} values, {8 + len(head) + offset} bytes")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    main(sys.argv[1], sys.argv[2])
