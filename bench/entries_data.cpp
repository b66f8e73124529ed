// Bench entries for BatchNorm (train forward / backward) and the data-movement
// kernels: channel shuffle, even/odd split, channel concat (at each backbone
// stage), nearest upsampling of the FPN top-down path and max pooling (FPN P6
// and a 3x3 stride-2 pool on the stem output). References are plain loops.
// Not here: the kernels (kernels/batchnorm.h, shuffle.h, upsample.h, pool.h).
#include <cmath>
#include <limits>

#include "bench/harness.h"
#include "bench/shapes.h"
#include "kernels/batchnorm.h"
#include "kernels/pool.h"
#include "kernels/shuffle.h"
#include "kernels/upsample.h"

namespace detnas::bench {
namespace {

using kernels::cpu::BatchNormGrads;
constexpr double kEps = 1e-5, kMomentum = 0.1;
const float kNaN = std::numeric_limits<float>::quiet_NaN();

rt::Tensor nan_buffer(int64_t n) { return rt::Tensor::full({n}, kNaN); }

Entry entry(const std::string& name, const std::string& op, const std::string& shape,
            std::vector<std::pair<std::string, double>> params, bool in_default, std::function<Case()> make) {
  Entry e;
  e.name = name;
  e.op = op;
  e.shape = shape;
  e.params = std::move(params);
  e.in_default = in_default;
  e.make = std::move(make);
  return e;
}

std::string nchw(int64_t N, int64_t C, int64_t H, int64_t W) {
  return std::to_string(N) + "x" + std::to_string(C) + "x" + std::to_string(H) + "x" + std::to_string(W);
}

// ---- BatchNorm -------------------------------------------------------------

// Per-channel mean and biased variance in double (two passes).
void channel_stats(const float* x, int64_t N, int64_t C, int64_t HW, int64_t c, double* mean, double* var) {
  double s = 0, ss = 0;
  for (int64_t n = 0; n < N; ++n)
    for (int64_t i = 0; i < HW; ++i) s += x[(n * C + c) * HW + i];
  *mean = s / double(N * HW);
  for (int64_t n = 0; n < N; ++n)
    for (int64_t i = 0; i < HW; ++i) ss += (x[(n * C + c) * HW + i] - *mean) * (x[(n * C + c) * HW + i] - *mean);
  *var = ss / double(N * HW);
}

Case make_bn(int64_t N, int64_t C, int64_t HW, bool backward) {
  struct Bufs {
    rt::Tensor x, gamma, beta, y, mean, invstd, rmean, rvar, dy, dx, dgamma, dbeta;
  };
  auto B = std::make_shared<Bufs>();
  B->x = uniform_buffer(N * C * HW, 21, -1.f, 3.f);
  B->gamma = uniform_buffer(C, 22, 0.5f, 1.5f);
  B->beta = uniform_buffer(C, 23);
  B->y = nan_buffer(N * C * HW);
  B->mean = nan_buffer(2 * C);
  B->invstd = nan_buffer(C);
  B->rmean = zero_buffer(C);
  B->rvar = rt::Tensor::full({C}, 1.f);
  auto fwd = [B, N, C, HW] {
    kernels::cpu::batchnorm_forward_batch<float>(N, C, HW, B->x.data(), B->gamma.data(), B->beta.data(), kEps,
                                                 kMomentum, B->y.data(), B->mean.data(), B->invstd.data(),
                                                 B->rmean.data(), B->rvar.data());
  };
  const std::vector<int64_t> shape{N, C, HW};
  const std::vector<int64_t> chans = sample_indices(C, 8, 24);
  Case c;
  if (!backward) {
    c.run = fwd;
    c.validate = [B, N, C, HW, fwd, shape, chans](Checker& chk) {
      B->rmean.fill_(0.f);
      B->rvar.fill_(1.f);
      fwd();
      for (int64_t ch : chans) {
        double mean, var;
        channel_stats(B->x.data(), N, C, HW, ch, &mean, &var);
        const double invstd = 1.0 / std::sqrt(var + kEps), g = B->gamma.data()[ch], b = B->beta.data()[ch];
        chk.expect("save_mean", {C}, ch, double(B->mean.data()[ch]) + double(B->mean.data()[C + ch]), mean,
                   Tol::elementwise());
        chk.expect("save_invstd", {C}, ch, B->invstd.data()[ch], invstd, Tol::elementwise());
        chk.expect("running_mean", {C}, ch, B->rmean.data()[ch], kMomentum * mean, Tol::elementwise());
        chk.expect("running_var", {C}, ch, B->rvar.data()[ch],
                   (1 - kMomentum) + kMomentum * var * double(N * HW) / double(N * HW - 1), Tol::elementwise());
        for (int64_t j : sample_indices(N * HW, 256, 25 + ch)) {
          const int64_t i = ((j / HW) * C + ch) * HW + j % HW;
          chk.expect("y", shape, i, B->y.data()[i], (B->x.data()[i] - mean) * invstd * g + b, Tol::elementwise());
        }
      }
    };
    c.bytes = 4.0 * (2.0 * N * C * HW + 7.0 * C);
    return c;
  }
  fwd();
  B->dy = uniform_buffer(N * C * HW, 26);
  B->dx = nan_buffer(N * C * HW);
  B->dgamma = nan_buffer(C);
  B->dbeta = nan_buffer(C);
  c.run = [B, N, C, HW] {
    BatchNormGrads<float> g;
    g.dx = B->dx.data(), g.dx_mode = GradientMode::Overwrite;
    g.dgamma = B->dgamma.data(), g.dgamma_mode = GradientMode::Overwrite;
    g.dbeta = B->dbeta.data(), g.dbeta_mode = GradientMode::Overwrite;
    kernels::cpu::batchnorm_backward<float>(N, C, HW, B->x.data(), B->dy.data(), B->gamma.data(), B->mean.data(),
                                            B->invstd.data(), kernels::BatchNormMode::Train, g);
  };
  const auto run = c.run;
  c.validate = [B, N, C, HW, run, shape, chans](Checker& chk) {
    run();
    const float *x = B->x.data(), *dy = B->dy.data();
    for (int64_t ch : chans) {
      double mean, var;
      channel_stats(x, N, C, HW, ch, &mean, &var);
      const double invstd = 1.0 / std::sqrt(var + kEps), scale = B->gamma.data()[ch] * invstd;
      double sdy = 0, sdyx = 0, adx = 0, adyx = 0;
      for (int64_t n = 0; n < N; ++n)
        for (int64_t i = 0; i < HW; ++i) {
          const int64_t k = (n * C + ch) * HW + i;
          const double xhat = (x[k] - mean) * invstd;
          sdy += dy[k], sdyx += dy[k] * xhat, adx += std::fabs(dy[k]), adyx += std::fabs(dy[k] * xhat);
        }
      chk.expect("dbeta", {C}, ch, B->dbeta.data()[ch], sdy, Tol::reduction(N * HW, adx));
      chk.expect("dgamma", {C}, ch, B->dgamma.data()[ch], sdyx, Tol::reduction(N * HW, adyx));
      const double mdy = sdy / double(N * HW), mdyx = sdyx / double(N * HW);
      for (int64_t j : sample_indices(N * HW, 256, 27 + ch)) {
        const int64_t k = ((j / HW) * C + ch) * HW + j % HW;
        const double xhat = (x[k] - mean) * invstd;
        const double ref = scale * (dy[k] - mdy - xhat * mdyx);
        // The float statistics (invstd) carry a relative error of ~2^-24 into every term.
        const Tol tol{1e-6 * std::fabs(scale) * (std::fabs(dy[k]) + std::fabs(mdy) + std::fabs(xhat * mdyx)) + 1e-7,
                      1e-5};
        chk.expect("dx", shape, k, B->dx.data()[k], ref, tol);
      }
    }
  };
  c.bytes = 4.0 * (3.0 * N * C * HW + 5.0 * C);
  return c;
}

// ---- channel data movement ---------------------------------------------------

// Exact comparison of a whole output with ref(i).
template <class F>
void expect_all(Checker& chk, const char* what, const std::vector<int64_t>& shape, const float* got, int64_t n, F ref) {
  for (int64_t i = 0; i < n; ++i) chk.expect(what, shape, i, got[i], ref(i), Tol::exact());
}

enum class Move { ShuffleFwd, ShuffleBwd, SplitFwd, SplitBwd, ConcatFwd, ConcatBwd };

Case make_move(Move m, int64_t N, int64_t C, int64_t HW) {
  struct Bufs {
    rt::Tensor a, b, c, d;
  };
  auto B = std::make_shared<Bufs>();
  const int64_t n = N * C * HW, h = C / 2;
  const std::vector<int64_t> full{N, C, HW}, half{N, h, HW};
  const int64_t G = 2;
  auto src = [C, G](int64_t c) { return (c % G) * (C / G) + c / G; };  // torch: view(N,G,C/G), transpose(1,2)
  Case c;
  switch (m) {
    case Move::ShuffleFwd:
    case Move::ShuffleBwd:
      B->a = uniform_buffer(n, 31);
      B->b = nan_buffer(n);
      if (m == Move::ShuffleFwd) {
        c.run = [B, N, C, HW] { kernels::cpu::channel_shuffle_forward<float>(N, C, HW, 2, B->a.data(), B->b.data()); };
        c.validate = [B, N, C, HW, full, src, run = c.run](Checker& chk) {
          run();
          expect_all(chk, "y", full, B->b.data(), N * C * HW, [&](int64_t i) {
            const int64_t q = i % HW, ch = (i / HW) % C, s = i / (HW * C);
            return double(B->a.data()[(s * C + src(ch)) * HW + q]);
          });
        };
      } else {
        c.run = [B, N, C, HW] {
          kernels::cpu::channel_shuffle_backward_input<float>(N, C, HW, 2, B->a.data(), B->b.data(),
                                                              GradientMode::Overwrite);
        };
        c.validate = [B, N, C, HW, full, src, run = c.run](Checker& chk) {
          run();
          std::vector<float> ref(size_t(N * C * HW));
          for (int64_t s = 0; s < N; ++s)
            for (int64_t ch = 0; ch < C; ++ch)
              for (int64_t q = 0; q < HW; ++q)
                ref[size_t((s * C + src(ch)) * HW + q)] = B->a.data()[(s * C + ch) * HW + q];
          expect_all(chk, "dx", full, B->b.data(), N * C * HW, [&](int64_t i) { return double(ref[size_t(i)]); });
        };
      }
      c.bytes = 8.0 * n;
      return c;
    case Move::SplitFwd:
    case Move::ConcatBwd:
      // One full tensor in (a), two halves out (b, c).
      B->a = uniform_buffer(n, 32);
      B->b = nan_buffer(n / 2);
      B->c = nan_buffer(n / 2);
      if (m == Move::SplitFwd)
        c.run = [B, N, C, HW] {
          kernels::cpu::split_even_odd_forward<float>(N, C, HW, B->a.data(), B->b.data(), B->c.data());
        };
      else
        c.run = [B, N, C, HW, h] {
          kernels::cpu::concat_backward_input<float>(N, h, C, HW, 0, B->a.data(), B->b.data(), GradientMode::Overwrite);
          kernels::cpu::concat_backward_input<float>(N, h, C, HW, h, B->a.data(), B->c.data(), GradientMode::Overwrite);
        };
      c.validate = [B, m, N, C, HW, h, half, run = c.run](Checker& chk) {
        run();
        for (int part = 0; part < 2; ++part) {
          const float* got = (part ? B->c : B->b).data();
          expect_all(chk, part ? "second" : "first", half, got, N * h * HW, [&](int64_t i) {
            const int64_t q = i % HW, k = (i / HW) % h, s = i / (HW * h);
            const int64_t ch = m == Move::SplitFwd ? 2 * k + part : part * h + k;
            return double(B->a.data()[(s * C + ch) * HW + q]);
          });
        }
      };
      c.bytes = 8.0 * n;
      return c;
    case Move::SplitBwd:
    case Move::ConcatFwd:
      // Two halves in (a, b), one full tensor out (c). The concat's first input is
      // the pass-through half: a channel slice of a wider (N,C,HW) tensor.
      B->a = uniform_buffer(m == Move::ConcatFwd ? n : n / 2, 33);
      B->b = uniform_buffer(n / 2, 34);
      B->c = nan_buffer(n);
      if (m == Move::SplitBwd)
        c.run = [B, N, C, HW] {
          kernels::cpu::split_even_odd_backward_input<float>(N, C, HW, B->a.data(), B->b.data(), B->c.data(),
                                                             GradientMode::Overwrite);
        };
      else
        c.run = [B, N, C, HW, h] {
          kernels::cpu::concat_forward<float>(N, h, C, HW, 0, B->a.data(), C * HW, B->c.data());
          kernels::cpu::concat_forward<float>(N, h, C, HW, h, B->b.data(), h * HW, B->c.data());
        };
      c.validate = [B, m, N, C, HW, h, full, run = c.run](Checker& chk) {
        run();
        expect_all(chk, "y", full, B->c.data(), N * C * HW, [&](int64_t i) {
          const int64_t q = i % HW, ch = (i / HW) % C, s = i / (HW * C);
          if (m == Move::SplitBwd) return double((ch % 2 ? B->b : B->a).data()[(s * h + ch / 2) * HW + q]);
          if (ch < h) return double(B->a.data()[(s * C + ch) * HW + q]);
          return double(B->b.data()[(s * h + ch - h) * HW + q]);
        });
      };
      c.bytes = 8.0 * n;
      return c;
  }
  return c;
}

// ---- upsample and pool -----------------------------------------------------

// torch "nearest": src = min(floor(dst * float(in)/float(out)), in - 1), in float.
int64_t nearest_src(int64_t dst, int64_t in, int64_t out) {
  const float scale = float(in) / float(out);
  return std::min<int64_t>(int64_t(std::floor(float(dst) * scale)), in - 1);
}

Case make_upsample(int64_t P, int64_t H, int64_t Ho, bool backward) {
  struct Bufs {
    rt::Tensor x, y;
  };
  auto B = std::make_shared<Bufs>();
  B->x = backward ? nan_buffer(P * H * H) : uniform_buffer(P * H * H, 41);
  B->y = backward ? uniform_buffer(P * Ho * Ho, 42) : nan_buffer(P * Ho * Ho);
  Case c;
  if (!backward) {
    c.run = [B, P, H, Ho] {
      kernels::cpu::upsample_nearest2d_forward<float>(P, H, H, Ho, Ho, B->x.data(), B->y.data());
    };
    c.validate = [B, P, H, Ho, run = c.run](Checker& chk) {
      run();
      expect_all(chk, "y", {P, Ho, Ho}, B->y.data(), P * Ho * Ho, [&](int64_t i) {
        const int64_t ow = i % Ho, oh = (i / Ho) % Ho, p = i / (Ho * Ho);
        return double(B->x.data()[(p * H + nearest_src(oh, H, Ho)) * H + nearest_src(ow, H, Ho)]);
      });
    };
  } else {
    c.run = [B, P, H, Ho] {
      kernels::cpu::upsample_nearest2d_backward_input<float>(P, H, H, Ho, Ho, B->y.data(), B->x.data(),
                                                             GradientMode::Overwrite);
    };
    c.validate = [B, P, H, Ho, run = c.run](Checker& chk) {
      run();
      std::vector<double> ref(size_t(P * H * H), 0.0), mag(size_t(P * H * H), 0.0);
      for (int64_t p = 0; p < P; ++p)
        for (int64_t oh = 0; oh < Ho; ++oh)
          for (int64_t ow = 0; ow < Ho; ++ow) {
            const size_t k = size_t((p * H + nearest_src(oh, H, Ho)) * H + nearest_src(ow, H, Ho));
            const double v = B->y.data()[(p * Ho + oh) * Ho + ow];
            ref[k] += v, mag[k] += std::fabs(v);
          }
      const int64_t copies = (Ho + H - 1) / H * ((Ho + H - 1) / H);
      for (int64_t i = 0; i < P * H * H; ++i)
        chk.expect("dx", {P, H, H}, i, B->x.data()[i], ref[size_t(i)], Tol::reduction(copies, mag[size_t(i)]));
    };
  }
  c.bytes = 4.0 * (P * H * H + P * Ho * Ho);
  return c;
}

Case make_maxpool(int64_t P, int64_t H, kernels::PoolWindow win, bool backward) {
  struct Bufs {
    rt::Tensor x, y, dy, dx;
  };
  auto B = std::make_shared<Bufs>();
  const int64_t Ho = kernels::pool_out_size(H, win);
  B->x = uniform_buffer(P * H * H, 51);
  // The window's first maximum in row-major order, padding = -inf.
  auto argmax = [B, H, win](int64_t p, int64_t oh, int64_t ow) {
    int64_t best = -1;
    float bv = -HUGE_VALF;
    for (int64_t ih = oh * win.S - win.P; ih < oh * win.S - win.P + win.K; ++ih)
      for (int64_t iw = ow * win.S - win.P; iw < ow * win.S - win.P + win.K; ++iw) {
        if (ih < 0 || ih >= H || iw < 0 || iw >= H) continue;
        const float v = B->x.data()[(p * H + ih) * H + iw];
        if (best < 0 || v > bv) best = ih * H + iw, bv = v;
      }
    return best;
  };
  Case c;
  if (!backward) {
    B->y = nan_buffer(P * Ho * Ho);
    c.run = [B, P, H, Ho, win] {
      kernels::cpu::max_pool2d_forward<float>(P, H, H, Ho, Ho, win, B->x.data(), B->y.data());
    };
    c.validate = [B, P, H, Ho, argmax, run = c.run](Checker& chk) {
      run();
      expect_all(chk, "y", {P, Ho, Ho}, B->y.data(), P * Ho * Ho, [&](int64_t i) {
        const int64_t p = i / (Ho * Ho);
        return double(B->x.data()[p * H * H + argmax(p, (i / Ho) % Ho, i % Ho)]);
      });
    };
    c.bytes = 4.0 * (P * H * H + P * Ho * Ho);
  } else {
    B->dy = uniform_buffer(P * Ho * Ho, 52);
    B->dx = nan_buffer(P * H * H);
    c.run = [B, P, H, Ho, win] {
      kernels::cpu::max_pool2d_backward_input<float>(P, H, H, Ho, Ho, win, B->x.data(), B->dy.data(), B->dx.data(),
                                                     GradientMode::Overwrite);
    };
    c.validate = [B, P, H, Ho, win, argmax, run = c.run](Checker& chk) {
      run();
      std::vector<double> ref(size_t(P * H * H), 0.0), mag(size_t(P * H * H), 0.0);
      for (int64_t p = 0; p < P; ++p)
        for (int64_t oh = 0; oh < Ho; ++oh)
          for (int64_t ow = 0; ow < Ho; ++ow) {
            const size_t k = size_t(p * H * H + argmax(p, oh, ow));
            const double v = B->dy.data()[(p * Ho + oh) * Ho + ow];
            ref[k] += v, mag[k] += std::fabs(v);
          }
      for (int64_t i = 0; i < P * H * H; ++i)
        chk.expect("dx", {P, H, H}, i, B->dx.data()[i], ref[size_t(i)], Tol::reduction(win.K * win.K, mag[size_t(i)]));
    };
    c.bytes = 4.0 * (2.0 * P * H * H + P * Ho * Ho);
  }
  return c;
}

}  // namespace

void register_data_entries(Registry& r) {
  for (const NetConfig& cfg : net_configs()) {
    const BackboneShapes bb = backbone_shapes(cfg.space, cfg.res);
    const std::string tag = cfg.tag();
    for (const StageShape& st : bb.stages) {
      const std::string sp = tag + "/stage" + std::to_string(st.stage);
      const int64_t HW = st.H * st.H;
      const std::vector<std::pair<std::string, double>> mid{{"N", kBatch}, {"C", st.mid}, {"H", st.H}, {"W", st.H}};
      const std::vector<std::pair<std::string, double>> full{{"N", kBatch}, {"C", st.width}, {"H", st.H}, {"W", st.H}};
      const std::string ms = nchw(kBatch, st.mid, st.H, st.H), fs = nchw(kBatch, st.width, st.H, st.H);
      const int64_t C = st.mid, W = st.width;
      r.push_back(entry(sp + "/bn/fwd", "batchnorm.fwd", ms, mid, cfg.in_default,
                        [C, HW] { return make_bn(kBatch, C, HW, false); }));
      r.push_back(entry(sp + "/bn/bwd", "batchnorm.bwd", ms, mid, cfg.in_default,
                        [C, HW] { return make_bn(kBatch, C, HW, true); }));
      const std::pair<const char*, Move> moves[] = {
          {"shuffle/fwd", Move::ShuffleFwd},      {"shuffle/bwd", Move::ShuffleBwd},
          {"split_even_odd/fwd", Move::SplitFwd}, {"split_even_odd/bwd", Move::SplitBwd},
          {"concat/fwd", Move::ConcatFwd},        {"concat/bwd", Move::ConcatBwd}};
      const char* ops[] = {"channel_shuffle.fwd", "channel_shuffle.bwd", "split_even_odd.fwd",
                           "split_even_odd.bwd",  "concat.fwd",          "concat.bwd"};
      for (int k = 0; k < 6; ++k) {
        const Move m = moves[k].second;
        r.push_back(entry(sp + "/" + moves[k].first, ops[k], fs + (k < 2 ? " g2" : ""), full, cfg.in_default,
                          [m, W, HW] { return make_move(m, kBatch, W, HW); }));
      }
    }
    // ShuffleNetV2's 3x3 stride-2 max pool after the stem (not used by the DetNAS spaces).
    const int64_t P = kBatch * bb.stem_out, H = bb.stem_H;
    const kernels::PoolWindow w3{3, 2, 1};
    const std::vector<std::pair<std::string, double>> pp{{"N", kBatch}, {"C", bb.stem_out}, {"H", H}, {"W", H},
                                                         {"K", 3},      {"S", 2},           {"P", 1}};
    const std::string ps = nchw(kBatch, bb.stem_out, H, H) + " k3 s2 p1";
    r.push_back(entry(tag + "/stem/maxpool3x3s2/fwd", "max_pool2d.fwd", ps, pp, false,
                      [P, H, w3] { return make_maxpool(P, H, w3, false); }));
    r.push_back(entry(tag + "/stem/maxpool3x3s2/bwd", "max_pool2d.bwd", ps, pp, false,
                      [P, H, w3] { return make_maxpool(P, H, w3, true); }));
  }
  for (int64_t res : {320, 800}) {
    const std::string tag = "fpn@" + std::to_string(res);
    const int64_t P = kBatch * kFpnChannels;
    for (int l = 4; l >= 2; --l) {  // top-down: P(l+1) -> P(l); P2 only in the two-stage FPN
      const int64_t H = level_size(res, l + 1), Ho = level_size(res, l);
      const std::string name = tag + "/upsample_P" + std::to_string(l + 1) + "toP" + std::to_string(l);
      const std::vector<std::pair<std::string, double>> pp{{"N", kBatch}, {"C", kFpnChannels}, {"H", H},
                                                           {"W", H},      {"Ho", Ho},          {"Wo", Ho}};
      const std::string s = nchw(kBatch, kFpnChannels, H, H) + " -> " + std::to_string(Ho) + "x" + std::to_string(Ho);
      r.push_back(entry(name + "/fwd", "upsample_nearest.fwd", s, pp, true,
                        [P, H, Ho] { return make_upsample(P, H, Ho, false); }));
      r.push_back(entry(name + "/bwd", "upsample_nearest.bwd", s, pp, true,
                        [P, H, Ho] { return make_upsample(P, H, Ho, true); }));
    }
    // Two-stage FPN's P6: max_pool2d(P5, kernel 1, stride 2).
    const int64_t H5 = level_size(res, 5);
    const kernels::PoolWindow w1{1, 2, 0};
    const std::vector<std::pair<std::string, double>> pp{
        {"N", kBatch}, {"C", kFpnChannels}, {"H", H5}, {"W", H5}, {"K", 1}, {"S", 2}, {"P", 0}};
    const std::string s = nchw(kBatch, kFpnChannels, H5, H5) + " k1 s2";
    r.push_back(entry(tag + "/maxpool_P6/fwd", "max_pool2d.fwd", s, pp, true,
                      [P, H5, w1] { return make_maxpool(P, H5, w1, false); }));
    r.push_back(entry(tag + "/maxpool_P6/bwd", "max_pool2d.bwd", s, pp, true,
                      [P, H5, w1] { return make_maxpool(P, H5, w1, true); }));
  }
}

}  // namespace detnas::bench
