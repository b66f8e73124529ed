#!/usr/bin/env python3
"""PyTorch (CPU) twin of `bench --e2e`: the same RetinaNet on the same DetNAS
supernet, timed with the same protocol, and a table of the two side by side.

Not part of the build or the tests. Needs Debian's python3-torch and
python3-torchvision (run it with /usr/bin/python3). Not here: the kernel-level
comparison (torch_bench.py), any of our C++ code.

The network (built from the same definitions as nn/space.cpp, nn/blocks.cpp,
nn/backbone.cpp, detect/fpn.cpp, detect/retinanet*.cpp):
  backbone  stem conv3x3 s2 (bias) + BN + ReLU, no max-pool; 4 stages of
            DetNAS choice blocks (ShuffleNetV2 k3/k5/k7, Xception), every block
            of the supernet holding all four choices; stride-1 blocks shuffle
            the channels (2 groups) and send the second half through the main
            branch; stride-2 blocks concat(proj(x), main(x)) with proj =
            dw kxk s2 + BN, pw + BN + ReLU and main producing width - input channels;
  FPN       lateral 1x1 and output 3x3 convs (bias, no norm) on C3..C5, nearest
            top-down, P6 = conv3x3 s2 on P5, P7 = conv3x3 s2 on ReLU(P6);
  head      class and box towers of 4 conv3x3 + ReLU (bias, no norm) shared over
            P3..P7, 9 anchors per location (3 sizes x ratios 0.5/1/2), 80 classes;
  loss      IoU matcher 0.5/0.4 with low-quality matches, box coder (10,10,5,5),
            torchvision sigmoid_focal_loss (alpha 0.25, gamma 2) summed over the
            non-ignored anchors / (num_pos + N), smooth L1 (beta 0.11) over the
            positives / max(1, 4 num_pos);
  optimizer SGD momentum 0.9, wd 1e-4 on conv and BN weights, none on biases,
            biases at 2x lr (SgdConfig::detection), lr 0.01; gradients set to
            None between steps so unsampled choices get no update, as in ours.

Protocol (bench/e2e.cpp): batch 2 at 320 and 512, three synthetic batches
cycled (images uniform in [-2, 2), 1-8 random boxes per image), path `random`
(a new uniform random path every step) or `all-c`; 2 warm-up steps then
--steps timed steps (forward incl. target assignment + loss, backward, SGD
step); min and median seconds, images/s from the median. Inference: batch 1
at 800, eval mode, no_grad, forward + postprocess (score 0.05, top 1000 per
level, decode, batched NMS 0.4, top 100), 1 warm-up + 3 timed. Every case runs
in a fresh subprocess, so its peak RSS (getrusage ru_maxrss: model, optimizer
and Python included) is the case's own.

    /usr/bin/python3 bench/compare/torch_e2e.py parity --detnas ./detnas
    /usr/bin/python3 bench/compare/torch_e2e.py run --threads 2 > torch_e2e.jsonl
    OMP_WAIT_POLICY=passive build-bench/bin/bench --e2e --json --threads 2 > ours_e2e.jsonl
    /usr/bin/python3 bench/compare/torch_e2e.py table --ours ours_e2e.jsonl --torch torch_e2e.jsonl

`run` sets OPENBLAS_CORETYPE=SkylakeX (unless set) on CPUs with AVX-512 as our
binaries do: Debian's OpenBLAS 0.3.21 does not know recent Xeons (on an AVX2-only
CPU those kernels die with SIGILL); OMP_NUM_THREADS and
OPENBLAS_NUM_THREADS follow --threads; torch.set_num_threads(--threads).
"""
import argparse
import json
import math
import os
import random
import re
import resource
import statistics
import subprocess
import sys
import time

SPACES = {  # nn/space.cpp: stem, blocks per stage, stage widths
    "300M": (16, (4, 4, 8, 4), (64, 160, 320, 640)),
    "1.3G": (48, (8, 8, 16, 8), (96, 240, 480, 960)),
    "3.8G": (72, (8, 8, 16, 8), (172, 432, 864, 1728)),
    "tiny": (16, (2, 2, 4, 2), (32, 64, 128, 256)),
}
NUM_CHOICES = 4
KERNEL = (3, 5, 7, 3)
NUM_CLASSES, FPN_CH, HEAD_DEPTH, NUM_ANCHORS = 80, 256, 4, 9
BATCH = 2


