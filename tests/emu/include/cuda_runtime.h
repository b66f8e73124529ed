// The emulated build's <cuda_runtime.h> (tests/emu/include is first on its include
// path only): the CUDA runtime subset of the CPU SIMT emulator. The real build
// never sees this file.
#pragma once
#include "tests/emu/emu.h"
