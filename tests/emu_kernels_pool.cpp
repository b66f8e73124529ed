// Emulated pooling, nearest-upsampling and SGD kernels (kernels/pool_cuda.cu,
// kernels/sgd_cuda.cu) against the CPU twins: max pool with padding, strides
// 1/2/3, ties and NaNs; global average pooling; upsampling by exactly 2 and by
// odd ratios up and down; SGD with and without momentum, fresh and existing
// buffers, weight decay. All bit-exact (the gathers add in the CPU's order).
// clang-format off
#include "tests/emu/emu.h"  // first: renames namespace cuda and defines DETNAS_EMU
// clang-format on

#include <cmath>
#include <vector>

#include "kernels/pool.h"
#include "kernels/pool_cuda.h"
#include "kernels/sgd.h"
#include "kernels/sgd_cuda.h"
#include "kernels/upsample.h"
#include "tests/emu/emu_test.h"
#include "tests/test_util.h"

using namespace detnas;
using kernels::PoolWindow;
namespace kc = detnas::kernels::cuda;
namespace kcpu = detnas::kernels::cpu;

namespace {
// Bit-exact, NaN == NaN.
bool same(const char* what, const std::vector<float>& got, const std::vector<float>& ref) {
  std::vector<double> g = test::to_double(got), r = test::to_double(ref);
  for (size_t i = 0; i < g.size() && i < r.size(); ++i)
    if (std::isnan(g[i]) && std::isnan(r[i])) g[i] = r[i] = 0;
  return test::check_close(what, g, r, {int64_t(ref.size())}, test::Tol::exact());
}
const GradientMode kModes[] = {GradientMode::Overwrite, GradientMode::Accumulate};
}  // namespace

DETNAS_EMU_KERNEL_TEST("max_pool_forward_kernel max_pool_backward_kernel",
                       "max pool kernels match cpu max pool fwd/bwd") {
  const int64_t planes = 3, H = 9, W = 7;
  std::vector<float> x = test::randn_f(planes * H * W, 101);
  for (int64_t i = 0; i < planes * H * W; i += 4) x[size_t(i)] = 0.5f;  // ties
  x[10] = NAN;
  for (PoolWindow win :
       {PoolWindow{3, 2, 1}, PoolWindow{2, 2, 0}, PoolWindow{3, 1, 1}, PoolWindow{5, 3, 2}, PoolWindow{1, 1, 0}}) {
    CAPTURE(win.K);
    CAPTURE(win.S);
    CAPTURE(win.P);
    const int64_t Ho = kernels::pool_out_size(H, win), Wo = kernels::pool_out_size(W, win), ny = planes * Ho * Wo;
    std::vector<float> ref(static_cast<size_t>(ny)), y(size_t(ny), -1.0f);
    kcpu::max_pool2d_forward(planes, H, W, Ho, Wo, win, x.data(), ref.data());
    kc::max_pool2d_forward(planes, H, W, Ho, Wo, win, x.data(), y.data(), nullptr);
    CHECK(same("max_pool forward", y, ref));
    const std::vector<float> dy = test::randn_f(ny, 102), dx0 = test::randn_f(planes * H * W, 103);
    for (GradientMode mode : kModes) {
      std::vector<float> r = dx0, g = dx0;
      kcpu::max_pool2d_backward_input(planes, H, W, Ho, Wo, win, x.data(), dy.data(), r.data(), mode);
      kc::max_pool2d_backward_input(planes, H, W, Ho, Wo, win, x.data(), dy.data(), g.data(), mode, nullptr);
      CHECK(same("max_pool backward", g, r));
    }
  }
}

