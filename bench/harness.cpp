// The bench harness: deterministic data, the worst-element checker, adaptive
// timing and machine facts. See bench/harness.h.
#include "bench/harness.h"

#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <sstream>

#ifdef DETNAS_CUDA
#include <cuda_runtime.h>

#include "kernels/cuda_check.h"
#include "runtime/device_allocator.h"
#endif
#include "core/error.h"
#include "runtime/threads.h"

namespace detnas::bench {

namespace {

uint64_t mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

constexpr uint64_t kGolden = 0x9E3779B97F4A7C15ULL;

}  // namespace

uint64_t SplitMix::next() {
  s_ += kGolden;
  return mix64(s_);
}

float SplitMix::uniform() { return float(next() >> 40) * (1.0f / 16777216.0f); }

rt::Tensor uniform_buffer(int64_t n, uint64_t seed, float lo, float hi) {
  rt::Tensor t = rt::Tensor::empty({n});
  float* p = t.data();
  const uint64_t base = mix64(seed * kGolden + 1);
  const float span = hi - lo;
#pragma omp parallel for schedule(static) if (n > (1 << 16))
  for (int64_t i = 0; i < n; ++i)
    p[i] = lo + span * float(mix64(base + uint64_t(i) * kGolden) >> 40) * (1.0f / 16777216.0f);
  return t;
}

rt::Tensor zero_buffer(int64_t n) { return rt::Tensor::zeros({n}); }

Tol Tol::reduction(int64_t K, double abs_sum) {
  return {4.0 * std::sqrt(double(std::max<int64_t>(K, 1))) * 5.960464477539063e-08 * abs_sum, 1e-6};
}

void Checker::expect(const char* what, const std::vector<int64_t>& shape, int64_t i, double got, double ref, Tol tol) {
  ++checked_;
  const double bound = tol.atol + tol.rtol * std::fabs(ref);
  const double diff = std::fabs(got - ref);
  double ratio;
  if (std::isnan(got) || std::isnan(ref))
    ratio = (std::isnan(got) && std::isnan(ref)) ? 0.0 : HUGE_VAL;
  else if (diff == 0)
    ratio = 0;
  else
    ratio = bound > 0 ? diff / bound : HUGE_VAL;
  if (ratio > 1) ok_ = false;
  if (ratio > worst_ratio_) {
    worst_ratio_ = ratio;
    worst_what_ = what;
    worst_shape_ = shape;
    worst_index_ = i;
    worst_got_ = got;
    worst_ref_ = ref;
    worst_bound_ = bound;
  }
}

void Checker::fail(const std::string& message) {
  ok_ = false;
  if (!message_.empty()) message_ += "; ";
  message_ += message;
}

std::string Checker::report() const {
  std::ostringstream os;
  if (!message_.empty()) os << message_ << (worst_ratio_ >= 0 ? "; " : "");
  if (worst_ratio_ < 0) return os.str();
  std::vector<int64_t> idx(worst_shape_.size());
  int64_t rest = worst_index_;
  for (size_t d = worst_shape_.size(); d-- > 0;) {
    idx[d] = worst_shape_[d] > 0 ? rest % worst_shape_[d] : 0;
    rest = worst_shape_[d] > 0 ? rest / worst_shape_[d] : 0;
  }
  os << "worst of " << checked_ << " checked: " << worst_what_ << rt::shape_str(idx) << " of shape "
     << rt::shape_str(worst_shape_);
  char buf[160];
  std::snprintf(buf, sizeof buf, " got %.9g ref %.9g |diff| %.3g bound %.3g", worst_got_, worst_ref_,
                std::fabs(worst_got_ - worst_ref_), worst_bound_);
  os << buf;
  return os.str();
}

std::vector<int64_t> sample_indices(int64_t n, int64_t count, uint64_t seed) {
  std::vector<int64_t> out;
  if (n <= 0) return out;
  if (n <= count) {
    for (int64_t i = 0; i < n; ++i) out.push_back(i);
    return out;
  }
  SplitMix rng(seed);
  out.push_back(0);
  out.push_back(n - 1);
  while (int64_t(out.size()) < count) out.push_back(int64_t(rng.next() % uint64_t(n)));
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

namespace {
// Warm-up: at least one call and about a tenth of the budget (caches, pages,
// the allocator, OpenBLAS buffers); the last call estimates the time per call.
// `once` runs the call once and returns its time in seconds.
Timing time_repeated(const std::function<double()>& once, double budget_s) {
  double est = once(), spent = est;
  while (spent < 0.1 * budget_s) {
    est = once();
    spent += est;
  }
  const double want = budget_s / std::max(est, 1e-9);
  const int reps = int(std::clamp(want, 3.0, 100000.0));
  std::vector<double> t(reps);
  for (int i = 0; i < reps; ++i) t[i] = once();
  std::sort(t.begin(), t.end());
  Timing r;
  r.reps = reps;
  r.min_s = t.front();
  r.median_s = reps % 2 ? t[reps / 2] : 0.5 * (t[reps / 2 - 1] + t[reps / 2]);
  return r;
}
}  // namespace

Timing time_adaptive(const std::function<void()>& f, double budget_s) {
  using Clock = std::chrono::steady_clock;
  return time_repeated(
      [&] {
        auto t0 = Clock::now();
        f();
        return std::chrono::duration<double>(Clock::now() - t0).count();
      },
      budget_s);
}

Timing time_cuda(const std::function<void()>& f, double budget_s) {
#ifdef DETNAS_CUDA
  cudaEvent_t start = nullptr, stop = nullptr;
  DETNAS_CUDA_CHECK(cudaEventCreate(&start));
  DETNAS_CUDA_CHECK(cudaEventCreate(&stop));
  cudaStream_t s = rt::cuda_stream();
  auto once = [&] {
    DETNAS_CUDA_CHECK(cudaEventRecord(start, s));
    f();
    DETNAS_CUDA_CHECK(cudaEventRecord(stop, s));
    DETNAS_CUDA_CHECK(cudaEventSynchronize(stop));
    float ms = 0;
    DETNAS_CUDA_CHECK(cudaEventElapsedTime(&ms, start, stop));
    return double(ms) * 1e-3;
  };
  Timing t;
  try {
    t = time_repeated(once, budget_s);
  } catch (...) {
    cudaEventDestroy(start);
    cudaEventDestroy(stop);
    throw;
  }
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  return t;
#else
  (void)f, (void)budget_s;
  DETNAS_FAIL("bench: CUDA timing in a build without CUDA");
#endif
}

std::string cpu_model() { return rt::cpu_model(); }

std::string loadavg() {
  std::ifstream in("/proc/loadavg");
  std::string a, b, c;
  if (!(in >> a >> b >> c)) return "unknown";
  return a + " " + b + " " + c;
}

std::string json_escape(const std::string& s) {
  std::string o;
  for (char ch : s) {
    if (ch == '"' || ch == '\\') {
      o += '\\';
      o += ch;
    } else if (static_cast<unsigned char>(ch) < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", ch);
      o += buf;
    } else {
      o += ch;
    }
  }
  return o;
}

}  // namespace detnas::bench
