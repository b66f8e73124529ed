// Tests of the emulated-GPU build's own stubs (tests/emu/gpu): linked into the
// emulated-GPU test binary only (make test-emugpu), never into the real build.
// cuBLAS and cuDNN against hand-computed results (every transpose combination
// with padded leading dimensions; cross-correlation, flipped convolution, pad,
// stride, dilation, groups, strided input, alpha/beta) and the backward passes
// through the adjoint identity <conv(x, w), dy> = <x, dx> = <w, dw>; the
// device-memory registry catching host/device mix-ups at copies, frees and
// kernel launches. Not here: the library's use of them (the `cuda` suite).
#include <cublas_v2.h>
#include <cudnn.h>
#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "core/error.h"
#include "kernels/elementwise_cuda.h"
#include "tests/test_util.h"

namespace {

const float kNaN = std::numeric_limits<float>::quiet_NaN();

// A cudaMalloc buffer filled from / read back to host vectors.
struct Buf {
  float* p = nullptr;
  size_t n = 0;
  explicit Buf(const std::vector<float>& h) : n(h.size()) {
    REQUIRE(cudaMalloc(&p, n * sizeof(float)) == cudaSuccess);
    REQUIRE(cudaMemcpy(p, h.data(), n * sizeof(float), cudaMemcpyHostToDevice) == cudaSuccess);
  }
  ~Buf() { cudaFree(p); }
  Buf(const Buf&) = delete;
  Buf& operator=(const Buf&) = delete;
  std::vector<float> host() const {
    std::vector<float> h(n);
    REQUIRE(cudaMemcpy(h.data(), p, n * sizeof(float), cudaMemcpyDeviceToHost) == cudaSuccess);
    return h;
  }
};

double dot(const std::vector<float>& a, const std::vector<float>& b) {
  double s = 0;
  for (size_t i = 0; i < a.size(); ++i) s += double(a[i]) * double(b[i]);
  return s;
}

}  // namespace

