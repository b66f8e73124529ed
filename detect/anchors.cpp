// Anchor generation: cell anchors per level and their shifts over feature maps.
#include "detect/anchors.h"

#include <cfenv>
#include <cmath>

#include "core/error.h"

namespace detnas::det {

std::vector<float> make_cell_anchors(const std::vector<float>& sizes, const std::vector<float>& aspect_ratios) {
  // Round-half-to-even needs the default rounding mode; std::nearbyint honours it.
  DETNAS_CHECK(std::fegetround() == FE_TONEAREST, "anchors: floating-point rounding mode is not round-to-nearest");
  std::vector<float> cells;
  cells.reserve(sizes.size() * aspect_ratios.size() * 4);
  for (float ratio : aspect_ratios) {
    // float32 throughout, as torchvision computes on float32 tensors.
    const float h_ratio = std::sqrt(ratio);
    const float w_ratio = 1.0f / h_ratio;
    for (float size : sizes) {
      const float ws = w_ratio * size, hs = h_ratio * size;
      const float v[4] = {-ws / 2.0f, -hs / 2.0f, ws / 2.0f, hs / 2.0f};
      for (float x : v) cells.push_back(std::nearbyint(x));
    }
  }
  return cells;
}

AnchorGenerator::AnchorGenerator(std::vector<std::vector<float>> sizes, std::vector<std::vector<float>> aspect_ratios)
    : sizes_(std::move(sizes)), ratios_(std::move(aspect_ratios)) {
  DETNAS_CHECK(!sizes_.empty(), "anchors: no levels");
  DETNAS_CHECK(sizes_.size() == ratios_.size(), "anchors: ", sizes_.size(), " levels of sizes but ", ratios_.size(),
               " levels of aspect ratios");
  for (size_t l = 0; l < sizes_.size(); ++l) {
    DETNAS_CHECK(!sizes_[l].empty() && !ratios_[l].empty(), "anchors: level ", l, " has no sizes or no aspect ratios");
    for (float s : sizes_[l])
      DETNAS_CHECK(std::isfinite(s) && s > 0, "anchors: level ", l, " size ", s, " must be positive");
    for (float r : ratios_[l])
      DETNAS_CHECK(std::isfinite(r) && r > 0, "anchors: level ", l, " aspect ratio ", r, " must be positive");
    cells_.push_back(make_cell_anchors(sizes_[l], ratios_[l]));
  }
}

AnchorGenerator AnchorGenerator::retinanet(int64_t num_levels, float smallest) {
  DETNAS_CHECK(num_levels >= 1, "anchors: retinanet needs >= 1 level, got ", num_levels);
  std::vector<std::vector<float>> sizes, ratios;
  double s = smallest;
  for (int64_t l = 0; l < num_levels; ++l, s *= 2) {
    // torchvision: (x, int(x * 2 ** (1.0 / 3)), int(x * 2 ** (2.0 / 3))) in double.
    sizes.push_back(
        {float(s), float(std::trunc(s * std::pow(2.0, 1.0 / 3))), float(std::trunc(s * std::pow(2.0, 2.0 / 3)))});
    ratios.push_back({0.5f, 1.0f, 2.0f});
  }
  return AnchorGenerator(sizes, ratios);
}

AnchorGenerator AnchorGenerator::rpn(int64_t num_levels, float smallest) {
  DETNAS_CHECK(num_levels >= 1, "anchors: rpn needs >= 1 level, got ", num_levels);
  std::vector<std::vector<float>> sizes, ratios;
  double s = smallest;
  for (int64_t l = 0; l < num_levels; ++l, s *= 2) {
    sizes.push_back({float(s)});
    ratios.push_back({0.5f, 1.0f, 2.0f});
  }
  return AnchorGenerator(sizes, ratios);
}

int64_t AnchorGenerator::num_anchors_per_location(int64_t level) const {
  DETNAS_CHECK(level >= 0 && level < num_levels(), "anchors: level ", level, " out of range [0, ", num_levels(), ")");
  return int64_t(cells_[size_t(level)].size() / 4);
}

const std::vector<float>& AnchorGenerator::cell_anchors(int64_t level) const {
  DETNAS_CHECK(level >= 0 && level < num_levels(), "anchors: level ", level, " out of range [0, ", num_levels(), ")");
  return cells_[size_t(level)];
}

int64_t AnchorGenerator::num_anchors(const std::vector<HW>& feature_sizes) const {
  DETNAS_CHECK(int64_t(feature_sizes.size()) == num_levels(), "anchors: ", feature_sizes.size(), " feature maps for ",
               num_levels(), " levels");
  int64_t n = 0;
  for (size_t l = 0; l < feature_sizes.size(); ++l)
    n += feature_sizes[l].h * feature_sizes[l].w * int64_t(cells_[l].size() / 4);
  return n;
}

std::vector<float> AnchorGenerator::grid_anchors(const std::vector<HW>& feature_sizes,
                                                 const std::vector<HW>& strides) const {
  DETNAS_CHECK(feature_sizes.size() == strides.size(), "anchors: ", feature_sizes.size(), " feature maps but ",
               strides.size(), " strides");
  for (size_t l = 0; l < feature_sizes.size(); ++l) {
    DETNAS_CHECK(feature_sizes[l].h >= 0 && feature_sizes[l].w >= 0, "anchors: level ", l, " feature size ",
                 feature_sizes[l].h, "x", feature_sizes[l].w, " is negative");
    DETNAS_CHECK(strides[l].h >= 1 && strides[l].w >= 1, "anchors: level ", l, " stride ", strides[l].h, "x",
                 strides[l].w, " must be >= 1");
  }
  std::vector<float> out(size_t(num_anchors(feature_sizes) * 4));
  size_t o = 0;
  for (size_t l = 0; l < feature_sizes.size(); ++l) {
    const std::vector<float>& cell = cells_[l];
    const size_t A = cell.size() / 4;
    for (int64_t y = 0; y < feature_sizes[l].h; ++y) {
      const float sy = float(y * strides[l].h);
      for (int64_t x = 0; x < feature_sizes[l].w; ++x) {
        const float sx = float(x * strides[l].w);
        for (size_t a = 0; a < A; ++a) {
          out[o++] = cell[a * 4 + 0] + sx;
          out[o++] = cell[a * 4 + 1] + sy;
          out[o++] = cell[a * 4 + 2] + sx;
          out[o++] = cell[a * 4 + 3] + sy;
        }
      }
    }
  }
  return out;
}

rt::Tensor AnchorGenerator::anchors(HW image_size, const std::vector<HW>& feature_sizes) const {
  std::vector<HW> strides;
  for (size_t l = 0; l < feature_sizes.size(); ++l) {
    DETNAS_CHECK(feature_sizes[l].h >= 1 && feature_sizes[l].w >= 1, "anchors: level ", l, " feature size ",
                 feature_sizes[l].h, "x", feature_sizes[l].w, " must be >= 1");
    DETNAS_CHECK(image_size.h >= feature_sizes[l].h && image_size.w >= feature_sizes[l].w, "anchors: image ",
                 image_size.h, "x", image_size.w, " smaller than level ", l, " feature map ", feature_sizes[l].h, "x",
                 feature_sizes[l].w);
    strides.push_back({image_size.h / feature_sizes[l].h, image_size.w / feature_sizes[l].w});
  }
  std::vector<float> a = grid_anchors(feature_sizes, strides);
  const int64_t n = int64_t(a.size() / 4);
  return rt::Tensor::from_vector({n, 4}, a);
}

}  // namespace detnas::det
