// CUDA implementations behind the runtime ops (see runtime/ops_cuda.h): forward
// through the CUDA kernel wrappers, backward recorded with the same GradSlot
// contract as the CPU ops (Overwrite on first use, Accumulate after).
#include "runtime/ops_cuda.h"

#include <cmath>
#include <memory>

#include "core/error.h"
#include "runtime/autograd.h"

#ifdef DETNAS_CUDA
#include "kernels/batchnorm_cuda.h"
#include "kernels/bias_cuda.h"
#include "kernels/box_ops_cuda.h"
#include "kernels/conv2d_cudnn.h"
#include "kernels/dwconv_cuda.h"
#include "kernels/elementwise_cuda.h"
#include "kernels/gemm_cublas.h"
#include "kernels/loss_cuda.h"
#include "kernels/pool_cuda.h"
#include "kernels/roi_align_cuda.h"
#include "kernels/sgd_cuda.h"
#include "kernels/shuffle_cuda.h"
#include "runtime/device_allocator.h"
#endif

namespace detnas::rt::cuda_ops {

bool on_cuda(const char* op, std::initializer_list<const Tensor*> ts) {
  int cuda = 0, cpu = 0;
  for (const Tensor* t : ts)
    if (t && t->defined()) (t->device() == Device::CUDA ? cuda : cpu)++;
  DETNAS_CHECK(cuda == 0 || cpu == 0, op, ": inputs on different devices (", cuda, " on cuda, ", cpu, " on cpu)");
  return cuda > 0;
}

#ifdef DETNAS_CUDA

namespace {
namespace kc = detnas::kernels::cuda;

void require_contiguous(const char* op, std::initializer_list<const Tensor*> ts) {
  for (const Tensor* t : ts)
    if (t && t->defined())
      DETNAS_CHECK(t->is_contiguous(), op, " (cuda): non-contiguous input ", t->describe(),
                   " (no CUDA strided copy yet)");
}

// A device workspace from the caching allocator, released at scope exit (the
// single stream orders any reuse after the kernels that read it).
struct Workspace {
  void* p = nullptr;
  size_t bytes = 0;
  explicit Workspace(size_t n) : bytes(n) {
    if (n) p = device_allocator().allocate(n);
  }
  ~Workspace() { device_allocator().release(p); }
  Workspace(const Workspace&) = delete;
  Workspace& operator=(const Workspace&) = delete;
};
}  // namespace

Tensor relu(const Tensor& x) {
  require_contiguous("relu", {&x});
  Tensor y = Tensor::empty(x.shape(), Device::CUDA);
  kc::relu_forward(x.numel(), x.data(), y.data(), cuda_stream());
  if (wants_grad({&x})) {
    record({&y}, [x, y]() {
      Tensor gy = y.grad();
      if (!gy.defined()) return;
      require_contiguous("relu backward", {&gy});
      GradSlot g = grad_slot(x);
      kc::relu_backward(y.numel(), y.data(), gy.data(), g.ptr, g.mode, cuda_stream());
    });
  }
  return y;
}

Tensor add(const Tensor& a, const Tensor& b) {
  require_contiguous("add", {&a, &b});
  Tensor y = Tensor::empty(a.shape(), Device::CUDA);
  kc::add_forward(a.numel(), a.data(), b.data(), y.data(), cuda_stream());
  if (wants_grad({&a, &b})) {
    record({&y}, [a, b, y]() {
      Tensor gy = y.grad();
      if (!gy.defined()) return;
      require_contiguous("add backward", {&gy});
      GradSlot ga = grad_slot(a);
      kc::scale_backward(y.numel(), 1.0f, gy.data(), ga.ptr, ga.mode, cuda_stream());
      GradSlot gb = grad_slot(b);
      kc::scale_backward(y.numel(), 1.0f, gy.data(), gb.ptr, gb.mode, cuda_stream());
    });
  }
  return y;
}

Tensor mul(const Tensor& a_in, const Tensor& b_in) {
  Tensor a = a_in.contiguous(), b = b_in.contiguous();
  Tensor y = Tensor::empty(a.shape(), Device::CUDA);
  kc::mul_forward(a.numel(), a.data(), b.data(), y.data(), cuda_stream());
  if (wants_grad({&a, &b})) {
    record({&y}, [a, b, y]() {
      Tensor gy = y.grad();
      if (!gy.defined()) return;
      require_contiguous("mul backward", {&gy});
      GradSlot ga = grad_slot(a);
      kc::mul_backward(y.numel(), gy.data(), b.data(), ga.ptr, ga.mode, cuda_stream());
      GradSlot gb = grad_slot(b);
      kc::mul_backward(y.numel(), gy.data(), a.data(), gb.ptr, gb.mode, cuda_stream());
    });
  }
  return y;
}

Tensor mul_scalar(const Tensor& x_in, float alpha) {
  Tensor x = x_in.contiguous();
  Tensor y = Tensor::empty(x.shape(), Device::CUDA);
  kc::scale(x.numel(), alpha, x.data(), y.data(), cuda_stream());
  if (wants_grad({&x})) {
    record({&y}, [x, y, alpha]() {
      Tensor gy = y.grad();
      if (!gy.defined()) return;
      require_contiguous("mul_scalar backward", {&gy});
      GradSlot g = grad_slot(x);
      kc::scale_backward(y.numel(), alpha, gy.data(), g.ptr, g.mode, cuda_stream());
    });
  }
  return y;
}

Tensor sum(const Tensor& x_in) {
  Tensor x = x_in.contiguous();
  Tensor y = Tensor::empty({}, Device::CUDA);
  {
    Workspace ws(kernels::cuda_plan::loss_workspace_bytes(x.numel()));
    kc::loss_sum_to(x.numel(), x.data(), 1.0, y.data(), ws.p, cuda_stream());
  }
  if (wants_grad({&x})) {
    record({&y}, [x, y]() {
      Tensor gy = y.grad();
      if (!gy.defined()) return;
      GradSlot g = grad_slot(x);
      kc::broadcast_scalar(x.numel(), gy.data(), g.ptr, g.mode, cuda_stream());
    });
  }
  return y;
}

Tensor dropout(const Tensor& x_in, const std::vector<float>& mask_h) {
  Tensor x = x_in.contiguous();
  DETNAS_CHECK(int64_t(mask_h.size()) == x.numel(), "dropout (cuda): mask of ", mask_h.size(), " values for ",
               x.describe());
  Tensor mask = Tensor::empty(x.shape(), Device::CUDA);
  if (!mask_h.empty()) cuda_copy_h2d(mask.data(), mask_h.data(), mask_h.size() * sizeof(float));
  Tensor y = Tensor::empty(x.shape(), Device::CUDA);
  kc::mul_forward(x.numel(), x.data(), mask.data(), y.data(), cuda_stream());
  if (wants_grad({&x})) {
    record({&y}, [x, y, mask]() {
      Tensor gy = y.grad();
      if (!gy.defined()) return;
      require_contiguous("dropout backward", {&gy});
      GradSlot g = grad_slot(x);
      kc::mul_backward(x.numel(), gy.data(), mask.data(), g.ptr, g.mode, cuda_stream());
    });
  }
  return y;
}

Tensor conv2d(const Tensor& x, const Tensor& w, const Tensor& bias, const kernels::Conv2dShape& s, bool depthwise) {
  require_contiguous("conv2d", {&w, &bias});
  kernels::DwconvShape d;
  d.N = s.N, d.C = s.C, d.H = s.H, d.W = s.W, d.K = s.KH, d.S = s.S, d.P = s.P, d.x_batch_stride = s.x_batch_stride;
  Tensor y = Tensor::empty({s.N, s.Cout, s.Ho(), s.Wo()}, Device::CUDA);
  const float* bp = bias.defined() ? bias.data() : nullptr;
  if (depthwise) {
    kc::dwconv_forward(d, x.data(), w.data(), bp, y.data(), cuda_stream());
  } else {
    Workspace ws(kc::conv2d_cudnn_workspace_bytes(s));
    kc::conv2d_forward(s, x.data(), w.data(), bp, y.data(), ws.p, ws.bytes, cuda_stream());
  }
  if (wants_grad({&x, &w, &bias})) {
    record({&y}, [x, w, bias, y, s, d, depthwise]() {
      Tensor gy = y.grad();
      if (!gy.defined()) return;
      require_contiguous("conv2d backward", {&gy});
      GradSlot gx = grad_slot(x);
      GradSlot gw = grad_slot(w);
      if (depthwise) {
        kc::dwconv_backward_input(d, w.data(), gy.data(), gx.ptr, gx.mode, cuda_stream());
        kc::dwconv_backward_weight(d, x.data(), gy.data(), gw.ptr, gw.mode, cuda_stream());
      } else {
        Workspace ws(kc::conv2d_cudnn_workspace_bytes(s));
        kc::conv2d_backward_input(s, w.data(), gy.data(), gx.ptr, gx.mode, ws.p, ws.bytes, cuda_stream());
        kc::conv2d_backward_weight(s, x.data(), gy.data(), gw.ptr, gw.mode, ws.p, ws.bytes, cuda_stream());
      }
      if (bias.defined()) {
        GradSlot gb = grad_slot(bias);
        kc::conv2d_backward_bias(s, gy.data(), gb.ptr, gb.mode, cuda_stream());
      }
    });
  }
  return y;
}

Tensor linear(const Tensor& x, const Tensor& w, const Tensor& bias, int64_t N, int64_t Cin, int64_t Cout,
              const Shape& ys) {
  require_contiguous("linear", {&x, &w, &bias});
  Tensor y = Tensor::empty(ys, Device::CUDA);
  kc::linear_forward(N, Cin, Cout, x.data(), w.data(), bias.defined() ? bias.data() : nullptr, y.data(),
                     cuda_stream());
  if (wants_grad({&x, &w, &bias})) {
    record({&y}, [x, w, bias, y, N, Cin, Cout]() {
      Tensor gy = y.grad();
      if (!gy.defined()) return;
      require_contiguous("linear backward", {&gy});
      GradSlot gx = grad_slot(x);
      kc::linear_backward_input(N, Cin, Cout, w.data(), gy.data(), gx.ptr, gx.mode, cuda_stream());
      GradSlot gw = grad_slot(w);
      kc::linear_backward_weight(N, Cin, Cout, x.data(), gy.data(), gw.ptr, gw.mode, cuda_stream());
      if (bias.defined()) {
        GradSlot gb = grad_slot(bias);
        kc::linear_backward_bias(N, Cout, gy.data(), gb.ptr, gb.mode, cuda_stream());
      }
    });
  }
  return y;
}

Tensor channel_shuffle(const Tensor& x, int64_t groups) {
  require_contiguous("channel_shuffle", {&x});
  const int64_t N = x.size(0), C = x.size(1), HW = x.size(2) * x.size(3);
  Tensor y = Tensor::empty(x.shape(), Device::CUDA);
  kc::channel_shuffle_forward(N, C, HW, groups, x.data(), y.data(), cuda_stream());
  if (wants_grad({&x})) {
    record({&y}, [x, y, N, C, HW, groups]() {
      Tensor gy = y.grad();
      if (!gy.defined()) return;
      require_contiguous("channel_shuffle backward", {&gy});
      GradSlot g = grad_slot(x);
      kc::channel_shuffle_backward_input(N, C, HW, groups, gy.data(), g.ptr, g.mode, cuda_stream());
    });
  }
  return y;
}

std::pair<Tensor, Tensor> split_even_odd(const Tensor& x) {
  require_contiguous("split_even_odd", {&x});
  const int64_t N = x.size(0), C = x.size(1), HW = x.size(2) * x.size(3);
  const Shape hs{N, C / 2, x.size(2), x.size(3)};
  Tensor even = Tensor::empty(hs, Device::CUDA), odd = Tensor::empty(hs, Device::CUDA);
  kc::split_even_odd_forward(N, C, HW, x.data(), even.data(), odd.data(), cuda_stream());
  if (wants_grad({&x})) {
    record({&even, &odd}, [x, even, odd, N, C, HW]() {
      Tensor ge = even.grad(), go = odd.grad();
      if (!ge.defined() && !go.defined()) return;
      require_contiguous("split_even_odd backward", {&ge, &go});
      GradSlot g = grad_slot(x);
      kc::split_even_odd_backward_input(N, C, HW, ge.defined() ? ge.data() : nullptr,
                                        go.defined() ? go.data() : nullptr, g.ptr, g.mode, cuda_stream());
    });
  }
  return {even, odd};
}

Tensor concat(const std::vector<Tensor>& xs) {
  const Tensor& first = xs[0];
  const int64_t N = first.size(0);
  int64_t HW = 1, Ctot = 0;
  for (int64_t d = 2; d < first.dim(); ++d) HW *= first.size(d);
  for (const Tensor& t : xs) {
    int64_t expect = 1;  // contiguous from dim 1 on (dim 0 may be strided)
    for (int64_t d = t.dim() - 1; d >= 1; --d) {
      DETNAS_CHECK(t.size(d) == 1 || t.strides()[size_t(d)] == expect, "concat (cuda): input ", t.describe(),
                   " is not contiguous within a sample (no CUDA strided copy yet)");
      expect *= t.size(d);
    }
    Ctot += t.size(1);
  }
  Shape ys = first.shape();
  ys[1] = Ctot;
  Tensor y = Tensor::empty(ys, Device::CUDA);
  int64_t off = 0;
  bool any_grad = false;
  for (const Tensor& t : xs) {
    const int64_t sn = N > 1 ? t.strides()[0] : t.size(1) * HW;
    kc::concat_forward(N, t.size(1), Ctot, HW, off, t.data(), sn, y.data(), cuda_stream());
    off += t.size(1);
    any_grad = any_grad || wants_grad({&t});
  }
  if (any_grad) {
    record({&y}, [xs, y, N, Ctot, HW]() {
      Tensor gy = y.grad();
      if (!gy.defined()) return;
      require_contiguous("concat backward", {&gy});
      int64_t o = 0;
      for (const Tensor& t : xs) {
        GradSlot g = grad_slot(t);
        kc::concat_backward_input(N, t.size(1), Ctot, HW, o, gy.data(), g.ptr, g.mode, cuda_stream());
        o += t.size(1);
      }
    });
  }
  return y;
}

Tensor max_pool2d(const Tensor& x, const kernels::PoolWindow& win, int64_t Ho, int64_t Wo) {
  require_contiguous("max_pool2d", {&x});
  const int64_t N = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3);
  Tensor y = Tensor::empty({N, C, Ho, Wo}, Device::CUDA);
  kc::max_pool2d_forward(N * C, H, W, Ho, Wo, win, x.data(), y.data(), cuda_stream());
  if (wants_grad({&x})) {
    record({&y}, [x, y, win, N, C, H, W, Ho, Wo]() {
      Tensor gy = y.grad();
      if (!gy.defined()) return;
      require_contiguous("max_pool2d backward", {&gy});
      GradSlot g = grad_slot(x);
      kc::max_pool2d_backward_input(N * C, H, W, Ho, Wo, win, x.data(), gy.data(), g.ptr, g.mode, cuda_stream());
    });
  }
  return y;
}

