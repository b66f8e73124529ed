#!/usr/bin/env python3
"""Step parity (issue 19): a PyTorch twin of `detnas train` (RetinaNet) that
replays the batches, paths and learning rates detnas dumped and compares, step by
step, the loss components, the total and the global gradient norm, and at the
end every weight, BN statistic and momentum buffer.

    ./detnas train --data D --iters 50 --eval-every 0 --arch 0,1,2,3,0,1,2,3,0,1 \\
        --out runs/parity --dump-steps 50 --dump-dir runs/parity/dump
    /usr/bin/python3 bench/compare/torch_twin_train.py --dump runs/parity/dump \\
        --ckpt 50:runs/parity/last.safetensors [--ckpt 1:runs/parity1/last.safetensors]

The dump (cli/train_dump.h): DIR/config.json, DIR/init.safetensors (our
parameters and buffers by name), DIR/step_NNNN.{safetensors,json}: the images
exactly as the network saw them (after transforms and padding), the boxes and
labels per image, the path, the LR, and what detnas computed.

What the twin takes from detnas: the initial weights, the batches, the paths and
the LRs (the LRs are also checked against maskrcnn-benchmark's
WarmupMultiStepLR computed here). What it does itself, with PyTorch and
torchvision as the established implementations:
  network   the same module tree as ours, parameter names identical (so our
            init.safetensors loads with strict checking): the DetNAS supernet
            or a standalone arch (stem conv3x3 s2 + BN + ReLU; ShuffleNetV2
            k3/5/7 and Xception choice units; stride-1 units shuffle channels in
            2 groups and run the second half; stride-2 units concat(proj, main)),
            the RetinaNet FPN (P3..P7, P6 from P5, P7 from ReLU(P6)), the head
            towers and the (N, A*K, H, W) -> (N, H*W*A, K) anchor order;
            torch.nn.BatchNorm2d with our eps 1e-5 and momentum (config);
  targets   anchors (maskrcnn-benchmark cell anchors, round half to even),
            torchvision's Matcher(0.5, 0.4, allow_low_quality_matches=True) and
            BoxCoder((10, 10, 5, 5)) from torchvision.models.detection._utils;
  loss      torchvision sigmoid_focal_loss (0.25, 2) summed over non-ignored
            anchors / (num_pos + N); smooth L1 (beta 0.11) over positives /
            max(1, 4 num_pos) (maskrcnn-benchmark RetinaNetLossComputation);
  optimizer torch.optim.SGD momentum 0.9; weight decay on every `*.weight`
            (conv and BN), none on `*.bias`, biases at 2x LR
            (maskrcnn-benchmark make_optimizer); gradients set to None after each
            step, so parameters off the sampled supernet path are not touched;
  clipping  the global L2 norm (in double) of the gradients that exist, scaled
            by max_norm / norm when above --clip-grad (torch's
            clip_grad_norm_ would divide by norm + 1e-6: a 1e-7 relative change).

Not here: FPN Faster R-CNN (its samplers draw from per-image streams that the
dump does not yet contain). Needs Debian's python3-torch and python3-torchvision
(run with /usr/bin/python3).
"""
import argparse
import bisect
import json
import math
import os
import struct
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_e2e import KERNEL, NUM_CHOICES, SPACES, block_specs  # noqa: E402


