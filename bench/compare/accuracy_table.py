#!/usr/bin/env python3
"""The accuracy-parity tables (issue 19) from the folder of accuracy_parity.sh:

    /usr/bin/python3 bench/compare/accuracy_table.py runs/parity

For each data set and seed: COCO AP / AP50 / AP75 of `detnas eval` on detnas's
run (NAME_sSEED) and on the PyTorch twin's (NAME_sSEED_twin), their difference,
the mean over the seeds; then the mean training loss of both sides per phase of
the schedule (from the twin's log.jsonl, which holds both sides' losses per step).
"""
import glob
import json
import os
import re
import sys


def stats(path):
    with open(path) as f:
        s = json.load(f)["stats"]
    return s[0], s[1], s[2]


def main():
    work = sys.argv[1] if len(sys.argv) > 1 else "runs/parity"
    runs = {}
    for p in sorted(glob.glob(os.path.join(work, "*_s*_twin", "eval.json"))):
        twin_dir = os.path.dirname(p)
        m = re.match(r"(.+)_s(\d+)_twin$", os.path.basename(twin_dir))
        ours = os.path.join(work, f"{m.group(1)}_s{m.group(2)}", "eval.json")
        if os.path.exists(ours):
            runs.setdefault(m.group(1), []).append((int(m.group(2)), stats(ours), stats(p), twin_dir))
    if not runs:
        raise SystemExit(f"accuracy_table: no finished NAME_sSEED / NAME_sSEED_twin pairs in {work}")
    print("| data | seed | detnas AP | AP50 | AP75 | twin AP | AP50 | AP75 | AP detnas - twin |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, rs in sorted(runs.items()):
        for seed, o, t, _ in sorted(rs):
            print(f"| {name} | {seed} | {o[0]:.3f} | {o[1]:.3f} | {o[2]:.3f} | {t[0]:.3f} | {t[1]:.3f} | "
                  f"{t[2]:.3f} | {o[0] - t[0]:+.3f} |")
        n = len(rs)
        mo = [sum(r[1][i] for r in rs) / n for i in range(3)]
        mt = [sum(r[2][i] for r in rs) / n for i in range(3)]
        print(f"| {name} | mean of {n} | **{mo[0]:.3f}** | {mo[1]:.3f} | {mo[2]:.3f} | **{mt[0]:.3f}** | "
              f"{mt[1]:.3f} | {mt[2]:.3f} | **{mo[0] - mt[0]:+.3f}** |")
    print()
    print("Mean training loss per phase (steps; both sides' losses on the same batches):")
    print()
    print("| data | seed | steps | detnas | twin |")
    print("|---|---:|---|---:|---:|")
    for name, rs in sorted(runs.items()):
        for seed, _, _, twin_dir in sorted(rs):
            recs = [json.loads(line) for line in open(os.path.join(twin_dir, "log.jsonl"))]
            n = len(recs)
            for lo, hi in ((1, 200), (201, 2 * n // 3), (2 * n // 3 + 1, n)):
                sel = recs[lo - 1:hi]
                if not sel:
                    continue
                mo = sum(r["ours"]["total"] for r in sel) / len(sel)
                mt = sum(r["twin"]["total"] for r in sel) / len(sel)
                print(f"| {name} | {seed} | {lo}-{hi} | {mo:.4f} | {mt:.4f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
