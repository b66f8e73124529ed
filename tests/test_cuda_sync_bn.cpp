// Synchronized BatchNorm across 2 ranks (mpirun), on CUDA tensors: "cuda: ..."
// launches this binary under `mpirun -np 2` with the child case "mpi-child: cuda
// sync bn halves", in which each rank runs the sync op on its half of a batch of
// 4 and compares with the plain op on the whole batch. It runs in the
// emulated-GPU suite (make test-emugpu, -tc='cuda*') and on a real GPU; without
// one it is skipped visibly. The CPU twin of the launcher and child is in
// tests/test_sync_bn.cpp; both use sync_bn_halves_child / run_sync_bn_two_ranks
// below (this file is compiled into both test binaries, that one only into the
// ordinary one).
//
// Tolerances: y, dx and the running statistics are elementwise float results of
// the same double math, with the statistics summed in another order (halves
// added over the ranks vs one pass): Tol::elementwise. dgamma and dbeta are each
// rank's float-rounded half added over the ranks against one float rounding of
// the whole sum, so they differ by a few ulps of the halves' magnitude (about 10
// here): |a-b| <= 1e-5 + 1e-5*|b|.
#include <doctest/doctest.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "runtime/autograd.h"
#include "runtime/dist.h"
#include "runtime/ops_elementwise.h"
#include "runtime/ops_norm.h"
#include "runtime/runtime.h"
#include "tests/cuda_test_util.h"
#include "tests/test_util.h"

using namespace detnas;
using namespace detnas::rt;

