#!/usr/bin/env python3
"""Time bench's kernel entries with PyTorch on the CPU, at the same shapes and
thread count, and tabulate the two side by side.

Not part of the build or the tests: it needs python3-torch (and
python3-torchvision for RoIAlign, NMS and focal loss), e.g. from Debian:
    apt-get install -y python3-torch python3-torchvision

    build/bin/bench --json --threads 2 > ours.jsonl
    /usr/bin/python3 bench/compare/torch_bench.py run ours.jsonl --threads 2 > torch.jsonl
    /usr/bin/python3 bench/compare/torch_bench.py table --ours ours*.jsonl --torch torch*.jsonl > table.md

`run` reads the op and params of every entry from bench's JSON lines and times
the closest PyTorch call (aten backward functions where they exist, so only the
backward itself is timed), with the same protocol as bench: warm-up, repeats to
about --budget seconds, min and median. The RoIAlign and NMS boxes are built
with the same splitmix64 stream as bench/shapes.cpp, so both sides see the very
same boxes. `table` takes the best (smallest min) of each entry over all the
given runs, the best ceilings over all roofline lines (bandwidth: the better
of the copy and the in-place update), and prints the side-by-side table and a
per-kernel summary. bench/compare/run_all.sh does all of this in chunks that
each wait for a quiet machine.
"""
import argparse
import json
import math
import os
import statistics
import time

import numpy as np
import torch
import torch.nn.functional as F

try:
    import torchvision
    from torchvision.ops import sigmoid_focal_loss as tv_focal
except ImportError:  # RoIAlign and NMS need it; focal loss falls back to the same formula inline
    torchvision = None
    tv_focal = None

MASK = (1 << 64) - 1
GOLDEN = 0x9E3779B97F4A7C15


class SplitMix:
    """bench::SplitMix: splitmix64, uniform() = top 24 bits / 2^24."""

    def __init__(self, seed):
        self.s = seed & MASK

    def next(self):
        self.s = (self.s + GOLDEN) & MASK
        z = self.s
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
        return z ^ (z >> 31)

    def uniform(self):
        return float(self.next() >> 40) / 16777216.0


def level_size(res, level):
    h = res
    for _ in range(level):
        h = (h + 2 - 3) // 2 + 1
    return h


def make_rois(R, res, seed, batch):
    """bench::make_rois: rows (b, x1, y1, x2, y2) and FPN levels 2..5."""
    rng, r = SplitMix(seed), float(res)
    rows, levels = [], []
    f32 = np.float32
    for i in range(R):
        u_size, u_aspect, u_cx, u_cy = rng.uniform(), rng.uniform(), rng.uniform(), rng.uniform()
        side = 16.0 * math.pow(r / 16.0, u_size)
        aspect = math.pow(2.0, 2.0 * u_aspect - 1.0)
        w, h = side * math.sqrt(aspect), side / math.sqrt(aspect)
        cx, cy = u_cx * r, u_cy * r
        clamp = lambda v: min(max(v, 0.0), r)
        x1, y1 = f32(clamp(cx - 0.5 * w)), f32(clamp(cy - 0.5 * h))
        x2, y2 = f32(clamp(cx + 0.5 * w)), f32(clamp(cy + 0.5 * h))
        rows.append([float(i % batch), float(x1), float(y1), float(x2), float(y2)])
        area = float(f32(x2 - x1)) * float(f32(y2 - y1))
        lvl = int(math.floor(4.0 + math.log2(math.sqrt(area) / 224.0 + 1e-12) + 1e-6))
        levels.append(min(max(lvl, 2), 5))
    return torch.tensor(rows, dtype=torch.float32), levels