TEST_CASE("cuda (emulated GPU): cublasSgemm is column-major with op, ld, alpha, beta (hand-computed)") {
  cublasHandle_t h = nullptr;
  REQUIRE(cublasCreate(&h) == CUBLAS_STATUS_SUCCESS);
  // op(A) = [[1,2],[3,4]] (2x2), op(B) = [[5,6,7],[8,9,10]] (2x3): op(A) op(B) = [[21,24,27],[47,54,61]].
  const float am[2][2] = {{1, 2}, {3, 4}}, bm[2][3] = {{5, 6, 7}, {8, 9, 10}};
  const float cm[2][3] = {{21, 24, 27}, {47, 54, 61}};
  const int m = 2, n = 3, k = 2, lda = 3, ldb = 4, ldc = 5;  // padded: padding is NaN and must not be read
  for (cublasOperation_t ta : {CUBLAS_OP_N, CUBLAS_OP_T})
    for (cublasOperation_t tb : {CUBLAS_OP_N, CUBLAS_OP_T}) {
      CAPTURE(int(ta));
      CAPTURE(int(tb));
      std::vector<float> a(size_t(lda) * 3, kNaN), b(size_t(ldb) * 3, kNaN), c(size_t(ldc) * n, kNaN);
      for (int i = 0; i < m; ++i)
        for (int p = 0; p < k; ++p) a[ta == CUBLAS_OP_N ? i + p * lda : p + i * lda] = am[i][p];
      for (int p = 0; p < k; ++p)
        for (int j = 0; j < n; ++j) b[tb == CUBLAS_OP_N ? p + j * ldb : j + p * ldb] = bm[p][j];
      Buf da(a), db(b), dc(c);
      const float alpha = 2.0f, beta0 = 0.0f, beta = 0.5f;
      REQUIRE(cublasSgemm(h, ta, tb, m, n, k, &alpha, da.p, lda, db.p, ldb, &beta0, dc.p, ldc) ==
              CUBLAS_STATUS_SUCCESS);
      std::vector<float> out = dc.host();
      for (int j = 0; j < n; ++j)
        for (int i = 0; i < ldc; ++i) {
          if (i < m)
            CHECK(out[size_t(i + j * ldc)] == 2.0f * cm[i][j]);  // beta 0: the NaN in C is not read
          else
            CHECK(std::isnan(out[size_t(i + j * ldc)]));  // rows past m untouched
        }
      REQUIRE(cublasSgemm(h, ta, tb, m, n, k, &alpha, da.p, lda, db.p, ldb, &beta, dc.p, ldc) == CUBLAS_STATUS_SUCCESS);
      out = dc.host();
      for (int j = 0; j < n; ++j)
        for (int i = 0; i < m; ++i) CHECK(out[size_t(i + j * ldc)] == 2.0f * cm[i][j] + 0.5f * 2.0f * cm[i][j]);
    }
  // lda below the rows of A is rejected, as by cuBLAS.
  Buf x(std::vector<float>(16, 1.0f));
  const float one = 1.0f, zero = 0.0f;
  CHECK(cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, 4, 2, 2, &one, x.p, 3, x.p, 2, &zero, x.p, 4) ==
        CUBLAS_STATUS_INVALID_VALUE);
  // TF32 math rounds the inputs to 10 mantissa bits: (1 + 2^-12) * 1 -> 1.
  Buf a1(std::vector<float>{1.0f + std::ldexp(1.0f, -12)}), b1(std::vector<float>{1.0f}), c1(std::vector<float>{0});
  REQUIRE(cublasSetMathMode(h, CUBLAS_TF32_TENSOR_OP_MATH) == CUBLAS_STATUS_SUCCESS);
  REQUIRE(cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, 1, 1, 1, &one, a1.p, 1, b1.p, 1, &zero, c1.p, 1) ==
          CUBLAS_STATUS_SUCCESS);
  CHECK(c1.host()[0] == 1.0f);
  REQUIRE(cublasSetMathMode(h, CUBLAS_DEFAULT_MATH) == CUBLAS_STATUS_SUCCESS);
  REQUIRE(cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, 1, 1, 1, &one, a1.p, 1, b1.p, 1, &zero, c1.p, 1) ==
          CUBLAS_STATUS_SUCCESS);
  CHECK(c1.host()[0] == 1.0f + std::ldexp(1.0f, -12));
  cublasDestroy(h);
}

