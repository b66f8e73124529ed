#!/bin/bash
# Issue 18 scaling measurements on this machine (quiet). Usage: run.sh OUTDIR
set -u
B=${DETNAS:-$(cd "$(dirname "$0")/../.." && pwd)/build/bin/detnas}
O=$1; mkdir -p $O; cd $O
MPI="mpirun --allow-run-as-root --oversubscribe --bind-to none -np 2"
T="train --iters 16 --log-every 8 --eval-every 0 --bn-images 8 --seed 1 --pretrained none"
for round in 1 2; do
  rm -rf t1 t2
  /usr/bin/time -f "wall %e s" $B $T --threads 2 --out t1 2>&1 | grep -E "train iter 16|wall" | sed "s/^/r$round 1rank: /"
  /usr/bin/time -f "wall %e s" $MPI $B $T --out t2 2>&1 | grep -E "train iter 16|wall" | sed "s/^/r$round 2ranks: /"
done
grep -o '"allreduce_bytes":[0-9]*,"allreduce_s":[0-9.e-]*' t2/log.jsonl | sed 's/^/ar: /'
S="search --ckpt t1/last --population 8 --parents 2 --mutants 3 --crossovers 3 --generations 2 --seed 1"
for round in 1 2; do
  rm -rf s1 s2
  /usr/bin/time -f "wall %e s" $B $S --threads 2 --out s1 2>&1 | grep -E "search: done|wall" | sed "s/^/r$round search 1rank: /"
  /usr/bin/time -f "wall %e s" $MPI $B $S --out s2 2>&1 | grep -E "search: done|wall" | sed "s/^/r$round search 2ranks: /"
done
diff <(sed -E 's/,"(seconds|recal_seconds|infer_seconds|rank)":[-0-9.eE+]+//g' s1/search.jsonl) <(sed -E 's/,"(seconds|recal_seconds|infer_seconds|rank)":[-0-9.eE+]+//g' s2/search.jsonl) && echo "search records identical"
