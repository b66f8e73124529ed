// Elementwise ops: check shapes once, call the device's kernel (runtime/backend.h),
// record the backward.
#include "runtime/ops_elementwise.h"

#include "core/profile.h"
#include "runtime/autograd.h"
#include "runtime/backend.h"

namespace detnas::rt::ops {

Tensor relu(const Tensor& x_in) {
  check_defined("relu", x_in, "input");
  DETNAS_PROFILE_SCOPE("relu");
  const Kernels& kt = kernels_for(x_in.device());
  Tensor x = x_in.contiguous();
  Tensor y = Tensor::empty(x.shape(), x.device());
  kt.relu_forward(x.numel(), x.data(), y.data());
  if (wants_grad({&x})) {
    // ReLU's backward needs only the sign of its output: keep y, not x.
    record({&y}, [x, y, &kt]() {
      Tensor gy = y.grad();
      if (!gy.defined()) return;
      GradSlot g = grad_slot(x);
      kt.relu_backward(y.numel(), y.data(), gy.data(), g.ptr, g.mode);
    });
  }
  return y;
}

Tensor& relu_(Tensor& x) {
  check_defined("relu_", x, "input");
  DETNAS_CHECK(!wants_grad({&x}), "relu_: in place only without autograd (the input requires grad)");
  DETNAS_CHECK(x.is_contiguous(), "relu_: the input must be contiguous, got strides of shape ", shape_str(x.shape()));
  DETNAS_PROFILE_SCOPE("relu");
  kernels_for(x.device()).relu_forward(x.numel(), x.data(), x.data());
  return x;
}

Tensor add(const Tensor& a_in, const Tensor& b_in) {
  check_same_shape("add", a_in, b_in);
  const Kernels& kt = kernels_for(common_device("add", {&a_in, &b_in}));
  Tensor a = a_in.contiguous(), b = b_in.contiguous();
  Tensor y = Tensor::empty(a.shape(), a.device());
  kt.add_forward(a.numel(), a.data(), b.data(), y.data());
  if (wants_grad({&a, &b})) {
    record({&y}, [a, b, y, &kt]() {
      Tensor gy = y.grad();
      if (!gy.defined()) return;
      GradSlot ga = grad_slot(a);
      kt.scale_backward(y.numel(), 1.0f, gy.data(), ga.ptr, ga.mode);
      GradSlot gb = grad_slot(b);
      kt.scale_backward(y.numel(), 1.0f, gy.data(), gb.ptr, gb.mode);
    });
  }
  return y;
}

Tensor mul_scalar(const Tensor& x_in, float alpha) {
  check_defined("mul_scalar", x_in, "input");
  const Kernels& kt = kernels_for(x_in.device());
  Tensor x = x_in.contiguous();
  Tensor y = Tensor::empty(x.shape(), x.device());
  kt.scale(x.numel(), alpha, x.data(), y.data());
  if (wants_grad({&x})) {
    record({&y}, [x, y, alpha, &kt]() {
      Tensor gy = y.grad();
      if (!gy.defined()) return;
      GradSlot g = grad_slot(x);
      kt.scale_backward(y.numel(), alpha, gy.data(), g.ptr, g.mode);
    });
  }
  return y;
}

Tensor mul(const Tensor& a_in, const Tensor& b_in) {
  check_same_shape("mul", a_in, b_in);
  const Kernels& kt = kernels_for(common_device("mul", {&a_in, &b_in}));
  Tensor a = a_in.contiguous(), b = b_in.contiguous();
  Tensor y = Tensor::empty(a.shape(), a.device());
  kt.mul_forward(a.numel(), a.data(), b.data(), y.data());
  if (wants_grad({&a, &b})) {
    record({&y}, [a, b, y, &kt]() {
      Tensor gy = y.grad();
      if (!gy.defined()) return;
      GradSlot ga = grad_slot(a);
      kt.mul_backward(y.numel(), gy.data(), b.data(), ga.ptr, ga.mode);
      GradSlot gb = grad_slot(b);
      kt.mul_backward(y.numel(), gy.data(), a.data(), gb.ptr, gb.mode);
    });
  }
  return y;
}

Tensor sum(const Tensor& x_in) {
  check_defined("sum", x_in, "input");
  const Kernels& kt = kernels_for(x_in.device());
  Tensor x = x_in.contiguous();
  Tensor y = Tensor::empty({}, x.device());
  {
    Workspace ws(kt.reduce_workspace_bytes(x.numel()), x.device());
    kt.sum(x.numel(), x.data(), y.data(), ws.ptr());
  }
  if (wants_grad({&x})) {
    record({&y}, [x, y, &kt]() {
      Tensor gy = y.grad();
      if (!gy.defined()) return;
      GradSlot g = grad_slot(x);
      kt.broadcast_scalar(x.numel(), gy.data(), g.ptr, g.mode);
    });
  }
  return y;
}

Tensor dropout(const Tensor& x_in, float p, Rng& rng, Tensor* mask_out) {
  check_defined("dropout", x_in, "input");
  DETNAS_CHECK(p >= 0.f && p < 1.f, "dropout: probability ", p, " outside [0, 1)");
  const Kernels& kt = kernels_for(x_in.device());
  if (p == 0.f) {
    if (mask_out) *mask_out = Tensor::full(x_in.shape(), 1.0f);
    return x_in;
  }
  // The mask (0 or 1/(1-p)) is drawn on the host for either device and moved to
  // x's device, so both devices drop the same elements for the same Rng stream.
  const int64_t n = x_in.numel();
  Tensor mask = Tensor::empty(x_in.shape());
  float* m = mask.data();
  const float keep_scale = 1.0f / (1.0f - p);
  for (int64_t i = 0; i < n; ++i) m[i] = rng.uniform() < double(p) ? 0.f : keep_scale;
  if (mask_out) *mask_out = mask.clone();
  mask = mask.to(x_in.device());
  Tensor x = x_in.contiguous();
  Tensor y = Tensor::empty(x.shape(), x.device());
  kt.mul_forward(n, x.data(), mask.data(), y.data());
  if (wants_grad({&x})) {
    record({&y}, [x, y, mask, &kt]() {
      Tensor gy = y.grad();
      if (!gy.defined()) return;
      GradSlot g = grad_slot(x);
      kt.mul_backward(x.numel(), gy.data(), mask.data(), g.ptr, g.mode);
    });
  }
  return y;
}

}  // namespace detnas::rt::ops