namespace {
// One forward convolution of an n x c x hh x ww input (tensor descriptor with the
// given batch stride) by k x (c/g) x r x s filters; returns y (y0 = initial values).
struct Conv {
  cudnnHandle_t h = nullptr;
  cudnnTensorDescriptor_t xd = nullptr, yd = nullptr;
  cudnnFilterDescriptor_t wd = nullptr;
  cudnnConvolutionDescriptor_t cd = nullptr;
  int n, c, hh, ww, k, r, s, ho = 0, wo = 0;
  Conv(int n_, int c_, int hh_, int ww_, int k_, int r_, int s_, int pad, int stride, int dil, int groups,
       cudnnConvolutionMode_t mode, int batch_stride = 0)
      : n(n_), c(c_), hh(hh_), ww(ww_), k(k_), r(r_), s(s_) {
    REQUIRE(cudnnCreate(&h) == CUDNN_STATUS_SUCCESS);
    REQUIRE(cudnnCreateTensorDescriptor(&xd) == CUDNN_STATUS_SUCCESS);
    REQUIRE(cudnnCreateTensorDescriptor(&yd) == CUDNN_STATUS_SUCCESS);
    REQUIRE(cudnnCreateFilterDescriptor(&wd) == CUDNN_STATUS_SUCCESS);
    REQUIRE(cudnnCreateConvolutionDescriptor(&cd) == CUDNN_STATUS_SUCCESS);
    REQUIRE(cudnnSetTensor4dDescriptorEx(xd, CUDNN_DATA_FLOAT, n, c, hh, ww, batch_stride ? batch_stride : c * hh * ww,
                                         hh * ww, ww, 1) == CUDNN_STATUS_SUCCESS);
    REQUIRE(cudnnSetFilter4dDescriptor(wd, CUDNN_DATA_FLOAT, CUDNN_TENSOR_NCHW, k, c / groups, r, s) ==
            CUDNN_STATUS_SUCCESS);
    REQUIRE(cudnnSetConvolution2dDescriptor(cd, pad, pad, stride, stride, dil, dil, mode, CUDNN_DATA_FLOAT) ==
            CUDNN_STATUS_SUCCESS);
    REQUIRE(cudnnSetConvolutionGroupCount(cd, groups) == CUDNN_STATUS_SUCCESS);
    REQUIRE(cudnnSetConvolutionMathType(cd, CUDNN_FMA_MATH) == CUDNN_STATUS_SUCCESS);
    int on, oc;
    REQUIRE(cudnnGetConvolution2dForwardOutputDim(cd, xd, wd, &on, &oc, &ho, &wo) == CUDNN_STATUS_SUCCESS);
    REQUIRE(on == n);
    REQUIRE(oc == k);
    REQUIRE(cudnnSetTensor4dDescriptor(yd, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, n, k, ho, wo) == CUDNN_STATUS_SUCCESS);
  }
  ~Conv() {
    cudnnDestroyTensorDescriptor(xd);
    cudnnDestroyTensorDescriptor(yd);
    cudnnDestroyFilterDescriptor(wd);
    cudnnDestroyConvolutionDescriptor(cd);
    cudnnDestroy(h);
  }
  size_t fwd_ws() {
    size_t b = 0;
    REQUIRE(cudnnGetConvolutionForwardWorkspaceSize(h, xd, wd, cd, yd, CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM,
                                                    &b) == CUDNN_STATUS_SUCCESS);
    return b;
  }
  std::vector<float> forward(const std::vector<float>& x, const std::vector<float>& w, std::vector<float> y0,
                             float alpha = 1.0f, float beta = 0.0f) {
    Buf dx(x), dw(w), dy(y0), ws(std::vector<float>(fwd_ws() / sizeof(float) + 1, 0.0f));
    REQUIRE(cudnnConvolutionForward(h, &alpha, xd, dx.p, wd, dw.p, cd, CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM,
                                    ws.p, fwd_ws(), &beta, yd, dy.p) == CUDNN_STATUS_SUCCESS);
    return dy.host();
  }
};
}  // namespace

TEST_CASE("cuda (emulated GPU): cuDNN forward convolution from the descriptors (hand-computed)") {
  const std::vector<float> x = {1, 2, 3, 4, 5, 6, 7, 8, 9}, w = {1, 2, 3, 4};
  {
    Conv cc(1, 1, 3, 3, 1, 2, 2, 0, 1, 1, 1, CUDNN_CROSS_CORRELATION);
    CHECK(cc.forward(x, w, std::vector<float>(4, kNaN)) == std::vector<float>{37, 47, 67, 77});
    CHECK(cc.forward(x, w, std::vector<float>(4, 1.0f), 2.0f, 0.5f) == std::vector<float>{74.5, 94.5, 134.5, 154.5});
  }
  {
    Conv cv(1, 1, 3, 3, 1, 2, 2, 0, 1, 1, 1, CUDNN_CONVOLUTION);  // the filter flipped
    CHECK(cv.forward(x, w, std::vector<float>(4, 0.0f)) == std::vector<float>{23, 33, 53, 63});
  }
  {
    Conv ps(1, 1, 3, 3, 1, 2, 2, 1, 2, 1, 1, CUDNN_CROSS_CORRELATION);  // pad 1, stride 2
    REQUIRE(ps.ho == 2);
    CHECK(ps.forward(x, w, std::vector<float>(4, 0.0f)) == std::vector<float>{4, 18, 36, 77});
  }
  {
    Conv dl(1, 1, 3, 3, 1, 2, 2, 0, 1, 2, 1, CUDNN_CROSS_CORRELATION);  // dilation 2: the four corners
    REQUIRE(dl.ho == 1);
    CHECK(dl.forward(x, w, std::vector<float>(1, 0.0f)) == std::vector<float>{64});
  }
  {
    Conv gr(1, 2, 1, 1, 2, 1, 1, 0, 1, 1, 2, CUDNN_CROSS_CORRELATION);  // 2 groups of one channel
    CHECK(gr.forward({2, 3}, {10, 100}, std::vector<float>(2, 0.0f)) == std::vector<float>{20, 300});
  }
  {
    // Batch stride 12 > 9: the 3 values between images are NaN and never read.
    Conv st(2, 1, 3, 3, 1, 2, 2, 0, 1, 1, 1, CUDNN_CROSS_CORRELATION, 12);
    std::vector<float> x2(21, kNaN);
    for (int i = 0; i < 9; ++i) x2[size_t(i)] = x[size_t(i)], x2[size_t(12 + i)] = 2 * x[size_t(i)];
    CHECK(st.forward(x2, w, std::vector<float>(8, 0.0f)) == std::vector<float>{37, 47, 67, 77, 74, 94, 134, 154});
  }
}

