// RoI heads: level mapping, multi-scale RoIAlign (per-level roi_align op, rows
// concatenated through reshape + concat), the 4conv1fc box head, RoI sampling,
// the loss through softmax_cross_entropy / smooth_l1_loss, and post-processing.
#include "detect/roi_heads.h"

#include <algorithm>
#include <cmath>
#include <memory>
#include <string>

#include "detect/rpn.h"
#include "runtime/ops_elementwise.h"
#include "runtime/ops_loss.h"
#include "runtime/ops_shape.h"

namespace detnas::det {

int64_t fpn_roi_level(const float* b, int64_t k_min, int64_t k_max) {
  const double area = (double(b[2]) - b[0]) * (double(b[3]) - b[1]);
  const double s = std::sqrt(std::max(area, 0.0));
  const double k = std::floor(4.0 + std::log2(s / 224.0) + 1e-6);  // log2(0) = -inf: clamped below
  if (!(k >= double(k_min))) return k_min;                         // also NaN
  if (k >= double(k_max)) return k_max;
  return int64_t(k);
}

rt::Tensor multiscale_roi_align(const std::vector<rt::Tensor>& features, const std::vector<float>& rois,
                                const rt::ops::RoiAlignParams& p, std::vector<int64_t>* order, int64_t k_min) {
  DETNAS_CHECK(!features.empty() && rois.size() % 5 == 0, "multiscale_roi_align: ", features.size(),
               " feature maps and ", rois.size(), " RoI values (need >= 1 level and rows of 5)");
  const int64_t L = int64_t(features.size()), R = int64_t(rois.size() / 5);
  const int64_t C = features[0].size(1);
  for (int64_t l = 0; l < L; ++l)
    DETNAS_CHECK(features[size_t(l)].dim() == 4 && features[size_t(l)].size(1) == C &&
                     features[size_t(l)].size(0) == features[0].size(0),
                 "multiscale_roi_align: level ", l, " features ", rt::shape_str(features[size_t(l)].shape()),
                 " vs level 0 ", rt::shape_str(features[0].shape()));
  std::vector<std::vector<int64_t>> per(static_cast<size_t>(L));
  for (int64_t i = 0; i < R; ++i)
    per[size_t(fpn_roi_level(rois.data() + i * 5 + 1, k_min, k_min + L - 1) - k_min)].push_back(i);
  order->clear();
  std::vector<rt::Tensor> parts;
  for (int64_t l = 0; l < L; ++l) {
    const std::vector<int64_t>& ids = per[size_t(l)];
    if (ids.empty()) continue;
    std::vector<float> b;
    b.reserve(ids.size() * 5);
    for (int64_t i : ids) b.insert(b.end(), rois.begin() + i * 5, rois.begin() + i * 5 + 5);
    rt::ops::RoiAlignParams pl = p;
    pl.spatial_scale = float(1.0 / double(int64_t(1) << (k_min + l)));
    rt::Tensor y = rt::ops::roi_align(
        features[size_t(l)], rt::Tensor::from_vector({int64_t(ids.size()), 5}, b).to(features[size_t(l)].device()), pl);
    parts.push_back(y.reshape({1, -1}));
    order->insert(order->end(), ids.begin(), ids.end());
  }
  if (parts.empty()) return rt::Tensor::zeros({0, C, p.pooled_h, p.pooled_w});
  rt::Tensor all = parts.size() == 1 ? parts[0] : rt::ops::concat(parts);
  return all.reshape({R, C, p.pooled_h, p.pooled_w});
}

// ---- box head -----------------------------------------------------------------

BoxHead::BoxHead(int64_t channels, int64_t pooled, int64_t depth, int64_t fc_dim, int64_t num_classes,
                 float bn_momentum, Rng& rng)
    : channels_(channels), pooled_(pooled), num_classes_(num_classes) {
  DETNAS_CHECK(channels > 0 && pooled > 0 && depth >= 0 && fc_dim > 0 && num_classes > 0,
               "BoxHead: bad sizes channels=", channels, " pooled=", pooled, " depth=", depth, " fc_dim=", fc_dim,
               " classes=", num_classes);
  nn::ConvOptions co;
  co.in = channels;
  co.out = channels;
  co.kernel = 3;
  co.bias = nn::Bias::None;
  co.init = nn::ConvInit::FixedStd;
  co.init_std = 0.01f;
  for (int64_t i = 0; i < depth; ++i)
    convs_.push_back(register_module("conv." + std::to_string(i),
                                     std::make_unique<nn::ConvBn>(co, nn::Act::Relu, rng, bn_momentum)));
  const int64_t in = channels * pooled * pooled;
  fc6_ = register_module("fc6", std::make_unique<nn::Linear>(in, fc_dim, nn::Bias::With, rng));
  const double bound = std::sqrt(3.0 / double(in));  // kaiming_uniform_(a=1)
  float* w = fc6_->weight.data();
  for (int64_t i = 0, n = fc6_->weight.numel(); i < n; ++i) w[i] = float(rng.uniform(-bound, bound));
  cls_score_ =
      register_module("cls_score", std::make_unique<nn::Linear>(fc_dim, num_classes + 1, nn::Bias::With, rng, 0.01f));
  bbox_pred_ = register_module(
      "bbox_pred", std::make_unique<nn::Linear>(fc_dim, 4 * (num_classes + 1), nn::Bias::With, rng, 0.001f));
}

std::pair<rt::Tensor, rt::Tensor> BoxHead::forward(const rt::Tensor& x_in) {
  rt::check_defined("BoxHead", x_in, "input");
  DETNAS_CHECK(x_in.dim() == 4 && x_in.size(1) == channels_ && x_in.size(2) == pooled_ && x_in.size(3) == pooled_,
               "BoxHead: input ", rt::shape_str(x_in.shape()), " is not (R,", channels_, ",", pooled_, ",", pooled_,
               ")");
  rt::Tensor x = x_in;
  for (auto* c : convs_) x = c->forward(x);
  x = rt::ops::relu(fc6_->forward(x.reshape({x.size(0), -1})));
  return {cls_score_->forward(x), bbox_pred_->forward(x)};
}

// ---- sampling and loss ----------------------------------------------------------

RoiSamples sample_rois(const std::vector<std::vector<float>>& proposals, const std::vector<Targets>& targets,
                       const RoiHeadsOptions& o, Rng& rng, const BatchPart& part,
                       std::vector<SampledIndices>* sampled) {
  DETNAS_CHECK(proposals.size() == targets.size(), "sample_rois: proposals for ", proposals.size(),
               " images, targets for ", targets.size());
  BoxCoder coder(o.box_weights);
  RoiSamples s;
  if (sampled) sampled->clear();
  const uint64_t step_seed = rng.next_u64();
  for (size_t n = 0; n < proposals.size(); ++n) {
    Rng img_rng = image_rng(step_seed, part.first + int64_t(n), 1);
    const Targets& t = targets[n];
    const int64_t M = int64_t(t.labels.size());
    DETNAS_CHECK(proposals[n].size() % 4 == 0 && t.boxes.size() == 4 * t.labels.size(), "sample_rois: image ", n,
                 " has ", proposals[n].size(), " proposal values, ", t.boxes.size(), " box values and ", M, " labels");
    std::vector<float> props = proposals[n];
    props.insert(props.end(), t.boxes.begin(), t.boxes.end());  // ground truth appended
    const int64_t P = int64_t(props.size() / 4);
    std::vector<int64_t> m(size_t(P), kBelowLow);
    if (M > 0 && P > 0)
      m = match(rt::ops::box_iou(rt::Tensor::from_vector({M, 4}, t.boxes), rt::Tensor::from_vector({P, 4}, props)),
                o.matcher);
    std::vector<int> lab(static_cast<size_t>(P));
    for (int64_t i = 0; i < P; ++i) lab[size_t(i)] = m[size_t(i)] >= 0 ? 1 : (m[size_t(i)] == kBelowLow ? 0 : -1);
    SampledIndices si = balanced_sample(lab, o.batch_size_per_image, o.positive_fraction, img_rng);
    for (int64_t i : si.pos) {
      const int64_t g = m[size_t(i)];
      DETNAS_CHECK(t.labels[size_t(g)] >= 0, "sample_rois: image ", n, " label ", t.labels[size_t(g)], " of box ", g,
                   " is negative");
      s.rois.push_back(float(n));
      s.rois.insert(s.rois.end(), props.begin() + i * 4, props.begin() + i * 4 + 4);
      s.labels.push_back(t.labels[size_t(g)] + 1);
      float code[4];
      coder.encode(1, props.data() + i * 4, t.boxes.data() + g * 4, code);
      s.box_targets.insert(s.box_targets.end(), code, code + 4);
      ++s.num_pos;
    }
    for (int64_t i : si.neg) {
      s.rois.push_back(float(n));
      s.rois.insert(s.rois.end(), props.begin() + i * 4, props.begin() + i * 4 + 4);
      s.labels.push_back(0);
      s.box_targets.insert(s.box_targets.end(), 4, 0.0f);
    }
    if (sampled) sampled->push_back(std::move(si));
  }
  return s;
}

RoiLosses roi_loss(const rt::Tensor& cls, const rt::Tensor& deltas, const std::vector<int64_t>& labels,
                   const std::vector<float>& box_targets, const RoiHeadsOptions& o, const BatchPart& part) {
  DETNAS_CHECK(cls.dim() == 2 && deltas.dim() == 2 && cls.size(0) == deltas.size(0) &&
                   deltas.size(1) == 4 * cls.size(1) && int64_t(labels.size()) == cls.size(0) &&
                   box_targets.size() == 4 * labels.size(),
               "roi_loss: logits ", rt::shape_str(cls.shape()), ", deltas ", rt::shape_str(deltas.shape()), ", ",
               labels.size(), " labels and ", box_targets.size() / 4, " box targets do not agree");
  const int64_t R = cls.size(0), K1 = cls.size(1);
  int64_t R_all = R;  // of the global batch (BatchPart)
  part.sum_counts(&R_all, 1);
  RoiLosses l;
  if (R == 0) {
    l.cls = rt::Tensor::scalar(0.0f);
    l.box = rt::Tensor::scalar(0.0f);
    return l;
  }
  for (int64_t i = 0; i < R; ++i)
    DETNAS_CHECK(labels[size_t(i)] >= 0 && labels[size_t(i)] < K1, "roi_loss: label ", labels[size_t(i)], " of RoI ", i,
                 " outside [0, ", K1, ")");
  l.cls = rt::ops::softmax_cross_entropy(cls, labels, 0.0f, Reduction::Mean);
  // The mean over this process's RoIs as its share of the mean over the batch's
  // (exactly the mean when one process holds the whole batch).
  if (R_all != R) l.cls = rt::ops::mul_scalar(l.cls, float(double(R) / double(R_all)));
  // Targets / weights over every (RoI, class) row: only the positive RoI's own class counts.
  std::vector<float> t(size_t(R * K1 * 4), 0.0f), w(size_t(R * K1 * 4), 0.0f);
  for (int64_t i = 0; i < R; ++i) {
    const int64_t k = labels[size_t(i)];
    if (k == 0) continue;
    const size_t row = size_t((i * K1 + k) * 4);
    std::copy(box_targets.begin() + i * 4, box_targets.begin() + i * 4 + 4, t.begin() + int64_t(row));
    std::fill(w.begin() + int64_t(row), w.begin() + int64_t(row) + 4, 1.0f);
  }
  l.box = rt::ops::smooth_l1_loss(deltas.reshape({R * K1, 4}),
                                  rt::Tensor::from_vector({R * K1, 4}, t).to(deltas.device()), o.smooth_l1_beta,
                                  Reduction::Sum, rt::Tensor::from_vector({R * K1, 4}, w).to(deltas.device()));
  l.box = rt::ops::mul_scalar(l.box, float(1.0 / double(R_all)));
  return l;
}

// ---- inference --------------------------------------------------------------------

std::vector<std::vector<Detection>> roi_postprocess(const rt::Tensor& cls, const rt::Tensor& deltas,
                                                    const std::vector<float>& rois, const std::vector<ImageMeta>& metas,
                                                    const RoiHeadsOptions& o) {
  DETNAS_CHECK(cls.dim() == 2 && deltas.dim() == 2 && cls.size(0) == deltas.size(0) &&
                   deltas.size(1) == 4 * cls.size(1) && int64_t(rois.size()) == 5 * cls.size(0) && cls.size(1) >= 2,
               "roi_postprocess: logits ", rt::shape_str(cls.shape()), ", deltas ", rt::shape_str(deltas.shape()),
               " and ", rois.size() / 5, " RoIs do not agree");
  const int64_t R = cls.size(0), K1 = cls.size(1), N = int64_t(metas.size());
  const std::vector<float> cv = cls.to_vector(), dv = deltas.to_vector();
  BoxCoder coder(o.box_weights);
  std::vector<std::vector<float>> boxes(static_cast<size_t>(N)), scores(static_cast<size_t>(N));
  std::vector<std::vector<int64_t>> labels(static_cast<size_t>(N));
  std::vector<double> prob(static_cast<size_t>(K1));
  for (int64_t i = 0; i < R; ++i) {
    const float bi = rois[size_t(i * 5)];
    DETNAS_CHECK(bi >= 0 && bi < float(N) && bi == std::floor(bi), "roi_postprocess: RoI ", i, " batch index ", bi,
                 " outside [0, ", N, ")");
    const int64_t n = int64_t(bi);
    const ImageMeta& m = metas[size_t(n)];
    const float* logit = cv.data() + i * K1;
    double mx = logit[0], z = 0;
    for (int64_t k = 1; k < K1; ++k) mx = std::max(mx, double(logit[k]));
    for (int64_t k = 0; k < K1; ++k) z += (prob[size_t(k)] = std::exp(double(logit[k]) - mx));
    for (int64_t k = 1; k < K1; ++k) {
      const float sc = float(prob[size_t(k)] / z);
      if (!(sc > o.score_thresh)) continue;
      float b[4];
      decode_clip(coder, rois.data() + i * 5 + 1, dv.data() + (i * K1 + k) * 4, float(m.height), float(m.width), b);
      if (!has_min_side(b, o.min_size)) continue;
      boxes[size_t(n)].insert(boxes[size_t(n)].end(), b, b + 4);
      scores[size_t(n)].push_back(sc);
      labels[size_t(n)].push_back(k - 1);
    }
  }
  std::vector<std::vector<Detection>> out(static_cast<size_t>(N));
  for (size_t n = 0; n < out.size(); ++n)
    out[n] = original_detections(metas[n],
                                 batched_nms_top(boxes[n], scores[n], labels[n], o.nms_thresh, o.detections_per_image),
                                 boxes[n], scores[n], labels[n]);
  return out;
}

}  // namespace detnas::det
