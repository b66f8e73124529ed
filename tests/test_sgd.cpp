// SGD-with-momentum kernel: a hand-computed 3-step sequence, a naive loop at odd
// and large sizes, fresh vs existing buffers, plain SGD without a buffer.
#include <doctest/doctest.h>

#include <cmath>

#include "core/error.h"
#include "kernels/sgd.h"
#include "tests/test_util.h"

using namespace detnas;
using namespace detnas::test;
namespace kc = detnas::kernels::cpu;

TEST_CASE("sgd: hand-computed 3-step sequence (torch.optim.SGD semantics)") {
  // lr 0.1, momentum 0.9, weight decay 0.01, p0 = 1, g = 0.5 at every step:
  //  1: d = 0.5 + 0.01*1        = 0.51        buf = 0.51 (fresh)
  //     p = 1 - 0.1*0.51        = 0.949
  //  2: d = 0.5 + 0.00949       = 0.50949     buf = 0.9*0.51 + 0.50949 = 0.96849
  //     p = 0.949 - 0.096849    = 0.852151
  //  3: d = 0.5 + 0.00852151    = 0.50852151  buf = 0.9*0.96849 + 0.50852151 = 1.38016251
  //     p = 0.852151 - 0.138016251 = 0.714134749
  double p = 1.0, g = 0.5, buf = 12345.0;  // a fresh buffer's old content is never read
  SgdParams sp{0.1, 0.9, 0.01, MomentumBuffer::Fresh};
  const double want_p[3] = {0.949, 0.852151, 0.714134749};
  const double want_buf[3] = {0.51, 0.96849, 1.38016251};
  for (int step = 0; step < 3; ++step) {
    kc::sgd_update<double>(1, &p, &g, &buf, sp);
    sp.buffer = MomentumBuffer::Existing;
    CAPTURE(step);
    CHECK(std::fabs(p - want_p[step]) < 1e-12);
    CHECK(std::fabs(buf - want_buf[step]) < 1e-12);
  }
  // float instantiation agrees to float precision
  float pf = 1.0f, gf = 0.5f, bf = NAN;
  SgdParams spf{0.1, 0.9, 0.01, MomentumBuffer::Fresh};
  for (int step = 0; step < 3; ++step) {
    kc::sgd_update<float>(1, &pf, &gf, &bf, spf);
    spf.buffer = MomentumBuffer::Existing;
  }
  CHECK(pf == doctest::Approx(0.714134749).epsilon(1e-6));
}

TEST_CASE("sgd: matches a naive loop (n = 1, 3, 17, 100003; fresh and existing buffers)") {
  for (int64_t n : {1, 3, 17, 100003})
    for (MomentumBuffer state : {MomentumBuffer::Fresh, MomentumBuffer::Existing}) {
      std::vector<float> p = randn_f(n, 1 + uint64_t(n)), g = randn_f(n, 2), buf = randn_f(n, 3);
      SgdParams sp{0.05 * 1.5, 0.9, 4e-5, state};
      std::vector<double> rp(p.begin(), p.end()), rb(buf.begin(), buf.end());
      for (int64_t i = 0; i < n; ++i) {
        double d = double(g[size_t(i)]) + sp.weight_decay * rp[size_t(i)];
        rb[size_t(i)] = state == MomentumBuffer::Fresh ? d : sp.momentum * rb[size_t(i)] + d;
        rp[size_t(i)] -= sp.lr * rb[size_t(i)];
      }
      kc::sgd_update<float>(n, p.data(), g.data(), buf.data(), sp);
      CAPTURE(n);
      check_close("sgd param", to_double(p), rp, {n}, Tol::elementwise());
      check_close("sgd buffer", to_double(buf), rb, {n}, Tol::elementwise());
    }
}

TEST_CASE("sgd: momentum 0 needs no buffer; momentum without a buffer is an error") {
  std::vector<double> p = {1.0, -2.0}, g = {0.5, 0.25};
  kc::sgd_update<double>(2, p.data(), g.data(), nullptr, SgdParams{0.1, 0.0, 0.1, MomentumBuffer::Fresh});
  CHECK(p[0] == doctest::Approx(1.0 - 0.1 * (0.5 + 0.1)));
  CHECK(p[1] == doctest::Approx(-2.0 - 0.1 * (0.25 - 0.2)));
  CHECK_THROWS_WITH_AS(
      kc::sgd_update<double>(2, p.data(), g.data(), nullptr, SgdParams{0.1, 0.9, 0.0, MomentumBuffer::Existing}),
      doctest::Contains("sgd_update: momentum 0.9 needs a momentum buffer"), Error);
  // lr 0 leaves the parameter unchanged but still advances the buffer
  std::vector<double> q = {3.0}, gb = {2.0}, b = {1.0};
  kc::sgd_update<double>(1, q.data(), gb.data(), b.data(), SgdParams{0.0, 0.5, 0.0, MomentumBuffer::Existing});
  CHECK(q[0] == 3.0);
  CHECK(b[0] == 2.5);
}
