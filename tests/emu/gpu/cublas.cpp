// Emulated-GPU build: the cuBLAS subset of include/cublas_v2.h on the CPU.
// cublasSgemm follows the cuBLAS documentation: column-major storage,
// C = alpha op(A) op(B) + beta C with op(A) m x k and op(B) k x n, leading
// dimensions checked (lda >= max(1, transa == N ? m : k), ldb >= max(1,
// transb == N ? k : n), ldc >= max(1, m)) and CUBLAS_STATUS_INVALID_VALUE
// otherwise; when beta == 0, C is not read (NaN there does not propagate). Each
// element is a double-precision dot product, rounded once to float. Under
// CUBLAS_TF32_TENSOR_OP_MATH the inputs are first rounded to TF32 (10 mantissa
// bits, round to nearest, ties away), as tensor cores do. Every operand must lie
// inside a live device allocation (tests/emu/gpu/cudart.cpp). Not emulated: the
// blocking and summation order of the real kernels, pointer mode device,
// batched/strided/other-precision entry points (not declared: they would not link).
#include <cublas_v2.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "core/error.h"
#include "core/log.h"
#include "tests/emu/gpu/pkeys.h"

struct cublasContext {
  cudaStream_t stream = nullptr;
  cublasMath_t math = CUBLAS_DEFAULT_MATH;
};

namespace detnas::emu::gpu {
// Round a float to TF32 (1 sign, 8 exponent, 10 mantissa bits), to nearest with
// ties away from zero; infinities and NaN pass unchanged.
float round_tf32(float x) {
  if (!std::isfinite(x)) return x;
  uint32_t u;
  std::memcpy(&u, &x, 4);
  u = (u + 0x1000u) & ~0x1fffu;
  float r;
  std::memcpy(&r, &u, 4);
  return r;
}
}  // namespace detnas::emu::gpu

namespace {
cublasStatus_t invalid(const char* why) {
  detnas::log_warn("emulated cuBLAS: CUBLAS_STATUS_INVALID_VALUE: ", why);
  return CUBLAS_STATUS_INVALID_VALUE;
}
}  // namespace

