// CUDA bench entries (`bench --cuda`, see bench/entries_cuda.cpp) for detection:
// focal and smooth-L1 losses, RoIAlign over P2..P5, NMS (kept indices exact),
// FPN nearest upsampling and the SGD step, each against its CPU kernel on the
// same inputs. CUDA builds only (bench/entries_cuda.cpp registers them).
#ifdef DETNAS_CUDA
#include <algorithm>
#include <cmath>
#include <memory>

#include "bench/cuda_pair.h"
#include "bench/shapes.h"
#include "kernels/box_ops.h"
#include "kernels/box_ops_cuda.h"
#include "kernels/loss.h"
#include "kernels/loss_cuda.h"
#include "kernels/pool.h"
#include "kernels/pool_cuda.h"
#include "kernels/roi_align.h"
#include "kernels/roi_align_cuda.h"
#include "kernels/sgd.h"
#include "kernels/sgd_cuda.h"
#include "kernels/upsample.h"
#include "runtime/device.h"
#include "runtime/device_allocator.h"

namespace detnas::bench {
namespace {

namespace kc = kernels::cuda;
namespace kh = kernels::cpu;
using namespace cuda_pair;

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
    return paired(
        {{n, -8.f, 3.f}, {n}, {N}, {1}}, {n},
        [=](const Ptrs& i, const Ptrs& o) { kh::sigmoid_focal_forward<float>(N, K, i[0], i[1], i[2], fp, o[0]); },
        [=](const Ptrs& i, const Ptrs& o) {
          DevScratch ws(kernels::cuda_plan::loss_workspace_bytes(n));
          kc::sigmoid_focal_forward(N, K, i[0], i[1], i[2], fp, o[0], ws.p, rt::cuda_stream());
        },
        Tol::elementwise(), 4.0 * (2 * n + N + n), 0, x);
  const GradientMode ow = GradientMode::Overwrite;
  return paired(
      {{n, -8.f, 3.f}, {n}, {N}, {1}}, {n},
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
    return paired(
        {{n}, {n}, {n}, {1}}, {n},
        [=](const Ptrs& i, const Ptrs& o) { kh::smooth_l1_forward<float>(n, i[0], i[1], i[2], kBeta, o[0]); },
        [=](const Ptrs& i, const Ptrs& o) {
          DevScratch ws(kernels::cuda_plan::loss_workspace_bytes(n));
          kc::smooth_l1_forward(n, i[0], i[1], i[2], kBeta, o[0], ws.p, rt::cuda_stream());
        },
        Tol::elementwise(), 16.0 * n, 0, x);
  const GradientMode ow = GradientMode::Overwrite, ig = GradientMode::Ignore;
  return paired(
      {{n}, {n}, {n}, {1}}, {n},
      [=](const Ptrs& i, const Ptrs& o) {
        kh::smooth_l1_backward<float>(n, i[0], i[1], i[2], kBeta, {i[3], 0, 1.f}, o[0], ow, nullptr, ig);
      },
      [=](const Ptrs& i, const Ptrs& o) {
        kc::smooth_l1_backward(n, i[0], i[1], i[2], kBeta, {i[3], 0, 1.f}, o[0], ow, nullptr, ig, rt::cuda_stream());
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
        boxes[size_t(l - 2)].insert(boxes[size_t(l - 2)].end(), &rois.rows[size_t(5 * i)],
                                    &rois.rows[size_t(5 * i + 5)]);
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
        if (!backward && cuda)
          kc::roi_align_forward(params(l), kBatch, C, H[l], H[l], R[l], i[l], i[4 + l], o[l], rt::cuda_stream());
        if (!backward && !cuda)
          kh::roi_align_forward<float>(params(l), kBatch, C, H[l], H[l], R[l], i[l], i[4 + l], o[l]);
        if (backward && cuda)
          kc::roi_align_backward_input(params(l), kBatch, C, H[l], H[l], R[l], i[l], i[4 + l], o[l], ow,
                                       rt::cuda_stream());
        if (backward && !cuda)
          kh::roi_align_backward_input<float>(params(l), kBatch, C, H[l], H[l], R[l], i[l], i[4 + l], o[l], ow);
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
    const int64_t n = per_class
                          ? kh::batched_nms<float>(K, B->set.boxes.data(), B->set.scores.data(), B->set.classes.data(),
                                                   iou, ws.data(), ref.data())
                          : kh::nms<float>(K, B->set.boxes.data(), B->set.scores.data(), iou, ws.data(), ref.data());
    if (B->kept != n) chk.fail("kept " + std::to_string(B->kept) + " boxes, the CPU keeps " + std::to_string(n));
    for (int64_t i = 0; i < n && i < B->kept; ++i)
      chk.expect("keep", {n}, i, double(B->keep[size_t(i)]), double(ref[size_t(i)]), Tol::exact());
  };
  return c;
}

}  // namespace

void register_cuda_det_entries(Registry& r) {
  const GradientMode ow = GradientMode::Overwrite;
  for (int64_t res : {320, 800}) {
    const bool def = res == 320;
    const std::string tag = "retina@" + std::to_string(res);
    const int64_t N = kBatch * retina_anchors(res), n = 4 * N;
    const std::string fs = std::to_string(N) + "x" + std::to_string(kClasses);
    r.push_back(entry(
        tag + "/focal/fwd", "sigmoid_focal.fwd", fs, [N] { return focal_case(N, kClasses, false); }, def));
    r.push_back(entry(
        tag + "/focal/bwd", "sigmoid_focal.bwd", fs, [N] { return focal_case(N, kClasses, true); }, def));
    r.push_back(entry(
        tag + "/smooth_l1/fwd", "smooth_l1.fwd", std::to_string(N) + "x4", [n] { return smooth_l1_case(n, false); },
        def));
    r.push_back(entry(
        tag + "/smooth_l1/bwd", "smooth_l1.bwd", std::to_string(N) + "x4", [n] { return smooth_l1_case(n, true); },
        def));
    const std::string ft = "fpn@" + std::to_string(res);
    r.push_back(entry(
        ft + "/roi_align/fwd", "roi_align.fwd", "512 RoIs x 256 x 7x7 over P2..P5",
        [res] { return roi_align_case(res, false); }, def));
    r.push_back(entry(
        ft + "/roi_align/bwd", "roi_align.bwd", "512 RoIs x 256 x 7x7 over P2..P5",
        [res] { return roi_align_case(res, true); }, def));
    const int64_t P = kBatch * kFpnChannels;
    for (int l = 4; l >= 2; --l) {
      const int64_t H = level_size(res, l + 1), Ho = level_size(res, l);
      const std::string name = ft + "/upsample_P" + std::to_string(l + 1) + "toP" + std::to_string(l);
      const std::string s = nchw(kBatch, kFpnChannels, H, H) + " -> " + std::to_string(Ho) + "x" + std::to_string(Ho);
      r.push_back(entry(
          name + "/fwd", "upsample_nearest.fwd", s,
          [=] {
            return paired(
                {{P * H * H}}, {P * Ho * Ho},
                [=](const Ptrs& i, const Ptrs& o) {
                  kh::upsample_nearest2d_forward<float>(P, H, H, Ho, Ho, i[0], o[0]);
                },
                [=](const Ptrs& i, const Ptrs& o) {
                  kc::upsample_nearest2d_forward(P, H, H, Ho, Ho, i[0], o[0], rt::cuda_stream());
                },
                Tol::exact(), 4.0 * P * (H * H + Ho * Ho));
          },
          def));
      r.push_back(entry(
          name + "/bwd", "upsample_nearest.bwd", s,
          [=] {
            return paired(
                {{P * Ho * Ho}}, {P * H * H},
                [=](const Ptrs& i, const Ptrs& o) {
                  kh::upsample_nearest2d_backward_input<float>(P, H, H, Ho, Ho, i[0], o[0], ow);
                },
                [=](const Ptrs& i, const Ptrs& o) {
                  kc::upsample_nearest2d_backward_input(P, H, H, Ho, Ho, i[0], o[0], ow, rt::cuda_stream());
                },
                sum_tol(4), 4.0 * P * (H * H + Ho * Ho));
          },
          def));
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
    return paired(
        {{n}, {n, -0.01f, 0.01f}, {n, -0.01f, 0.01f}}, {n, n},
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

}  // namespace detnas::bench
#endif
