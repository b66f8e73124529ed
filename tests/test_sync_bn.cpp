// Synchronized BatchNorm (BatchNormParams::sync, kernels/bn_sync*):
//  - "sync bn:" one process (one rank, the allreduces are no-ops): the sync path
//    against the plain op (forward, running stats in Train and over two
//    Recalibrate batches, backward), Eval ignoring sync, nn::set_sync_bn, and the
//    sync backward in double against central differences with the batch split in
//    two parts whose sums are added, as two ranks do;
//  - "dist:" the same on 2 ranks under mpirun (the child case "mpi-child: sync bn
//    halves"; launcher and child body in tests/test_cuda_sync_bn.cpp, shared
//    with the CUDA variant);
//  - "emu:" the CUDA kernels (kernels/bn_sync_cuda.cu) run by the SIMT emulator
//    against their CPU twins.
// Tolerances: sync vs plain (float): Tol::elementwise for every output. Both
// compute the statistics in double and round once to float; they differ only in
// how the variance is summed (sum x^2/m - mean^2 vs the centred second pass) and
// in the plain op's float-rounded saved invstd, both far below float rounding.
// Finite differences (double): Tol::finite_diff. Emulated kernels: the
// elementwise kernels are the CPU's double math element for element (exact); the
// sums are added in another order (|a-b| <= 1e-12 relative in double; the float
// dgamma/dbeta made from them: Tol::elementwise).
// clang-format off
#include "tests/emu/emu.h"  // first: renames namespace cuda (the emulated twins) and defines DETNAS_EMU
// clang-format on

#include <array>
#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "kernels/bn_sync.h"
#include "kernels/bn_sync_cuda.h"
#include "nn/layers.h"
#include "runtime/autograd.h"
#include "runtime/dist.h"
#include "runtime/ops_elementwise.h"
#include "runtime/ops_norm.h"
#include "tests/emu/emu_test.h"
#include "tests/test_util.h"

namespace detnas::test {
// tests/test_cuda_sync_bn.cpp
void sync_bn_halves_child(rt::Device dev);
void run_sync_bn_two_ranks(const std::string& child_case);
}  // namespace detnas::test

using namespace detnas;
using namespace detnas::rt;
using namespace detnas::test;
namespace kcpu = detnas::kernels::cpu;

namespace {

using Shape4 = std::array<int64_t, 4>;

struct Outputs {
  std::vector<float> y, dx, dgamma, dbeta, rm, rv;
};

// Train forward + backward of sum(u * y) through ops::batch_norm, plain or sync.
Outputs train_once(const Shape4& s, const std::vector<float>& x, const std::vector<float>& u,
                   const std::vector<float>& gamma, const std::vector<float>& beta, const std::vector<float>& rm0,
                   const std::vector<float>& rv0, bool sync) {
  const int64_t C = s[1];
  Tensor tx = Tensor::from_vector({s[0], s[1], s[2], s[3]}, x), tg = Tensor::from_vector({C}, gamma),
         tb = Tensor::from_vector({C}, beta), rm = Tensor::from_vector({C}, rm0), rv = Tensor::from_vector({C}, rv0);
  tx.requires_grad_();
  tg.requires_grad_();
  tb.requires_grad_();
  ops::BatchNormParams p;
  p.momentum = 0.25;
  p.sync = sync;
  Tensor y = ops::batch_norm(tx, tg, tb, rm, rv, ops::BatchNormMode::Train, p);
  backward(ops::sum(ops::mul(y, Tensor::from_vector(y.shape(), u))));
  Outputs o{y.to_vector(),         tx.grad().to_vector(), tg.grad().to_vector(),
            tb.grad().to_vector(), rm.to_vector(),        rv.to_vector()};
  clear_tape();
  return o;
}

std::vector<float> shifted(std::vector<float> v, float offset) {
  for (float& e : v) e += offset;
  return v;
}

// A BatchNorm2d at the top and one a level down (for set_sync_bn).
struct OneBn : nn::Module {
  nn::BatchNorm2d* bn = register_module("bn", std::make_unique<nn::BatchNorm2d>(2));
};
struct TwoLevelBn : nn::Module {
  nn::BatchNorm2d* bn = register_module("bn", std::make_unique<nn::BatchNorm2d>(2));
  OneBn* inner = register_module("inner", std::make_unique<OneBn>());
};

}  // namespace

