// The shared per-element math of kernels/<op>.h (what the CPU and CUDA kernels
// both call) checked on its own: the index relations against brute force, and
// each gather-form function against the CPU kernel that runs the same sum as a
// faster schedule, bit for bit (the order each one adds in is part of its contract).
// Not here: the kernels against naive references or goldens (test_conv,
// test_loss, test_roi_align, test_norm, ...), the emulated CUDA kernels (emu_kernels_*).
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "kernels/box_ops.h"
#include "kernels/dwconv.h"
#include "kernels/loss.h"
#include "kernels/pool.h"
#include "kernels/roi_align.h"
#include "kernels/shuffle.h"
#include "kernels/upsample.h"
#include "tests/test_util.h"

using namespace detnas;
using namespace detnas::kernels;

namespace {

template <typename T>
bool bit_equal(const std::vector<T>& a, const std::vector<T>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(T)) == 0;
}

}  // namespace

TEST_CASE("kernel math: dwconv valid-tap tests agree with the tap and output ranges") {
  for (int64_t K : {1, 2, 3, 5, 7})
    for (int64_t S : {1, 2, 3})
      for (int64_t P = 0; P <= K + 1; ++P)
        for (int64_t in : {1, 4, 9}) {
          if (in + 2 * P < K) continue;
          const int64_t out = conv_out_size(in, K, S, P);
          for (int64_t o = 0; o < out; ++o) {
            int64_t lo, hi;
            conv_tap_range(o, K, S, P, in, &lo, &hi);
            for (int64_t k = 0; k < K; ++k) {
              const int64_t i = dwconv_tap_input(o, k, S, P, in);
              CHECK((i >= 0) == (k >= lo && k < hi));
              if (i >= 0) CHECK(i == conv_in_index(o, k, S, P));
            }
          }
          for (int64_t i = 0; i < in; ++i) {
            int64_t lo, hi;
            dwconv_outputs_reading(i, K, S, P, out, &lo, &hi);
            for (int64_t o = 0; o < out; ++o) {
              bool reads = false;
              for (int64_t k = 0; k < K; ++k) reads = reads || dwconv_tap_input(o, k, S, P, in) == i;
              CHECK(reads == (o >= lo && o < hi));
            }
          }
        }
}

TEST_CASE("kernel math: dwconv stride-1 input gradient as the flipped correlation") {
  for (int64_t K : {1, 3, 5, 7})
    for (int64_t P = 0; P <= K - 1; ++P) {
      DwconvShape s;
      s.N = 1, s.C = 1, s.H = 6 + K, s.W = 9 + K, s.K = K, s.S = 1, s.P = P;
      s.x_batch_stride = s.H * s.W;
      REQUIRE(dwconv_input_grad_as_corr(s));
      const DwconvShape t = dwconv_input_grad_corr_shape(s);
      CHECK(t.Ho() == s.H);
      CHECK(t.Wo() == s.W);
      for (int64_t i = 0; i < K * K; ++i) CHECK(dwconv_flipped_tap(dwconv_flipped_tap(i, K), K) == i);
      // Integer-valued data: every order gives the exact sum.
      std::vector<float> w(size_t(K * K)), dy(size_t(s.Ho() * s.Wo())), flip(w.size());
      for (size_t i = 0; i < w.size(); ++i) w[i] = float(int(i * 7 % 5) - 2);
      for (size_t i = 0; i < dy.size(); ++i) dy[i] = float(int(i * 3 % 7) - 3);
      for (int64_t i = 0; i < K * K; ++i) flip[size_t(i)] = w[size_t(dwconv_flipped_tap(i, K))];
      for (int64_t ih = 0; ih < s.H; ++ih)
        for (int64_t iw = 0; iw < s.W; ++iw) {
          const float g = dwconv_input_grad_value(dy.data(), w.data(), s, ih, iw);
          CHECK(dwconv_output_value(dy.data(), flip.data(), 0.0f, t, ih, iw) == g);
          CHECK(dwconv_input_grad_value(dy.data(), w.data(), s, ih, iw, 0.0f, DwGradOrder::OutputRowsAscending) == g);
        }
    }
  DwconvShape s2;
  s2.S = 2, s2.K = 3, s2.P = 1;
  CHECK_FALSE(dwconv_input_grad_as_corr(s2));
}

