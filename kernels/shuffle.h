// Channel data movement for ShuffleNetV2-style blocks: channel shuffle (groups G),
// the even/odd channel split, and concatenation along channels. All are exact
// copies of whole (H*W) planes; the channel index maps below define them, for the
// CPU kernels (kernels/shuffle_cpu.cpp) and the CUDA kernels (kernels/shuffle_cuda.cu).
// Not here: the half split, which is a free view (Tensor::narrow on dim 1).
#pragma once
#include <cstdint>

#include "kernels/common.h"

namespace detnas::kernels {

// Channel shuffle: output channel c reads input channel (c % G) * (C / G) + c / G
// (view (N,G,C/G,H,W), transpose dims 1 and 2, flatten). Requires C % G == 0.
DETNAS_HD int64_t shuffle_src_channel(int64_t c, int64_t C, int64_t G) { return (c % G) * (C / G) + c / G; }

// Its inverse permutation is again a channel shuffle, with C / G groups:
// shuffle_src_channel(shuffle_src_channel(c, C, G), C, shuffle_inverse_groups(C, G)) == c,
// so the backward dx[:, k] = dy[:, shuffle_src_channel(k, C, C / G)] is a gather.
DETNAS_HD int64_t shuffle_inverse_groups(int64_t C, int64_t G) { return C / G; }

// Even/odd split: half h (0 = even, 1 = odd), channel k of that half reads input
// channel 2k + h. Requires C even.
DETNAS_HD int64_t even_odd_src_channel(int64_t k, int64_t half) { return 2 * k + half; }

namespace cpu {

// x (N,C,HW)  y (N,C,HW) =   y[:, c] = x[:, shuffle_src_channel(c)]
template <typename T>
void channel_shuffle_forward(int64_t N, int64_t C, int64_t HW, int64_t G, const T* x, T* y);
// dy (N,C,HW)  dx (N,C,HW) = or +=   dx[:, shuffle_src_channel(c)] = dy[:, c]
template <typename T>
void channel_shuffle_backward_input(int64_t N, int64_t C, int64_t HW, int64_t G, const T* dy, T* dx, GradientMode mode);

// x (N,C,HW)  even (N,C/2,HW) =  odd (N,C/2,HW) =
template <typename T>
void split_even_odd_forward(int64_t N, int64_t C, int64_t HW, const T* x, T* even, T* odd);
// d_even, d_odd (N,C/2,HW) (either may be null: a zero gradient)  dx (N,C,HW) = or +=
template <typename T>
void split_even_odd_backward_input(int64_t N, int64_t C, int64_t HW, const T* d_even, const T* d_odd, T* dx,
                                   GradientMode mode);

// One input of a channel concatenation:
// x (N,Ci,HW), sample n at x + n*x_stride_n (Ci*HW when contiguous; larger for a
// channel slice of a wider tensor, e.g. the pass-through half of a block)
// y (N,Ctot,HW) = at channels [c_offset, c_offset + Ci)
template <typename T>
void concat_forward(int64_t N, int64_t Ci, int64_t Ctot, int64_t HW, int64_t c_offset, const T* x, int64_t x_stride_n,
                    T* y);
// dy (N,Ctot,HW)  dx (N,Ci,HW) = or += dy[:, c_offset : c_offset + Ci]
template <typename T>
void concat_backward_input(int64_t N, int64_t Ci, int64_t Ctot, int64_t HW, int64_t c_offset, const T* dy, T* dx,
                           GradientMode mode);

}  // namespace cpu
}  // namespace detnas::kernels
