// Matcher (torchvision det_utils.Matcher, golden README "matcher"): assigns each
// prediction (anchor / proposal) a ground-truth index from an (M gt, N predictions)
// quality matrix (usually IoU), or kBelowLow / kBetweenThresholds.
// Not here: computing the quality matrix (rt::ops::box_iou), sampling (detect/ heads).
#pragma once
#include <cstdint>
#include <vector>

#include "runtime/tensor.h"

namespace detnas::det {

enum class LowQualityMatches { Drop, Allow };

struct MatcherParams {
  float high_threshold = 0.5f;  // value >= high: matched to the argmax gt
  float low_threshold = 0.4f;   // value <  low: kBelowLow; in [low, high): kBetweenThresholds
  LowQualityMatches low_quality = LowQualityMatches::Allow;
};

constexpr int64_t kBelowLow = -1;
constexpr int64_t kBetweenThresholds = -2;

// quality (M,N) row-major float32 -> matches (N). Per prediction: the gt with the
// highest value (first on ties) if that value >= high, else -2 if >= low, else -1
// (float32 comparisons). With LowQualityMatches::Allow, then for every gt, every
// prediction whose value equals that gt's row maximum (ties included) gets the
// argmax over gts of its own column back. M == 0 (an image without ground truth)
// gives all kBelowLow. Errors on NaN values or low > high.
std::vector<int64_t> match(const float* quality, int64_t M, int64_t N, const MatcherParams& p);
std::vector<int64_t> match(const rt::Tensor& quality, const MatcherParams& p);

}  // namespace detnas::det
