// Autograd-aware BatchNorm2d over NCHW tensors (statistics per channel), with the
// three modes a one-shot supernet needs: Train, Eval, and Recalibrate (re-estimate
// the running statistics of one sampled path as a cumulative average).
// Not here: the module that owns gamma/beta/running stats (nn/), synchronized BN.
#pragma once
#include <cstdint>

#include "kernels/batchnorm.h"
#include "runtime/tensor.h"

namespace detnas::rt::ops {

using kernels::BatchNormMode;

struct BatchNormParams {
  double eps = 1e-5;
  double momentum = 0.1;  // Train mode only; Recalibrate uses 1/k for its k-th batch
};

// x (N,C,H,W), gamma/beta (C) parameters, running_mean/running_var (C) updated in
// place (never given gradients; must be float CPU tensors of shape [C]).
//   Train:       batch mean and biased variance normalise x; running stats
//                <- (1-momentum)*running + momentum*(mean, unbiased variance).
//   Eval:        running stats normalise x; nothing is updated.
//   Recalibrate: batch statistics normalise x; *recal_batches (required, owned by
//                the caller, 0 after reset_running_stats) is incremented to k and
//                running <- (1-1/k)*running + (1/k)*batch stat, i.e. the running
//                stats become the plain average over the k batches since the reset
//                (torch's momentum=None).
// Train and Recalibrate need N*H*W > 1. Backward (when x, gamma or beta require
// grad) goes through the statistics the mode used.
Tensor batch_norm(const Tensor& x, const Tensor& gamma, const Tensor& beta, Tensor& running_mean, Tensor& running_var,
                  BatchNormMode mode, const BatchNormParams& p = {}, int64_t* recal_batches = nullptr);

// running_mean <- 0, running_var <- 1, *recal_batches <- 0 (when given).
void reset_running_stats(Tensor& running_mean, Tensor& running_var, int64_t* recal_batches = nullptr);

}  // namespace detnas::rt::ops
