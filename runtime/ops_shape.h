// Autograd-aware data-movement and pooling ops on NCHW tensors: channel shuffle,
// the even/odd channel split, channel concat, max pooling, global average pooling
// and nearest upsampling. Data movement is bit-exact in both directions.
// Not here: the half split (a free view: Tensor::narrow(1, ...)), BatchNorm
// (runtime/ops_norm.h).
#pragma once
#include <cstdint>
#include <utility>
#include <vector>

#include "runtime/tensor.h"

namespace detnas::rt::ops {

// Square max-pool window (torch semantics: padding counts as -inf, output
// floor((H + 2P - K)/S) + 1, needs P <= K/2). Defaults: ShuffleNet/ResNet stem pool.
struct PoolParams {
  int64_t kernel = 3;
  int64_t stride = 2;
  int64_t padding = 1;
};

// x (N,C,H,W) -> (N,C,H,W); output channel c = input channel (c % groups)*(C/groups) + c/groups.
Tensor channel_shuffle(const Tensor& x, int64_t groups);
// x (N,C,H,W), C even -> (x[:, 0::2], x[:, 1::2]), each (N,C/2,H,W).
std::pair<Tensor, Tensor> split_even_odd(const Tensor& x);
// Concatenation along dim 1 of tensors equal in every other dim (rank >= 2).
// Channel slices of a wider tensor (narrow on dim 1) are read in place, no copy.
Tensor concat(const std::vector<Tensor>& xs);
// x (N,C,H,W) -> (N,C,Ho,Wo); the gradient goes to the first maximum of each window.
Tensor max_pool2d(const Tensor& x, const PoolParams& p = {});
// x (N,C,H,W) -> (N,C,1,1) mean over H, W.
Tensor global_avg_pool(const Tensor& x);
// x (N,C,H,W) -> (N,C,Ho,Wo), torch "nearest": src = min(floor(dst * float(in)/float(out)), in-1).
Tensor upsample_nearest(const Tensor& x, int64_t Ho, int64_t Wo);

}  // namespace detnas::rt::ops