TEST_CASE("sync bn: one rank, train forward, running stats and backward equal the plain op") {
  for (const Shape4& s : std::vector<Shape4>{{2, 3, 7, 5}, {1, 1, 1, 2}, {3, 4, 1, 1}, {2, 2, 17, 9}}) {
    CAPTURE(s[0]);
    CAPTURE(s[1]);
    CAPTURE(s[2]);
    CAPTURE(s[3]);
    const int64_t C = s[1], n = s[0] * s[1] * s[2] * s[3];
    const std::vector<float> x = shifted(randn_f(n, 700 + uint64_t(n), 2.0), 3.0f), u = randn_f(n, 701);
    const std::vector<float> gamma = shifted(randn_f(C, 702, 0.5), 1.0f), beta = randn_f(C, 703),
                             rm0 = randn_f(C, 704, 0.2), rv0(static_cast<size_t>(C), 0.75f);
    const Outputs ref = train_once(s, x, u, gamma, beta, rm0, rv0, false);
    const Outputs got = train_once(s, x, u, gamma, beta, rm0, rv0, true);
    CHECK(same("sync y", got.y, ref.y, Tol::elementwise()));
    CHECK(same("sync running_mean", got.rm, ref.rm, Tol::elementwise()));
    CHECK(same("sync running_var", got.rv, ref.rv, Tol::elementwise()));
    CHECK(same("sync dx", got.dx, ref.dx, Tol::elementwise()));
    CHECK(same("sync dgamma", got.dgamma, ref.dgamma, Tol::elementwise()));
    CHECK(same("sync dbeta", got.dbeta, ref.dbeta, Tol::elementwise()));
  }
}

TEST_CASE("sync bn: one rank, recalibration over 2 batches equals the plain op; eval ignores sync") {
  const int64_t N = 2, C = 3, H = 6, W = 5, n = N * C * H * W;
  const std::vector<float> a = shifted(randn_f(n, 710, 1.5), 2.0f), b = shifted(randn_f(n, 711, 0.5), -1.0f);
  const std::vector<float> gamma = shifted(randn_f(C, 712, 0.5), 1.0f), beta = randn_f(C, 713);
  auto run = [&](bool sync, int64_t* k, std::vector<float>* y2) {
    NoGradGuard no_grad;
    Tensor tg = Tensor::from_vector({C}, gamma), tb = Tensor::from_vector({C}, beta);
    Tensor rm = Tensor::full({C}, 5.0f), rv = Tensor::full({C}, 5.0f);
    ops::reset_running_stats(rm, rv, k);
    ops::BatchNormParams p;
    p.sync = sync;
    ops::batch_norm(Tensor::from_vector({N, C, H, W}, a), tg, tb, rm, rv, ops::BatchNormMode::Recalibrate, p, k);
    *y2 = ops::batch_norm(Tensor::from_vector({N, C, H, W}, b), tg, tb, rm, rv, ops::BatchNormMode::Recalibrate, p, k)
              .to_vector();
    // Eval with the recalibrated statistics: sync changes nothing.
    Tensor ye = ops::batch_norm(Tensor::from_vector({N, C, H, W}, a), tg, tb, rm, rv, ops::BatchNormMode::Eval, p);
    std::vector<float> out = rm.to_vector(), v = rv.to_vector(), e = ye.to_vector();
    out.insert(out.end(), v.begin(), v.end());
    out.insert(out.end(), e.begin(), e.end());
    return out;
  };
  int64_t k_ref = 0, k_got = 0;
  std::vector<float> y_ref, y_got;
  const std::vector<float> ref = run(false, &k_ref, &y_ref), got = run(true, &k_got, &y_got);
  CHECK(k_ref == 2);
  CHECK(k_got == 2);
  CHECK(same("recalibrate y (second batch)", y_got, y_ref, Tol::elementwise()));
  CHECK(same("recalibrated running_mean", std::vector<float>(got.begin(), got.begin() + C),
             std::vector<float>(ref.begin(), ref.begin() + C), Tol::elementwise()));
  CHECK(same("recalibrated running_var", std::vector<float>(got.begin() + C, got.begin() + 2 * C),
             std::vector<float>(ref.begin() + C, ref.begin() + 2 * C), Tol::elementwise()));
  // The eval outputs of (almost) equal running stats.
  CHECK(same("eval y", std::vector<float>(got.begin() + 2 * C, got.end()),
             std::vector<float>(ref.begin() + 2 * C, ref.end()), Tol::elementwise()));
  // Eval with sync on and identical running stats is the plain eval, bit for bit.
  Tensor tg = Tensor::from_vector({C}, gamma), tb = Tensor::from_vector({C}, beta);
  Tensor rm = Tensor::from_vector({C}, randn_f(C, 714)), rv = Tensor::full({C}, 0.6f);
  ops::BatchNormParams ps;
  ps.sync = true;
  const std::vector<float> e_plain =
      ops::batch_norm(Tensor::from_vector({N, C, H, W}, a), tg, tb, rm, rv, ops::BatchNormMode::Eval).to_vector();
  const std::vector<float> e_sync =
      ops::batch_norm(Tensor::from_vector({N, C, H, W}, a), tg, tb, rm, rv, ops::BatchNormMode::Eval, ps).to_vector();
  CHECK(same("eval ignores sync", e_sync, e_plain, Tol::exact()));
  clear_tape();
}

