// cuDNN convolution wrapper: a per-shape plan (tensor/filter/convolution
// descriptors, the three algorithms and their workspace sizes) built once under a
// mutex and cached for the life of the process; calls bound to the caller's
// stream; every cuDNN call checked (DETNAS_CUDNN_CHECK). Algorithms come from the
// cudnnGet*Algorithm_v7 heuristics (no trial runs, no allocation): the first
// successful one for the forward, the first deterministic one for the backward
// passes, each within kMaxWorkspace bytes. Not emulated (needs a GPU).
#include <cudnn.h>

#include <map>
#include <mutex>
#include <tuple>

#include "kernels/bias_cuda.h"
#include "kernels/conv2d_cudnn.h"
#include "kernels/cuda_check.h"
#include "kernels/cuda_plan.h"
#include "kernels/gemm_cublas.h"

namespace detnas::kernels::cuda {

namespace {

constexpr size_t kMaxWorkspace = size_t(512) << 20;

cudnnHandle_t handle() {
  static std::once_flag once;
  static cudnnHandle_t h = nullptr;
  std::call_once(once, [] { DETNAS_CUDNN_CHECK(cudnnCreate(&h)); });
  return h;
}

int to_int(int64_t v, const char* what) {
  DETNAS_CHECK(cuda_plan::fits_int32(v), "conv2d (cuDNN): ", what, " = ", v, " does not fit a 32-bit int");
  return int(v);
}

struct Plan {
  cudnnTensorDescriptor_t x = nullptr, dx = nullptr, y = nullptr;
  cudnnFilterDescriptor_t w = nullptr;
  cudnnConvolutionDescriptor_t conv = nullptr;
  cudnnConvolutionFwdAlgo_t fwd{};
  cudnnConvolutionBwdDataAlgo_t bwd_data{};
  cudnnConvolutionBwdFilterAlgo_t bwd_filter{};
  size_t ws_fwd = 0, ws_data = 0, ws_filter = 0;
};

using Key =
    std::tuple<int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, bool>;
Key key_of(const Conv2dShape& s) {
  return Key{s.N, s.C, s.H, s.W, s.Cout, s.KH, s.KW, s.S, s.P, s.G, s.x_batch_stride, tf32_enabled()};
}

template <typename Perf>
const Perf* pick(const Perf* perf, int n, bool deterministic) {
  for (int i = 0; i < n; ++i)
    if (perf[i].status == CUDNN_STATUS_SUCCESS && perf[i].memory <= kMaxWorkspace &&
        (!deterministic || perf[i].determinism == CUDNN_DETERMINISTIC))
      return &perf[i];
  return nullptr;
}

Plan build(const Conv2dShape& s) {
  DETNAS_CHECK(s.G >= 1 && s.C % s.G == 0 && s.Cout % s.G == 0, "conv2d (cuDNN): groups ", s.G,
               " do not divide C=", s.C, " and Cout=", s.Cout);
  Plan p;
  const int N = to_int(s.N, "N"), C = to_int(s.C, "C"), H = to_int(s.H, "H"), W = to_int(s.W, "W");
  const int Co = to_int(s.Cout, "Cout"), Ho = to_int(s.Ho(), "Ho"), Wo = to_int(s.Wo(), "Wo");
  DETNAS_CUDNN_CHECK(cudnnCreateTensorDescriptor(&p.x));
  DETNAS_CUDNN_CHECK(cudnnCreateTensorDescriptor(&p.dx));
  DETNAS_CUDNN_CHECK(cudnnCreateTensorDescriptor(&p.y));
  DETNAS_CUDNN_CHECK(cudnnCreateFilterDescriptor(&p.w));
  DETNAS_CUDNN_CHECK(cudnnCreateConvolutionDescriptor(&p.conv));
  DETNAS_CUDNN_CHECK(cudnnSetTensor4dDescriptorEx(p.x, CUDNN_DATA_FLOAT, N, C, H, W,
                                                  to_int(s.x_batch_stride, "x_batch_stride"), H * W, W, 1));
  DETNAS_CUDNN_CHECK(cudnnSetTensor4dDescriptor(p.dx, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, N, C, H, W));
  DETNAS_CUDNN_CHECK(cudnnSetTensor4dDescriptor(p.y, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, N, Co, Ho, Wo));
  DETNAS_CUDNN_CHECK(cudnnSetFilter4dDescriptor(p.w, CUDNN_DATA_FLOAT, CUDNN_TENSOR_NCHW, Co, to_int(s.C / s.G, "C/G"),
                                                to_int(s.KH, "KH"), to_int(s.KW, "KW")));
  DETNAS_CUDNN_CHECK(cudnnSetConvolution2dDescriptor(p.conv, to_int(s.P, "P"), to_int(s.P, "P"), to_int(s.S, "S"),
                                                     to_int(s.S, "S"), 1, 1, CUDNN_CROSS_CORRELATION,
                                                     CUDNN_DATA_FLOAT));
  DETNAS_CUDNN_CHECK(cudnnSetConvolutionGroupCount(p.conv, to_int(s.G, "G")));
  DETNAS_CUDNN_CHECK(cudnnSetConvolutionMathType(p.conv, tf32_enabled() ? CUDNN_TENSOR_OP_MATH : CUDNN_FMA_MATH));
  int outN = 0, outC = 0, outH = 0, outW = 0;
  DETNAS_CUDNN_CHECK(cudnnGetConvolution2dForwardOutputDim(p.conv, p.x, p.w, &outN, &outC, &outH, &outW));
  DETNAS_CHECK(outN == N && outC == Co && outH == Ho && outW == Wo, "conv2d (cuDNN): output ", outN, "x", outC, "x",
               outH, "x", outW, " differs from the expected ", N, "x", Co, "x", Ho, "x", Wo);
  cudnnHandle_t h = handle();
  int n = 0;
  cudnnConvolutionFwdAlgoPerf_t fp[CUDNN_CONVOLUTION_FWD_ALGO_COUNT];
  DETNAS_CUDNN_CHECK(
      cudnnGetConvolutionForwardAlgorithm_v7(h, p.x, p.w, p.conv, p.y, CUDNN_CONVOLUTION_FWD_ALGO_COUNT, &n, fp));
  const cudnnConvolutionFwdAlgoPerf_t* f = pick(fp, n, false);
  DETNAS_CHECK(f != nullptr, "conv2d (cuDNN): no forward algorithm for this shape");
  p.fwd = f->algo;
  cudnnConvolutionBwdDataAlgoPerf_t dp[CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT];
  DETNAS_CUDNN_CHECK(cudnnGetConvolutionBackwardDataAlgorithm_v7(h, p.w, p.y, p.conv, p.dx,
                                                                 CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT, &n, dp));
  const cudnnConvolutionBwdDataAlgoPerf_t* d = pick(dp, n, true);
  DETNAS_CHECK(d != nullptr, "conv2d (cuDNN): no deterministic backward-data algorithm for this shape");
  p.bwd_data = d->algo;
  cudnnConvolutionBwdFilterAlgoPerf_t wp[CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT];
  DETNAS_CUDNN_CHECK(cudnnGetConvolutionBackwardFilterAlgorithm_v7(h, p.x, p.y, p.conv, p.w,
                                                                   CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT, &n, wp));
  const cudnnConvolutionBwdFilterAlgoPerf_t* w = pick(wp, n, true);
  DETNAS_CHECK(w != nullptr, "conv2d (cuDNN): no deterministic backward-filter algorithm for this shape");
  p.bwd_filter = w->algo;
  // The exact sizes for the chosen algorithms (the perf entries are estimates).
  DETNAS_CUDNN_CHECK(cudnnGetConvolutionForwardWorkspaceSize(h, p.x, p.w, p.conv, p.y, p.fwd, &p.ws_fwd));
  DETNAS_CUDNN_CHECK(cudnnGetConvolutionBackwardDataWorkspaceSize(h, p.w, p.y, p.conv, p.dx, p.bwd_data, &p.ws_data));
  DETNAS_CUDNN_CHECK(
      cudnnGetConvolutionBackwardFilterWorkspaceSize(h, p.x, p.y, p.conv, p.w, p.bwd_filter, &p.ws_filter));
  return p;
}

const Plan& plan_for(const Conv2dShape& s) {
  static std::mutex mu;
  // Leaked on purpose, like the handle: the plans' descriptors live for the process
  // (destroying them after the cuDNN library shut down at exit fails), and a
  // reachable cache keeps them out of leak reports (ASan on the emulated GPU).
  static std::map<Key, Plan>* const cache = new std::map<Key, Plan>();
  std::lock_guard<std::mutex> lock(mu);
  const Key k = key_of(s);
  auto it = cache->find(k);
  if (it == cache->end()) it = cache->emplace(k, build(s)).first;
  return it->second;
}

void check_ws(size_t need, size_t have, const char* pass) {
  DETNAS_CHECK(have >= need, "conv2d (cuDNN) ", pass, ": workspace of ", have, " bytes, the algorithm needs ", need);
}

}  // namespace

size_t conv2d_cudnn_workspace_bytes(const Conv2dShape& s) {
  const Plan& p = plan_for(s);
  size_t m = p.ws_fwd > p.ws_data ? p.ws_fwd : p.ws_data;
  return m > p.ws_filter ? m : p.ws_filter;
}

void conv2d_forward(const Conv2dShape& s, const float* x, const float* w, const float* b, float* y, void* ws,
                    size_t ws_bytes, cudaStream_t stream) {
  if (s.N == 0) return;
  const Plan& p = plan_for(s);
  check_ws(p.ws_fwd, ws_bytes, "forward");
  cudnnHandle_t h = handle();
  DETNAS_CUDNN_CHECK(cudnnSetStream(h, stream));
  const float one = 1.0f, zero = 0.0f;
  DETNAS_CUDNN_CHECK(cudnnConvolutionForward(h, &one, p.x, x, p.w, w, p.conv, p.fwd, ws, p.ws_fwd, &zero, p.y, y));
  if (b) bias_add(s.N, s.Cout, s.Ho() * s.Wo(), b, y, stream);
}

void conv2d_backward_input(const Conv2dShape& s, const float* w, const float* dy, float* dx, GradientMode mode,
                           void* ws, size_t ws_bytes, cudaStream_t stream) {
  if (mode == GradientMode::Ignore || s.N == 0) return;
  const Plan& p = plan_for(s);
  check_ws(p.ws_data, ws_bytes, "backward-data");
  cudnnHandle_t h = handle();
  DETNAS_CUDNN_CHECK(cudnnSetStream(h, stream));
  const float one = 1.0f, beta = mode == GradientMode::Accumulate ? 1.0f : 0.0f;
  DETNAS_CUDNN_CHECK(
      cudnnConvolutionBackwardData(h, &one, p.w, w, p.y, dy, p.conv, p.bwd_data, ws, p.ws_data, &beta, p.dx, dx));
}

void conv2d_backward_weight(const Conv2dShape& s, const float* x, const float* dy, float* dw, GradientMode mode,
                            void* ws, size_t ws_bytes, cudaStream_t stream) {
  if (mode == GradientMode::Ignore) return;
  const Plan& p = plan_for(s);
  check_ws(p.ws_filter, ws_bytes, "backward-filter");
  cudnnHandle_t h = handle();
  DETNAS_CUDNN_CHECK(cudnnSetStream(h, stream));
  const float one = 1.0f, beta = mode == GradientMode::Accumulate ? 1.0f : 0.0f;
  DETNAS_CUDNN_CHECK(
      cudnnConvolutionBackwardFilter(h, &one, p.x, x, p.y, dy, p.conv, p.bwd_filter, ws, p.ws_filter, &beta, p.w, dw));
}

void conv2d_backward_bias(const Conv2dShape& s, const float* dy, float* db, GradientMode mode, cudaStream_t stream) {
  bias_backward(s.N, s.Cout, s.Ho() * s.Wo(), dy, db, mode, stream);
}

}  // namespace detnas::kernels::cuda
