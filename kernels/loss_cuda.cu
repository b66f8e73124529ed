// CUDA loss kernels over the per-element and per-row math of kernels/loss.h (the
// functions the CPU loops call: softmax_xent_row / softmax_xent_grad,
// focal_weighted_*, smooth_l1_*, bce_*, giou_loss_*), plus the deterministic
// two-pass sum: pass 1 one block per fixed chunk (block_sum, fixed tree), pass 2
// one block over the chunk sums in order.
// Non-finite inputs: each forward kernel atomicMin's the flat index into a flag
// at the start of the workspace; the wrapper reads it back.
#include <cstring>

#include "kernels/cuda_check.h"
#include "kernels/cuda_reduce.cuh"
#include "kernels/launch.h"
#include "kernels/loss.h"
#include "kernels/loss_cuda.h"

namespace detnas::kernels::cuda {

constexpr int kBlock = 256;
using Flag = unsigned long long;
constexpr Flag kNoBad = ~Flag(0);

__device__ __forceinline__ void note_bad(Flag* flag, int64_t i) { atomicMin(flag, Flag(i)); }

// ---- deterministic sum -------------------------------------------------------

// partial[b] = sum of v[b*chunk, min(n, (b+1)*chunk)) in double.
__global__ void __launch_bounds__(cuda_plan::kSumBlock)
    loss_sum_partial_kernel(int64_t n, int64_t chunk, const float* __restrict__ v, double* __restrict__ partial) {
  __shared__ double red[cuda_plan::kSumBlock];
  const int64_t lo = int64_t(blockIdx.x) * chunk, hi = lo + chunk < n ? lo + chunk : n;
  double s = 0;
  for (int64_t i = lo + threadIdx.x; i < hi; i += blockDim.x) s += double(v[i]);
  s = block_sum<cuda_plan::kSumBlock>(s, red);
  if (threadIdx.x == 0) partial[blockIdx.x] = s;
}

// *out_d = sum of partial[0, chunks) (if out_d), *out_f = float(scale * sum) (if out_f).
__global__ void __launch_bounds__(cuda_plan::kSumBlock)
    loss_sum_final_kernel(int64_t chunks, const double* __restrict__ partial, double scale, double* out_d,
                          float* out_f) {
  __shared__ double red[cuda_plan::kSumBlock];
  double s = 0;
  for (int64_t i = threadIdx.x; i < chunks; i += blockDim.x) s += partial[i];
  s = block_sum<cuda_plan::kSumBlock>(s, red);
  if (threadIdx.x == 0) {
    if (out_d) *out_d = s;
    if (out_f) *out_f = float(scale * s);
  }
}

// partial[b] = sum of v[i]^2 (in double) over chunk b, as loss_sum_partial_kernel.
__global__ void __launch_bounds__(cuda_plan::kSumBlock)
    sum_squares_partial_kernel(int64_t n, int64_t chunk, const float* __restrict__ v, double* __restrict__ partial) {
  __shared__ double red[cuda_plan::kSumBlock];
  const int64_t lo = int64_t(blockIdx.x) * chunk, hi = lo + chunk < n ? lo + chunk : n;
  double s = 0;
  for (int64_t i = lo + threadIdx.x; i < hi; i += blockDim.x) s += double(v[i]) * double(v[i]);
  s = block_sum<cuda_plan::kSumBlock>(s, red);
  if (threadIdx.x == 0) partial[blockIdx.x] = s;
}

// ---- per-element kernels -----------------------------------------------------

__global__ void bce_logits_forward_kernel(int64_t n, const float* __restrict__ x, const float* __restrict__ t,
                                          const float* __restrict__ w, float* __restrict__ loss, Flag* flag) {
  for (int64_t i = global_thread(); i < n; i += global_stride()) {
    if (!loss_finite(x[i]) || !loss_finite(t[i])) note_bad(flag, i);
    loss[i] = loss_weighted(bce_logits_value(x[i], t[i]), w, i);
  }
}

__global__ void bce_logits_backward_kernel(int64_t n, const float* __restrict__ x, const float* __restrict__ t,
                                           const float* __restrict__ w, LossGrad<float> dloss, float* __restrict__ dx,
                                           GradientMode mode_x, float* __restrict__ dt, GradientMode mode_t) {
  for (int64_t i = global_thread(); i < n; i += global_stride()) {
    const float g = bce_weighted_upstream(dloss.at(i), w, i);
    if (mode_x != GradientMode::Ignore) write_grad(dx + i, g * bce_logits_grad(x[i], t[i]), mode_x);
    if (mode_t != GradientMode::Ignore) write_grad(dt + i, -g * x[i], mode_t);
  }
}

__global__ void focal_forward_kernel(int64_t N, int64_t K, const float* __restrict__ x, const float* __restrict__ t,
                                     const float* __restrict__ row_w, float alpha, float gamma,
                                     float* __restrict__ loss, Flag* flag) {
  const int64_t total = N * K;
  for (int64_t j = global_thread(); j < total; j += global_stride()) {
    const float w = row_w ? row_w[j / K] : 1.0f;
    if (!loss_finite(x[j]) || !loss_finite(t[j])) note_bad(flag, j);
    loss[j] = focal_weighted_value(x[j], t[j], w, alpha, gamma);
  }
}

__global__ void focal_backward_kernel(int64_t N, int64_t K, const float* __restrict__ x, const float* __restrict__ t,
                                      const float* __restrict__ row_w, float alpha, float gamma, LossGrad<float> dloss,
                                      float* __restrict__ dx, GradientMode mode) {
  const int64_t total = N * K;
  for (int64_t j = global_thread(); j < total; j += global_stride()) {
    const float w = row_w ? row_w[j / K] : 1.0f;
    write_grad(dx + j, focal_weighted_grad(x[j], t[j], w, dloss.at(j), alpha, gamma), mode);
  }
}

__global__ void smooth_l1_forward_kernel(int64_t n, const float* __restrict__ x, const float* __restrict__ t,
                                         const float* __restrict__ w, float beta, float* __restrict__ loss,
                                         Flag* flag) {
  for (int64_t i = global_thread(); i < n; i += global_stride()) {
    if (!loss_finite(x[i]) || !loss_finite(t[i])) note_bad(flag, i);
    loss[i] = loss_weighted(smooth_l1_value(x[i] - t[i], beta), w, i);
  }
}

__global__ void smooth_l1_backward_kernel(int64_t n, const float* __restrict__ x, const float* __restrict__ t,
                                          const float* __restrict__ w, float beta, LossGrad<float> dloss,
                                          float* __restrict__ dx, GradientMode mode_x, float* __restrict__ dt,
                                          GradientMode mode_t) {
  for (int64_t i = global_thread(); i < n; i += global_stride()) {
    const float v = smooth_l1_weighted_grad(x[i], t[i], beta, dloss.at(i), w, i);
    if (mode_x != GradientMode::Ignore) write_grad(dx + i, v, mode_x);
    if (mode_t != GradientMode::Ignore) write_grad(dt + i, -v, mode_t);
  }
}

// One row per thread: softmax_xent_row (lse and the label-smoothed loss, as the
// CPU); the first non-finite element of a row ends its scan.
__global__ void softmax_xent_forward_kernel(int64_t N, int64_t K, const float* __restrict__ x,
                                            const int64_t* __restrict__ labels, float eps, float* __restrict__ loss,
                                            float* __restrict__ lse, Flag* flag) {
  const XentSmoothing<double> sm = xent_smoothing(double(eps), K);
  for (int64_t i = global_thread(); i < N; i += global_stride()) {
    const int64_t bad = softmax_xent_row(x + i * K, K, labels[i], sm, loss + i, lse + i);
    if (bad >= 0) note_bad(flag, i * K + bad);
  }
}

__global__ void softmax_xent_backward_kernel(int64_t N, int64_t K, const float* __restrict__ x,
                                             const int64_t* __restrict__ labels, float eps,
                                             const float* __restrict__ lse, LossGrad<float> dloss,
                                             float* __restrict__ dx, GradientMode mode) {
  const XentSmoothing<float> sm = xent_smoothing(eps, K);
  const int64_t total = N * K;
  for (int64_t e = global_thread(); e < total; e += global_stride()) {
    const int64_t i = e / K, j = e % K, y = labels[i];
    const float g = xent_ignored(y, K) ? 0.0f : dloss.at(i);
    write_grad(dx + e, softmax_xent_grad(x[e], lse[i], g, j, y, K, sm), mode);
  }
}

__global__ void giou_forward_kernel(int64_t N, const float* __restrict__ a, const float* __restrict__ b, float eps,
                                    float* __restrict__ loss, Flag* flag) {
  for (int64_t i = global_thread(); i < N; i += global_stride()) {
    for (int64_t k = 4 * i; k < 4 * i + 4; ++k)
      if (!loss_finite(a[k]) || !loss_finite(b[k])) {
        note_bad(flag, k);
        break;
      }
    loss[i] = giou_loss_value(a + 4 * i, b + 4 * i, eps);
  }
}

__global__ void giou_backward_kernel(int64_t N, const float* __restrict__ a, const float* __restrict__ b, float eps,
                                     LossGrad<float> dloss, float* __restrict__ da, GradientMode mode_a,
                                     float* __restrict__ db, GradientMode mode_b) {
  for (int64_t i = global_thread(); i < N; i += global_stride()) {
    float ga[4], gb[4];
    giou_loss_grad(a + 4 * i, b + 4 * i, eps, dloss.at(i), ga, gb);
    for (int k = 0; k < 4; ++k) {
      if (mode_a != GradientMode::Ignore) write_grad(da + 4 * i + k, ga[k], mode_a);
      if (mode_b != GradientMode::Ignore) write_grad(db + 4 * i + k, gb[k], mode_b);
    }
  }
}

// ---- host wrappers -------------------------------------------------------------

namespace {
Flag* flag_of(void* workspace) { return static_cast<Flag*>(workspace); }
double* partials_of(void* workspace) { return reinterpret_cast<double*>(static_cast<char*>(workspace) + 64); }

void reset_flag(void* workspace, cudaStream_t stream) {
  DETNAS_CHECK(workspace != nullptr, "loss (cuda): null workspace");
  DETNAS_CUDA_CHECK(cudaMemsetAsync(workspace, 0xFF, sizeof(Flag), stream));
}
int64_t read_flag(void* workspace, cudaStream_t stream) {
  Flag f = 0;
  DETNAS_CUDA_CHECK(cudaMemcpyAsync(&f, workspace, sizeof(Flag), cudaMemcpyDeviceToHost, stream));
  DETNAS_CUDA_CHECK(cudaStreamSynchronize(stream));
  return f == kNoBad ? -1 : int64_t(f);
}
// Sum into partials then into (out_d, out_f).
void two_pass(int64_t n, const float* v, double scale, double* out_d, float* out_f, void* workspace,
              cudaStream_t stream) {
  const cuda_plan::SumPlan p = cuda_plan::sum_plan(n);
  double* partial = partials_of(workspace);
  DETNAS_LAUNCH(loss_sum_partial_kernel, unsigned(p.chunks), cuda_plan::kSumBlock, 0, stream, n, p.chunk, v, partial);
  DETNAS_CUDA_CHECK_LAUNCH("loss_sum_partial_kernel");
  DETNAS_LAUNCH(loss_sum_final_kernel, 1, cuda_plan::kSumBlock, 0, stream, p.chunks, partial, scale, out_d, out_f);
  DETNAS_CUDA_CHECK_LAUNCH("loss_sum_final_kernel");
}
}  // namespace

void loss_sum_to(int64_t n, const float* v, double scale, float* out, void* workspace, cudaStream_t stream) {
  DETNAS_CHECK(workspace != nullptr, "loss_sum (cuda): null workspace");
  two_pass(n, v, scale, nullptr, out, workspace, stream);
}

double loss_sum(int64_t n, const float* v, void* workspace, cudaStream_t stream) {
  DETNAS_CHECK(workspace != nullptr, "loss_sum (cuda): null workspace");
  // The total lands in the flag slot (8 bytes), then is read back.
  double* slot = reinterpret_cast<double*>(workspace);
  two_pass(n, v, 1.0, slot, nullptr, workspace, stream);
  double s = 0;
  DETNAS_CUDA_CHECK(cudaMemcpyAsync(&s, slot, sizeof(double), cudaMemcpyDeviceToHost, stream));
  DETNAS_CUDA_CHECK(cudaStreamSynchronize(stream));
  return s;
}

double sum_squares(int64_t n, const float* v, void* workspace, cudaStream_t stream) {
  DETNAS_CHECK(workspace != nullptr, "sum_squares (cuda): null workspace");
  if (n == 0) return 0.0;
  const cuda_plan::SumPlan p = cuda_plan::sum_plan(n);
  double* partial = partials_of(workspace);
  double* slot = reinterpret_cast<double*>(workspace);
  DETNAS_LAUNCH(sum_squares_partial_kernel, unsigned(p.chunks), cuda_plan::kSumBlock, 0, stream, n, p.chunk, v,
                partial);
  DETNAS_CUDA_CHECK_LAUNCH("sum_squares_partial_kernel");
  DETNAS_LAUNCH(loss_sum_final_kernel, 1, cuda_plan::kSumBlock, 0, stream, p.chunks, partial, 1.0, slot,
                static_cast<float*>(nullptr));
  DETNAS_CUDA_CHECK_LAUNCH("loss_sum_final_kernel");
  double s = 0;
  DETNAS_CUDA_CHECK(cudaMemcpyAsync(&s, slot, sizeof(double), cudaMemcpyDeviceToHost, stream));
  DETNAS_CUDA_CHECK(cudaStreamSynchronize(stream));
  return s;
}

int64_t bce_logits_forward(int64_t n, const float* x, const float* t, const float* w, float* loss, void* workspace,
                           cudaStream_t stream) {
  if (n == 0) return -1;
  reset_flag(workspace, stream);
  DETNAS_LAUNCH(bce_logits_forward_kernel, cuda_plan::grid_1d(n, kBlock), kBlock, 0, stream, n, x, t, w, loss,
                flag_of(workspace));
  DETNAS_CUDA_CHECK_LAUNCH("bce_logits_forward_kernel");
  return read_flag(workspace, stream);
}

void bce_logits_backward(int64_t n, const float* x, const float* t, const float* w, LossGrad<float> dloss, float* dx,
                         GradientMode mode_x, float* dt, GradientMode mode_t, cudaStream_t stream) {
  if (n == 0 || (mode_x == GradientMode::Ignore && mode_t == GradientMode::Ignore)) return;
  DETNAS_LAUNCH(bce_logits_backward_kernel, cuda_plan::grid_1d(n, kBlock), kBlock, 0, stream, n, x, t, w, dloss, dx,
                mode_x, dt, mode_t);
  DETNAS_CUDA_CHECK_LAUNCH("bce_logits_backward_kernel");
}

int64_t sigmoid_focal_forward(int64_t N, int64_t K, const float* x, const float* t, const float* row_w, FocalParams p,
                              float* loss, void* workspace, cudaStream_t stream) {
  if (N * K == 0) return -1;
  reset_flag(workspace, stream);
  DETNAS_LAUNCH(focal_forward_kernel, cuda_plan::grid_1d(N * K, kBlock), kBlock, 0, stream, N, K, x, t, row_w, p.alpha,
                p.gamma, loss, flag_of(workspace));
  DETNAS_CUDA_CHECK_LAUNCH("focal_forward_kernel");
  return read_flag(workspace, stream);
}

void sigmoid_focal_backward(int64_t N, int64_t K, const float* x, const float* t, const float* row_w, FocalParams p,
                            LossGrad<float> dloss, float* dx, GradientMode mode, cudaStream_t stream) {
  if (N * K == 0 || mode == GradientMode::Ignore) return;
  DETNAS_LAUNCH(focal_backward_kernel, cuda_plan::grid_1d(N * K, kBlock), kBlock, 0, stream, N, K, x, t, row_w, p.alpha,
                p.gamma, dloss, dx, mode);
  DETNAS_CUDA_CHECK_LAUNCH("focal_backward_kernel");
}

int64_t smooth_l1_forward(int64_t n, const float* x, const float* t, const float* w, float beta, float* loss,
                          void* workspace, cudaStream_t stream) {
  if (n == 0) return -1;
  reset_flag(workspace, stream);
  DETNAS_LAUNCH(smooth_l1_forward_kernel, cuda_plan::grid_1d(n, kBlock), kBlock, 0, stream, n, x, t, w, beta, loss,
                flag_of(workspace));
  DETNAS_CUDA_CHECK_LAUNCH("smooth_l1_forward_kernel");
  return read_flag(workspace, stream);
}

void smooth_l1_backward(int64_t n, const float* x, const float* t, const float* w, float beta, LossGrad<float> dloss,
                        float* dx, GradientMode mode_x, float* dt, GradientMode mode_t, cudaStream_t stream) {
  if (n == 0 || (mode_x == GradientMode::Ignore && mode_t == GradientMode::Ignore)) return;
  DETNAS_LAUNCH(smooth_l1_backward_kernel, cuda_plan::grid_1d(n, kBlock), kBlock, 0, stream, n, x, t, w, beta, dloss,
                dx, mode_x, dt, mode_t);
  DETNAS_CUDA_CHECK_LAUNCH("smooth_l1_backward_kernel");
}

int64_t softmax_xent_forward(int64_t N, int64_t K, const float* x, const int64_t* labels, float eps, float* loss,
                             float* lse, void* workspace, cudaStream_t stream) {
  if (N == 0) return -1;
  DETNAS_CHECK(K >= 1, "softmax_xent (cuda): K=", K);
  reset_flag(workspace, stream);
  DETNAS_LAUNCH(softmax_xent_forward_kernel, cuda_plan::grid_1d(N, 128), 128, 0, stream, N, K, x, labels, eps, loss,
                lse, flag_of(workspace));
  DETNAS_CUDA_CHECK_LAUNCH("softmax_xent_forward_kernel");
  return read_flag(workspace, stream);
}

void softmax_xent_backward(int64_t N, int64_t K, const float* x, const int64_t* labels, float eps, const float* lse,
                           LossGrad<float> dloss, float* dx, GradientMode mode, cudaStream_t stream) {
  if (N * K == 0 || mode == GradientMode::Ignore) return;
  DETNAS_LAUNCH(softmax_xent_backward_kernel, cuda_plan::grid_1d(N * K, kBlock), kBlock, 0, stream, N, K, x, labels,
                eps, lse, dloss, dx, mode);
  DETNAS_CUDA_CHECK_LAUNCH("softmax_xent_backward_kernel");
}

int64_t giou_loss_forward(int64_t N, const float* a, const float* b, float eps, float* loss, void* workspace,
                          cudaStream_t stream) {
  if (N == 0) return -1;
  reset_flag(workspace, stream);
  DETNAS_LAUNCH(giou_forward_kernel, cuda_plan::grid_1d(N, kBlock), kBlock, 0, stream, N, a, b, eps, loss,
                flag_of(workspace));
  DETNAS_CUDA_CHECK_LAUNCH("giou_forward_kernel");
  return read_flag(workspace, stream);
}

void giou_loss_backward(int64_t N, const float* a, const float* b, float eps, LossGrad<float> dloss, float* da,
                        GradientMode mode_a, float* db, GradientMode mode_b, cudaStream_t stream) {
  if (N == 0 || (mode_a == GradientMode::Ignore && mode_b == GradientMode::Ignore)) return;
  DETNAS_LAUNCH(giou_backward_kernel, cuda_plan::grid_1d(N, kBlock), kBlock, 0, stream, N, a, b, eps, dloss, da, mode_a,
                db, mode_b);
  DETNAS_CUDA_CHECK_LAUNCH("giou_backward_kernel");
}

}  // namespace detnas::kernels::cuda
