// Helpers shared by the libFuzzer targets (fuzz/README.md): a per-process scratch
// folder on tmpfs for the parsers that only read files, and a check that aborts
// (a finding) when a property the library promises does not hold. A target
// catches detnas::Error only: any other exception escaping a parser, a crash,
// a sanitizer report, a leak, a hang or an out-of-memory is a finding.
#pragma once
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "core/error.h"
#include "runtime/fs.h"
#include "search/evolution.h"

namespace detnas::fuzz {

// The search configuration of fuzz_search_state and of its seeds (make_seeds.cpp).
inline search::EvolutionConfig fuzz_search_config() {
  search::EvolutionConfig c;
  c.population = 4;
  c.parents = 2;
  c.mutants = 1;
  c.crossovers = 1;
  c.generations = 3;
  c.seed = 1;
  return c;
}

inline std::string_view as_text(const uint8_t* data, size_t size) {
  return std::string_view(reinterpret_cast<const char*>(data), size);
}

// Aborts with a message: libFuzzer saves the input as a crash.
#define FUZZ_REQUIRE(cond, ...)                                                     \
  do {                                                                              \
    if (!(cond)) {                                                                  \
      std::fprintf(stderr, "fuzz property failed: %s: %s (%s:%d)\n", #cond,         \
                   ::detnas::detail::cat(__VA_ARGS__).c_str(), __FILE__, __LINE__); \
      std::abort();                                                                 \
    }                                                                               \
  } while (0)

// /dev/shm/detnas-fuzz-<pid> (or $TMPDIR / /tmp when there is no /dev/shm),
// created on first use and removed at a normal exit (a crashing run leaves it).
inline const std::string& scratch_dir() {
  struct Scratch {
    std::string dir;
    Scratch() {
      const char* tmp = std::getenv("TMPDIR");
      dir = std::string(dir_exists("/dev/shm") ? "/dev/shm"
                        : tmp                  ? tmp
                                               : "/tmp") +
            "/detnas-fuzz-" + std::to_string(::getpid());
      remove_all(dir);
      make_dirs(dir);
    }
    ~Scratch() { remove_all(dir); }
  };
  static const Scratch s;
  return s.dir;
}

}  // namespace detnas::fuzz
