// RetinaNet inference post-processing (maskrcnn-benchmark RetinaNetPostProcessor,
// DETNAS.md): per level keep sigmoid scores > score_thresh, the top pre_nms_top_n
// (anchor, class) pairs of the level, decode them against their anchors, clip to
// the unpadded resized image [0,W]x[0,H]; over all levels per-class NMS, then the
// detections_per_image best; boxes mapped back to original image coordinates
// (x / scale_x, y / scale_y). Not differentiable (runs on plain data).
// Also the steps the RPN proposals and the RoI heads' post-processing share with
// it: per-level top-k + decode + clip, box side filter, batched NMS + top-n, rescale.
// Not here: the network (detect/retinanet.h), COCO JSON writing (data/).
#pragma once
#include <cstdint>
#include <optional>
#include <vector>

#include "data/coco.h"
#include "detect/box_coder.h"
#include "runtime/tensor.h"

namespace detnas::det {

struct PostprocessParams {
  float score_thresh = 0.05f;
  int64_t pre_nms_top_n = 1000;  // per level
  float nms_thresh = 0.4f;
  int64_t detections_per_image = 100;
};

// One input image of a batch: its id, the size of the resized image inside the
// padded batch, and the resize factors new/original per axis.
struct ImageMeta {
  int64_t image_id = 0;
  int64_t height = 0, width = 0;
  double scale_x = 1.0, scale_y = 1.0;
};

struct Detection {
  int64_t image_id = 0;
  int64_t label = 0;  // contiguous label 0..K-1
  float score = 0;
  float x1 = 0, y1 = 0, x2 = 0, y2 = 0;  // original image coordinates
};

// cls[l] (N,T_l,K) logits, box[l] (N,T_l,4) deltas, anchors[l] (T_l,4); metas.size() == N.
// Result: per image, detections in decreasing score order.
std::vector<std::vector<Detection>> retinanet_postprocess(const std::vector<rt::Tensor>& cls,
                                                          const std::vector<rt::Tensor>& box,
                                                          const std::vector<rt::Tensor>& anchors,
                                                          const std::vector<ImageMeta>& metas, const BoxCoder& coder,
                                                          const PostprocessParams& p);

// Decodes one box from `code` against `anchor` and clips it to [0,width]x[0,height]: box[4] =
void decode_clip(const BoxCoder& coder, const float* anchor, const float* code, float height, float width, float* box);

// The pre-NMS selection of one FPN level, shared by RetinaNet and the RPN. scores[count]
// are anchor-major: index i = anchor t * per_anchor + class k (per_anchor 1 for the RPN).
// Keeps the indices whose score is > *min_score (every index when min_score is empty),
// the top_n best of them by decreasing score (ties by lower index), best first, and
// decodes each against anchors[t] and codes[t] (t = i / per_anchor), clipped to
// [0,width]x[0,height] (decode_clip).
struct LevelCandidates {
  std::vector<int64_t> index;  // flat indices t * per_anchor + k, best first
  std::vector<float> boxes;    // (index.size(), 4), decoded and clipped
};
LevelCandidates level_top_candidates(const float* scores, int64_t count, int64_t per_anchor,
                                     std::optional<float> min_score, int64_t top_n, const BoxCoder& coder,
                                     const float* anchors, const float* codes, float height, float width);

// Whether both sides of box (x1,y1,x2,y2) are >= min_size; false for NaN coordinates.
inline bool has_min_side(const float* box, float min_size) {
  return box[2] - box[0] >= min_size && box[3] - box[1] >= min_size;
}

// boxes (M,4), scores (M), groups (M): NMS at iou_thresh within each group, then
// the top_n best kept indices by decreasing score (ties by lower index). Empty when M = 0.
std::vector<int64_t> batched_nms_top(const std::vector<float>& boxes, const std::vector<float>& scores,
                                     const std::vector<int64_t>& groups, float iou_thresh, int64_t top_n);

// Detections of rows `kept` of boxes (M,4), scores and labels (in that order), boxes
// mapped back to original image coordinates (x / scale_x, y / scale_y in double).
std::vector<Detection> original_detections(const ImageMeta& m, const std::vector<int64_t>& kept,
                                           const std::vector<float>& boxes, const std::vector<float>& scores,
                                           const std::vector<int64_t>& labels);

// COCO results (bbox x,y,w,h) with category ids from the dataset's label mapping.
std::vector<data::CocoDetection> to_coco_detections(const std::vector<std::vector<Detection>>& dets,
                                                    const std::vector<int64_t>& label_to_category);

}  // namespace detnas::det