TEST_CASE("sync bn: bad input fails by name; set_sync_bn reaches every BatchNorm2d of a tree") {
  ops::BatchNormParams p;
  p.sync = true;
  Tensor g = Tensor::full({1}, 1.0f), b = Tensor::zeros({1}), rm = Tensor::zeros({1}), rv = Tensor::full({1}, 1.0f);
  // One value per channel over all (here: one) ranks.
  CHECK_THROWS_WITH_AS(ops::batch_norm(Tensor::full({1, 1, 1, 1}, 2.0f), g, b, rm, rv, ops::BatchNormMode::Train, p),
                       doctest::Contains("synchronized train mode needs more than one value per channel"), Error);
  CHECK(rm.to_vector() == std::vector<float>{0.0f});  // nothing updated
  CHECK_THROWS_AS(ops::batch_norm(Tensor::full({1, 2, 2, 2}, 2.0f), g, b, rm, rv, ops::BatchNormMode::Train, p), Error);

  TwoLevelBn root;
  nn::BatchNorm2d* bn1 = root.bn;
  nn::BatchNorm2d* bn2 = root.inner->bn;
  CHECK(!bn1->sync());
  nn::set_sync_bn(root, true);
  CHECK(bn1->sync());
  CHECK(bn2->sync());
  // The module passes the flag: its train forward equals the op with sync.
  const std::vector<float> xs = shifted(randn_f(2 * 2 * 3 * 3, 720), 1.0f);
  const std::vector<float> y_mod = bn2->forward(Tensor::from_vector({2, 2, 3, 3}, xs)).to_vector();
  clear_tape();
  nn::set_sync_bn(root, false);
  CHECK(!bn1->sync());
  CHECK(!bn2->sync());
  Tensor rm2 = Tensor::zeros({2}), rv2 = Tensor::full({2}, 1.0f);
  const std::vector<float> y_op = ops::batch_norm(Tensor::from_vector({2, 2, 3, 3}, xs), Tensor::full({2}, 1.0f),
                                                  Tensor::full({2}, 1e-4f), rm2, rv2, ops::BatchNormMode::Train, p)
                                      .to_vector();
  CHECK(same("BatchNorm2d with sync vs the sync op", y_mod, y_op, Tol::exact()));
  CHECK(same("BatchNorm2d running_mean", bn2->running_mean.to_vector(), rm2.to_vector(), Tol::exact()));
}

namespace {

// The sync forward in double through the CPU kernels on a batch split in `parts`
// along N (each part's sums added, as over ranks): y, and the statistics in
// mean/invstd (C each).
struct DoubleSyncBn {
  int64_t N, C, HW;
  std::vector<int64_t> split;  // samples per part

