// Bench entries for the detection kernels: sigmoid focal loss over all RetinaNet
// anchors x 80 classes, smooth L1 over the anchors' box deltas, multi-level
// RoIAlign of 512 RoIs from P2..P5 (forward and backward) and NMS of 1000 / 5000
// boxes (plain and per class). References are plain loops in double (focal
// gradient: central differences of the reference loss).
// Not here: the kernels (kernels/loss.h, kernels/roi_align.h, kernels/box_ops.h).
#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "bench/harness.h"
#include "bench/shapes.h"
#include "kernels/box_ops.h"
#include "kernels/loss.h"
#include "kernels/roi_align.h"

namespace detnas::bench {
namespace {

const float kNaN = std::numeric_limits<float>::quiet_NaN();
constexpr float kAlpha = 0.25f, kGamma = 2.0f, kBeta = 0.11f;  // RetinaNet (Detectron smooth-L1 beta)
constexpr int64_t kRois = 512, kPooled = 7, kSampling = 2;

Entry entry(const std::string& name, const std::string& op, const std::string& shape,
            std::vector<std::pair<std::string, double>> params, std::function<Case()> make) {
  Entry e;
  e.name = name;
  e.op = op;
  e.shape = shape;
  e.params = std::move(params);
  e.make = std::move(make);
  return e;
}

// ---- losses ----------------------------------------------------------------

double ref_focal(double x, double t, double alpha, double gamma) {
  const double p = 1.0 / (1.0 + std::exp(-x));
  const double ce = -(t * std::log(p) + (1 - t) * std::log(1 - p));
  const double pt = p * t + (1 - p) * (1 - t);
  return (alpha * t + (1 - alpha) * (1 - t)) * ce * std::pow(1 - pt, gamma);
}

// Focal loss inputs: logits around RetinaNet's prior (-4.6), one-hot targets on
// ~1% of the rows, row weight 0 (ignored anchor) on ~1% of the rows.
Case make_focal(int64_t N, int64_t K, bool backward) {
  struct Bufs {
    rt::Tensor x, t, w, out, one;
  };
  auto B = std::make_shared<Bufs>();
  B->x = uniform_buffer(N * K, 61, -8.f, 3.f);
  B->t = zero_buffer(N * K);
  B->w = rt::Tensor::full({N}, 1.f);
  SplitMix rng(62);
  for (int64_t i = 0; i < N; ++i) {
    const float u = rng.uniform();
    if (u < 0.01f) B->t.data()[i * K + int64_t(rng.uniform() * float(K)) % K] = 1.f;
    if (u > 0.99f) B->w.data()[i] = 0.f;
  }
  B->out = rt::Tensor::full({N * K}, kNaN);
  B->one = rt::Tensor::full({1}, 1.f);
  const FocalParams fp{kAlpha, kGamma};
  Case c;
  if (!backward) {
    c.run = [B, N, K, fp] {
      kernels::cpu::sigmoid_focal_forward<float>(N, K, B->x.data(), B->t.data(), B->w.data(), fp, B->out.data());
    };
  } else {
    c.run = [B, N, K, fp] {
      kernels::LossGrad<float> g{B->one.data(), 0, 1.f};  // a Sum-reduced loss: one scalar upstream gradient
      kernels::cpu::sigmoid_focal_backward<float>(N, K, B->x.data(), B->t.data(), B->w.data(), fp, g, B->out.data(),
                                                  GradientMode::Overwrite);
    };
  }
  c.validate = [B, N, K, backward, run = c.run](Checker& chk) {
    run();
    for (int64_t i : sample_indices(N * K, 4096, 63)) {
      const double x = B->x.data()[i], t = B->t.data()[i], w = B->w.data()[i / K];
      double ref;
      if (!backward) {
        ref = w * ref_focal(x, t, kAlpha, kGamma);
      } else {
        const double h = 1e-5 * std::max(1.0, std::fabs(x));
        ref = w * (ref_focal(x + h, t, kAlpha, kGamma) - ref_focal(x - h, t, kAlpha, kGamma)) / (2 * h);
      }
      chk.expect(backward ? "dx" : "loss", {N, K}, i, B->out.data()[i], ref, Tol::elementwise());
    }
  };
  c.bytes = 4.0 * (3.0 * N * K + N);
  return c;
}

double ref_smooth_l1(double d, double beta) {
  const double a = std::fabs(d);
  return a < beta ? 0.5 * d * d / beta : a - 0.5 * beta;
}

// Smooth L1 over every anchor's 4 deltas, weight 1 on the ~1% foreground anchors.
Case make_smooth_l1(int64_t n, bool backward) {
  struct Bufs {
    rt::Tensor x, t, w, out, one;
  };
  auto B = std::make_shared<Bufs>();
  B->x = uniform_buffer(n, 71, -1.f, 1.f);
  B->t = uniform_buffer(n, 72, -1.f, 1.f);
  B->w = zero_buffer(n);
  SplitMix rng(73);
  for (int64_t a = 0; a < n / 4; ++a)
    if (rng.uniform() < 0.01f)
      for (int k = 0; k < 4; ++k) B->w.data()[4 * a + k] = 1.f;
  B->out = rt::Tensor::full({n}, kNaN);
  B->one = rt::Tensor::full({1}, 1.f);
  Case c;
  if (!backward) {
    c.run = [B, n] {
      kernels::cpu::smooth_l1_forward<float>(n, B->x.data(), B->t.data(), B->w.data(), kBeta, B->out.data());
    };
  } else {
    c.run = [B, n] {
      kernels::LossGrad<float> g{B->one.data(), 0, 1.f};
      kernels::cpu::smooth_l1_backward<float>(n, B->x.data(), B->t.data(), B->w.data(), kBeta, g, B->out.data(),
                                              GradientMode::Overwrite, nullptr, GradientMode::Ignore);
    };
  }
  c.validate = [B, n, backward, run = c.run](Checker& chk) {
    run();
    for (int64_t i : sample_indices(n, 4096, 74)) {
      const double x = B->x.data()[i], t = B->t.data()[i], w = B->w.data()[i];
      const double d = double(float(x - t)), beta = double(kBeta);  // the kernel forms x - t in float
      const double ref =
          backward ? w * (std::fabs(d) < beta ? d / beta : (d > 0) - (d < 0)) : w * ref_smooth_l1(d, beta);
      chk.expect(backward ? "dx" : "loss", {n}, i, B->out.data()[i], ref, Tol::elementwise());
    }
  };
  c.bytes = 4.0 * 4.0 * n;
  return c;
}

// ---- RoIAlign ----------------------------------------------------------------

// torchvision's bilinear sample (legacy, aligned=False), coordinates in float as
// torchvision computes them; returns taps and weights in double.
int bilinear(int64_t H, int64_t W, float y, float x, int64_t off[4], double wt[4]) {
  if (y < -1.f || y > float(H) || x < -1.f || x > float(W)) return 0;
  y = std::max(y, 0.f), x = std::max(x, 0.f);
  int64_t y0 = int64_t(y), x0 = int64_t(x), y1 = y0 + 1, x1 = x0 + 1;
  if (y0 >= H - 1) y0 = y1 = H - 1, y = float(y0);
  if (x0 >= W - 1) x0 = x1 = W - 1, x = float(x0);
  const double ly = double(y - float(y0)), lx = double(x - float(x0));
  off[0] = y0 * W + x0, off[1] = y0 * W + x1, off[2] = y1 * W + x0, off[3] = y1 * W + x1;
  wt[0] = (1 - ly) * (1 - lx), wt[1] = (1 - ly) * lx, wt[2] = ly * (1 - lx), wt[3] = ly * lx;
  return 4;
}

// Calls f(offset, weight / count) for every tap of bin (ph, pw) of box b (5 floats).
template <class F>
void roi_bin_taps(const float* b, float scale, int64_t H, int64_t W, int64_t ph, int64_t pw, F f) {
  const float sw = b[1] * scale, sh = b[2] * scale;
  const float rw = std::max(b[3] * scale - sw, 1.f), rh = std::max(b[4] * scale - sh, 1.f);
  const float bh = rh / float(kPooled), bw = rw / float(kPooled);
  for (int iy = 0; iy < kSampling; ++iy) {
    const float y = sh + float(ph) * bh + float(iy + 0.5f) * bh / float(kSampling);
    for (int ix = 0; ix < kSampling; ++ix) {
      const float x = sw + float(pw) * bw + float(ix + 0.5f) * bw / float(kSampling);
      int64_t off[4];
      double wt[4];
      const int n = bilinear(H, W, y, x, off, wt);
      for (int k = 0; k < n; ++k) f(off[k], wt[k] / double(kSampling * kSampling));
    }
  }
}

Case make_roi_align(int64_t res, bool backward) {
  struct Level {
    int level = 0;
    int64_t H = 0, R = 0;
    float scale = 0;
    std::vector<float> boxes;
    rt::Tensor x, y;  // features (or their gradient), pooled output (or its gradient)
  };
  auto L = std::make_shared<std::vector<Level>>();
  const RoiSet rois = make_rois(kRois, res, 81);
  const int64_t C = kFpnChannels, PP = kPooled * kPooled;
  for (int l = 2; l <= 5; ++l) {
    Level v;
    v.level = l;
    v.H = level_size(res, l);
    v.scale = 1.0f / float(1 << l);
    for (int64_t i = 0; i < kRois; ++i)
      if (rois.level[size_t(i)] == l)
        v.boxes.insert(v.boxes.end(), &rois.rows[size_t(5 * i)], &rois.rows[size_t(5 * i + 5)]);
    v.R = int64_t(v.boxes.size() / 5);
    v.x = backward ? rt::Tensor::full({kBatch * C * v.H * v.H}, kNaN) : uniform_buffer(kBatch * C * v.H * v.H, 82 + l);
    v.y = backward ? uniform_buffer(std::max<int64_t>(1, v.R * C * PP), 86 + l)
                   : rt::Tensor::full({std::max<int64_t>(1, v.R * C * PP)}, kNaN);
    L->push_back(std::move(v));
  }
  auto params = [](const Level& v) {
    kernels::RoiAlignParams p;
    p.pooled_h = p.pooled_w = kPooled;
    p.spatial_scale = v.scale;
    p.sampling_ratio = kSampling;
    p.mode = kernels::RoiAlignMode::Legacy;
    return p;
  };
  Case c;
  if (!backward)
    c.run = [L, C, params] {
      for (Level& v : *L)
        if (v.R > 0)
          kernels::cpu::roi_align_forward<float>(params(v), kBatch, C, v.H, v.H, v.R, v.x.data(), v.boxes.data(),
                                                 v.y.data());
    };
  else
    c.run = [L, C, params] {
      for (Level& v : *L)  // every level's gradient is written (zeros where no RoI samples)
        kernels::cpu::roi_align_backward_input<float>(params(v), kBatch, C, v.H, v.H, v.R, v.y.data(), v.boxes.data(),
                                                      v.x.data(), GradientMode::Overwrite);
    };
  c.validate = [L, C, PP, backward, run = c.run](Checker& chk) {
    run();
    for (const Level& v : *L) {
      const std::string what = std::string(backward ? "dP" : "roi_out_P") + std::to_string(v.level);
      if (!backward) {
        for (int64_t i : sample_indices(v.R * C * PP, 2048, 91)) {
          const int64_t pw = i % kPooled, ph = (i / kPooled) % kPooled, ch = (i / PP) % C, r = i / (PP * C);
          const float* b = &v.boxes[size_t(5 * r)];
          const float* plane = v.x.data() + (int64_t(b[0]) * C + ch) * v.H * v.H;
          double ref = 0, mag = 0;
          roi_bin_taps(b, v.scale, v.H, v.H, ph, pw, [&](int64_t off, double wt) {
            ref += wt * plane[off];
            mag += std::fabs(wt * plane[off]);
          });
          chk.expect(what.c_str(), {v.R, C, kPooled, kPooled}, i, v.y.data()[i], ref, Tol::reduction(16, mag));
        }
        continue;
      }
      // Whole gradient planes of a few channels, scattered by a plain loop.
      const int64_t HH = v.H * v.H;
      for (int64_t ch : sample_indices(C, 3, 92)) {
        std::vector<double> ref(size_t(kBatch * HH), 0.0), mag(size_t(kBatch * HH), 0.0);
        for (int64_t r = 0; r < v.R; ++r) {
          const float* b = &v.boxes[size_t(5 * r)];
          const int64_t n = int64_t(b[0]);
          for (int64_t ph = 0; ph < kPooled; ++ph)
            for (int64_t pw = 0; pw < kPooled; ++pw) {
              const double g = v.y.data()[((r * C + ch) * kPooled + ph) * kPooled + pw];
              roi_bin_taps(b, v.scale, v.H, v.H, ph, pw, [&](int64_t off, double wt) {
                ref[size_t(n * HH + off)] += wt * g;
                mag[size_t(n * HH + off)] += std::fabs(wt * g);
              });
            }
        }
        for (int64_t n = 0; n < kBatch; ++n)
          for (int64_t k = 0; k < HH; ++k) {
            const int64_t i = (n * C + ch) * HH + k;
            chk.expect(what.c_str(), {kBatch, C, v.H, v.H}, i, v.x.data()[i], ref[size_t(n * HH + k)],
                       Tol::reduction(64, mag[size_t(n * HH + k)]));
          }
      }
    }
  };
  double out = 0, feat = 0;
  for (const Level& v : *L) out += double(v.R) * C * PP, feat += double(kBatch) * C * v.H * v.H;
  c.bytes = backward ? 4.0 * (out + feat + 5.0 * kRois) : 4.0 * (out + 5.0 * kRois);
  return c;
}

// ---- NMS -----------------------------------------------------------------------

// Greedy NMS by a plain loop: visit by decreasing score (ties: lower index first),
// keep a box unless a kept box of the same class (any class when classes is
// null) overlaps it with IoU > thr; IoU in float as torchvision.
std::vector<int64_t> ref_nms(const BoxSet& s, const int64_t* classes, float thr) {
  const int64_t K = int64_t(s.scores.size());
  std::vector<int64_t> order(static_cast<size_t>(K));
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](int64_t a, int64_t b) { return s.scores[size_t(a)] > s.scores[size_t(b)]; });
  std::vector<int64_t> keep;
  for (int64_t i : order) {
    const float* a = &s.boxes[size_t(4 * i)];
    bool suppressed = false;
    for (int64_t j : keep) {
      if (classes && classes[i] != classes[j]) continue;
      const float* b = &s.boxes[size_t(4 * j)];
      const float iw = std::max(0.f, std::min(a[2], b[2]) - std::max(a[0], b[0]));
      const float ih = std::max(0.f, std::min(a[3], b[3]) - std::max(a[1], b[1]));
      const float inter = iw * ih;
      const float area_a = (a[2] - a[0]) * (a[3] - a[1]), area_b = (b[2] - b[0]) * (b[3] - b[1]);
      if (inter / (area_a + area_b - inter) > thr) {
        suppressed = true;
        break;
      }
    }
    if (!suppressed) keep.push_back(i);
  }
  return keep;
}

