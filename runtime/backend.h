// The per-device kernel tables behind the runtime ops. Each op (runtime/ops_*.cpp)
// is one device-neutral body: checks, output and workspace allocation on the
// inputs' device, contiguous(), backward recording; the only device-specific
// step is the kernel call, made through kernels_for(device). Entries take raw
// pointers valid on that device and no stream (the CUDA entries in
// runtime/backend_cuda.cpp pass rt::cuda_stream()); where the devices differ in
// what a kernel needs (a workspace, a reduction's rounding) the difference is an
// entry, never a second copy of an op. Adding a CUDA op: the kernel files and
// one entry here, filled in backend_cpu.cpp and backend_cuda.cpp.
// Not here: the kernels (kernels/*.h), tensor copies between devices (runtime/tensor.h).
#pragma once
#include <cstddef>
#include <cstdint>
#include <initializer_list>

#include "kernels/batchnorm.h"
#include "kernels/bn_sync.h"
#include "kernels/conv2d.h"
#include "kernels/dwconv.h"
#include "kernels/loss.h"
#include "kernels/pool.h"
#include "kernels/roi_align.h"
#include "kernels/sgd.h"
#include "runtime/tensor.h"

namespace detnas::rt {

// Shapes follow the kernels' declarations (kernels/<op>.h), `=` / `+=` per the
// GradientMode argument. `ws` is a workspace of the size the matching
// *_workspace_bytes entry gives for the same arguments (0 bytes: may be null).
struct Kernels {
  // ---- elementwise (kernels/elementwise.h) ----
  void (*relu_forward)(int64_t n, const float* x, float* y);
  void (*relu_backward)(int64_t n, const float* y, const float* dy, float* dx, GradientMode mode);
  void (*add_forward)(int64_t n, const float* a, const float* b, float* y);
  void (*scale_backward)(int64_t n, float alpha, const float* dy, float* dx, GradientMode mode);
  void (*mul_forward)(int64_t n, const float* a, const float* b, float* y);
  void (*mul_backward)(int64_t n, const float* dy, const float* other, float* dx, GradientMode mode);
  void (*scale)(int64_t n, float alpha, const float* x, float* y);  // in place allowed
  void (*broadcast_scalar)(int64_t n, const float* s, float* dx, GradientMode mode);

  // ---- reductions: one device float out, or a double back on the host ----
  // Workspace of sum, loss_sum_to and sum_squares over n elements.
  size_t (*reduce_workspace_bytes)(int64_t n);
  // y (1) = float(sum of x): CPU in double serially; CUDA the two-pass device sum.
  void (*sum)(int64_t n, const float* x, float* y, void* ws);
  // y (1) = the reduced loss: sum (Sum) or sum / count (Mean; 0 when count == 0),
  // each device rounding as its loss reduction always has.
  void (*loss_sum_to)(int64_t n, const float* v, Reduction r, int64_t count, float* y, void* ws);
  double (*sum_squares)(int64_t n, const float* x, void* ws);  // order fixed by n

  // ---- conv2d (general: CPU GEMM / im2col / Winograd, CUDA cuDNN), depthwise, linear ----
  size_t (*conv2d_workspace_bytes)(const kernels::Conv2dShape& s);          // every pass
  size_t (*conv2d_forward_workspace_bytes)(const kernels::Conv2dShape& s);  // conv2d_forward alone
  void (*conv2d_forward)(const kernels::Conv2dShape& s, const float* x, const float* w, const float* b, float* y,
                         void* ws, size_t ws_bytes);
  void (*conv2d_backward_input)(const kernels::Conv2dShape& s, const float* w, const float* dy, float* dx,
                                GradientMode mode, void* ws, size_t ws_bytes);
  void (*conv2d_backward_weight)(const kernels::Conv2dShape& s, const float* x, const float* dy, float* dw,
                                 GradientMode mode, void* ws, size_t ws_bytes);
  void (*conv2d_backward_bias)(const kernels::Conv2dShape& s, const float* dy, float* db, GradientMode mode);
  void (*dwconv_forward)(const kernels::DwconvShape& s, const float* x, const float* w, const float* b, float* y);
  void (*dwconv_backward_input)(const kernels::DwconvShape& s, const float* w, const float* dy, float* dx,
                                GradientMode mode);
  void (*dwconv_backward_weight)(const kernels::DwconvShape& s, const float* x, const float* dy, float* dw,
                                 GradientMode mode);
  void (*linear_forward)(int64_t N, int64_t Cin, int64_t Cout, const float* x, const float* w, const float* b,
                         float* y);
  void (*linear_backward_input)(int64_t N, int64_t Cin, int64_t Cout, const float* w, const float* dy, float* dx,
                                GradientMode mode);
  void (*linear_backward_weight)(int64_t N, int64_t Cin, int64_t Cout, const float* x, const float* dy, float* dw,
                                 GradientMode mode);
  void (*linear_backward_bias)(int64_t N, int64_t Cout, const float* dy, float* db, GradientMode mode);

