// The CUDA bench entries' common part (bench/entries_cuda*.cpp, CUDA builds
// only): a CUDA kernel paired with its CPU twin on the same deterministic inputs
// (uploaded once), outputs compared element by element after one call of each,
// then the CUDA call timed (harness time_cuda); device scratch from the caching
// allocator; the tolerance of two float32 sums; entry naming ("cuda/<name>").
// Not here: the entries themselves.
#pragma once
#ifdef DETNAS_CUDA
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "bench/harness.h"

namespace detnas::bench::cuda_pair {

using Ptrs = std::vector<float*>;
using Fn = std::function<void(const Ptrs& in, const Ptrs& out)>;

struct In {
  int64_t n;
  float lo = -1.f, hi = 1.f;
};

// A device scratch buffer from the caching allocator, released at scope exit.
struct DevScratch {
  void* p = nullptr;
  explicit DevScratch(size_t bytes);
  ~DevScratch();
  DevScratch(const DevScratch&) = delete;
  DevScratch& operator=(const DevScratch&) = delete;
};

// prep (optional) rewrites the host inputs before the upload (structured inputs:
// targets, boxes, saved statistics); out_init is the outputs' starting value.
struct Extra {
  std::function<void(std::vector<rt::Tensor>& host_inputs)> prep;
  float out_init = std::numeric_limits<float>::quiet_NaN();
};

// One CUDA kernel against its CPU twin on the same inputs. Outputs start as
// out_init (NaN) on both devices, so an element the kernel does not write fails.
Case paired(const std::vector<In>& ins, const std::vector<int64_t>& outs, Fn cpu, Fn gpu, Tol tol, double bytes,
            double flops = 0, const Extra& x = {});

// Two float32 sums of K terms, each term at most `mag` in magnitude.
Tol sum_tol(int64_t K, double mag = 1);

// A CUDA entry: named "cuda/" + name, run by bench --cuda only.
Entry entry(const std::string& name, const std::string& op, const std::string& shape, std::function<Case()> make,
            bool in_default = true);
std::string nchw(int64_t N, int64_t C, int64_t H, int64_t W);

}  // namespace detnas::bench::cuda_pair
#endif
