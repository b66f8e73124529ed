// Elementwise ops: check shapes once, call the kernel, record the backward.
#include "runtime/ops_elementwise.h"

#include "kernels/elementwise.h"
#include "runtime/autograd.h"
#include "runtime/ops_cuda.h"

namespace detnas::rt::ops {

namespace k = detnas::kernels::cpu;

Tensor relu(const Tensor& x_in) {
  check_defined("relu", x_in, "input");
  if (cuda_ops::on_cuda("relu", {&x_in})) return cuda_ops::relu(x_in);  // CUDA kernels: runtime/ops_cuda.cpp
  require_cpu("relu", {&x_in});
  Tensor x = x_in.contiguous();
  Tensor y = Tensor::empty(x.shape(), x.device());
  k::relu_forward(x.numel(), x.data(), y.data());
  if (wants_grad({&x})) {
    // ReLU's backward needs only the sign of its output: keep y, not x.
    record({&y}, [x, y]() {
      Tensor gy = y.grad();
      if (!gy.defined()) return;
      GradSlot g = grad_slot(x);
      k::relu_backward(y.numel(), y.data(), gy.data(), g.ptr, g.mode);
    });
  }
  return y;
}

Tensor add(const Tensor& a_in, const Tensor& b_in) {
  check_same_shape("add", a_in, b_in);
  if (cuda_ops::on_cuda("add", {&a_in, &b_in})) return cuda_ops::add(a_in, b_in);
  require_cpu("add", {&a_in, &b_in});
  Tensor a = a_in.contiguous(), b = b_in.contiguous();
  Tensor y = Tensor::empty(a.shape(), a.device());
  k::add_forward(a.numel(), a.data(), b.data(), y.data());
  if (wants_grad({&a, &b})) {
    record({&y}, [a, b, y]() {
      Tensor gy = y.grad();
      if (!gy.defined()) return;
      GradSlot ga = grad_slot(a);
      k::scale_backward(y.numel(), 1.0f, gy.data(), ga.ptr, ga.mode);
      GradSlot gb = grad_slot(b);
      k::scale_backward(y.numel(), 1.0f, gy.data(), gb.ptr, gb.mode);
    });
  }
  return y;
}

Tensor mul_scalar(const Tensor& x_in, float alpha) {
  check_defined("mul_scalar", x_in, "input");
  if (cuda_ops::on_cuda("mul_scalar", {&x_in})) return cuda_ops::mul_scalar(x_in, alpha);
  require_cpu("mul_scalar", {&x_in});
  Tensor x = x_in.contiguous();
  Tensor y = Tensor::empty(x.shape(), x.device());
  const float* xp = x.data();
  float* yp = y.data();
  for (int64_t i = 0, n = x.numel(); i < n; ++i) yp[i] = alpha * xp[i];
  if (wants_grad({&x})) {
    record({&y}, [x, y, alpha]() {
      Tensor gy = y.grad();
      if (!gy.defined()) return;
      GradSlot g = grad_slot(x);
      k::scale_backward(y.numel(), alpha, gy.data(), g.ptr, g.mode);
    });
  }
  return y;
}

Tensor mul(const Tensor& a_in, const Tensor& b_in) {
  check_same_shape("mul", a_in, b_in);
  if (cuda_ops::on_cuda("mul", {&a_in, &b_in})) return cuda_ops::mul(a_in, b_in);
  require_cpu("mul", {&a_in, &b_in});
  Tensor a = a_in.contiguous(), b = b_in.contiguous();
  Tensor y = Tensor::empty(a.shape(), a.device());
  const float *ap = a.data(), *bp = b.data();
  float* yp = y.data();
  for (int64_t i = 0, n = a.numel(); i < n; ++i) yp[i] = ap[i] * bp[i];
  if (wants_grad({&a, &b})) {
    record({&y}, [a, b, y]() {
      Tensor gy = y.grad();
      if (!gy.defined()) return;
      const float* g = gy.data();
      GradSlot ga = grad_slot(a);
      if (ga.mode != GradientMode::Ignore)
        for (int64_t i = 0, n = y.numel(); i < n; ++i) kernels::write_grad(ga.ptr + i, g[i] * b.data()[i], ga.mode);
      GradSlot gb = grad_slot(b);
      if (gb.mode != GradientMode::Ignore)
        for (int64_t i = 0, n = y.numel(); i < n; ++i) kernels::write_grad(gb.ptr + i, g[i] * a.data()[i], gb.mode);
    });
  }
  return y;
}

Tensor sum(const Tensor& x_in) {
  check_defined("sum", x_in, "input");
  if (cuda_ops::on_cuda("sum", {&x_in})) return cuda_ops::sum(x_in);
  require_cpu("sum", {&x_in});
  Tensor x = x_in.contiguous();
  double s = 0;
  const float* p = x.data();
  for (int64_t i = 0, n = x.numel(); i < n; ++i) s += p[i];
  Tensor y = Tensor::scalar(float(s));
  if (wants_grad({&x})) {
    record({&y}, [x, y]() {
      Tensor gy = y.grad();
      if (!gy.defined()) return;
      GradSlot g = grad_slot(x);
      float v = *gy.data();
      for (int64_t i = 0, n = x.numel(); i < n; ++i) kernels::write_grad(g.ptr + i, v, g.mode);
    });
  }
  return y;
}

Tensor dropout(const Tensor& x_in, float p, Rng& rng) {
  check_defined("dropout", x_in, "input");
  DETNAS_CHECK(p >= 0.f && p < 1.f, "dropout: probability ", p, " outside [0, 1)");
  const bool on_cuda = cuda_ops::on_cuda("dropout", {&x_in});
  if (p == 0.f) return x_in;
  const int64_t n = x_in.numel();
  Tensor mask = Tensor::empty(x_in.shape());  // 0 or 1/(1-p), drawn on the host for either device
  float* m = mask.data();
  const float keep_scale = 1.0f / (1.0f - p);
  for (int64_t i = 0; i < n; ++i) m[i] = rng.uniform() < double(p) ? 0.f : keep_scale;
  // CUDA: the same mask, uploaded, so both devices drop the same elements.
  if (on_cuda) return cuda_ops::dropout(x_in, std::vector<float>(m, m + n));
  Tensor x = x_in.contiguous();
  Tensor y = Tensor::empty(x.shape());
  const float* xp = x.data();
  float* yp = y.data();
  for (int64_t i = 0; i < n; ++i) yp[i] = xp[i] * m[i];
  if (wants_grad({&x})) {
    record({&y}, [x, y, mask]() {
      Tensor gy = y.grad();
      if (!gy.defined()) return;
      GradSlot g = grad_slot(x);
      const float* mp = mask.data();
      const float* gp = gy.data();
      for (int64_t i = 0, n2 = x.numel(); i < n2; ++i) kernels::write_grad(g.ptr + i, gp[i] * mp[i], g.mode);
    });
  }
  return y;
}

}  // namespace detnas::rt::ops