  std::vector<double> forward(const std::vector<double>& x, const std::vector<double>& gamma,
                              const std::vector<double>& beta, std::vector<double>& mean, std::vector<double>& invstd,
                              int64_t* m_out) const {
    std::vector<double> total(size_t(2 * C), 0.0), part(size_t(2 * C));
    int64_t first = 0, m = 0;
    for (int64_t np : split) {
      kcpu::bn_sync_forward_sums(np, C, HW, x.data() + first * C * HW, part.data());
      for (size_t i = 0; i < total.size(); ++i) total[i] += part[i];
      m += np * HW;
      first += np;
    }
    mean.assign(size_t(C), 0.0);
    invstd.assign(size_t(C), 0.0);
    for (int64_t c = 0; c < C; ++c) {
      const kernels::BnSyncMoments mv = kernels::bn_sync_moments(total[size_t(c)], total[size_t(C + c)], double(m));
      mean[size_t(c)] = mv.mean;
      invstd[size_t(c)] = kernels::bn_invstd(mv.var, 1e-5);
    }
    std::vector<double> y(x.size());
    first = 0;
    for (int64_t np : split) {
      kcpu::bn_sync_normalize(np, C, HW, x.data() + first * C * HW, mean.data(), invstd.data(), gamma.data(),
                              beta.data(), y.data() + first * C * HW);
      first += np;
    }
    if (m_out) *m_out = m;
    return y;
  }

  // Backward of sum(u * y): dgamma/dbeta summed over the parts (Overwrite by the
  // first part, Accumulate by the others), dx from the summed sums.
  void backward(const std::vector<double>& x, const std::vector<double>& u, const std::vector<double>& gamma,
                const std::vector<double>& mean, const std::vector<double>& invstd, int64_t m, std::vector<double>& dx,
                std::vector<double>& dgamma, std::vector<double>& dbeta, GradientMode dx_mode) const {
    std::vector<double> total(size_t(2 * C), 0.0), part(size_t(2 * C));
    int64_t first = 0;
    for (size_t p = 0; p < split.size(); ++p) {
      const GradientMode mode = p == 0 ? GradientMode::Overwrite : GradientMode::Accumulate;
      kcpu::bn_sync_backward_sums(split[p], C, HW, x.data() + first * C * HW, u.data() + first * C * HW, mean.data(),
                                  invstd.data(), part.data(), dgamma.data(), mode, dbeta.data(), mode);
      for (size_t i = 0; i < total.size(); ++i) total[i] += part[i];
      first += split[p];
    }
    first = 0;
    for (int64_t np : split) {
      kcpu::bn_sync_backward_input(np, C, HW, x.data() + first * C * HW, u.data() + first * C * HW, gamma.data(),
                                   mean.data(), invstd.data(), total.data(), m, dx.data() + first * C * HW, dx_mode);
      first += np;
    }
  }
};

}  // namespace