enum class NmsKind { Plain, PerClass };

Case make_nms(int64_t K, float thr, NmsKind kind) {
  struct Bufs {
    BoxSet s;
    rt::Tensor ws;
    std::vector<int64_t> keep;
    int64_t kept = 0;
  };
  auto B = std::make_shared<Bufs>();
  B->s = make_nms_boxes(K, 800, 101);
  const size_t wsb =
      kind == NmsKind::Plain ? kernels::cpu::nms_workspace_bytes(K) : kernels::cpu::batched_nms_workspace_bytes(K);
  B->ws = rt::Tensor::empty({int64_t(wsb / 4 + 1)});
  B->keep.assign(size_t(K), -1);
  Case c;
  if (kind == NmsKind::Plain)
    c.run = [B, K, thr] {
      B->kept = kernels::cpu::nms<float>(K, B->s.boxes.data(), B->s.scores.data(), thr, B->ws.data(), B->keep.data());
    };
  else
    c.run = [B, K, thr] {
      B->kept = kernels::cpu::batched_nms<float>(K, B->s.boxes.data(), B->s.scores.data(), B->s.classes.data(), thr,
                                                 B->ws.data(), B->keep.data());
    };
  c.validate = [B, K, thr, kind, run = c.run](Checker& chk) {
    run();
    const std::vector<int64_t> ref = ref_nms(B->s, kind == NmsKind::Plain ? nullptr : B->s.classes.data(), thr);
    if (B->kept != int64_t(ref.size()))
      chk.fail("kept " + std::to_string(B->kept) + " boxes, the reference keeps " + std::to_string(ref.size()));
    for (size_t i = 0; i < ref.size() && int64_t(i) < B->kept; ++i)
      chk.expect("keep", {int64_t(ref.size())}, int64_t(i), double(B->keep[i]), double(ref[i]), Tol::exact());
  };
  return c;  // no byte or FLOP count: the work depends on how many boxes survive
}

}  // namespace

