// The one way kernels are launched: DETNAS_LAUNCH(kernel, grid, block, shmem,
// stream, args...). Under nvcc it is the <<<...>>> launch; the test build of the
// CPU SIMT emulator (a separate issue) defines it to run the same kernel on the CPU,
// so .cu sources are never duplicated.
#pragma once
#include <cstdint>

#if defined(__CUDACC__)
#define DETNAS_LAUNCH(kernel, grid, block, shmem, stream, ...) \
  kernel<<<(grid), (block), (shmem), (stream)>>>(__VA_ARGS__)
#elif defined(DETNAS_EMU)
// Test build only: the CPU SIMT emulator (tests/emu/emu.h) runs the kernel.
#define DETNAS_LAUNCH(kernel, grid, block, shmem, stream, ...) \
  ::detnas::emu::launch(#kernel, kernel, (grid), (block), (shmem), (stream), ##__VA_ARGS__)
#endif

namespace detnas::kernels::cuda {
// Grid size for a grid-stride loop over n elements with `block` threads per block.
inline unsigned grid_for(int64_t n, int block, unsigned max_blocks = 65535u * 8u) {
  int64_t g = (n + block - 1) / block;
  if (g < 1) g = 1;
  return g > int64_t(max_blocks) ? max_blocks : unsigned(g);
}
}  // namespace detnas::kernels::cuda
