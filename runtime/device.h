// Devices and device selection. `auto` picks CUDA only when the build has CUDA
// and a probe at start-up finds a usable device; any CUDA error during the probe
// means "no GPU" (logged once). Ops never fall back to another device.
#pragma once
#include <cstddef>
#include <string>

namespace detnas::rt {

enum class Device { CPU, CUDA };
enum class DeviceRequest { Auto, CPU, CUDA };

const char* device_name(Device d);
DeviceRequest parse_device_request(const std::string& s);  // "auto" | "cpu" | "cuda"
bool built_with_cuda();
// Probes once (cached). Returns false on any CUDA error; the reason is kept.
bool cuda_usable();
const std::string& cuda_probe_message();
// Resolves a request to a device, logging the choice once. `cuda` on a machine
// without a usable GPU throws with the probe's reason.
Device select_device(DeviceRequest req);

// Matrix-math precision of the CUDA library paths (cuBLAS GEMM/linear, cuDNN
// convs): FP32 (exact fp32 FMA math, the default) or TF32 tensor-op math
// (`--precision tf32`). Hand-written kernels and every CPU op are always fp32,
// so on the CPU this setting changes nothing. parse: "fp32" | "tf32".
enum class Precision { FP32, TF32 };
Precision parse_precision(const std::string& s);
const char* precision_name(Precision p);
void set_precision(Precision p);
Precision precision();

// Raw device memory (CUDA builds only; otherwise these throw).
void* cuda_malloc(size_t bytes);
void cuda_free(void* p);
void cuda_copy_h2d(void* dst, const void* src, size_t bytes);
void cuda_copy_d2h(void* dst, const void* src, size_t bytes);
void cuda_copy_d2d(void* dst, const void* src, size_t bytes);

}  // namespace detnas::rt
