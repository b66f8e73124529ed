// ONNX export of a detector's inference graph for one path (DESIGN.md "exported
// models"): every conv -> BN pair folded into one Conv (in double, then float),
// the stride-1 units' channel split as two Gathers with constant channel lists
// (ShuffleNetV2's shuffle + halves, or even/odd), concat as Concat, nearest 2x
// upsampling as Resize (asymmetric, floor), FPN Faster R-CNN's P6 as MaxPool
// k1 s2, the heads' (N, A*C, H, W) -> (N, H*W*A, C) as Transpose + Reshape.
// Outputs are raw (no decoding, no NMS) unless OnnxOptions::nms:
//   RetinaNet            one graph, input "images" (N,3,H,W); outputs cls_p3..p7
//                        (N, H*W*A, K) logits, box_p3..p7 (N, H*W*A, 4) deltas,
//                        and "anchors" (T, 4) for the fixed input size;
//   FPN Faster R-CNN     two graphs: OUT (stage 1, "images" -> p2..p5 features,
//                        rpn_objectness_p2..p6 (N, H*W*A, 1), rpn_deltas_p2..p6
//                        (N, H*W*A, 4), "anchors") and OUT's ".box_head.onnx"
//                        twin (stage 2, "roi_features" (R, C, 7, 7) from RoIAlign
//                        of the proposals -> "class_logits" (R, K+1),
//                        "box_deltas" (R, 4(K+1))).
// The anchors rows follow the outputs' row order (levels concatenated). With
// `dynamic` (symbolic N, H, W) there is no anchors output: the metadata states the
// rules that generate them. Not here: RoIAlign and FPN Faster R-CNN's decoding inside a graph.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "detect/detector.h"
#include "runtime/tensor.h"

namespace detnas::exporter {

struct OnnxOptions {
  int64_t height = 320, width = 320;  // fixed input size (multiples of 32)
  int64_t batch = 1;
  bool dynamic = false;  // symbolic batch, height and width
  int opset = 17;
  // RetinaNet only, batch 1, fixed size: decoded, NMS-ed detections (export/onnx_nms.h)
  // instead of the raw outputs; a second input "image_size" (2) = the unpadded
  // (height, width) the boxes are clipped to; outputs "boxes" (D,4) in input pixels,
  // "scores" (D), "labels" (D, int64, 0..K-1).
  bool nms = false;
  std::map<std::string, std::string> metadata;  // added to the model's metadata_props
};

struct OnnxExport {
  std::vector<std::string> files;  // the graphs written (1 or 2)
  int64_t bytes = 0, nodes = 0, initializers = 0;
};

// Writes the graph(s) of `net` on `path` (empty for a standalone network) in its
// current BN statistics (Eval mode); see the header comment.
OnnxExport export_onnx(det::Detector& net, const nn::Arch& path, const OnnxOptions& o, const std::string& out);

// The second graph's file name for FPN Faster R-CNN: "x.onnx" -> "x.box_head.onnx".
std::string box_head_file(const std::string& out);

// What detnas's own Eval-mode forward gives for the exported outputs, by output
// name, on `images` (N,3,H,W) (FPN Faster R-CNN: stage 1's outputs, and with
// roi_features (R,C,7,7) defined also class_logits and box_deltas of stage 2).
std::map<std::string, rt::Tensor> reference_outputs(det::Detector& net, const nn::Arch& path, const rt::Tensor& images,
                                                    const rt::Tensor& roi_features = {});

}  // namespace detnas::exporter