Tensor global_avg_pool(const Tensor& x) {
  require_contiguous("global_avg_pool", {&x});
  const int64_t N = x.size(0), C = x.size(1), HW = x.size(2) * x.size(3);
  Tensor y = Tensor::empty({N, C, 1, 1}, Device::CUDA);
  kc::global_avg_pool_forward(N * C, HW, x.data(), y.data(), cuda_stream());
  if (wants_grad({&x})) {
    record({&y}, [x, y, N, C, HW]() {
      Tensor gy = y.grad();
      if (!gy.defined()) return;
      require_contiguous("global_avg_pool backward", {&gy});
      GradSlot g = grad_slot(x);
      kc::global_avg_pool_backward_input(N * C, HW, gy.data(), g.ptr, g.mode, cuda_stream());
    });
  }
  return y;
}

Tensor upsample_nearest(const Tensor& x, int64_t Ho, int64_t Wo) {
  require_contiguous("upsample_nearest", {&x});
  const int64_t N = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3);
  Tensor y = Tensor::empty({N, C, Ho, Wo}, Device::CUDA);
  kc::upsample_nearest2d_forward(N * C, H, W, Ho, Wo, x.data(), y.data(), cuda_stream());
  if (wants_grad({&x})) {
    record({&y}, [x, y, N, C, H, W, Ho, Wo]() {
      Tensor gy = y.grad();
      if (!gy.defined()) return;
      require_contiguous("upsample_nearest backward", {&gy});
      GradSlot g = grad_slot(x);
      kc::upsample_nearest2d_backward_input(N * C, H, W, Ho, Wo, gy.data(), g.ptr, g.mode, cuda_stream());
    });
  }
  return y;
}

