// BatchNorm2d op: checks shapes once, picks the statistics and the running-stat
// update factor for the mode, calls the kernels, records the backward.
#include "runtime/ops_norm.h"

#include "runtime/autograd.h"
#include "runtime/ops_cuda.h"

namespace detnas::rt::ops {

namespace k = detnas::kernels::cpu;

namespace {

const char* mode_name(BatchNormMode m) {
  switch (m) {
    case BatchNormMode::Train:
      return "train";
    case BatchNormMode::Eval:
      return "eval";
    case BatchNormMode::Recalibrate:
      return "recalibrate";
  }
  return "?";
}

void check_channel_vector(const Tensor& t, int64_t C, const char* what, const Tensor& x) {
  DETNAS_CHECK(t.defined(), "batch_norm: ", what, " is undefined");
  DETNAS_CHECK(t.shape() == Shape{C}, "batch_norm: ", what, " has shape ", shape_str(t.shape()), ", expected [", C,
               "] for input ", shape_str(x.shape()));
}

// Runs `fn` on contiguous buffers for tensors updated in place; copies back when
// the caller's tensor is a strided view.
template <class F>
void with_contiguous_inout(Tensor& a, Tensor& b, F fn) {
  Tensor ca = a.is_contiguous() ? a : a.clone();
  Tensor cb = b.is_contiguous() ? b : b.clone();
  fn(ca.data(), cb.data());
  if (!ca.same_as(a)) a.copy_from(ca);
  if (!cb.same_as(b)) b.copy_from(cb);
}

}  // namespace

Tensor batch_norm(const Tensor& x_in, const Tensor& gamma_in, const Tensor& beta_in, Tensor& running_mean,
                  Tensor& running_var, BatchNormMode mode, const BatchNormParams& p, int64_t* recal_batches) {
  check_defined("batch_norm", x_in, "input");
  DETNAS_CHECK(x_in.dim() == 4, "batch_norm: expected an (N,C,H,W) input, got shape ", shape_str(x_in.shape()));
  DETNAS_CHECK(x_in.numel() > 0, "batch_norm: empty input ", shape_str(x_in.shape()));
  const int64_t N = x_in.size(0), C = x_in.size(1), HW = x_in.size(2) * x_in.size(3);
  check_channel_vector(gamma_in, C, "weight (gamma)", x_in);
  check_channel_vector(beta_in, C, "bias (beta)", x_in);
  check_channel_vector(running_mean, C, "running_mean", x_in);
  check_channel_vector(running_var, C, "running_var", x_in);
  const bool on_cuda = cuda_ops::on_cuda("batch_norm", {&x_in, &gamma_in, &beta_in, &running_mean, &running_var});
  if (!on_cuda) require_cpu("batch_norm", {&x_in, &gamma_in, &beta_in, &running_mean, &running_var});
  DETNAS_CHECK(p.eps > 0, "batch_norm: eps must be > 0, got ", p.eps);
  if (mode != BatchNormMode::Eval)
    DETNAS_CHECK(N * HW > 1, "batch_norm: ", mode_name(mode),
                 " mode needs more than one value per channel (N*H*W > 1), got input ", shape_str(x_in.shape()));
  double factor = p.momentum;
  if (mode == BatchNormMode::Recalibrate) {
    DETNAS_CHECK(recal_batches != nullptr, "batch_norm: recalibrate mode needs the caller's batch counter");
    DETNAS_CHECK(*recal_batches >= 0, "batch_norm: negative recalibration batch counter ", *recal_batches);
    factor = 1.0 / double(*recal_batches + 1);
  } else if (mode == BatchNormMode::Train) {
    DETNAS_CHECK(p.momentum >= 0 && p.momentum <= 1, "batch_norm: momentum must be in [0, 1], got ", p.momentum);
  }
  if (on_cuda) {  // runtime/ops_cuda.cpp
    Tensor y = cuda_ops::batch_norm(x_in, gamma_in, beta_in, running_mean, running_var, mode, p.eps, factor);
    if (mode == BatchNormMode::Recalibrate) ++*recal_batches;
    return y;
  }

  Tensor x = x_in.contiguous(), gamma = gamma_in.contiguous(), beta = beta_in.contiguous();
  Tensor y = Tensor::empty(x.shape(), x.device());
  Tensor save_mean = Tensor::empty({2, C}, x.device());  // (hi, lo) rows, see kernels/batchnorm.h
  Tensor save_invstd = Tensor::empty({C}, x.device());
  with_contiguous_inout(running_mean, running_var, [&](float* rm, float* rv) {
    if (mode == BatchNormMode::Eval)
      k::batchnorm_forward_eval(N, C, HW, x.data(), gamma.data(), beta.data(), rm, rv, p.eps, y.data(),
                                save_mean.data(), save_invstd.data());
    else
      k::batchnorm_forward_batch(N, C, HW, x.data(), gamma.data(), beta.data(), p.eps, factor, y.data(),
                                 save_mean.data(), save_invstd.data(), rm, rv);
  });
  if (mode == BatchNormMode::Recalibrate) ++*recal_batches;

  if (wants_grad({&x, &gamma, &beta})) {
    record({&y}, [x, gamma, beta, y, save_mean, save_invstd, mode, N, C, HW]() {
      Tensor gy = y.grad();
      if (!gy.defined()) return;
      GradSlot gx = grad_slot(x), gg = grad_slot(gamma), gb = grad_slot(beta);
      k::BatchNormGrads<float> g;
      g.dx = gx.ptr;
      g.dx_mode = gx.mode;
      g.dgamma = gg.ptr;
      g.dgamma_mode = gg.mode;
      g.dbeta = gb.ptr;
      g.dbeta_mode = gb.mode;
      k::batchnorm_backward(N, C, HW, x.data(), gy.data(), gamma.data(), save_mean.data(), save_invstd.data(), mode, g);
    });
  }
  return y;
}

void reset_running_stats(Tensor& running_mean, Tensor& running_var, int64_t* recal_batches) {
  check_defined("reset_running_stats", running_mean, "running_mean");
  check_defined("reset_running_stats", running_var, "running_var");
  check_same_shape("reset_running_stats", running_mean, running_var);
  DETNAS_CHECK(running_mean.dim() == 1, "reset_running_stats: expected (C) running stats, got shape ",
               shape_str(running_mean.shape()));
  if (cuda_ops::on_cuda("reset_running_stats", {&running_mean, &running_var})) {
    // Two (C) vectors: reset host copies with the same kernel, then copy them over.
    Tensor m = Tensor::empty(running_mean.shape()), v = Tensor::empty(running_var.shape());
    k::batchnorm_reset_running(running_mean.size(0), m.data(), v.data());
    running_mean.copy_from(m);
    running_var.copy_from(v);
    if (recal_batches) *recal_batches = 0;
    return;
  }
  require_cpu("reset_running_stats", {&running_mean, &running_var});
  with_contiguous_inout(running_mean, running_var,
                        [&](float* rm, float* rv) { k::batchnorm_reset_running(running_mean.size(0), rm, rv); });
  if (recal_batches) *recal_batches = 0;
}

}  // namespace detnas::rt::ops
