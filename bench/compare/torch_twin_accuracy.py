#!/usr/bin/env python3
"""Accuracy parity (issue 19): the PyTorch twin of `detnas train` trains a whole
run on detnas's batches with its OWN random draws, and writes its final state as
a detnas checkpoint, so that `detnas eval` scores both trainings the same way.

    ./detnas train --data D --arch A --seed S --out runs/ours --dump-steps ITERS --dump-dir runs/ours/dump
    /usr/bin/python3 bench/compare/torch_twin_accuracy.py --dump runs/ours/dump --like runs/ours/last \\
        --out runs/twin --seed S
    ./detnas eval --ckpt runs/ours/last --data D --json;  ./detnas eval --ckpt runs/twin/last --data D --json

bench/compare/accuracy_parity.sh runs this for a list of data sets and seeds.

Shared with detnas (so that only the training implementation differs): the
initial weights, every batch (images after our transforms, boxes, labels, in our
order: the dump of --dump-steps), the LR of each step (checked against the
reference schedule by torch_twin_train.py's step-parity mode), the recipe
(config.json). The twin's own: the network, losses, matchers and optimizer of
torch_twin_train.py (PyTorch and torchvision), its RPN proposals, and
torchvision's BalancedPositiveNegativeSampler for the RPN anchors and the RoIs,
seeded with torch.manual_seed(--seed). The checkpoint's sidecar is --like's
(our run's) with the same step, so eval reads the same architecture and settings.

Needs Debian's python3-torch and python3-torchvision (run with /usr/bin/python3).
"""
import argparse
import json
import math
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_twin_train import load_twin, read_safetensors, train_step, twin_state, write_safetensors  # noqa: E402


def save_checkpoint(out, state, like, step):
    """OUT/last.safetensors (+ .json): the twin's state with our run's sidecar."""
    with open(like + ".json") as f:
        sidecar = f.read()
    meta = json.loads(sidecar)
    if int(meta["step"]) != step:
        raise SystemExit(f"torch_twin_accuracy: {like}.json is at step {meta['step']}, the twin at {step}: "
                         "give the checkpoint of the run that wrote the dump")
    os.makedirs(out, exist_ok=True)
    base = os.path.join(out, "last")
    md = {"detnas_checkpoint": sidecar, "detnas_step": str(step), "detnas_kind": meta["kind"]}
    write_safetensors(base + ".safetensors.tmp", state, md)
    os.replace(base + ".safetensors.tmp", base + ".safetensors")
    with open(base + ".json.tmp", "w") as f:
        f.write(sidecar)
    os.replace(base + ".json.tmp", base + ".json")
    return base


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dump", required=True, help="the --dump-dir of detnas train (every step dumped)")
    ap.add_argument("--like", required=True, help="our run's final checkpoint (path without extension)")
    ap.add_argument("--out", required=True, help="folder for the twin's last.safetensors / last.json / log.jsonl")
    ap.add_argument("--seed", type=int, default=1, help="torch.manual_seed of the twin's samplers")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--log-every", type=int, default=50)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    cfg, task, net, _, opt = load_twin(a.dump, replay=False)
    params = list(net.named_parameters())
    steps = sorted(int(f[5:9]) for f in os.listdir(a.dump) if f.startswith("step_") and f.endswith(".json"))
    iters = int(cfg["iters"])
    if steps != list(range(1, iters + 1)):
        raise SystemExit(f"torch_twin_accuracy: {a.dump} holds {len(steps)} steps, the run has {iters}: "
                         f"run detnas train with --dump-steps {iters}")
    os.makedirs(a.out, exist_ok=True)
    log = open(os.path.join(a.out, "log.jsonl"), "w")
    window, t0 = [], time.time()
    print(f"twin: {task.kind}, arch {cfg['arch']}, {iters} steps, seed {a.seed}, {a.threads} threads", flush=True)
    for step in steps:
        base = os.path.join(a.dump, f"step_{step:04d}")
        with open(base + ".json") as f:
            rec = json.load(f)
        t = read_safetensors(base + ".safetensors")
        tw, extra = train_step(task, net, opt, params, t["images"], rec, t, rec["lr"], task.clip())
        if not math.isfinite(tw["total"]):
            raise SystemExit(f"torch_twin_accuracy: step {step}: the twin's loss is {tw['total']}")
        ours = dict(rec["losses"], total=rec["total"], grad_norm=rec["grad_norm"])
        log.write(json.dumps({"step": step, "lr": rec["lr"], "ours": ours, "twin": tw, "extra": extra}) + "\n")
        window.append((ours["total"], tw["total"]))
        if step % a.log_every == 0 or step == steps[-1]:
            mo = sum(w[0] for w in window) / len(window)
            mt = sum(w[1] for w in window) / len(window)
            el = time.time() - t0
            print(f"step {step}/{iters}  mean loss of the last {len(window)}: ours {mo:.4f} twin {mt:.4f}  "
                  f"lr {rec['lr']:.5g}  {step * len(rec['num_boxes']) / el:.2f} img/s", flush=True)
            window = []
    log.close()
    base = save_checkpoint(a.out, twin_state(net, opt), a.like, steps[-1])
    print(f"twin: saved {base}.safetensors after {steps[-1]} steps in {time.time() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