TEST_CASE("cuda (emulated GPU): cuDNN backward data / filter are the adjoints of the forward") {
  struct Case {
    int n, c, h, w, k, r, pad, stride, dil, groups;
    cudnnConvolutionMode_t mode;
  };
  for (const Case cs : {Case{2, 4, 5, 6, 6, 3, 1, 2, 1, 2, CUDNN_CROSS_CORRELATION},
                        Case{1, 3, 7, 5, 2, 3, 2, 1, 2, 1, CUDNN_CONVOLUTION},
                        Case{2, 4, 4, 4, 4, 3, 1, 1, 1, 4, CUDNN_CROSS_CORRELATION}}) {
    CAPTURE(cs.groups);
    Conv cv(cs.n, cs.c, cs.h, cs.w, cs.k, cs.r, cs.r, cs.pad, cs.stride, cs.dil, cs.groups, cs.mode);
    const size_t nx = size_t(cs.n) * cs.c * cs.h * cs.w, nw = size_t(cs.k) * (cs.c / cs.groups) * cs.r * cs.r;
    const size_t ny = size_t(cs.n) * cs.k * cv.ho * cv.wo;
    const std::vector<float> x = detnas::test::randn_f(int64_t(nx), 1), w = detnas::test::randn_f(int64_t(nw), 2),
                             dy = detnas::test::randn_f(int64_t(ny), 3);
    const std::vector<float> y = cv.forward(x, w, std::vector<float>(ny, 0.0f));
    Buf bx(x), bw(w), bdy(dy), bdx(std::vector<float>(nx, kNaN)), bdw(std::vector<float>(nw, kNaN));
    int got = 0;
    cudnnConvolutionBwdDataAlgoPerf_t dp[CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT];
    REQUIRE(cudnnGetConvolutionBackwardDataAlgorithm_v7(cv.h, cv.wd, cv.yd, cv.cd, cv.xd,
                                                        CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT, &got,
                                                        dp) == CUDNN_STATUS_SUCCESS);
    REQUIRE(got == 2);
    CHECK(dp[0].determinism == CUDNN_NON_DETERMINISTIC);  // callers that need determinism must skip it
    REQUIRE(dp[1].determinism == CUDNN_DETERMINISTIC);
    cudnnConvolutionBwdFilterAlgoPerf_t fp[CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT];
    REQUIRE(cudnnGetConvolutionBackwardFilterAlgorithm_v7(cv.h, cv.xd, cv.yd, cv.cd, cv.wd,
                                                          CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT, &got,
                                                          fp) == CUDNN_STATUS_SUCCESS);
    REQUIRE(fp[1].determinism == CUDNN_DETERMINISTIC);
    size_t wsd = 0, wsf = 0;
    REQUIRE(cudnnGetConvolutionBackwardDataWorkspaceSize(cv.h, cv.wd, cv.yd, cv.cd, cv.xd, dp[1].algo, &wsd) ==
            CUDNN_STATUS_SUCCESS);
    REQUIRE(cudnnGetConvolutionBackwardFilterWorkspaceSize(cv.h, cv.xd, cv.yd, cv.cd, cv.wd, fp[1].algo, &wsf) ==
            CUDNN_STATUS_SUCCESS);
    CHECK(wsd > 0);
    CHECK(wsf > 0);
    Buf ws(std::vector<float>((wsd > wsf ? wsd : wsf) / sizeof(float) + 1, 0.0f));
    const float one = 1.0f, zero = 0.0f;
    // Too small a workspace is a bad parameter.
    CHECK(cudnnConvolutionBackwardData(cv.h, &one, cv.wd, bw.p, cv.yd, bdy.p, cv.cd, dp[1].algo, ws.p, wsd - 1, &zero,
                                       cv.xd, bdx.p) == CUDNN_STATUS_BAD_PARAM);
    REQUIRE(cudnnConvolutionBackwardData(cv.h, &one, cv.wd, bw.p, cv.yd, bdy.p, cv.cd, dp[1].algo, ws.p, wsd, &zero,
                                         cv.xd, bdx.p) == CUDNN_STATUS_SUCCESS);
    REQUIRE(cudnnConvolutionBackwardFilter(cv.h, &one, cv.xd, bx.p, cv.yd, bdy.p, cv.cd, fp[1].algo, ws.p, wsf, &zero,
                                           cv.wd, bdw.p) == CUDNN_STATUS_SUCCESS);
    const double ydy = dot(y, dy), xdx = dot(x, bdx.host()), wdw = dot(w, bdw.host());
    CHECK(std::fabs(xdx - ydy) <= 1e-5 * (1.0 + std::fabs(ydy)));
    CHECK(std::fabs(wdw - ydy) <= 1e-5 * (1.0 + std::fabs(ydy)));
    // beta = 1 accumulates: dx + dx.
    const std::vector<float> dx1 = bdx.host();
    REQUIRE(cudnnConvolutionBackwardData(cv.h, &one, cv.wd, bw.p, cv.yd, bdy.p, cv.cd, dp[1].algo, ws.p, wsd, &one,
                                         cv.xd, bdx.p) == CUDNN_STATUS_SUCCESS);
    const std::vector<float> dx2 = bdx.host();
    for (size_t i = 0; i < nx; ++i) CHECK(dx2[i] == 2.0f * dx1[i]);
  }
}

