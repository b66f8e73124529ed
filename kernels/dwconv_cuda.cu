// CUDA depthwise conv kernels over the shared math of kernels/dwconv.h:
//  - dwconv_tile_kernel: one block per (output tile, plane); the input tile with
//    its halo (zeros outside the plane) and the channel's K*K taps (optionally
//    flipped: dwconv_flipped_tap) are staged in dynamic shared memory, then each
//    thread computes one output with dwconv_output_value on the tile (padding 0,
//    so every tap is summed in the CPU's (kh, kw) order; padded taps add exact
//    zeros). Serves the forward and the stride-1 input gradient (dy correlated
//    with the flipped kernel, dwconv_input_grad_corr_shape).
//  - dwconv_input_grad_kernel: direct gather per dx element (other strides):
//    dwconv_input_grad_value, taps in ascending (kh, kw) order.
//  - dwconv_weight_grad_kernel: one block per (channel, tap), the terms
//    dwconv_weight_grad_term of the valid taps (dwconv_tap_input) summed in double
//    in a fixed order (deterministic), one write per weight.
// Not here: launch planning (kernels/dwconv_cuda.h, host code).
#include "kernels/cuda_check.h"
#include "kernels/cuda_reduce.cuh"
#include "kernels/dwconv.h"
#include "kernels/dwconv_cuda.h"
#include "kernels/launch.h"