Tensor batch_norm(const Tensor& x, const Tensor& gamma, const Tensor& beta, Tensor& running_mean, Tensor& running_var,
                  kernels::BatchNormMode mode, double eps, double factor) {
  require_contiguous("batch_norm", {&x, &gamma, &beta, &running_mean, &running_var});
  const int64_t N = x.size(0), C = x.size(1), HW = x.size(2) * x.size(3);
  Tensor y = Tensor::empty(x.shape(), Device::CUDA);
  Tensor save_mean = Tensor::empty({2, C}, Device::CUDA);  // (hi, lo) rows, see kernels/batchnorm.h
  Tensor save_invstd = Tensor::empty({C}, Device::CUDA);
  {
    Workspace ws(kernels::cuda_plan::batchnorm_workspace_bytes(C));
    if (mode == kernels::BatchNormMode::Eval)
      kc::batchnorm_forward_eval(N, C, HW, x.data(), gamma.data(), beta.data(), running_mean.data(),
                                 running_var.data(), eps, y.data(), save_mean.data(), save_invstd.data(), ws.p,
                                 cuda_stream());
    else
      kc::batchnorm_forward_batch(N, C, HW, x.data(), gamma.data(), beta.data(), eps, factor, y.data(),
                                  save_mean.data(), save_invstd.data(), running_mean.data(), running_var.data(), ws.p,
                                  cuda_stream());
  }
  if (wants_grad({&x, &gamma, &beta})) {
    record({&y}, [x, gamma, beta, y, save_mean, save_invstd, mode, N, C, HW]() {
      Tensor gy = y.grad();
      if (!gy.defined()) return;
      require_contiguous("batch_norm backward", {&gy});
      GradSlot gx = grad_slot(x), gg = grad_slot(gamma), gb = grad_slot(beta);
      kernels::cpu::BatchNormGrads<float> g;
      g.dx = gx.ptr, g.dx_mode = gx.mode;
      g.dgamma = gg.ptr, g.dgamma_mode = gg.mode;
      g.dbeta = gb.ptr, g.dbeta_mode = gb.mode;
      Workspace ws(kernels::cuda_plan::batchnorm_workspace_bytes(C));
      kc::batchnorm_backward(N, C, HW, x.data(), gy.data(), gamma.data(), save_mean.data(), save_invstd.data(), mode,
                             g, ws.p, cuda_stream());
    });
  }
  return y;
}

