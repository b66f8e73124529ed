// Test helpers: the project's one tolerance policy, comparisons that report the
// worst element, finite-difference and adjoint checkers in double, skips.
//
// Tolerance policy (STYLE.md), by op class:
//   data movement (shuffle, split, concat, upsample)  bit-exact
//   elementwise float32                               |a-b| <= 1e-6 + 1e-5*|b|
//   reductions of length K (float32 accumulation)     |a-b| <= 4*sqrt(K)*2^-24 * scale
//   golden forward values (torch float64 refs)        |a-b| <= 1e-5*max(1,max|ref|) + 1e-5*|ref|
//   golden gradients / reduced losses                 |a-b| <= 1e-5*max(1,max|ref|) + 1e-4*|ref|
//   gradients vs central differences in double        |a-b| <= 1e-6 * (1 + |b|)
// A test that needs a looser bound says why next to it.
#pragma once
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace detnas::test {

extern int g_run_cases, g_failed_cases, g_skipped_cases;

// Marks the current test case as skipped with a visible reason.
void test_skip(const std::string& reason);

struct Tol {
  double atol = 0, rtol = 0;
  static Tol exact() { return {0, 0}; }
  static Tol elementwise() { return {1e-6, 1e-5}; }
  static Tol reduction(int64_t K, double scale = 1.0) {
    return {4.0 * std::sqrt(double(K)) * 5.960464477539063e-08 * scale, 1e-6};
  }
  static Tol golden_forward(double max_abs_ref) { return {1e-5 * std::max(1.0, max_abs_ref), 1e-5}; }
  static Tol golden_grad(double max_abs_ref) { return {1e-5 * std::max(1.0, max_abs_ref), 1e-4}; }
  static Tol finite_diff() { return {1e-6, 1e-6}; }
};

// Compares got[i] with ref[i] for all i; on failure reports the worst index (as a
// multi-index of `shape`), both values and the shape. Returns true when close.
bool check_close(const std::string& what, const std::vector<double>& got, const std::vector<double>& ref,
                 const std::vector<int64_t>& shape, Tol tol);
template <typename T>
std::vector<double> to_double(const T* p, int64_t n) {
  return std::vector<double>(p, p + n);
}
template <typename T>
std::vector<double> to_double(const std::vector<T>& v) {
  return std::vector<double>(v.begin(), v.end());
}
double max_abs(const std::vector<double>& v);
// check_close of two float vectors of equal length, as one flat tensor.
inline bool same(const char* what, const std::vector<float>& got, const std::vector<float>& ref,
                 Tol tol = Tol::exact()) {
  return check_close(what, to_double(got), to_double(ref), {int64_t(ref.size())}, tol);
}

// Central-difference gradient of f at x (double), step h per element.
std::vector<double> numeric_grad(const std::function<double(const std::vector<double>&)>& f, std::vector<double> x,
                                 double h = 1e-6);
double dot(const std::vector<double>& a, const std::vector<double>& b);

// Deterministic test data.
std::vector<double> randn(int64_t n, uint64_t seed, double scale = 1.0);
std::vector<float> randn_f(int64_t n, uint64_t seed, double scale = 1.0);

// The detnas binary built beside this test binary (BUILD/tests/run_tests ->
// BUILD/bin/detnas); make test builds both.
std::string detnas_binary();
// `text` (search.jsonl, state.json) without the evaluation timing fields
// "seconds", "recal_seconds" and "infer_seconds" and the "rank" that scored a
// candidate, the only fields that differ between two identical searches.
std::string without_timings(const std::string& text);
// `mpirun` with the options the tests need to start `np` local ranks on this
// machine: --oversubscribe (more ranks than cores), --allow-run-as-root when
// running as root (CI does), and no core binding. Append the program and its
// arguments, or ":" and a second application context. The ranks run without
// LeakSanitizer under MODE=asan (Open MPI's components: see test_util.cpp).
std::vector<std::string> mpirun_argv(int np);
// Runs a shell command, returns its stdout and sets *status (pclose status).
std::string run_capture(const std::string& cmd, int* status);

// Runs argv directly (no shell) with stdout and stderr captured together and
// stdin from /dev/null; kills it (SIGKILL) after timeout_s. `status` is the raw
// waitpid status (test it with WIFEXITED/WEXITSTATUS/WIFSIGNALED).
struct RunResult {
  int status = -1;
  bool timed_out = false;
  std::string out;
  bool exited() const;           // ended by exit(), not by a signal or the timeout
  int exit_code() const;         // WEXITSTATUS, -1 when it did not exit
  std::string describe() const;  // "exit 1", "killed by signal 6 (Aborted)", "timed out after the limit"
};
RunResult run_argv(const std::vector<std::string>& argv, double timeout_s = 120);
// {bin, the words of `words` (split at whitespace, no quoting), then `extra`}:
// an argument list written mostly as one string.
std::vector<std::string> argv_words(const std::string& bin, const std::string& words,
                                    const std::vector<std::string>& extra = {});
// The same for several commands, up to `jobs` at a time; results in the order of cmds.
std::vector<RunResult> run_argv_all(const std::vector<std::vector<std::string>>& cmds, int jobs,
                                    double timeout_s = 120);

}  // namespace detnas::test