DETNAS_EMU_KERNEL_TEST("global_avg_pool_forward_kernel global_avg_pool_backward_kernel",
                       "global average pool kernels match the cpu") {
  for (int64_t HW : {int64_t(1), int64_t(49), int64_t(300)}) {
    const int64_t planes = 5;
    const std::vector<float> x = test::randn_f(planes * HW, 104), dy = test::randn_f(planes, 105),
                             dx0 = test::randn_f(planes * HW, 106);
    std::vector<float> ref(static_cast<size_t>(planes)), y(static_cast<size_t>(planes));
    kcpu::global_avg_pool_forward(planes, HW, x.data(), ref.data());
    kc::global_avg_pool_forward(planes, HW, x.data(), y.data(), nullptr);
    CHECK(same("gap forward", y, ref));
    for (GradientMode mode : kModes) {
      std::vector<float> r = dx0, g = dx0;
      kcpu::global_avg_pool_backward_input(planes, HW, dy.data(), r.data(), mode);
      kc::global_avg_pool_backward_input(planes, HW, dy.data(), g.data(), mode, nullptr);
      CHECK(same("gap backward", g, r));
    }
  }
}

DETNAS_EMU_KERNEL_TEST("upsample_nearest_forward_kernel upsample_nearest_backward_kernel",
                       "nearest upsample kernels match cpu upsample fwd/bwd") {
  struct S {
    int64_t H, W, Ho, Wo;
  };
  for (S s : {S{4, 5, 8, 10}, S{3, 5, 7, 11}, S{2, 2, 82, 5}, S{7, 9, 3, 4}, S{5, 5, 5, 5}, S{3, 4, 6, 9}}) {
    CAPTURE(s.H);
    CAPTURE(s.W);
    CAPTURE(s.Ho);
    CAPTURE(s.Wo);
    const int64_t planes = 2;
    const std::vector<float> x = test::randn_f(planes * s.H * s.W, 107), dy = test::randn_f(planes * s.Ho * s.Wo, 108),
                             dx0 = test::randn_f(planes * s.H * s.W, 109);
    std::vector<float> ref(size_t(planes * s.Ho * s.Wo)), y(ref.size(), NAN);
    kcpu::upsample_nearest2d_forward(planes, s.H, s.W, s.Ho, s.Wo, x.data(), ref.data());
    kc::upsample_nearest2d_forward(planes, s.H, s.W, s.Ho, s.Wo, x.data(), y.data(), nullptr);
    CHECK(same("upsample forward", y, ref));
    for (GradientMode mode : kModes) {
      std::vector<float> r = dx0, g = dx0;
      kcpu::upsample_nearest2d_backward_input(planes, s.H, s.W, s.Ho, s.Wo, dy.data(), r.data(), mode);
      kc::upsample_nearest2d_backward_input(planes, s.H, s.W, s.Ho, s.Wo, dy.data(), g.data(), mode, nullptr);
      CHECK(same("upsample backward", g, r));
    }
  }
}

DETNAS_EMU_KERNEL_TEST("sgd_update_kernel", "sgd_update_kernel matches cpu::sgd_update") {
  const int64_t n = 517;
  const std::vector<float> p0 = test::randn_f(n, 110), g = test::randn_f(n, 111), b0 = test::randn_f(n, 112);
  for (double mom : {0.0, 0.9})
    for (double wd : {0.0, 4e-5})
      for (MomentumBuffer state : {MomentumBuffer::Fresh, MomentumBuffer::Existing})
        for (bool with_buf : {true, false}) {
          if (!with_buf && mom != 0.0) continue;
          SgdParams sp;
          sp.lr = 0.05, sp.momentum = mom, sp.weight_decay = wd, sp.buffer = state;
          std::vector<float> rp = p0, rb = b0, gp = p0, gb = b0;
          kcpu::sgd_update(n, rp.data(), g.data(), with_buf ? rb.data() : nullptr, sp);
          kc::sgd_update(n, gp.data(), g.data(), with_buf ? gb.data() : nullptr, sp, nullptr);
          CHECK(same("sgd param", gp, rp));
          CHECK(same("sgd buffer", gb, rb));
        }
  std::vector<float> p = p0;
  SgdParams bad;
  bad.momentum = 0.9;
  CHECK_THROWS_AS(kc::sgd_update(n, p.data(), g.data(), nullptr, bad, nullptr), Error);
}