# ------------------------------------------------------------------ files
def read_safetensors(path):
    """{name: float32 tensor} in file order (F32 only, as detnas writes)."""
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    out = {}
    base = 8 + n
    items = [(k, v) for k, v in header.items() if k != "__metadata__"]
    items.sort(key=lambda kv: kv[1]["data_offsets"][0])
    for k, v in items:
        assert v["dtype"] == "F32", (path, k, v["dtype"])
        b, e = v["data_offsets"]
        arr = np.frombuffer(data, dtype="<f4", count=(e - b) // 4, offset=base + b)
        out[k] = torch.from_numpy(arr.copy()).reshape(v["shape"])
    return out


# ---------------------------------------------------------------- network
class Branch(nn.Module):
    """A sequence of conv + BN (+ ReLU) with our child names (pw1/bn1, dw/bn2, ...)."""

    def __init__(self, steps, bn_momentum):
        super().__init__()
        self.steps = []
        for conv_name, bn_name, cin, cout, k, stride, groups, relu in steps:
            self.add_module(conv_name, nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False))
            self.add_module(bn_name, nn.BatchNorm2d(cout, eps=1e-5, momentum=bn_momentum))
            self.steps.append((conv_name, bn_name, relu))

    def forward(self, x):
        for c, b, relu in self.steps:
            x = getattr(self, b)(getattr(self, c)(x))
            if relu:
                x = F.relu(x)
        return x


