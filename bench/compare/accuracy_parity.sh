#!/bin/sh
# Accuracy parity (issue 19): for each data set and seed, detnas trains the fixed
# architecture ARCH with its default recipe while dumping every batch; the PyTorch
# twin (torch_twin_accuracy.py) trains from the same initial weights on the same
# batches with its own implementation and random draws; `detnas eval` scores both
# final checkpoints on the val split. Each stage is skipped when its output exists,
# so a rerun resumes. Not used by the build or the tests.
#   bench/compare/accuracy_parity.sh          (from the repository root)
#   DETNAS=build/bin/detnas WORK=runs/parity SETS="bccd:../shared/data/bccd synthetic:" SEEDS="1 2" \
#     ARCH=3,0,1,0,0,0,0,1,1,2 bench/compare/accuracy_parity.sh
# Then: /usr/bin/python3 bench/compare/accuracy_table.py WORK  (the markdown table)
set -eu
DETNAS=$(realpath "${DETNAS:-build/bin/detnas}")
WORK=${WORK:-runs/parity}
SETS=${SETS:-bccd:$(realpath ../shared/data/bccd) synthetic:}
SEEDS=${SEEDS:-1 2}
ARCH=${ARCH:-3,0,1,0,0,0,0,1,1,2}
ITERS=${ITERS:-1500}
THREADS=${THREADS:-2}
PY=${PY:-/usr/bin/python3}
TWIN=$(realpath "$(dirname "$0")/torch_twin_accuracy.py")
mkdir -p "$WORK"
cd "$WORK"  # the built-in synthetic set is generated here (data/synthetic/det)

for set in $SETS; do
  name=${set%%:*}
  root=${set#*:}
  data=${root:+--data $root}
  for seed in $SEEDS; do
    ours=${name}_s$seed
    twin=${name}_s${seed}_twin
    if [ ! -f "$ours/eval.json" ]; then
      if ! grep -qs "\"step\": $ITERS," "$ours/last.json"; then
        rm -rf "$ours"
        echo "== $ours: detnas train (dumping every step)"
        # shellcheck disable=SC2086
        "$DETNAS" train $data --arch "$ARCH" --iters "$ITERS" --seed "$seed" --threads "$THREADS" \
          --out "$ours" --dump-steps "$ITERS" --dump-dir "$ours/dump" > "$ours.log" 2>&1
      fi
      # shellcheck disable=SC2086
      "$DETNAS" eval --ckpt "$ours/last" $data --threads "$THREADS" --json > "$ours/eval.json.tmp"
      mv "$ours/eval.json.tmp" "$ours/eval.json"
    fi
    if [ ! -f "$twin/eval.json" ]; then
      if [ ! -f "$twin/last.json" ]; then
        echo "== $twin: PyTorch twin on the same batches"
        "$PY" "$TWIN" --dump "$ours/dump" --like "$ours/last" --out "$twin" --seed "$seed" \
          --threads "$THREADS" > "$twin.log" 2>&1
      fi
      # shellcheck disable=SC2086
      "$DETNAS" eval --ckpt "$twin/last" $data --threads "$THREADS" --json > "$twin/eval.json.tmp"
      mv "$twin/eval.json.tmp" "$twin/eval.json"
    fi
    rm -rf "$ours/dump"
    echo "== $name seed $seed: ours $(cut -c1-40 "$ours/eval.json")  twin $(cut -c1-40 "$twin/eval.json")"
  done
done
