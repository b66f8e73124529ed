// CUDA channel data movement over the channel maps of kernels/shuffle.h
// (shuffle_src_channel, even_odd_src_channel): grid-stride loops, one element per
// iteration; the concat runs move float4s when aligned. The shuffle backward is a
// shuffle with shuffle_inverse_groups(C, G) = C/G groups (the inverse
// permutation), written as a gather.
#include "kernels/cuda_check.h"
#include "kernels/cuda_reduce.cuh"
#include "kernels/launch.h"
#include "kernels/shuffle.h"
#include "kernels/shuffle_cuda.h"

namespace detnas::kernels::cuda {

constexpr int kBlock = 256;

// y[n][c] = or += x[n][shuffle_src_channel(c, C, G)] (planes of HW).
__global__ void channel_shuffle_kernel(int64_t N, int64_t C, int64_t HW, int64_t G, const float* __restrict__ x,
                                       float* __restrict__ y, GradientMode mode) {
  const int64_t total = N * C * HW;
  for (int64_t i = global_thread(); i < total; i += global_stride()) {
    const int64_t p = i % HW, nc = i / HW, c = nc % C, n = nc / C;
    write_grad(y + i, x[(n * C + shuffle_src_channel(c, C, G)) * HW + p], mode);
  }
}

// even/odd (N,C/2,HW) = x[:, even_odd_src_channel(k, 0/1)].
__global__ void split_even_odd_kernel(int64_t N, int64_t C, int64_t HW, const float* __restrict__ x,
                                      float* __restrict__ even, float* __restrict__ odd) {
  const int64_t Ch = C / 2, total = N * Ch * HW;
  for (int64_t i = global_thread(); i < total; i += global_stride()) {
    const int64_t p = i % HW, nk = i / HW, k = nk % Ch, n = nk / Ch;
    even[i] = x[(n * C + even_odd_src_channel(k, 0)) * HW + p];
    odd[i] = x[(n * C + even_odd_src_channel(k, 1)) * HW + p];
  }
}

// dx (N,C,HW) = or += the halves scattered back through even_odd_src_channel (a
// null half is a zero gradient). One thread per (n, k, p) writes both channels.
__global__ void split_even_odd_backward_kernel(int64_t N, int64_t C, int64_t HW, const float* __restrict__ d_even,
                                               const float* __restrict__ d_odd, float* __restrict__ dx,
                                               GradientMode mode) {
  const int64_t Ch = C / 2, total = N * Ch * HW;
  for (int64_t i = global_thread(); i < total; i += global_stride()) {
    const int64_t p = i % HW, nk = i / HW, k = nk % Ch, n = nk / Ch;
    for (int64_t half = 0; half < 2; ++half) {
      const float* src = half == 0 ? d_even : d_odd;
      float* dst = dx + (n * C + even_odd_src_channel(k, half)) * HW + p;
      if (src)
        write_grad(dst, src[i], mode);
      else if (mode == GradientMode::Overwrite)
        *dst = 0.0f;
    }
  }
}

// dst[n*dst_stride + j] = or += src[n*src_stride + j], j < L (N rows).
__global__ void copy_rows_kernel(int64_t N, int64_t L, const float* __restrict__ src, int64_t src_stride,
                                 float* __restrict__ dst, int64_t dst_stride, GradientMode mode) {
  const int64_t total = N * L;
  for (int64_t i = global_thread(); i < total; i += global_stride()) {
    const int64_t n = i / L, j = i % L;
    write_grad(dst + n * dst_stride + j, src[n * src_stride + j], mode);
  }
}

// The same in float4 units: L4 = L/4, strides in float4s.
__global__ void copy_rows_vec4_kernel(int64_t N, int64_t L4, const float4* __restrict__ src, int64_t src_stride4,
                                      float4* __restrict__ dst, int64_t dst_stride4, GradientMode mode) {
  const int64_t total = N * L4;
  for (int64_t i = global_thread(); i < total; i += global_stride()) {
    const int64_t n = i / L4, j = i % L4;
    const float4 v = src[n * src_stride4 + j];
    float4* d = dst + n * dst_stride4 + j;
    if (mode == GradientMode::Accumulate) {
      float4 o = *d;
      o.x += v.x, o.y += v.y, o.z += v.z, o.w += v.w;
      *d = o;
    } else {
      *d = v;
    }
  }
}

namespace {
void copy_rows(int64_t N, int64_t L, const float* src, int64_t src_stride, float* dst, int64_t dst_stride,
               GradientMode mode, cudaStream_t stream) {
  if (N * L == 0 || mode == GradientMode::Ignore) return;
  if (cuda_plan::rows_vec4(src, src_stride, dst, dst_stride, L)) {
    DETNAS_LAUNCH(copy_rows_vec4_kernel, cuda_plan::grid_1d(N * L / 4, kBlock), kBlock, 0, stream, N, L / 4,
                  reinterpret_cast<const float4*>(src), src_stride / 4, reinterpret_cast<float4*>(dst), dst_stride / 4,
                  mode);
    DETNAS_CUDA_CHECK_LAUNCH("copy_rows_vec4_kernel");
    return;
  }
  DETNAS_LAUNCH(copy_rows_kernel, cuda_plan::grid_1d(N * L, kBlock), kBlock, 0, stream, N, L, src, src_stride, dst,
                dst_stride, mode);
  DETNAS_CUDA_CHECK_LAUNCH("copy_rows_kernel");
}
}  // namespace

void channel_shuffle_forward(int64_t N, int64_t C, int64_t HW, int64_t G, const float* x, float* y,
                             cudaStream_t stream) {
  DETNAS_CHECK(G > 0 && C % G == 0, "channel_shuffle (cuda): C=", C, " not divisible by groups ", G);
  if (N * C * HW == 0) return;
  DETNAS_LAUNCH(channel_shuffle_kernel, cuda_plan::grid_1d(N * C * HW, kBlock), kBlock, 0, stream, N, C, HW, G, x, y,
                GradientMode::Overwrite);
  DETNAS_CUDA_CHECK_LAUNCH("channel_shuffle_kernel");
}

void channel_shuffle_backward_input(int64_t N, int64_t C, int64_t HW, int64_t G, const float* dy, float* dx,
                                    GradientMode mode, cudaStream_t stream) {
  DETNAS_CHECK(G > 0 && C % G == 0, "channel_shuffle (cuda): C=", C, " not divisible by groups ", G);
  if (N * C * HW == 0 || mode == GradientMode::Ignore) return;
  DETNAS_LAUNCH(channel_shuffle_kernel, cuda_plan::grid_1d(N * C * HW, kBlock), kBlock, 0, stream, N, C, HW,
                shuffle_inverse_groups(C, G), dy, dx, mode);
  DETNAS_CUDA_CHECK_LAUNCH("channel_shuffle_kernel");
}

void split_even_odd_forward(int64_t N, int64_t C, int64_t HW, const float* x, float* even, float* odd,
                            cudaStream_t stream) {
  DETNAS_CHECK(C % 2 == 0, "split_even_odd (cuda): odd channel count ", C);
  if (N * C * HW == 0) return;
  DETNAS_LAUNCH(split_even_odd_kernel, cuda_plan::grid_1d(N * C / 2 * HW, kBlock), kBlock, 0, stream, N, C, HW, x, even,
                odd);
  DETNAS_CUDA_CHECK_LAUNCH("split_even_odd_kernel");
}

void split_even_odd_backward_input(int64_t N, int64_t C, int64_t HW, const float* d_even, const float* d_odd, float* dx,
                                   GradientMode mode, cudaStream_t stream) {
  DETNAS_CHECK(C % 2 == 0, "split_even_odd (cuda): odd channel count ", C);
  if (N * C * HW == 0 || mode == GradientMode::Ignore) return;
  DETNAS_LAUNCH(split_even_odd_backward_kernel, cuda_plan::grid_1d(N * C / 2 * HW, kBlock), kBlock, 0, stream, N, C, HW,
                d_even, d_odd, dx, mode);
  DETNAS_CUDA_CHECK_LAUNCH("split_even_odd_backward_kernel");
}

void concat_forward(int64_t N, int64_t Ci, int64_t Ctot, int64_t HW, int64_t c_offset, const float* x,
                    int64_t x_stride_n, float* y, cudaStream_t stream) {
  copy_rows(N, Ci * HW, x, x_stride_n, y + c_offset * HW, Ctot * HW, GradientMode::Overwrite, stream);
}

void concat_backward_input(int64_t N, int64_t Ci, int64_t Ctot, int64_t HW, int64_t c_offset, const float* dy,
                           float* dx, GradientMode mode, cudaStream_t stream) {
  copy_rows(N, Ci * HW, dy + c_offset * HW, Ctot * HW, dx, Ci * HW, mode, stream);
}

}  // namespace detnas::kernels::cuda
