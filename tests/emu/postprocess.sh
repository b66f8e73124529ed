#!/bin/sh
# Second step of compiling a .cu source for the CPU SIMT emulator (see the
# Makefile rule for $(BUILD)/emu/%.o and tests/emu/README.md):
#   tests/emu/postprocess.sh IN.o OUT.o
# 1. Under tests/emu/emu.h `__shared__` is `thread_local`, so each
#    `extern __shared__ T name[];` is an undefined thread-local symbol. Every such
#    symbol is renamed to detnas_emu_dynamic_shared, the per-block dynamic shared
#    memory buffer of the emulator (tests/emu/emu.cpp).
# 2. Static __shared__ arrays are the object's local thread-local symbols; their
#    sizes are summed per enclosing function and the step fails when a kernel
#    uses more than 48 KB (the limit nvcc enforces for static shared memory).
# Needs readelf, objcopy and c++filt (binutils, installed with g++).
set -eu
in=$1
out=$2

renames=""
for s in $(readelf -sW "$in" | awk '$4 == "TLS" && $7 == "UND" { print $8 }'); do
  case "$s" in
    _ZN6detnas3emu*|detnas_emu_*) ;;  # the emulator's own thread-locals
    _ZSt*|_ZNSt*|__*) ;;  # the C++/C runtime's (std::call_once in the cuBLAS/cuDNN wrappers)
    *) renames="$renames --redefine-sym $s=detnas_emu_dynamic_shared" ;;
  esac
done
# shellcheck disable=SC2086
objcopy $renames "$in" "$out"
rm -f "$in"

readelf -sW "$out" | awk '$4 == "TLS" && $7 != "UND" { print $3, $8 }' | c++filt | awk -v obj="$out" '
  function num(s,   v, i, c) {  # readelf prints large sizes in hex
    if (substr(s, 1, 2) != "0x") return s + 0
    v = 0
    for (i = 3; i <= length(s); i++) { c = index("0123456789abcdef", tolower(substr(s, i, 1))) - 1; v = v * 16 + c }
    return v
  }
  {
    size = num($1); name = substr($0, length($1) + 2)
    fn = "(namespace scope)"
    for (i = length(name) - 1; i > 1; i--) if (substr(name, i, 2) == "::") { fn = substr(name, 1, i - 1); break }
    total[fn] += size
  }
  END {
    bad = 0
    for (fn in total) if (total[fn] > 49152) {
      printf "%s: error: %s uses %d bytes of static __shared__ memory (limit 49152)\n", obj, fn, total[fn] > "/dev/stderr"
      bad = 1
    }
    exit bad
  }' || { rm -f "$out"; exit 1; }