TEST_CASE("sync bn: backward in double matches central differences, batch split over 1 and 2 parts") {
  struct Case {
    int64_t N, C, H, W;
    std::vector<int64_t> split;
    double offset;
  };
  for (const Case& k : std::vector<Case>{
           {3, 2, 3, 4, {3}, 0.0}, {3, 2, 3, 4, {1, 2}, 0.0}, {4, 3, 2, 5, {2, 2}, 3.0}, {2, 1, 1, 3, {1, 1}, -2.0}}) {
    CAPTURE(k.N);
    CAPTURE(k.C);
    CAPTURE(k.split.size());
    CAPTURE(k.offset);
    const int64_t HW = k.H * k.W, n = k.N * k.C * HW;
    const DoubleSyncBn bn{k.N, k.C, HW, k.split};
    std::vector<double> x = randn(n, 730 + uint64_t(n), 1.5);
    for (double& v : x) v += k.offset;
    std::vector<double> gamma = randn(k.C, 731, 0.5), beta = randn(k.C, 732);
    for (double& g : gamma) g += 1.0;
    const std::vector<double> u = randn(n, 733);
    auto f = [&](const std::vector<double>& xx, const std::vector<double>& gg, const std::vector<double>& bb) {
      std::vector<double> mean, invstd;
      return dot(u, bn.forward(xx, gg, bb, mean, invstd, nullptr));
    };
    std::vector<double> mean, invstd;
    int64_t m = 0;
    bn.forward(x, gamma, beta, mean, invstd, &m);
    CHECK(m == k.N * HW);
    std::vector<double> dx(static_cast<size_t>(n), 7.0), dg(static_cast<size_t>(k.C), 7.0),
        db(static_cast<size_t>(k.C), 7.0);
    bn.backward(x, u, gamma, mean, invstd, m, dx, dg, db, GradientMode::Overwrite);
    check_close("sync bn dx vs central differences", dx,
                numeric_grad([&](const std::vector<double>& xx) { return f(xx, gamma, beta); }, x),
                {k.N, k.C, k.H, k.W}, Tol::finite_diff());
    check_close("sync bn dgamma vs central differences", dg,
                numeric_grad([&](const std::vector<double>& gg) { return f(x, gg, beta); }, gamma), {k.C},
                Tol::finite_diff());
    check_close("sync bn dbeta vs central differences", db,
                numeric_grad([&](const std::vector<double>& bb) { return f(x, gamma, bb); }, beta), {k.C},
                Tol::finite_diff());
    // Accumulate adds exactly the overwrite result; Ignore leaves dx untouched.
    std::vector<double> dx2 = dx, dg2(dg.size()), db2(db.size());
    bn.backward(x, u, gamma, mean, invstd, m, dx2, dg2, db2, GradientMode::Accumulate);
    std::vector<double> twice(dx.size());
    for (size_t i = 0; i < dx.size(); ++i) twice[i] = 2 * dx[i];
    CHECK(check_close("sync bn dx accumulate", dx2, twice, {k.N, k.C, k.H, k.W}, Tol::exact()));
    std::vector<double> dx3(dx.size(), 5.0);
    bn.backward(x, u, gamma, mean, invstd, m, dx3, dg2, db2, GradientMode::Ignore);
    CHECK(dx3 == std::vector<double>(dx.size(), 5.0));
  }
}

// ---- 2 ranks (mpirun) ----

TEST_CASE("mpi-child: sync bn halves") { sync_bn_halves_child(Device::CPU); }

TEST_CASE("dist: synchronized BN on 2 ranks equals one process on the whole batch") {
  run_sync_bn_two_ranks("mpi-child: sync bn halves");
}

// ---- emulated CUDA kernels ----

namespace {
namespace kc = detnas::kernels::cuda;  // cuda_emu here: the emulated twins

struct Dims {
  int64_t N, C, HW;
};
// Odd sizes; 4*150 = 600 values per channel: several strides of a 256-thread block.
const Dims kDims[] = {{3, 5, 7}, {2, 3, 1}, {4, 2, 150}};

bool close_sums(const char* what, const std::vector<double>& got, const std::vector<double>& ref) {
  return check_close(what, got, ref, {int64_t(ref.size())}, Tol{1e-12, 1e-12});
}

}  // namespace

DETNAS_EMU_KERNEL_TEST("bn_sync_forward_sums_kernel bn_sync_normalize_kernel",
                       "sync batchnorm forward kernels match the cpu sums and normalisation") {
  for (const Dims& d : kDims) {
    CAPTURE(d.N);
    CAPTURE(d.C);
    CAPTURE(d.HW);
    const int64_t n = d.N * d.C * d.HW;
    const std::vector<float> x = shifted(randn_f(n, 740, 2.0), 5.0f);
    const std::vector<float> gamma = randn_f(d.C, 741), beta = randn_f(d.C, 742);
    std::vector<double> ref(size_t(2 * d.C)), got(size_t(2 * d.C), NAN);
    kcpu::bn_sync_forward_sums(d.N, d.C, d.HW, x.data(), ref.data());
    kc::bn_sync_forward_sums(d.N, d.C, d.HW, x.data(), got.data(), nullptr);
    CHECK(close_sums("sync bn forward sums", got, ref));
    std::vector<double> mean(static_cast<size_t>(d.C)), invstd(static_cast<size_t>(d.C));
    for (int64_t c = 0; c < d.C; ++c) {
      const kernels::BnSyncMoments mv =
          kernels::bn_sync_moments(ref[size_t(c)], ref[size_t(d.C + c)], double(d.N * d.HW));
      mean[size_t(c)] = mv.mean;
      invstd[size_t(c)] = kernels::bn_invstd(mv.var, 1e-5);
    }
    std::vector<float> ry(static_cast<size_t>(n)), y(size_t(n), NAN);
    kcpu::bn_sync_normalize(d.N, d.C, d.HW, x.data(), mean.data(), invstd.data(), gamma.data(), beta.data(), ry.data());
    kc::bn_sync_normalize(d.N, d.C, d.HW, x.data(), mean.data(), invstd.data(), gamma.data(), beta.data(), y.data(),
                          nullptr);
    CHECK(same("sync bn y", y, ry, Tol::exact()));
  }
}

