#!/bin/sh
# Runs bench and the PyTorch comparison on the default entries, in chunks: before
# each chunk it waits for a quiet machine (1-minute load average below MAXLOAD
# and at least MINIDLE % of the CPU idle over 10 s), then times the chunk with
# bench, with PyTorch, and with bench under OMP_WAIT_POLICY=passive, back to back,
# so both sides of a row see the same conditions. Writes the JSON lines and the
# side-by-side tables to OUT. Not used by the build or the tests.
#   bench/compare/run_all.sh                  (from the repository root)
#   BENCH=build-x/bin/bench THREADS=2 MAXLOAD=1.5 MINIDLE=90 PASSIVE=1 WAIT=3600 OUT=bench/compare/results bench/compare/run_all.sh
set -euf  # -f: the chunk regexes must not glob
BENCH=${BENCH:-build/bin/bench}
THREADS=${THREADS:-2}
MAXLOAD=${MAXLOAD:-1.5}
MINIDLE=${MINIDLE:-90}
PASSIVE=${PASSIVE:-1}
WAIT=${WAIT:-3600}
OUT=${OUT:-bench/compare/results}
PY=${PY:-/usr/bin/python3}
HERE=$(dirname "$0")
mkdir -p "$OUT"

idle_percent() {  # CPU idle (idle + iowait) over 10 s, from /proc/stat
  read -r _ u1 n1 s1 i1 w1 q1 sq1 st1 _ < /proc/stat
  sleep 10
  read -r _ u2 n2 s2 i2 w2 q2 sq2 st2 _ < /proc/stat
  total=$(((u2 + n2 + s2 + i2 + w2 + q2 + sq2 + st2) - (u1 + n1 + s1 + i1 + w1 + q1 + sq1 + st1)))
  echo $((100 * ((i2 + w2) - (i1 + w1)) / (total > 0 ? total : 1)))
}

wait_quiet() {
  waited=0
  while :; do
    load=$(cut -d' ' -f1 /proc/loadavg)
    idle=$(idle_percent)
    if awk -v l="$load" -v m="$MAXLOAD" 'BEGIN { exit !(l < m) }' && [ "$idle" -ge "$MINIDLE" ]; then return; fi
    if [ "$waited" -ge "$WAIT" ]; then
      echo "run_all: load $load, idle $idle% after ${WAIT}s of waiting; running anyway" >&2
      return
    fi
    sleep 20
    waited=$((waited + 30))
  done
}

# Every default entry falls in exactly one chunk (bench --list checks it below).
CHUNKS='^300M@320/stage1/
^300M@320/stage2/
^300M@320/(stem|stage3)/
^300M@320/stage4/
^1[.]3G@800/stage1/
^1[.]3G@800/stem/
^1[.]3G@800/stage2/
^1[.]3G@800/stage3/
^1[.]3G@800/stage4/
^retina@320/P[3-7]/conv
^retina@320/(P3/cls|focal|smooth|box)
^retina@800/P3/
^retina@800/P[4-7]/
^retina@800/(focal|smooth|box)
^fpn@320/
^fpn@800/
^(nms|batched_nms|sgd)/'
all=$("$BENCH" --list | grep -c '^\*' || true)
sum=0
for c in $CHUNKS; do sum=$((sum + $("$BENCH" --list --filter "$c" | grep -c '^\*' || true))); done
[ "$all" -eq "$sum" ] || { echo "run_all: the chunks cover $sum of $all default entries" >&2; exit 1; }

: > "$OUT/ours.jsonl"; : > "$OUT/torch.jsonl"; : > "$OUT/ours_passive.jsonl"; : > "$OUT/run.log"
i=0
for c in $CHUNKS; do
  i=$((i + 1))
  wait_quiet
  echo "chunk $i '$c': start, loadavg $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$OUT/run.log" >&2
  "$BENCH" --json --threads "$THREADS" --filter "$c" > "$OUT/chunk.jsonl" 2>> "$OUT/run.log" || echo "run_all: bench exited $?" >&2
  cat "$OUT/chunk.jsonl" >> "$OUT/ours.jsonl"
  "$PY" "$HERE/torch_bench.py" run "$OUT/chunk.jsonl" --threads "$THREADS" >> "$OUT/torch.jsonl"
  # The same kernels with OpenMP's idle threads sleeping instead of spinning: the
  # OpenMP pool and OpenBLAS's pthread pool then stop competing for the cores.
  if [ "$PASSIVE" = 1 ]; then
    OMP_WAIT_POLICY=passive "$BENCH" --json --threads "$THREADS" --filter "$c" >> "$OUT/ours_passive.jsonl" 2>> "$OUT/run.log" || true
  fi
  echo "chunk $i: done, loadavg $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$OUT/run.log" >&2
done
rm -f "$OUT/chunk.jsonl"
"$PY" "$HERE/torch_bench.py" table --ours "$OUT/ours.jsonl" --torch "$OUT/torch.jsonl" > "$OUT/table.md"
if [ "$PASSIVE" = 1 ]; then
  "$PY" "$HERE/torch_bench.py" table --ours "$OUT/ours_passive.jsonl" --torch "$OUT/torch.jsonl" > "$OUT/table_passive.md"
fi
echo "run_all: wrote the tables in $OUT" >&2