TEST_CASE("kernel math: each cpu dwconv input-gradient path is the shared sum in its stated order, bit for bit") {
  struct Case {
    int64_t H, W, K, S, P;
  };
  // Stride 1 (flipped correlation; small planes padded, large ones blocked with
  // whole-row borders), stride 2 with K = 3/5/7 (parity blocks), and the row
  // scatter: stride 3, stride 2 with K = 1 or P >= K, stride 1 with K > 7 or P > K-1.
  const Case cases[] = {{11, 13, 3, 1, 1}, {9, 10, 5, 1, 2},  {70, 130, 3, 1, 1}, {60, 90, 7, 1, 3}, {9, 9, 1, 1, 0},
                        {11, 13, 3, 2, 1}, {16, 17, 5, 2, 2}, {13, 40, 7, 2, 3},  {11, 13, 3, 3, 1}, {10, 9, 5, 3, 2},
                        {9, 12, 1, 2, 0},  {8, 8, 3, 2, 3},   {12, 14, 9, 1, 4},  {7, 6, 3, 1, 3},   {13, 7, 7, 3, 5}};
  for (const Case& c : cases) {
    DwconvShape s;
    s.N = 2, s.C = 3, s.H = c.H, s.W = c.W, s.K = c.K, s.S = c.S, s.P = c.P;
    s.x_batch_stride = s.C * s.H * s.W;
    CAPTURE(c.H);
    CAPTURE(c.W);
    CAPTURE(c.K);
    CAPTURE(c.S);
    CAPTURE(c.P);
    const int64_t HoWo = s.Ho() * s.Wo(), HW = s.H * s.W, KK = s.K * s.K;
    const std::vector<float> w = test::randn_f(s.C * KK, 41), dy = test::randn_f(s.N * s.C * HoWo, 42),
                             dx0 = test::randn_f(s.N * s.C * HW, 43);
    const bool corr = dwconv_input_grad_as_corr(s) && s.K <= 7;
    const bool s2 = s.S == 2 && s.P < s.K && (s.K == 3 || s.K == 5 || s.K == 7);
    const DwconvShape t = dwconv_input_grad_corr_shape(s);
    for (GradientMode mode : {GradientMode::Overwrite, GradientMode::Accumulate}) {
      // The flipped correlation adds to dx in two ways on one plane (see kernels/dwconv_cpu.cpp).
      if (corr && mode == GradientMode::Accumulate) continue;
      CAPTURE(int(mode));
      std::vector<float> got = dx0, ref(dx0.size());
      cpu::dwconv_backward_input(s, w.data(), dy.data(), got.data(), mode);
      const bool acc = mode == GradientMode::Accumulate;
      for (int64_t nc = 0; nc < s.N * s.C; ++nc) {
        const float* wc = w.data() + (nc % s.C) * KK;
        const float* dyc = dy.data() + nc * HoWo;
        std::vector<float> flip(static_cast<size_t>(KK));
        for (int64_t i = 0; i < KK; ++i) flip[size_t(i)] = wc[dwconv_flipped_tap(i, s.K)];
        for (int64_t ih = 0; ih < s.H; ++ih)
          for (int64_t iw = 0; iw < s.W; ++iw) {
            const size_t e = size_t(nc * HW + ih * s.W + iw);
            if (corr)
              ref[e] = dwconv_output_value(dyc, flip.data(), 0.0f, t, ih, iw);
            else if (s2)  // the sum from 0, then added to dx
              ref[e] = acc ? dx0[e] + dwconv_input_grad_value(dyc, wc, s, ih, iw)
                           : dwconv_input_grad_value(dyc, wc, s, ih, iw);
            else
              ref[e] =
                  dwconv_input_grad_value(dyc, wc, s, ih, iw, acc ? dx0[e] : 0.0f, DwGradOrder::OutputRowsAscending);
          }
      }
      CHECK(bit_equal(got, ref));
    }
  }
}

