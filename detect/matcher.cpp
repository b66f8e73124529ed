// Matcher: column argmax, threshold bands, then the low-quality rule.
#include "detect/matcher.h"

#include <cmath>

#include "core/error.h"

namespace detnas::det {

std::vector<int64_t> match(const float* q, int64_t M, int64_t N, const MatcherParams& p) {
  DETNAS_CHECK(!std::isnan(p.low_threshold) && !std::isnan(p.high_threshold) && p.low_threshold <= p.high_threshold,
               "matcher: low_threshold ", p.low_threshold, " must be <= high_threshold ", p.high_threshold);
  DETNAS_CHECK(M >= 0 && N >= 0, "matcher: negative size ", M, "x", N);
  for (int64_t i = 0; i < M * N; ++i)
    DETNAS_CHECK(!std::isnan(q[i]), "matcher: NaN in the quality matrix at gt ", i / N, ", prediction ", i % N, " (", M,
                 "x", N, ")");
  std::vector<int64_t> matches(size_t(N), kBelowLow);
  if (M == 0 || N == 0) return matches;

  // Per prediction: best gt (first on ties) and its value.
  std::vector<int64_t> best(size_t(N), 0);
  std::vector<float> best_val(q, q + N);
  for (int64_t g = 1; g < M; ++g)
    for (int64_t n = 0; n < N; ++n)
      if (q[g * N + n] > best_val[size_t(n)]) {
        best_val[size_t(n)] = q[g * N + n];
        best[size_t(n)] = g;
      }
  for (int64_t n = 0; n < N; ++n) {
    const float v = best_val[size_t(n)];
    if (v >= p.high_threshold)
      matches[size_t(n)] = best[size_t(n)];
    else if (v >= p.low_threshold)
      matches[size_t(n)] = kBetweenThresholds;
    else
      matches[size_t(n)] = kBelowLow;
  }
  if (p.low_quality == LowQualityMatches::Allow) {
    for (int64_t g = 0; g < M; ++g) {
      const float* row = q + g * N;
      float row_max = row[0];
      for (int64_t n = 1; n < N; ++n) row_max = row[n] > row_max ? row[n] : row_max;
      for (int64_t n = 0; n < N; ++n)
        if (row[n] == row_max) matches[size_t(n)] = best[size_t(n)];
    }
  }
  return matches;
}

std::vector<int64_t> match(const rt::Tensor& quality, const MatcherParams& p) {
  rt::check_defined("matcher", quality, "quality matrix");
  DETNAS_CHECK(quality.dim() == 2, "matcher: quality matrix must be (M gt, N predictions), got ",
               rt::shape_str(quality.shape()));
  rt::require_cpu("matcher", {&quality});
  rt::Tensor q = quality.contiguous();
  return match(q.data(), q.size(0), q.size(1), p);
}

}  // namespace detnas::det