void register_det_entries(Registry& r) {
  for (int64_t res : {320, 800}) {
    const std::string tag = "retina@" + std::to_string(res);
    const int64_t N = kBatch * retina_anchors(res);
    const std::string fs = std::to_string(N) + "x" + std::to_string(kClasses) + " (2 images x all anchors P3..P7)";
    const std::vector<std::pair<std::string, double>> fp{{"N", N}, {"K", kClasses}};
    r.push_back(entry(tag + "/focal/fwd", "sigmoid_focal.fwd", fs, fp, [N] { return make_focal(N, kClasses, false); }));
    r.push_back(entry(tag + "/focal/bwd", "sigmoid_focal.bwd", fs, fp, [N] { return make_focal(N, kClasses, true); }));
    const int64_t n = 4 * N;
    const std::string ss = std::to_string(N) + "x4 box deltas, beta 0.11, weight 1 on ~1% foreground";
    const std::vector<std::pair<std::string, double>> sp{{"n", n}};
    r.push_back(entry(tag + "/smooth_l1/fwd", "smooth_l1.fwd", ss, sp, [n] { return make_smooth_l1(n, false); }));
    r.push_back(entry(tag + "/smooth_l1/bwd", "smooth_l1.bwd", ss, sp, [n] { return make_smooth_l1(n, true); }));
    const std::string ft = "fpn@" + std::to_string(res);
    const std::string rs = "512 RoIs x 256 x 7x7 over P2..P5, sampling 2; bytes: ";
    const std::vector<std::pair<std::string, double>> rp{
        {"N", kBatch}, {"C", kFpnChannels}, {"res", res}, {"R", kRois}};
    r.push_back(entry(ft + "/roi_align/fwd", "roi_align.fwd", rs + "output + boxes", rp,
                      [res] { return make_roi_align(res, false); }));
    r.push_back(entry(ft + "/roi_align/bwd", "roi_align.bwd", rs + "dy + whole dP2..dP5 + boxes", rp,
                      [res] { return make_roi_align(res, true); }));
  }
  for (int64_t K : {1000, 5000}) {
    const std::vector<std::pair<std::string, double>> p{{"K", K}, {"iou", 0.7}};
    r.push_back(entry("nms/" + std::to_string(K), "nms", std::to_string(K) + " boxes, IoU 0.7", p,
                      [K] { return make_nms(K, 0.7f, NmsKind::Plain); }));
  }
  const std::vector<std::pair<std::string, double>> p{{"K", 5000}, {"iou", 0.5}, {"classes", kClasses}};
  r.push_back(entry("batched_nms/5000", "batched_nms", "5000 boxes, 80 classes, IoU 0.5", p,
                    [] { return make_nms(5000, 0.5f, NmsKind::PerClass); }));
}

}  // namespace detnas::bench
