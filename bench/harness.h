// The bench harness: what an entry is (a named kernel call at one shape with its
// reference check and its byte / FLOP count), deterministic input data, the
// checker that finds the worst element against a reference, the machine's
// ceilings, adaptive timing and the text / JSON reports.
// Not here: the entries themselves (bench/entries_*.cpp), the shapes of the
// networks (bench/shapes.h), argument parsing (bench/main.cpp).
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "runtime/tensor.h"

namespace detnas::bench {

// ---- deterministic data ----------------------------------------------------

// splitmix64: the same stream as bench/compare/torch_bench.py, so both sides
// time the same boxes for NMS and RoIAlign.
class SplitMix {
 public:
  explicit SplitMix(uint64_t seed) : s_(seed) {}
  uint64_t next();
  float uniform();  // [0, 1), 24 random bits (exact in float)

 private:
  uint64_t s_;
};

// A float buffer of n elements (64-byte aligned, from the runtime's allocator)
// filled with values uniform in [lo, hi), element i a hash of (seed, i).
rt::Tensor uniform_buffer(int64_t n, uint64_t seed, float lo = -1.f, float hi = 1.f);
rt::Tensor zero_buffer(int64_t n);

// ---- validation ------------------------------------------------------------

// Tolerances (the project's policy, tests/test_util.h, restated here because the
// bench does not link the tests): |got - ref| <= atol + rtol*|ref|.
//   data movement                          exact
//   elementwise float32                    atol 1e-6, rtol 1e-5
//   sums of K terms in float32             atol 4*sqrt(K)*2^-24*sum|terms|, rtol 1e-6
struct Tol {
  double atol = 0, rtol = 0;
  static Tol exact() { return {0, 0}; }
  static Tol elementwise() { return {1e-6, 1e-5}; }
  static Tol reduction(int64_t K, double abs_sum);
};

// Keeps the worst compared element (largest |got - ref| / bound).
class Checker {
 public:
  // Element i (flat) of tensor `what` with shape `shape`.
  void expect(const char* what, const std::vector<int64_t>& shape, int64_t i, double got, double ref, Tol tol);
  // A failure that is not one element (e.g. a different number of kept boxes).
  void fail(const std::string& message);
  bool ok() const { return ok_; }
  int64_t checked() const { return checked_; }
  std::string report() const;  // the worst element: tensor, multi-index, got, ref, bound

 private:
  bool ok_ = true;
  int64_t checked_ = 0;
  double worst_ratio_ = -1;
  std::string worst_what_, message_;
  std::vector<int64_t> worst_shape_;
  int64_t worst_index_ = 0;
  double worst_got_ = 0, worst_ref_ = 0, worst_bound_ = 0;
};

// Up to `count` flat indices in [0, n), spread over the whole range (first and
// last included, the rest pseudo-random), or all of them when n <= count.
std::vector<int64_t> sample_indices(int64_t n, int64_t count, uint64_t seed);

// ---- entries ---------------------------------------------------------------

struct Case {
  std::function<void()> run;               // the timed call
  std::function<void(Checker&)> validate;  // runs the kernel and compares with the reference
  double bytes = 0;                        // bytes read + written per call (0: not reported)
  double flops = 0;                        // 2 * multiply-adds per call (0: not reported)
};

struct Entry {
  std::string name;                                    // "300M@320/stage2/dw_k5s1/bwd_w": what --filter matches
  std::string op;                                      // "conv2d.bwd_w": what bench/compare maps to a torch call
  std::string shape;                                   // human-readable shape
  std::vector<std::pair<std::string, double>> params;  // the numbers bench/compare needs
  bool in_default = true;                              // part of the default run (else --all)
  bool cuda = false;                                   // a CUDA entry ("cuda/..."): run by --cuda only
  std::function<Case()> make;                          // allocates and fills the inputs (not timed)
};
using Registry = std::vector<Entry>;

void register_conv_entries(Registry& r);  // bench/entries_conv.cpp
void register_data_entries(Registry& r);  // bench/entries_data.cpp
void register_det_entries(Registry& r);   // bench/entries_det.cpp
void register_misc_entries(Registry& r);  // bench/entries_misc.cpp
void register_cuda_entries(Registry& r);  // bench/entries_cuda.cpp (none without CUDA)

// ---- machine, timing, reports ----------------------------------------------

struct Ceilings {
  double copy_gbps = 0;     // large parallel copy, bytes read + written / min time
  double update_gbps = 0;   // large parallel in-place update (read and write the same buffer)
  double bw_gbps = 0;       // the bandwidth ceiling: max(copy_gbps, update_gbps)
  double sgemm_gflops = 0;  // large sgemm, 2*M*N*K / min time
};

struct Timing {
  double min_s = 0, median_s = 0;
  int reps = 0;
};

// One warm-up call estimates the time, then repeats to about budget_s (at least 3).
Timing time_adaptive(const std::function<void()>& f, double budget_s);
// The same for a call that launches work on rt::cuda_stream(): each repetition is
// timed with a pair of CUDA events around it (throws in a build without CUDA).
Timing time_cuda(const std::function<void()>& f, double budget_s);

std::string cpu_model();  // "model name" of /proc/cpuinfo
std::string loadavg();    // the first three fields of /proc/loadavg
std::string json_escape(const std::string& s);

}  // namespace detnas::bench
