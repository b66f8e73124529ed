// GPU collectives of runtime/dist.h over NCCL: one communicator over all ranks,
// created on first use (rank 0's ncclUniqueId broadcast over MPI), each rank on
// its own GPU (runtime/device.cpp picks local rank % GPUs). Operations run on
// rt::cuda_stream() and are complete when they return, like every other op's
// host-visible result. In a build without CUDA these fail: CUDA tensors cannot
// exist there. Internal to runtime/: callers use runtime/dist.h.
#pragma once
#include <cstdint>

namespace detnas::rt::dist::nccl {

void allreduce_sum(float* device_ptr, int64_t n);
void allreduce_sum(double* device_ptr, int64_t n);
void broadcast(float* device_ptr, int64_t n, int root);
// Destroys the communicator (from dist::finalize; a no-op when none was made).
void shutdown();

}  // namespace detnas::rt::dist::nccl