TEST_CASE("cuda (emulated GPU): the device-memory registry catches host/device mix-ups") {
  std::vector<float> host(8, 1.0f);
  Buf dev(host);
  CHECK(detnas::emu::gpu::is_device_pointer(dev.p + 3));
  CHECK(!detnas::emu::gpu::is_device_pointer(host.data()));
  // Fresh device memory is poisoned (NaN), not zero.
  float* fresh = nullptr;
  REQUIRE(cudaMalloc(&fresh, 4 * sizeof(float)) == cudaSuccess);
  float v = 0;
  REQUIRE(cudaMemcpy(&v, fresh, sizeof v, cudaMemcpyDeviceToHost) == cudaSuccess);
  CHECK(std::isnan(v));
  CHECK_THROWS_AS(cudaMemcpy(host.data(), dev.p, 32, cudaMemcpyHostToDevice), detnas::Error);      // swapped
  CHECK_THROWS_AS(cudaMemcpy(host.data(), dev.p + 4, 32, cudaMemcpyDeviceToHost), detnas::Error);  // overrun
  CHECK_THROWS_AS(cudaMemcpy(dev.p, fresh, 32, cudaMemcpyHostToDevice), detnas::Error);            // src is device
  CHECK_THROWS_AS(cudaMemsetAsync(host.data(), 0, 4), detnas::Error);
  CHECK_THROWS_AS(cudaFree(host.data()), detnas::Error);
  // A kernel given a host pointer fails at the launch, naming the kernel.
  CHECK_THROWS_WITH_AS(detnas::kernels::cuda::relu_forward(8, host.data(), dev.p, nullptr), doctest::Contains("relu"),
                       detnas::Error);
  detnas::kernels::cuda::relu_forward(4, fresh, dev.p, nullptr);  // device pointers: fine
  REQUIRE(cudaFree(fresh) == cudaSuccess);
  CHECK_THROWS_AS(cudaFree(fresh), detnas::Error);  // double free
}
