// Bench entries for the CUDA kernels (`bench --cuda`): the same shapes as the
// CPU entries, named "cuda/<cpu entry name>". Each entry uploads the same
// deterministic inputs, runs the CUDA kernel (hand-written, or the cuDNN conv /
// cuBLAS linear wrapper; fpn/fc6 has no CPU twin entry), copies the outputs back and compares every sampled element
// with the CPU kernel on the host inputs (the CPU kernels are themselves
// validated against plain references by the CPU entries and the tests) before
// it is timed with CUDA events (harness time_cuda).
// Tolerances: data movement and elementwise kernels must match exactly or to
// Tol::elementwise; a sum of K products of inputs in [-1, 1] may differ by the
// rounding of two float32 summation orders, bounded by 2 x Tol::reduction(K, K).
// Built only with CUDA; in a build without it there are no cuda entries.
// Not here: the kernels, the CPU entries (bench/entries_*.cpp), timing (harness).
#include "bench/harness.h"

#ifdef DETNAS_CUDA
#include <algorithm>
#include <cmath>
#include <limits>
#include <memory>

#include "bench/shapes.h"
#include "kernels/batchnorm.h"
#include "kernels/batchnorm_cuda.h"
#include "kernels/box_ops.h"
#include "kernels/box_ops_cuda.h"
#include "kernels/conv2d.h"
#include "kernels/conv2d_cudnn.h"
#include "kernels/dwconv.h"
#include "kernels/dwconv_cuda.h"
#include "kernels/elementwise.h"
#include "kernels/elementwise_cuda.h"
#include "kernels/gemm_cublas.h"
#include "kernels/loss.h"
#include "kernels/loss_cuda.h"
#include "kernels/pool.h"
#include "kernels/pool_cuda.h"
#include "kernels/roi_align.h"
#include "kernels/roi_align_cuda.h"
#include "kernels/sgd.h"
#include "kernels/sgd_cuda.h"
#include "kernels/shuffle.h"
#include "kernels/shuffle_cuda.h"
#include "kernels/upsample.h"
#include "runtime/device_allocator.h"
#endif

