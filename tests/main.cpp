// doctest main. Prints a closing line "tests: N passed, N failed, N skipped";
// tests that cannot run here (no GPU) call test_skip() and are counted as
// skipped, never as passed. Runs from the repository root (make test).
// Started by mpirun, the binary is one rank of a job (runtime/dist.h): the
// "mpi-child:" cases that the "dist:" cases launch that way run their collectives
// then; every rank prints its own closing line.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <cstdio>

#include "runtime/dist.h"
#include "runtime/threads.h"
#include "tests/test_util.h"

int main(int argc, char** argv) {
  detnas::rt::ensure_blas_core(argv);
  detnas::rt::dist::init(&argc, &argv);
  doctest::Context ctx;
  ctx.applyCommandLine(argc, argv);
  int rc = ctx.run();
  if (ctx.shouldExit()) {
    detnas::rt::dist::finalize();
    return rc;
  }
  int failed = detnas::test::g_failed_cases;
  int skipped = detnas::test::g_skipped_cases;
  int passed = detnas::test::g_run_cases - failed - skipped;
  std::printf("tests: %d passed, %d failed, %d skipped\n", passed, failed, skipped);
  std::fflush(stdout);
  detnas::rt::dist::finalize();
  return rc;
}