// ---- losses ----------------------------------------------------------------------

namespace {
// Fails for the non-finite element at flat index bad (-1: none), naming the
// first listed tensor that holds it (one element copied back).
void check_finite(const char* op, int64_t bad, std::initializer_list<std::pair<const char*, const Tensor*>> inputs) {
  if (bad < 0) return;
  for (const auto& in : inputs) {
    if (!in.second->defined() || bad >= in.second->numel()) continue;
    float v = 0;
    cuda_copy_d2h(&v, in.second->data() + bad, sizeof(float));
    if (!std::isfinite(v))
      DETNAS_FAIL(op, ": non-finite value ", v, " in ", in.first, " ", in.second->describe(), " at flat index ", bad);
  }
  DETNAS_FAIL(op, ": non-finite input value at flat index ", bad);
}

// Per-element losses -> the op's output (the elements, or a 0-d device tensor).
Tensor reduce(const Tensor& elem, Reduction r, int64_t count, void* ws) {
  if (r == Reduction::None) return elem;
  Tensor y = Tensor::empty({}, Device::CUDA);
  const double scale = r == Reduction::Mean ? (count > 0 ? 1.0 / double(count) : 0.0) : 1.0;
  kc::loss_sum_to(elem.numel(), elem.data(), scale, y.data(), ws, cuda_stream());
  return y;
}

kernels::LossGrad<float> upstream(const Tensor& gy, Reduction r, int64_t count) {
  kernels::LossGrad<float> g;
  g.dy = gy.data();
  g.stride = r == Reduction::None ? 1 : 0;
  g.scale = r == Reduction::Mean ? (count > 0 ? float(1.0 / double(count)) : 0.0f) : 1.0f;
  return g;
}
}  // namespace

