// Anchor generator (torchvision AnchorGenerator semantics, golden README
// "anchor_generator"): per level a list of sizes and aspect ratios (ratio = h/w);
// cell anchors computed in float32 and rounded half-to-even; shifted over each
// feature map in row-major (y, then x) order with the level's stride; levels
// concatenated. RetinaNet (3 sizes x 3 ratios per level) and RPN (1 size x 3
// ratios) presets. Not here: matching anchors to ground truth (detect/matcher.h).
#pragma once
#include <cstdint>
#include <vector>

#include "runtime/tensor.h"

namespace detnas::det {

struct HW {
  int64_t h = 0, w = 0;
};

class AnchorGenerator {
 public:
  // sizes[l], aspect_ratios[l]: the lists of level l (both non-empty, same number of levels).
  AnchorGenerator(std::vector<std::vector<float>> sizes, std::vector<std::vector<float>> aspect_ratios);

  // RetinaNet: levels with base sizes 32, 64, ... (x2 per level) and per level the
  // sizes (s, int(s*2^(1/3)), int(s*2^(2/3))) -- integer-truncated as torchvision's
  // retinanet_resnet50_fpn, e.g. (32, 40, 50) -- and ratios (0.5, 1, 2): 9 per location.
  static AnchorGenerator retinanet(int64_t num_levels = 5, float smallest = 32);
  // RPN (FPN Faster R-CNN): one size per level 32, 64, ... and ratios (0.5, 1, 2).
  static AnchorGenerator rpn(int64_t num_levels = 5, float smallest = 32);

  int64_t num_levels() const { return int64_t(sizes_.size()); }
  // A_l = |ratios_l| * |sizes_l|.
  int64_t num_anchors_per_location(int64_t level) const;
  // (A_l, 4) cell anchors of level l, x1,y1,x2,y2 centred on 0: for each ratio
  // (outer) and size (inner) round([-ws, -hs, ws, hs] / 2).
  const std::vector<float>& cell_anchors(int64_t level) const;

  // Anchors over the given feature maps with explicit strides: (sum_l H_l*W_l*A_l, 4).
  std::vector<float> grid_anchors(const std::vector<HW>& feature_sizes, const std::vector<HW>& strides) const;
  // As grid_anchors with stride = image size // feature size per axis, as a Tensor.
  rt::Tensor anchors(HW image_size, const std::vector<HW>& feature_sizes) const;
  // Total anchor count for these feature maps.
  int64_t num_anchors(const std::vector<HW>& feature_sizes) const;

 private:
  std::vector<std::vector<float>> sizes_, ratios_;
  std::vector<std::vector<float>> cells_;  // per level (A_l*4)
};

// Cell anchors of one level (exposed for tests): round-half-to-even in float32.
std::vector<float> make_cell_anchors(const std::vector<float>& sizes, const std::vector<float>& aspect_ratios);

}  // namespace detnas::det