def block_specs(space):
    """nn::blocks(): (stride, in, main_in, mid, main_out, proj) per block."""
    stem, nblocks, widths = SPACES[space]
    out, cin = [], stem
    for nb, w in zip(nblocks, widths):
        for b in range(nb):
            if b == 0:
                out.append((2, cin, cin, w // 2, w - cin, cin))
            else:
                out.append((1, w, w // 2, w // 2, w // 2, 0))
        cin = w
    return out


def stage_ends(space):
    ends, acc = [], 0
    for nb in SPACES[space][1]:
        acc += nb
        ends.append(acc - 1)
    return ends


def fpn_head_params(space):
    """Hand count of the FPN and head parameters (detect/fpn.cpp, detect/retinanet.cpp)."""
    c3, c4, c5 = SPACES[space][2][1:]
    conv = lambda i, o, k: i * o * k * k + o  # all with bias
    fpn = sum(conv(c, FPN_CH, 1) for c in (c3, c4, c5)) + 5 * conv(FPN_CH, FPN_CH, 3)
    head = 2 * HEAD_DEPTH * conv(FPN_CH, FPN_CH, 3) + conv(FPN_CH, NUM_ANCHORS * NUM_CLASSES, 3) + conv(
        FPN_CH, NUM_ANCHORS * 4, 3)
    return fpn, head


# ---------------------------------------------------------------- the network
def build_model(space, seed=1):
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    torch.manual_seed(seed)

    def conv_bn(i, o, k, s, groups, relu):
        c = nn.Conv2d(i, o, k, s, k // 2, groups=groups, bias=False)
        nn.init.normal_(c.weight, 0.0, 1.0 if groups > 1 else 1.0 / i)  # ConvInit::FanIn: std 1/(Cin/groups)
        bn = nn.BatchNorm2d(o, eps=1e-5, momentum=0.1)
        nn.init.constant_(bn.bias, 1e-4)
        return [c, bn] + ([nn.ReLU(inplace=True)] if relu else [])

    class ChoiceUnit(nn.Module):
        def __init__(self, spec, choice):
            super().__init__()
            s, _, cin, mid, cout, proj = spec
            self.stride = s
            if choice < 3:
                k = KERNEL[choice]
                m = conv_bn(cin, mid, 1, 1, 1, True) + conv_bn(mid, mid, k, s, mid, False) + conv_bn(
                    mid, cout, 1, 1, 1, True)
            else:
                m = (conv_bn(cin, cin, 3, s, cin, False) + conv_bn(cin, mid, 1, 1, 1, True) +
                     conv_bn(mid, mid, 3, 1, mid, False) + conv_bn(mid, mid, 1, 1, 1, True) +
                     conv_bn(mid, mid, 3, 1, mid, False) + conv_bn(mid, cout, 1, 1, 1, True))
            self.main = nn.Sequential(*m)
            if s == 2:
                k = KERNEL[choice]
                self.proj = nn.Sequential(*(conv_bn(proj, proj, k, 2, proj, False) + conv_bn(proj, proj, 1, 1, 1, True)))

        def forward(self, x):
            if self.stride == 2:
                return torch.cat([self.proj(x), self.main(x)], 1)
            n, c, h, w = x.shape
            # channel shuffle, 2 groups (kernels/shuffle.h), then the halves
            x = x.view(n, 2, c // 2, h, w).transpose(1, 2).reshape(n, c, h, w)
            return torch.cat([x[:, :c // 2], self.main(x[:, c // 2:])], 1)

    class Supernet(nn.Module):
        def __init__(self):
            super().__init__()
            stem = SPACES[space][0]
            self.stem = nn.Sequential(nn.Conv2d(3, stem, 3, 2, 1, bias=True), nn.BatchNorm2d(stem), nn.ReLU(inplace=True))
            nn.init.normal_(self.stem[0].weight, 0.0, 0.01)
            nn.init.zeros_(self.stem[0].bias)
            nn.init.constant_(self.stem[1].bias, 1e-4)
            self.blocks = nn.ModuleList(
                nn.ModuleList(ChoiceUnit(sp, c) for c in range(NUM_CHOICES)) for sp in block_specs(space))
            self.ends = stage_ends(space)

        def forward(self, x, path):
            x = self.stem(x)
            feats = []
            for i, (blk, c) in enumerate(zip(self.blocks, path)):
                x = blk[c](x)
                if i in self.ends:
                    feats.append(x)
            return feats

    def fpn_conv(i, o, k, s=1):
        c = nn.Conv2d(i, o, k, s, k // 2, bias=True)
        nn.init.kaiming_uniform_(c.weight, a=1)
        nn.init.zeros_(c.bias)
        return c

    class Fpn(nn.Module):
        def __init__(self, in_ch):
            super().__init__()
            self.lateral = nn.ModuleList(fpn_conv(c, FPN_CH, 1) for c in in_ch)
            self.output = nn.ModuleList(fpn_conv(FPN_CH, FPN_CH, 3) for _ in in_ch)
            self.p6 = fpn_conv(FPN_CH, FPN_CH, 3, 2)
            self.p7 = fpn_conv(FPN_CH, FPN_CH, 3, 2)

        def forward(self, c):
            inner = self.lateral[2](c[2])
            p = [None, None, self.output[2](inner)]
            for l in (1, 0):
                lat = self.lateral[l](c[l])
                inner = lat + F.interpolate(inner, size=lat.shape[-2:], mode="nearest")
                p[l] = self.output[l](inner)
            p6 = self.p6(p[2])
            return p + [p6, self.p7(F.relu(p6))]

    def head_conv(o):
        c = nn.Conv2d(FPN_CH, o, 3, 1, 1, bias=True)
        nn.init.normal_(c.weight, 0.0, 0.01)
        nn.init.zeros_(c.bias)
        return c

    class Head(nn.Module):
        def __init__(self):
            super().__init__()
            tower = lambda: nn.Sequential(*[m for _ in range(HEAD_DEPTH) for m in (head_conv(FPN_CH), nn.ReLU(inplace=True))])
            self.cls_tower, self.box_tower = tower(), tower()
            self.cls_logits = head_conv(NUM_ANCHORS * NUM_CLASSES)
            nn.init.constant_(self.cls_logits.bias, -math.log((1 - 0.01) / 0.01))
            self.bbox_pred = head_conv(NUM_ANCHORS * 4)

        def forward(self, p):
            return self.cls_logits(self.cls_tower(p)), self.bbox_pred(self.box_tower(p))

    class RetinaNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.backbone = Supernet()
            self.fpn = Fpn(SPACES[space][2][1:])
            self.head = Head()

        def forward(self, x, path):
            c = self.backbone(x, path)
            cls, box, sizes = [], [], []
            for p in self.fpn(c[1:]):
                cl, bx = self.head(p)
                n, _, h, w = cl.shape
                # (N, A*K, H, W) -> (N, H*W*A, K): the anchor order of detect/retinanet.h
                cls.append(cl.view(n, NUM_ANCHORS, NUM_CLASSES, h, w).permute(0, 3, 4, 1, 2).reshape(n, -1, NUM_CLASSES))
                box.append(bx.view(n, NUM_ANCHORS, 4, h, w).permute(0, 3, 4, 1, 2).reshape(n, -1, 4))
                sizes.append((h, w))
            return cls, box, sizes

    return RetinaNet()


# ------------------------------------------------------ anchors, targets, loss
def anchors_for(sizes):
    """AnchorGenerator::retinanet(5, 32) on P3..P7 (strides 8..128): (T, 4)."""
    import torch
    out, s = [], 32.0
    for l, (h, w) in enumerate(sizes):
        scales = torch.tensor([s, math.trunc(s * 2 ** (1 / 3)), math.trunc(s * 2 ** (2 / 3))], dtype=torch.float32)
        hr = torch.sqrt(torch.tensor([0.5, 1.0, 2.0]))
        ws, hs = ((1 / hr)[:, None] * scales[None]).reshape(-1), (hr[:, None] * scales[None]).reshape(-1)
        cell = torch.round(torch.stack([-ws / 2, -hs / 2, ws / 2, hs / 2], 1))  # round half to even
        st = 8 << l
        ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float32) * st, torch.arange(w, dtype=torch.float32) * st,
                                indexing="ij")
        shifts = torch.stack([xs, ys, xs, ys], -1).reshape(-1, 1, 4)
        out.append((shifts + cell[None]).reshape(-1, 4))
        s *= 2
    return torch.cat(out)


def encode(anchors, gt, wts=(10.0, 10.0, 5.0, 5.0)):
    import torch
    aw, ah = anchors[:, 2] - anchors[:, 0], anchors[:, 3] - anchors[:, 1]
    ax, ay = anchors[:, 0] + 0.5 * aw, anchors[:, 1] + 0.5 * ah
    gw, gh = gt[:, 2] - gt[:, 0], gt[:, 3] - gt[:, 1]
    gx, gy = gt[:, 0] + 0.5 * gw, gt[:, 1] + 0.5 * gh
    return torch.stack([wts[0] * (gx - ax) / aw, wts[1] * (gy - ay) / ah, wts[2] * torch.log(gw / aw),
                        wts[3] * torch.log(gh / ah)], 1)


def decode(anchors, d, wts=(10.0, 10.0, 5.0, 5.0), clip=math.log(1000.0 / 16)):
    import torch
    aw, ah = anchors[:, 2] - anchors[:, 0], anchors[:, 3] - anchors[:, 1]
    ax, ay = anchors[:, 0] + 0.5 * aw, anchors[:, 1] + 0.5 * ah
    cx, cy = d[:, 0] / wts[0] * aw + ax, d[:, 1] / wts[1] * ah + ay
    pw = torch.exp((d[:, 2] / wts[2]).clamp(max=clip)) * aw
    ph = torch.exp((d[:, 3] / wts[3]).clamp(max=clip)) * ah
    return torch.stack([cx - pw / 2, cy - ph / 2, cx + pw / 2, cy + ph / 2], 1)


def assign(anchors, boxes, labels):
    """Matcher 0.5 / 0.4 with low-quality matches -> (cls targets (T,K), row weight (T), box targets, pos mask)."""
    import torch
    from torchvision.ops import box_iou
    T = anchors.shape[0]
    iou = box_iou(boxes, anchors)  # (M, T)
    best_val, best = iou.max(0)
    m = torch.full((T,), -1, dtype=torch.int64)  # -1 below low, -2 between
    m[best_val >= 0.4] = -2
    hi = best_val >= 0.5
    m[hi] = best[hi]
    lowq = (iou == iou.max(1, keepdim=True).values).any(0)
    m[lowq] = best[lowq]
    pos = m >= 0
    ct = torch.zeros(T, NUM_CLASSES)
    ct[pos, labels[m[pos]]] = 1.0
    bt = encode(anchors[pos], boxes[m[pos]])
    return ct, (m != -2).float(), bt, pos


def retinanet_loss(cls, box, anchors, targets):
    import torch
    import torch.nn.functional as F
    from torchvision.ops import sigmoid_focal_loss
    N = cls.shape[0]
    with torch.no_grad():
        a = [assign(anchors, b, l) for b, l in targets]
    num_pos = sum(int(x[3].sum()) for x in a)
    ct, rw = torch.cat([x[0] for x in a]), torch.cat([x[1] for x in a])
    focal = sigmoid_focal_loss(cls.reshape(-1, NUM_CLASSES), ct, alpha=0.25, gamma=2.0, reduction="none")
    l_cls = (focal * rw[:, None]).sum() / (num_pos + N)
    pos = torch.cat([x[3] for x in a])
    bt = torch.cat([x[2] for x in a])
    l_box = F.smooth_l1_loss(box.reshape(-1, 4)[pos], bt, beta=0.11, reduction="sum") / max(1.0, 4.0 * num_pos)
    return l_cls + l_box


def postprocess(cls, box, anchors_per_level, score=0.05, pre_nms=1000, nms=0.4, keep=100):
    """Batch 1: per level threshold, top-k, decode; batched NMS over all levels."""
    import torch
    from torchvision.ops import batched_nms
    bs, ss, ls = [], [], []
    for c, b, a in zip(cls, box, anchors_per_level):
        s = torch.sigmoid(c[0]).reshape(-1)
        idx = torch.nonzero(s > score).squeeze(1)
        if idx.numel() > pre_nms:
            idx = idx[s[idx].topk(pre_nms).indices]
        row, k = idx // NUM_CLASSES, idx % NUM_CLASSES
        bs.append(decode(a[row], b[0][row]))
        ss.append(s[idx])
        ls.append(k)
    b, s, l = torch.cat(bs), torch.cat(ss), torch.cat(ls)
    k = batched_nms(b, s, l, nms)[:keep]
    return b[k], s[k], l[k]


# ----------------------------------------------------------------- the cases
def random_targets(h, w, g):
    import torch
    out = []
    for _ in range(BATCH):
        m = 1 + g.randrange(8)
        bx = []
        for _ in range(m):
            bw, bh = g.uniform(16.0, w * 0.6), g.uniform(16.0, h * 0.6)
            x1, y1 = g.uniform(0.0, w - bw), g.uniform(0.0, h - bh)
            bx.append([x1, y1, x1 + bw, y1 + bh])
        out.append((torch.tensor(bx, dtype=torch.float32),
                    torch.tensor([g.randrange(NUM_CLASSES) for _ in range(m)], dtype=torch.int64)))
    return out


def vm_status_mib(key):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return float(line.split()[1]) / 1024.0
    return 0.0


def run_case(name, space, steps, infer_reps, threads):
    import torch
    torch.set_num_threads(threads)
    m = re.fullmatch(r"(train|infer)/([^@]+)@(\d+)/(random|all-\d)", name)
    if not m or m.group(2) != space:
        raise SystemExit(f"torch_e2e: unknown case '{name}' (expected train/{space}@320|512/random|all-c or "
                         f"infer/{space}@800/random)")
    kind, size, pname = m.group(1), int(m.group(3)), m.group(4)
    nblocks = len(block_specs(space))
    data_rng, path_rng = random.Random(7), random.Random(11)
    torch.manual_seed(3)
    net = build_model(space)
    nparams = sum(p.numel() for p in net.parameters())
    ts = []
    if kind == "train":
        params = [(n, p) for n, p in net.named_parameters()]
        # SgdConfig::detection: conv and BN weights wd 1e-4; conv and BN biases no wd, 2x lr
        weights = [p for n, p in params if n.endswith("weight")]
        biases = [p for n, p in params if n.endswith("bias")]
        assert len(weights) + len(biases) == len(params)
        opt = torch.optim.SGD([{"params": weights, "lr": 0.01, "weight_decay": 1e-4},
                               {"params": biases, "lr": 0.02, "weight_decay": 0.0}], lr=0.01, momentum=0.9)
        net.train()
        imgs = [torch.rand(BATCH, 3, size, size) * 4 - 2 for _ in range(3)]
        tgts = [random_targets(size, size, data_rng) for _ in range(3)]
        anchors = None

        def step(i):
            nonlocal anchors
            path = ([path_rng.randrange(NUM_CHOICES) for _ in range(nblocks)] if pname == "random" else
                    [int(pname[4:])] * nblocks)
            cls, box, sizes = net(imgs[i % 3], path)
            if anchors is None:
                anchors = anchors_for(sizes)
            loss = retinanet_loss(torch.cat(cls, 1), torch.cat(box, 1), anchors, tgts[i % 3])
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
            return float(loss)

        warmup, reps, what = 2, steps, f"batch {BATCH}, {size}x{size}, path {pname}"
    else:
        net.eval()
        img = torch.rand(1, 3, size, size) * 4 - 2
        path = [path_rng.randrange(NUM_CHOICES) for _ in range(nblocks)]
        ndet = [0]

        def step(i):
            with torch.no_grad():
                cls, box, sizes = net(img, path)
                a = anchors_for(sizes)
                per_level = list(torch.split(a, [c.shape[1] for c in cls]))
                b, _, _ = postprocess(cls, box, per_level)
                ndet[0] = b.shape[0]
            return 0.0

        warmup, reps, what = 1, infer_reps, "batch 1, 800x800, forward + postprocess, one random path"
    rss_start = vm_status_mib("VmRSS")
    last = 0.0
    for i in range(warmup):
        last = step(i)
    for i in range(reps):
        t0 = time.perf_counter()
        last = step(warmup + i)
        ts.append(time.perf_counter() - t0)
    if kind == "infer":
        what += f", {ndet[0]} detections"
    ipc = float(BATCH if kind == "train" else 1)
    med = statistics.median(ts)
    return {
        "name": name, "what": what, "reps": reps, "min_s": min(ts), "median_s": med, "images_per_call": ipc,
        "images_per_s": ipc / med, "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
        "rss_before_steps_mib": rss_start, "last_loss": last, "parameters": nparams, "threads": threads,
        "torch": torch.__version__, "loadavg": open("/proc/loadavg").read().split()[:3],
    }


def all_cases(space, quick):
    sizes = [320] if quick else [320, 512]
    paths = ["random"] + ([] if quick else [f"all-{c}" for c in range(NUM_CHOICES)])
    return [f"train/{space}@{s}/{p}" for s in sizes for p in paths] + [f"infer/{space}@800/random"]


def cpu_has_avx512():
    """AVX-512 F/BW/VL/DQ in /proc/cpuinfo: what runtime/threads.cpp asks of a CPU before SkylakeX."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((l.split(":", 1)[1].split() for l in f if l.startswith("flags")), [])
    except OSError:
        return False
    return all(x in flags for x in ("avx512f", "avx512bw", "avx512vl", "avx512dq"))


# ---------------------------------------------------------------- subcommands
def cmd_run(a):
    env = dict(os.environ)
    if cpu_has_avx512():  # SkylakeX kernels on an AVX2-only CPU die with SIGILL (exit -4)
        env.setdefault("OPENBLAS_CORETYPE", "SkylakeX")
    env["OMP_NUM_THREADS"] = str(a.threads)
    env["OPENBLAS_NUM_THREADS"] = str(a.threads)
    cases = [c for c in all_cases(a.space, a.quick) if re.search(a.filter, c)]
    for c in cases:
        p = subprocess.run([sys.executable, os.path.abspath(__file__), "case", c, "--space", a.space, "--threads",
                            str(a.threads), "--steps", str(a.steps), "--infer-reps", str(a.infer_reps)],
                           env=env, stdout=subprocess.PIPE, text=True)
        if p.returncode != 0:
            print(f"torch_e2e: case {c} failed (exit {p.returncode})", file=sys.stderr)
            continue
        sys.stdout.write(p.stdout)
        sys.stdout.flush()


def cmd_case(a):
    print(json.dumps(run_case(a.name, a.space, a.steps, a.infer_reps, a.threads)))


def cmd_parity(a):
    """Parameter counts: torch supernet vs bench --e2e's; per block and per path vs `detnas flops`."""
    import torch  # noqa: F401
    net = build_model(a.space)
    count = lambda mod: sum(p.numel() for p in mod.parameters())
    total = count(net)
    print(f"torch supernet RetinaNet: {total} parameters (bench --e2e prints {a.ours} for ours)")
    ok = total == a.ours
    fpn_h, head_h = fpn_head_params(a.space)
    fpn_t, head_t = count(net.fpn), count(net.head)
    print(f"FPN {fpn_t} (hand count {fpn_h}), head {head_t} (hand count {head_h})")
    ok &= fpn_t == fpn_h and head_t == head_h
    nb = len(block_specs(a.space))
    per_choice = []
    for c in range(NUM_CHOICES):
        arch = ",".join([str(c)] * nb)
        out = subprocess.run([a.detnas, "flops", "--space", a.space, "--arch", arch, "--json"], stdout=subprocess.PIPE,
                             stderr=subprocess.DEVNULL, text=True, check=True).stdout
        j = json.loads(out)
        ours_blocks = [b["params"] for b in j["blocks"]]
        torch_blocks = [count(net.backbone.blocks[i][c]) for i in range(nb)]
        stem_t = count(net.backbone.stem)
        same = ours_blocks == torch_blocks and stem_t == j["stem"]["params"]
        bb_t = stem_t + sum(torch_blocks)
        print(f"all-{c}: backbone ours {j['backbone']['params']} torch {bb_t}; per block "
              f"{'equal' if same else 'DIFFERENT'}; path total with FPN + head: ours "
              f"{j['backbone']['params'] + fpn_h + head_h} torch {bb_t + fpn_t + head_t}")
        ok &= same and bb_t == j["backbone"]["params"]
        per_choice.append(ours_blocks)
        stem_o = j["stem"]["params"]
    sup_o = stem_o + sum(sum(b) for b in per_choice) + fpn_h + head_h
    print(f"ours from detnas flops (stem + every choice of every block) + hand FPN/head: {sup_o}")
    ok &= sup_o == a.ours
    print("parity:", "OK" if ok else "MISMATCH")
    return 0 if ok else 1


def read_jsonl(paths):
    rows = {}
    for p in paths:
        with open(p) as f:
            for line in f:
                line = line.strip()
                if line.startswith("{"):
                    r = json.loads(line)
                    if "name" not in r:
                        continue
                    prev = rows.get(r["name"])
                    if prev is None or r["median_s"] < prev["median_s"]:
                        rows[r["name"]] = r
                    if prev is not None:  # the min column: the fastest step of any run
                        rows[r["name"]]["min_s"] = min(r["min_s"], prev["min_s"])
    return rows


def cmd_table(a):
    """img/s from the median step (as bench --e2e); with several runs per side, each case's best median
    (and that run's peak RSS) and the fastest step of any run. The min-step columns are less sensitive to
    a loaded machine."""
    ours, torch_ = read_jsonl(a.ours), read_jsonl(a.torch)
    print("| case | ours img/s | torch img/s | ours / torch | ours peak RSS MiB | torch peak RSS MiB | ours / torch "
          "| ours min s | torch min s | torch min / ours min |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name in [n for n in ours if n in torch_] + [n for n in torch_ if n not in ours]:
        o, t = ours.get(name), torch_[name]
        if o is None:
            print(f"| {name} | - | {t['images_per_s']:.3f} | - | - | {t['peak_rss_mib']:.0f} | - | - | "
                  f"{t['min_s']:.2f} | - |")
            continue
        print(f"| {name} | {o['images_per_s']:.3f} | {t['images_per_s']:.3f} | "
              f"{o['images_per_s'] / t['images_per_s']:.2f} | {o['peak_rss_mib']:.0f} | {t['peak_rss_mib']:.0f} | "
              f"{o['peak_rss_mib'] / t['peak_rss_mib']:.2f} | {o['min_s']:.2f} | {t['min_s']:.2f} | "
              f"{t['min_s'] / o['min_s']:.2f} |")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="every case, each in a fresh subprocess; JSON lines on stdout")
    c = sub.add_parser("case", help="one case in this process (what `run` calls)")
    c.add_argument("name")
    for p in (r, c):
        p.add_argument("--space", default="300M")
        p.add_argument("--threads", type=int, default=2)
        p.add_argument("--steps", type=int, default=3, help="timed training steps after 2 warm-up steps")
        p.add_argument("--infer-reps", type=int, default=3)
    r.add_argument("--filter", default="", help="regex on the case names")
    r.add_argument("--quick", action="store_true", help="320 and the random path only")
    q = sub.add_parser("parity", help="parameter counts against ours")
    q.add_argument("--space", default="300M")
    q.add_argument("--detnas", default="./detnas")
    q.add_argument("--ours", type=int, default=16509364, help="bench --e2e's supernet parameter count")
    t = sub.add_parser("table", help="markdown table: ours (bench --e2e --json) next to torch")
    t.add_argument("--ours", nargs="+", required=True)
    t.add_argument("--torch", nargs="+", required=True)
    a = ap.parse_args()
    return {"run": cmd_run, "case": cmd_case, "parity": cmd_parity, "table": cmd_table}[a.cmd](a) or 0


if __name__ == "__main__":
    sys.exit(main())
