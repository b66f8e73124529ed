// The CUDA halves of the runtime ops that have CUDA kernels: relu, add, mul,
// mul_scalar, sum (deterministic two-pass), dropout (mask drawn on the host from
// the op's Rng exactly as the CPU op, then uploaded), BCE-with-logits, conv2d
// (depthwise: kernels/dwconv_cuda.h; everything else: cuDNN), linear (cuBLAS),
// channel shuffle / even-odd split / concat, max / global average pooling,
// nearest upsampling, batch norm, the softmax-CE / focal / smooth-L1 / GIoU
// losses, RoIAlign, IoU/GIoU matrices and (batched) NMS, each with its backward
// recorded on the tape; and the optimizer ops (SGD update, sum of squares,
// in-place scale: runtime/ops_optim.h, not recorded). The public ops
// (runtime/ops_*.cpp) validate their arguments, then hand CUDA tensors here;
// accuracy_top1 counts on a host copy, reset_running_stats resets host copies
// and copies them over. What is still CPU-only fails by name on CUDA tensors
// (rt::require_cpu). All kernels run on rt::cuda_stream(); workspaces come from
// rt::device_allocator(). In a build without CUDA these functions throw.
// Not here: Tensor device moves (runtime/tensor.h), the kernels (kernels/*_cuda.h).
#pragma once
#include <cstdint>
#include <initializer_list>
#include <utility>
#include <vector>

#include "kernels/batchnorm.h"
#include "kernels/conv2d.h"
#include "kernels/loss.h"
#include "kernels/pool.h"
#include "kernels/roi_align.h"
#include "kernels/sgd.h"
#include "runtime/tensor.h"

namespace detnas::rt::cuda_ops {

// True when every defined tensor is on CUDA, false when all are on the CPU;
// throws naming the op when they are mixed.
bool on_cuda(const char* op, std::initializer_list<const Tensor*> ts);

// Inputs must be contiguous CUDA tensors (checked, naming the op).
Tensor relu(const Tensor& x);
Tensor add(const Tensor& a, const Tensor& b);
// Inputs may be strided here (made contiguous on the device first).
Tensor mul(const Tensor& a, const Tensor& b);
Tensor mul_scalar(const Tensor& x, float alpha);
Tensor sum(const Tensor& x);  // 0-d CUDA tensor: float(double two-pass sum)
// y = x * mask; mask (host, x.numel() values of 0 or 1/(1-p)) is uploaded once.
Tensor dropout(const Tensor& x, const std::vector<float>& mask);
// Arguments already validated by ops::conv2d; x contiguous within each sample
// (s.x_batch_stride), w and bias contiguous. depthwise: the direct CUDA kernel.
Tensor conv2d(const Tensor& x, const Tensor& w, const Tensor& bias, const kernels::Conv2dShape& s, bool depthwise);
// Arguments already validated by ops::linear; x (N rows of Cin), y shape ys.
Tensor linear(const Tensor& x, const Tensor& w, const Tensor& bias, int64_t N, int64_t Cin, int64_t Cout,
              const Shape& ys);

// The ops of runtime/ops_shape.cpp, arguments already validated there. x (N,C,H,W)
// contiguous; concat inputs contiguous from dim 1 on (a channel slice is fine).
Tensor channel_shuffle(const Tensor& x, int64_t groups);
std::pair<Tensor, Tensor> split_even_odd(const Tensor& x);
Tensor concat(const std::vector<Tensor>& xs);
Tensor max_pool2d(const Tensor& x, const kernels::PoolWindow& win, int64_t Ho, int64_t Wo);
Tensor global_avg_pool(const Tensor& x);
Tensor upsample_nearest(const Tensor& x, int64_t Ho, int64_t Wo);

// The losses of runtime/ops_loss.cpp after their checks (same reductions; the
// sum is the deterministic two-pass device sum; a non-finite input fails naming
// the tensor, value and flat index). count: the Mean divisor (non-ignored rows
// for cross-entropy).
Tensor softmax_cross_entropy(const Tensor& logits, const std::vector<int64_t>& labels, float label_smoothing,
                             Reduction reduction, int64_t count);
Tensor sigmoid_focal_loss(const Tensor& logits, const Tensor& targets, FocalParams params, Reduction reduction,
                          const Tensor& row_weight);
Tensor smooth_l1_loss(const Tensor& input, const Tensor& target, float beta, Reduction reduction,
                      const Tensor& weight);
Tensor giou_loss(const Tensor& boxes1, const Tensor& boxes2, Reduction reduction, float eps);
Tensor bce_with_logits(const Tensor& logits, const Tensor& targets, Reduction reduction, const Tensor& weight);

// The detection ops of runtime/ops_box.cpp; the caller validated the inputs
// (on host copies for the box values). boxes (K,5) for RoIAlign, (K,4) otherwise;
// NMS returns the kept indices on the host (classes null: plain NMS).
Tensor roi_align(const Tensor& input, const Tensor& boxes, const kernels::RoiAlignParams& p);
Tensor box_iou(const Tensor& a, const Tensor& b, bool generalized);
std::vector<int64_t> nms(const Tensor& boxes, const Tensor& scores, const std::vector<int64_t>* classes,
                         float iou_threshold);

// ops::batch_norm after its checks: factor is the running-update factor of the
// mode (momentum or 1/k); running stats updated in place (contiguous).
Tensor batch_norm(const Tensor& x, const Tensor& gamma, const Tensor& beta, Tensor& running_mean, Tensor& running_var,
                  kernels::BatchNormMode mode, double eps, double factor);

// The optimizer ops of runtime/ops_optim.cpp after their checks (contiguous, same
// shapes): momentum_buf is the buffer's device pointer or null (momentum 0);
// sum_squares is the deterministic two-pass device sum, read back.
void sgd_update_(Tensor& param, const Tensor& grad, float* momentum_buf, const SgdParams& params);
double sum_squares(const Tensor& x);
void scale_(Tensor& x, float s);

}  // namespace detnas::rt::cuda_ops
