// BatchNorm2d op: checks shapes once, picks the statistics and the running-stat
// update factor for the mode, calls the device's kernels (runtime/backend.h),
// records the backward. The synchronized variant (BatchNormParams::sync) is a
// second body over the kernels of kernels/bn_sync.h with host allreduces between
// them (batch_norm_sync below).
#include "runtime/ops_norm.h"

#include <vector>

#include "core/profile.h"
#include "runtime/autograd.h"
#include "runtime/backend.h"
#include "runtime/dist.h"

namespace detnas::rt::ops {

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
// the caller's tensor is a strided view (on either device).
template <class F>
void with_contiguous_inout(Tensor& a, Tensor& b, F fn) {
  Tensor ca = a.is_contiguous() ? a : a.clone();
  Tensor cb = b.is_contiguous() ? b : b.clone();
  fn(ca.data(), cb.data());
  if (!ca.same_as(a)) a.copy_from(ca);
  if (!cb.same_as(b)) b.copy_from(cb);
}

// The synchronized batch-statistics forward (Train/Recalibrate with p.sync) on
// contiguous x, gamma, beta, and its backward; see ops_norm.h. The kernels sum
// on the tensors' device; the 2C (+1 count) double sums are added over the ranks
// on that device (rt::dist: MPI for CPU tensors, NCCL for CUDA ones; a no-op with
// one rank), then downloaded; the statistics (mean, invstd: C doubles each) and
// the running update are computed on the host and the statistics uploaded for
// the normalisation. The backward keeps those doubles, so it uses exactly the
// forward's statistics, and adds its 2C sums over the ranks on the device.
Tensor batch_norm_sync(const Tensor& x, const Tensor& gamma, const Tensor& beta, Tensor& running_mean,
                       Tensor& running_var, BatchNormMode mode, double eps, double factor, const Kernels& kt) {
  const int64_t N = x.size(0), C = x.size(1), HW = x.size(2) * x.size(3);
  const Device dev = x.device();
  const size_t cb = size_t(C) * sizeof(double);
  // [sum x (C), sum x^2 (C), count] over every rank.
  std::vector<double> sums(size_t(2 * C + 1));
  {
    Workspace local(2 * cb + sizeof(double), dev);
    double* lp = static_cast<double*>(local.ptr());
    kt.bn_sync_forward_sums(N, C, HW, x.data(), lp);
    const double count = double(N * HW);
    kt.upload(lp + 2 * C, &count, sizeof(double));
    dist::allreduce_sum(lp, 2 * C + 1, dev);
    kt.download(sums.data(), lp, 2 * cb + sizeof(double));
  }
  const int64_t m = int64_t(sums[size_t(2 * C)]);
  DETNAS_CHECK(m > 1, "batch_norm: synchronized ", mode_name(mode),
               " mode needs more than one value per channel over all ranks (sum of N*H*W > 1), got ", m, " for input ",
               shape_str(x.shape()), dist::size() > 1 ? " on " + dist::where() : std::string());
  // stats = [mean (C), invstd (C)]; the running stats updated on host copies.
  std::vector<double> stats(size_t(2 * C));
  std::vector<float> rm_h(static_cast<size_t>(C)), rv_h(static_cast<size_t>(C));
  with_contiguous_inout(running_mean, running_var, [&](float* rm, float* rv) {
    kt.download(rm_h.data(), rm, rm_h.size() * sizeof(float));
    kt.download(rv_h.data(), rv, rv_h.size() * sizeof(float));
    for (int64_t c = 0; c < C; ++c) {
      const kernels::BnSyncMoments mv = kernels::bn_sync_moments(sums[size_t(c)], sums[size_t(C + c)], double(m));
      stats[size_t(c)] = mv.mean;
      stats[size_t(C + c)] = kernels::bn_invstd(mv.var, eps);
      kernels::bn_sync_update_running(c, mv.mean, mv.var, m, factor, rm_h.data(), rv_h.data());
    }
    kt.upload(rm, rm_h.data(), rm_h.size() * sizeof(float));
    kt.upload(rv, rv_h.data(), rv_h.size() * sizeof(float));
  });
  Workspace st = upload_array(stats.data(), stats.size(), dev);
  const double* mean = static_cast<const double*>(st.ptr());
  const double* invstd = mean + C;
  Tensor y = Tensor::empty(x.shape(), dev);
  kt.bn_sync_normalize(N, C, HW, x.data(), mean, invstd, gamma.data(), beta.data(), y.data());

  if (wants_grad({&x, &gamma, &beta})) {
    // st (captured) keeps mean/invstd alive.
    record({&y}, [x, gamma, beta, y, st, mean, invstd, m, N, C, HW, &kt]() {
      DETNAS_PROFILE_SCOPE("batch_norm_backward");
      Tensor gy = y.grad();
      if (!gy.defined()) return;
      GradSlot gx = grad_slot(x), gg = grad_slot(gamma), gb = grad_slot(beta);
      // Local [sum dy (C), sum dy*xhat (C)]; dgamma/dbeta are these local sums.
      const size_t bytes = size_t(2 * C) * sizeof(double);
      Workspace ws(bytes, x.device());
      double* s = static_cast<double*>(ws.ptr());
      kt.bn_sync_backward_sums(N, C, HW, x.data(), gy.data(), mean, invstd, s, gg.ptr, gg.mode, gb.ptr, gb.mode);
      if (gx.mode == GradientMode::Ignore) return;
      dist::allreduce_sum(s, 2 * C, x.device());  // the global sums, in place on the device
      kt.bn_sync_backward_input(N, C, HW, x.data(), gy.data(), gamma.data(), mean, invstd, s, m, gx.ptr, gx.mode);
    });
  }
  return y;
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
  const Kernels& kt =
      kernels_for(common_device("batch_norm", {&x_in, &gamma_in, &beta_in, &running_mean, &running_var}));
  DETNAS_CHECK(p.eps > 0, "batch_norm: eps must be > 0, got ", p.eps);
  DETNAS_PROFILE_SCOPE("batch_norm");
  const bool sync = p.sync && mode != BatchNormMode::Eval;
  if (mode != BatchNormMode::Eval && !sync)  // sync: checked on the global count
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

  Tensor x = x_in.contiguous(), gamma = gamma_in.contiguous(), beta = beta_in.contiguous();
  if (sync) {
    Tensor ys = batch_norm_sync(x, gamma, beta, running_mean, running_var, mode, p.eps, factor, kt);
    if (mode == BatchNormMode::Recalibrate) ++*recal_batches;
    return ys;
  }
  Tensor y = Tensor::empty(x.shape(), x.device());
  Tensor save_mean = Tensor::empty({2, C}, x.device());  // (hi, lo) rows, see kernels/batchnorm.h
  Tensor save_invstd = Tensor::empty({C}, x.device());
  with_contiguous_inout(running_mean, running_var, [&](float* rm, float* rv) {
    Workspace ws(kt.batchnorm_workspace_bytes(C), x.device());
    if (mode == BatchNormMode::Eval)
      kt.batchnorm_forward_eval(N, C, HW, x.data(), gamma.data(), beta.data(), rm, rv, p.eps, y.data(),
                                save_mean.data(), save_invstd.data(), ws.ptr());
    else
      kt.batchnorm_forward_batch(N, C, HW, x.data(), gamma.data(), beta.data(), p.eps, factor, y.data(),
                                 save_mean.data(), save_invstd.data(), rm, rv, ws.ptr());
  });
  if (mode == BatchNormMode::Recalibrate) ++*recal_batches;

  if (wants_grad({&x, &gamma, &beta})) {
    record({&y}, [x, gamma, beta, y, save_mean, save_invstd, mode, N, C, HW, &kt]() {
      DETNAS_PROFILE_SCOPE("batch_norm_backward");
      Tensor gy = y.grad();
      if (!gy.defined()) return;
      GradSlot gx = grad_slot(x), gg = grad_slot(gamma), gb = grad_slot(beta);
      kernels::cpu::BatchNormGrads<float> g;
      g.dx = gx.ptr;
      g.dx_mode = gx.mode;
      g.dgamma = gg.ptr;
      g.dgamma_mode = gg.mode;
      g.dbeta = gb.ptr;
      g.dbeta_mode = gb.mode;
      Workspace ws(kt.batchnorm_workspace_bytes(C), x.device());
      kt.batchnorm_backward(N, C, HW, x.data(), gy.data(), gamma.data(), save_mean.data(), save_invstd.data(), mode, g,
                            ws.ptr());
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
  const Kernels& kt = kernels_for(common_device("reset_running_stats", {&running_mean, &running_var}));
  with_contiguous_inout(running_mean, running_var,
                        [&](float* rm, float* rv) { kt.batchnorm_reset_running(running_mean.size(0), rm, rv); });
  if (recal_batches) *recal_batches = 0;
}

std::pair<Tensor, Tensor> fold_batch_norm(const Tensor& w_in, const Tensor& b_in, const Tensor& gamma_in,
                                          const Tensor& beta_in, const Tensor& running_mean_in,
                                          const Tensor& running_var_in, double eps) {
  check_defined("fold_batch_norm", w_in, "weight");
  DETNAS_CHECK(w_in.dim() >= 1 && w_in.numel() > 0, "fold_batch_norm: empty weight ", shape_str(w_in.shape()));
  const int64_t C = w_in.size(0);
  const Device dev =
      common_device("fold_batch_norm", {&w_in, &b_in, &gamma_in, &beta_in, &running_mean_in, &running_var_in});
  DETNAS_CHECK(dev == Device::CPU, "fold_batch_norm: CPU tensors only, got ", device_name(dev));
  DETNAS_CHECK(eps > 0, "fold_batch_norm: eps must be > 0, got ", eps);
  for (const Tensor* t : {&gamma_in, &beta_in, &running_mean_in, &running_var_in})
    check_channel_vector(*t, C, "a BN vector", w_in);
  if (b_in.defined()) check_channel_vector(b_in, C, "the conv bias", w_in);
  const Tensor w = w_in.contiguous(), gamma = gamma_in.contiguous(), beta = beta_in.contiguous();
  const Tensor rm = running_mean_in.contiguous(), rv = running_var_in.contiguous();
  const Tensor b = b_in.defined() ? b_in.contiguous() : Tensor();
  Tensor w_out = Tensor::empty(w.shape(), dev), b_out = Tensor::empty({C}, dev);
  kernels::cpu::batchnorm_fold<float>(C, w.numel() / C, w.data(), b.defined() ? b.data() : nullptr, gamma.data(),
                                      beta.data(), rm.data(), rv.data(), eps, w_out.data(), b_out.data());
  return {w_out, b_out};
}

}  // namespace detnas::rt::ops
