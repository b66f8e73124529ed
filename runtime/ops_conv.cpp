// conv2d and linear: check shapes once, pick the kernel path, call the device's
// kernels (runtime/backend.h), record the backward. Gradient buffers are
// contiguous, so the input gradient kernels always write a contiguous dx even
// when the forward read x through a wider batch stride.
#include "runtime/ops_conv.h"

#include "core/profile.h"
#include "kernels/conv2d.h"
#include "kernels/dwconv.h"
#include "runtime/autograd.h"
#include "runtime/backend.h"

namespace detnas::rt::ops {

using kernels::Conv2dShape;
using kernels::DwconvShape;

namespace {

// Depthwise: the direct depthwise kernels (groups == C == Cout, square kernel).
// General: the conv2d entries (CPU: 1x1 GEMM, im2col + GEMM or Winograd; CUDA: cuDNN).
enum class ConvPath { Depthwise, General };

ConvPath conv_path(const Conv2dShape& s) {
  if (s.pointwise() && s.G == 1) return ConvPath::General;  // one channel, 1x1: a GEMM
  return s.G == s.C && s.Cout == s.C && s.KH == s.KW ? ConvPath::Depthwise : ConvPath::General;
}

// True when x (rank 4) is contiguous within each sample (dims 1..3), so a kernel
// can read it with x.strides()[0] as the batch stride.
bool sample_contiguous(const Tensor& x) {
  const Shape& sh = x.shape();
  const Shape& st = x.strides();
  int64_t expect = 1;
  for (int d = 3; d >= 1; --d) {
    if (sh[size_t(d)] != 1 && st[size_t(d)] != expect) return false;
    expect *= sh[size_t(d)];
  }
  return st[0] >= 0;
}

void check_conv_inputs(const Tensor& x, const Tensor& w, const Tensor& bias, const Conv2dParams& p) {
  check_defined("conv2d", x, "input");
  check_defined("conv2d", w, "weight");
  common_device("conv2d", {&x, &w, &bias});
  DETNAS_CHECK(x.dim() == 4, "conv2d: input must be 4-D (N,C,H,W), got ", shape_str(x.shape()));
  DETNAS_CHECK(w.dim() == 4, "conv2d: weight must be 4-D (Cout,Cin/groups,KH,KW), got ", shape_str(w.shape()));
  DETNAS_CHECK(p.stride >= 1, "conv2d: stride must be >= 1, got ", p.stride);
  DETNAS_CHECK(p.padding >= 0, "conv2d: padding must be >= 0, got ", p.padding);
  DETNAS_CHECK(p.groups >= 1, "conv2d: groups must be >= 1, got ", p.groups);
  DETNAS_CHECK(x.numel() > 0, "conv2d: empty input ", shape_str(x.shape()));
  DETNAS_CHECK(w.numel() > 0, "conv2d: empty weight ", shape_str(w.shape()));
  const int64_t C = x.size(1), Cout = w.size(0);
  DETNAS_CHECK(C == w.size(1) * p.groups, "conv2d: input has ", C, " channels but weight ", shape_str(w.shape()),
               " expects ", w.size(1) * p.groups, " (groups ", p.groups, ")");
  DETNAS_CHECK(Cout % p.groups == 0, "conv2d: weight ", shape_str(w.shape()), " has ", Cout,
               " output channels, not divisible by groups ", p.groups);
  if (bias.defined())
    DETNAS_CHECK(bias.dim() == 1 && bias.size(0) == Cout, "conv2d: bias must have shape [", Cout, "] for weight ",
                 shape_str(w.shape()), ", got ", shape_str(bias.shape()));
  const int64_t Hp = x.size(2) + 2 * p.padding, Wp = x.size(3) + 2 * p.padding;
  DETNAS_CHECK(w.size(2) <= Hp && w.size(3) <= Wp, "conv2d: kernel ", w.size(2), "x", w.size(3),
               " larger than padded input ", Hp, "x", Wp, " (input ", shape_str(x.shape()), ", padding ", p.padding,
               ")");
}

}  // namespace

Tensor conv2d(const Tensor& x_in, const Tensor& w_in, const Tensor& bias_in, const Conv2dParams& p) {
  check_conv_inputs(x_in, w_in, bias_in, p);
  const Kernels& kt = kernels_for(x_in.device());
  Tensor x = sample_contiguous(x_in) ? x_in : x_in.contiguous();
  Tensor w = w_in.contiguous();
  Tensor bias = bias_in.defined() ? bias_in.contiguous() : Tensor();

  Conv2dShape s;
  s.N = x.size(0), s.C = x.size(1), s.H = x.size(2), s.W = x.size(3);
  s.Cout = w.size(0), s.KH = w.size(2), s.KW = w.size(3);
  s.S = p.stride, s.P = p.padding, s.G = p.groups;
  s.x_batch_stride = s.N > 1 ? x.strides()[0] : s.C * s.H * s.W;

  const ConvPath path = conv_path(s);
  DETNAS_PROFILE_SCOPE(path == ConvPath::Depthwise ? "dwconv" : s.pointwise() ? "conv1x1" : "conv2d");
  DwconvShape d;
  d.N = s.N, d.C = s.C, d.H = s.H, d.W = s.W, d.K = s.KH, d.S = s.S, d.P = s.P;
  d.x_batch_stride = s.x_batch_stride;

  Tensor y = Tensor::empty({s.N, s.Cout, s.Ho(), s.Wo()}, x.device());
  const float* bp = bias.defined() ? bias.data() : nullptr;
  if (path == ConvPath::Depthwise) {
    kt.dwconv_forward(d, x.data(), w.data(), bp, y.data());
  } else {
    Workspace ws(kt.conv2d_forward_workspace_bytes(s), x.device());
    kt.conv2d_forward(s, x.data(), w.data(), bp, y.data(), ws.ptr(), ws.bytes());
  }

  if (wants_grad({&x, &w, &bias})) {
    record({&y}, [x, w, bias, y, s, d, path, &kt]() {
      DETNAS_PROFILE_SCOPE(path == ConvPath::Depthwise ? "dwconv_backward"
                           : s.pointwise()             ? "conv1x1_backward"
                                                       : "conv2d_backward");
      Tensor gy = y.grad();
      if (!gy.defined()) return;
      GradSlot gx = grad_slot(x);
      GradSlot gw = grad_slot(w);
      if (path == ConvPath::Depthwise) {
        kt.dwconv_backward_input(d, w.data(), gy.data(), gx.ptr, gx.mode);
        kt.dwconv_backward_weight(d, x.data(), gy.data(), gw.ptr, gw.mode);
      } else {
        Workspace ws((gx.ptr || gw.ptr) ? kt.conv2d_workspace_bytes(s) : 0, x.device());
        kt.conv2d_backward_input(s, w.data(), gy.data(), gx.ptr, gx.mode, ws.ptr(), ws.bytes());
        kt.conv2d_backward_weight(s, x.data(), gy.data(), gw.ptr, gw.mode, ws.ptr(), ws.bytes());
      }
      if (bias.defined()) {
        GradSlot gb = grad_slot(bias);
        kt.conv2d_backward_bias(s, gy.data(), gb.ptr, gb.mode);
      }
    });
  }
  return y;
}

Tensor linear(const Tensor& x_in, const Tensor& w_in, const Tensor& bias_in) {
  check_defined("linear", x_in, "input");
  check_defined("linear", w_in, "weight");
  const Kernels& kt = kernels_for(common_device("linear", {&x_in, &w_in, &bias_in}));
  DETNAS_CHECK(w_in.dim() == 2, "linear: weight must be 2-D (Cout,Cin), got ", shape_str(w_in.shape()));
  DETNAS_CHECK(x_in.dim() >= 1, "linear: input must have at least one dimension, got a scalar");
  DETNAS_CHECK(x_in.numel() > 0, "linear: empty input ", shape_str(x_in.shape()));
  DETNAS_CHECK(w_in.numel() > 0, "linear: empty weight ", shape_str(w_in.shape()));
  const int64_t Cin = w_in.size(1), Cout = w_in.size(0);
  DETNAS_CHECK(x_in.size(-1) == Cin, "linear: input ", shape_str(x_in.shape()), " has ", x_in.size(-1),
               " features but weight ", shape_str(w_in.shape()), " expects ", Cin);
  if (bias_in.defined())
    DETNAS_CHECK(bias_in.dim() == 1 && bias_in.size(0) == Cout, "linear: bias must have shape [", Cout, "] for weight ",
                 shape_str(w_in.shape()), ", got ", shape_str(bias_in.shape()));
  Tensor x = x_in.contiguous(), w = w_in.contiguous();
  Tensor bias = bias_in.defined() ? bias_in.contiguous() : Tensor();
  const int64_t N = x.numel() / Cin;
  DETNAS_PROFILE_SCOPE("linear");
  Shape ys = x.shape();
  ys.back() = Cout;
  Tensor y = Tensor::empty(ys, x.device());
  kt.linear_forward(N, Cin, Cout, x.data(), w.data(), bias.defined() ? bias.data() : nullptr, y.data());
  if (wants_grad({&x, &w, &bias})) {
    record({&y}, [x, w, bias, y, N, Cin, Cout, &kt]() {
      DETNAS_PROFILE_SCOPE("linear_backward");
      Tensor gy = y.grad();
      if (!gy.defined()) return;
      GradSlot gx = grad_slot(x);
      kt.linear_backward_input(N, Cin, Cout, w.data(), gy.data(), gx.ptr, gx.mode);
      GradSlot gw = grad_slot(w);
      kt.linear_backward_weight(N, Cin, Cout, x.data(), gy.data(), gw.ptr, gw.mode);
      if (bias.defined()) {
        GradSlot gb = grad_slot(bias);
        kt.linear_backward_bias(N, Cout, gy.data(), gb.ptr, gb.mode);
      }
    });
  }
  return y;
}

}  // namespace detnas::rt::ops
