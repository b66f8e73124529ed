// The shapes the bench times: per stage of a supernet (derived from
// nn::blocks(space), batch 2, square input) and per level of the FPN /
// RetinaNet heads, plus the box sets for RoIAlign and NMS (generated with
// SplitMix so bench/compare/torch_bench.py builds the very same boxes).
// Not here: the entries (bench/entries_*.cpp).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace detnas::bench {

constexpr int64_t kBatch = 2;
constexpr int64_t kFpnChannels = 256;
constexpr int64_t kAnchorsPerCell = 9;  // RetinaNet: 3 scales x 3 aspect ratios
constexpr int64_t kClasses = 80;        // COCO

// A (space, input size) pair; in_default marks the configurations of the default run.
struct NetConfig {
  std::string space;  // "300M", "1.3G"
  int64_t res = 0;    // square input side
  bool in_default = true;
  std::string tag() const;  // "300M@320"
};
std::vector<NetConfig> net_configs();

// One stage of the backbone at batch kBatch.
struct StageShape {
  int stage = 1;  // 1..4 (outputs C2..C5)
  // The first stride-1 block: the main branch maps main_in -> mid -> main_out at H x H.
  int64_t H = 0, width = 0, main_in = 0, mid = 0;
  // The stride-2 block (first of the stage): its main-branch DW runs on mid
  // channels from H_in x H_in to H x H; in_channels enter the block.
  int64_t s2_in = 0, s2_mid = 0, H_in = 0;
};
struct BackboneShapes {
  int64_t stem_out = 0, stem_H = 0;  // stem conv 3x3 s2: 3 -> stem_out at res -> stem_H
  std::vector<StageShape> stages;
};
BackboneShapes backbone_shapes(const std::string& space, int64_t res);

// Side of pyramid level l (2..7) at input res: C2..C5 follow the backbone
// (stride 4..32), P6 and P7 are 3x3 stride-2 convs (RetinaNet).
int64_t level_size(int64_t res, int level);
// Total anchors of RetinaNet (P3..P7, kAnchorsPerCell per cell) for one image.
int64_t retina_anchors(int64_t res);

// RoIs for a two-stage FPN head: R boxes over kBatch images of side res,
// row (batch_index, x1, y1, x2, y2), and their FPN level (2..5, torchvision's
// LevelMapper: floor(4 + log2(sqrt(area) / 224) + 1e-6) clamped).
struct RoiSet {
  std::vector<float> rows;  // R x 5
  std::vector<int> level;   // R
};
RoiSet make_rois(int64_t R, int64_t res, uint64_t seed);

// NMS input: K boxes (x1,y1,x2,y2) in clusters of ~20 overlapping boxes over a
// res x res image, scores in [0,1), classes in [0, kClasses).
struct BoxSet {
  std::vector<float> boxes, scores;  // K x 4, K
  std::vector<int64_t> classes;      // K
};
BoxSet make_nms_boxes(int64_t K, int64_t res, uint64_t seed);

}  // namespace detnas::bench
