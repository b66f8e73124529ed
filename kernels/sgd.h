// SGD with momentum, torch.optim.SGD semantics (dampening 0, no Nesterov):
//   d = g + weight_decay * p;  buf = (fresh buffer) ? d : momentum * buf + d;
//   p -= lr * buf.
// The per-element step is a DETNAS_HD function shared by the CPU loop and the
// CUDA kernel (kernels/sgd_cuda.cu).
// Not here: device dispatch (runtime/ops_optim.h), which parameters are stepped,
// learning-rate schedules, per-parameter multipliers (the caller folds them into
// lr), buffer allocation (nn/).
#pragma once
#include <cstdint>

#include "kernels/common.h"

namespace detnas {

// Whether this update is the first one of a parameter (the buffer is written,
// not read) or its momentum buffer already holds history.
enum class MomentumBuffer { Fresh, Existing };

struct SgdParams {
  double lr = 0.0;            // already including any per-parameter multiplier
  double momentum = 0.0;      // 0: plain SGD; the buffer may then be null
  double weight_decay = 0.0;  // L2 penalty folded into the gradient
  MomentumBuffer buffer = MomentumBuffer::Fresh;
};

namespace kernels {

template <typename T>
DETNAS_HD void sgd_step(T& p, T g, T* buf, T lr, T momentum, T wd, MomentumBuffer state) {
  T d = g + wd * p;
  if (buf) {
    d = state == MomentumBuffer::Fresh ? d : momentum * *buf + d;
    *buf = d;
  }
  p -= lr * d;
}

namespace cpu {
// param (n) updated in place   grad (n)   momentum_buf (n) = new buffer (may be
// null only when momentum == 0)
template <typename T>
void sgd_update(int64_t n, T* param, const T* grad, T* momentum_buf, const SgdParams& params);
}  // namespace cpu

}  // namespace kernels
}  // namespace detnas