Tensor softmax_cross_entropy(const Tensor& x, const std::vector<int64_t>& labels, float eps, Reduction reduction,
                             int64_t count) {
  const char* op = "softmax_cross_entropy";
  require_contiguous(op, {&x});
  const int64_t N = x.size(0), K = x.size(1);
  auto dlabels = std::make_shared<Workspace>(labels.size() * sizeof(int64_t));
  if (!labels.empty()) cuda_copy_h2d(dlabels->p, labels.data(), labels.size() * sizeof(int64_t));
  const int64_t* lp = static_cast<const int64_t*>(dlabels->p);
  Tensor elem = Tensor::empty({N}, Device::CUDA), lse = Tensor::empty({N}, Device::CUDA);
  Workspace ws(kernels::cuda_plan::loss_workspace_bytes(N));
  check_finite(op, kc::softmax_xent_forward(N, K, x.data(), lp, eps, elem.data(), lse.data(), ws.p, cuda_stream()),
               {{"logits", &x}});
  Tensor y = reduce(elem, reduction, count, ws.p);
  if (wants_grad({&x})) {
    record({&y}, [x, dlabels, lse, y, eps, reduction, count]() {
      Tensor gy = y.grad();
      if (!gy.defined()) return;
      GradSlot g = grad_slot(x);
      kc::softmax_xent_backward(x.size(0), x.size(1), x.data(), static_cast<const int64_t*>(dlabels->p), eps,
                                lse.data(), upstream(gy, reduction, count), g.ptr, g.mode, cuda_stream());
    });
  }
  return y;
}

