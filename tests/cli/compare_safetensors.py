#!/usr/bin/env python3
"""Compares the tensors of two safetensors files (numpy only): the same names, shapes and dtypes, and values
within RTOL of each tensor's largest magnitude (0: bit for bit). Prints the worst tensor; exit code 1 on a
difference.  Usage: compare_safetensors.py A B RTOL"""
import json
import struct
import sys

import numpy as np

DTYPES = {"F32": np.float32, "F64": np.float64, "F16": np.float16, "I64": np.int64}


def read(path):
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    body = data[8 + n:]
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        begin, end = info["data_offsets"]
        out[name] = (info["dtype"], np.frombuffer(body[begin:end], dtype=DTYPES[info["dtype"]]).reshape(info["shape"]))
    return out


def main():
    a, b, rtol = read(sys.argv[1]), read(sys.argv[2]), float(sys.argv[3])
    if sorted(a) != sorted(b):
        print("different tensors:", sorted(set(a) ^ set(b)))
        return 1
    worst, worst_name = -1.0, ""
    for name in sorted(a):
        (da, va), (db, vb) = a[name], b[name]
        if da != db or va.shape != vb.shape:
            print(f"{name}: {da}{list(va.shape)} against {db}{list(vb.shape)}")
            return 1
        if rtol == 0:
            if va.tobytes() != vb.tobytes():
                print(f"{name}: not bit for bit equal (max |a-b| {np.max(np.abs(va.astype(np.float64) - vb)):.3g})")
                return 1
            continue
        scale = max(float(np.max(np.abs(vb.astype(np.float64)))) if vb.size else 0.0, 1e-30)
        rel = float(np.max(np.abs(va.astype(np.float64) - vb))) / scale if va.size else 0.0
        if rel > worst:
            worst, worst_name = rel, name
    if worst > rtol:
        print(f"{worst_name}: relative difference {worst:.3g} > {rtol:g}")
        return 1
    print(f"{len(a)} tensors" + (" bit for bit equal" if rtol == 0 else f", worst {worst_name} at {worst:.3g}"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
