// CUDA twins of the loss kernels of kernels/loss.h (float, device pointers):
// sigmoid focal loss, smooth L1, softmax cross-entropy, GIoU loss (forward per
// element/row/box and backward), and the deterministic two-pass sum that reduces
// a per-element loss (chunk split fixed by n: cuda_plan::sum_plan).
// Forward wrappers return the first non-finite input index like the CPU kernels
// (-1 when all are finite); they find it with an atomicMin on a flag in the
// workspace and read it back, so they synchronise the stream once.
// workspace: loss_workspace_bytes(n) bytes of device memory (n = element count).
// Also BCE-with-logits (forward/backward over bce_logits_value/grad) and the sum
// of squares of a vector (same two-pass split; gradient-norm clipping).
// Not here: top1_correct (the runtime op copies CUDA logits to the host), Tensor
// checks and autograd (runtime/ops_loss.cpp).
#pragma once
#include <cstddef>
#include <cstdint>

#include "kernels/common.h"
#include "kernels/cuda_plan.h"
#include "kernels/loss.h"

typedef struct CUstream_st* cudaStream_t;

namespace detnas::kernels::cuda_plan {
// Flag (64 bytes, first) + the sum partials of n elements.
inline size_t loss_workspace_bytes(int64_t n) { return sum_workspace_bytes(n); }
}  // namespace detnas::kernels::cuda_plan

namespace detnas::kernels::cuda {

// v (n) -> *out (device, one float) = float(scale * sum in double); the chunk sums
// and their order depend only on n, so the result is reproducible run to run.
void loss_sum_to(int64_t n, const float* v, double scale, float* out, void* workspace, cudaStream_t stream);
// The same sum returned to the host (synchronises).
double loss_sum(int64_t n, const float* v, void* workspace, cudaStream_t stream);

// sum of v[i]^2 in double (squares and sums in double), same chunk split as
// loss_sum; synchronises and returns it to the host.
double sum_squares(int64_t n, const float* v, void* workspace, cudaStream_t stream);

int64_t bce_logits_forward(int64_t n, const float* x, const float* t, const float* w, float* loss, void* workspace,
                           cudaStream_t stream);
void bce_logits_backward(int64_t n, const float* x, const float* t, const float* w, LossGrad<float> dloss, float* dx,
                         GradientMode mode_x, float* dt, GradientMode mode_t, cudaStream_t stream);

int64_t sigmoid_focal_forward(int64_t N, int64_t K, const float* x, const float* t, const float* row_w, FocalParams p,
                              float* loss, void* workspace, cudaStream_t stream);
void sigmoid_focal_backward(int64_t N, int64_t K, const float* x, const float* t, const float* row_w, FocalParams p,
                            LossGrad<float> dloss, float* dx, GradientMode mode, cudaStream_t stream);

int64_t smooth_l1_forward(int64_t n, const float* x, const float* t, const float* w, float beta, float* loss,
                          void* workspace, cudaStream_t stream);
void smooth_l1_backward(int64_t n, const float* x, const float* t, const float* w, float beta, LossGrad<float> dloss,
                        float* dx, GradientMode mode_x, float* dt, GradientMode mode_t, cudaStream_t stream);

// One thread per row (softmax_xent_row: log-sum-exp and the target sum in double,
// as the CPU); the backward one thread per element (softmax_xent_grad).
int64_t softmax_xent_forward(int64_t N, int64_t K, const float* x, const int64_t* labels, float eps, float* loss,
                             float* lse, void* workspace, cudaStream_t stream);
void softmax_xent_backward(int64_t N, int64_t K, const float* x, const int64_t* labels, float eps, const float* lse,
                           LossGrad<float> dloss, float* dx, GradientMode mode, cudaStream_t stream);

int64_t giou_loss_forward(int64_t N, const float* a, const float* b, float eps, float* loss, void* workspace,
                          cudaStream_t stream);
void giou_loss_backward(int64_t N, const float* a, const float* b, float eps, LossGrad<float> dloss, float* da,
                        GradientMode mode_a, float* db, GradientMode mode_b, cudaStream_t stream);

}  // namespace detnas::kernels::cuda
