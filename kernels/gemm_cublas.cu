// cuBLAS GEMM wrapper: row-major C = op(A) op(B) computed as the column-major
// C^T = op(B)^T op(A)^T (swap the operands and M/N, keep each operand's own
// transpose flag), one handle per process bound to the caller's stream, the math
// mode set from set_tf32 before every call. Every cuBLAS call is checked
// (DETNAS_CUBLAS_CHECK: status text, file, line). Not emulated (needs a GPU).
//
// cuBLAS is loaded on first use (dlopen), not linked: loading libcublas (and the
// libcublasLt it pulls in) costs about 210 MiB of resident memory at process
// start, which every CPU-only run of a CUDA build paid. The emulated-GPU build
// links its CPU cuBLAS and calls it directly.
#include <cublas_v2.h>

#include <atomic>
#include <mutex>
#include <string>
#include <type_traits>
#ifndef DETNAS_EMU_GPU
#include <dlfcn.h>
#endif

#include "kernels/bias_cuda.h"
#include "kernels/cuda_check.h"
#include "kernels/cuda_plan.h"
#include "kernels/gemm_cublas.h"

namespace detnas::kernels::cuda {

namespace {
std::atomic<bool> g_tf32{false};

#define DETNAS_CUBLAS_NAME2(x) #x
#define DETNAS_CUBLAS_NAME(x) DETNAS_CUBLAS_NAME2(x)  // the exported symbol (cublasCreate -> "cublasCreate_v2")

// The cuBLAS entry points this file calls.
struct CublasApi {
  decltype(&cublasCreate) create = nullptr;
  decltype(&cublasSetStream) set_stream = nullptr;
  decltype(&cublasSetMathMode) set_math_mode = nullptr;
  decltype(&cublasSgemm) sgemm = nullptr;
  decltype(&cublasGetStatusString) status_string = nullptr;
  std::string error;  // why cuBLAS could not be loaded; empty when it was
};

CublasApi load_cublas() {
  CublasApi a;
#ifdef DETNAS_EMU_GPU
  a.create = &cublasCreate, a.set_stream = &cublasSetStream, a.set_math_mode = &cublasSetMathMode;
  a.sgemm = &cublasSgemm, a.status_string = &cublasGetStatusString;
#else
  const std::string so = "libcublas.so." + std::to_string(CUBLAS_VER_MAJOR);
  void* lib = dlopen(so.c_str(), RTLD_NOW | RTLD_LOCAL);  // the binary's run path, LD_LIBRARY_PATH, ld.so.cache
#ifdef DETNAS_CUDA_LIBDIR
  if (!lib) lib = dlopen((std::string(DETNAS_CUDA_LIBDIR) + "/" + so).c_str(), RTLD_NOW | RTLD_LOCAL);
#endif
  if (!lib) {
    const char* e = dlerror();
    a.error = "cannot load " + so + ": " + (e ? e : "unknown error");
    return a;
  }
  auto sym = [&](auto& fn, const char* name) {
    fn = reinterpret_cast<std::remove_reference_t<decltype(fn)> >(dlsym(lib, name));
    if (!fn && a.error.empty()) a.error = so + " has no symbol " + name;
  };
  sym(a.create, DETNAS_CUBLAS_NAME(cublasCreate));
  sym(a.set_stream, DETNAS_CUBLAS_NAME(cublasSetStream));
  sym(a.set_math_mode, DETNAS_CUBLAS_NAME(cublasSetMathMode));
  sym(a.sgemm, DETNAS_CUBLAS_NAME(cublasSgemm));
  sym(a.status_string, DETNAS_CUBLAS_NAME(cublasGetStatusString));
#endif
  return a;
}

const CublasApi& api() {
  static const CublasApi a = load_cublas();
  return a;
}

const CublasApi& loaded_api() {
  const CublasApi& a = api();
  DETNAS_CHECK(a.error.empty(), "cuBLAS: ", a.error);
  return a;
}

cublasHandle_t handle() {
  static std::once_flag once;
  static cublasHandle_t h = nullptr;
  std::call_once(once, [] { DETNAS_CUBLAS_CHECK(loaded_api().create(&h)); });
  return h;
}

int to_int(int64_t v, const char* what) {
  DETNAS_CHECK(cuda_plan::fits_int32(v), "gemm (cuBLAS): ", what, " = ", v, " does not fit a 32-bit int");
  return int(v);
}
}  // namespace

bool cublas_available(std::string* why) {
  const CublasApi& a = api();
  if (why) *why = a.error;
  return a.error.empty();
}

const char* cublas_status_string(int status) {
  const CublasApi& a = api();
  return a.status_string ? a.status_string(cublasStatus_t(status)) : "(cuBLAS not loaded)";
}

void set_tf32(bool on) { g_tf32.store(on); }
bool tf32_enabled() { return g_tf32.load(); }

void gemm(Trans ta, Trans tb, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda, const float* B,
          int64_t ldb, float beta, float* C, int64_t ldc, cudaStream_t stream) {
  if (M == 0 || N == 0) return;
  cublasHandle_t h = handle();
  const CublasApi& cb = loaded_api();
  DETNAS_CUBLAS_CHECK(cb.set_stream(h, stream));
  DETNAS_CUBLAS_CHECK(cb.set_math_mode(h, tf32_enabled() ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH));
  const cublasOperation_t opa = tb == Trans::Yes ? CUBLAS_OP_T : CUBLAS_OP_N;  // applies to B (first operand)
  const cublasOperation_t opb = ta == Trans::Yes ? CUBLAS_OP_T : CUBLAS_OP_N;  // applies to A (second operand)
  DETNAS_CUBLAS_CHECK(cb.sgemm(h, opa, opb, to_int(N, "N"), to_int(M, "M"), to_int(K, "K"), &alpha, B,
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
