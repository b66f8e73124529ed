// RetinaNet post-processing on host data: threshold, per-level top-k, decode,
// clip, batched NMS, top detections, rescale; the shared steps of the two-stage detector
// (the RPN's per-level top-k, decode + clip, batched NMS + top-n, rescale).
#include "detect/postprocess.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "runtime/ops_box.h"

namespace detnas::det {

void decode_clip(const BoxCoder& coder, const float* anchor, const float* code, float height, float width, float* b) {
  coder.decode(1, anchor, code, b);
  b[0] = std::clamp(b[0], 0.0f, width);
  b[2] = std::clamp(b[2], 0.0f, width);
  b[1] = std::clamp(b[1], 0.0f, height);
  b[3] = std::clamp(b[3], 0.0f, height);
}

LevelCandidates level_top_candidates(const float* scores, int64_t count, int64_t per_anchor,
                                     std::optional<float> min_score, int64_t top_n, const BoxCoder& coder,
                                     const float* anchors, const float* codes, float height, float width) {
  DETNAS_CHECK(count >= 0 && per_anchor > 0 && count % per_anchor == 0, "level_top_candidates: ", count, " scores for ",
               per_anchor, " per anchor");
  LevelCandidates c;
  std::vector<int64_t>& cand = c.index;
  if (min_score) {
    for (int64_t i = 0; i < count; ++i)
      if (scores[i] > *min_score) cand.push_back(i);
  } else {
    cand.resize(static_cast<size_t>(count));
    std::iota(cand.begin(), cand.end(), int64_t(0));
  }
  const int64_t keep = std::clamp<int64_t>(top_n, 0, int64_t(cand.size()));
  std::partial_sort(cand.begin(), cand.begin() + keep, cand.end(),
                    [&](int64_t a, int64_t b) { return scores[a] > scores[b] || (scores[a] == scores[b] && a < b); });
  cand.resize(static_cast<size_t>(keep));
  c.boxes.resize(static_cast<size_t>(keep) * 4);
  for (int64_t j = 0; j < keep; ++j) {
    const int64_t t = cand[size_t(j)] / per_anchor;
    decode_clip(coder, anchors + t * 4, codes + t * 4, height, width, c.boxes.data() + j * 4);
  }
  return c;
}

std::vector<int64_t> batched_nms_top(const std::vector<float>& boxes, const std::vector<float>& scores,
                                     const std::vector<int64_t>& groups, float iou_thresh, int64_t top_n) {
  const int64_t M = int64_t(scores.size());
  if (M == 0) return {};
  std::vector<int64_t> kept = rt::ops::batched_nms(rt::Tensor::from_vector({M, 4}, boxes),
                                                   rt::Tensor::from_vector({M}, scores), groups, iou_thresh);
  std::stable_sort(kept.begin(), kept.end(), [&](int64_t a, int64_t b) {
    return scores[size_t(a)] > scores[size_t(b)] || (scores[size_t(a)] == scores[size_t(b)] && a < b);
  });
  if (int64_t(kept.size()) > top_n) kept.resize(static_cast<size_t>(top_n));
  return kept;
}

std::vector<Detection> original_detections(const ImageMeta& m, const std::vector<int64_t>& kept,
                                           const std::vector<float>& boxes, const std::vector<float>& scores,
                                           const std::vector<int64_t>& labels) {
  std::vector<Detection> out;
  for (int64_t i : kept) {
    const float* b = boxes.data() + i * 4;
    out.push_back({m.image_id, labels[size_t(i)], scores[size_t(i)], float(b[0] / m.scale_x), float(b[1] / m.scale_y),
                   float(b[2] / m.scale_x), float(b[3] / m.scale_y)});
  }
  return out;
}

std::vector<std::vector<Detection>> retinanet_postprocess(const std::vector<rt::Tensor>& cls,
                                                          const std::vector<rt::Tensor>& box,
                                                          const std::vector<rt::Tensor>& anchors,
                                                          const std::vector<ImageMeta>& metas, const BoxCoder& coder,
                                                          const PostprocessParams& p) {
  const size_t L = cls.size();
  DETNAS_CHECK(L > 0 && box.size() == L && anchors.size() == L, "retinanet_postprocess: ", cls.size(), " class, ",
               box.size(), " box and ", anchors.size(), " anchor levels");
  const int64_t N = int64_t(metas.size());
  std::vector<std::vector<Detection>> out(static_cast<size_t>(N));
  std::vector<std::vector<float>> cls_h(L), box_h(L), anc_h(L);
  int64_t K = 0;
  for (size_t l = 0; l < L; ++l) {
    DETNAS_CHECK(cls[l].dim() == 3 && cls[l].size(0) == N, "retinanet_postprocess: level ", l, " logits ",
                 rt::shape_str(cls[l].shape()), " for ", N, " images");
    const int64_t T = cls[l].size(1);
    DETNAS_CHECK(box[l].dim() == 3 && box[l].size(0) == N && box[l].size(1) == T && box[l].size(2) == 4,
                 "retinanet_postprocess: level ", l, " deltas ", rt::shape_str(box[l].shape()), " vs logits ",
                 rt::shape_str(cls[l].shape()));
    DETNAS_CHECK(anchors[l].dim() == 2 && anchors[l].size(0) == T && anchors[l].size(1) == 4,
                 "retinanet_postprocess: level ", l, " anchors ", rt::shape_str(anchors[l].shape()), " vs logits ",
                 rt::shape_str(cls[l].shape()));
    K = cls[l].size(2);
    cls_h[l] = cls[l].to_vector();
    box_h[l] = box[l].to_vector();
    anc_h[l] = anchors[l].to_vector();
  }
  for (int64_t n = 0; n < N; ++n) {
    const ImageMeta& m = metas[size_t(n)];
    std::vector<float> boxes, scores;
    std::vector<int64_t> labels;
    for (size_t l = 0; l < L; ++l) {
      const int64_t T = cls[l].size(1);
      const float* logit = cls_h[l].data() + n * T * K;
      std::vector<float> sc(size_t(T * K));
      for (int64_t i = 0; i < T * K; ++i) sc[size_t(i)] = float(1.0 / (1.0 + std::exp(-double(logit[i]))));
      const LevelCandidates c =
          level_top_candidates(sc.data(), T * K, K, p.score_thresh, p.pre_nms_top_n, coder, anc_h[l].data(),
                               box_h[l].data() + n * T * 4, float(m.height), float(m.width));
      boxes.insert(boxes.end(), c.boxes.begin(), c.boxes.end());
      for (int64_t i : c.index) {
        scores.push_back(sc[size_t(i)]);
        labels.push_back(i % K);
      }
    }
    out[size_t(n)] = original_detections(
        m, batched_nms_top(boxes, scores, labels, p.nms_thresh, p.detections_per_image), boxes, scores, labels);
  }
  return out;
}

std::vector<data::CocoDetection> to_coco_detections(const std::vector<std::vector<Detection>>& dets,
                                                    const std::vector<int64_t>& label_to_category) {
  std::vector<data::CocoDetection> out;
  for (const auto& img : dets)
    for (const Detection& d : img) {
      DETNAS_CHECK(d.label >= 0 && d.label < int64_t(label_to_category.size()), "to_coco_detections: label ", d.label,
                   " outside [0, ", label_to_category.size(), ")");
      data::CocoDetection c;
      c.image_id = d.image_id;
      c.category_id = label_to_category[size_t(d.label)];
      c.bbox = {d.x1, d.y1, double(d.x2) - d.x1, double(d.y2) - d.y1};
      c.score = d.score;
      out.push_back(c);
    }
  return out;
}

}  // namespace detnas::det
