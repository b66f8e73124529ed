// detnas::api runtime functions: logging callback, device selection, threads,
// BLAS kernel choice, version string. Thin wrappers over runtime/.
#include "api/runtime.h"

#include "runtime/threads.h"

#ifndef DETNAS_GIT_REV
#define DETNAS_GIT_REV "unknown"
#endif
#ifndef DETNAS_BUILD_FLAGS
#define DETNAS_BUILD_FLAGS ""
#endif

namespace detnas::api {

void set_log_callback(LogCallback callback) { set_log_sink(std::move(callback)); }
void set_log_level(LogLevel min_level) { ::detnas::set_log_level(min_level); }

Device select_device(const std::string& request) { return rt::select_device(rt::parse_device_request(request)); }
bool built_with_cuda() { return rt::built_with_cuda(); }

void set_num_threads(int n) { rt::set_num_threads(n); }

void use_best_blas_kernels(char** argv) { rt::ensure_blas_core(argv); }

std::string version() { return std::string(DETNAS_GIT_REV) + " " + DETNAS_BUILD_FLAGS; }

}  // namespace detnas::api
