// Protection of emulated device memory with a memory-protection key: see pkeys.h.
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "tests/emu/gpu/pkeys.h"

#include <execinfo.h>
#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>

#include "core/error.h"
#include "core/log.h"

namespace detnas::emu::gpu {
namespace {

int g_pkey = -1;  // -1: not protected
std::once_flag g_once;

size_t page_round(size_t bytes) {
  const size_t page = size_t(sysconf(_SC_PAGESIZE));
  return (bytes + page - 1) / page * page;
}

void on_segv(int sig, siginfo_t* info, void*) {
#ifdef SEGV_PKUERR
  if (info && info->si_code == SEGV_PKUERR) {
    char msg[200];
    const int n = std::snprintf(msg, sizeof msg,
                                "\n[emulated GPU] host code touched device memory at %p: a CPU read or write of a "
                                "CUDA tensor's data (or a missing copy). Backtrace:\n",
                                info->si_addr);
    if (n > 0) (void)!write(2, msg, size_t(n));
    void* frames[64];
    backtrace_symbols_fd(frames, backtrace(frames, 64), 2);
    std::abort();
  }
#endif
  signal(sig, SIG_DFL);  // any other fault: the default action (core dump, sanitizers' reports)
  raise(sig);
}

void init() {
  const char* env = std::getenv("DETNAS_EMU_PKEYS");
  if (env && std::strcmp(env, "0") == 0) {
    log_info("emulated GPU: device memory is not protected (DETNAS_EMU_PKEYS=0)");
    return;
  }
  const int key = pkey_alloc(0, PKEY_DISABLE_ACCESS);
  if (key < 0) {
    log_info("emulated GPU: no memory-protection keys here (", std::strerror(errno),
             "): host accesses to device memory are not caught");
    return;
  }
  struct sigaction sa;
  std::memset(&sa, 0, sizeof sa);
  sa.sa_sigaction = on_segv;
  sa.sa_flags = SA_SIGINFO;
  sigemptyset(&sa.sa_mask);
  DETNAS_CHECK(sigaction(SIGSEGV, &sa, nullptr) == 0, "emulated GPU: sigaction(SIGSEGV) failed");
  g_pkey = key;
}

}  // namespace

bool pkeys_active() {
  std::call_once(g_once, init);
  return g_pkey >= 0;
}

void* device_pages_alloc(size_t bytes) {
  const bool prot = pkeys_active();
  const size_t n = page_round(bytes);
  void* p = mmap(nullptr, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) return nullptr;
  if (prot && pkey_mprotect(p, n, PROT_READ | PROT_WRITE, g_pkey) != 0) {
    munmap(p, n);
    DETNAS_FAIL("emulated GPU: pkey_mprotect failed: ", std::strerror(errno));
  }
  return p;
}

void device_pages_free(void* p, size_t bytes) {
  if (p) munmap(p, page_round(bytes));
}

DeviceAccess::DeviceAccess() {
  if (!pkeys_active()) return;
  saved_ = pkey_get(g_pkey);
  pkey_set(g_pkey, 0);
}

DeviceAccess::~DeviceAccess() {
  if (g_pkey >= 0) pkey_set(g_pkey, saved_);
}

}  // namespace detnas::emu::gpu