namespace detnas::test {

// The body of a "mpi-child: ... sync bn halves" case on `dev`: nothing without
// mpirun; on 2 ranks, rank r runs the sync op on samples 2r, 2r+1 of a batch of 4
// and checks its half of the plain op's result on the whole batch.
void sync_bn_halves_child(Device dev);
// Runs `mpirun -np 2 <this binary> -tc=<child_case>` and requires exit 0 and
// both ranks reporting the one case as passed.
void run_sync_bn_two_ranks(const std::string& child_case);

namespace {

constexpr int64_t kN = 4, kC = 3, kH = 5, kW = 4, kHW = kH * kW;

std::vector<float> slice_samples(const std::vector<float>& v, int64_t first, int64_t count) {
  const int64_t per = kC * kHW;
  return std::vector<float>(v.begin() + first * per, v.begin() + (first + count) * per);
}

Tensor on(Device dev, const Shape& s, const std::vector<float>& v) { return Tensor::from_vector(s, v).to(dev); }

struct Result {
  std::vector<float> y, dx, dgamma, dbeta, rm, rv;
};

// Train forward + backward of sum(u * y) on batch x (n samples), plain or sync.
Result train_step(Device dev, int64_t n, const std::vector<float>& x, const std::vector<float>& u,
                  const std::vector<float>& gamma, const std::vector<float>& beta, const std::vector<float>& rm0,
                  const std::vector<float>& rv0, bool sync) {
  Tensor tx = on(dev, {n, kC, kH, kW}, x), tg = on(dev, {kC}, gamma), tb = on(dev, {kC}, beta);
  Tensor rm = on(dev, {kC}, rm0), rv = on(dev, {kC}, rv0);
  tx.requires_grad_();
  tg.requires_grad_();
  tb.requires_grad_();
  ops::BatchNormParams p;
  p.momentum = 0.25;
  p.sync = sync;
  Tensor y = ops::batch_norm(tx, tg, tb, rm, rv, ops::BatchNormMode::Train, p);
  backward(ops::sum(ops::mul(y, on(dev, y.shape(), u))));
  Result r{y.to_vector(),         tx.grad().to_vector(), tg.grad().to_vector(),
           tb.grad().to_vector(), rm.to_vector(),        rv.to_vector()};
  clear_tape();
  return r;
}

// Recalibrate over batches a then b (n samples each) from reset running stats.
Result recalibrate(Device dev, int64_t n, const std::vector<float>& a, const std::vector<float>& b,
                   const std::vector<float>& gamma, const std::vector<float>& beta, bool sync, int64_t* k) {
  NoGradGuard no_grad;
  Tensor tg = on(dev, {kC}, gamma), tb = on(dev, {kC}, beta);
  Tensor rm = Tensor::zeros({kC}, dev), rv = Tensor::full({kC}, 1.0f, dev);
  ops::reset_running_stats(rm, rv, k);
  ops::BatchNormParams p;
  p.sync = sync;
  ops::batch_norm(on(dev, {n, kC, kH, kW}, a), tg, tb, rm, rv, ops::BatchNormMode::Recalibrate, p, k);
  Tensor y = ops::batch_norm(on(dev, {n, kC, kH, kW}, b), tg, tb, rm, rv, ops::BatchNormMode::Recalibrate, p, k);
  return Result{y.to_vector(), {}, {}, {}, rm.to_vector(), rv.to_vector()};
}

}  // namespace

void sync_bn_halves_child(Device dev) {
  if (!dist::active()) return;
  // Checked before any collective, so both ranks stop alike.
  REQUIRE_MESSAGE(dist::size() == 2, "the child case runs on exactly 2 ranks, got " << dist::size());
  if (dev == Device::CUDA) REQUIRE_MESSAGE(cuda_usable(), "no usable GPU on " << dist::where());
  const int r = dist::rank();
  CAPTURE(r);
  // The same data on every rank (fixed seeds).
  std::vector<float> x = randn_f(kN * kC * kHW, 601, 1.5), x2 = randn_f(kN * kC * kHW, 602, 0.7);
  for (float& v : x) v += 2.0f;
  for (float& v : x2) v -= 1.0f;
  const std::vector<float> u = randn_f(kN * kC * kHW, 603);
  std::vector<float> gamma = randn_f(kC, 604, 0.5), beta = randn_f(kC, 605), rm0 = randn_f(kC, 606, 0.1);
  for (float& g : gamma) g += 1.0f;
  std::vector<float> rv0(static_cast<size_t>(kC));
  for (int64_t c = 0; c < kC; ++c) rv0[size_t(c)] = 0.5f + 0.25f * float(c);

  // Train: the plain op on the whole batch here, the sync op on this rank's half.
  const Result ref = train_step(dev, kN, x, u, gamma, beta, rm0, rv0, false);
  Result got = train_step(dev, 2, slice_samples(x, 2 * r, 2), slice_samples(u, 2 * r, 2), gamma, beta, rm0, rv0, true);
  dist::allreduce_sum(got.dgamma.data(), kC);
  dist::allreduce_sum(got.dbeta.data(), kC);
  CHECK(same("sync y (this rank's half)", got.y, slice_samples(ref.y, 2 * r, 2), Tol::elementwise()));
  CHECK(same("sync dx (this rank's half)", got.dx, slice_samples(ref.dx, 2 * r, 2), Tol::elementwise()));
  CHECK(same("sync running_mean", got.rm, ref.rm, Tol::elementwise()));
  CHECK(same("sync running_var", got.rv, ref.rv, Tol::elementwise()));
  const Tol halves{1e-5, 1e-5};  // see the top of the file
  CHECK(same("sync dgamma summed over ranks", got.dgamma, ref.dgamma, halves));
  CHECK(same("sync dbeta summed over ranks", got.dbeta, ref.dbeta, halves));

  // Recalibrate over two batches: the running stats average the global batch statistics.
  int64_t k_ref = 0, k_got = 0;
  const Result rref = recalibrate(dev, kN, x, x2, gamma, beta, false, &k_ref);
  const Result rgot =
      recalibrate(dev, 2, slice_samples(x, 2 * r, 2), slice_samples(x2, 2 * r, 2), gamma, beta, true, &k_got);
  CHECK(k_got == 2);
  CHECK(same("recalibrated y (this rank's half)", rgot.y, slice_samples(rref.y, 2 * r, 2), Tol::elementwise()));
  CHECK(same("recalibrated running_mean", rgot.rm, rref.rm, Tol::elementwise()));
  CHECK(same("recalibrated running_var", rgot.rv, rref.rv, Tol::elementwise()));
}

void run_sync_bn_two_ranks(const std::string& child_case) {
  int st = 0;
  run_capture("command -v mpirun >/dev/null 2>&1", &st);
  REQUIRE_MESSAGE(st == 0, "mpirun not found: make deps installs openmpi-bin");
  // mpirun execs the path itself, so /proc/self/exe must be resolved here.
  char self[4096];
  const ssize_t len = ::readlink("/proc/self/exe", self, sizeof(self) - 1);
  REQUIRE_MESSAGE(len > 0, "cannot read /proc/self/exe");
  self[len] = '\0';
  std::vector<std::string> argv = mpirun_argv(2);
  argv.push_back(self);
  argv.push_back("-tc=" + child_case);
  const RunResult res = run_argv(argv, 300);
  REQUIRE_MESSAGE(res.exited(), res.describe() << "\n" << res.out);
  CHECK_MESSAGE(res.exit_code() == 0, res.describe() << "\n" << res.out);
  // Each rank prints tests/main.cpp's closing line: the child case ran and passed on both.
  const std::string line = "tests: 1 passed, 0 failed, 0 skipped";
  int count = 0;
  for (size_t at = res.out.find(line); at != std::string::npos; at = res.out.find(line, at + 1)) ++count;
  CHECK_MESSAGE(count == 2, "expected the line '" << line << "' from both ranks:\n" << res.out);
}

}  // namespace detnas::test

TEST_CASE("mpi-child: cuda sync bn halves") { test::sync_bn_halves_child(Device::CUDA); }

TEST_CASE("cuda: synchronized BN on 2 ranks (CUDA tensors) equals one process on the whole batch") {
  if (!test::gpu_or_skip("synchronized batch_norm on 2 ranks")) return;
  test::run_sync_bn_two_ranks("mpi-child: cuda sync bn halves");
}
