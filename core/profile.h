// Stage profiler: wall time per named scope, nested scopes reported under their
// parents ("detect/box_head/conv2d"), switched on by the environment variable
// DETNAS_PROFILE (any value but "0"). When off, a scope costs one branch on a
// flag read once. The table goes to stderr at process exit, or when
// profile_report() is called, in tree order, with calls, total and self ms and
// the share of the root scopes' time. Scopes are meant for the host thread that
// drives a forward (not inside OpenMP regions: other threads are not timed).
// On CUDA the times are host times (kernel launches are asynchronous).
// Not here: kernel counters or FLOPs (bench/), tracing formats.
#pragma once
#include <chrono>

namespace detnas::prof {

bool enabled();  // DETNAS_PROFILE set and not "0" (read once)

class Scope {
 public:
  explicit Scope(const char* name) : on_(enabled()) {
    if (on_) begin(name);
  }
  ~Scope() {
    if (on_) end();
  }
  Scope(const Scope&) = delete;
  Scope& operator=(const Scope&) = delete;

 private:
  void begin(const char* name);
  void end();
  bool on_;
  std::chrono::steady_clock::time_point t0_;
};

// Prints the table of everything timed since the last report to stderr and starts
// counting again (no-op when off or when nothing was timed).
void profile_report();

}  // namespace detnas::prof

#define DETNAS_PROFILE_CAT2(a, b) a##b
#define DETNAS_PROFILE_CAT(a, b) DETNAS_PROFILE_CAT2(a, b)
#define DETNAS_PROFILE_SCOPE(name) ::detnas::prof::Scope DETNAS_PROFILE_CAT(detnas_profile_scope_, __LINE__)(name)
