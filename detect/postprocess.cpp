// RetinaNet post-processing on host data: threshold, per-level top-k, decode,
// clip, batched NMS, top detections, rescale; the shared steps of the two-stage detector.
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
      // Candidates (flat index t*K + k) above the threshold, best first; ties by index.
      std::vector<int64_t> cand;
      std::vector<float> sc(size_t(T * K));
      for (int64_t i = 0; i < T * K; ++i) {
        sc[size_t(i)] = float(1.0 / (1.0 + std::exp(-double(logit[i]))));
        if (sc[size_t(i)] > p.score_thresh) cand.push_back(i);
      }
      const int64_t keep = std::min<int64_t>(int64_t(cand.size()), p.pre_nms_top_n);
      auto better = [&](int64_t a, int64_t b) { return sc[size_t(a)] > sc[size_t(b)] || (sc[size_t(a)] == sc[size_t(b)] && a < b); };
      std::partial_sort(cand.begin(), cand.begin() + keep, cand.end(), better);
      cand.resize(size_t(keep));
      for (int64_t i : cand) {
        const int64_t t = i / K, k = i % K;
        float b[4];
        decode_clip(coder, anc_h[l].data() + t * 4, box_h[l].data() + (n * T + t) * 4, float(m.height), float(m.width),
                    b);
        boxes.insert(boxes.end(), b, b + 4);
        scores.push_back(sc[size_t(i)]);
        labels.push_back(k);
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
