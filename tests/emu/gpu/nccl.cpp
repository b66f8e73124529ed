// Emulated-GPU build: the NCCL subset of include/nccl.h, on MPI. A communicator
// is MPI_COMM_WORLD's ranks in the given order (the library makes one over all
// ranks); ncclGetUniqueId fills a random id that ncclCommInitRank checks is the
// same on every rank (it was broadcast), as a real bootstrap would need. Device
// buffers are checked to be live device memory and staged through host memory,
// so MPI never touches the emulator's protected device pages. Every call is
// synchronous, like every stream operation of the emulator.
#define OMPI_SKIP_MPICXX 1
#include "tests/emu/gpu/include/nccl.h"

#include <mpi.h>

#include <cstring>
#include <random>
#include <vector>

#include "tests/emu/gpu/pkeys.h"

struct ncclComm {
  int nranks = 0, rank = 0;
};

namespace {

ncclResult_t check_comm(ncclComm_t comm) {
  int init = 0;
  MPI_Initialized(&init);
  return comm && init ? ncclSuccess : ncclInvalidUsage;
}

size_t type_bytes(ncclDataType_t t) {
  switch (t) {
    case ncclInt8:
      return 1;
    case ncclInt32:
    case ncclFloat32:
      return 4;
    case ncclFloat64:
      return 8;
  }
  return 0;
}

MPI_Datatype mpi_type(ncclDataType_t t) {
  switch (t) {
    case ncclInt8:
      return MPI_INT8_T;
    case ncclInt32:
      return MPI_INT32_T;
    case ncclFloat32:
      return MPI_FLOAT;
    case ncclFloat64:
      return MPI_DOUBLE;
  }
  return MPI_DATATYPE_NULL;
}

MPI_Op mpi_op(ncclRedOp_t op) {
  switch (op) {
    case ncclSum:
      return MPI_SUM;
    case ncclProd:
      return MPI_PROD;
    case ncclMax:
      return MPI_MAX;
    case ncclMin:
      return MPI_MIN;
  }
  return MPI_OP_NULL;
}

// Device -> host staging copy (and back), under the emulator's device access.
std::vector<char> stage_in(const char* api, const void* dev, size_t bytes) {
  detnas::emu::gpu::require_device(api, "buffer", dev, bytes);
  std::vector<char> h(bytes);
  detnas::emu::gpu::DeviceAccess access;
  if (bytes) std::memcpy(h.data(), dev, bytes);
  return h;
}
void stage_out(const char* api, void* dev, const std::vector<char>& h) {
  detnas::emu::gpu::require_device(api, "buffer", dev, h.size());
  detnas::emu::gpu::DeviceAccess access;
  if (!h.empty()) std::memcpy(dev, h.data(), h.size());
}

}  // namespace

const char* ncclGetErrorString(ncclResult_t r) {
  switch (r) {
    case ncclSuccess:
      return "no error";
    case ncclUnhandledCudaError:
      return "unhandled cuda error";
    case ncclSystemError:
      return "unhandled system error";
    case ncclInternalError:
      return "internal error";
    case ncclInvalidArgument:
      return "invalid argument";
    case ncclInvalidUsage:
      return "invalid usage (MPI not initialized or no communicator)";
  }
  return "unknown result";
}

ncclResult_t ncclGetUniqueId(ncclUniqueId* id) {
  if (!id) return ncclInvalidArgument;
  std::random_device rd;
  for (char& c : id->internal) c = char(rd());
  return ncclSuccess;
}

ncclResult_t ncclCommInitRank(ncclComm_t* comm, int nranks, ncclUniqueId id, int rank) {
  int init = 0, size = 0, me = 0;
  MPI_Initialized(&init);
  if (!comm || !init) return ncclInvalidUsage;
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  MPI_Comm_rank(MPI_COMM_WORLD, &me);
  if (nranks != size || rank != me) return ncclInvalidArgument;
  ncclUniqueId root = id;  // every rank must hold rank 0's id
  MPI_Bcast(root.internal, NCCL_UNIQUE_ID_BYTES, MPI_BYTE, 0, MPI_COMM_WORLD);
  int same = std::memcmp(root.internal, id.internal, NCCL_UNIQUE_ID_BYTES) == 0, all_same = 0;
  MPI_Allreduce(&same, &all_same, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
  if (!all_same) return ncclInvalidArgument;
  *comm = new ncclComm{nranks, rank};
  return ncclSuccess;
}

ncclResult_t ncclCommDestroy(ncclComm_t comm) {
  delete comm;
  return ncclSuccess;
}

ncclResult_t ncclAllReduce(const void* send, void* recv, size_t count, ncclDataType_t type, ncclRedOp_t op,
                           ncclComm_t comm, cudaStream_t stream) {
  if (ncclResult_t r = check_comm(comm); r != ncclSuccess) return r;
  detnas::emu::gpu::require_stream("ncclAllReduce", stream);
  const size_t bytes = count * type_bytes(type);
  if (!bytes || mpi_op(op) == MPI_OP_NULL || count > size_t(1) << 30) return ncclInvalidArgument;
  std::vector<char> h = stage_in("ncclAllReduce", send, bytes);
  MPI_Allreduce(MPI_IN_PLACE, h.data(), int(count), mpi_type(type), mpi_op(op), MPI_COMM_WORLD);
  stage_out("ncclAllReduce", recv, h);
  return ncclSuccess;
}

ncclResult_t ncclBroadcast(const void* send, void* recv, size_t count, ncclDataType_t type, int root, ncclComm_t comm,
                           cudaStream_t stream) {
  if (ncclResult_t r = check_comm(comm); r != ncclSuccess) return r;
  detnas::emu::gpu::require_stream("ncclBroadcast", stream);
  const size_t bytes = count * type_bytes(type);
  if (!bytes || root < 0 || root >= comm->nranks || bytes > size_t(1) << 30) return ncclInvalidArgument;
  std::vector<char> h = comm->rank == root ? stage_in("ncclBroadcast", send, bytes) : std::vector<char>(bytes);
  MPI_Bcast(h.data(), int(bytes), MPI_BYTE, root, MPI_COMM_WORLD);
  stage_out("ncclBroadcast", recv, h);
  return ncclSuccess;
}
