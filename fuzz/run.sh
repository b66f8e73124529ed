#!/bin/sh
# Runs the libFuzzer targets (called by `make fuzz` / `make fuzz-ci`, see
# fuzz/README.md):
#   sh fuzz/run.sh fuzz|ci SECONDS BUILD NAME:MAX_LEN...
# fuzz: each target for SECONDS from its seeds (fuzz/corpus/NAME, copied into the
#   scratch corpus BUILD/corpus/NAME) and its saved regressions.
# ci:   every file of fuzz/regressions/*/ through every target as plain inputs,
#   then as `fuzz`.
# Targets run one at a time with OMP_NUM_THREADS=1. One summary line per target;
# the exit status is 1 when any target found something (its input is in
# BUILD/findings/NAME/, its log in BUILD/logs/NAME.log, the log's tail is printed).
set -u
mode=$1 seconds=$2 build=$3
shift 3
export OMP_NUM_THREADS=1 OMP_WAIT_POLICY=passive
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
common="-rss_limit_mb=2048 -timeout=10"
failed=""
mkdir -p "$build/logs"

stat() {  # stat NAME LOG: a value of libFuzzer's -print_final_stats block
  sed -n "s/^stat::$1: *//p" "$2" | tail -n 1
}

report_failure() {  # report_failure NAME LOG
  failed="$failed $1"
  echo "---- $2 (tail)"
  tail -n 40 "$2"
  echo "----"
}

if [ "$mode" = ci ]; then
  regressions=$(find fuzz/regressions -type f ! -name '*.md' 2>/dev/null | sort)
  count=$(printf '%s\n' "$regressions" | grep -c . || true)
  for spec in "$@"; do
    name=${spec%%:*}
    log="$build/logs/regress_$name.log"
    if [ "$count" -eq 0 ]; then
      echo "regress $name: no saved inputs"
      continue
    fi
    # shellcheck disable=SC2086
    if "$build/fuzz_$name" $common $regressions >"$log" 2>&1; then
      echo "regress $name: $count saved inputs (all targets' regressions) ran clean"
    else
      echo "regress $name: FAILED on a saved input"
      report_failure "regress_$name" "$log"
    fi
  done
fi

for spec in "$@"; do
  name=${spec%%:*} max_len=${spec#*:}
  corpus="$build/corpus/$name" findings="$build/findings/$name" log="$build/logs/$name.log"
  rm -rf "$findings"
  mkdir -p "$corpus" "$findings"
  [ -d "fuzz/corpus/$name" ] && cp -n "fuzz/corpus/$name"/* "$corpus"/ 2>/dev/null
  extra=""
  [ -d "fuzz/regressions/$name" ] && extra="fuzz/regressions/$name"
  dict=""
  [ -f "fuzz/dict/$name.dict" ] && dict="-dict=fuzz/dict/$name.dict"
  # shellcheck disable=SC2086
  "$build/fuzz_$name" $common -max_len="$max_len" -max_total_time="$seconds" -print_final_stats=1 \
    -artifact_prefix="$findings/" $dict "$corpus" $extra >"$log" 2>&1
  rc=$?
  execs=$(stat number_of_executed_units "$log")
  rate=$(stat average_exec_per_sec "$log")
  rss=$(stat peak_rss_mb "$log")
  units=$(ls "$corpus" | wc -l)
  status=OK
  [ $rc -eq 0 ] || status="FAILED (exit $rc)"
  printf 'fuzz %-15s %10s execs %7s exec/s %5ss max_len %-6s corpus %5s peak RSS %5s MB  %s\n' \
    "$name" "${execs:-?}" "${rate:-?}" "$seconds" "$max_len" "$units" "${rss:-?}" "$status"
  [ $rc -eq 0 ] || report_failure "$name" "$log"
done

if [ -n "$failed" ]; then
  echo "fuzz: findings in:$failed"
  exit 1
fi
echo "fuzz: no findings"
