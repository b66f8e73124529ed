#!/usr/bin/env python3
"""Step parity (issue 19): a PyTorch twin of `detnas train` (RetinaNet and FPN
Faster R-CNN) and of `detnas pretrain` (supernet classification) that replays the
batches, paths, learning rates and random choices detnas dumped and compares,
step by step, the loss components, the total and the global gradient norm, and
at the end every weight, BN statistic and momentum buffer.

    ./detnas train --data D --iters 50 --eval-every 0 --arch 0,1,2,3,0,1,2,3,0,1 \\
        [--detector fpn] --out runs/parity --dump-steps 50 --dump-dir runs/parity/dump
    ./detnas pretrain --iters 50 --eval-every 0 --out runs/pparity --dump-steps 50 --dump-dir runs/pparity/dump
    /usr/bin/python3 bench/compare/torch_twin_train.py --dump runs/parity/dump \\
        --ckpt 50:runs/parity/last.safetensors [--ckpt 1:runs/parity1/last.safetensors]

Other modes: --double runs the whole twin in float64 (a trajectory free of
float32 rounding; --diff A.jsonl B.jsonl then compares two twin runs step by
step); --start K:CKPT starts from our own state after K steps (a detnas
checkpoint, e.g. of a run with --stop-at K) and replays step K+1 onwards: the
one-step parity at any point of a run, after the two trajectories have drifted
apart; --save PATH writes the twin's final state for --ckpt of another twin run.

The dump (cli/train_dump.h): DIR/config.json, DIR/init.safetensors (our
parameters and buffers by name), DIR/step_NNNN.{safetensors,json}: the images
exactly as the network saw them (after transforms and padding), the boxes and
labels per image (pretrain: one class per image), the path, the LR, what detnas
computed, and its random choices: FPN Faster R-CNN's sampled anchors and RoIs
(with the RPN proposals they index), pretrain's dropout mask.

What the twin takes from detnas: the initial weights, the batches, the paths,
the LRs (also checked against the reference schedule computed here) and the
random choices (each checked to be a legal draw: see ReplaySampler). What it
does itself, with PyTorch and torchvision as the established implementations:
  network   the same module tree as ours, parameter names identical (so our
            init.safetensors loads with strict checking): the DetNAS supernet
            or a standalone arch (stem conv3x3 s2 + BN + ReLU; ShuffleNetV2
            k3/5/7 and Xception choice units; stride-1 units shuffle channels in
            2 groups and run the second half; stride-2 units concat(proj, main)),
            torch.nn.BatchNorm2d with our eps 1e-5 and momentum (config);
  RetinaNet FPN P3..P7 (P6 from P5, P7 from ReLU(P6)), head towers and the
            (N, A*K, H, W) -> (N, H*W*A, K) anchor order; maskrcnn-benchmark
            cell anchors (round half to even); torchvision's
            Matcher(0.5, 0.4, allow_low_quality_matches=True) and
            BoxCoder((10, 10, 5, 5)); torchvision sigmoid_focal_loss (0.25, 2)
            summed over non-ignored anchors / (num_pos + N); smooth L1 (beta
            0.11) over positives / max(1, 4 num_pos) (maskrcnn-benchmark);
  FPN       FPN with BN on C2..C5 (1x1 lateral + BN, nearest top-down, 3x3
  Faster    output + BN; P6 = max-pool k1 s2 of P5); RPN head (3x3 conv + ReLU,
  R-CNN     1x1 objectness / deltas) on P2..P6; torchvision's AnchorGenerator
            cell anchors (sizes s..16s, ratios 0.5/1/2) on the explicit strides
            4..64 (maskrcnn-benchmark; torchvision's image // feature rule gives
            57 instead of 64 at P6 for odd P5 sizes); torchvision's
            RegionProposalNetwork: assign_targets_to_anchors (Matcher(0.7, 0.3,
            low-quality matches)), BoxCoder((1,1,1,1)), compute_loss (BCE mean
            over sampled anchors, smooth L1 beta 1/9 / sampled), and
            filter_proposals (per-level top pre_nms_top_n, clip to the padded
            image, min size 1e-3, NMS 0.7 per level, post_nms_top_n) -- compared
            with our proposals; torchvision's RoIHeads.select_training_samples on
            OUR proposals (GT appended, Matcher(0.5, 0.5), labels k+1, BoxCoder
            (10,10,5,5)); torchvision's MultiScaleRoIAlign (P2..P5, 7x7, sampling
            ratio 2, aligned=False, LevelMapper 224/4 eps 1e-6); the 4conv1fc box
            head with BN; loss cross-entropy mean over the RoIs + smooth L1
            (beta 1, maskrcnn-benchmark; torchvision uses 1/9) on the positives'
            class deltas / number of RoIs. Where the random choices enter, the
            torchvision samplers are replaced by ReplaySampler;
  detection torch.optim.SGD momentum 0.9; weight decay on every `*.weight`
  optimizer (conv and BN), none on `*.bias`, biases at 2x LR
            (maskrcnn-benchmark make_optimizer); maskrcnn-benchmark
            WarmupMultiStepLR; global-norm clipping at --clip-grad;
  pretrain  head: 1x1 conv (bias) + BN + ReLU, dropout (our dumped mask, i.e.
            torch's inverted dropout with our draws), global average pool,
            linear; F.cross_entropy(label_smoothing); torch.optim.SGD with the
            SPOS groups (weight decay on parameters with more than one dimension,
            i.e. conv and linear kernels, none on BN and biases; one LR) and the
            SPOS LambdaLR 1 - it / iters;
  all       gradients set to None after each step, so parameters off the
            sampled supernet path are not touched; the global gradient L2 norm
            (in double) of the gradients that exist, scaled by max_norm / norm
            when above max_norm (torch's clip_grad_norm_ would divide by
            norm + 1e-6: a 1e-7 relative change).

Needs Debian's python3-torch and python3-torchvision (run with /usr/bin/python3).
"""
import argparse
import bisect
import collections
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

