// Autograd-aware BatchNorm2d over NCHW tensors (statistics per channel), with the
// three modes a one-shot supernet needs: Train, Eval, and Recalibrate (re-estimate
// the running statistics of one sampled path as a cumulative average).
// Synchronized BN (BatchNormParams::sync) computes the batch statistics over
// every rank's batch (runtime/dist.h). Not here: the module that owns
// gamma/beta/running stats (nn/).
#pragma once
#include <cstdint>
#include <utility>

#include "kernels/batchnorm.h"
#include "runtime/tensor.h"

namespace detnas::rt::ops {

using kernels::BatchNormMode;

struct BatchNormParams {
  double eps = 1e-5;
  double momentum = 0.1;  // Train mode only; Recalibrate uses 1/k for its k-th batch
  // Train/Recalibrate: batch statistics over ALL ranks (Eval ignores it). Every
  // rank must call batch_norm (and later its backward) in the same order.
  bool sync = false;
};

// x (N,C,H,W), gamma/beta (C) parameters, running_mean/running_var (C) updated in
// place (never given gradients; shape [C], on x's device).
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
//
// p.sync (Train, Recalibrate): the statistics are those of the union of every
// rank's batch, m = the sum of N*H*W over the ranks (m > 1 needed): each rank
// sums x and x^2 per channel, one allreduce on the device (MPI for CPU tensors,
// NCCL for CUDA ones) adds [sum x, sum x^2, count],
// and mean, biased variance, invstd and the running update (unbiased variance
// over m, or the 1/k average) follow as above from the global values; every rank
// ends with the same running stats. Backward: dgamma = sum(dy*xhat) and dbeta =
// sum(dy) over the LOCAL batch (the trainer adds parameter gradients over the
// ranks), and dx = gamma*invstd*(dy - S1/m - xhat*S2/m) with S1 = sum(dy), S2 =
// sum(dy*xhat) added over the ranks (a second allreduce, skipped when x needs no
// gradient, so every rank must run the same graph). With one rank this is the
// plain op up to float rounding (the variance is sum x^2/m - mean^2 in double;
// kernels/bn_sync.h states its precision).
Tensor batch_norm(const Tensor& x, const Tensor& gamma, const Tensor& beta, Tensor& running_mean, Tensor& running_var,
                  BatchNormMode mode, const BatchNormParams& p = {}, int64_t* recal_batches = nullptr);

// The inference form of conv -> BN (Eval): {w', b'} with conv(x, w', b') =
// batch_norm(conv(x, w, b), Eval) up to float rounding (kernels::batchnorm_fold).
// w (Cout, ...) and the BN vectors (Cout); b may be undefined. No autograd (the
// results are new tensors that never require grad). CPU tensors only (checked):
// callers keep conv -> BN elsewhere.
std::pair<Tensor, Tensor> fold_batch_norm(const Tensor& w, const Tensor& b, const Tensor& gamma, const Tensor& beta,
                                          const Tensor& running_mean, const Tensor& running_var, double eps);

// running_mean <- 0, running_var <- 1, *recal_batches <- 0 (when given).
void reset_running_stats(Tensor& running_mean, Tensor& running_var, int64_t* recal_batches = nullptr);

}  // namespace detnas::rt::ops
