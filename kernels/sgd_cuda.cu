// CUDA SGD update: a grid-stride loop over sgd_step (kernels/sgd.h), the same
// float arithmetic as the CPU loop.
#include "kernels/cuda_check.h"
#include "kernels/cuda_plan.h"
#include "kernels/cuda_reduce.cuh"
#include "kernels/launch.h"
#include "kernels/sgd.h"
#include "kernels/sgd_cuda.h"

namespace detnas::kernels::cuda {

__global__ void sgd_update_kernel(int64_t n, float* __restrict__ param, const float* __restrict__ grad,
                                  float* __restrict__ buf, float lr, float momentum, float wd, MomentumBuffer state) {
  for (int64_t i = global_thread(); i < n; i += global_stride())
    sgd_step(param[i], grad[i], buf ? buf + i : static_cast<float*>(nullptr), lr, momentum, wd, state);
}

void sgd_update(int64_t n, float* param, const float* grad, float* momentum_buf, const SgdParams& params,
                cudaStream_t stream) {
  DETNAS_CHECK(momentum_buf != nullptr || params.momentum == 0.0, "sgd_update (cuda): momentum ", params.momentum,
               " needs a momentum buffer");
  if (n == 0) return;
  constexpr int kBlock = 256;
  DETNAS_LAUNCH(sgd_update_kernel, cuda_plan::grid_1d(n, kBlock), kBlock, 0, stream, n, param, grad, momentum_buf,
                float(params.lr), float(params.momentum), float(params.weight_decay), params.buffer);
  DETNAS_CUDA_CHECK_LAUNCH("sgd_update_kernel");
}

}  // namespace detnas::kernels::cuda