def make_nms_boxes(K, res, seed, classes=80):
    """bench::make_nms_boxes: clusters of ~20 overlapping boxes."""
    rng, r = SplitMix(seed), float(res)
    nc = max(1, K // 20)
    centers = [(rng.uniform() * r, rng.uniform() * r, 16.0 + rng.uniform() * (r / 4.0)) for _ in range(nc)]
    boxes, scores, cls = [], [], []
    for i in range(K):
        ccx, ccy, csz = centers[i % nc]
        u_cx, u_cy, u_w, u_h, u_s, u_c = (rng.uniform() for _ in range(6))
        cx, cy = ccx + (u_cx - 0.5) * 0.3 * csz, ccy + (u_cy - 0.5) * 0.3 * csz
        w, h = csz * (0.7 + 0.6 * u_w), csz * (0.7 + 0.6 * u_h)
        boxes.append([cx - 0.5 * w, cy - 0.5 * h, cx + 0.5 * w, cy + 0.5 * h])
        scores.append(u_s)
        cls.append(min(classes - 1, int(u_c * classes)))
    return (torch.tensor(boxes, dtype=torch.float32), torch.tensor(scores, dtype=torch.float32),
            torch.tensor(cls, dtype=torch.int64))


def focal(x, t, alpha=0.25, gamma=2.0):
    if tv_focal is not None:
        return tv_focal(x, t, alpha=alpha, gamma=gamma, reduction="none")
    p = torch.sigmoid(x)
    ce = F.binary_cross_entropy_with_logits(x, t, reduction="none")
    p_t = p * t + (1 - p) * (1 - t)
    loss = ce * ((1 - p_t) ** gamma)
    return (alpha * t + (1 - alpha) * (1 - t)) * loss


def make_case(op, p):
    """Returns (callable, note) timing PyTorch's version of one bench entry."""
    I = lambda k: int(p[k])
    aten = torch.ops.aten
    if op.startswith("conv2d."):
        N, C, H, W, Co, K, S, P, G = (I(k) for k in ("N", "C", "H", "W", "Cout", "K", "S", "P", "G"))
        x, w = torch.randn(N, C, H, W), torch.randn(Co, C // G, K, K)
        b = torch.randn(Co) if I("bias") else None
        if op == "conv2d.fwd":
            return (lambda: F.conv2d(x, w, b, S, P, 1, G)), "F.conv2d"
        dy = torch.randn_like(F.conv2d(x, w, b, S, P, 1, G))
        mask = [True, False, False] if op == "conv2d.bwd_in" else [False, True, False]
        return (lambda: aten.convolution_backward(dy, x, w, None, [S, S], [P, P], [1, 1], False, [0, 0], G, mask),
                "aten.convolution_backward")
    if op.startswith("batchnorm."):
        N, C, H, W = (I(k) for k in "NCHW")
        x, g, b = torch.randn(N, C, H, W) * 2 + 1, torch.rand(C) + 0.5, torch.randn(C)
        rm, rv = torch.zeros(C), torch.ones(C)
        if op == "batchnorm.fwd":
            return (lambda: aten.native_batch_norm(x, g, b, rm, rv, True, 0.1, 1e-5)), "aten.native_batch_norm (train)"
        _, sm, si = aten.native_batch_norm(x, g, b, rm, rv, True, 0.1, 1e-5)
        dy = torch.randn_like(x)
        return (lambda: aten.native_batch_norm_backward(dy, x, g, rm, rv, sm, si, True, 1e-5, [True, True, True]),
                "aten.native_batch_norm_backward")
    if op.startswith(("channel_shuffle.", "split_even_odd.", "concat.")):
        N, C, H, W = (I(k) for k in "NCHW")
        x, h = torch.randn(N, C, H, W), C // 2
        if op == "channel_shuffle.fwd":
            return (lambda: x.view(N, 2, h, H, W).transpose(1, 2).contiguous()), "view/transpose/contiguous"
        if op == "channel_shuffle.bwd":  # the inverse permutation
            return (lambda: x.view(N, h, 2, H, W).transpose(1, 2).contiguous()), "view/transpose/contiguous"
        if op == "split_even_odd.fwd":
            return (lambda: (x[:, 0::2].contiguous(), x[:, 1::2].contiguous())), "strided slices .contiguous()"
        a, b = torch.randn(N, h, H, W), torch.randn(N, h, H, W)
        if op == "split_even_odd.bwd":
            return (lambda: torch.stack((a, b), 2).view(N, C, H, W)), "torch.stack(dim=2)"
        if op == "concat.fwd":
            return (lambda: torch.cat((x[:, :h], b), 1)), "torch.cat (first input a channel slice)"
        return (lambda: (x[:, :h].contiguous(), x[:, h:].contiguous())), "slices .contiguous()"
    if op.startswith("upsample_nearest."):
        N, C, H, W, Ho, Wo = (I(k) for k in ("N", "C", "H", "W", "Ho", "Wo"))
        if op.endswith("fwd"):
            x = torch.randn(N, C, H, W)
            return (lambda: F.interpolate(x, size=(Ho, Wo), mode="nearest")), "F.interpolate nearest"
        dy = torch.randn(N, C, Ho, Wo)
        return (lambda: aten.upsample_nearest2d_backward(dy, [Ho, Wo], [N, C, H, W], None, None)), \
            "aten.upsample_nearest2d_backward"
    if op.startswith("max_pool2d."):
        N, C, H, W, K, S, P = (I(k) for k in ("N", "C", "H", "W", "K", "S", "P"))
        x = torch.randn(N, C, H, W)
        if op.endswith("fwd"):
            return (lambda: F.max_pool2d(x, K, S, P)), "F.max_pool2d (no grad)"
        y, idx = aten.max_pool2d_with_indices(x, [K, K], [S, S], [P, P], [1, 1], False)
        dy = torch.randn_like(y)
        return (lambda: aten.max_pool2d_with_indices_backward(dy, x, [K, K], [S, S], [P, P], [1, 1], False, idx)), \
            "aten.max_pool2d_with_indices_backward (indices from forward)"
    if op.startswith("sigmoid_focal."):
        N, K = I("N"), I("K")
        x = torch.rand(N, K) * 11 - 8
        t = torch.zeros(N, K)
        pos = torch.rand(N) < 0.01
        t[pos, torch.randint(0, K, (int(pos.sum()),))] = 1
        w = (torch.rand(N) <= 0.99).float()
        if op.endswith("fwd"):
            return (lambda: focal(x, t) * w[:, None]), "torchvision sigmoid_focal_loss(reduction=none) * row weight"
        xg = x.clone().requires_grad_()
        loss = (focal(xg, t) * w[:, None]).sum()
        return (lambda: torch.autograd.grad(loss, xg, retain_graph=True)), "autograd backward of the same graph"
    if op.startswith("smooth_l1."):
        n = I("n")
        x, t = torch.rand(n) * 2 - 1, torch.rand(n) * 2 - 1
        w = (torch.rand(n // 4) < 0.01).float().repeat_interleave(4)
        if op.endswith("fwd"):
            return (lambda: F.smooth_l1_loss(x, t, reduction="none", beta=0.11) * w), "F.smooth_l1_loss(none) * weight"
        one = torch.tensor(1.0)
        return (lambda: aten.smooth_l1_loss_backward(one, x, t, 2, 0.11) * w), "aten.smooth_l1_loss_backward(sum) * weight"
    if op.startswith("roi_align."):
        N, C, res, R = I("N"), I("C"), I("res"), I("R")
        rows, levels = make_rois(R, res, 81, N)
        per = []
        for l in range(2, 6):
            sel = torch.tensor([lv == l for lv in levels])
            Hl = level_size(res, l)
            per.append((l, Hl, rows[sel].contiguous(), torch.randn(N, C, Hl, Hl)))
        if op.endswith("fwd"):
            def run():
                return [torchvision.ops.roi_align(f, b, (7, 7), 1.0 / 2 ** l, 2, False) for l, _, b, f in per]
            return run, "torchvision.ops.roi_align per level (aligned=False, sampling 2)"
        dys = [torch.randn(b.shape[0], C, 7, 7) for _, _, b, _ in per]
        def run_b():
            return [torch.ops.torchvision._roi_align_backward(dy, b, 1.0 / 2 ** l, 7, 7, N, C, Hl, Hl, 2, False)
                    for dy, (l, Hl, b, _) in zip(dys, per)]
        return run_b, "torchvision _roi_align_backward per level"
    if op in ("relu.fwd", "relu.bwd", "add.fwd"):
        n = I("n")
        a, b = torch.rand(n) * 2 - 1, torch.rand(n) * 2 - 1
        if op == "relu.fwd":
            return (lambda: torch.relu(a)), "torch.relu"
        if op == "relu.bwd":
            return (lambda: aten.threshold_backward(b, a, 0)), "aten.threshold_backward"
        return (lambda: torch.add(a, b)), "torch.add"
    if op == "sgd.update":
        n = I("n")
        p, g, buf = torch.rand(n) * 2 - 1, (torch.rand(n) - 0.5) / 50, (torch.rand(n) - 0.5) / 50
        opt = torch.optim.SGD([torch.nn.Parameter(p)], lr=0.02, momentum=0.9, weight_decay=4e-5)
        opt.param_groups[0]["params"][0].grad = g
        opt.step()  # creates the momentum buffer: later steps are the 'existing buffer' case
        return (lambda: opt.step()), "torch.optim.SGD.step (one flat parameter)"
    if op == "box_iou":
        N, M, res = I("N"), I("M"), I("res")
        a = torch.rand(N, 2) * res
        anchors = torch.cat((a, a + torch.rand(N, 2) * 200 + 8), 1)
        gt, _, _ = make_nms_boxes(M, res, 131)
        return (lambda: torchvision.ops.box_iou(anchors, gt)), "torchvision.ops.box_iou"
    if op == "nms":
        boxes, scores, _ = make_nms_boxes(I("K"), 800, 101)
        return (lambda: torchvision.ops.nms(boxes, scores, p["iou"])), "torchvision.ops.nms"
    if op == "batched_nms":
        boxes, scores, cls = make_nms_boxes(I("K"), 800, 101)
        return (lambda: torchvision.ops.batched_nms(boxes, scores, cls, p["iou"])), "torchvision.ops.batched_nms"
    return None, "no PyTorch counterpart"


def time_adaptive(f, budget):
    """bench::time_adaptive: warm-up (>= 1 call, ~10% of the budget), then repeats to the budget (>= 3)."""
    def once():
        t0 = time.perf_counter()
        f()
        return time.perf_counter() - t0
    est = once()
    spent = est
    while spent < 0.1 * budget:
        est = once()
        spent += est
    reps = int(min(max(budget / max(est, 1e-9), 3), 100000))
    ts = sorted(once() for _ in range(reps))
    return ts[0], statistics.median(ts), reps


def cmd_run(a):
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    with open(a.ours) as fh:
        entries = [json.loads(l) for l in fh if l.strip().startswith("{")]
    for e in entries:
        if "op" not in e or (a.filter and a.filter not in e["name"]):
            continue
        with torch.no_grad() if not e["op"].startswith("sigmoid_focal.bwd") else torch.enable_grad():
            fn, note = make_case(e["op"], e["params"])
            if fn is None:
                continue
            tmin, tmed, reps = time_adaptive(fn, a.budget)
        print(json.dumps({"name": e["name"], "op": e["op"], "torch_min_ms": tmin * 1e3, "torch_median_ms": tmed * 1e3,
                          "reps": reps, "call": note, "threads": torch.get_num_threads(),
                          "torch": torch.__version__, "loadavg": " ".join(open("/proc/loadavg").read().split()[:3])}),
              flush=True)


def best_by_name(paths, key):
    """Per entry, the record with the smallest `key` over several runs (min over runs, as min over repeats)."""
    best, order = {}, []
    for path in paths:
        for l in open(path):
            if not l.strip().startswith("{"):
                continue
            d = json.loads(l)
            if d["name"] not in best:
                order.append(d["name"])
            if d["name"] not in best or (key in d and d[key] < best[d["name"]].get(key, math.inf)):
                best[d["name"]] = d
    return best, order


def cmd_table(a):
    ours, order = best_by_name(a.ours, "min_ms")
    theirs, _ = best_by_name(a.torch, "torch_min_ms")
    # Ceilings: the best of every measurement in the files (fractions are then conservative).
    # Bandwidth: the better of the large copy and the large in-place update.
    def runs(name, key):
        return [json.loads(l)[key] for p in a.ours for l in open(p) if '"name":"%s"' % name in l]
    copy_runs, update_runs, sgemm_runs = runs("roofline/copy", "gbps"), runs("roofline/update", "gbps"), \
        runs("roofline/sgemm", "gflops")
    copy, sgemm = max(copy_runs + update_runs), max(sgemm_runs)
    loads = [float(d["loadavg"].split()[0]) for d in ours.values() if "op" in d]
    print("Ceilings, best of all measurements: bandwidth %.1f GB/s (copy: best %.1f of %d, in-place update: %s), "
          "sgemm %.1f GFLOP/s (best of %d, median %.1f). 1-minute load average when the chosen rows were "
          "measured: %.2f .. %.2f (median %.2f)." % (
              copy, max(copy_runs), len(copy_runs),
              "best %.1f of %d" % (max(update_runs), len(update_runs)) if update_runs else "not measured",
              sgemm, len(sgemm_runs), statistics.median(sgemm_runs), min(loads), max(loads), statistics.median(loads)))
    print()
    print("| entry | shape | ours min ms | PyTorch min ms | speedup | GB/s (% bandwidth) | GFLOP/s (% sgemm) |")
    print("|---|---|---:|---:|---:|---:|---:|")
    groups = {}
    for name in order:
        e = ours[name]
        if "op" not in e:
            continue
        t = theirs.get(name)
        sp = t["torch_min_ms"] / e["min_ms"] if t else None
        fbw = e["gbps"] / copy if e.get("gbps") else None
        fpk = e["gflops"] / sgemm if e.get("gflops") else None
        bw = "%.1f (%.0f%%)" % (e["gbps"], 100 * fbw) if fbw else "-"
        fl = "%.1f (%.0f%%)" % (e["gflops"], 100 * fpk) if fpk else "-"
        print("| %s | %s | %.4g | %s | %s | %s | %s |" % (
            name, e["shape"], e["min_ms"], "%.4g" % t["torch_min_ms"] if t else "-",
            "%.2fx" % sp if sp else "-", bw, fl))
        if sp:
            kind = e["op"]
            if kind.startswith("conv2d"):
                kind += " dw" if e["params"].get("G", 1) > 1 else (" 1x1" if e["params"].get("K") == 1 else " dense")
            groups.setdefault(kind, []).append((sp, fpk if fpk else fbw))
    print()
    print("| kernel | entries | geomean speedup | min speedup | entries >= 1.5x | median fraction of ceiling |")
    print("|---|---:|---:|---:|---:|---:|")
    for k in sorted(groups):
        v = groups[k]
        gm = math.exp(sum(math.log(s) for s, _ in v) / len(v))
        fr = [f for _, f in v if f is not None]
        print("| %s | %d | %.2fx | %.2fx | %d | %s |" % (k, len(v), gm, min(s for s, _ in v),
                                                       sum(1 for s, _ in v if s >= 1.5),
                                                       "%.0f%%" % (100 * statistics.median(fr)) if fr else "-"))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="time the entries of a bench --json file with PyTorch")
    r.add_argument("ours")
    r.add_argument("--threads", type=int, default=os.cpu_count())
    r.add_argument("--budget", type=float, default=0.2)
    r.add_argument("--filter", default="", help="substring of the entry names to run")
    t = sub.add_parser("table", help="markdown table of ours next to PyTorch (min over several runs)")
    t.add_argument("--ours", nargs="+", required=True, help="bench --json files")
    t.add_argument("--torch", nargs="+", required=True, help="torch_bench.py run files")
    a = ap.parse_args()
    cmd_run(a) if a.cmd == "run" else cmd_table(a)


if __name__ == "__main__":
    main()
