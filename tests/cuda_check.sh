#!/bin/sh
# make cuda-check: compiles every .cu source with nvcc -Xptxas -v (the flags of
# the build) and prints, per kernel (entry function), the registers, static
# shared memory, stack frame and spill bytes ptxas reports. Fails when any kernel
# has a stack frame (local memory) or spills. Needs nvcc only, no GPU.
# usage: tests/cuda_check.sh "<nvcc> <flags>" file.cu...
set -u
NVCC_CMD=$1
shift
out=$(mktemp)
trap 'rm -f "$out"' EXIT
status=0
printf '%-28s %-44s %5s %7s %6s %6s %6s\n' file kernel regs smem stack spillS spillL
for f in "$@"; do
  if ! $NVCC_CMD -Xptxas -v -c "$f" -o /dev/null >"$out" 2>&1; then
    cat "$out"
    echo "cuda-check: nvcc failed on $f"
    status=1
    continue
  fi
  # One line per entry function: name regs smem stack spill_stores spill_loads.
  awk -v file="$(basename "$f")" '
    /Compiling entry function/ { match($0, /function \047[^\047]+\047/); name = substr($0, RSTART + 10, RLENGTH - 11); entry = 1; next }
    /Function properties for/ { if (!entry) name = ""; next }
    /bytes stack frame/ { if (name != "") { stack = $1; spills = $5; spilll = $9 } next }
    /Used [0-9]+ registers/ {
      if (name == "") next
      regs = 0; smem = 0
      for (i = 1; i <= NF; ++i) { if ($(i + 1) ~ /^registers/) regs = $i; if ($(i + 1) ~ /^bytes/ && $(i + 2) ~ /^smem/) smem = $i }
      print file, name, regs, smem, stack, spills, spilll
      name = ""; entry = 0
    }' "$out" | while read -r file name regs smem stack spills spilll; do
    short=$(echo "$name" | ${CUFILT:-c++filt} | sed -e 's/(.*//' -e 's/^detnas::kernels::cuda:://' -e 's/^detnas::emu:://')
    flag=""
    if [ "$stack" != 0 ] || [ "$spills" != 0 ] || [ "$spilll" != 0 ]; then flag="  <-- stack frame / spills"; fi
    printf '%-28s %-44s %5s %7s %6s %6s %6s%s\n' "$file" "$short" "$regs" "$smem" "$stack" "$spills" "$spilll" "$flag"
  done
done | tee "$out.table"
if grep -q "<-- stack frame / spills" "$out.table"; then status=1; fi
n=$(grep -c '\.cu ' "$out.table")
rm -f "$out.table"
if [ $status -ne 0 ]; then
  echo "cuda-check: FAILED (a kernel has a stack frame or spills, or nvcc failed)"
  exit 1
fi
echo "cuda-check: $n kernels, no stack frames, no spills"
