// Check macros for CUDA runtime calls and kernel launches: evaluate once, and on
// failure throw detnas::Error with the call's text, file and line.
// DETNAS_SYNC_DEBUG=1 in the environment synchronises after every launch so an
// asynchronous fault is reported at the kernel that caused it.
#pragma once
#include <cuda_runtime.h>

#include <cstdlib>

#include "core/error.h"

#define DETNAS_CUDA_CHECK(call)                                                                                        \
  do {                                                                                                                 \
    cudaError_t e_ = (call);                                                                                           \
    if (e_ != cudaSuccess)                                                                                             \
      throw ::detnas::Error(::detnas::detail::cat("CUDA error: ", cudaGetErrorString(e_)), __FILE__, __LINE__, #call); \
  } while (0)

namespace detnas::kernels::cuda {
inline bool sync_debug() {
  static const bool on = [] {
    const char* v = std::getenv("DETNAS_SYNC_DEBUG");
    return v && *v && *v != '0';
  }();
  return on;
}

// The check after launching the kernel `name` (DETNAS_CUDA_CHECK_LAUNCH).
inline void check_launch(const char* name, const char* file, int line) {
  cudaError_t e = cudaGetLastError();
  const char* call = "cudaGetLastError()";
  if (e == cudaSuccess && sync_debug()) e = cudaDeviceSynchronize(), call = "cudaDeviceSynchronize()";
  if (e != cudaSuccess)
    throw ::detnas::Error(::detnas::detail::cat("CUDA error after launching ", name, ": ", cudaGetErrorString(e)), file,
                          line, call);
}
}  // namespace detnas::kernels::cuda

// After a launch of the kernel named by the string `name`: report
// launch-configuration errors, and with DETNAS_SYNC_DEBUG also execution errors,
// naming the kernel.
#define DETNAS_CUDA_CHECK_LAUNCH(name) ::detnas::kernels::cuda::check_launch(name, __FILE__, __LINE__)

// cuBLAS and cuDNN status checks in the same style. Include <cublas_v2.h> or
// <cudnn.h> before using them.
#if defined(CUBLAS_V2_H_) || defined(CUBLAS_API_H_)
namespace detnas::kernels::cuda {
const char* cublas_status_string(int status);  // cuBLAS's text (kernels/gemm_cublas.cu: cuBLAS is loaded lazily)
}
#define DETNAS_CUBLAS_CHECK(call)                                                                                   \
  do {                                                                                                              \
    cublasStatus_t s_ = (call);                                                                                     \
    if (s_ != CUBLAS_STATUS_SUCCESS)                                                                                \
      throw ::detnas::Error(                                                                                        \
          ::detnas::detail::cat("cuBLAS error ", int(s_), ": ", ::detnas::kernels::cuda::cublas_status_string(s_)), \
          __FILE__, __LINE__, #call);                                                                               \
  } while (0)
#endif
#if defined(CUDNN_H_)
#define DETNAS_CUDNN_CHECK(call)                                                                                 \
  do {                                                                                                           \
    cudnnStatus_t s_ = (call);                                                                                   \
    if (s_ != CUDNN_STATUS_SUCCESS)                                                                              \
      throw ::detnas::Error(::detnas::detail::cat("cuDNN error: ", cudnnGetErrorString(s_)), __FILE__, __LINE__, \
                            #call);                                                                              \
  } while (0)
#endif
