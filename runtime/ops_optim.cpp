// Optimizer ops: check the tensors once, then the device's kernel
// (runtime/backend.h). Nothing is recorded on the tape.
#include "runtime/ops_optim.h"

#include "core/error.h"
#include "runtime/backend.h"

namespace detnas::rt::ops {

namespace {
void require_contiguous(const char* op, std::initializer_list<const Tensor*> ts) {
  for (const Tensor* t : ts)
    if (t && t->defined()) DETNAS_CHECK(t->is_contiguous(), op, ": non-contiguous tensor ", t->describe());
}
}  // namespace

void sgd_update_(Tensor& param, const Tensor& grad, Tensor& momentum_buf, const SgdParams& params) {
  const char* op = "sgd_update_";
  check_defined(op, param, "parameter");
  check_same_shape(op, param, grad);
  if (momentum_buf.defined()) check_same_shape(op, param, momentum_buf);
  require_contiguous(op, {&param, &grad, &momentum_buf});
  const Kernels& kt = kernels_for(common_device(op, {&param, &grad, &momentum_buf}));
  float* buf = momentum_buf.defined() ? momentum_buf.data() : nullptr;
  kt.sgd_update(param.numel(), param.data(), grad.data(), buf, params);
}

double sum_squares(const Tensor& x) {
  check_defined("sum_squares", x, "input");
  require_contiguous("sum_squares", {&x});
  const Kernels& kt = kernels_for(x.device());
  const Workspace ws(kt.reduce_workspace_bytes(x.numel()), x.device());
  return kt.sum_squares(x.numel(), x.data(), ws.ptr());  // CUDA: the two-pass device sum, one read-back
}

void scale_(Tensor& x, float s) {
  check_defined("scale_", x, "input");
  require_contiguous("scale_", {&x});
  kernels_for(x.device()).scale(x.numel(), s, x.data(), x.data());
}

}  // namespace detnas::rt::ops
