// Optimizer ops: check the tensors once, then the CPU kernel / loop here or the
// CUDA twin (runtime/ops_cuda.cpp). Nothing is recorded on the tape.
#include "runtime/ops_optim.h"

#include <algorithm>

#include "core/error.h"
#include "runtime/ops_cuda.h"

namespace detnas::rt::ops {

namespace {
void require_contiguous(const char* op, std::initializer_list<const Tensor*> ts) {
  for (const Tensor* t : ts)
    if (t && t->defined()) DETNAS_CHECK(t->is_contiguous(), op, ": non-contiguous tensor ", t->describe());
}

// Sum of squares in double in an order fixed by n alone (an OpenMP reduction's
// order follows the thread count): at most 256 chunks of at least 64Ki elements,
// each summed serially, the chunk sums added in order.
double sum_squares_cpu(const float* d, int64_t n) {
  constexpr int64_t kMaxChunks = 256;
  const int64_t chunk = std::max<int64_t>(65536, (n + kMaxChunks - 1) / kMaxChunks), nc = (n + chunk - 1) / chunk;
  double part[kMaxChunks];
#pragma omp parallel for schedule(static) if (nc > 1)
  for (int64_t c = 0; c < nc; ++c) {
    double s = 0;
    for (int64_t i = c * chunk, e = std::min(n, i + chunk); i < e; ++i) s += double(d[i]) * double(d[i]);
    part[c] = s;
  }
  double sq = 0;
  for (int64_t c = 0; c < nc; ++c) sq += part[c];
  return sq;
}
}  // namespace

void sgd_update_(Tensor& param, const Tensor& grad, Tensor& momentum_buf, const SgdParams& params) {
  const char* op = "sgd_update_";
  check_defined(op, param, "parameter");
  check_same_shape(op, param, grad);
  if (momentum_buf.defined()) check_same_shape(op, param, momentum_buf);
  require_contiguous(op, {&param, &grad, &momentum_buf});
  float* buf = momentum_buf.defined() ? momentum_buf.data() : nullptr;
  if (cuda_ops::on_cuda(op, {&param, &grad, &momentum_buf})) return cuda_ops::sgd_update_(param, grad, buf, params);
  kernels::cpu::sgd_update(param.numel(), param.data(), grad.data(), buf, params);
}

double sum_squares(const Tensor& x) {
  check_defined("sum_squares", x, "input");
  require_contiguous("sum_squares", {&x});
  if (cuda_ops::on_cuda("sum_squares", {&x})) return cuda_ops::sum_squares(x);  // device two-pass sum, one read-back
  return sum_squares_cpu(x.data(), x.numel());
}

void scale_(Tensor& x, float s) {
  check_defined("scale_", x, "input");
  require_contiguous("scale_", {&x});
  if (cuda_ops::on_cuda("scale_", {&x})) return cuda_ops::scale_(x, s);
  float* d = x.data();
  const int64_t n = x.numel();
#pragma omp parallel for if (n > 65536)
  for (int64_t i = 0; i < n; ++i) d[i] *= s;
}

}  // namespace detnas::rt::ops
