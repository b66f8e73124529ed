// Path sampling.
#include "search/path_sampler.h"

#include <cstdio>

#include "core/error.h"
#include "search/cost_model.h"

namespace detnas::search {

nn::Arch sample_uniform_path(const nn::SearchSpace& space, Rng& rng) {
  nn::Arch a(static_cast<size_t>(space.total_blocks()));
  for (int& c : a) c = int(rng.below(uint64_t(space.num_choices)));
  return a;
}

nn::Arch sample_path(const nn::SearchSpace& space, const FlopsBins& bins, Rng& rng, int64_t max_tries) {
  if (!bins.enabled()) return sample_uniform_path(space, rng);
  const int64_t nbins = int64_t((bins.hi_m - bins.lo_m) / bins.step_m + 0.5);
  const int64_t b = int64_t(rng.below(uint64_t(nbins < 1 ? 1 : nbins)));
  const double lo = bins.lo_m + double(b) * bins.step_m, hi = lo + bins.step_m;
  for (int64_t t = 0; t < max_tries; ++t) {
    nn::Arch a = sample_uniform_path(space, rng);
    double f = double(backbone_flops(space, a)) * 1e-6;
    if (f >= lo && f < hi) return a;
  }
  DETNAS_FAIL("path sampling: no architecture of space ", space.name, " found with ", lo, "M <= FLOPs < ", hi, "M in ",
              max_tries, " draws (check --flops-bins against the space's range)");
}

FlopsBins parse_flops_bins(const std::string& text) {
  FlopsBins b;
  if (text.empty()) return b;
  char tail = 0;
  int n = std::sscanf(text.c_str(), "%lf:%lf:%lf%c", &b.lo_m, &b.hi_m, &b.step_m, &tail);
  DETNAS_CHECK(n == 3 && b.hi_m > b.lo_m && b.step_m > 0,
               "--flops-bins: expected LO:HI:STEP in millions with HI > LO, got '", text, "'");
  return b;
}

}  // namespace detnas::search