TEST_CASE("kernel math: max pool gradient gather equals the cpu scatter bit for bit") {
  for (int64_t K : {1, 2, 3})
    for (int64_t S : {1, 2})
      for (int64_t P = 0; P <= K / 2; ++P) {
        PoolWindow win;
        win.K = K, win.S = S, win.P = P;
        const int64_t H = 7, W = 10, Ho = pool_out_size(H, win), Wo = pool_out_size(W, win);
        // Windows containing v, against pool_window_range.
        for (int64_t v = 0; v < W; ++v) {
          int64_t lo, hi;
          pool_windows_containing(v, Wo, win, &lo, &hi);
          for (int64_t o = 0; o < Wo; ++o) {
            int64_t a, b;
            pool_window_range(o, W, win, &a, &b);
            CHECK((o >= lo && o < hi) == (v >= a && v < b));
          }
        }
        std::vector<float> x = test::randn_f(H * W, 51);
        for (size_t i = 0; i < x.size(); i += 3) x[i] = 0.5f;  // ties
        x[4] = NAN;
        const std::vector<float> dy = test::randn_f(Ho * Wo, 52), dx0 = test::randn_f(H * W, 53);
        for (GradientMode mode : {GradientMode::Overwrite, GradientMode::Accumulate}) {
          std::vector<float> ref = dx0, got(dx0.size());
          cpu::max_pool2d_backward_input(1, H, W, Ho, Wo, win, x.data(), dy.data(), ref.data(), mode);
          for (int64_t r = 0; r < H * W; ++r)
            got[size_t(r)] = maxpool_input_grad_value(x.data(), dy.data(), H, W, Ho, Wo, win, r,
                                                      mode == GradientMode::Accumulate ? dx0[size_t(r)] : 0.0f);
          CHECK(bit_equal(got, ref));
        }
      }
}

TEST_CASE("kernel math: upsample gradient gathers equal the cpu backward bit for bit") {
  const int64_t sizes[][4] = {{3, 5, 6, 10}, {2, 2, 82, 82}, {4, 3, 9, 7}, {5, 5, 5, 5}, {3, 4, 2, 3}};
  for (const auto& z : sizes) {
    const int64_t H = z[0], W = z[1], Ho = z[2], Wo = z[3];
    const std::vector<float> dy = test::randn_f(Ho * Wo, 61), dx0 = test::randn_f(H * W, 62);
    for (GradientMode mode : {GradientMode::Overwrite, GradientMode::Accumulate}) {
      std::vector<float> ref = dx0, got = dx0;
      cpu::upsample_nearest2d_backward_input(1, H, W, Ho, Wo, dy.data(), ref.data(), mode);
      const bool acc = mode == GradientMode::Accumulate;
      for (int64_t h = 0; h < H; ++h)
        for (int64_t w = 0; w < W; ++w) {
          float& d = got[size_t(h * W + w)];
          if (upsample_nearest_is_x2(H, W, Ho, Wo)) {
            const float s = upsample_nearest_x2_grad(dy.data(), Wo, h, w);
            d = acc ? d + s : s;
          } else {
            d = upsample_nearest_grad_gather(dy.data(), H, W, Ho, Wo, h, w, acc ? d : 0.0f);
          }
        }
      CHECK(bit_equal(got, ref));
    }
  }
}

TEST_CASE("kernel math: channel shuffle inverse is a shuffle with C/G groups") {
  for (int64_t C : {1, 4, 12, 24})
    for (int64_t G : {1, 2, 3, 4})
      if (C % G == 0)
        for (int64_t c = 0; c < C; ++c)
          CHECK(shuffle_src_channel(shuffle_src_channel(c, C, G), C, shuffle_inverse_groups(C, G)) == c);
}

TEST_CASE("kernel math: softmax cross-entropy row functions are what the cpu kernels compute") {
  const int64_t N = 9, K = 7;
  std::vector<float> x = test::randn_f(N * K, 71, 3.0);
  x[3 * K + 2] = INFINITY;
  const std::vector<int64_t> labels = {0, 6, -1, 3, 7, 2, kIgnoreLabel, 5, 1};
  const float eps = 0.1f;
  std::vector<float> loss(N), lse(N);
  CHECK(cpu::softmax_xent_forward(N, K, x.data(), labels.data(), eps, loss.data(), lse.data()) == 3 * K + 2);
  const XentSmoothing<double> smd = xent_smoothing(double(eps), K);
  for (int64_t i = 0; i < N; ++i) {
    float l = NAN, m = NAN;
    const int64_t bad = softmax_xent_row(x.data() + i * K, K, labels[size_t(i)], smd, &l, &m);
    CHECK(bad == (i == 3 ? 2 : -1));
    if (i == 3) continue;  // values unspecified for a non-finite row
    CHECK(std::memcmp(&l, &loss[size_t(i)], sizeof l) == 0);
    CHECK(std::memcmp(&m, &lse[size_t(i)], sizeof m) == 0);
    if (xent_ignored(labels[size_t(i)], K)) CHECK(l == 0.0f);
  }
  const std::vector<float> dl = test::randn_f(N, 72);
  LossGrad<float> g;
  g.dy = dl.data(), g.stride = 1;
  std::vector<float> dx(size_t(N * K));
  cpu::softmax_xent_backward(N, K, x.data(), labels.data(), eps, lse.data(), g, dx.data(), GradientMode::Overwrite);
  const XentSmoothing<float> sm = xent_smoothing(eps, K);
  for (int64_t i = 0; i < N; ++i) {
    if (i == 3) continue;
    const int64_t y = labels[size_t(i)];
    float row_sum = 0;
    for (int64_t j = 0; j < K; ++j) {
      const float v = softmax_xent_grad(x[size_t(i * K + j)], lse[size_t(i)], g.at(i), j, y, K, sm);
      CHECK(std::memcmp(&v, &dx[size_t(i * K + j)], sizeof v) == 0);
      row_sum += v;
    }
    CHECK(std::fabs(row_sum) < 1e-5f);  // softmax and target both sum to 1
  }
}

