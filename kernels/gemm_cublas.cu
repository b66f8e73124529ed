// cuBLAS GEMM wrapper: row-major C = op(A) op(B) computed as the column-major
// C^T = op(B)^T op(A)^T (swap the operands and M/N, keep each operand's own
// transpose flag), one handle per process bound to the caller's stream, the math
// mode set from set_tf32 before every call. Every cuBLAS call is checked
// (DETNAS_CUBLAS_CHECK: status text, file, line). Not emulated (needs a GPU).
#include <cublas_v2.h>

#include <atomic>
#include <mutex>

#include "kernels/bias_cuda.h"
#include "kernels/cuda_check.h"
#include "kernels/cuda_plan.h"
#include "kernels/gemm_cublas.h"

namespace detnas::kernels::cuda {

namespace {
std::atomic<bool> g_tf32{false};

cublasHandle_t handle() {
  static std::once_flag once;
  static cublasHandle_t h = nullptr;
  std::call_once(once, [] { DETNAS_CUBLAS_CHECK(cublasCreate(&h)); });
  return h;
}

int to_int(int64_t v, const char* what) {
  DETNAS_CHECK(cuda_plan::fits_int32(v), "gemm (cuBLAS): ", what, " = ", v, " does not fit a 32-bit int");
  return int(v);
}
}  // namespace

void set_tf32(bool on) { g_tf32.store(on); }
bool tf32_enabled() { return g_tf32.load(); }

void gemm(Trans ta, Trans tb, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda, const float* B,
          int64_t ldb, float beta, float* C, int64_t ldc, cudaStream_t stream) {
  if (M == 0 || N == 0) return;
  cublasHandle_t h = handle();
  DETNAS_CUBLAS_CHECK(cublasSetStream(h, stream));
  DETNAS_CUBLAS_CHECK(cublasSetMathMode(h, tf32_enabled() ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH));
  const cublasOperation_t opa = tb == Trans::Yes ? CUBLAS_OP_T : CUBLAS_OP_N;  // applies to B (first operand)
  const cublasOperation_t opb = ta == Trans::Yes ? CUBLAS_OP_T : CUBLAS_OP_N;  // applies to A (second operand)
  DETNAS_CUBLAS_CHECK(cublasSgemm(h, opa, opb, to_int(N, "N"), to_int(M, "M"), to_int(K, "K"), &alpha, B,
                                  to_int(ldb, "ldb"), A, to_int(lda, "lda"), &beta, C, to_int(ldc, "ldc")));
}

void linear_forward(int64_t N, int64_t Cin, int64_t Cout, const float* x, const float* w, const float* b, float* y,
                    cudaStream_t stream) {
  gemm(Trans::No, Trans::Yes, N, Cout, Cin, 1.0f, x, Cin, w, Cin, 0.0f, y, Cout, stream);
  if (b) bias_add(N, Cout, 1, b, y, stream);
}

void linear_backward_input(int64_t N, int64_t Cin, int64_t Cout, const float* w, const float* dy, float* dx,
                           GradientMode mode, cudaStream_t stream) {
  if (mode == GradientMode::Ignore) return;
  gemm(Trans::No, Trans::No, N, Cin, Cout, 1.0f, dy, Cout, w, Cin, mode == GradientMode::Accumulate ? 1.0f : 0.0f, dx,
       Cin, stream);
}

void linear_backward_weight(int64_t N, int64_t Cin, int64_t Cout, const float* x, const float* dy, float* dw,
                            GradientMode mode, cudaStream_t stream) {
  if (mode == GradientMode::Ignore) return;
  // N == 0: cuBLAS with K = 0 only scales C by beta, which is what = / += of an empty sum need.
  gemm(Trans::Yes, Trans::No, Cout, Cin, N, 1.0f, dy, Cout, x, Cin, mode == GradientMode::Accumulate ? 1.0f : 0.0f, dw,
       Cin, stream);
}

void linear_backward_bias(int64_t N, int64_t Cout, const float* dy, float* db, GradientMode mode, cudaStream_t stream) {
  bias_backward(N, Cout, 1, dy, db, mode, stream);
}

}  // namespace detnas::kernels::cuda
