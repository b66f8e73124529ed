// doctest main. Prints a closing line "tests: N passed, N failed, N skipped";
// tests that cannot run here (no GPU) call test_skip() and are counted as
// skipped, never as passed. Runs from the repository root (make test).
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <cstdio>

#include "runtime/threads.h"
#include "tests/test_util.h"

int main(int argc, char** argv) {
  detnas::rt::ensure_blas_core(argv);
  doctest::Context ctx;
  ctx.applyCommandLine(argc, argv);
  int rc = ctx.run();
  if (ctx.shouldExit()) return rc;
  int failed = detnas::test::g_failed_cases;
  int skipped = detnas::test::g_skipped_cases;
  int passed = detnas::test::g_run_cases - failed - skipped;
  std::printf("tests: %d passed, %d failed, %d skipped\n", passed, failed, skipped);
  return rc;
}
