// NCCL communicator and GPU collectives (runtime/dist_nccl.h). The emulated-GPU
// build links an NCCL stand-in (tests/emu/gpu/nccl.cpp) that forwards these
// calls to MPI on the emulated device memory, so this code runs in CI.
#include "runtime/dist_nccl.h"

#include "core/error.h"
#include "core/log.h"

#ifdef DETNAS_CUDA
#include <cuda_runtime.h>
#include <nccl.h>

#include "runtime/device_allocator.h"
#include "runtime/dist.h"
#endif

namespace detnas::rt::dist::nccl {

#ifdef DETNAS_CUDA
namespace {
ncclComm_t g_comm = nullptr;

void check_nccl(ncclResult_t r, const char* what) {
  DETNAS_CHECK(r == ncclSuccess, "NCCL ", what, " failed on ", dist::where(), ": ", ncclGetErrorString(r));
}

ncclComm_t comm() {
  if (g_comm) return g_comm;
  ncclUniqueId id;
  if (dist::is_root()) check_nccl(ncclGetUniqueId(&id), "get unique id");
  dist::broadcast(&id, sizeof(id), 0);
  check_nccl(ncclCommInitRank(&g_comm, dist::size(), id, dist::rank()), "communicator init");
  log_info("dist: NCCL communicator over ", dist::size(), " ranks (GPU collectives)");
  return g_comm;
}

void sync() {
  cudaError_t e = cudaStreamSynchronize(cuda_stream());
  DETNAS_CHECK(e == cudaSuccess, "NCCL collective on ", dist::where(), ": ", cudaGetErrorString(e));
}
}  // namespace

void allreduce_sum(float* p, int64_t n) {
  if (n == 0) return;
  check_nccl(ncclAllReduce(p, p, size_t(n), ncclFloat32, ncclSum, comm(), cuda_stream()), "allreduce");
  sync();
}

void allreduce_sum(double* p, int64_t n) {
  if (n == 0) return;
  check_nccl(ncclAllReduce(p, p, size_t(n), ncclFloat64, ncclSum, comm(), cuda_stream()), "allreduce");
  sync();
}

void broadcast(float* p, int64_t n, int root) {
  if (n == 0) return;
  check_nccl(ncclBroadcast(p, p, size_t(n), ncclFloat32, root, comm(), cuda_stream()), "broadcast");
  sync();
}

void shutdown() {
  if (!g_comm) return;
  ncclCommDestroy(g_comm);
  g_comm = nullptr;
}
#else
void allreduce_sum(float*, int64_t) { DETNAS_FAIL("NCCL allreduce: built without CUDA"); }
void allreduce_sum(double*, int64_t) { DETNAS_FAIL("NCCL allreduce: built without CUDA"); }
void broadcast(float*, int64_t, int) { DETNAS_FAIL("NCCL broadcast: built without CUDA"); }
void shutdown() {}
#endif

}  // namespace detnas::rt::dist::nccl