namespace detnas::bench {

#ifndef DETNAS_CUDA
void register_cuda_entries(Registry&) {}
#else
namespace {

namespace kc = kernels::cuda;
namespace kh = kernels::cpu;
using Ptrs = std::vector<float*>;
using Fn = std::function<void(const Ptrs& in, const Ptrs& out)>;

struct In {
  int64_t n;
  float lo = -1.f, hi = 1.f;
};

// A device scratch buffer from the caching allocator, released at scope exit.
struct DevScratch {
  void* p = nullptr;
  explicit DevScratch(size_t bytes) : p(bytes ? rt::device_allocator().allocate(bytes) : nullptr) {}
  ~DevScratch() {
    if (p) rt::device_allocator().release(p);
  }
  DevScratch(const DevScratch&) = delete;
  DevScratch& operator=(const DevScratch&) = delete;
};

// One CUDA kernel against its CPU twin on the same inputs. Outputs start as NaN
// on both devices, so an element the kernel does not write fails the check.
// prep (optional) rewrites the host inputs before the upload (structured inputs:
// targets, boxes, saved statistics); out_init is the outputs' starting value.
struct Extra {
  std::function<void(std::vector<rt::Tensor>& host_inputs)> prep;
  float out_init = std::numeric_limits<float>::quiet_NaN();
};

Case paired(const std::vector<In>& ins, const std::vector<int64_t>& outs, Fn cpu, Fn gpu, Tol tol, double bytes,
            double flops = 0, const Extra& x = {}) {
  struct Bufs {
    std::vector<rt::Tensor> hin, din, hout, dout;
    Ptrs hin_p, din_p, hout_p, dout_p;
  };
  auto B = std::make_shared<Bufs>();
  for (size_t i = 0; i < ins.size(); ++i) B->hin.push_back(uniform_buffer(ins[i].n, 900 + i, ins[i].lo, ins[i].hi));
  if (x.prep) x.prep(B->hin);
  for (auto& t : B->hin) B->din.push_back(t.to(rt::Device::CUDA));
  for (int64_t n : outs) {
    B->hout.push_back(rt::Tensor::full({n}, x.out_init));
    B->dout.push_back(B->hout.back().to(rt::Device::CUDA));
  }
  for (auto& t : B->hin) B->hin_p.push_back(t.data());
  for (auto& t : B->din) B->din_p.push_back(t.data());
  for (auto& t : B->hout) B->hout_p.push_back(t.data());
  for (auto& t : B->dout) B->dout_p.push_back(t.data());
  Case c;
  c.run = [B, gpu] { gpu(B->din_p, B->dout_p); };
  c.validate = [B, cpu, gpu, tol](Checker& chk) {
    gpu(B->din_p, B->dout_p);
    cpu(B->hin_p, B->hout_p);
    for (size_t k = 0; k < B->dout.size(); ++k) {
      const rt::Tensor got = B->dout[k].to(rt::Device::CPU);
      const int64_t n = got.numel();
      const std::string what = "output " + std::to_string(k);
      for (int64_t i : sample_indices(n, 200000, 7 + k))
        chk.expect(what.c_str(), {n}, i, got.data()[i], B->hout[k].data()[i], tol);
    }
  };
  c.bytes = bytes;
  c.flops = flops;
  return c;
}

// Two float32 sums of K terms, each term at most `mag` in magnitude.
Tol sum_tol(int64_t K, double mag = 1) {
  Tol t = Tol::reduction(K, mag * double(K));
  t.atol *= 2;
  t.rtol = std::max(t.rtol, 1e-5);
  return t;
}

Entry entry(const std::string& name, const std::string& op, const std::string& shape, std::function<Case()> make,
            bool in_default = true) {
  Entry e;
  e.name = "cuda/" + name;
  e.op = op;
  e.shape = shape;
  e.in_default = in_default;
  e.cuda = true;
  e.make = std::move(make);
  return e;
}

std::string nchw(int64_t N, int64_t C, int64_t H, int64_t W) {
  return std::to_string(N) + "x" + std::to_string(C) + "x" + std::to_string(H) + "x" + std::to_string(W);
}

// ---- convolutions ---------------------------------------------------------------

enum class Pass { Fwd, BwdIn, BwdW };

Case dwconv_case(kernels::DwconvShape s, Pass pass) {
  s.x_batch_stride = s.C * s.H * s.W;
  const int64_t xn = s.N * s.C * s.H * s.W, wn = s.C * s.K * s.K, yn = s.N * s.C * s.Ho() * s.Wo();
  const double macs = double(yn) * double(s.K * s.K);
  const GradientMode ow = GradientMode::Overwrite;
  if (pass == Pass::Fwd)
    return paired(
        {{xn}, {wn}}, {yn}, [s](const Ptrs& i, const Ptrs& o) { kh::dwconv_forward<float>(s, i[0], i[1], nullptr, o[0]); },
        [s](const Ptrs& i, const Ptrs& o) { kc::dwconv_forward(s, i[0], i[1], nullptr, o[0], rt::cuda_stream()); },
        sum_tol(s.K * s.K), 4.0 * (xn + wn + yn), 2 * macs);
  if (pass == Pass::BwdIn)
    return paired(
        {{wn}, {yn}}, {xn},
        [s, ow](const Ptrs& i, const Ptrs& o) { kh::dwconv_backward_input<float>(s, i[0], i[1], o[0], ow); },
        [s, ow](const Ptrs& i, const Ptrs& o) {
          kc::dwconv_backward_input(s, i[0], i[1], o[0], ow, rt::cuda_stream());
        },
        sum_tol(s.K * s.K), 4.0 * (xn + wn + yn), 2 * macs);
  return paired(
      {{xn}, {yn}}, {wn},
      [s, ow](const Ptrs& i, const Ptrs& o) { kh::dwconv_backward_weight<float>(s, i[0], i[1], o[0], ow); },
      [s, ow](const Ptrs& i, const Ptrs& o) { kc::dwconv_backward_weight(s, i[0], i[1], o[0], ow, rt::cuda_stream()); },
      sum_tol(s.N * s.Ho() * s.Wo()), 4.0 * (xn + wn + yn), 2 * macs);
}

// Dense conv through cuDNN against the CPU im2col/Winograd path.
Case conv_case(kernels::Conv2dShape s, Pass pass) {
  s.x_batch_stride = s.C * s.H * s.W;
  const int64_t xn = s.N * s.C * s.H * s.W, wn = s.Cout * (s.C / s.G) * s.KH * s.KW;
  const int64_t yn = s.N * s.Cout * s.Ho() * s.Wo();
  const double macs = double(yn) * double(s.C / s.G) * double(s.KH * s.KW);
  const GradientMode ow = GradientMode::Overwrite;
  auto cpu_ws = std::make_shared<std::vector<float>>(size_t(std::max<int64_t>(1, kh::conv2d_workspace_size(s))));
  const size_t gws = kc::conv2d_cudnn_workspace_bytes(s);
  if (pass == Pass::Fwd)
    return paired(
        {{xn}, {wn}}, {yn},
        [s, cpu_ws](const Ptrs& i, const Ptrs& o) { kh::conv2d_forward<float>(s, i[0], i[1], nullptr, o[0], cpu_ws->data()); },
        [s, gws](const Ptrs& i, const Ptrs& o) {
          DevScratch ws(gws);
          kc::conv2d_forward(s, i[0], i[1], nullptr, o[0], ws.p, gws, rt::cuda_stream());
        },
        sum_tol(s.C / s.G * s.KH * s.KW), 4.0 * (xn + wn + yn), 2 * macs);
  if (pass == Pass::BwdIn)
    return paired(
        {{wn}, {yn}}, {xn},
        [s, cpu_ws, ow](const Ptrs& i, const Ptrs& o) {
          kh::conv2d_backward_input<float>(s, i[0], i[1], o[0], ow, cpu_ws->data());
        },
        [s, gws, ow](const Ptrs& i, const Ptrs& o) {
          DevScratch ws(gws);
          kc::conv2d_backward_input(s, i[0], i[1], o[0], ow, ws.p, gws, rt::cuda_stream());
        },
        sum_tol(s.Cout / s.G * s.KH * s.KW), 4.0 * (xn + wn + yn), 2 * macs);
  return paired(
      {{xn}, {yn}}, {wn},
      [s, cpu_ws, ow](const Ptrs& i, const Ptrs& o) {
        kh::conv2d_backward_weight<float>(s, i[0], i[1], o[0], ow, cpu_ws->data());
      },
      [s, gws, ow](const Ptrs& i, const Ptrs& o) {
        DevScratch ws(gws);
        kc::conv2d_backward_weight(s, i[0], i[1], o[0], ow, ws.p, gws, rt::cuda_stream());
      },
      sum_tol(s.N * s.Ho() * s.Wo()), 4.0 * (xn + wn + yn), 2 * macs);
}

// The FPN box head's fc6 through cuBLAS: 2 x 512 RoIs, 256 x 7 x 7 -> 1024.
Case linear_case(int64_t N, int64_t Cin, int64_t Cout, Pass pass) {
  const GradientMode ow = GradientMode::Overwrite;
  const double macs = double(N) * double(Cin) * double(Cout), bytes = 4.0 * (N * Cin + Cin * Cout + N * Cout);
  if (pass == Pass::Fwd)
    return paired(
        {{N * Cin}, {Cout * Cin}, {Cout}}, {N * Cout},
        [=](const Ptrs& i, const Ptrs& o) { kh::linear_forward<float>(N, Cin, Cout, i[0], i[1], i[2], o[0]); },
        [=](const Ptrs& i, const Ptrs& o) { kc::linear_forward(N, Cin, Cout, i[0], i[1], i[2], o[0], rt::cuda_stream()); },
        sum_tol(Cin + 1), bytes, 2 * macs);
  if (pass == Pass::BwdIn)
    return paired(
        {{Cout * Cin}, {N * Cout}}, {N * Cin},
        [=](const Ptrs& i, const Ptrs& o) { kh::linear_backward_input<float>(N, Cin, Cout, i[0], i[1], o[0], ow); },
        [=](const Ptrs& i, const Ptrs& o) {
          kc::linear_backward_input(N, Cin, Cout, i[0], i[1], o[0], ow, rt::cuda_stream());
        },
        sum_tol(Cout), bytes, 2 * macs);
  return paired(
      {{N * Cin}, {N * Cout}}, {Cout * Cin},
      [=](const Ptrs& i, const Ptrs& o) { kh::linear_backward_weight<float>(N, Cin, Cout, i[0], i[1], o[0], ow); },
      [=](const Ptrs& i, const Ptrs& o) { kc::linear_backward_weight(N, Cin, Cout, i[0], i[1], o[0], ow, rt::cuda_stream()); },
      sum_tol(N), bytes, 2 * macs);
}

const char* pass_name(Pass p) { return p == Pass::Fwd ? "fwd" : (p == Pass::BwdIn ? "bwd_in" : "bwd_w"); }

void register_convs(Registry& r) {
  const Pass passes[] = {Pass::Fwd, Pass::BwdIn, Pass::BwdW};
  for (const NetConfig& cfg : net_configs()) {
    const BackboneShapes bb = backbone_shapes(cfg.space, cfg.res);
    for (const StageShape& st : bb.stages) {
      const std::string sp = cfg.tag() + "/stage" + std::to_string(st.stage);
      for (int64_t K : {3, 5, 7})
        for (int64_t S : {1, 2}) {
          kernels::DwconvShape s;
          s.N = kBatch, s.K = K, s.S = S, s.P = K / 2;
          s.C = S == 1 ? st.mid : st.s2_mid;
          s.H = s.W = S == 1 ? st.H : st.H_in;
          for (Pass p : passes)
            r.push_back(entry(sp + "/dw_k" + std::to_string(K) + "s" + std::to_string(S) + "/" + pass_name(p),
                              std::string("dwconv.") + pass_name(p), nchw(kBatch, s.C, s.H, s.W),
                              [s, p] { return dwconv_case(s, p); }, cfg.in_default));
        }
      kernels::Conv2dShape pw;
      pw.N = kBatch, pw.C = st.mid, pw.Cout = st.mid, pw.H = pw.W = st.H;
      for (Pass p : passes)
        r.push_back(entry(sp + "/pw/" + pass_name(p), std::string("conv2d.") + pass_name(p),
                          nchw(kBatch, pw.C, pw.H, pw.W) + " 1x1 (cuDNN)", [pw, p] { return conv_case(pw, p); },
                          cfg.in_default));
    }
  }
  for (Pass p : passes)
    r.push_back(entry(std::string("fpn/fc6/") + pass_name(p), std::string("linear.") + pass_name(p),
                      "1024 x 12544 -> 1024 (cuBLAS)", [p] { return linear_case(2 * 512, 256 * 49, 1024, p); }));
  for (int64_t res : {320, 800})
    for (int level = 3; level <= 7; ++level) {
      kernels::Conv2dShape s;
      s.N = kBatch, s.C = s.Cout = kFpnChannels, s.KH = s.KW = 3, s.P = 1;
      s.H = s.W = level_size(res, level);
      for (Pass p : passes)
        r.push_back(entry("retina@" + std::to_string(res) + "/P" + std::to_string(level) + "/conv3x3/" + pass_name(p),
                          std::string("conv2d.") + pass_name(p), nchw(kBatch, s.C, s.H, s.W) + " 3x3 (cuDNN)",
                          [s, p] { return conv_case(s, p); }, res == 320));
    }
}

// ---- data movement, normalisation, elementwise ------------------------------------

void register_data(Registry& r) {
  const GradientMode ow = GradientMode::Overwrite;
  for (const NetConfig& cfg : net_configs()) {
    for (const StageShape& st : backbone_shapes(cfg.space, cfg.res).stages) {
      const std::string sp = cfg.tag() + "/stage" + std::to_string(st.stage);
      const int64_t N = kBatch, C = st.width, HW = st.H * st.H, n = N * C * HW, h = n / 2;
      const std::string fs = nchw(N, C, st.H, st.H);
      auto add = [&](const std::string& name, const std::string& op, std::function<Case()> make) {
        r.push_back(entry(sp + "/" + name, op, fs, std::move(make), cfg.in_default));
      };
      const Tol ex = Tol::exact();
      add("shuffle/fwd", "channel_shuffle.fwd", [=] {
        return paired({{n}}, {n}, [=](const Ptrs& i, const Ptrs& o) { kh::channel_shuffle_forward<float>(N, C, HW, 2, i[0], o[0]); },
                      [=](const Ptrs& i, const Ptrs& o) { kc::channel_shuffle_forward(N, C, HW, 2, i[0], o[0], rt::cuda_stream()); },
                      ex, 8.0 * n);
      });
      add("shuffle/bwd", "channel_shuffle.bwd", [=] {
        return paired({{n}}, {n},
                      [=](const Ptrs& i, const Ptrs& o) { kh::channel_shuffle_backward_input<float>(N, C, HW, 2, i[0], o[0], ow); },
                      [=](const Ptrs& i, const Ptrs& o) {
                        kc::channel_shuffle_backward_input(N, C, HW, 2, i[0], o[0], ow, rt::cuda_stream());
                      },
                      ex, 8.0 * n);
      });
      add("split_even_odd/fwd", "split_even_odd.fwd", [=] {
        return paired({{n}}, {h, h}, [=](const Ptrs& i, const Ptrs& o) { kh::split_even_odd_forward<float>(N, C, HW, i[0], o[0], o[1]); },
                      [=](const Ptrs& i, const Ptrs& o) { kc::split_even_odd_forward(N, C, HW, i[0], o[0], o[1], rt::cuda_stream()); },
                      ex, 8.0 * n);
      });
      add("split_even_odd/bwd", "split_even_odd.bwd", [=] {
        return paired({{h}, {h}}, {n},
                      [=](const Ptrs& i, const Ptrs& o) { kh::split_even_odd_backward_input<float>(N, C, HW, i[0], i[1], o[0], ow); },
                      [=](const Ptrs& i, const Ptrs& o) {
                        kc::split_even_odd_backward_input(N, C, HW, i[0], i[1], o[0], ow, rt::cuda_stream());
                      },
                      ex, 8.0 * n);
      });
      const int64_t Ci = C / 2;
      add("concat/fwd", "concat.fwd", [=] {  // one half of the output written at channel offset Ci
        Extra zero;  // the other half of the output is never written: it keeps 0 on both devices
        zero.out_init = 0.f;
        return paired({{h}}, {n},
                      [=](const Ptrs& i, const Ptrs& o) { kh::concat_forward<float>(N, Ci, C, HW, Ci, i[0], Ci * HW, o[0]); },
                      [=](const Ptrs& i, const Ptrs& o) {
                        kc::concat_forward(N, Ci, C, HW, Ci, i[0], Ci * HW, o[0], rt::cuda_stream());
                      },
                      ex, 8.0 * h, 0, zero);
      });
      add("concat/bwd", "concat.bwd", [=] {
        return paired({{n}}, {h},
                      [=](const Ptrs& i, const Ptrs& o) { kh::concat_backward_input<float>(N, Ci, C, HW, Ci, i[0], o[0], ow); },
                      [=](const Ptrs& i, const Ptrs& o) { kc::concat_backward_input(N, Ci, C, HW, Ci, i[0], o[0], ow, rt::cuda_stream()); },
                      ex, 8.0 * h);
      });
      add("relu/fwd", "relu.fwd", [=] {
        return paired({{n}}, {n}, [=](const Ptrs& i, const Ptrs& o) { kh::relu_forward<float>(n, i[0], o[0]); },
                      [=](const Ptrs& i, const Ptrs& o) { kc::relu_forward(n, i[0], o[0], rt::cuda_stream()); }, ex, 8.0 * n);
      });
      add("relu/bwd", "relu.bwd", [=] {
        return paired({{n}, {n}}, {n}, [=](const Ptrs& i, const Ptrs& o) { kh::relu_backward<float>(n, i[0], i[1], o[0], ow); },
                      [=](const Ptrs& i, const Ptrs& o) { kc::relu_backward(n, i[0], i[1], o[0], ow, rt::cuda_stream()); }, ex,
                      12.0 * n);
      });
      add("add/fwd", "add.fwd", [=] {
        return paired({{n}, {n}}, {n}, [=](const Ptrs& i, const Ptrs& o) { kh::add_forward<float>(n, i[0], i[1], o[0]); },
                      [=](const Ptrs& i, const Ptrs& o) { kc::add_forward(n, i[0], i[1], o[0], rt::cuda_stream()); }, ex,
                      12.0 * n);
      });
      // BatchNorm on the block's mid channels: batch statistics forward, full backward.
      const int64_t M = st.mid, mn = N * M * HW;
      const double eps = 1e-5;
      r.push_back(entry(sp + "/bn/fwd", "batchnorm.fwd", nchw(N, M, st.H, st.H), [=] {
        // Inputs x, gamma, beta, running_mean, running_var (updated in place with momentum 0.1).
        return paired({{mn}, {M}, {M}, {M}, {M, 0.5f, 1.5f}}, {mn, 2 * M, M},
                      [=](const Ptrs& i, const Ptrs& o) {
                        kh::batchnorm_forward_batch<float>(N, M, HW, i[0], i[1], i[2], eps, 0.1, o[0], o[1], o[2], i[3], i[4]);
                      },
                      [=](const Ptrs& i, const Ptrs& o) {
                        DevScratch ws(kernels::cuda_plan::batchnorm_workspace_bytes(M));
                        kc::batchnorm_forward_batch(N, M, HW, i[0], i[1], i[2], eps, 0.1, o[0], o[1], o[2], i[3], i[4],
                                                    ws.p, rt::cuda_stream());
                      },
                      sum_tol(N * HW, 2), 8.0 * mn);  // sums of x and x^2, |x| <= 1
      }, cfg.in_default));
      r.push_back(entry(sp + "/bn/bwd", "batchnorm.bwd", nchw(N, M, st.H, st.H), [=] {
        // Inputs x, dy, gamma, save_mean (2,M), save_invstd (M): the saved statistics are
        // the CPU forward's, uploaded, so both backwards start from the same values.
        Extra stats;
        stats.prep = [=](std::vector<rt::Tensor>& in) {
          std::vector<float> y(static_cast<size_t>(mn)), beta(static_cast<size_t>(M), 0.f), rm(beta), rv(beta);
          kh::batchnorm_forward_batch<float>(N, M, HW, in[0].data(), in[2].data(), beta.data(), eps, 0.0, y.data(),
                                             in[3].data(), in[4].data(), rm.data(), rv.data());
        };
        auto grads = [](const Ptrs& o) {
          kernels::cpu::BatchNormGrads<float> g;
          g.dx = o[0], g.dgamma = o[1], g.dbeta = o[2];
          g.dx_mode = g.dgamma_mode = g.dbeta_mode = GradientMode::Overwrite;
          return g;
        };
        return paired({{mn}, {mn}, {M}, {2 * M}, {M}}, {mn, M, M},
                      [=](const Ptrs& i, const Ptrs& o) {
                        kh::batchnorm_backward<float>(N, M, HW, i[0], i[1], i[2], i[3], i[4], kernels::BatchNormMode::Train,
                                                      grads(o));
                      },
                      [=](const Ptrs& i, const Ptrs& o) {
                        DevScratch ws(kernels::cuda_plan::batchnorm_workspace_bytes(M));
                        kc::batchnorm_backward(N, M, HW, i[0], i[1], i[2], i[3], i[4], kernels::BatchNormMode::Train, grads(o),
                                               ws.p, rt::cuda_stream());
                      },
                      sum_tol(N * HW, 4), 12.0 * mn, 0, stats);  // |dy * xhat * gamma| <= sqrt(3)
      }, cfg.in_default));
    }
  }
}

// ---- detection: losses, RoIAlign, NMS, FPN upsampling, the optimizer ------------

constexpr float kAlpha = 0.25f, kGamma = 2.0f, kBeta = 0.11f;

// Focal-loss targets as in the CPU entry: ~1% of the rows positive for one class,
// ~1% of the rows ignored (weight 0).
void focal_targets(std::vector<rt::Tensor>& in, int64_t N, int64_t K) {
  float* t = in[1].data();
  float* w = in[2].data();
  std::fill(t, t + N * K, 0.f);
  std::fill(w, w + N, 1.f);
  SplitMix rng(62);
  for (int64_t i = 0; i < N; ++i) {
    const float u = rng.uniform();
    if (u < 0.01f) t[i * K + int64_t(rng.uniform() * float(K)) % K] = 1.f;
    if (u > 0.99f) w[i] = 0.f;
  }
  in[3].data()[0] = 1.f;  // the upstream gradient of a Sum-reduced loss
}

Case focal_case(int64_t N, int64_t K, bool backward) {
  Extra x;
  x.prep = [N, K](std::vector<rt::Tensor>& in) { focal_targets(in, N, K); };
  const FocalParams fp{kAlpha, kGamma};
  const int64_t n = N * K;
  if (!backward)
    return paired({{n, -8.f, 3.f}, {n}, {N}, {1}}, {n},
                  [=](const Ptrs& i, const Ptrs& o) { kh::sigmoid_focal_forward<float>(N, K, i[0], i[1], i[2], fp, o[0]); },
                  [=](const Ptrs& i, const Ptrs& o) {
                    DevScratch ws(kernels::cuda_plan::loss_workspace_bytes(n));
                    kc::sigmoid_focal_forward(N, K, i[0], i[1], i[2], fp, o[0], ws.p, rt::cuda_stream());
                  },
                  Tol::elementwise(), 4.0 * (2 * n + N + n), 0, x);
  const GradientMode ow = GradientMode::Overwrite;
  return paired({{n, -8.f, 3.f}, {n}, {N}, {1}}, {n},
                [=](const Ptrs& i, const Ptrs& o) {
                  kh::sigmoid_focal_backward<float>(N, K, i[0], i[1], i[2], fp, {i[3], 0, 1.f}, o[0], ow);
                },
                [=](const Ptrs& i, const Ptrs& o) {
                  kc::sigmoid_focal_backward(N, K, i[0], i[1], i[2], fp, {i[3], 0, 1.f}, o[0], ow, rt::cuda_stream());
                },
                Tol::elementwise(), 4.0 * (2 * n + N + n), 0, x);
}

Case smooth_l1_case(int64_t n, bool backward) {
  Extra x;
  x.prep = [n](std::vector<rt::Tensor>& in) {  // weight 1 on ~1% (foreground anchors), else 0
    SplitMix rng(71);
    for (int64_t i = 0; i < n; i += 4) {
      const float w = rng.uniform() < 0.01f ? 1.f : 0.f;
      for (int64_t k = i; k < std::min(n, i + 4); ++k) in[2].data()[k] = w;
    }
    in[3].data()[0] = 1.f;
  };
  if (!backward)
    return paired({{n}, {n}, {n}, {1}}, {n},
                  [=](const Ptrs& i, const Ptrs& o) { kh::smooth_l1_forward<float>(n, i[0], i[1], i[2], kBeta, o[0]); },
                  [=](const Ptrs& i, const Ptrs& o) {
                    DevScratch ws(kernels::cuda_plan::loss_workspace_bytes(n));
                    kc::smooth_l1_forward(n, i[0], i[1], i[2], kBeta, o[0], ws.p, rt::cuda_stream());
                  },
                  Tol::elementwise(), 16.0 * n, 0, x);
  const GradientMode ow = GradientMode::Overwrite, ig = GradientMode::Ignore;
  return paired({{n}, {n}, {n}, {1}}, {n},
                [=](const Ptrs& i, const Ptrs& o) {
                  kh::smooth_l1_backward<float>(n, i[0], i[1], i[2], kBeta, {i[3], 0, 1.f}, o[0], ow, nullptr, ig);
                },
                [=](const Ptrs& i, const Ptrs& o) {
                  kc::smooth_l1_backward(n, i[0], i[1], i[2], kBeta, {i[3], 0, 1.f}, o[0], ow, nullptr, ig,
                                         rt::cuda_stream());
                },
                Tol::elementwise(), 16.0 * n, 0, x);
}

// RoIAlign over P2..P5 (the boxes of each level on its map), as the CPU entry.
Case roi_align_case(int64_t res, bool backward) {
  constexpr int64_t kRois = 512, kPooled = 7;
  const RoiSet rois = make_rois(kRois, res, 81);
  const int64_t C = kFpnChannels, PP = kPooled * kPooled;
  std::vector<int64_t> H(4), R(4);
  std::vector<std::vector<float>> boxes(4);
  for (int l = 2; l <= 5; ++l) {
    H[size_t(l - 2)] = level_size(res, l);
    for (int64_t i = 0; i < kRois; ++i)
      if (rois.level[size_t(i)] == l)
        boxes[size_t(l - 2)].insert(boxes[size_t(l - 2)].end(), &rois.rows[size_t(5 * i)], &rois.rows[size_t(5 * i + 5)]);
    R[size_t(l - 2)] = int64_t(boxes[size_t(l - 2)].size() / 5);
  }
  std::vector<In> ins;
  std::vector<int64_t> outs;
  double bytes = 0;
  for (size_t l = 0; l < 4; ++l) {  // inputs: 4 maps (or pooled gradients), then 4 box lists
    const int64_t feat = kBatch * C * H[l] * H[l], pooled = std::max<int64_t>(1, R[l] * C * PP);
    ins.push_back({backward ? pooled : feat});
    outs.push_back(backward ? feat : pooled);
    bytes += 4.0 * (backward ? pooled + feat : pooled) + 20.0 * R[l];
  }
  for (size_t l = 0; l < 4; ++l) ins.push_back({std::max<int64_t>(1, 5 * R[l])});
  Extra x;
  x.prep = [boxes](std::vector<rt::Tensor>& in) {
    for (size_t l = 0; l < 4; ++l) std::copy(boxes[l].begin(), boxes[l].end(), in[4 + l].data());
  };
  auto params = [](size_t l) {
    kernels::RoiAlignParams p;
    p.pooled_h = p.pooled_w = kPooled;
    p.spatial_scale = 1.0f / float(1 << (l + 2));
    p.sampling_ratio = 2;
    p.mode = kernels::RoiAlignMode::Legacy;
    return p;
  };
  const GradientMode ow = GradientMode::Overwrite;
  auto run = [=](bool cuda) {
    return [=](const Ptrs& i, const Ptrs& o) {
      for (size_t l = 0; l < 4; ++l) {
        if (R[l] == 0) continue;
        if (!backward && cuda) kc::roi_align_forward(params(l), kBatch, C, H[l], H[l], R[l], i[l], i[4 + l], o[l], rt::cuda_stream());
        if (!backward && !cuda) kh::roi_align_forward<float>(params(l), kBatch, C, H[l], H[l], R[l], i[l], i[4 + l], o[l]);
        if (backward && cuda)
          kc::roi_align_backward_input(params(l), kBatch, C, H[l], H[l], R[l], i[l], i[4 + l], o[l], ow, rt::cuda_stream());
        if (backward && !cuda) kh::roi_align_backward_input<float>(params(l), kBatch, C, H[l], H[l], R[l], i[l], i[4 + l], o[l], ow);
      }
    };
  };
  // Forward: a bin averages 4 bilinear samples (elementwise math). Backward: a
  // feature pixel sums the contributions of every bin sample that reaches it
  // (atomics on the GPU, in any order): at most a few hundred terms below 1.
  return paired(ins, outs, run(false), run(true), backward ? sum_tol(512) : Tol::elementwise(), bytes, 0, x);
}

// NMS: the kept indices must be identical (exact).
Case nms_case(int64_t K, float iou, bool per_class) {
  struct Bufs {
    BoxSet set;
    rt::Tensor boxes, scores, classes_f;
    std::vector<int64_t> keep;
    int64_t kept = 0;
  };
  auto B = std::make_shared<Bufs>();
  B->set = make_nms_boxes(K, 320, 91);
  B->boxes = rt::Tensor::from_vector({K, 4}, B->set.boxes).to(rt::Device::CUDA);
  B->scores = rt::Tensor::from_vector({K}, B->set.scores).to(rt::Device::CUDA);
  B->keep.assign(size_t(K), -1);
  // Class ids live on the device as int64.
  auto classes = std::make_shared<DevScratch>(size_t(K) * sizeof(int64_t));
  rt::cuda_copy_h2d(classes->p, B->set.classes.data(), size_t(K) * sizeof(int64_t));
  const size_t wsb = kernels::cuda_plan::nms_workspace_bytes(K);
  Case c;
  c.run = [B, classes, K, iou, per_class, wsb] {
    DevScratch ws(wsb);
    B->kept = per_class ? kc::batched_nms(K, B->boxes.data(), B->scores.data(), static_cast<const int64_t*>(classes->p),
                                          iou, ws.p, B->keep.data(), rt::cuda_stream())
                        : kc::nms(K, B->boxes.data(), B->scores.data(), iou, ws.p, B->keep.data(), rt::cuda_stream());
  };
  c.validate = [B, K, iou, per_class, run = c.run](Checker& chk) {
    run();
    std::vector<int64_t> ref(static_cast<size_t>(K));
    const size_t wsb_cpu = per_class ? kh::batched_nms_workspace_bytes(K) : kh::nms_workspace_bytes(K);
    rt::Tensor ws = zero_buffer(int64_t(wsb_cpu / 4 + 1));  // 64-byte aligned, as the CPU kernel expects
    const int64_t n = per_class ? kh::batched_nms<float>(K, B->set.boxes.data(), B->set.scores.data(),
                                                         B->set.classes.data(), iou, ws.data(), ref.data())
                                : kh::nms<float>(K, B->set.boxes.data(), B->set.scores.data(), iou, ws.data(), ref.data());
    if (B->kept != n) chk.fail("kept " + std::to_string(B->kept) + " boxes, the CPU keeps " + std::to_string(n));
    for (int64_t i = 0; i < n && i < B->kept; ++i)
      chk.expect("keep", {n}, i, double(B->keep[size_t(i)]), double(ref[size_t(i)]), Tol::exact());
  };
  return c;
}

void register_det(Registry& r) {
  const GradientMode ow = GradientMode::Overwrite;
  for (int64_t res : {320, 800}) {
    const bool def = res == 320;
    const std::string tag = "retina@" + std::to_string(res);
    const int64_t N = kBatch * retina_anchors(res), n = 4 * N;
    const std::string fs = std::to_string(N) + "x" + std::to_string(kClasses);
    r.push_back(entry(tag + "/focal/fwd", "sigmoid_focal.fwd", fs, [N] { return focal_case(N, kClasses, false); }, def));
    r.push_back(entry(tag + "/focal/bwd", "sigmoid_focal.bwd", fs, [N] { return focal_case(N, kClasses, true); }, def));
    r.push_back(entry(tag + "/smooth_l1/fwd", "smooth_l1.fwd", std::to_string(N) + "x4", [n] { return smooth_l1_case(n, false); }, def));
    r.push_back(entry(tag + "/smooth_l1/bwd", "smooth_l1.bwd", std::to_string(N) + "x4", [n] { return smooth_l1_case(n, true); }, def));
    const std::string ft = "fpn@" + std::to_string(res);
    r.push_back(entry(ft + "/roi_align/fwd", "roi_align.fwd", "512 RoIs x 256 x 7x7 over P2..P5", [res] { return roi_align_case(res, false); }, def));
    r.push_back(entry(ft + "/roi_align/bwd", "roi_align.bwd", "512 RoIs x 256 x 7x7 over P2..P5", [res] { return roi_align_case(res, true); }, def));
    const int64_t P = kBatch * kFpnChannels;
    for (int l = 4; l >= 2; --l) {
      const int64_t H = level_size(res, l + 1), Ho = level_size(res, l);
      const std::string name = ft + "/upsample_P" + std::to_string(l + 1) + "toP" + std::to_string(l);
      const std::string s = nchw(kBatch, kFpnChannels, H, H) + " -> " + std::to_string(Ho) + "x" + std::to_string(Ho);
      r.push_back(entry(name + "/fwd", "upsample_nearest.fwd", s, [=] {
        return paired({{P * H * H}}, {P * Ho * Ho},
                      [=](const Ptrs& i, const Ptrs& o) { kh::upsample_nearest2d_forward<float>(P, H, H, Ho, Ho, i[0], o[0]); },
                      [=](const Ptrs& i, const Ptrs& o) { kc::upsample_nearest2d_forward(P, H, H, Ho, Ho, i[0], o[0], rt::cuda_stream()); },
                      Tol::exact(), 4.0 * P * (H * H + Ho * Ho));
      }, def));
      r.push_back(entry(name + "/bwd", "upsample_nearest.bwd", s, [=] {
        return paired({{P * Ho * Ho}}, {P * H * H},
                      [=](const Ptrs& i, const Ptrs& o) {
                        kh::upsample_nearest2d_backward_input<float>(P, H, H, Ho, Ho, i[0], o[0], ow);
                      },
                      [=](const Ptrs& i, const Ptrs& o) {
                        kc::upsample_nearest2d_backward_input(P, H, H, Ho, Ho, i[0], o[0], ow, rt::cuda_stream());
                      },
                      sum_tol(4), 4.0 * P * (H * H + Ho * Ho));
      }, def));
    }
  }
  for (int64_t K : {1000, 5000})
    r.push_back(entry("nms/" + std::to_string(K), "nms", std::to_string(K) + " boxes, IoU 0.7",
                      [K] { return nms_case(K, 0.7f, false); }));
  r.push_back(entry("batched_nms/5000", "batched_nms", "5000 boxes, 80 classes, IoU 0.5",
                    [] { return nms_case(5000, 0.5f, true); }));
  // The SGD step (momentum 0.9, wd 4e-5, an existing buffer) over 16.5M parameters,
  // the size of the default RetinaNet supernet step (bench/compare/torch_e2e.py).
  const int64_t n = 16509364;
  r.push_back(entry("sgd/16.5M", "sgd.update", "16509364 params, momentum 0.9", [n] {
    SgdParams sp;
    sp.lr = 0.02, sp.momentum = 0.9, sp.weight_decay = 4e-5, sp.buffer = MomentumBuffer::Existing;
    // In-place update: each side updates its own copies of p and the buffer,
    // restored from the inputs first so that every call does the same work.
    return paired({{n}, {n, -0.01f, 0.01f}, {n, -0.01f, 0.01f}}, {n, n},
                  [=](const Ptrs& i, const Ptrs& o) {
                    std::copy(i[0], i[0] + n, o[0]);
                    std::copy(i[2], i[2] + n, o[1]);
                    kh::sgd_update<float>(n, o[0], i[1], o[1], sp);
                  },
                  [=](const Ptrs& i, const Ptrs& o) {
                    rt::cuda_copy_d2d(o[0], i[0], size_t(n) * 4);
                    rt::cuda_copy_d2d(o[1], i[2], size_t(n) * 4);
                    kc::sgd_update(n, o[0], i[1], o[1], sp, rt::cuda_stream());
                  },
                  Tol::elementwise(), 4.0 * 7 * n);
  }));
}

}  // namespace

void register_cuda_entries(Registry& r) {
  register_convs(r);
  register_data(r);
  register_det(r);
}
#endif

}  // namespace detnas::bench