Tensor sigmoid_focal_loss(const Tensor& x, const Tensor& t, FocalParams params, Reduction reduction,
                          const Tensor& w) {
  const char* op = "sigmoid_focal_loss";
  require_contiguous(op, {&x, &t, &w});
  const int64_t N = x.size(0), K = x.size(1), count = N * K;
  Tensor elem = Tensor::empty({N, K}, Device::CUDA);
  Workspace ws(kernels::cuda_plan::loss_workspace_bytes(count));
  const float* wp = w.defined() ? w.data() : nullptr;
  check_finite(op, kc::sigmoid_focal_forward(N, K, x.data(), t.data(), wp, params, elem.data(), ws.p, cuda_stream()),
               {{"logits", &x}, {"targets", &t}});
  Tensor y = reduce(elem, reduction, count, ws.p);
  if (wants_grad({&x})) {
    record({&y}, [x, t, w, y, params, reduction, count]() {
      Tensor gy = y.grad();
      if (!gy.defined()) return;
      GradSlot g = grad_slot(x);
      kc::sigmoid_focal_backward(x.size(0), x.size(1), x.data(), t.data(), w.defined() ? w.data() : nullptr, params,
                                 upstream(gy, reduction, count), g.ptr, g.mode, cuda_stream());
    });
  }
  return y;
}

Tensor smooth_l1_loss(const Tensor& x, const Tensor& t, float beta, Reduction reduction, const Tensor& w) {
  const char* op = "smooth_l1_loss";
  require_contiguous(op, {&x, &t, &w});
  const int64_t n = x.numel();
  Tensor elem = Tensor::empty(x.shape(), Device::CUDA);
  Workspace ws(kernels::cuda_plan::loss_workspace_bytes(n));
  const float* wp = w.defined() ? w.data() : nullptr;
  check_finite(op, kc::smooth_l1_forward(n, x.data(), t.data(), wp, beta, elem.data(), ws.p, cuda_stream()),
               {{"input", &x}, {"target", &t}});
  Tensor y = reduce(elem, reduction, n, ws.p);
  if (wants_grad({&x, &t})) {
    record({&y}, [x, t, w, y, beta, reduction, n]() {
      Tensor gy = y.grad();
      if (!gy.defined()) return;
      GradSlot gx = grad_slot(x), gt = grad_slot(t);
      kc::smooth_l1_backward(n, x.data(), t.data(), w.defined() ? w.data() : nullptr, beta,
                             upstream(gy, reduction, n), gx.ptr, gx.mode, gt.ptr, gt.mode, cuda_stream());
    });
  }
  return y;
}

Tensor giou_loss(const Tensor& a, const Tensor& b, Reduction reduction, float eps) {
  const char* op = "giou_loss";
  require_contiguous(op, {&a, &b});
  const int64_t N = a.size(0);
  Tensor elem = Tensor::empty({N}, Device::CUDA);
  Workspace ws(kernels::cuda_plan::loss_workspace_bytes(N));
  check_finite(op, kc::giou_loss_forward(N, a.data(), b.data(), eps, elem.data(), ws.p, cuda_stream()),
               {{"boxes1", &a}, {"boxes2", &b}});
  Tensor y = reduce(elem, reduction, N, ws.p);
  if (wants_grad({&a, &b})) {
    record({&y}, [a, b, y, eps, reduction, N]() {
      Tensor gy = y.grad();
      if (!gy.defined()) return;
      GradSlot ga = grad_slot(a), gb = grad_slot(b);
      kc::giou_loss_backward(N, a.data(), b.data(), eps, upstream(gy, reduction, N), ga.ptr, ga.mode, gb.ptr, gb.mode,
                             cuda_stream());
    });
  }
  return y;
}

