// The CUDA bench entries' common part: see bench/cuda_pair.h.
#include "bench/cuda_pair.h"

#ifdef DETNAS_CUDA
#include <algorithm>
#include <memory>

#include "runtime/device_allocator.h"

namespace detnas::bench::cuda_pair {

DevScratch::DevScratch(size_t bytes) : p(bytes ? rt::device_allocator().allocate(bytes) : nullptr) {}
DevScratch::~DevScratch() {
  if (p) rt::device_allocator().release(p);
}

Case paired(const std::vector<In>& ins, const std::vector<int64_t>& outs, Fn cpu, Fn gpu, Tol tol, double bytes,
            double flops, const Extra& x) {
  struct Bufs {
    std::vector<rt::Tensor> hin, din, hout, dout;
    Ptrs hin_p, din_p, hout_p, dout_p;
  };
  auto B = std::make_shared<Bufs>();
  for (size_t i = 0; i < ins.size(); ++i) B->hin.push_back(uniform_buffer(ins[i].n, 900 + i, ins[i].lo, ins[i].hi));
  if (x.prep) x.prep(B->hin);
  for (auto& t : B->hin) B->din.push_back(t.to(rt::Device::CUDA));
  for (int64_t n : outs) {
    B->hout.push_back(rt::Tensor::full({n}, x.out_init));
    B->dout.push_back(B->hout.back().to(rt::Device::CUDA));
  }
  for (auto& t : B->hin) B->hin_p.push_back(t.data());
  for (auto& t : B->din) B->din_p.push_back(t.data());
  for (auto& t : B->hout) B->hout_p.push_back(t.data());
  for (auto& t : B->dout) B->dout_p.push_back(t.data());
  Case c;
  c.run = [B, gpu] { gpu(B->din_p, B->dout_p); };
  c.validate = [B, cpu, gpu, tol](Checker& chk) {
    gpu(B->din_p, B->dout_p);
    cpu(B->hin_p, B->hout_p);
    for (size_t k = 0; k < B->dout.size(); ++k) {
      const rt::Tensor got = B->dout[k].to(rt::Device::CPU);
      const int64_t n = got.numel();
      const std::string what = "output " + std::to_string(k);
      for (int64_t i : sample_indices(n, 200000, 7 + k))
        chk.expect(what.c_str(), {n}, i, got.data()[i], B->hout[k].data()[i], tol);
    }
  };
  c.bytes = bytes;
  c.flops = flops;
  return c;
}

// Two float32 sums of K terms, each term at most `mag` in magnitude.
Tol sum_tol(int64_t K, double mag) {
  Tol t = Tol::reduction(K, mag * double(K));
  t.atol *= 2;
  t.rtol = std::max(t.rtol, 1e-5);
  return t;
}

Entry entry(const std::string& name, const std::string& op, const std::string& shape, std::function<Case()> make,
            bool in_default) {
  Entry e;
  e.name = "cuda/" + name;
  e.op = op;
  e.shape = shape;
  e.in_default = in_default;
  e.cuda = true;
  e.make = std::move(make);
  return e;
}

std::string nchw(int64_t N, int64_t C, int64_t H, int64_t W) {
  return std::to_string(N) + "x" + std::to_string(C) + "x" + std::to_string(H) + "x" + std::to_string(W);
}

}  // namespace detnas::bench::cuda_pair
#endif