namespace detnas::kernels::cuda {

// s: input geometry (x planes s.H x s.W, batch stride s.x_batch_stride), output
// (N,C,s.Ho(),s.Wo()) contiguous. flip: use w[K*K-1-i] as tap i. b may be null.
__global__ void dwconv_tile_kernel(DwconvShape s, const float* __restrict__ x, const float* __restrict__ w,
                                   const float* __restrict__ b, int flip, float* __restrict__ y, GradientMode mode,
                                   int in_w, int in_h, int tiles_w) {
  extern __shared__ float dw_smem[];
  float* tile = dw_smem;
  float* taps = dw_smem + in_w * in_h;
  const int K = int(s.K), S = int(s.S), KK = K * K;
  const int64_t Ho = s.Ho(), Wo = s.Wo(), NC = s.N * s.C;
  const int tid = int(threadIdx.y * blockDim.x + threadIdx.x), nthreads = int(blockDim.x * blockDim.y);
  const int64_t oh0 = int64_t(blockIdx.x / tiles_w) * blockDim.y, ow0 = int64_t(blockIdx.x % tiles_w) * blockDim.x;
  const int64_t ih0 = oh0 * S - s.P, iw0 = ow0 * S - s.P;
  DwconvShape ts;  // the tile as a plane with no padding: every tap lands inside it
  ts.N = 1, ts.C = 1, ts.H = in_h, ts.W = in_w, ts.K = K, ts.S = S, ts.P = 0, ts.x_batch_stride = 0;
  for (int64_t nc = blockIdx.y; nc < NC; nc += gridDim.y) {
    const int64_t n = nc / s.C, c = nc % s.C;
    const float* xc = x + n * s.x_batch_stride + c * s.H * s.W;
    __syncthreads();  // the previous plane's tile is no longer read
    for (int i = tid; i < in_w * in_h; i += nthreads) {
      const int64_t ih = ih0 + i / in_w, iw = iw0 + i % in_w;
      tile[i] = (ih >= 0 && ih < s.H && iw >= 0 && iw < s.W) ? xc[ih * s.W + iw] : 0.0f;
    }
    for (int i = tid; i < KK; i += nthreads) taps[i] = w[c * KK + (flip ? dwconv_flipped_tap(i, K) : i)];
    __syncthreads();
    const int64_t oh = oh0 + threadIdx.y, ow = ow0 + threadIdx.x;
    if (oh < Ho && ow < Wo) {
      const float v = dwconv_output_value(tile, taps, b ? b[c] : 0.0f, ts, int64_t(threadIdx.y), int64_t(threadIdx.x));
      write_grad(y + nc * Ho * Wo + oh * Wo + ow, v, mode);
    }
  }
}

// dx (N,C,H,W) contiguous = or += dwconv_input_grad_value per element.
__global__ void dwconv_input_grad_kernel(DwconvShape s, const float* __restrict__ w, const float* __restrict__ dy,
                                         float* __restrict__ dx, GradientMode mode) {
  const int64_t HW = s.H * s.W, total = s.N * s.C * HW, HoWo = s.Ho() * s.Wo();
  for (int64_t i = global_thread(); i < total; i += global_stride()) {
    const int64_t nc = i / HW, r = i % HW, c = nc % s.C;
    const float v = dwconv_input_grad_value(dy + nc * HoWo, w + c * s.K * s.K, s, r / s.W, r % s.W);
    write_grad(dx + i, v, mode);
  }
}

// dw[c][kh][kw] = or += sum over (n, oh, ow) of dy * x at the tap (valid taps only).
__global__ void __launch_bounds__(cuda_plan::kDwWeightBlock)
    dwconv_weight_grad_kernel(DwconvShape s, const float* __restrict__ x, const float* __restrict__ dy,
                              float* __restrict__ dw, GradientMode mode) {
  __shared__ double red[cuda_plan::kDwWeightBlock];
  const int64_t KK = s.K * s.K, c = blockIdx.x / KK, tap = blockIdx.x % KK, kh = tap / s.K, kw = tap % s.K;
  const int64_t Ho = s.Ho(), Wo = s.Wo(), HoWo = Ho * Wo, total = s.N * HoWo;
  double acc = 0;
  for (int64_t e = threadIdx.x; e < total; e += blockDim.x) {
    const int64_t n = e / HoWo, r = e % HoWo, oh = r / Wo, ow = r % Wo;
    const int64_t ih = dwconv_tap_input(oh, kh, s.S, s.P, s.H), iw = dwconv_tap_input(ow, kw, s.S, s.P, s.W);
    if (ih < 0 || iw < 0) continue;
    const float term =
        dwconv_weight_grad_term(dy[(n * s.C + c) * HoWo + r], x[n * s.x_batch_stride + (c * s.H + ih) * s.W + iw]);
    acc += double(term);
  }
  const double total_sum = block_sum<cuda_plan::kDwWeightBlock>(acc, red);
  if (threadIdx.x == 0) write_grad(dw + blockIdx.x, float(total_sum), mode);
}

namespace {
void launch_tile(const DwconvShape& s, const float* x, const float* w, const float* b, bool flip, float* y,
                 GradientMode mode, cudaStream_t stream) {
  const cuda_plan::DwTilePlan p = cuda_plan::dw_tile_plan(s.N * s.C, s.Ho(), s.Wo(), s.K, s.S);
  DETNAS_LAUNCH(dwconv_tile_kernel, dim3(p.grid_x, p.grid_y), dim3(p.tile_w, p.tile_h), p.shmem, stream, s, x, w, b,
                flip ? 1 : 0, y, mode, p.in_w, p.in_h, p.tiles_w);
  DETNAS_CUDA_CHECK_LAUNCH("dwconv_tile_kernel");
}
}  // namespace

void dwconv_forward(const DwconvShape& s, const float* x, const float* w, const float* b, float* y,
                    cudaStream_t stream) {
  if (s.N * s.C == 0) return;
  launch_tile(s, x, w, b, false, y, GradientMode::Overwrite, stream);
}

void dwconv_backward_input(const DwconvShape& s, const float* w, const float* dy, float* dx, GradientMode mode,
                           cudaStream_t stream) {
  if (mode == GradientMode::Ignore || s.N * s.C * s.H * s.W == 0) return;
  if (cuda_plan::dw_input_grad_as_corr(s)) {
    launch_tile(cuda_plan::dw_input_grad_corr_shape(s), dy, w, nullptr, true, dx, mode, stream);
    return;
  }
  constexpr int kBlock = 256;
  DETNAS_LAUNCH(dwconv_input_grad_kernel, cuda_plan::grid_1d(s.N * s.C * s.H * s.W, kBlock), kBlock, 0, stream, s, w,
                dy, dx, mode);
  DETNAS_CUDA_CHECK_LAUNCH("dwconv_input_grad_kernel");
}

void dwconv_backward_weight(const DwconvShape& s, const float* x, const float* dy, float* dw, GradientMode mode,
                            cudaStream_t stream) {
  if (mode == GradientMode::Ignore || s.C == 0) return;
  DETNAS_LAUNCH(dwconv_weight_grad_kernel, cuda_plan::dw_weight_grid(s.C, s.K), cuda_plan::kDwWeightBlock, 0, stream, s,
                x, dy, dw, mode);
  DETNAS_CUDA_CHECK_LAUNCH("dwconv_weight_grad_kernel");
}

}  // namespace detnas::kernels::cuda