cublasStatus_t cublasCreate(cublasHandle_t* handle) {
  if (!handle) return CUBLAS_STATUS_INVALID_VALUE;
  *handle = new cublasContext();
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasDestroy(cublasHandle_t handle) {
  if (!handle) return CUBLAS_STATUS_NOT_INITIALIZED;
  delete handle;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasSetStream(cublasHandle_t handle, cudaStream_t stream) {
  if (!handle) return CUBLAS_STATUS_NOT_INITIALIZED;
  detnas::emu::gpu::require_stream("cublasSetStream", stream);
  handle->stream = stream;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasSetMathMode(cublasHandle_t handle, cublasMath_t mode) {
  if (!handle) return CUBLAS_STATUS_NOT_INITIALIZED;
  if (mode != CUBLAS_DEFAULT_MATH && mode != CUBLAS_TENSOR_OP_MATH && mode != CUBLAS_PEDANTIC_MATH &&
      mode != CUBLAS_TF32_TENSOR_OP_MATH)
    return invalid("cublasSetMathMode: unknown mode");
  handle->math = mode;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasGetMathMode(cublasHandle_t handle, cublasMath_t* mode) {
  if (!handle) return CUBLAS_STATUS_NOT_INITIALIZED;
  if (!mode) return CUBLAS_STATUS_INVALID_VALUE;
  *mode = handle->math;
  return CUBLAS_STATUS_SUCCESS;
}

const char* cublasGetStatusString(cublasStatus_t status) {
  switch (status) {
    case CUBLAS_STATUS_SUCCESS:
      return "CUBLAS_STATUS_SUCCESS";
    case CUBLAS_STATUS_NOT_INITIALIZED:
      return "CUBLAS_STATUS_NOT_INITIALIZED";
    case CUBLAS_STATUS_ALLOC_FAILED:
      return "CUBLAS_STATUS_ALLOC_FAILED";
    case CUBLAS_STATUS_INVALID_VALUE:
      return "CUBLAS_STATUS_INVALID_VALUE";
    case CUBLAS_STATUS_ARCH_MISMATCH:
      return "CUBLAS_STATUS_ARCH_MISMATCH";
    case CUBLAS_STATUS_MAPPING_ERROR:
      return "CUBLAS_STATUS_MAPPING_ERROR";
    case CUBLAS_STATUS_EXECUTION_FAILED:
      return "CUBLAS_STATUS_EXECUTION_FAILED";
    case CUBLAS_STATUS_INTERNAL_ERROR:
      return "CUBLAS_STATUS_INTERNAL_ERROR";
    case CUBLAS_STATUS_NOT_SUPPORTED:
      return "CUBLAS_STATUS_NOT_SUPPORTED";
  }
  return "CUBLAS_STATUS_UNKNOWN";
}

cublasStatus_t cublasSgemm(cublasHandle_t handle, cublasOperation_t transa, cublasOperation_t transb, int m, int n,
                           int k, const float* alpha, const float* A, int lda, const float* B, int ldb,
                           const float* beta, float* C, int ldc) {
  using detnas::emu::gpu::require_device;
  detnas::emu::gpu::DeviceAccess access;  // the stub plays the GPU: it may touch device memory
  if (!handle) return CUBLAS_STATUS_NOT_INITIALIZED;
  if (transa != CUBLAS_OP_N && transa != CUBLAS_OP_T && transa != CUBLAS_OP_C) return invalid("cublasSgemm: transa");
  if (transb != CUBLAS_OP_N && transb != CUBLAS_OP_T && transb != CUBLAS_OP_C) return invalid("cublasSgemm: transb");
  if (m < 0 || n < 0 || k < 0) return invalid("cublasSgemm: negative m, n or k");
  const bool ta = transa != CUBLAS_OP_N, tb = transb != CUBLAS_OP_N;  // C == T for real data
  const int a_rows = ta ? k : m, a_cols = ta ? m : k;                 // A as stored (column-major)
  const int b_rows = tb ? n : k, b_cols = tb ? k : n;
  if (lda < (a_rows > 1 ? a_rows : 1))
    return invalid(detnas::detail::cat("cublasSgemm: lda ", lda, " < rows of A ", a_rows).c_str());
  if (ldb < (b_rows > 1 ? b_rows : 1))
    return invalid(detnas::detail::cat("cublasSgemm: ldb ", ldb, " < rows of B ", b_rows).c_str());
  if (ldc < (m > 1 ? m : 1)) return invalid(detnas::detail::cat("cublasSgemm: ldc ", ldc, " < m ", m).c_str());
  if (!alpha || !beta) return invalid("cublasSgemm: null alpha or beta");
  if (m == 0 || n == 0) return CUBLAS_STATUS_SUCCESS;
  const float al = *alpha, be = *beta;
  // The extent each operand spans (the last column needs only its rows).
  auto extent = [](int rows, int cols, int ld) {
    return (size_t(cols - 1) * size_t(ld) + size_t(rows)) * sizeof(float);
  };
  require_device("cublasSgemm", "C", C, extent(m, n, ldc));
  const bool reads_ab = k > 0 && al != 0.0f;
  if (reads_ab) {
    require_device("cublasSgemm", "A", A, extent(a_rows, a_cols, lda));
    require_device("cublasSgemm", "B", B, extent(b_rows, b_cols, ldb));
  }
  const bool tf32 = handle->math == CUBLAS_TF32_TENSOR_OP_MATH;
  auto in = [tf32](float v) { return double(tf32 ? detnas::emu::gpu::round_tf32(v) : v); };
  std::vector<double> arow(size_t(k > 0 ? k : 1));
  for (int i = 0; i < m; ++i) {
    if (reads_ab)
      for (int p = 0; p < k; ++p) arow[size_t(p)] = in(ta ? A[size_t(i) * lda + p] : A[size_t(p) * lda + i]);
    for (int j = 0; j < n; ++j) {
      double acc = 0.0;
      if (reads_ab)
        for (int p = 0; p < k; ++p) acc += arow[size_t(p)] * in(tb ? B[size_t(p) * ldb + j] : B[size_t(j) * ldb + p]);
      float& c = C[size_t(j) * ldc + i];
      const double r = double(al) * acc;
      c = be == 0.0f ? float(r) : float(r + double(be) * double(c));
    }
  }
  return CUBLAS_STATUS_SUCCESS;
}
