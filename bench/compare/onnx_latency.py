#!/usr/bin/env python3
"""ONNX Runtime CPU latency of a `detnas export` model (issue 22), to set beside
detnas's own latency of the same network on the same machine and threads
(`detnas latency-table --measure ARCH`, which times the same parts: backbone,
FPN and heads, and for FPN Faster R-CNN the box head on the test RoIs).

    .venv/bin/python bench/compare/onnx_latency.py runs/export/model.onnx --threads 2 [--rois 100]

For an FPN Faster R-CNN export (MODEL and MODEL's .box_head.onnx) the time is
stage 1 on one image plus stage 2 on --rois RoI feature maps; for a RetinaNet
export with post-processing, the whole graph on one image (random pixels, the
image size = the input size). Protocol as detnas's: 2 warm-up runs, then the
median of at least 5 runs and --min-time seconds. Prints one JSON object.
"""
import argparse
import json
import os
import time

import numpy as np
import onnxruntime as ort


def session(path, threads):
    o = ort.SessionOptions()
    o.intra_op_num_threads = threads
    o.inter_op_num_threads = 1
    return ort.InferenceSession(path, o, providers=["CPUExecutionProvider"])


def median_ms(f, warmup=2, min_repeats=5, min_seconds=0.2):
    for _ in range(warmup):
        f()
    ms, start = [], time.perf_counter()
    while len(ms) < min_repeats or time.perf_counter() - start < min_seconds:
        t0 = time.perf_counter()
        f()
        ms.append((time.perf_counter() - t0) * 1e3)
    return float(np.median(ms)), len(ms)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rois", type=int, default=100, help="FPN Faster R-CNN: RoIs through the box head")
    ap.add_argument("--min-time", type=float, default=0.2, help="seconds of timed runs at least")
    a = ap.parse_args()
    s1 = session(a.model, a.threads)
    inp = {i.name: i for i in s1.get_inputs()}
    shape = [d if isinstance(d, int) else 1 for d in inp["images"].shape]
    rng = np.random.default_rng(1)
    feeds = {"images": rng.uniform(0, 255, size=shape).astype(np.float32)}
    if "image_size" in inp:
        feeds["image_size"] = np.array(shape[2:], dtype=np.float32)
    box_head = a.model[:-5] + ".box_head.onnx" if a.model.endswith(".onnx") else a.model + ".box_head.onnx"
    s2 = session(box_head, a.threads) if os.path.exists(box_head) else None
    if s2 is not None:
        c = s2.get_inputs()[0].shape[1:]
        rois = {"roi_features": rng.standard_normal((a.rois, *c)).astype(np.float32)}

    def run():
        s1.run(None, feeds)
        if s2 is not None:
            s2.run(None, rois)

    ms, n = median_ms(run, min_seconds=a.min_time)
    print(json.dumps({"model": a.model, "box_head": box_head if s2 is not None else None, "input": shape,
                      "rois": a.rois if s2 is not None else 0, "threads": a.threads, "median_ms": round(ms, 3),
                      "runs": n, "onnxruntime": ort.__version__,
                      "bytes": os.path.getsize(a.model) + (os.path.getsize(box_head) if s2 is not None else 0)}))


if __name__ == "__main__":
    main()