class ChoiceUnit(nn.Module):
    def __init__(self, spec, choice, bn_momentum):
        super().__init__()
        s, _, cin, mid, cout, proj = spec
        self.stride = s
        if choice < 3:
            k = KERNEL[choice]
            steps = [("pw1", "bn1", cin, mid, 1, 1, 1, True), ("dw", "bn2", mid, mid, k, s, mid, False),
                     ("pw2", "bn3", mid, cout, 1, 1, 1, True)]
        else:
            steps = [("dw1", "bn1", cin, cin, 3, s, cin, False), ("pw1", "bn2", cin, mid, 1, 1, 1, True),
                     ("dw2", "bn3", mid, mid, 3, 1, mid, False), ("pw2", "bn4", mid, mid, 1, 1, 1, True),
                     ("dw3", "bn5", mid, mid, 3, 1, mid, False), ("pw3", "bn6", mid, cout, 1, 1, 1, True)]
        self.main = Branch(steps, bn_momentum)
        if s == 2:
            k = KERNEL[choice]
            self.proj = Branch([("dw", "bn1", proj, proj, k, 2, proj, False), ("pw", "bn2", proj, proj, 1, 1, 1, True)],
                               bn_momentum)

    def forward(self, x):
        if self.stride == 2:
            return torch.cat([self.proj(x), self.main(x)], 1)
        n, c, h, w = x.shape
        x = x.view(n, 2, c // 2, h, w).transpose(1, 2).reshape(n, c, h, w)  # channel shuffle, 2 groups
        return torch.cat([x[:, :c // 2], self.main(x[:, c // 2:])], 1)


class ConvBn(nn.Module):
    def __init__(self, cin, cout, k, s, bn_momentum):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, k, s, k // 2, bias=True)
        self.bn = nn.BatchNorm2d(cout, eps=1e-5, momentum=bn_momentum)

    def forward(self, x):
        return F.relu(self.bn(self.conv(x)))


class Backbone(nn.Module):
    def __init__(self, space, arch, bn_momentum):
        super().__init__()
        stem, nblocks, _ = SPACES[space]
        self.stem = ConvBn(3, stem, 3, 2, bn_momentum)
        specs = block_specs(space)
        self.arch = arch  # None: supernet (every choice)
        self.units = []   # per block: {choice: unit}
        i = 0
        for s, nb in enumerate(nblocks):
            stage = nn.ModuleList()
            for b in range(nb):
                blk = nn.Module()
                units = {}
                for c in range(NUM_CHOICES):
                    if arch is not None and arch[i] != c:
                        continue
                    u = ChoiceUnit(specs[i], c, bn_momentum)
                    blk.add_module(f"choice{c}", u)
                    units[c] = u
                stage.append(blk)
                self.units.append(units)
                i += 1
            self.add_module(f"stage{s + 1}", stage)
        self.ends = set(np.cumsum(nblocks) - 1)

    def forward(self, x, path):
        x = self.stem(x)
        feats = []
        for i, c in enumerate(path):
            x = self.units[i][c](x)
            if i in self.ends:
                feats.append(x)
        return feats


class Fpn(nn.Module):
    def __init__(self, in_ch, ch):
        super().__init__()
        for l, c in zip((3, 4, 5), in_ch):
            self.add_module(f"lateral{l}", nn.Conv2d(c, ch, 1, 1, 0))
        for l in (3, 4, 5):
            self.add_module(f"output{l}", nn.Conv2d(ch, ch, 3, 1, 1))
        self.p6 = nn.Conv2d(ch, ch, 3, 2, 1)
        self.p7 = nn.Conv2d(ch, ch, 3, 2, 1)

    def forward(self, c):
        inner = self.lateral5(c[2])
        p5 = self.output5(inner)
        lat = self.lateral4(c[1])
        inner = lat + F.interpolate(inner, size=lat.shape[-2:], mode="nearest")
        p4 = self.output4(inner)
        lat = self.lateral3(c[0])
        inner = lat + F.interpolate(inner, size=lat.shape[-2:], mode="nearest")
        p3 = self.output3(inner)
        p6 = self.p6(p5)
        return [p3, p4, p5, p6, self.p7(F.relu(p6))]


class Head(nn.Module):
    def __init__(self, ch, depth, num_anchors, num_classes):
        super().__init__()
        self.cls_tower = nn.ModuleList(nn.Conv2d(ch, ch, 3, 1, 1) for _ in range(depth))
        self.box_tower = nn.ModuleList(nn.Conv2d(ch, ch, 3, 1, 1) for _ in range(depth))
        self.cls_logits = nn.Conv2d(ch, num_anchors * num_classes, 3, 1, 1)
        self.bbox_pred = nn.Conv2d(ch, num_anchors * 4, 3, 1, 1)

    def forward(self, p):
        c, b = p, p
        for conv in self.cls_tower:
            c = F.relu(conv(c))
        for conv in self.box_tower:
            b = F.relu(conv(b))
        return self.cls_logits(c), self.bbox_pred(b)


class RetinaNet(nn.Module):
    A = 9

    def __init__(self, cfg):
        super().__init__()
        space = cfg["space"]
        arch = None if cfg["arch"] == "supernet" else [int(v) for v in cfg["arch"].split(",")]
        self.K = int(cfg["num_classes"])
        bn_m = float(cfg["bn_momentum"])
        ch = int(cfg["fpn_channels"])
        self.backbone = Backbone(space, arch, bn_m)
        self.fpn = Fpn(SPACES[space][2][1:], ch)
        self.head = Head(ch, int(cfg["head_depth"]), self.A, self.K)
        self.anchor_size = float(cfg["anchor_size"])

    def forward(self, x, path):
        c = self.backbone(x, path)
        cls, box, sizes = [], [], []
        for p in self.fpn(c[1:]):
            cl, bx = self.head(p)
            n, _, h, w = cl.shape
            cls.append(cl.view(n, self.A, self.K, h, w).permute(0, 3, 4, 1, 2).reshape(n, -1, self.K))
            box.append(bx.view(n, self.A, 4, h, w).permute(0, 3, 4, 1, 2).reshape(n, -1, 4))
            sizes.append((h, w))
        return torch.cat(cls, 1), torch.cat(box, 1), sizes


# ------------------------------------------------------ anchors, targets, loss
def anchors_for(sizes, smallest):
    """maskrcnn-benchmark RetinaNet anchors on P3..P7 (strides 8..128), float32: (T, 4)."""
    out, s = [], float(smallest)
    for l, (h, w) in enumerate(sizes):
        scales = torch.tensor([s, math.trunc(s * 2 ** (1 / 3)), math.trunc(s * 2 ** (2 / 3))], dtype=torch.float32)
        hr = torch.sqrt(torch.tensor([0.5, 1.0, 2.0], dtype=torch.float32))
        wr = 1.0 / hr
        ws, hs = (wr[:, None] * scales[None]).reshape(-1), (hr[:, None] * scales[None]).reshape(-1)
        cell = torch.round(torch.stack([-ws / 2, -hs / 2, ws / 2, hs / 2], 1))  # round half to even
        st = 8 << l
        ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float32) * st, torch.arange(w, dtype=torch.float32) * st,
                                indexing="ij")
        shifts = torch.stack([xs, ys, xs, ys], -1).reshape(-1, 1, 4)
        out.append((shifts + cell[None]).reshape(-1, 4))
        s *= 2
    return torch.cat(out)


def retinanet_loss(cls, box, anchors, targets, K):
    from torchvision.models.detection._utils import BoxCoder, Matcher
    from torchvision.ops import box_iou, sigmoid_focal_loss
    matcher = Matcher(0.5, 0.4, allow_low_quality_matches=True)
    coder = BoxCoder((10.0, 10.0, 5.0, 5.0))
    N, T = cls.shape[0], anchors.shape[0]
    cts, rws, bts, poss = [], [], [], []
    num_pos = 0
    with torch.no_grad():
        for boxes, labels in targets:
            ct = torch.zeros(T, K, dtype=cls.dtype)
            if boxes.shape[0] == 0:
                cts.append(ct)
                rws.append(torch.ones(T, dtype=cls.dtype))
                poss.append(torch.zeros(T, dtype=torch.bool))
                bts.append(torch.zeros(0, 4, dtype=box.dtype))
                continue
            m = matcher(box_iou(boxes, anchors))
            pos = m >= 0
            ct[pos, labels[m[pos]]] = 1.0
            cts.append(ct)
            rws.append((m != Matcher.BETWEEN_THRESHOLDS).to(cls.dtype))
            poss.append(pos)
            bts.append(coder.encode_single(boxes[m[pos]], anchors[pos]).to(box.dtype))
            num_pos += int(pos.sum())
    ct, rw, pos, bt = torch.cat(cts), torch.cat(rws), torch.cat(poss), torch.cat(bts)
    focal = sigmoid_focal_loss(cls.reshape(-1, K), ct, alpha=0.25, gamma=2.0, reduction="none")
    l_cls = (focal * rw[:, None]).sum() / (num_pos + N)
    l_box = F.smooth_l1_loss(box.reshape(-1, 4)[pos], bt, beta=0.11, reduction="sum") / max(1.0, 4.0 * num_pos)
    return l_cls, l_box, num_pos


def reference_lr(cfg, it):
    """maskrcnn-benchmark WarmupMultiStepLR (linear, factor 1/3, gamma 0.1) with
    milestones at 2/3 and 8/9 of the run (detnas train's)."""
    iters, base, warm = int(cfg["iters"]), float(cfg["lr"]), int(cfg["warmup"])
    milestones = [iters * 2 // 3, iters * 8 // 9]
    f = 1.0
    if it < warm:
        a = it / warm
        f = (1.0 / 3.0) * (1 - a) + a
    return base * f * 0.1 ** bisect.bisect_right(milestones, it)


# -------------------------------------------------------------- comparing
def rel(a, b):
    return abs(a - b) / max(abs(b), 1e-30)


def compare_state(ours, twin, init, label):
    """Per-tensor max |a - b| / max |b| over groups (parameters, their change since
    init, BN statistics, momentum buffers); tensors that did not change on either
    side (supernet choices never sampled) are left out of the "update" group."""
    groups = {}
    items = []
    for name, b in ours.items():
        if name not in twin:
            continue
        a = twin[name]
        g = ("momentum" if name.startswith("optim.") else
             "bn stats" if name.endswith(("running_mean", "running_var")) else "parameters")
        items.append((g, name, a, b))
        if g == "parameters" and name in init:
            da, db = a.double() - init[name].double(), b.double() - init[name].double()
            if float(db.abs().max()) > 0 or float(da.abs().max()) > 0:
                items.append(("update", name, da, db))
    biggest = {}
    for g, name, a, b in items:
        biggest[g] = max(biggest.get(g, 0.0), float(b.abs().max()))
    for g, name, a, b in items:
        # Gradients that are exactly 0 in exact arithmetic (a conv bias or BN shift
        # followed by a BN in training mode) are pure rounding noise on both
        # sides: left out of the per-tensor maximum, kept in the global L2.
        tiny = float(b.abs().max()) < 1e-6 * biggest[g]
        d = 0.0 if tiny else float((a - b).abs().max()) / max(float(b.abs().max()), 1e-30)
        l2n, l2d = float((a.double() - b.double()).pow(2).sum()), float(b.double().pow(2).sum())
        e = groups.setdefault(g, {"max": 0.0, "worst": "", "num": 0.0, "den": 0.0, "n": 0, "changed": 0})
        e["n"] += 1
        e["num"] += l2n
        e["den"] += l2d
        if d > e["max"]:
            e["max"], e["worst"] = d, name
    for g, e in groups.items():
        print(f"{label}: {g:10s} {e['n']:4d} tensors: max per-tensor |twin - ours|_inf / |ours|_inf = {e['max']:.3g} "
              f"({e['worst']}); global L2 relative {math.sqrt(e['num'] / max(e['den'], 1e-300)):.3g}")
    return groups


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dump", required=True, help="the --dump-dir of detnas train")
    ap.add_argument("--steps", type=int, default=0, help="steps to replay (0: all dumped)")
    ap.add_argument("--ckpt", action="append", default=[],
                    help="STEP:PATH of a detnas checkpoint (.safetensors) written after STEP steps: compare every "
                    "tensor after that step (repeatable)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--jsonl", default="", help="also write one JSON record per step here")
    ap.add_argument("--f64", action="store_true",
                    help="also compute the first step's gradient in float64 and compare both sides with it")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    with open(os.path.join(a.dump, "config.json")) as f:
        cfg = json.load(f)
    if cfg.get("detector", "retinanet") != "retinanet":
        raise SystemExit(f"torch_twin_train: detector {cfg['detector']} is not supported (RetinaNet only)")
    net = RetinaNet(cfg)
    init = read_safetensors(os.path.join(a.dump, "init.safetensors"))
    sd = net.state_dict()
    ours_names = set(init)
    twin_names = {k for k in sd if not k.endswith("num_batches_tracked")}
    if ours_names != twin_names:
        raise SystemExit(f"torch_twin_train: names differ: only ours {sorted(ours_names - twin_names)[:10]}, "
                         f"only twin {sorted(twin_names - ours_names)[:10]}")
    for k, v in init.items():
        if tuple(sd[k].shape) != tuple(v.shape):
            raise SystemExit(f"torch_twin_train: {k}: ours {tuple(v.shape)} twin {tuple(sd[k].shape)}")
    net.load_state_dict(init, strict=False)
    net.train()
    params = list(net.named_parameters())
    weights = [p for n, p in params if n.endswith(".weight")]
    biases = [p for n, p in params if n.endswith(".bias")]
    assert len(weights) + len(biases) == len(params)
    wd = float(cfg["wd"])
    opt = torch.optim.SGD([{"params": weights, "lr": 0.0, "weight_decay": wd},
                           {"params": biases, "lr": 0.0, "weight_decay": 0.0}], lr=0.0, momentum=0.9)
    clip = float(cfg["clip_grad"])
    ckpts = {}
    for c in a.ckpt:
        s, p = c.split(":", 1)
        ckpts[int(s)] = p
    steps = sorted(int(f[5:9]) for f in os.listdir(a.dump) if f.startswith("step_") and f.endswith(".json"))
    if a.steps:
        steps = steps[:a.steps]
    jl = open(a.jsonl, "w") if a.jsonl else None
    anchors, anchor_key = None, None
    lr_dev = 0.0
    print(f"config: {json.dumps(cfg)}")
    print("| step | lr | ours cls | twin cls | rel | ours box | twin box | rel | ours total | twin total | rel "
          "| ours grad norm | twin grad norm | rel | pos |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    ref64 = None
    for step in steps:
        base = os.path.join(a.dump, f"step_{step:04d}")
        with open(base + ".json") as f:
            rec = json.load(f)
        t = read_safetensors(base + ".safetensors")
        images = t["images"]
        targets = []
        for i, n in enumerate(rec["num_boxes"]):
            boxes = t[f"boxes.{i}"] if n else torch.zeros(0, 4)
            targets.append((boxes, torch.tensor(rec["labels"][i], dtype=torch.int64)))
        path = rec["path"]
        lr = rec["lr"]
        lr_dev = max(lr_dev, rel(lr, reference_lr(cfg, step - 1)))
        if a.f64 and ref64 is None:  # the first step's gradient in float64, same weights and batch
            net64 = RetinaNet(cfg).double()
            net64.load_state_dict(net.state_dict())
            net64.train()
            c64, b64, s64 = net64(images.double(), path)
            l64 = sum(retinanet_loss(c64, b64, anchors_for(s64, net.anchor_size), targets, net.K)[:2])
            l64.backward()
            ref64 = {"optim.momentum." + n: p.grad + (wd if n.endswith(".weight") else 0.0) * p.detach()
                     for n, p in net64.named_parameters() if p.grad is not None}
            print(f"float64 reference at step {step}: total loss {float(l64):.10g}")
            del net64
        cls, box, sizes = net(images, path)
        key = (tuple(sizes), images.shape[-2:])
        if key != anchor_key:
            anchors, anchor_key = anchors_for(sizes, net.anchor_size), key
        l_cls, l_box, num_pos = retinanet_loss(cls, box, anchors, targets, net.K)
        total = l_cls + l_box
        total.backward()
        grads = [p.grad for _, p in params if p.grad is not None]
        gn = math.sqrt(sum(float(g.double().pow(2).sum()) for g in grads))
        if clip > 0 and gn > clip:
            s = torch.tensor(clip / gn, dtype=torch.float32)
            for g in grads:
                g.mul_(s)
        opt.param_groups[0]["lr"] = lr
        opt.param_groups[1]["lr"] = 2.0 * lr
        opt.step()
        opt.zero_grad(set_to_none=True)
        o = rec["losses"]
        tw = {"cls": float(l_cls), "box": float(l_box), "total": float(total), "grad_norm": gn}
        ou = {"cls": o["cls"], "box": o["box"], "total": rec["total"], "grad_norm": rec["grad_norm"]}
        r = {k: rel(tw[k], ou[k]) for k in tw}
        print(f"| {step} | {lr:.6g} | {ou['cls']:.7g} | {tw['cls']:.7g} | {r['cls']:.1e} | {ou['box']:.7g} | "
              f"{tw['box']:.7g} | {r['box']:.1e} | {ou['total']:.7g} | {tw['total']:.7g} | {r['total']:.1e} | "
              f"{ou['grad_norm']:.7g} | {tw['grad_norm']:.7g} | {r['grad_norm']:.1e} | {num_pos} |", flush=True)
        if jl:
            jl.write(json.dumps({"step": step, "lr": lr, "path": path, "ours": ou, "twin": tw, "rel": r,
                                 "num_pos": num_pos}) + "\n")
        if step in ckpts:
            ours = read_safetensors(ckpts[step])
            twin = {k: v.detach().clone() for k, v in net.state_dict().items()}
            for n, p in params:
                st = opt.state.get(p, {})
                if "momentum_buffer" in st:
                    twin["optim.momentum." + n] = st["momentum_buffer"].clone()
            compare_state(ours, twin, init, f"after step {step}")
            if ref64 is not None and step == steps[0]:
                for who, st in (("ours", ours), ("twin", twin)):
                    num = sum(float((st[k].double() - v).pow(2).sum()) for k, v in ref64.items())
                    den = sum(float(v.pow(2).sum()) for v in ref64.values())
                    print(f"after step {step}: momentum (= gradient + wd * w) of {who} vs the float64 gradient: "
                          f"global L2 relative {math.sqrt(num / den):.3g}")
    print(f"lr: max relative difference of the dumped LR from WarmupMultiStepLR: {lr_dev:.3g}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