LAST_CONV = {"300M": 1024, "1.3G": 1024, "3.8G": 1728, "tiny": 512}  # nn/space.cpp


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


def write_safetensors(path, tensors, metadata=None):
    """{name: tensor} as float32 safetensors (the layout read_safetensors reads),
    with an optional {str: str} __metadata__ (detnas keeps its checkpoint sidecar there)."""
    header, blobs, off = ({"__metadata__": metadata} if metadata else {}), [], 0
    for k, v in tensors.items():
        b = v.detach().float().contiguous().numpy().astype("<f4").tobytes()
        header[k] = {"dtype": "F32", "shape": list(v.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


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


# ------------------------------------------------------ FPN Faster R-CNN
class FpnBn(nn.Module):
    """detect/fpn_bn.cpp: lateral{2..5} and output{2..5}, each conv (no bias) + BN."""

    def __init__(self, in_ch, ch, bn_momentum):
        super().__init__()
        for l, c in zip((2, 3, 4, 5), in_ch):
            m = nn.Module()
            m.conv = nn.Conv2d(c, ch, 1, 1, 0, bias=False)
            m.bn = nn.BatchNorm2d(ch, eps=1e-5, momentum=bn_momentum)
            self.add_module(f"lateral{l}", m)
        for l in (2, 3, 4, 5):
            m = nn.Module()
            m.conv = nn.Conv2d(ch, ch, 3, 1, 1, bias=False)
            m.bn = nn.BatchNorm2d(ch, eps=1e-5, momentum=bn_momentum)
            self.add_module(f"output{l}", m)

    @staticmethod
    def _cb(m, x):
        return m.bn(m.conv(x))

    def forward(self, c):
        inner = self._cb(self.lateral5, c[3])
        p = [None, None, None, self._cb(self.output5, inner)]
        for i, l in ((2, 4), (1, 3), (0, 2)):
            lat = self._cb(getattr(self, f"lateral{l}"), c[i])
            inner = lat + F.interpolate(inner, size=lat.shape[-2:], mode="nearest")
            p[i] = self._cb(getattr(self, f"output{l}"), inner)
        return p + [F.max_pool2d(p[3], kernel_size=1, stride=2)]  # P6: maskrcnn-benchmark LastLevelMaxPool


class RpnHead(nn.Module):
    def __init__(self, ch, num_anchors):
        super().__init__()
        self.conv = nn.Conv2d(ch, ch, 3, 1, 1)
        self.cls_logits = nn.Conv2d(ch, num_anchors, 1)
        self.bbox_pred = nn.Conv2d(ch, num_anchors * 4, 1)

    def forward(self, x):
        t = F.relu(self.conv(x))
        return self.cls_logits(t), self.bbox_pred(t)


class BoxHead(nn.Module):
    """maskrcnn-benchmark FPN 4conv1fc head with BN (depth convs), then the predictor."""

    def __init__(self, ch, pooled, depth, fc_dim, num_classes, bn_momentum):
        super().__init__()
        self.conv = nn.ModuleList()
        for _ in range(depth):
            m = nn.Module()
            m.conv = nn.Conv2d(ch, ch, 3, 1, 1, bias=False)
            m.bn = nn.BatchNorm2d(ch, eps=1e-5, momentum=bn_momentum)
            self.conv.append(m)
        self.fc6 = nn.Linear(ch * pooled * pooled, fc_dim)
        self.cls_score = nn.Linear(fc_dim, num_classes + 1)
        self.bbox_pred = nn.Linear(fc_dim, 4 * (num_classes + 1))

    def forward(self, x):
        for m in self.conv:
            x = F.relu(m.bn(m.conv(x)))
        x = F.relu(self.fc6(x.flatten(1)))
        return self.cls_score(x), self.bbox_pred(x)


class FasterRcnn(nn.Module):
    A = 3

    def __init__(self, cfg):
        super().__init__()
        space = cfg["space"]
        arch = None if cfg["arch"] == "supernet" else [int(v) for v in cfg["arch"].split(",")]
        self.K = int(cfg["num_classes"])
        ch = int(cfg["fpn_channels"])
        head_m = float(cfg.get("fpn_bn_momentum", 0.1))
        self.backbone = Backbone(space, arch, float(cfg["bn_momentum"]))
        self.fpn = FpnBn(SPACES[space][2], ch, head_m)
        self.rpn = RpnHead(ch, self.A)
        self.box_head = BoxHead(ch, 7, int(cfg["head_depth"]), int(cfg["fc_dim"]), self.K, head_m)


class ReplaySampler:
    """Stands in for torchvision's BalancedPositiveNegativeSampler (labels >= 1
    positive, 0 negative): returns the subsets detnas drew, after checking that
    they are a legal draw of that sampler for the twin's OWN labels (sizes
    min(int(batch * fraction), #pos) and min(batch - that, #neg), every index
    positive / negative here). A different matcher decision or sampler count
    shows as `bad` > 0."""

    def __init__(self, batch, fraction):
        self.batch, self.fraction = batch, fraction
        self.sampled, self.bad, self.num_pos, self.num_neg = None, 0, 0, 0

    def set(self, sampled):
        self.sampled, self.bad, self.num_pos, self.num_neg = sampled, 0, 0, 0

    def __call__(self, labels):
        pos_masks, neg_masks = [], []
        for lab, ours in zip(labels, self.sampled):
            pos = torch.where(lab >= 1)[0]
            neg = torch.where(lab == 0)[0]
            num_pos = min(int(self.batch * self.fraction), pos.numel())
            num_neg = min(self.batch - num_pos, neg.numel())
            op = torch.tensor(ours["pos"], dtype=torch.int64)
            on = torch.tensor(ours["neg"], dtype=torch.int64)
            pm = torch.zeros_like(lab, dtype=torch.uint8)
            nm = torch.zeros_like(lab, dtype=torch.uint8)
            pm[op] = 1
            nm[on] = 1
            self.bad += abs(op.numel() - num_pos) + abs(on.numel() - num_neg)
            self.bad += int((lab[op] < 1).sum()) + int((lab[on] != 0).sum())
            self.num_pos += op.numel()
            self.num_neg += on.numel()
            pos_masks.append(pm)
            neg_masks.append(nm)
        return pos_masks, neg_masks


class FrcnnRecipe:
    """torchvision's RPN and RoI-head machinery (no parameters of their own)."""

    def __init__(self, cfg, net, replay=True):
        from torchvision.models.detection.anchor_utils import AnchorGenerator
        from torchvision.models.detection.roi_heads import RoIHeads
        from torchvision.models.detection.rpn import RegionProposalNetwork
        from torchvision.ops import MultiScaleRoIAlign
        s = float(cfg["anchor_size"])
        self.anchor_gen = AnchorGenerator(tuple((s * 2 ** l,) for l in range(5)), ((0.5, 1.0, 2.0),) * 5)
        pre, post = int(cfg["rpn_pre_nms_train"]) or 2000, int(cfg["rpn_post_nms_train"]) or 2000
        self.rpn = RegionProposalNetwork(self.anchor_gen, nn.Identity(), 0.7, 0.3, 256, 0.5,
                                         {"training": pre, "testing": pre}, {"training": post, "testing": post}, 0.7)
        self.rpn.train()
        # replay: detnas's draws (checked legal); otherwise torchvision's own
        # BalancedPositiveNegativeSampler (torch's RNG) and the twin's own proposals.
        self.replay = replay
        self.rpn_sampler = ReplaySampler(256, 0.5)
        if replay:
            self.rpn.fg_bg_sampler = self.rpn_sampler
        roi_batch = int(cfg["roi_batch"]) or 512
        self.pooler = MultiScaleRoIAlign(["p2", "p3", "p4", "p5"], 7, 2)
        self.roi = RoIHeads(self.pooler, nn.Identity(), nn.Identity(), 0.5, 0.5, roi_batch, 0.25,
                            (10.0, 10.0, 5.0, 5.0), 0.05, 0.5, 100)
        self.roi.train()
        self.roi_sampler = ReplaySampler(roi_batch, 0.25)
        if replay:
            self.roi.fg_bg_sampler = self.roi_sampler

    def anchors(self, feats, dtype):
        self.anchor_gen.set_cell_anchors(dtype, feats[0].device)
        grids = [list(f.shape[-2:]) for f in feats]
        strides = [[torch.tensor(4 << l), torch.tensor(4 << l)] for l in range(len(feats))]
        return torch.cat(self.anchor_gen.grid_anchors(grids, strides))


def proposal_agreement(ours, twin):
    """Per image: (#ours, #twin, fraction of ours with an identical-rank twin box
    within 1e-3, fraction of ours found anywhere in twin's at IoU > 0.99)."""
    from torchvision.ops import box_iou
    n = min(len(ours), len(twin))
    same_rank = float(((ours[:n] - twin[:n].to(ours.dtype)).abs().amax(1) < 1e-3).sum()) if n else 0.0
    found = float((box_iou(ours, twin.to(ours.dtype)).amax(1) > 0.99).sum()) if n else 0.0
    return len(ours), len(twin), same_rank / max(1, len(ours)), found / max(1, len(ours))


def frcnn_loss(net, recipe, images, rec, t, dtype):
    from torchvision.models.detection.rpn import concat_box_prediction_layers
    N, _, H, W = images.shape
    feats = net.fpn(net.backbone(images, rec["path"]))
    objs, dels = zip(*[net.rpn(p) for p in feats])
    num_per_level = [o[0].numel() for o in objs]
    obj, deltas = concat_box_prediction_layers(list(objs), list(dels))
    anchors = [recipe.anchors(feats, dtype)] * N
    targets = []
    for i, n in enumerate(rec["num_boxes"]):
        boxes = t[f"boxes.{i}"].to(dtype) if n else torch.zeros(0, 4, dtype=dtype)
        targets.append({"boxes": boxes, "labels": torch.tensor(rec["labels"][i], dtype=torch.int64) + 1})
    with torch.no_grad():
        labels, matched = recipe.rpn.assign_targets_to_anchors(anchors, targets)
        reg = recipe.rpn.box_coder.encode(matched, anchors)
    if recipe.replay:
        recipe.rpn_sampler.set(rec["rpn_sampled"])
    l_rpn_cls, l_rpn_box = recipe.rpn.compute_loss(obj, deltas, [l.to(dtype) for l in labels],
                                                    [r.to(dtype) for r in reg])
    with torch.no_grad():
        props = recipe.rpn.box_coder.decode(deltas.detach(), anchors).view(N, -1, 4)
        twin_props, _ = recipe.rpn.filter_proposals(props, obj.detach(), [(H, W)] * N, num_per_level)
    if recipe.replay:
        ours_props = [t[f"proposals.{i}"].to(dtype) for i in range(N)]
        agree = [proposal_agreement(o, tw) for o, tw in zip(ours_props, twin_props)]
        recipe.roi_sampler.set(rec["roi_sampled"])
    with torch.no_grad():
        rois, _, roi_labels, roi_reg = recipe.roi.select_training_samples(
            ours_props if recipe.replay else twin_props, targets)
    x = recipe.pooler(collections.OrderedDict(zip(["p2", "p3", "p4", "p5"], feats[:4])), rois, [(H, W)] * N)
    cls, box = net.box_head(x)
    lab = torch.cat(roi_labels)
    reg = torch.cat(roi_reg).to(dtype)
    l_roi_cls = F.cross_entropy(cls, lab)
    pos = torch.where(lab > 0)[0]
    l_roi_box = F.smooth_l1_loss(box.reshape(box.shape[0], -1, 4)[pos, lab[pos]], reg[pos], beta=1.0,
                                 reduction="sum") / lab.numel()
    comps = {"rpn_cls": l_rpn_cls, "rpn_box": l_rpn_box, "roi_cls": l_roi_cls, "roi_box": l_roi_box}
    if not recipe.replay:
        return comps, {"roi_pos": int(pos.numel()), "roi_n": int(lab.numel())}
    extra = {"rpn_pos": recipe.rpn_sampler.num_pos, "rpn_bad": recipe.rpn_sampler.bad,
             "roi_pos": recipe.roi_sampler.num_pos, "roi_n": int(lab.numel()), "roi_bad": recipe.roi_sampler.bad,
             "props_ours": sum(a[0] for a in agree), "props_twin": sum(a[1] for a in agree),
             "props_same_rank": sum(a[2] * a[0] for a in agree) / max(1, sum(a[0] for a in agree)),
             "props_found": sum(a[3] * a[0] for a in agree) / max(1, sum(a[0] for a in agree))}
    return comps, extra


# ----------------------------------------------------------- pretrain
class ClsHead(nn.Module):
    def __init__(self, cin, last, num_classes, bn_momentum):
        super().__init__()
        self.pre = ConvBn(cin, last, 1, 1, bn_momentum)
        self.fc = nn.Linear(last, num_classes)


class Classifier(Backbone):
    """nn::Backbone with its classification head (names at the top level: stem.*, stageS.*, head.*)."""

    def __init__(self, cfg):
        space = cfg["space"]
        arch = None if cfg["arch"] == "supernet" else [int(v) for v in cfg["arch"].split(",")]
        bn_m = float(cfg["bn_momentum"])
        super().__init__(space, arch, bn_m)
        self.head = ClsHead(SPACES[space][2][-1], LAST_CONV[space], int(cfg["num_classes"]), bn_m)

    def forward(self, x, path, mask):
        h = self.head.pre(super().forward(x, path)[-1])
        if mask is not None:
            h = h * mask.to(h.dtype)  # inverted dropout with our draws (0 or 1/(1-p))
        return self.head.fc(h.mean((2, 3)))


def cls_loss(net, images, rec, t, cfg):
    mask = t.get("dropout_mask")
    if float(cfg["dropout"]) > 0 and mask is None:
        raise SystemExit("torch_twin_train: dropout is on but the dump holds no dropout_mask")
    logits = net(images, rec["path"], mask)
    labels = torch.tensor(rec["labels"], dtype=torch.int64)
    loss = F.cross_entropy(logits, labels, label_smoothing=float(cfg["label_smoothing"]))
    return {"cls": loss}, {"top1": float((logits.argmax(1) == labels).double().mean())}


# ------------------------------------------------------------ recipes
class Task:
    """One of retinanet / fpn / classification: network, loss, optimizer groups, LR."""

    def __init__(self, cfg, replay=True):
        self.cfg, self.replay = cfg, replay
        self.kind = "classification" if cfg.get("task") == "classification" else cfg.get("detector", "retinanet")
        if self.kind == "retinanet":
            self.components = ["cls", "box"]
        elif self.kind == "fpn":
            self.components = ["rpn_cls", "rpn_box", "roi_cls", "roi_box"]
        elif self.kind == "classification":
            self.components = ["cls"]
        else:
            raise SystemExit(f"torch_twin_train: detector {self.kind} is not supported")
        if not replay and self.kind == "classification":
            raise SystemExit("torch_twin_train: training with the twin's own random draws is for the detectors only")
        self.anchors, self.anchor_key, self.recipe = None, None, None

    def build(self):
        if self.kind == "retinanet":
            return RetinaNet(self.cfg)
        if self.kind == "fpn":
            net = FasterRcnn(self.cfg)
            self.recipe = FrcnnRecipe(self.cfg, net, self.replay)
            return net
        return Classifier(self.cfg)

    def loss(self, net, images, rec, t):
        if self.kind == "retinanet":
            cls, box, sizes = net(images, rec["path"])
            key = (tuple(sizes), images.shape[-2:], images.dtype)
            if key != self.anchor_key:
                self.anchors, self.anchor_key = anchors_for(sizes, net.anchor_size).to(images.dtype), key
            targets = []
            for i, n in enumerate(rec["num_boxes"]):
                boxes = t[f"boxes.{i}"] if n else torch.zeros(0, 4)
                targets.append((boxes.to(images.dtype), torch.tensor(rec["labels"][i], dtype=torch.int64)))
            l_cls, l_box, num_pos = retinanet_loss(cls, box, self.anchors, targets, net.K)
            return {"cls": l_cls, "box": l_box}, {"pos": num_pos}
        if self.kind == "fpn":
            return frcnn_loss(net, self.recipe, images, rec, t, images.dtype)
        return cls_loss(net, images, rec, t, self.cfg)

    def optimizer(self, net):
        params = list(net.named_parameters())
        if self.kind == "classification":  # SPOS get_parameters
            decay = [p for n, p in params if n.endswith(".weight") and p.dim() > 1]
            rest = [p for n, p in params if not (n.endswith(".weight") and p.dim() > 1)]
            groups = [{"params": decay, "lr": 0.0, "weight_decay": float(self.cfg["wd"]), "mult": 1.0},
                      {"params": rest, "lr": 0.0, "weight_decay": 0.0, "mult": 1.0}]
            momentum = float(self.cfg["momentum"])
        else:  # maskrcnn-benchmark make_optimizer
            weights = [p for n, p in params if n.endswith(".weight")]
            biases = [p for n, p in params if n.endswith(".bias")]
            assert len(weights) + len(biases) == len(params)
            groups = [{"params": weights, "lr": 0.0, "weight_decay": float(self.cfg["wd"]), "mult": 1.0},
                      {"params": biases, "lr": 0.0, "weight_decay": 0.0, "mult": 2.0}]
            momentum = 0.9
        return torch.optim.SGD(groups, lr=0.0, momentum=momentum)

    def weight_decay_of(self, name, p):
        wd = float(self.cfg["wd"])
        if self.kind == "classification":
            return wd if name.endswith(".weight") and p.dim() > 1 else 0.0
        return wd if name.endswith(".weight") else 0.0

    def reference_lr(self, it):
        if self.kind == "classification":  # SPOS LambdaLR
            iters = int(self.cfg["iters"])
            return float(self.cfg["lr"]) * ((1.0 - it / iters) if it <= iters else 0.0)
        return reference_lr(self.cfg, it)

    def clip(self):
        return float(self.cfg.get("clip_grad", 0))


# --------------------------------------------------------------- training
def load_twin(dump, replay, double=False):
    """The twin of a dump: (config, task, network with our initial weights, those
    weights, optimizer). replay: detnas's random draws (see FrcnnRecipe)."""
    with open(os.path.join(dump, "config.json")) as f:
        cfg = json.load(f)
    task = Task(cfg, replay)
    net = task.build()
    init = read_safetensors(os.path.join(dump, "init.safetensors"))
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
    if double:
        net.double()
    net.train()
    return cfg, task, net, init, task.optimizer(net)


def train_step(task, net, opt, params, images, rec, t, lr, clip):
    """One SGD step: loss, backward, global-norm clipping, update at `lr` (times
    each group's multiplier). Returns ({component: loss, total, grad_norm}, extra)."""
    parts, extra = task.loss(net, images, rec, t)
    total = sum(parts.values())
    total.backward()
    grads = [p.grad for _, p in params if p.grad is not None]
    gn = math.sqrt(sum(float(g.double().pow(2).sum()) for g in grads))
    if clip > 0 and gn > clip:
        s = torch.tensor(clip / gn, dtype=torch.float32)
        for g in grads:
            g.mul_(s)
    for g in opt.param_groups:
        g["lr"] = lr * g["mult"]
    opt.step()
    opt.zero_grad(set_to_none=True)
    tw = {k: float(v) for k, v in parts.items()}
    tw.update(total=float(total), grad_norm=gn)
    return tw, extra


def twin_state(net, opt):
    """Every parameter and buffer under our names, momentum as optim.momentum.*."""
    twin = {k: v.detach().clone() for k, v in net.state_dict().items() if not k.endswith("num_batches_tracked")}
    for n, p in net.named_parameters():
        st = opt.state.get(p, {})
        if "momentum_buffer" in st:
            twin["optim.momentum." + n] = st["momentum_buffer"].clone()
    return twin


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


def phases(iters, steps, milestones):
    """Step ranges: 1, 2-10, then up to each LR milestone (detection: 2/3 and
    8/9 of the run; the last milestone's phase runs to the end)."""
    last = max(steps)
    cuts = [1, min(10, last)]
    if milestones:
        cuts.append(min(iters * 2 // 3, last))
    cuts.append(last)
    out, lo = [], 1
    for c in cuts:
        if c >= lo:
            out.append((lo, c))
            lo = c + 1
    return out


def phase_summary(records, components, iters, milestones, a_key="ours", b_key="twin"):
    """Per phase: median / max per-step relative difference of the total loss and
    of the gradient norm, and the mean total loss of each side."""
    if not records:
        return
    print(f"| steps | median rel total | max rel total | median rel grad norm | mean loss {a_key} | "
          f"mean loss {b_key} | rel of the means |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for lo, hi in phases(iters, [r["step"] for r in records], milestones):
        rs = [r for r in records if lo <= r["step"] <= hi]
        if not rs:
            continue
        rt = [rel(r[b_key]["total"], r[a_key]["total"]) for r in rs]
        rg = [rel(r[b_key]["grad_norm"], r[a_key]["grad_norm"]) for r in rs]
        ma = sum(r[a_key]["total"] for r in rs) / len(rs)
        mb = sum(r[b_key]["total"] for r in rs) / len(rs)
        print(f"| {lo}-{hi} | {np.median(rt):.2g} | {max(rt):.2g} | {np.median(rg):.2g} | {ma:.6g} | {mb:.6g} | "
              f"{rel(mb, ma):.2g} |")


def diff_jsonl(path_a, path_b):
    """The twin columns of two --jsonl runs against each other (A as the reference)."""
    ra = {r["step"]: r for r in map(json.loads, open(path_a))}
    rb = {r["step"]: r for r in map(json.loads, open(path_b))}
    comps = [k for k in next(iter(ra.values()))["twin"]]
    recs = [{"step": s, "a": ra[s]["twin"], "b": rb[s]["twin"]} for s in sorted(set(ra) & set(rb))]
    print(f"A = {path_a}, B = {path_b}")
    print("| step | " + " | ".join(f"A {c} | B {c} | rel" for c in comps) + " |")
    print("|---:|" + "---:|---:|---:|" * len(comps))
    for r in recs:
        print(f"| {r['step']} | " + " | ".join(f"{r['a'][c]:.7g} | {r['b'][c]:.7g} | {rel(r['b'][c], r['a'][c]):.1e}"
                                              for c in comps) + " |")
    iters = max(r["step"] for r in recs)
    phase_summary(recs, comps, iters, True, "a", "b")
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dump", help="the --dump-dir of detnas train or pretrain")
    ap.add_argument("--steps", type=int, default=0, help="steps to replay (0: all dumped)")
    ap.add_argument("--ckpt", action="append", default=[],
                    help="STEP:PATH of a detnas checkpoint (.safetensors) written after STEP steps: compare every "
                    "tensor after that step (repeatable)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--jsonl", default="", help="also write one JSON record per step here")
    ap.add_argument("--f64", action="store_true",
                    help="also compute the first step's gradient in float64 and compare both sides with it")
    ap.add_argument("--double", action="store_true",
                    help="run the whole twin in float64 (a reference trajectory free of float32 rounding)")
    ap.add_argument("--diff", nargs=2, metavar="JSONL",
                    help="no replay: compare the twin columns of two --jsonl files (e.g. a float32 and a "
                    "--double twin run) step by step, with the phase summary")
    ap.add_argument("--save", default="", metavar="PATH",
                    help="write the twin's state after the last step (our names, float32 safetensors, momentum as "
                    "optim.momentum.*): a reference for --ckpt of another twin run")
    ap.add_argument("--start", default="", metavar="K:PATH",
                    help="start from OUR state after K steps (a detnas checkpoint .safetensors: weights, BN "
                    "statistics, momentum buffers) and replay from step K+1: one-step parity at any point of a run")
    a = ap.parse_args()
    if a.diff:
        return diff_jsonl(*a.diff)
    if not a.dump:
        ap.error("--dump DIR is required (or --diff A B)")
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    cfg, task, net, init, opt = load_twin(a.dump, True, a.double)
    params = list(net.named_parameters())
    clip = task.clip()
    ckpts = collections.defaultdict(list)
    for c in a.ckpt:
        s, p = c.split(":", 1)
        ckpts[int(s)].append(p)
    steps = sorted(int(f[5:9]) for f in os.listdir(a.dump) if f.startswith("step_") and f.endswith(".json"))
    if a.start:
        k, path = a.start.split(":", 1)
        ours = read_safetensors(path)
        net.load_state_dict({n: v for n, v in ours.items() if n in init}, strict=False)
        for n, p in params:
            if "optim.momentum." + n in ours:
                opt.state[p]["momentum_buffer"] = ours["optim.momentum." + n].to(p.dtype).clone()
        steps = [s for s in steps if s > int(k)]
        print(f"start: our state after step {k} from {path} "
              f"({sum(1 for n, _ in params if 'optim.momentum.' + n in ours)} momentum buffers)")
    if a.steps:
        steps = steps[:a.steps]
    jl = open(a.jsonl, "w") if a.jsonl else None
    lr_dev = 0.0
    comps = task.components + ["total", "grad_norm"]
    print(f"config: {json.dumps(cfg)}")
    print("| step | lr | " + " | ".join(f"ours {c} | twin {c} | rel" for c in comps) + " | extra |")
    print("|---:|---:|" + "---:|---:|---:|" * len(comps) + "---|")
    ref64 = None
    bad_total = 0
    records = []
    for step in steps:
        base = os.path.join(a.dump, f"step_{step:04d}")
        with open(base + ".json") as f:
            rec = json.load(f)
        t = read_safetensors(base + ".safetensors")
        images = t["images"].double() if a.double else t["images"]
        lr = rec["lr"]
        lr_dev = max(lr_dev, rel(lr, task.reference_lr(step - 1)))
        if a.f64 and ref64 is None and not a.start:  # the first step's gradient in float64, same weights, batch, choices
            net64 = task.build().double()
            net64.load_state_dict(net.state_dict())
            net64.train()
            parts64, _ = task.loss(net64, t["images"].double(), rec, t)
            l64 = sum(parts64.values())
            l64.backward()
            g64 = {n: p for n, p in net64.named_parameters() if p.grad is not None}
            gn64 = math.sqrt(sum(float(p.grad.pow(2).sum()) for p in g64.values()))
            sc64 = clip / gn64 if clip > 0 and gn64 > clip else 1.0  # clipped as both sides clip
            ref64 = {"optim.momentum." + n: p.grad * sc64 + task.weight_decay_of(n, p) * p.detach()
                     for n, p in g64.items()}
            print(f"float64 reference at step {step}: gradient norm {gn64:.10g}, total loss {float(l64):.10g} "
                  f"({', '.join(f'{k} {float(v):.10g}' for k, v in parts64.items())})")
            del net64
        tw, extra = train_step(task, net, opt, params, images, rec, t, lr, clip)
        ou = {k: rec["losses"][k] for k in task.components}
        ou.update(total=rec["total"], grad_norm=rec["grad_norm"])
        r = {k: rel(tw[k], ou[k]) for k in comps}
        bad_total += extra.get("rpn_bad", 0) + extra.get("roi_bad", 0)
        ex = ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in extra.items())
        print(f"| {step} | {lr:.6g} | " + " | ".join(f"{ou[k]:.7g} | {tw[k]:.7g} | {r[k]:.1e}" for k in comps) +
              f" | {ex} |", flush=True)
        records.append({"step": step, "lr": lr, "path": rec["path"], "ours": ou, "twin": tw, "rel": r,
                        "extra": extra})
        if jl:
            jl.write(json.dumps(records[-1]) + "\n")
        if step in ckpts or (a.save and step == steps[-1]):
            twin = twin_state(net, opt)
            if a.save and step == steps[-1]:
                write_safetensors(a.save, twin)
                print(f"saved the twin's state after step {step} in {a.save}")
        for path in ckpts.get(step, []):
            ours = read_safetensors(path)
            label = f"after step {step}" + (f" (vs {path})" if len(ckpts[step]) > 1 else "")
            compare_state(ours, twin, init, label)
            if ref64 is not None and step == steps[0]:
                # Per module (backbone, fpn, rpn, box_head, head) and over all.
                mods = sorted({k.split(".")[2] for k in ref64}) + ["all"]
                for who, st in (("ours", ours), ("twin", twin)):
                    out = []
                    for m in mods:
                        ks = [k for k in ref64 if m == "all" or k.split(".")[2] == m]
                        num = sum(float((st[k].double() - ref64[k]).pow(2).sum()) for k in ks)
                        den = sum(float(ref64[k].pow(2).sum()) for k in ks)
                        out.append(f"{m} {math.sqrt(num / max(den, 1e-300)):.3g}")
                    print(f"after step {step}: momentum (= gradient + wd * w) of {who} vs the float64 gradient, "
                          f"L2 relative: {', '.join(out)}")

    print(f"lr: max relative difference of the dumped LR from the reference schedule: {lr_dev:.3g}")
    phase_summary(records, task.components, int(cfg["iters"]), True)
    if task.kind == "fpn":
        print(f"samplers: {bad_total} sampled indices or counts that the twin's own matching and sampler rules "
              "would not allow (0: every matcher decision and sample size agrees)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
