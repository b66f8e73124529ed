// CUDA depthwise conv (twin of kernels/dwconv.h, float only): launch plans as
// plain host functions (unit-tested on the CPU) and the host wrappers, which take
// device pointers and a stream. Forward and the stride-1 input gradient run one
// shared-memory tile kernel (input tile + halo and the channel's taps in shared
// memory; each thread calls dwconv_output_value on the tile); the input gradient
// at other strides is a direct gather (dwconv_input_grad_value); the weight
// gradient is one block per (channel, tap) summing dwconv_weight_grad_term over
// the valid taps (dwconv_tap_input) in double with a fixed-order reduction
// (deterministic). Not here: dense convs (cuDNN, kernels/conv2d_cudnn.cu).
#pragma once
#include <cstddef>
#include <cstdint>

#include "kernels/common.h"
#include "kernels/cuda_plan.h"
#include "kernels/dwconv.h"

typedef struct CUstream_st* cudaStream_t;

namespace detnas::kernels::cuda_plan {

// Shared-memory tile plan of one plane correlation: input (Hin, Win), kernel K,
// stride S, output (Hout, Wout), NC planes. Block (tile_w, tile_h) threads, one
// output each; the input tile is in_h x in_w (tile + halo, zeros outside the plane).
struct DwTilePlan {
  int tile_w = 0, tile_h = 0;  // block dims
  int in_w = 0, in_h = 0;      // shared input tile
  int tiles_w = 0;             // tiles along the output width
  unsigned grid_x = 0;         // tiles_w * tiles_h
  unsigned grid_y = 0;         // planes (capped; the kernel strides over the rest)
  size_t shmem = 0;            // bytes: tile + K*K taps
};

inline DwTilePlan dw_tile_plan(int64_t NC, int64_t Hout, int64_t Wout, int64_t K, int64_t S) {
  DETNAS_CHECK(NC >= 1 && Hout >= 1 && Wout >= 1 && K >= 1 && S >= 1, "dwconv (cuda): bad tile geometry NC=", NC,
               " out=", Hout, "x", Wout, " K=", K, " S=", S);
  DETNAS_CHECK(fits_int32(Hout * S + K) && fits_int32(Wout * S + K), "dwconv (cuda): plane ", Hout, "x", Wout,
               " too large for 32-bit tile indexing");
  DwTilePlan p;
  p.tile_w = Wout >= 32 ? 32 : (Wout >= 16 ? 16 : 8);
  int th = 1;
  while (th < Hout && th * p.tile_w < 256) th *= 2;
  p.tile_h = th;
  p.in_w = int((p.tile_w - 1) * S + K);
  p.in_h = int((p.tile_h - 1) * S + K);
  p.shmem = size_t(int64_t(p.in_w) * p.in_h + K * K) * sizeof(float);
  DETNAS_CHECK(int64_t(p.shmem) <= kMaxStaticShared, "dwconv (cuda): K=", K, " S=", S, " needs ", p.shmem,
               " bytes of shared memory per block (max ", kMaxStaticShared, ")");
  const int64_t tw = (Wout + p.tile_w - 1) / p.tile_w, tiles_h = (Hout + p.tile_h - 1) / p.tile_h;
  DETNAS_CHECK(tw * tiles_h <= kMaxGridX, "dwconv (cuda): ", tw * tiles_h, " tiles exceed the grid limit");
  p.tiles_w = int(tw);
  p.grid_x = unsigned(tw * tiles_h);
  p.grid_y = grid_yz(NC);
  return p;
}

// Weight gradient: one block of kDwWeightBlock threads per (channel, tap).
constexpr int kDwWeightBlock = 256;
inline unsigned dw_weight_grid(int64_t C, int64_t K) {
  DETNAS_CHECK(C * K * K <= kMaxGridX, "dwconv (cuda): C*K*K = ", C * K * K, " blocks exceed the grid limit");
  return unsigned(C * K * K);
}

// Whether the input gradient runs as the tiled correlation of dy with the flipped
// kernel (dwconv_input_grad_as_corr: stride 1, P <= K-1); otherwise as the direct
// gather.
inline bool dw_input_grad_as_corr(const DwconvShape& s) { return dwconv_input_grad_as_corr(s); }
// The correlation shape of that path (dwconv_input_grad_corr_shape): dy planes as
// input, padding K-1-P, output H x W.
inline DwconvShape dw_input_grad_corr_shape(const DwconvShape& s) { return dwconv_input_grad_corr_shape(s); }

}  // namespace detnas::kernels::cuda_plan

namespace detnas::kernels::cuda {
// Same contracts as kernels::cpu::dwconv_* (kernels/dwconv.h), float, device pointers.
void dwconv_forward(const DwconvShape& s, const float* x, const float* w, const float* b, float* y,
                    cudaStream_t stream);
void dwconv_backward_input(const DwconvShape& s, const float* w, const float* dy, float* dx, GradientMode mode,
                           cudaStream_t stream);
void dwconv_backward_weight(const DwconvShape& s, const float* x, const float* dy, float* dw, GradientMode mode,
                            cudaStream_t stream);
}  // namespace detnas::kernels::cuda
