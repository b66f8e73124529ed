// CUDA implementations behind the runtime ops (see runtime/ops_cuda.h): forward
// through the CUDA kernel wrappers, backward recorded with the same GradSlot
// contract as the CPU ops (Overwrite on first use, Accumulate after).
#include "runtime/ops_cuda.h"

#include "runtime/autograd.h"
#include "runtime/error.h"

#ifdef DETNAS_CUDA
#include "kernels/bias_cuda.h"
#include "kernels/conv2d_cudnn.h"
#include "kernels/dwconv_cuda.h"
#include "kernels/elementwise_cuda.h"
#include "kernels/gemm_cublas.h"
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

#else  // built without CUDA: CUDA tensors cannot exist, these are never reached

Tensor relu(const Tensor&) { DETNAS_FAIL("relu: built without CUDA"); }
Tensor add(const Tensor&, const Tensor&) { DETNAS_FAIL("add: built without CUDA"); }
Tensor conv2d(const Tensor&, const Tensor&, const Tensor&, const kernels::Conv2dShape&, bool) {
  DETNAS_FAIL("conv2d: built without CUDA");
}
Tensor linear(const Tensor&, const Tensor&, const Tensor&, int64_t, int64_t, int64_t, const Shape&) {
  DETNAS_FAIL("linear: built without CUDA");
}

#endif

}  // namespace detnas::rt::cuda_ops
