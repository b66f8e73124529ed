// bench --e2e: end-to-end speed of the detector (training step, inference,
// one search-candidate evaluation) on synthetic data, with peak RSS and the
// caching allocator's high-water mark per case.
// Not here: the kernel entries (bench/entries_*.cpp), argument parsing
// (bench/main.cpp).
#pragma once
#include <string>

namespace detnas::bench {

struct E2eOptions {
  std::string space = "300M";  // backbone search space ("300M", "tiny", ...)
  int steps = 3;               // timed training steps per case (after 2 warm-up steps)
  int infer_reps = 3;          // timed batch-1 800x800 inferences (after 1 warm-up)
  int eval_images = 256;       // images of the search-candidate evaluation (BN recalibration and inference)
  bool quick = false;          // 320 only, random path only
  bool json = false;
  std::string filter;        // ECMAScript regex: only the cases whose name matches (empty: all)
  std::string json_context;  // appended to every JSON line (machine, threads, rev, ...)
};

// Runs every case and prints a table (or JSON lines). Returns 0, or 1 on an error.
int run_e2e(const E2eOptions& o);

}  // namespace detnas::bench