TEST_CASE("kernel math: roi_align bin sum and scatter are what the cpu kernels compute") {
  const int64_t N = 2, C = 2, H = 9, W = 11, K = 4;
  const std::vector<float> boxes = {0, 1.5f, 2.0f, 14.0f, 12.5f, 1, -3.0f, -2.0f, 5.0f,  30.0f,
                                    1, 8.0f, 8.0f, 8.2f,  8.1f,  0, 20.0f, 1.0f,  26.0f, 19.0f};
  for (RoiAlignMode mode : {RoiAlignMode::Legacy, RoiAlignMode::Aligned})
    for (int64_t sr : {0, 2}) {
      RoiAlignParams p;
      p.pooled_h = 3, p.pooled_w = 2, p.spatial_scale = 0.75f, p.sampling_ratio = sr, p.mode = mode;
      const int64_t PHW = p.pooled_h * p.pooled_w;
      const std::vector<float> x = test::randn_f(N * C * H * W, 81), dy = test::randn_f(K * C * PHW, 82);
      std::vector<float> y(size_t(K * C * PHW)), ref_dx(size_t(N * C * H * W));
      cpu::roi_align_forward(p, N, C, H, W, K, x.data(), boxes.data(), y.data());
      cpu::roi_align_backward_input(p, N, C, H, W, K, dy.data(), boxes.data(), ref_dx.data(), GradientMode::Overwrite);
      std::vector<float> got_y(y.size()), got_dx(ref_dx.size(), 0.0f);
      for (int64_t c = 0; c < C; ++c)  // the cpu backward's order: channel, box, bin
        for (int64_t k = 0; k < K; ++k) {
          const RoiGeometry<float> g = roi_align_geometry(p, boxes.data() + k * 5);
          const int64_t n = int64_t(boxes[size_t(k * 5)]);
          float* dplane = got_dx.data() + (n * C + c) * H * W;
          for (int64_t ph = 0; ph < p.pooled_h; ++ph)
            for (int64_t pw = 0; pw < p.pooled_w; ++pw) {
              const int64_t o = (k * C + c) * PHW + ph * p.pooled_w + pw;
              got_y[size_t(o)] = roi_align_bin(g, H, W, ph, pw, x.data() + (n * C + c) * H * W);
              roi_align_bin_scatter(g, H, W, ph, pw, dy[size_t(o)],
                                    [dplane](int64_t off, float v) { dplane[off] += v; });
            }
        }
      CHECK(bit_equal(got_y, y));
      CHECK(bit_equal(got_dx, ref_dx));
    }
}

TEST_CASE("kernel math: nms suppression is a strict IoU test") {
  const float a[4] = {0, 0, 10, 10}, b[4] = {0, 0, 10, 5}, z[4] = {1, 1, 1, 1};
  const float aa = box_area(a), ab = box_area(b);
  CHECK(box_iou_value(a, b, aa, ab) == 0.5f);
  CHECK(nms_suppresses(a, aa, b, ab, 0.4f));
  CHECK_FALSE(nms_suppresses(a, aa, b, ab, 0.5f));      // equal is kept
  CHECK_FALSE(nms_suppresses(z, 0.0f, z, 0.0f, 0.0f));  // 0/0 = NaN suppresses nothing
}
