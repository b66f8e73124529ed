// Emulated BatchNorm kernels (kernels/batchnorm_cuda.cu) against the CPU twin
// (kernels/batchnorm_cpu.cpp): batch statistics with a large common offset
// (exercises the hi/lo saved mean), running updates, eval mode, the backward in
// train and eval mode with every gradient output on/off/accumulating, and
// channel reductions longer than one block.
// clang-format off
#include "tests/emu/emu.h"  // first: renames namespace cuda and defines DETNAS_EMU
// clang-format on

#include <cmath>
#include <vector>

#include "kernels/batchnorm.h"
#include "kernels/batchnorm_cuda.h"
#include "tests/emu/emu_test.h"
#include "tests/test_util.h"

using namespace detnas;
using kernels::BatchNormMode;
namespace kc = detnas::kernels::cuda;
namespace kcpu = detnas::kernels::cpu;
namespace plan = detnas::kernels::cuda_plan;

namespace {
bool close(const char* what, const std::vector<float>& got, const std::vector<float>& ref) {
  // Per-channel sums in double, added in another order: equal up to the final float rounding.
  return test::check_close(what, test::to_double(got), test::to_double(ref), {int64_t(ref.size())},
                           test::Tol::elementwise());
}
struct Dims {
  int64_t N, C, HW;
};
const Dims kDims[] = {{3, 5, 7}, {2, 3, 1}, {4, 2, 150}};
}  // namespace

DETNAS_EMU_KERNEL_TEST("bn_stats_kernel bn_eval_stats_kernel bn_apply_kernel",
                       "batchnorm forward kernels match cpu batch/eval forward") {
  for (const Dims& d : kDims) {
    CAPTURE(d.N);
    CAPTURE(d.C);
    CAPTURE(d.HW);
    const int64_t n = d.N * d.C * d.HW;
    std::vector<float> x = test::randn_f(n, 81);
    for (int64_t i = 0; i < n; ++i) x[size_t(i)] = 1000.0f + 0.01f * x[size_t(i)];
    const std::vector<float> gamma = test::randn_f(d.C, 82), beta = test::randn_f(d.C, 83);
    std::vector<float> rm0 = test::randn_f(d.C, 84), rv0 = test::randn_f(d.C, 85);
    for (float& v : rv0) v = std::fabs(v) + 0.5f;
    std::vector<char> ws(plan::batchnorm_workspace_bytes(d.C));
    // Batch statistics.
    std::vector<float> ry(static_cast<size_t>(n)), rsm(size_t(2 * d.C)), rsi(static_cast<size_t>(d.C)), rrm = rm0,
                                                                                                        rrv = rv0;
    std::vector<float> y(size_t(n), NAN), sm(size_t(2 * d.C), NAN), si(size_t(d.C), NAN), rm = rm0, rv = rv0;
    kcpu::batchnorm_forward_batch(d.N, d.C, d.HW, x.data(), gamma.data(), beta.data(), 1e-5, 0.1, ry.data(), rsm.data(),
                                  rsi.data(), rrm.data(), rrv.data());
    kc::batchnorm_forward_batch(d.N, d.C, d.HW, x.data(), gamma.data(), beta.data(), 1e-5, 0.1, y.data(), sm.data(),
                                si.data(), rm.data(), rv.data(), ws.data(), nullptr);
    CHECK(close("bn y", y, ry));
    CHECK(close("bn save_mean", sm, rsm));
    CHECK(close("bn save_invstd", si, rsi));
    CHECK(close("bn running_mean", rm, rrm));
    CHECK(close("bn running_var", rv, rrv));
    // Running statistics.
    std::fill(y.begin(), y.end(), NAN);
    kcpu::batchnorm_forward_eval(d.N, d.C, d.HW, x.data(), gamma.data(), beta.data(), rm0.data(), rv0.data(), 1e-5,
                                 ry.data(), rsm.data(), rsi.data());
    kc::batchnorm_forward_eval(d.N, d.C, d.HW, x.data(), gamma.data(), beta.data(), rm0.data(), rv0.data(), 1e-5,
                               y.data(), sm.data(), si.data(), ws.data(), nullptr);
    CHECK(close("bn eval y", y, ry));
    CHECK(sm == rsm);
    CHECK(si == rsi);
  }
  std::vector<float> one(4);
  std::vector<char> ws(plan::batchnorm_workspace_bytes(1));
  CHECK_THROWS_AS(kc::batchnorm_forward_batch(1, 1, 1, one.data(), one.data(), one.data(), 1e-5, 0.1, one.data(),
                                              one.data(), one.data(), one.data(), one.data(), ws.data(), nullptr),
                  Error);
}

DETNAS_EMU_KERNEL_TEST("bn_backward_reduce_kernel bn_backward_dx_kernel",
                       "batchnorm backward kernels match cpu::batchnorm_backward") {
  for (const Dims& d : kDims) {
    CAPTURE(d.N);
    CAPTURE(d.C);
    CAPTURE(d.HW);
    const int64_t n = d.N * d.C * d.HW;
    std::vector<float> x = test::randn_f(n, 86);
    for (float& v : x) v = 5.0f + v;
    const std::vector<float> dy = test::randn_f(n, 87), gamma = test::randn_f(d.C, 88);
    std::vector<float> sm(size_t(2 * d.C)), si(static_cast<size_t>(d.C)), ytmp(static_cast<size_t>(n)),
        rm(static_cast<size_t>(d.C), 0.0f), rv(static_cast<size_t>(d.C), 1.0f);
    kcpu::batchnorm_forward_batch(d.N, d.C, d.HW, x.data(), gamma.data(), gamma.data(), 1e-5, 0.1, ytmp.data(),
                                  sm.data(), si.data(), rm.data(), rv.data());
    std::vector<char> ws(plan::batchnorm_workspace_bytes(d.C));
    const std::vector<float> dx0 = test::randn_f(n, 89), dg0 = test::randn_f(d.C, 90), db0 = test::randn_f(d.C, 91);
    for (BatchNormMode mode : {BatchNormMode::Train, BatchNormMode::Eval})
      for (int combo = 0; combo < 3; ++combo) {
        CAPTURE(int(mode));
        CAPTURE(combo);
        const GradientMode mdx =
            combo == 0 ? GradientMode::Overwrite : (combo == 1 ? GradientMode::Accumulate : GradientMode::Ignore);
        const GradientMode mdg =
            combo == 2 ? GradientMode::Overwrite : (combo == 1 ? GradientMode::Ignore : GradientMode::Accumulate);
        const GradientMode mdb = combo == 1 ? GradientMode::Overwrite : GradientMode::Accumulate;
        std::vector<float> rdx = dx0, rdg = dg0, rdb = db0, gdx = dx0, gdg = dg0, gdb = db0;
        kcpu::BatchNormGrads<float> rg{rdx.data(), mdx, rdg.data(), mdg, rdb.data(), mdb};
        kcpu::BatchNormGrads<float> gg{gdx.data(), mdx, gdg.data(), mdg, gdb.data(), mdb};
        kcpu::batchnorm_backward(d.N, d.C, d.HW, x.data(), dy.data(), gamma.data(), sm.data(), si.data(), mode, rg);
        kc::batchnorm_backward(d.N, d.C, d.HW, x.data(), dy.data(), gamma.data(), sm.data(), si.data(), mode, gg,
                               ws.data(), nullptr);
        CHECK(close("bn dx", gdx, rdx));
        CHECK(close("bn dgamma", gdg, rdg));
        CHECK(close("bn dbeta", gdb, rdb));
      }
  }
}
