// RetinaNet's post-processing (detect/postprocess.h) as ONNX nodes, for
// `export --postprocess nms`: per level the top pre_nms_top_n (anchor, class)
// pairs by sigmoid score (TopK; ties by lower index, as ours), decoded against
// their anchors (kernels/box_coder.h's formula: weights, dw/dh clipped at
// log(1000/16)) and clipped to the unpadded image [0,W]x[0,H]; all levels
// together: per-class NonMaxSuppression (score > score_thresh, IoU > nms_thresh
// suppresses, torchvision's IoU without +1) and the detections_per_image best.
// Batch 1, fixed input size. Internal to export/.
#pragma once
#include <string>
#include <vector>

#include "detect/postprocess.h"
#include "export/onnx_graph.h"
#include "runtime/tensor.h"

namespace detnas::exporter {

struct NmsOutputs {
  std::string boxes, scores, labels;  // (D,4) float, (D) float, (D) int64
};

// cls[l] (1, T_l, K) logits and box[l] (1, T_l, 4) deltas (graph values),
// anchors[l] (T_l, 4) (constants), image_size a graph input (2) = unpadded
// (height, width) of the resized image.
NmsOutputs retinanet_nms(OnnxGraph& g, const std::vector<std::string>& cls, const std::vector<std::string>& box,
                         const std::vector<rt::Tensor>& anchors, int64_t K, const std::string& image_size,
                         const kernels::BoxCoderParams& coder, const det::PostprocessParams& p);

}  // namespace detnas::exporter
