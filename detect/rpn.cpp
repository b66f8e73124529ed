// RPN: head module, anchors, balanced sampler, targets + loss through the
// bce_with_logits / smooth_l1_loss ops, and proposal generation on host data.
#include "detect/rpn.h"

#include <algorithm>
#include <cmath>
#include <exception>
#include <memory>

#include "detect/postprocess.h"
#include "runtime/ops_box.h"
#include "runtime/ops_elementwise.h"
#include "runtime/ops_loss.h"

namespace detnas::det {

// ---- head -----------------------------------------------------------------

RpnHead::RpnHead(int64_t channels, int64_t num_anchors, float init_std, Rng& rng) {
  DETNAS_CHECK(channels > 0 && num_anchors > 0, "RpnHead: bad sizes channels=", channels, " anchors=", num_anchors);
  nn::ConvOptions co;
  co.in = channels;
  co.out = channels;
  co.kernel = 3;
  co.bias = nn::Bias::With;
  co.init = nn::ConvInit::FixedStd;
  co.init_std = init_std;
  conv = register_module("conv", std::make_unique<nn::Conv2d>(co, rng));
  nn::ConvOptions c1 = co;
  c1.kernel = 1;
  c1.out = num_anchors;
  cls_logits = register_module("cls_logits", std::make_unique<nn::Conv2d>(c1, rng));
  c1.out = num_anchors * 4;
  bbox_pred = register_module("bbox_pred", std::make_unique<nn::Conv2d>(c1, rng));
}

std::pair<rt::Tensor, rt::Tensor> RpnHead::forward(const rt::Tensor& p) const {
  rt::Tensor t = rt::ops::relu(conv->forward(p));
  return {cls_logits->forward(t), bbox_pred->forward(t)};
}

rt::Tensor rpn_anchors(const AnchorGenerator& gen, const std::vector<HW>& feature_sizes) {
  DETNAS_CHECK(int64_t(feature_sizes.size()) == gen.num_levels(), "rpn_anchors: ", feature_sizes.size(),
               " feature maps for ", gen.num_levels(), " anchor levels");
  std::vector<HW> strides;
  for (size_t l = 0; l < feature_sizes.size(); ++l) strides.push_back({int64_t(4) << l, int64_t(4) << l});
  std::vector<float> a = gen.grid_anchors(feature_sizes, strides);
  return rt::Tensor::from_vector({int64_t(a.size() / 4), 4}, a);
}

// ---- sampler ----------------------------------------------------------------

static std::vector<int64_t> random_subset(std::vector<int64_t> cand, int64_t k, Rng& rng) {
  const int64_t n = int64_t(cand.size());
  for (int64_t i = 0; i < k; ++i) {
    const int64_t j = i + int64_t(rng.below(uint64_t(n - i)));
    std::swap(cand[size_t(i)], cand[size_t(j)]);
  }
  cand.resize(static_cast<size_t>(k));
  std::sort(cand.begin(), cand.end());
  return cand;
}

SampledIndices balanced_sample(const std::vector<int>& labels, int64_t batch_size, float positive_fraction, Rng& rng) {
  DETNAS_CHECK(batch_size >= 0 && positive_fraction >= 0 && positive_fraction <= 1, "balanced_sample: batch size ",
               batch_size, " and positive fraction ", positive_fraction, " (need >= 0 and in [0, 1])");
  std::vector<int64_t> pos, neg;
  for (size_t i = 0; i < labels.size(); ++i) {
    if (labels[i] == 1) pos.push_back(int64_t(i));
    if (labels[i] == 0) neg.push_back(int64_t(i));
  }
  const int64_t num_pos = std::min(int64_t(double(batch_size) * double(positive_fraction)), int64_t(pos.size()));
  const int64_t num_neg = std::min(batch_size - num_pos, int64_t(neg.size()));
  SampledIndices s;
  s.pos = random_subset(std::move(pos), num_pos, rng);
  s.neg = random_subset(std::move(neg), num_neg, rng);
  return s;
}

// ---- loss -------------------------------------------------------------------

static void check_targets(const char* op, const Targets& t, int64_t image) {
  DETNAS_CHECK(t.boxes.size() == 4 * t.labels.size(), op, ": image ", image, " has ", t.boxes.size() / 4, " boxes and ",
               t.labels.size(), " labels");
  for (size_t j = 0; j < t.labels.size(); ++j) {
    const float* b = t.boxes.data() + 4 * j;
    DETNAS_CHECK(std::isfinite(b[0]) && std::isfinite(b[1]) && std::isfinite(b[2]) && std::isfinite(b[3]) &&
                     b[2] > b[0] && b[3] > b[1],
                 op, ": image ", image, " box ", j, " (", b[0], ", ", b[1], ", ", b[2], ", ", b[3],
                 ") is not finite with x2 > x1 and y2 > y1");
  }
}

RpnLosses rpn_loss(const rt::Tensor& objectness, const rt::Tensor& deltas, const rt::Tensor& anchors,
                   const std::vector<Targets>& targets, const RpnOptions& o, Rng& rng, const BatchPart& part,
                   std::vector<SampledIndices>* sampled) {
  DETNAS_CHECK(objectness.dim() == 3 && objectness.size(2) == 1 && deltas.dim() == 3 && deltas.size(2) == 4 &&
                   objectness.size(0) == deltas.size(0) && objectness.size(1) == deltas.size(1) && anchors.dim() == 2 &&
                   anchors.size(1) == 4 && anchors.size(0) == objectness.size(1),
               "rpn_loss: objectness ", rt::shape_str(objectness.shape()), ", deltas ", rt::shape_str(deltas.shape()),
               ", anchors ", rt::shape_str(anchors.shape()), " do not agree");
  const int64_t N = objectness.size(0), T = objectness.size(1);
  DETNAS_CHECK(int64_t(targets.size()) == N, "rpn_loss: ", targets.size(), " targets for ", N, " images");
  BoxCoder coder;  // RPN weights (1, 1, 1, 1)
  const std::vector<float> av = anchors.to_vector();
  std::vector<float> cls_t(size_t(N * T), 0.0f), cls_w(size_t(N * T), 0.0f);
  std::vector<float> box_t(size_t(N * T * 4), 0.0f), box_w(size_t(N * T * 4), 0.0f);
  RpnLosses r;
  if (sampled) sampled->clear();
  const uint64_t step_seed = rng.next_u64();
  for (int64_t n = 0; n < N; ++n) {
    Rng img_rng = image_rng(step_seed, part.first + n, 0);
    const Targets& t = targets[size_t(n)];
    check_targets("rpn_loss", t, n);
    const int64_t M = int64_t(t.labels.size());
    std::vector<int64_t> m(size_t(T), kBelowLow);
    if (M > 0) m = match(rt::ops::box_iou(rt::Tensor::from_vector({M, 4}, t.boxes), anchors), o.matcher);
    std::vector<int> lab(static_cast<size_t>(T));
    for (int64_t i = 0; i < T; ++i) lab[size_t(i)] = m[size_t(i)] >= 0 ? 1 : (m[size_t(i)] == kBelowLow ? 0 : -1);
    SampledIndices s = balanced_sample(lab, o.batch_size_per_image, o.positive_fraction, img_rng);
    for (int64_t i : s.neg) cls_w[size_t(n * T + i)] = 1.0f;
    for (int64_t i : s.pos) {
      const size_t row = size_t(n * T + i);
      cls_w[row] = 1.0f;
      cls_t[row] = 1.0f;
      coder.encode(1, av.data() + i * 4, t.boxes.data() + m[size_t(i)] * 4, box_t.data() + row * 4);
      std::fill(box_w.begin() + int64_t(row) * 4, box_w.begin() + int64_t(row) * 4 + 4, 1.0f);
    }
    r.num_sampled += int64_t(s.pos.size() + s.neg.size());
    r.num_pos += int64_t(s.pos.size());
    if (sampled) sampled->push_back(std::move(s));
  }
  int64_t sampled_all = r.num_sampled;  // of the global batch (BatchPart)
  part.sum_counts(&sampled_all, 1);
  const float norm = float(1.0 / double(std::max<int64_t>(1, sampled_all)));
  const rt::Device dev = objectness.device();  // targets are built on the host
  r.cls = rt::ops::bce_with_logits(objectness.reshape({N * T}), rt::Tensor::from_vector({N * T}, cls_t).to(dev),
                                   Reduction::Sum, rt::Tensor::from_vector({N * T}, cls_w).to(dev));
  r.cls = rt::ops::mul_scalar(r.cls, norm);
  r.box = rt::ops::smooth_l1_loss(deltas.reshape({N * T, 4}), rt::Tensor::from_vector({N * T, 4}, box_t).to(dev),
                                  o.smooth_l1_beta, Reduction::Sum, rt::Tensor::from_vector({N * T, 4}, box_w).to(dev));
  r.box = rt::ops::mul_scalar(r.box, norm);
  return r;
}

// ---- proposals ----------------------------------------------------------------

std::vector<Proposals> generate_proposals(const std::vector<rt::Tensor>& objectness,
                                          const std::vector<rt::Tensor>& deltas, const std::vector<rt::Tensor>& anchors,
                                          const std::vector<HW>& sizes, const ProposalParams& p) {
  const size_t L = objectness.size();
  DETNAS_CHECK(L > 0 && deltas.size() == L && anchors.size() == L, "generate_proposals: ", objectness.size(),
               " objectness, ", deltas.size(), " delta and ", anchors.size(), " anchor levels");
  DETNAS_CHECK(p.pre_nms_top_n > 0 && p.post_nms_top_n > 0, "generate_proposals: pre_nms_top_n ", p.pre_nms_top_n,
               " and post_nms_top_n ", p.post_nms_top_n, " must be positive");
  const int64_t N = int64_t(sizes.size());
  std::vector<std::vector<float>> obj_h(L), del_h(L), anc_h(L);
  std::vector<int64_t> T(L);
  for (size_t l = 0; l < L; ++l) {
    const rt::Tensor& ob = objectness[l];
    DETNAS_CHECK((ob.dim() == 2 || (ob.dim() == 3 && ob.size(2) == 1)) && ob.size(0) == N, "generate_proposals: level ",
                 l, " objectness ", rt::shape_str(ob.shape()), " is not (", N, ",T) or (", N, ",T,1)");
    T[l] = ob.size(1);
    DETNAS_CHECK(deltas[l].dim() == 3 && deltas[l].size(0) == N && deltas[l].size(1) == T[l] && deltas[l].size(2) == 4,
                 "generate_proposals: level ", l, " deltas ", rt::shape_str(deltas[l].shape()), " vs objectness ",
                 rt::shape_str(ob.shape()));
    DETNAS_CHECK(anchors[l].dim() == 2 && anchors[l].size(0) == T[l] && anchors[l].size(1) == 4,
                 "generate_proposals: level ", l, " anchors ", rt::shape_str(anchors[l].shape()), " vs objectness ",
                 rt::shape_str(ob.shape()));
    obj_h[l] = ob.to_vector();
    del_h[l] = deltas[l].to_vector();
    anc_h[l] = anchors[l].to_vector();
  }
  for (int64_t n = 0; n < N; ++n)
    DETNAS_CHECK(sizes[size_t(n)].h > 0 && sizes[size_t(n)].w > 0, "generate_proposals: image ", n, " size ",
                 sizes[size_t(n)].h, "x", sizes[size_t(n)].w, " must be positive");
  BoxCoder coder;  // RPN weights (1, 1, 1, 1)
  auto one_image = [&](int64_t n) {
    const float H = float(sizes[size_t(n)].h), W = float(sizes[size_t(n)].w);
    std::vector<float> boxes, scores;
    std::vector<int64_t> levels;
    for (size_t l = 0; l < L; ++l) {
      const float* sc = obj_h[l].data() + n * T[l];
      const LevelCandidates c = level_top_candidates(sc, T[l], 1, std::nullopt, p.pre_nms_top_n, coder, anc_h[l].data(),
                                                     del_h[l].data() + n * T[l] * 4, H, W);
      for (size_t k = 0; k < c.index.size(); ++k) {
        const int64_t i = c.index[k];
        DETNAS_CHECK(std::isfinite(sc[i]), "generate_proposals: non-finite objectness ", sc[i], " at image ", n,
                     " level ", l, " anchor ", i);
        const float* b = c.boxes.data() + k * 4;
        if (!has_min_side(b, p.min_size)) continue;  // also drops NaN boxes
        boxes.insert(boxes.end(), b, b + 4);
        scores.push_back(sc[i]);
        levels.push_back(int64_t(l));
      }
    }
    Proposals pr;
    for (int64_t i : batched_nms_top(boxes, scores, levels, p.nms_thresh, p.post_nms_top_n)) {
      pr.boxes.insert(pr.boxes.end(), boxes.begin() + i * 4, boxes.begin() + i * 4 + 4);
      pr.scores.push_back(scores[size_t(i)]);
    }
    return pr;
  };
  // Images are independent: one per thread. An error thrown for an image is
  // kept and rethrown after the loop (the first image's, in image order).
  std::vector<Proposals> out(static_cast<size_t>(N));
  std::vector<std::exception_ptr> err(static_cast<size_t>(N));
#pragma omp parallel for schedule(dynamic, 1) if (N > 1)
  for (int64_t n = 0; n < N; ++n) {
    try {
      out[size_t(n)] = one_image(n);
    } catch (...) {
      err[size_t(n)] = std::current_exception();
    }
  }
  for (const std::exception_ptr& e : err)
    if (e) std::rethrow_exception(e);
  return out;
}

}  // namespace detnas::det
