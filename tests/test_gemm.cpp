// The CPU GEMM (kernels/gemm_cpu.cpp): every transpose form against a double
// reference loop, with leading dimensions wider than the matrices, and the
// same bits on 1, 2 and 3 threads at shapes where OpenBLAS's own threading
// does not give them on its AVX2 kernels (about 1 element in 8 of a 256x128x256
// sgemm differed between 1 and 2 OpenBLAS threads on an AMD EPYC).
#include <doctest/doctest.h>
#include <omp.h>

#include <cstring>
#include <vector>

#include "kernels/conv2d.h"
#include "kernels/gemm.h"
#include "tests/test_util.h"

extern "C" int openblas_get_num_threads();

using namespace detnas;
using namespace detnas::kernels;
using detnas::test::randn_f;

namespace {

struct Case {
  int64_t M, N, K;
};

// C (M,N) with leading dimension N + 3; A and B with 5 spare columns.
std::vector<float> run_gemm(Trans ta, Trans tb, const Case& c, const std::vector<float>& A, const std::vector<float>& B,
                            int64_t lda, int64_t ldb, float beta) {
  const int64_t ldc = c.N + 3;
  std::vector<float> C = randn_f(c.M * ldc, 99);
  cpu::gemm<float>(ta, tb, c.M, c.N, c.K, 0.5f, A.data(), lda, B.data(), ldb, beta, C.data(), ldc);
  return C;
}

}  // namespace

TEST_CASE("gemm: every transpose form matches a double loop; 1, 2 and 3 threads give the same bits") {
  const int before = omp_get_max_threads();
  // Small (one call), N-split (N >= 256), M-split (M > N, M >= 256), an odd large shape.
  for (const Case& c : {Case{7, 9, 5}, Case{64, 300, 70}, Case{300, 40, 33}, Case{256, 128, 256}, Case{261, 517, 19}}) {
    for (Trans ta : {Trans::No, Trans::Yes}) {
      for (Trans tb : {Trans::No, Trans::Yes}) {
        const int64_t ar = ta == Trans::No ? c.M : c.K, ac = ta == Trans::No ? c.K : c.M;
        const int64_t br = tb == Trans::No ? c.K : c.N, bc = tb == Trans::No ? c.N : c.K;
        const int64_t lda = ac + 5, ldb = bc + 5, ldc = c.N + 3;
        const std::vector<float> A = randn_f(ar * lda, 1), B = randn_f(br * ldb, 2);
        std::vector<float> C[3];
        for (int t = 0; t < 3; ++t) {
          omp_set_num_threads(t + 1);
          C[t] = run_gemm(ta, tb, c, A, B, lda, ldb, 1.f);
        }
        omp_set_num_threads(before);
        CHECK(openblas_get_num_threads() == 1);  // the mechanism: OpenBLAS never threads itself
        CAPTURE(c.M);
        CAPTURE(c.N);
        CAPTURE(c.K);
        CAPTURE(int(ta));
        CAPTURE(int(tb));
        CHECK(std::memcmp(C[0].data(), C[1].data(), C[0].size() * sizeof(float)) == 0);
        CHECK(std::memcmp(C[0].data(), C[2].data(), C[0].size() * sizeof(float)) == 0);
        // Reference: 0.5 * op(A) op(B) + C0, in double; the padding columns untouched.
        const std::vector<float> C0 = randn_f(c.M * ldc, 99);
        std::vector<double> got, ref;
        bool pad_same = true;
        for (int64_t m = 0; m < c.M; ++m) {
          for (int64_t n = 0; n < ldc; ++n) {
            if (n >= c.N) {
              pad_same = pad_same && C[0][m * ldc + n] == C0[m * ldc + n];
              continue;
            }
            double s = 0;
            for (int64_t k = 0; k < c.K; ++k) {
              const double a = ta == Trans::No ? A[m * lda + k] : A[k * lda + m];
              const double b = tb == Trans::No ? B[k * ldb + n] : B[n * ldb + k];
              s += a * b;
            }
            ref.push_back(0.5 * s + C0[m * ldc + n]);
            got.push_back(C[0][m * ldc + n]);
          }
        }
        CHECK(pad_same);
        CHECK(test::check_close("gemm", got, ref, {c.M, c.N}, test::Tol::reduction(c.K, 4.0)));
      }
    }
  }
}

TEST_CASE("gemm: the im2col conv (forward and all gradients) gives the same bits on 1 and 2 threads") {
  // 5x5 kernels: never the Winograd path; 64 -> 96 channels on 30x30 (N = 900: several panels).
  Conv2dShape s;
  s.N = 2, s.C = 64, s.H = 30, s.W = 30, s.Cout = 96, s.KH = 5, s.KW = 5, s.S = 1, s.P = 2, s.G = 1;
  s.x_batch_stride = s.C * s.H * s.W;
  const std::vector<float> x = randn_f(s.N * s.x_batch_stride, 3), w = randn_f(s.Cout * s.C * 25, 4),
                           b = randn_f(s.Cout, 5), dy = randn_f(s.N * s.Cout * s.Ho() * s.Wo(), 6);
  std::vector<float> ws(size_t(cpu::conv2d_workspace_size(s)));
  std::vector<float> y[2], dx[2], dw[2];
  const int before = omp_get_max_threads();
  for (int t = 0; t < 2; ++t) {
    omp_set_num_threads(t + 1);
    y[t].assign(size_t(s.N * s.Cout * s.Ho() * s.Wo()), 0.f);
    dx[t].assign(size_t(s.N * s.x_batch_stride), 0.f);
    dw[t].assign(w.size(), 0.f);
    cpu::conv2d_forward<float>(s, x.data(), w.data(), b.data(), y[t].data(), ws.data());
    cpu::conv2d_backward_input<float>(s, w.data(), dy.data(), dx[t].data(), GradientMode::Overwrite, ws.data());
    cpu::conv2d_backward_weight<float>(s, x.data(), dy.data(), dw[t].data(), GradientMode::Overwrite, ws.data());
  }
  omp_set_num_threads(before);
  CHECK(std::memcmp(y[0].data(), y[1].data(), y[0].size() * sizeof(float)) == 0);
  CHECK(std::memcmp(dx[0].data(), dx[1].data(), dx[0].size() * sizeof(float)) == 0);
  CHECK(std::memcmp(dw[0].data(), dw[1].data(), dw[0].size() * sizeof(float)) == 0);
}
