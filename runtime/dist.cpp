// MPI side of runtime/dist.h: start-up, host collectives, and the Tensor
// collectives' dispatch (CPU tensors here, CUDA tensors to runtime/dist_nccl.cpp).
#include "runtime/dist.h"

// The C API only (no deprecated C++ bindings).
#define OMPI_SKIP_MPICXX 1
#include <mpi.h>

#include <algorithm>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <thread>

#include "core/error.h"
#include "core/log.h"
#include "runtime/dist_nccl.h"
#include "runtime/threads.h"

namespace detnas::rt::dist {
namespace {

int g_rank = 0, g_size = 1, g_local_rank = 0, g_local_size = 1;
bool g_started = false;  // MPI_Init called by us

// A launcher that MPI_Init can talk to: Open MPI's mpirun (OMPI_*), PMIx
// (Open MPI 4+/5, Slurm's srun --mpi=pmix) or PMI-1/2 launchers.
bool launched_by_mpirun() {
  for (const char* v : {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK", "PMI_SIZE"})
    if (std::getenv(v)) return true;
  return false;
}

void check_mpi(int rc, const char* what) {
  if (rc == MPI_SUCCESS) return;
  char msg[MPI_MAX_ERROR_STRING];
  int len = 0;
  MPI_Error_string(rc, msg, &len);
  DETNAS_FAIL("MPI ", what, " failed on ", where(), ": ", std::string(msg, size_t(len)));
}

// MPI counts are int: long buffers go in chunks.
constexpr int64_t kChunk = int64_t(1) << 30;

template <class T>
void allreduce_host(T* p, int64_t n, MPI_Datatype type, MPI_Op op = MPI_SUM) {
  if (g_size == 1 || n == 0) return;
  for (int64_t off = 0; off < n; off += kChunk)
    check_mpi(MPI_Allreduce(MPI_IN_PLACE, p + off, int(std::min(kChunk, n - off)), type, op, MPI_COMM_WORLD),
              "allreduce");
}

std::vector<std::string> gather_impl(const std::string& mine, int root, bool all) {
  if (g_size == 1) return {mine};
  DETNAS_CHECK(mine.size() < size_t(INT_MAX), "dist gather: ", mine.size(), " bytes is too large");
  int len = int(mine.size());
  std::vector<int> lens(size_t(g_size), 0);
  if (all)
    check_mpi(MPI_Allgather(&len, 1, MPI_INT, lens.data(), 1, MPI_INT, MPI_COMM_WORLD), "allgather");
  else
    check_mpi(MPI_Gather(&len, 1, MPI_INT, lens.data(), 1, MPI_INT, root, MPI_COMM_WORLD), "gather");
  std::vector<int> displs(size_t(g_size), 0);
  int64_t total = 0;
  for (int r = 0; r < g_size; ++r) {
    displs[size_t(r)] = int(total);
    total += lens[size_t(r)];
  }
  const bool receives = all || g_rank == root;
  DETNAS_CHECK(!receives || total < INT_MAX, "dist gather: ", total, " bytes in all is too large");
  std::string buf(receives ? size_t(total) : 0, '\0');
  if (all)
    check_mpi(
        MPI_Allgatherv(mine.data(), len, MPI_BYTE, buf.data(), lens.data(), displs.data(), MPI_BYTE, MPI_COMM_WORLD),
        "allgatherv");
  else
    check_mpi(
        MPI_Gatherv(mine.data(), len, MPI_BYTE, buf.data(), lens.data(), displs.data(), MPI_BYTE, root, MPI_COMM_WORLD),
        "gatherv");
  std::vector<std::string> out;
  if (!receives) return out;
  for (int r = 0; r < g_size; ++r) out.push_back(buf.substr(size_t(displs[size_t(r)]), size_t(lens[size_t(r)])));
  return out;
}

void check_cpu_contiguous(const Tensor& t, const char* op) {
  DETNAS_CHECK(t.defined() && t.is_contiguous(), "dist ", op, ": needs a defined contiguous tensor, got ",
               t.defined() ? t.describe() : std::string("undefined"));
}

}  // namespace

void init(int* argc, char*** argv) {
  if (g_started || !launched_by_mpirun()) return;
  int provided = 0;
  check_mpi(MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided), "init");
  g_started = true;
  MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
  MPI_Comm_size(MPI_COMM_WORLD, &g_size);
  MPI_Comm local;
  MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, g_rank, MPI_INFO_NULL, &local);
  MPI_Comm_rank(local, &g_local_rank);
  MPI_Comm_size(local, &g_local_size);
  MPI_Comm_free(&local);
  if (g_rank != 0) set_log_level(LogLevel::Warn);
  // The ranks on one machine share its cores: each gets its share by default
  // (OMP_NUM_THREADS or --threads override it).
  if (g_local_size > 1 && !std::getenv("OMP_NUM_THREADS")) {
    const int cores = int(std::max(1u, std::thread::hardware_concurrency()));
    set_num_threads(std::max(1, cores / g_local_size));
  }
  log_info("dist: ", g_size, " ranks (", g_local_size, " on this machine), Open MPI");
}

void finalize() {
  if (!g_started) return;
  nccl::shutdown();
  int fin = 0;
  MPI_Finalized(&fin);
  if (!fin) MPI_Finalize();
  g_started = false;
}

int rank() { return g_rank; }
int size() { return g_size; }
int local_rank() { return g_local_rank; }
int local_size() { return g_local_size; }

std::string where() {
  if (g_size == 1) return "";
  return "rank " + std::to_string(g_rank) + " of " + std::to_string(g_size);
}

void fail_job(const std::string& msg, int code) {
  if (g_size == 1) {
    std::fprintf(stderr, "detnas: error: %s\n", msg.c_str());
    return;
  }
  std::fprintf(stderr, "detnas: error (%s): %s\n", where().c_str(), msg.c_str());
  std::fflush(stderr);
  MPI_Abort(MPI_COMM_WORLD, code);
  std::_Exit(code);  // MPI_Abort does not return; be sure
}

void barrier() {
  if (g_size > 1) check_mpi(MPI_Barrier(MPI_COMM_WORLD), "barrier");
}
void allreduce_sum(double* p, int64_t n) { allreduce_host(p, n, MPI_DOUBLE); }
void allreduce_sum(float* p, int64_t n) { allreduce_host(p, n, MPI_FLOAT); }
void allreduce_sum(int64_t* p, int64_t n) { allreduce_host(p, n, MPI_INT64_T); }
void allreduce_max(int64_t* p, int64_t n) { allreduce_host(p, n, MPI_INT64_T, MPI_MAX); }

void broadcast(void* p, size_t bytes, int root) {
  if (g_size == 1 || bytes == 0) return;
  char* c = static_cast<char*>(p);
  for (size_t off = 0; off < bytes; off += size_t(kChunk))
    check_mpi(MPI_Bcast(c + off, int(std::min<size_t>(size_t(kChunk), bytes - off)), MPI_BYTE, root, MPI_COMM_WORLD),
              "broadcast");
}

std::vector<std::string> allgather(const std::string& mine) { return gather_impl(mine, 0, true); }
std::vector<std::string> gather(const std::string& mine, int root) { return gather_impl(mine, root, false); }

void allreduce_sum(double* p, int64_t n, Device d) {
  if (g_size == 1 || n == 0) return;
  if (d == Device::CUDA)
    nccl::allreduce_sum(p, n);
  else
    allreduce_sum(p, n);
}

void allreduce_sum(Tensor& t) {
  if (g_size == 1) return;
  check_cpu_contiguous(t, "allreduce");
  if (t.device() == Device::CUDA)
    nccl::allreduce_sum(t.data(), t.numel());
  else
    allreduce_sum(t.data(), t.numel());
}

void allreduce_sum(std::vector<Tensor>& ts) {
  if (g_size == 1 || ts.empty()) return;
  const Device dev = ts[0].device();
  int64_t total = 0;
  for (const Tensor& t : ts) {
    check_cpu_contiguous(t, "allreduce");
    DETNAS_CHECK(t.device() == dev, "dist allreduce: tensors on different devices in one bucket");
    total += t.numel();
  }
  // One flat bucket: copy in, reduce once, copy out (same sums as per tensor).
  Tensor flat = Tensor::empty({total}, dev);
  int64_t off = 0;
  for (const Tensor& t : ts) {
    flat.narrow(0, off, t.numel()).copy_from(t.detach().reshape({t.numel()}));
    off += t.numel();
  }
  allreduce_sum(flat);
  off = 0;
  for (Tensor& t : ts) {
    t.detach().reshape({t.numel()}).copy_from(flat.narrow(0, off, t.numel()));
    off += t.numel();
  }
}

void broadcast(Tensor& t, int root) {
  if (g_size == 1) return;
  check_cpu_contiguous(t, "broadcast");
  if (t.device() == Device::CUDA)
    nccl::broadcast(t.data(), t.numel(), root);
  else
    broadcast(t.data(), size_t(t.numel()) * sizeof(float), root);
}

Slice slice(int64_t total, int r) {
  const int64_t n = g_size, base = total / n, extra = total % n;
  Slice s;
  s.begin = r * base + std::min<int64_t>(r, extra);
  s.end = s.begin + base + (r < extra ? 1 : 0);
  return s;
}

}  // namespace detnas::rt::dist