Tensor bce_with_logits(const Tensor& x_in, const Tensor& t_in, Reduction reduction, const Tensor& w_in) {
  const char* op = "bce_with_logits";
  Tensor x = x_in.contiguous(), t = t_in.contiguous();
  Tensor w = w_in.defined() ? w_in.contiguous() : Tensor();
  const int64_t n = x.numel();
  Tensor elem = Tensor::empty(x.shape(), Device::CUDA);
  Workspace ws(kernels::cuda_plan::loss_workspace_bytes(n));
  const float* wp = w.defined() ? w.data() : nullptr;
  check_finite(op, kc::bce_logits_forward(n, x.data(), t.data(), wp, elem.data(), ws.p, cuda_stream()),
               {{"logits", &x}, {"targets", &t}});
  Tensor y = reduce(elem, reduction, n, ws.p);
  if (wants_grad({&x, &t})) {
    record({&y}, [x, t, w, y, reduction, n]() {
      Tensor gy = y.grad();
      if (!gy.defined()) return;
      GradSlot gx = grad_slot(x), gt = grad_slot(t);
      kc::bce_logits_backward(n, x.data(), t.data(), w.defined() ? w.data() : nullptr, upstream(gy, reduction, n),
                              gx.ptr, gx.mode, gt.ptr, gt.mode, cuda_stream());
    });
  }
  return y;
}

// ---- detection ops -------------------------------------------------------------

Tensor roi_align(const Tensor& x, const Tensor& boxes_in, const kernels::RoiAlignParams& p) {
  require_contiguous("roi_align", {&x, &boxes_in});
  const Tensor boxes = boxes_in.detach();
  const int64_t N = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3), K = boxes.size(0);
  Tensor y = Tensor::empty({K, C, p.pooled_h, p.pooled_w}, Device::CUDA);
  if (y.numel() > 0) kc::roi_align_forward(p, N, C, H, W, K, x.data(), boxes.data(), y.data(), cuda_stream());
  if (wants_grad({&x})) {
    record({&y}, [x, boxes, y, p]() {
      Tensor gy = y.grad();
      if (!gy.defined()) return;
      require_contiguous("roi_align backward", {&gy});
      GradSlot g = grad_slot(x);
      if (g.mode == GradientMode::Ignore || x.numel() == 0) return;
      kc::roi_align_backward_input(p, x.size(0), x.size(1), x.size(2), x.size(3), boxes.size(0), gy.data(),
                                   boxes.data(), g.ptr, g.mode, cuda_stream());
    });
  }
  return y;
}

Tensor box_iou(const Tensor& a, const Tensor& b, bool generalized) {
  require_contiguous(generalized ? "generalized_box_iou" : "box_iou", {&a, &b});
  const int64_t N = a.size(0), M = b.size(0);
  Tensor out = Tensor::empty({N, M}, Device::CUDA);
  if (generalized)
    kc::generalized_box_iou_forward(N, M, a.data(), b.data(), out.data(), cuda_stream());
  else
    kc::box_iou_forward(N, M, a.data(), b.data(), out.data(), cuda_stream());
  return out;
}

std::vector<int64_t> nms(const Tensor& boxes, const Tensor& scores, const std::vector<int64_t>* classes,
                         float iou_threshold) {
  const char* op = classes ? "batched_nms" : "nms";
  require_contiguous(op, {&boxes, &scores});
  const int64_t K = boxes.size(0);
  if (K == 0) return {};
  Workspace ws(kernels::cuda_plan::nms_workspace_bytes(K));
  std::vector<int64_t> keep(static_cast<size_t>(K), 0);
  int64_t n = 0;
  if (classes) {
    Workspace dcls(size_t(K) * sizeof(int64_t));
    cuda_copy_h2d(dcls.p, classes->data(), size_t(K) * sizeof(int64_t));
    n = kc::batched_nms(K, boxes.data(), scores.data(), static_cast<const int64_t*>(dcls.p), iou_threshold, ws.p,
                        keep.data(), cuda_stream());
  } else {
    n = kc::nms(K, boxes.data(), scores.data(), iou_threshold, ws.p, keep.data(), cuda_stream());
  }
  keep.resize(size_t(n));
  return keep;
}

// ---- optimizer ---------------------------------------------------------------------

void sgd_update_(Tensor& param, const Tensor& grad, float* momentum_buf, const SgdParams& params) {
  kc::sgd_update(param.numel(), param.data(), grad.data(), momentum_buf, params, cuda_stream());
}

