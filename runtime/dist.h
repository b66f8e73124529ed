// Processes and collectives (DESIGN.md "Scaling out"): one process is one rank.
// `mpirun -np N ./detnas ...` gives N ranks over Open MPI; a process started
// without mpirun is the single rank 0 of 1 and never touches MPI, so a plain
// `./detnas` behaves exactly as a build without this file. Host memory goes
// through MPI, CUDA tensors through NCCL (runtime/dist_nccl.cpp; one GPU per
// local rank, the communicator bootstrapped over MPI). Nothing above runtime/
// calls MPI or NCCL directly.
//
// Every collective must be called by every rank in the same order with the
// same sizes (checked where cheap). A rank that fails ends the whole job:
// fail_job() prints the rank and cause and calls MPI_Abort, which makes mpirun
// kill the others; Open MPI's default error handler aborts likewise on a lost
// process, so no rank is left waiting in a collective.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "runtime/tensor.h"

namespace detnas::rt::dist {

// Starts MPI when the process was launched by mpirun (Open MPI or PMIx/PMI
// environment), else does nothing. Idempotent. Non-root ranks log warnings and
// errors only. Call early in main(), after rt::ensure_blas_core.
void init(int* argc, char*** argv);
// MPI_Finalize when init started MPI (every rank must reach it).
void finalize();

int rank();        // 0 .. size()-1
int size();        // 1 without mpirun
int local_rank();  // rank among the processes on this machine (the GPU to use)
int local_size();
inline bool is_root() { return rank() == 0; }
inline bool active() { return size() > 1; }
// "rank 1 of 2" (or "" for a single rank): for messages.
std::string where();

// Ends the job with `code` after printing "detnas: error (rank r of N): msg".
// With one rank it only prints; the caller returns the code.
void fail_job(const std::string& msg, int code);

// Host collectives (no-ops with one rank).
void barrier();
void allreduce_sum(double* p, int64_t n);
void allreduce_sum(float* p, int64_t n);
void allreduce_sum(int64_t* p, int64_t n);
void allreduce_max(int64_t* p, int64_t n);
void broadcast(void* p, size_t bytes, int root);
// Every rank's `mine`, in rank order, on every rank (sizes may differ).
std::vector<std::string> allgather(const std::string& mine);
// Same, but only `root` receives (others get an empty vector).
std::vector<std::string> gather(const std::string& mine, int root);

// Doubles in place on device `d`'s memory (CPU: MPI; CUDA: NCCL on a device pointer).
void allreduce_sum(double* p, int64_t n, Device d);

// Tensor collectives, in place, on the tensor's device (CPU: MPI; CUDA: NCCL).
// Contiguous tensors only. Element-wise sum over ranks.
void allreduce_sum(Tensor& t);
// Sums many tensors as one flat bucket per device (fewer, larger messages).
void allreduce_sum(std::vector<Tensor>& ts);
void broadcast(Tensor& t, int root);

// Splits `total` items over the ranks: rank r gets [begin, end). Even split
// when `total` is a multiple of size(); otherwise the first total % size ranks
// take one more.
struct Slice {
  int64_t begin = 0, end = 0;
};
Slice slice(int64_t total, int r);
inline Slice my_slice(int64_t total) { return slice(total, rank()); }

}  // namespace detnas::rt::dist
