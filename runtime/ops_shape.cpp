// Data-movement and pooling ops: check shapes once, call the device's kernels
// (runtime/backend.h: kernels/shuffle.h, pool.h, upsample.h), record the backward.
#include "runtime/ops_shape.h"

#include <string>

#include "kernels/pool.h"
#include "runtime/autograd.h"
#include "runtime/backend.h"

namespace detnas::rt::ops {

namespace {
void check_nchw(const char* op, const Tensor& x) {
  check_defined(op, x, "input");
  DETNAS_CHECK(x.dim() == 4, op, ": expected an (N,C,H,W) input, got shape ", shape_str(x.shape()));
  DETNAS_CHECK(x.numel() > 0, op, ": empty input ", shape_str(x.shape()));
}

// True when dims 1.. are laid out contiguously (dim 0 may have any stride), as for
// a channel slice x.narrow(1, ...) of a contiguous tensor.
bool inner_contiguous(const Tensor& t) {
  int64_t expect = 1;
  for (int64_t d = t.dim() - 1; d >= 1; --d) {
    if (t.size(d) != 1 && t.strides()[size_t(d)] != expect) return false;
    expect *= t.size(d);
  }
  return true;
}
}  // namespace

Tensor channel_shuffle(const Tensor& x_in, int64_t groups) {
  check_nchw("channel_shuffle", x_in);
  const int64_t N = x_in.size(0), C = x_in.size(1), HW = x_in.size(2) * x_in.size(3);
  DETNAS_CHECK(groups >= 1 && C % groups == 0, "channel_shuffle: ", C, " channels of input ", shape_str(x_in.shape()),
               " are not divisible by groups = ", groups);
  const Kernels& kt = kernels_for(x_in.device());
  Tensor x = x_in.contiguous();
  Tensor y = Tensor::empty(x.shape(), x.device());
  kt.channel_shuffle_forward(N, C, HW, groups, x.data(), y.data());
  if (wants_grad({&x})) {
    record({&y}, [x, y, N, C, HW, groups, &kt]() {
      Tensor gy = y.grad();
      if (!gy.defined()) return;
      GradSlot g = grad_slot(x);
      kt.channel_shuffle_backward_input(N, C, HW, groups, gy.data(), g.ptr, g.mode);
    });
  }
  return y;
}

std::pair<Tensor, Tensor> split_even_odd(const Tensor& x_in) {
  check_nchw("split_even_odd", x_in);
  const int64_t N = x_in.size(0), C = x_in.size(1), HW = x_in.size(2) * x_in.size(3);
  DETNAS_CHECK(C % 2 == 0, "split_even_odd: needs an even channel count, got input ", shape_str(x_in.shape()));
  const Kernels& kt = kernels_for(x_in.device());
  Tensor x = x_in.contiguous();
  Shape hs{N, C / 2, x.size(2), x.size(3)};
  Tensor even = Tensor::empty(hs, x.device()), odd = Tensor::empty(hs, x.device());
  kt.split_even_odd_forward(N, C, HW, x.data(), even.data(), odd.data());
  if (wants_grad({&x})) {
    record({&even, &odd}, [x, even, odd, N, C, HW, &kt]() {
      Tensor ge = even.grad(), go = odd.grad();
      if (!ge.defined() && !go.defined()) return;
      GradSlot g = grad_slot(x);
      kt.split_even_odd_backward_input(N, C, HW, ge.defined() ? ge.data() : nullptr, go.defined() ? go.data() : nullptr,
                                       g.ptr, g.mode);
    });
  }
  return {even, odd};
}

Tensor concat(const std::vector<Tensor>& xs_in) {
  DETNAS_CHECK(!xs_in.empty(), "concat: empty list of inputs");
  const Tensor& first = xs_in[0];
  for (size_t i = 0; i < xs_in.size(); ++i) {
    const Tensor& t = xs_in[i];
    DETNAS_CHECK(t.defined(), "concat: input ", i, " is undefined");
    DETNAS_CHECK(t.dim() >= 2, "concat: input ", i, " has shape ", shape_str(t.shape()),
                 ", expected rank >= 2 (concatenation is along dim 1)");
    DETNAS_CHECK(t.numel() > 0, "concat: input ", i, " is empty: ", shape_str(t.shape()));
    bool ok = t.dim() == first.dim();
    for (int64_t d = 0; ok && d < t.dim(); ++d) ok = d == 1 || t.size(d) == first.size(d);
    DETNAS_CHECK(ok, "concat: input ", i, " shape ", shape_str(t.shape()), " does not match input 0 shape ",
                 shape_str(first.shape()), " outside dim 1");
    common_device("concat", {&first, &t});
  }
  const Kernels& kt = kernels_for(first.device());
  const int64_t N = first.size(0);
  int64_t HW = 1, Ctot = 0;
  for (int64_t d = 2; d < first.dim(); ++d) HW *= first.size(d);
  std::vector<Tensor> xs;
  xs.reserve(xs_in.size());
  for (const Tensor& t : xs_in) {
    xs.push_back(inner_contiguous(t) ? t : t.contiguous());
    Ctot += t.size(1);
  }
  Shape ys = first.shape();
  ys[1] = Ctot;
  Tensor y = Tensor::empty(ys, first.device());
  int64_t off = 0;
  bool any_grad = false;
  for (const Tensor& t : xs) {
    // A size-1 batch dim may carry any stride; the kernel never steps along it then.
    const int64_t sn = N > 1 ? t.strides()[0] : t.size(1) * HW;
    kt.concat_forward(N, t.size(1), Ctot, HW, off, t.data(), sn, y.data());
    off += t.size(1);
    any_grad = any_grad || wants_grad({&t});
  }
  if (any_grad) {
    record({&y}, [xs, y, N, Ctot, HW, &kt]() {
      Tensor gy = y.grad();
      if (!gy.defined()) return;
      int64_t o = 0;
      for (const Tensor& t : xs) {
        GradSlot g = grad_slot(t);
        kt.concat_backward_input(N, t.size(1), Ctot, HW, o, gy.data(), g.ptr, g.mode);
        o += t.size(1);
      }
    });
  }
  return y;
}

Tensor max_pool2d(const Tensor& x_in, const PoolParams& p) {
  check_nchw("max_pool2d", x_in);
  DETNAS_CHECK(p.kernel >= 1 && p.stride >= 1 && p.padding >= 0, "max_pool2d: invalid kernel ", p.kernel, ", stride ",
               p.stride, ", padding ", p.padding);
  DETNAS_CHECK(2 * p.padding <= p.kernel, "max_pool2d: padding ", p.padding, " must be at most half the kernel ",
               p.kernel);
  kernels::PoolWindow win{p.kernel, p.stride, p.padding};
  const int64_t N = x_in.size(0), C = x_in.size(1), H = x_in.size(2), W = x_in.size(3);
  const int64_t Ho = H + 2 * p.padding >= p.kernel ? kernels::pool_out_size(H, win) : 0;
  const int64_t Wo = W + 2 * p.padding >= p.kernel ? kernels::pool_out_size(W, win) : 0;
  DETNAS_CHECK(Ho >= 1 && Wo >= 1, "max_pool2d: input ", shape_str(x_in.shape()), " is smaller than the kernel ",
               p.kernel, " with padding ", p.padding);
  const Kernels& kt = kernels_for(x_in.device());
  Tensor x = x_in.contiguous();
  Tensor y = Tensor::empty({N, C, Ho, Wo}, x.device());
  kt.max_pool2d_forward(N * C, H, W, Ho, Wo, win, x.data(), y.data());
  if (wants_grad({&x})) {
    record({&y}, [x, y, win, N, C, H, W, Ho, Wo, &kt]() {
      Tensor gy = y.grad();
      if (!gy.defined()) return;
      GradSlot g = grad_slot(x);
      kt.max_pool2d_backward_input(N * C, H, W, Ho, Wo, win, x.data(), gy.data(), g.ptr, g.mode);
    });
  }
  return y;
}

Tensor global_avg_pool(const Tensor& x_in) {
  check_nchw("global_avg_pool", x_in);
  const Kernels& kt = kernels_for(x_in.device());
  const int64_t N = x_in.size(0), C = x_in.size(1), HW = x_in.size(2) * x_in.size(3);
  Tensor x = x_in.contiguous();
  Tensor y = Tensor::empty({N, C, 1, 1}, x.device());
  kt.global_avg_pool_forward(N * C, HW, x.data(), y.data());
  if (wants_grad({&x})) {
    record({&y}, [x, y, N, C, HW, &kt]() {
      Tensor gy = y.grad();
      if (!gy.defined()) return;
      GradSlot g = grad_slot(x);
      kt.global_avg_pool_backward_input(N * C, HW, gy.data(), g.ptr, g.mode);
    });
  }
  return y;
}

Tensor upsample_nearest(const Tensor& x_in, int64_t Ho, int64_t Wo) {
  check_nchw("upsample_nearest", x_in);
  DETNAS_CHECK(Ho >= 1 && Wo >= 1, "upsample_nearest: invalid output size (", Ho, ", ", Wo, ") for input ",
               shape_str(x_in.shape()));
  const Kernels& kt = kernels_for(x_in.device());
  const int64_t N = x_in.size(0), C = x_in.size(1), H = x_in.size(2), W = x_in.size(3);
  Tensor x = x_in.contiguous();
  Tensor y = Tensor::empty({N, C, Ho, Wo}, x.device());
  kt.upsample_nearest2d_forward(N * C, H, W, Ho, Wo, x.data(), y.data());
  if (wants_grad({&x})) {
    record({&y}, [x, y, N, C, H, W, Ho, Wo, &kt]() {
      Tensor gy = y.grad();
      if (!gy.defined()) return;
      GradSlot g = grad_slot(x);
      kt.upsample_nearest2d_backward_input(N * C, H, W, Ho, Wo, gy.data(), g.ptr, g.mode);
    });
  }
  return y;
}

}  // namespace detnas::rt::ops
