// Thread count and the start-up BLAS-core / wait-policy restart (runtime/threads.h).
#include "runtime/threads.h"

#include <cblas.h>
#include <omp.h>
#include <unistd.h>

#include <cctype>
#include <cstdlib>
#include <fstream>
#include <string>

#include "core/error.h"
#include "core/log.h"

namespace detnas::rt {

void set_num_threads(int n) {
  DETNAS_CHECK(n >= 1, "set_num_threads: need at least 1 thread, got ", n);
  omp_set_num_threads(n);
}

int num_threads() { return omp_get_max_threads(); }

const char* blas_core_name() { return openblas_get_corename(); }

void ensure_blas_core(char** argv) {
  if (std::getenv("DETNAS_BLAS_CORE")) return;  // "keep": set by the user, or by us before the restart
  const char* want = nullptr;
  if (!std::getenv("OPENBLAS_CORETYPE")) {
    std::string core = blas_core_name();
    for (char& c : core) c = char(std::tolower((unsigned char)c));
    // Cores without AVX2 that OpenBLAS uses as fallbacks for unknown CPUs.
    static const char* const kGeneric[] = {"prescott", "core2",  "penryn",    "dunnington", "nehalem",
                                           "atom",     "katmai", "northwood", "banias",     "unknown"};
    bool generic = false;
    for (const char* g : kGeneric) generic = generic || core == g;
    if (generic && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq"))
      want = "SkylakeX";
    else if (generic && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
      want = "Haswell";
  }
  // OpenMP workers that spin after a parallel region take the cores from
  // OpenBLAS's own threads (two thread pools on the same cores): passive waiting.
  const bool set_wait = std::getenv("OMP_WAIT_POLICY") == nullptr;
  if (!want && !set_wait) return;
  if (want)
    log_info("blas: OpenBLAS does not know this CPU and chose its generic '", blas_core_name(),
             "' kernels; restarting with OPENBLAS_CORETYPE=", want,
             " (set OPENBLAS_CORETYPE or DETNAS_BLAS_CORE=keep to choose yourself)");
  else
    log_debug(
        "threads: restarting with OMP_WAIT_POLICY=passive (set OMP_WAIT_POLICY or DETNAS_BLAS_CORE=keep to choose "
        "yourself)");
  if (want) setenv("OPENBLAS_CORETYPE", want, 1);
  if (set_wait) setenv("OMP_WAIT_POLICY", "passive", 1);
  setenv("DETNAS_BLAS_CORE", "keep", 1);  // never loop
  execv("/proc/self/exe", argv);
  log_warn("blas: restart failed; continuing with the defaults");
}

std::string cpu_model() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("model name", 0) == 0) {
      size_t c = line.find(':');
      if (c != std::string::npos) {
        std::string v = line.substr(c + 1);
        size_t b = v.find_first_not_of(" \t");
        return b == std::string::npos ? "unknown" : v.substr(b);
      }
    }
  }
  return "unknown";
}

}  // namespace detnas::rt
