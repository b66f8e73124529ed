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
// This file: convolutions, data movement, BN, elementwise; bench/entries_cuda_det.cpp:
// detection losses, RoIAlign, NMS, upsampling, SGD. Built only with CUDA; in a build
// without it there are no cuda entries. Not here: the kernels, the CPU entries.
#include "bench/harness.h"

#ifdef DETNAS_CUDA
#include <algorithm>
#include <cmath>
#include <memory>

#include "bench/cuda_pair.h"
#include "bench/shapes.h"
#include "kernels/batchnorm.h"
#include "kernels/batchnorm_cuda.h"
#include "kernels/conv2d.h"
#include "kernels/conv2d_cudnn.h"
#include "kernels/dwconv.h"
#include "kernels/dwconv_cuda.h"
#include "kernels/elementwise.h"
#include "kernels/elementwise_cuda.h"
#include "kernels/gemm_cublas.h"
#include "kernels/shuffle.h"
#include "kernels/shuffle_cuda.h"
#include "runtime/device_allocator.h"
#endif

namespace detnas::bench {

#ifndef DETNAS_CUDA
void register_cuda_entries(Registry&) {}
#else
void register_cuda_det_entries(Registry& r);  // bench/entries_cuda_det.cpp

namespace {

namespace kc = kernels::cuda;
namespace kh = kernels::cpu;
using namespace cuda_pair;

// ---- convolutions ---------------------------------------------------------------

enum class Pass { Fwd, BwdIn, BwdW };

Case dwconv_case(kernels::DwconvShape s, Pass pass) {
  s.x_batch_stride = s.C * s.H * s.W;
  const int64_t xn = s.N * s.C * s.H * s.W, wn = s.C * s.K * s.K, yn = s.N * s.C * s.Ho() * s.Wo();
  const double macs = double(yn) * double(s.K * s.K);
  const GradientMode ow = GradientMode::Overwrite;
  if (pass == Pass::Fwd)
    return paired(
        {{xn}, {wn}}, {yn},
        [s](const Ptrs& i, const Ptrs& o) { kh::dwconv_forward<float>(s, i[0], i[1], nullptr, o[0]); },
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
  auto cpu_ws = std::make_shared<std::vector<float> >(size_t(std::max<int64_t>(1, kh::conv2d_workspace_size(s))));
  const size_t gws = kc::conv2d_cudnn_workspace_bytes(s);
  if (pass == Pass::Fwd)
    return paired(
        {{xn}, {wn}}, {yn},
        [s, cpu_ws](const Ptrs& i, const Ptrs& o) {
          kh::conv2d_forward<float>(s, i[0], i[1], nullptr, o[0], cpu_ws->data());
        },
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
        [=](const Ptrs& i, const Ptrs& o) {
          kc::linear_forward(N, Cin, Cout, i[0], i[1], i[2], o[0], rt::cuda_stream());
        },
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
      [=](const Ptrs& i, const Ptrs& o) {
        kc::linear_backward_weight(N, Cin, Cout, i[0], i[1], o[0], ow, rt::cuda_stream());
      },
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
            r.push_back(entry(
                sp + "/dw_k" + std::to_string(K) + "s" + std::to_string(S) + "/" + pass_name(p),
                std::string("dwconv.") + pass_name(p), nchw(kBatch, s.C, s.H, s.W),
                [s, p] { return dwconv_case(s, p); }, cfg.in_default));
        }
      kernels::Conv2dShape pw;
      pw.N = kBatch, pw.C = st.mid, pw.Cout = st.mid, pw.H = pw.W = st.H;
      for (Pass p : passes)
        r.push_back(entry(
            sp + "/pw/" + pass_name(p), std::string("conv2d.") + pass_name(p),
            nchw(kBatch, pw.C, pw.H, pw.W) + " 1x1 (cuDNN)", [pw, p] { return conv_case(pw, p); }, cfg.in_default));
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
        r.push_back(entry(
            "retina@" + std::to_string(res) + "/P" + std::to_string(level) + "/conv3x3/" + pass_name(p),
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
        return paired(
            {{n}}, {n},
            [=](const Ptrs& i, const Ptrs& o) { kh::channel_shuffle_forward<float>(N, C, HW, 2, i[0], o[0]); },
            [=](const Ptrs& i, const Ptrs& o) {
              kc::channel_shuffle_forward(N, C, HW, 2, i[0], o[0], rt::cuda_stream());
            },
            ex, 8.0 * n);
      });
      add("shuffle/bwd", "channel_shuffle.bwd", [=] {
        return paired(
            {{n}}, {n},
            [=](const Ptrs& i, const Ptrs& o) {
              kh::channel_shuffle_backward_input<float>(N, C, HW, 2, i[0], o[0], ow);
            },
            [=](const Ptrs& i, const Ptrs& o) {
              kc::channel_shuffle_backward_input(N, C, HW, 2, i[0], o[0], ow, rt::cuda_stream());
            },
            ex, 8.0 * n);
      });
      add("split_even_odd/fwd", "split_even_odd.fwd", [=] {
        return paired(
            {{n}}, {h, h},
            [=](const Ptrs& i, const Ptrs& o) { kh::split_even_odd_forward<float>(N, C, HW, i[0], o[0], o[1]); },
            [=](const Ptrs& i, const Ptrs& o) {
              kc::split_even_odd_forward(N, C, HW, i[0], o[0], o[1], rt::cuda_stream());
            },
            ex, 8.0 * n);
      });
      add("split_even_odd/bwd", "split_even_odd.bwd", [=] {
        return paired(
            {{h}, {h}}, {n},
            [=](const Ptrs& i, const Ptrs& o) {
              kh::split_even_odd_backward_input<float>(N, C, HW, i[0], i[1], o[0], ow);
            },
            [=](const Ptrs& i, const Ptrs& o) {
              kc::split_even_odd_backward_input(N, C, HW, i[0], i[1], o[0], ow, rt::cuda_stream());
            },
            ex, 8.0 * n);
      });
      const int64_t Ci = C / 2;
      add("concat/fwd", "concat.fwd", [=] {  // one half of the output written at channel offset Ci
        Extra zero;  // the other half of the output is never written: it keeps 0 on both devices
        zero.out_init = 0.f;
        return paired(
            {{h}}, {n},
            [=](const Ptrs& i, const Ptrs& o) { kh::concat_forward<float>(N, Ci, C, HW, Ci, i[0], Ci * HW, o[0]); },
            [=](const Ptrs& i, const Ptrs& o) {
              kc::concat_forward(N, Ci, C, HW, Ci, i[0], Ci * HW, o[0], rt::cuda_stream());
            },
            ex, 8.0 * h, 0, zero);
      });
      add("concat/bwd", "concat.bwd", [=] {
        return paired(
            {{n}}, {h},
            [=](const Ptrs& i, const Ptrs& o) { kh::concat_backward_input<float>(N, Ci, C, HW, Ci, i[0], o[0], ow); },
            [=](const Ptrs& i, const Ptrs& o) {
              kc::concat_backward_input(N, Ci, C, HW, Ci, i[0], o[0], ow, rt::cuda_stream());
            },
            ex, 8.0 * h);
      });
      add("relu/fwd", "relu.fwd", [=] {
        return paired(
            {{n}}, {n}, [=](const Ptrs& i, const Ptrs& o) { kh::relu_forward<float>(n, i[0], o[0]); },
            [=](const Ptrs& i, const Ptrs& o) { kc::relu_forward(n, i[0], o[0], rt::cuda_stream()); }, ex, 8.0 * n);
      });
      add("relu/bwd", "relu.bwd", [=] {
        return paired(
            {{n}, {n}}, {n}, [=](const Ptrs& i, const Ptrs& o) { kh::relu_backward<float>(n, i[0], i[1], o[0], ow); },
            [=](const Ptrs& i, const Ptrs& o) { kc::relu_backward(n, i[0], i[1], o[0], ow, rt::cuda_stream()); }, ex,
            12.0 * n);
      });
      add("add/fwd", "add.fwd", [=] {
        return paired(
            {{n}, {n}}, {n}, [=](const Ptrs& i, const Ptrs& o) { kh::add_forward<float>(n, i[0], i[1], o[0]); },
            [=](const Ptrs& i, const Ptrs& o) { kc::add_forward(n, i[0], i[1], o[0], rt::cuda_stream()); }, ex,
            12.0 * n);
      });
      // BatchNorm on the block's mid channels: batch statistics forward, full backward.
      const int64_t M = st.mid, mn = N * M * HW;
      const double eps = 1e-5;
      r.push_back(entry(
          sp + "/bn/fwd", "batchnorm.fwd", nchw(N, M, st.H, st.H),
          [=] {
            // Inputs x, gamma, beta, running_mean, running_var (updated in place with momentum 0.1).
            return paired(
                {{mn}, {M}, {M}, {M}, {M, 0.5f, 1.5f}}, {mn, 2 * M, M},
                [=](const Ptrs& i, const Ptrs& o) {
                  kh::batchnorm_forward_batch<float>(N, M, HW, i[0], i[1], i[2], eps, 0.1, o[0], o[1], o[2], i[3],
                                                     i[4]);
                },
                [=](const Ptrs& i, const Ptrs& o) {
                  DevScratch ws(kernels::cuda_plan::batchnorm_workspace_bytes(M));
                  kc::batchnorm_forward_batch(N, M, HW, i[0], i[1], i[2], eps, 0.1, o[0], o[1], o[2], i[3], i[4], ws.p,
                                              rt::cuda_stream());
                },
                sum_tol(N * HW, 2), 8.0 * mn);  // sums of x and x^2, |x| <= 1
          },
          cfg.in_default));
      r.push_back(entry(
          sp + "/bn/bwd", "batchnorm.bwd", nchw(N, M, st.H, st.H),
          [=] {
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
            return paired(
                {{mn}, {mn}, {M}, {2 * M}, {M}}, {mn, M, M},
                [=](const Ptrs& i, const Ptrs& o) {
                  kh::batchnorm_backward<float>(N, M, HW, i[0], i[1], i[2], i[3], i[4], kernels::BatchNormMode::Train,
                                                grads(o));
                },
                [=](const Ptrs& i, const Ptrs& o) {
                  DevScratch ws(kernels::cuda_plan::batchnorm_workspace_bytes(M));
                  kc::batchnorm_backward(N, M, HW, i[0], i[1], i[2], i[3], i[4], kernels::BatchNormMode::Train,
                                         grads(o), ws.p, rt::cuda_stream());
                },
                sum_tol(N * HW, 4), 12.0 * mn, 0, stats);  // |dy * xhat * gamma| <= sqrt(3)
          },
          cfg.in_default));
    }
  }
}

}  // namespace

void register_cuda_entries(Registry& r) {
  register_convs(r);
  register_data(r);
  register_cuda_det_entries(r);
}
#endif

}  // namespace detnas::bench
