// Emulated-GPU build (make test-emugpu; tests/emu/README.md): the CUDA runtime
// subset our library calls, declared for the host compiler in place of the
// toolkit's <cuda_runtime.h>. Implemented by tests/emu/gpu/cudart.cpp on the CPU:
// "device memory" is host memory registered as device allocations, streams are
// synchronous, there is one device (the SIMT emulator). Kernel-side types (dim3,
// float4, ...) come from tests/emu/emu.h, force-included into the .cu objects.
// Not the kernel-only emulator's header (tests/emu/include/cuda_runtime.h).
#pragma once
#include <cstddef>

#include "tests/emu/cuda_types.h"

struct cudaDeviceProp {
  char name[256];
  size_t totalGlobalMem;
  size_t sharedMemPerBlock;
  size_t sharedMemPerBlockOptin;
  size_t sharedMemPerMultiprocessor;
  int regsPerBlock;
  int warpSize;
  int maxThreadsPerBlock;
  int maxThreadsDim[3];
  int maxGridSize[3];
  int maxThreadsPerMultiProcessor;
  int multiProcessorCount;
  int major;
  int minor;
  int l2CacheSize;
  size_t totalConstMem;
  int unifiedAddressing;
};

cudaError_t cudaGetDeviceCount(int* count);
cudaError_t cudaGetDeviceProperties(cudaDeviceProp* prop, int device);
cudaError_t cudaSetDevice(int device);
cudaError_t cudaGetDevice(int* device);
cudaError_t cudaDeviceSynchronize();
cudaError_t cudaGetLastError();
cudaError_t cudaPeekAtLastError();
const char* cudaGetErrorString(cudaError_t e);
const char* cudaGetErrorName(cudaError_t e);

cudaError_t cudaMalloc(void** ptr, size_t bytes);
template <class T>
cudaError_t cudaMalloc(T** ptr, size_t bytes) {
  return cudaMalloc(reinterpret_cast<void**>(ptr), bytes);
}
cudaError_t cudaFree(void* ptr);
cudaError_t cudaMemGetInfo(size_t* free_bytes, size_t* total_bytes);
cudaError_t cudaMemcpy(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind);
cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind,
                            cudaStream_t stream = nullptr);
cudaError_t cudaMemset(void* dst, int value, size_t bytes);
cudaError_t cudaMemsetAsync(void* dst, int value, size_t bytes, cudaStream_t stream = nullptr);

cudaError_t cudaStreamCreate(cudaStream_t* stream);
cudaError_t cudaStreamDestroy(cudaStream_t stream);
cudaError_t cudaStreamSynchronize(cudaStream_t stream);

// Events (tests/emu/gpu/events.cpp): host-clock stamps; every call is synchronous.
typedef struct CUevent_st* cudaEvent_t;
cudaError_t cudaEventCreate(cudaEvent_t* event);
cudaError_t cudaEventDestroy(cudaEvent_t event);
cudaError_t cudaEventRecord(cudaEvent_t event, cudaStream_t stream = nullptr);
cudaError_t cudaEventSynchronize(cudaEvent_t event);
cudaError_t cudaEventElapsedTime(float* ms, cudaEvent_t start, cudaEvent_t stop);

namespace detnas::emu::gpu {
// The emulator's own checks, used by the cuBLAS/cuDNN stubs and the launch hook:
// throws detnas::Error (naming `api` and `what`) unless [p, p + bytes) lies inside
// one live cudaMalloc allocation (bytes == 0: p inside or one past the end of one).
void require_device(const char* api, const char* what, const void* p, size_t bytes);
// Whether p points into a live device allocation; the stream is null or created.
bool is_device_pointer(const void* p);
void require_stream(const char* api, cudaStream_t stream);
// Live allocations and their bytes (tests and leak reports).
size_t live_allocations();
size_t live_bytes();
}  // namespace detnas::emu::gpu
