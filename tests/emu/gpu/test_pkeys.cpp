// The emulated GPU's device memory is closed to host code (tests/emu/gpu/pkeys.h):
// a CPU read of a CUDA tensor's data faults and is reported as such, while the
// copies, the library stubs and kernels still reach it. The faulting access runs
// in a forked child whose stderr is captured. Emulated-GPU test binary only.
#include <doctest/doctest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <string>

#include "runtime/runtime.h"
#include "tests/emu/gpu/pkeys.h"
#include "tests/test_util.h"

using namespace detnas;

TEST_CASE("cuda (emulated GPU): host code reading a CUDA tensor's data faults by name; copies still work") {
  if (!emu::gpu::pkeys_active()) {
    test::test_skip(
        "emulated GPU: no memory-protection keys here (or DETNAS_EMU_PKEYS=0); host accesses to device "
        "memory are not caught");
    return;
  }
  rt::Tensor t = rt::Tensor::from_vector({4}, {1, 2, 3, 4}).to(rt::Device::CUDA);
  CHECK(t.to(rt::Device::CPU).to_vector() == std::vector<float>{1, 2, 3, 4});  // the copy path is open
  int fds[2];
  REQUIRE(pipe(fds) == 0);
  const pid_t pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    dup2(fds[1], 1);
    dup2(fds[1], 2);
    close(fds[0]);
    std::signal(SIGABRT, SIG_DFL);   // not doctest's crash report: the parent checks the signal
    volatile float v = t.data()[1];  // a CPU op's access to device memory
    (void)v;
    _exit(0);  // not reached when the access faults
  }
  close(fds[1]);
  std::string err;
  char buf[4096];
  for (ssize_t n; (n = read(fds[0], buf, sizeof buf)) > 0;) err.append(buf, size_t(n));
  close(fds[0]);
  int status = 0;
  REQUIRE(waitpid(pid, &status, 0) == pid);
  CHECK(WIFSIGNALED(status));
  CHECK(WTERMSIG(status) == SIGABRT);
  CHECK_MESSAGE(err.find("host code touched device memory") != std::string::npos, err);
}