DETNAS_EMU_KERNEL_TEST("bn_sync_backward_sums_kernel bn_sync_backward_input_kernel",
                       "sync batchnorm backward kernels match the cpu sums and dx") {
  for (const Dims& d : kDims) {
    CAPTURE(d.N);
    CAPTURE(d.C);
    CAPTURE(d.HW);
    const int64_t n = d.N * d.C * d.HW;
    const std::vector<float> x = shifted(randn_f(n, 750), 2.0f), dy = randn_f(n, 751), gamma = randn_f(d.C, 752);
    std::vector<double> mean(static_cast<size_t>(d.C)), invstd(static_cast<size_t>(d.C));
    for (int64_t c = 0; c < d.C; ++c) {
      mean[size_t(c)] = 2.0 + 0.01 * double(c);
      invstd[size_t(c)] = 0.9 + 0.05 * double(c);
    }
    // Global sums as if another rank had added its part.
    std::vector<double> global(size_t(2 * d.C));
    for (int64_t i = 0; i < 2 * d.C; ++i) global[size_t(i)] = 0.5 * double(i) - 1.0;
    const int64_t m = 2 * d.N * d.HW;
    const std::vector<float> dx0 = randn_f(n, 753), dg0 = randn_f(d.C, 754), db0 = randn_f(d.C, 755);
    for (int combo = 0; combo < 3; ++combo) {
      CAPTURE(combo);
      const GradientMode mdx =
          combo == 0 ? GradientMode::Overwrite : (combo == 1 ? GradientMode::Accumulate : GradientMode::Ignore);
      const GradientMode mdg =
          combo == 2 ? GradientMode::Overwrite : (combo == 1 ? GradientMode::Ignore : GradientMode::Accumulate);
      const GradientMode mdb = combo == 1 ? GradientMode::Overwrite : GradientMode::Accumulate;
      std::vector<double> rs(size_t(2 * d.C)), gs(size_t(2 * d.C), NAN);
      std::vector<float> rdx = dx0, rdg = dg0, rdb = db0, gdx = dx0, gdg = dg0, gdb = db0;
      kcpu::bn_sync_backward_sums(d.N, d.C, d.HW, x.data(), dy.data(), mean.data(), invstd.data(), rs.data(),
                                  rdg.data(), mdg, rdb.data(), mdb);
      kc::bn_sync_backward_sums(d.N, d.C, d.HW, x.data(), dy.data(), mean.data(), invstd.data(), gs.data(), gdg.data(),
                                mdg, gdb.data(), mdb, nullptr);
      CHECK(close_sums("sync bn backward sums", gs, rs));
      CHECK(same("sync bn dgamma", gdg, rdg, Tol::elementwise()));
      CHECK(same("sync bn dbeta", gdb, rdb, Tol::elementwise()));
      kcpu::bn_sync_backward_input(d.N, d.C, d.HW, x.data(), dy.data(), gamma.data(), mean.data(), invstd.data(),
                                   global.data(), m, rdx.data(), mdx);
      kc::bn_sync_backward_input(d.N, d.C, d.HW, x.data(), dy.data(), gamma.data(), mean.data(), invstd.data(),
                                 global.data(), m, gdx.data(), mdx, nullptr);
      CHECK(same("sync bn dx", gdx, rdx, Tol::exact()));
    }
  }
}
