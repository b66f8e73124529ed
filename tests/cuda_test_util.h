// Helpers shared by the `cuda` suites (tests/test_cuda.cpp: kernels and op
// dispatch; tests/test_cuda_model.cpp: tensors, optimizer and whole training
// steps): skip a case visibly without a GPU (fail under DETNAS_REQUIRE_CUDA=1),
// and compare float vectors with a tolerance.
#pragma once
#include <doctest/doctest.h>

#include <cstdlib>
#include <string>
#include <vector>

#include "runtime/runtime.h"
#include "tests/test_util.h"

namespace detnas::test {

inline bool require_cuda() {
  const char* v = std::getenv("DETNAS_REQUIRE_CUDA");
  return v && *v && *v != '0';
}
// True when the case should run; otherwise skips (or fails under DETNAS_REQUIRE_CUDA=1).
inline bool gpu_or_skip(const char* what) {
  if (rt::cuda_usable()) return true;
  if (require_cuda()) FAIL("DETNAS_REQUIRE_CUDA=1 but " << rt::cuda_probe_message());
  test_skip(std::string("cuda: ") + what + " - " + rt::cuda_probe_message());
  return false;
}
inline bool close(const char* what, const std::vector<float>& got, const std::vector<float>& ref, Tol tol) {
  return check_close(what, to_double(got), to_double(ref), {int64_t(ref.size())}, tol);
}

}  // namespace detnas::test
