#!/usr/bin/env python3
"""Runs an exported detnas ONNX graph in ONNX Runtime and compares its outputs
with detnas's own (tests/test_onnx_export.cpp writes both):

    python tests/onnx_ort_check.py MODEL.onnx REF.safetensors INPUTS [RTOL]

REF holds the graph inputs (INPUTS, comma-separated: e.g. "images",
"roi_features" or "images,image_size") and
detnas's value of every graph output under the output's name. Every graph output
must be in REF; each is compared as |ort - ref| <= RTOL * max(1e-3, max |ref|) (the
graph folds BN into the convs, so rounding differs from detnas's conv -> BN).
Prints one line per output with the worst difference; exit 0 when all agree,
1 when one does not, 2 on a usage or file problem.
Test-only: needs numpy and onnxruntime (make deps puts them in .venv).
"""
import json
import struct
import sys

import numpy as np
import onnxruntime as ort


def read_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    out = {}
    for k, v in header.items():
        if k == "__metadata__":
            continue
        if v["dtype"] != "F32":
            raise SystemExit(f"onnx_ort_check: {path}: {k} is {v['dtype']}, expected F32")
        b, e = v["data_offsets"]
        out[k] = np.frombuffer(data, dtype="<f4", count=(e - b) // 4, offset=8 + n + b).reshape(v["shape"])
    return out


def main():
    if len(sys.argv) not in (4, 5):
        print(__doc__, file=sys.stderr)
        return 2
    model, ref_path, inputs = sys.argv[1:4]
    inputs = inputs.split(",")
    rtol = float(sys.argv[4]) if len(sys.argv) == 5 else 1e-4
    ref = read_safetensors(ref_path)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    sess = ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    missing = [n for n in names + inputs if n not in ref]
    if missing:
        print(f"onnx_ort_check: {ref_path} lacks {missing}")
        return 2
    got = sess.run(names, {n: np.ascontiguousarray(ref[n]) for n in inputs})
    ok = True
    for n, g in zip(names, got):
        r = ref[n]
        if g.shape != r.shape:
            print(f"{n}: shape {g.shape} from ONNX Runtime, {r.shape} from detnas")
            ok = False
            continue
        scale = max(1e-3, float(np.abs(r).max()) if r.size else 1.0)
        err = float(np.abs(g.astype(np.float64) - r).max()) if r.size else 0.0
        good = err <= rtol * scale
        ok &= good
        print(f"{n}: shape {list(r.shape)}, max |ort - detnas| {err:.3g} (max |detnas| {scale:.3g}, "
              f"allowed {rtol * scale:.3g}) {'ok' if good else 'MISMATCH'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
