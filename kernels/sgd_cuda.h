// CUDA twin of kernels/sgd.h: the SGD-with-momentum update as one elementwise
// kernel over sgd_step (float, device pointers). Not here: parameter grouping and
// schedules (nn/).
#pragma once
#include <cstdint>

#include "kernels/sgd.h"

typedef struct CUstream_st* cudaStream_t;

namespace detnas::kernels::cuda {
// param (n) updated in place  grad (n)  momentum_buf (n) or null (momentum 0 only)
void sgd_update(int64_t n, float* param, const float* grad, float* momentum_buf, const SgdParams& params,
                cudaStream_t stream);
}  // namespace detnas::kernels::cuda
