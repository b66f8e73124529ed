// CPU SGD-with-momentum update: one pass over a parameter, OpenMP for large ones.
#include "core/error.h"
#include "kernels/sgd.h"

namespace detnas::kernels::cpu {

template <typename T>
void sgd_update(int64_t n, T* param, const T* grad, T* momentum_buf, const SgdParams& params) {
  DETNAS_CHECK(momentum_buf != nullptr || params.momentum == 0.0, "sgd_update: momentum ", params.momentum,
               " needs a momentum buffer");
  const T lr = T(params.lr), mom = T(params.momentum), wd = T(params.weight_decay);
  const MomentumBuffer state = params.buffer;
  // With momentum 0 and no buffer, torch keeps no buffer either: p -= lr * d.
  if (momentum_buf) {
#pragma omp parallel for simd schedule(static) if (n > (1 << 15))
    for (int64_t i = 0; i < n; ++i) sgd_step(param[i], grad[i], momentum_buf + i, lr, mom, wd, state);
  } else {
#pragma omp parallel for simd schedule(static) if (n > (1 << 15))
    for (int64_t i = 0; i < n; ++i) sgd_step(param[i], grad[i], static_cast<T*>(nullptr), lr, mom, wd, state);
  }
}

template void sgd_update<float>(int64_t, float*, const float*, float*, const SgdParams&);
template void sgd_update<double>(int64_t, double*, const double*, double*, const SgdParams&);

}  // namespace detnas::kernels::cpu
