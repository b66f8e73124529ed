// Device probe and raw device memory. With DETNAS_CUDA the CUDA runtime API is
// called from this host file (compiled by g++, linked with cudart).
#include "runtime/device.h"

#include <mutex>

#include "core/error.h"
#include "core/log.h"
#include "runtime/dist.h"

#ifdef DETNAS_CUDA
#include <cuda_runtime.h>

#include "kernels/cuda_check.h"
#include "kernels/gemm_cublas.h"
#endif

namespace detnas::rt {

const char* device_name(Device d) { return d == Device::CUDA ? "cuda" : "cpu"; }

Precision parse_precision(const std::string& s) {
  if (s == "fp32") return Precision::FP32;
  if (s == "tf32") return Precision::TF32;
  DETNAS_FAIL("--precision: unknown precision '", s, "' (expected fp32 or tf32)");
}

const char* precision_name(Precision p) { return p == Precision::TF32 ? "tf32" : "fp32"; }

namespace {
Precision g_precision = Precision::FP32;
}

void set_precision(Precision p) {
  g_precision = p;
#ifdef DETNAS_CUDA
  kernels::cuda::set_tf32(p == Precision::TF32);  // read by cuBLAS and cuDNN before every call
#endif
}

Precision precision() { return g_precision; }

DeviceRequest parse_device_request(const std::string& s) {
  if (s == "auto") return DeviceRequest::Auto;
  if (s == "cpu") return DeviceRequest::CPU;
  if (s == "cuda" || s == "gpu") return DeviceRequest::CUDA;
  DETNAS_FAIL("--device: unknown device '", s, "' (expected auto, cpu or cuda)");
}

bool built_with_cuda() {
#ifdef DETNAS_CUDA
  return true;
#else
  return false;
#endif
}

namespace {
std::once_flag g_probe_once;
bool g_cuda_ok = false;
std::string g_probe_msg;

void probe() {
#ifdef DETNAS_CUDA
  int n = 0;
  cudaError_t e = cudaGetDeviceCount(&n);
  if (e != cudaSuccess) {
    g_probe_msg = std::string("no usable GPU (") + cudaGetErrorString(e) + ")";
    cudaGetLastError();  // clear the sticky error of the failed probe
    return;
  }
  if (n == 0) {
    g_probe_msg = "no usable GPU (no CUDA device found)";
    return;
  }
  // One GPU per rank: the ranks on a machine take its GPUs in local-rank order.
  const int gpu = dist::local_rank() % n;
  if (dist::local_size() > n)
    log_warn("dist: ", dist::local_size(), " ranks on this machine share ", n, " GPU(s); NCCL needs one GPU per rank");
  cudaDeviceProp prop;
  e = cudaGetDeviceProperties(&prop, gpu);
  if (e == cudaSuccess) e = cudaSetDevice(gpu);
  if (e == cudaSuccess) e = cudaFree(nullptr);  // forces context creation
  if (e != cudaSuccess) {
    g_probe_msg = std::string("no usable GPU (") + cudaGetErrorString(e) + ")";
    cudaGetLastError();
    return;
  }
  std::string why;
  if (!kernels::cuda::cublas_available(&why)) {  // loaded here, never inside an op
    g_probe_msg = "no usable GPU (cuBLAS: " + why + ")";
    return;
  }
  g_cuda_ok = true;
  g_probe_msg = "GPU " + std::to_string(gpu) + ": " + prop.name;
#else
  g_probe_msg = "no usable GPU (built without CUDA)";
#endif
}
}  // namespace

bool cuda_usable() {
  std::call_once(g_probe_once, probe);
  return g_cuda_ok;
}

const std::string& cuda_probe_message() {
  std::call_once(g_probe_once, probe);
  return g_probe_msg;
}

Device select_device(DeviceRequest req) {
  static std::once_flag logged;
  Device d = Device::CPU;
  if (req == DeviceRequest::CUDA) {
    DETNAS_CHECK(cuda_usable(), "--device cuda: ", cuda_probe_message());
    d = Device::CUDA;
  } else if (req == DeviceRequest::Auto) {
    d = cuda_usable() ? Device::CUDA : Device::CPU;
  }
  std::call_once(logged, [&] {
    const bool say_why = d == Device::CUDA || req != DeviceRequest::CPU;  // the GPU found, or why there is none
    log_info("device: ", device_name(d), say_why ? " — " : "", say_why ? cuda_probe_message() : "");
  });
  return d;
}

#ifdef DETNAS_CUDA
void* cuda_malloc(size_t bytes) {
  void* p = nullptr;
  DETNAS_CUDA_CHECK(cudaMalloc(&p, bytes));
  return p;
}
void cuda_free(void* p) {
  if (p) cudaFree(p);
}
void cuda_copy_h2d(void* dst, const void* src, size_t bytes) {
  DETNAS_CUDA_CHECK(cudaMemcpy(dst, src, bytes, cudaMemcpyHostToDevice));
}
void cuda_copy_d2h(void* dst, const void* src, size_t bytes) {
  DETNAS_CUDA_CHECK(cudaMemcpy(dst, src, bytes, cudaMemcpyDeviceToHost));
}
void cuda_copy_d2d(void* dst, const void* src, size_t bytes) {
  DETNAS_CUDA_CHECK(cudaMemcpy(dst, src, bytes, cudaMemcpyDeviceToDevice));
}
#else
void* cuda_malloc(size_t) { DETNAS_FAIL("CUDA memory requested but detnas was built without CUDA"); }
void cuda_free(void*) {}
void cuda_copy_h2d(void*, const void*, size_t) { DETNAS_FAIL("built without CUDA"); }
void cuda_copy_d2h(void*, const void*, size_t) { DETNAS_FAIL("built without CUDA"); }
void cuda_copy_d2d(void*, const void*, size_t) { DETNAS_FAIL("built without CUDA"); }
#endif

}  // namespace detnas::rt