  // ---- data movement and pooling (kernels/shuffle.h, pool.h, upsample.h) ----
  void (*channel_shuffle_forward)(int64_t N, int64_t C, int64_t HW, int64_t G, const float* x, float* y);
  void (*channel_shuffle_backward_input)(int64_t N, int64_t C, int64_t HW, int64_t G, const float* dy, float* dx,
                                         GradientMode mode);
  void (*split_even_odd_forward)(int64_t N, int64_t C, int64_t HW, const float* x, float* even, float* odd);
  void (*split_even_odd_backward_input)(int64_t N, int64_t C, int64_t HW, const float* d_even, const float* d_odd,
                                        float* dx, GradientMode mode);
  void (*concat_forward)(int64_t N, int64_t Ci, int64_t Ctot, int64_t HW, int64_t c_offset, const float* x,
                         int64_t x_stride_n, float* y);
  void (*concat_backward_input)(int64_t N, int64_t Ci, int64_t Ctot, int64_t HW, int64_t c_offset, const float* dy,
                                float* dx, GradientMode mode);
  void (*max_pool2d_forward)(int64_t planes, int64_t H, int64_t W, int64_t Ho, int64_t Wo,
                             const kernels::PoolWindow& win, const float* x, float* y);
  void (*max_pool2d_backward_input)(int64_t planes, int64_t H, int64_t W, int64_t Ho, int64_t Wo,
                                    const kernels::PoolWindow& win, const float* x, const float* dy, float* dx,
                                    GradientMode mode);
  void (*global_avg_pool_forward)(int64_t planes, int64_t HW, const float* x, float* y);
  void (*global_avg_pool_backward_input)(int64_t planes, int64_t HW, const float* dy, float* dx, GradientMode mode);
  void (*upsample_nearest2d_forward)(int64_t planes, int64_t H, int64_t W, int64_t Ho, int64_t Wo, const float* x,
                                     float* y);
  void (*upsample_nearest2d_backward_input)(int64_t planes, int64_t H, int64_t W, int64_t Ho, int64_t Wo,
                                            const float* dy, float* dx, GradientMode mode);

  // ---- batch norm (kernels/batchnorm.h); running stats updated in place ----
  size_t (*batchnorm_workspace_bytes)(int64_t C);
  void (*batchnorm_forward_batch)(int64_t N, int64_t C, int64_t HW, const float* x, const float* gamma,
                                  const float* beta, double eps, double update_factor, float* y, float* save_mean,
                                  float* save_invstd, float* running_mean, float* running_var, void* ws);
  void (*batchnorm_forward_eval)(int64_t N, int64_t C, int64_t HW, const float* x, const float* gamma,
                                 const float* beta, const float* running_mean, const float* running_var, double eps,
                                 float* y, float* save_mean, float* save_invstd, void* ws);
  void (*batchnorm_backward)(int64_t N, int64_t C, int64_t HW, const float* x, const float* dy, const float* gamma,
                             const float* save_mean, const float* save_invstd, kernels::BatchNormMode mode,
                             const kernels::cpu::BatchNormGrads<float>& g, void* ws);
  void (*batchnorm_reset_running)(int64_t C, float* running_mean, float* running_var);

  // ---- synchronized batch norm (kernels/bn_sync.h): per-channel sums, mean,
  // invstd (C) and the global sums as doubles on the device ----
  void (*bn_sync_forward_sums)(int64_t N, int64_t C, int64_t HW, const float* x, double* sums);
  void (*bn_sync_normalize)(int64_t N, int64_t C, int64_t HW, const float* x, const double* mean, const double* invstd,
                            const float* gamma, const float* beta, float* y);
  void (*bn_sync_backward_sums)(int64_t N, int64_t C, int64_t HW, const float* x, const float* dy, const double* mean,
                                const double* invstd, double* sums, float* dgamma, GradientMode dgamma_mode,
                                float* dbeta, GradientMode dbeta_mode);
  void (*bn_sync_backward_input)(int64_t N, int64_t C, int64_t HW, const float* x, const float* dy, const float* gamma,
                                 const double* mean, const double* invstd, const double* global_sums, int64_t m,
                                 float* dx, GradientMode mode);