double sum_squares(const Tensor& x) {
  Workspace ws(kernels::cuda_plan::loss_workspace_bytes(x.numel()));
  return kc::sum_squares(x.numel(), x.data(), ws.p, cuda_stream());
}

void scale_(Tensor& x, float s) { kc::scale(x.numel(), s, x.data(), x.data(), cuda_stream()); }

#else  // built without CUDA: CUDA tensors cannot exist, these are never reached

Tensor relu(const Tensor&) { DETNAS_FAIL("relu: built without CUDA"); }
Tensor add(const Tensor&, const Tensor&) { DETNAS_FAIL("add: built without CUDA"); }
Tensor mul(const Tensor&, const Tensor&) { DETNAS_FAIL("mul: built without CUDA"); }
Tensor mul_scalar(const Tensor&, float) { DETNAS_FAIL("mul_scalar: built without CUDA"); }
Tensor sum(const Tensor&) { DETNAS_FAIL("sum: built without CUDA"); }
Tensor dropout(const Tensor&, const std::vector<float>&) { DETNAS_FAIL("dropout: built without CUDA"); }
Tensor conv2d(const Tensor&, const Tensor&, const Tensor&, const kernels::Conv2dShape&, bool) {
  DETNAS_FAIL("conv2d: built without CUDA");
}
Tensor linear(const Tensor&, const Tensor&, const Tensor&, int64_t, int64_t, int64_t, const Shape&) {
  DETNAS_FAIL("linear: built without CUDA");
}

Tensor channel_shuffle(const Tensor&, int64_t) { DETNAS_FAIL("channel_shuffle: built without CUDA"); }
std::pair<Tensor, Tensor> split_even_odd(const Tensor&) { DETNAS_FAIL("split_even_odd: built without CUDA"); }
Tensor concat(const std::vector<Tensor>&) { DETNAS_FAIL("concat: built without CUDA"); }
Tensor max_pool2d(const Tensor&, const kernels::PoolWindow&, int64_t, int64_t) {
  DETNAS_FAIL("max_pool2d: built without CUDA");
}
Tensor global_avg_pool(const Tensor&) { DETNAS_FAIL("global_avg_pool: built without CUDA"); }
Tensor upsample_nearest(const Tensor&, int64_t, int64_t) { DETNAS_FAIL("upsample_nearest: built without CUDA"); }
Tensor batch_norm(const Tensor&, const Tensor&, const Tensor&, Tensor&, Tensor&, kernels::BatchNormMode, double,
                  double) {
  DETNAS_FAIL("batch_norm: built without CUDA");
}

Tensor softmax_cross_entropy(const Tensor&, const std::vector<int64_t>&, float, Reduction, int64_t) {
  DETNAS_FAIL("softmax_cross_entropy: built without CUDA");
}
Tensor sigmoid_focal_loss(const Tensor&, const Tensor&, FocalParams, Reduction, const Tensor&) {
  DETNAS_FAIL("sigmoid_focal_loss: built without CUDA");
}
Tensor smooth_l1_loss(const Tensor&, const Tensor&, float, Reduction, const Tensor&) {
  DETNAS_FAIL("smooth_l1_loss: built without CUDA");
}
Tensor giou_loss(const Tensor&, const Tensor&, Reduction, float) { DETNAS_FAIL("giou_loss: built without CUDA"); }
Tensor bce_with_logits(const Tensor&, const Tensor&, Reduction, const Tensor&) {
  DETNAS_FAIL("bce_with_logits: built without CUDA");
}

Tensor roi_align(const Tensor&, const Tensor&, const kernels::RoiAlignParams&) {
  DETNAS_FAIL("roi_align: built without CUDA");
}
Tensor box_iou(const Tensor&, const Tensor&, bool) { DETNAS_FAIL("box_iou: built without CUDA"); }
std::vector<int64_t> nms(const Tensor&, const Tensor&, const std::vector<int64_t>*, float) {
  DETNAS_FAIL("nms: built without CUDA");
}

void sgd_update_(Tensor&, const Tensor&, float*, const SgdParams&) { DETNAS_FAIL("sgd_update_: built without CUDA"); }
double sum_squares(const Tensor&) { DETNAS_FAIL("sum_squares: built without CUDA"); }
void scale_(Tensor&, float) { DETNAS_FAIL("scale_: built without CUDA"); }

#endif

}  // namespace detnas::rt::cuda_ops
