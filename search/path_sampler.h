// Single-path sampling for supernet training (SPOS): a uniformly random
// architecture per iteration, optionally rejection-sampled into FLOPs bins (the
// reference code's option: pick one of the bins [lo, lo+step), ... up to hi
// uniformly, then draw uniform paths until one falls in it).
#pragma once
#include <cstdint>

#include "nn/space.h"
#include "runtime/rng.h"

namespace detnas::search {

struct FlopsBins {
  double lo_m = 0, hi_m = 0, step_m = 10;  // in millions of MACs at 224x224; hi <= lo disables
  bool enabled() const { return hi_m > lo_m && step_m > 0; }
};

nn::Arch sample_uniform_path(const nn::SearchSpace& space, Rng& rng);
// Gives up with an error naming the bin after `max_tries` draws.
nn::Arch sample_path(const nn::SearchSpace& space, const FlopsBins& bins, Rng& rng, int64_t max_tries = 100000);
FlopsBins parse_flops_bins(const std::string& text);  // "LO:HI:STEP" in M, e.g. "290:360:10"

}  // namespace detnas::search