  // ---- losses (kernels/loss.h): forwards return the first non-finite input's
  // flat index or -1; labels are int64 on the device; ws: reduce_workspace_bytes ----
  int64_t (*softmax_xent_forward)(int64_t N, int64_t K, const float* x, const int64_t* labels, float eps, float* loss,
                                  float* lse, void* ws);
  void (*softmax_xent_backward)(int64_t N, int64_t K, const float* x, const int64_t* labels, float eps,
                                const float* lse, kernels::LossGrad<float> dloss, float* dx, GradientMode mode);
  int64_t (*sigmoid_focal_forward)(int64_t N, int64_t K, const float* x, const float* t, const float* row_w,
                                   FocalParams p, float* loss, void* ws);
  void (*sigmoid_focal_backward)(int64_t N, int64_t K, const float* x, const float* t, const float* row_w,
                                 FocalParams p, kernels::LossGrad<float> dloss, float* dx, GradientMode mode);
  int64_t (*smooth_l1_forward)(int64_t n, const float* x, const float* t, const float* w, float beta, float* loss,
                               void* ws);
  void (*smooth_l1_backward)(int64_t n, const float* x, const float* t, const float* w, float beta,
                             kernels::LossGrad<float> dloss, float* dx, GradientMode mode_x, float* dt,
                             GradientMode mode_t);
  int64_t (*bce_logits_forward)(int64_t n, const float* x, const float* t, const float* w, float* loss, void* ws);
  void (*bce_logits_backward)(int64_t n, const float* x, const float* t, const float* w, kernels::LossGrad<float> dloss,
                              float* dx, GradientMode mode_x, float* dt, GradientMode mode_t);
  int64_t (*giou_loss_forward)(int64_t N, const float* a, const float* b, float eps, float* loss, void* ws);
  void (*giou_loss_backward)(int64_t N, const float* a, const float* b, float eps, kernels::LossGrad<float> dloss,
                             float* da, GradientMode mode_a, float* db, GradientMode mode_b);

  // ---- detection (kernels/roi_align.h, box_ops.h) ----
  void (*roi_align_forward)(const kernels::RoiAlignParams& p, int64_t N, int64_t C, int64_t H, int64_t W, int64_t K,
                            const float* x, const float* boxes, float* y);
  void (*roi_align_backward_input)(const kernels::RoiAlignParams& p, int64_t N, int64_t C, int64_t H, int64_t W,
                                   int64_t K, const float* dy, const float* boxes, float* dx, GradientMode mode);
  void (*box_iou_forward)(int64_t N, int64_t M, const float* a, const float* b, float* iou);
  void (*generalized_box_iou_forward)(int64_t N, int64_t M, const float* a, const float* b, float* giou);
  // NMS: boxes, scores and classes on the device; keep (K) is HOST memory on
  // both devices (the kept indices, returned count first).
  size_t (*nms_workspace_bytes)(int64_t K);
  size_t (*batched_nms_workspace_bytes)(int64_t K);
  int64_t (*nms)(int64_t K, const float* boxes, const float* scores, float iou_threshold, void* ws, int64_t* keep);
  int64_t (*batched_nms)(int64_t K, const float* boxes, const float* scores, const int64_t* classes,
                         float iou_threshold, void* ws, int64_t* keep);

  // ---- optimizer (kernels/sgd.h): in place, never recorded ----
  void (*sgd_update)(int64_t n, float* param, const float* grad, float* momentum_buf, const SgdParams& params);

  // ---- host to device: dst (device) = src (host), bytes; and back ----
  void (*upload)(void* dst, const void* src, size_t bytes);
  void (*download)(void* dst, const void* src, size_t bytes);  // dst (host) = src (device), complete on return
};

// The table of a device. The tables are static: backward closures capture them
// by reference. In a build without CUDA, Device::CUDA fails (no CUDA tensor can
// exist there either).
const Kernels& kernels_for(Device d);
// The tables themselves (runtime/backend_cpu.cpp, runtime/backend_cuda.cpp).
const Kernels& cpu_kernels();
#ifdef DETNAS_CUDA
const Kernels& cuda_kernels();
#endif
// Fails naming the device and the slot of the first entry left null (called
// once by each table when it is built).
void check_complete(const Kernels& t, const char* device);

// The device of an op's inputs (undefined tensors ignored; CPU when none is
// defined); throws naming the op when they are on different devices.
Device common_device(const char* op, std::initializer_list<const Tensor*> ts);

// Scratch memory of `bytes` on a device from its caching allocator (held by a
// float Tensor, so closures can keep it alive); ptr() is null when bytes == 0.
class Workspace {
 public:
  Workspace() = default;
  Workspace(size_t bytes, Device d);
  void* ptr() const { return ptr_; }
  size_t bytes() const { return bytes_; }

 private:
  Tensor buf_;
  void* ptr_ = nullptr;
  size_t bytes_ = 0;
};

// A Workspace on `d` holding a copy of a host array (labels, class indices).
template <typename T>
Workspace upload_array(const T* host, size_t count, Device d) {
  Workspace w(count * sizeof(T), d);
  if (w.bytes()) kernels_for(d).upload(w.ptr(), host, w.bytes());
  return w;
}

}  // namespace detnas::rt
