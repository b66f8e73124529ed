// CUDA strided copy: a grid-stride loop over the row-major element index, each
// element's source and destination offsets from strided_offsets_fixed on the
// layout padded to kMaxRank dims (kernels/copy.h), so no local-memory array.
#include "kernels/copy.h"
#include "kernels/copy_cuda.h"
#include "kernels/cuda_check.h"
#include "kernels/cuda_plan.h"
#include "kernels/cuda_reduce.cuh"
#include "kernels/launch.h"

namespace detnas::kernels::cuda {

__global__ void strided_copy_kernel(StridedLayout L, int64_t n, const float* __restrict__ src, float* __restrict__ dst,
                                    GradientMode mode) {
  for (int64_t i = global_thread(); i < n; i += global_stride()) {
    int64_t s, d;
    strided_offsets_fixed<kMaxRank>(L, i, &s, &d);
    write_grad(dst + d, src[s], mode);
  }
}

void strided_copy(const StridedLayout& L, const float* src, float* dst, GradientMode mode, cudaStream_t stream) {
  DETNAS_CHECK(L.rank >= 0 && L.rank <= kMaxRank, "strided_copy (cuda): rank ", L.rank);
  if (mode == GradientMode::Ignore) return;
  int64_t n = 1;
  for (int k = 0; k < L.rank; ++k) n *= L.shape[k];
  if (n == 0) return;
  constexpr int kBlock = 256;
  DETNAS_LAUNCH(strided_copy_kernel, cuda_plan::grid_1d(n, kBlock), kBlock, 0, stream, pad_layout(L), n, src, dst,
                mode);
  DETNAS_CUDA_CHECK_LAUNCH("strided_copy_kernel");
}

}  // namespace detnas::kernels::cuda
