// Emulated-GPU build: the cuDNN subset of include/cudnn.h on the CPU, from the
// cuDNN API documentation. Descriptors are validated when set and when used
// (float data only, NCHW filters, pad >= 0, stride and dilation > 0, groups
// dividing both channel counts, the output descriptor equal to
// cudnnGetConvolution2dForwardOutputDim) and a mismatch returns
// CUDNN_STATUS_BAD_PARAM / NOT_SUPPORTED with the reason logged. Tensors keep
// their four strides (cudnnSetTensor4dDescriptorEx), so strided views are honoured.
// The three convolutions are direct loops over the descriptors with a double
// accumulator per output element, rounded once: CROSS_CORRELATION uses the
// filter as is, CONVOLUTION flips it in both spatial dimensions; out = alpha *
// result + beta * out, and with beta == 0 the output is not read. Math type
// CUDNN_FMA_MATH is exact fp32 inputs; DEFAULT / TENSOR_OP (which permit TF32 on
// sm_80+) round the inputs to TF32 first. The _v7 queries report one forward
// algorithm and, for each backward pass, a non-deterministic algorithm first
// and a deterministic one second, each with a non-zero workspace; a
// convolution call needs at least that workspace, inside a device allocation,
// and overwrites it with 0xFF bytes (as a real algorithm scribbles there).
// Not emulated: the real algorithms' summation order and numerics, timing, NHWC
// filters, other data types, Nd descriptors, fused ops.
#include <cudnn.h>

#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/log.h"
#include "tests/emu/gpu/pkeys.h"

namespace detnas::emu::gpu {
float round_tf32(float x);  // cublas.cpp
}

struct cudnnContext {
  cudaStream_t stream = nullptr;
};
struct cudnnTensorStruct {
  bool set = false;
  int n = 0, c = 0, h = 0, w = 0;
  int ns = 0, cs = 0, hs = 0, ws = 0;
};
struct cudnnFilterStruct {
  bool set = false;
  int k = 0, c = 0, h = 0, w = 0;
};
struct cudnnConvolutionStruct {
  bool set = false;
  int ph = 0, pw = 0, u = 1, v = 1, dh = 1, dw = 1;
  cudnnConvolutionMode_t mode = CUDNN_CROSS_CORRELATION;
  int groups = 1;
  cudnnMathType_t math = CUDNN_DEFAULT_MATH;
};

namespace {

using detnas::detail::cat;
using detnas::emu::gpu::require_device;

template <class... A>
cudnnStatus_t bad(cudnnStatus_t s, const A&... why) {
  detnas::log_warn("emulated cuDNN: ", cudnnGetErrorString(s), ": ", cat(why...));
  return s;
}

// The shape of one convolution, validated from its descriptors.
struct Geo {
  int N, C, H, W, K, Cg, Kg, R, S, P, Q, G;
  int ph, pw, u, v, dh, dw;
  bool flip, tf32;
};

cudnnStatus_t output_dim(const cudnnConvolutionStruct* conv, const cudnnTensorStruct* x, const cudnnFilterStruct* w,
                         int* n, int* c, int* h, int* wo) {
  if (!conv || !conv->set) return bad(CUDNN_STATUS_BAD_PARAM, "convolution descriptor not set");
  if (!x || !x->set) return bad(CUDNN_STATUS_BAD_PARAM, "input tensor descriptor not set");
  if (!w || !w->set) return bad(CUDNN_STATUS_BAD_PARAM, "filter descriptor not set");
  if (x->c != w->c * conv->groups)
    return bad(CUDNN_STATUS_BAD_PARAM, "input channels ", x->c, " != filter channels ", w->c, " x groups ",
               conv->groups);
  if (w->k % conv->groups != 0)
    return bad(CUDNN_STATUS_BAD_PARAM, "filter count ", w->k, " not divisible by groups ", conv->groups);
  const int ho = 1 + (x->h + 2 * conv->ph - ((w->h - 1) * conv->dh + 1)) / conv->u;
  const int wd = 1 + (x->w + 2 * conv->pw - ((w->w - 1) * conv->dw + 1)) / conv->v;
  if (x->h + 2 * conv->ph < (w->h - 1) * conv->dh + 1 || x->w + 2 * conv->pw < (w->w - 1) * conv->dw + 1 || ho <= 0 ||
      wd <= 0)
    return bad(CUDNN_STATUS_BAD_PARAM, "filter ", w->h, "x", w->w, " larger than the padded input ", x->h, "x", x->w);
  *n = x->n;
  *c = w->k;
  *h = ho;
  *wo = wd;
  return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t geometry(const char* api, const cudnnTensorStruct* x, const cudnnFilterStruct* w,
                       const cudnnConvolutionStruct* conv, const cudnnTensorStruct* y, Geo* g) {
  int n, c, h, wo;
  const cudnnStatus_t s = output_dim(conv, x, w, &n, &c, &h, &wo);
  if (s != CUDNN_STATUS_SUCCESS) return bad(s, api, ": bad descriptors");
  if (!y || !y->set) return bad(CUDNN_STATUS_BAD_PARAM, api, ": output tensor descriptor not set");
  if (y->n != n || y->c != c || y->h != h || y->w != wo)
    return bad(CUDNN_STATUS_BAD_PARAM, api, ": output descriptor ", y->n, "x", y->c, "x", y->h, "x", y->w,
               " differs from the convolution's output ", n, "x", c, "x", h, "x", wo);
  *g = Geo{x->n,
           x->c,
           x->h,
           x->w,
           w->k,
           w->c,
           w->k / conv->groups,
           w->h,
           w->w,
           h,
           wo,
           conv->groups,
           conv->ph,
           conv->pw,
           conv->u,
           conv->v,
           conv->dh,
           conv->dw,
           conv->mode == CUDNN_CONVOLUTION,
           conv->math != CUDNN_FMA_MATH};
  return CUDNN_STATUS_SUCCESS;
}

size_t tensor_bytes(const cudnnTensorStruct* t) {
  return (size_t(t->n - 1) * t->ns + size_t(t->c - 1) * t->cs + size_t(t->h - 1) * t->hs + size_t(t->w - 1) * t->ws +
          1) *
         sizeof(float);
}
size_t filter_bytes(const cudnnFilterStruct* f) { return size_t(f->k) * f->c * f->h * f->w * sizeof(float); }
size_t tidx(const cudnnTensorStruct* t, int n, int c, int h, int w) {
  return size_t(n) * t->ns + size_t(c) * t->cs + size_t(h) * t->hs + size_t(w) * t->ws;
}

// Workspace of the emulated algorithms: an im2col-sized buffer for one image
// (never zero); algorithm 0 of the backward passes needs none.
size_t workspace_of(const Geo& g, bool zero) {
  if (zero) return 0;
  const size_t cols = size_t(g.Cg) * g.R * g.S * g.P * g.Q * sizeof(float);
  return cols > 256 ? cols : 256;
}

cudnnStatus_t use_workspace(const char* api, void* ws, size_t have, size_t need) {
  if (have < need)
    return bad(CUDNN_STATUS_BAD_PARAM, api, ": workspace of ", have, " bytes, the algorithm needs ", need);
  if (need > 0) {
    require_device(api, "workspace", ws, need);
    std::memset(ws, 0xFF, need);
  }
  return CUDNN_STATUS_SUCCESS;
}

float scalar(const void* p) { return *static_cast<const float*>(p); }

// Visits every (n, k, p, q, c, r, s) term with its input position; f(n, k, p, q,
// cin, hi, wi, c, fr, fs) where (fr, fs) is the filter tap (flipped for CONVOLUTION).
template <class F>
void for_each_term(const Geo& g, F f) {
  for (int n = 0; n < g.N; ++n)
    for (int k = 0; k < g.K; ++k) {
      const int grp = k / g.Kg;
      for (int p = 0; p < g.P; ++p)
        for (int q = 0; q < g.Q; ++q)
          for (int c = 0; c < g.Cg; ++c)
            for (int r = 0; r < g.R; ++r) {
              const int hi = p * g.u - g.ph + r * g.dh;
              if (hi < 0 || hi >= g.H) continue;
              for (int s = 0; s < g.S; ++s) {
                const int wi = q * g.v - g.pw + s * g.dw;
                if (wi < 0 || wi >= g.W) continue;
                f(n, k, p, q, grp * g.Cg + c, hi, wi, c, g.flip ? g.R - 1 - r : r, g.flip ? g.S - 1 - s : s);
              }
            }
    }
}

}  // namespace

cudnnStatus_t cudnnCreate(cudnnHandle_t* handle) {
  if (!handle) return CUDNN_STATUS_BAD_PARAM;
  *handle = new cudnnContext();
  return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnDestroy(cudnnHandle_t handle) {
  if (!handle) return CUDNN_STATUS_BAD_PARAM;
  delete handle;
  return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnSetStream(cudnnHandle_t handle, cudaStream_t stream) {
  if (!handle) return CUDNN_STATUS_NOT_INITIALIZED;
  detnas::emu::gpu::require_stream("cudnnSetStream", stream);
  handle->stream = stream;
  return CUDNN_STATUS_SUCCESS;
}
const char* cudnnGetErrorString(cudnnStatus_t s) {
  switch (s) {
    case CUDNN_STATUS_SUCCESS:
      return "CUDNN_STATUS_SUCCESS";
    case CUDNN_STATUS_NOT_INITIALIZED:
      return "CUDNN_STATUS_NOT_INITIALIZED";
    case CUDNN_STATUS_ALLOC_FAILED:
      return "CUDNN_STATUS_ALLOC_FAILED";
    case CUDNN_STATUS_BAD_PARAM:
      return "CUDNN_STATUS_BAD_PARAM";
    case CUDNN_STATUS_INTERNAL_ERROR:
      return "CUDNN_STATUS_INTERNAL_ERROR";
    case CUDNN_STATUS_INVALID_VALUE:
      return "CUDNN_STATUS_INVALID_VALUE";
    case CUDNN_STATUS_ARCH_MISMATCH:
      return "CUDNN_STATUS_ARCH_MISMATCH";
    case CUDNN_STATUS_MAPPING_ERROR:
      return "CUDNN_STATUS_MAPPING_ERROR";
    case CUDNN_STATUS_EXECUTION_FAILED:
      return "CUDNN_STATUS_EXECUTION_FAILED";
    case CUDNN_STATUS_NOT_SUPPORTED:
      return "CUDNN_STATUS_NOT_SUPPORTED";
  }
  return "CUDNN_STATUS_UNKNOWN";
}

cudnnStatus_t cudnnCreateTensorDescriptor(cudnnTensorDescriptor_t* d) {
  if (!d) return CUDNN_STATUS_BAD_PARAM;
  *d = new cudnnTensorStruct();
  return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnDestroyTensorDescriptor(cudnnTensorDescriptor_t d) {
  delete d;
  return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnSetTensor4dDescriptorEx(cudnnTensorDescriptor_t d, cudnnDataType_t dtype, int n, int c, int h, int w,
                                           int ns, int cs, int hs, int ws) {
  if (!d) return CUDNN_STATUS_BAD_PARAM;
  if (dtype != CUDNN_DATA_FLOAT)
    return bad(CUDNN_STATUS_NOT_SUPPORTED, "tensor data type ", int(dtype), " (float only)");
  if (n <= 0 || c <= 0 || h <= 0 || w <= 0)
    return bad(CUDNN_STATUS_BAD_PARAM, "tensor dims ", n, "x", c, "x", h, "x", w);
  if (ns <= 0 || cs <= 0 || hs <= 0 || ws <= 0)
    return bad(CUDNN_STATUS_BAD_PARAM, "tensor strides ", ns, ",", cs, ",", hs, ",", ws);
  *d = cudnnTensorStruct{true, n, c, h, w, ns, cs, hs, ws};
  return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnSetTensor4dDescriptor(cudnnTensorDescriptor_t d, cudnnTensorFormat_t format, cudnnDataType_t dtype,
                                         int n, int c, int h, int w) {
  if (format == CUDNN_TENSOR_NCHW) return cudnnSetTensor4dDescriptorEx(d, dtype, n, c, h, w, c * h * w, h * w, w, 1);
  if (format == CUDNN_TENSOR_NHWC) return cudnnSetTensor4dDescriptorEx(d, dtype, n, c, h, w, h * w * c, 1, w * c, c);
  return bad(CUDNN_STATUS_NOT_SUPPORTED, "tensor format ", int(format));
}

cudnnStatus_t cudnnCreateFilterDescriptor(cudnnFilterDescriptor_t* d) {
  if (!d) return CUDNN_STATUS_BAD_PARAM;
  *d = new cudnnFilterStruct();
  return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnDestroyFilterDescriptor(cudnnFilterDescriptor_t d) {
  delete d;
  return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnSetFilter4dDescriptor(cudnnFilterDescriptor_t d, cudnnDataType_t dtype, cudnnTensorFormat_t format,
                                         int k, int c, int h, int w) {
  if (!d) return CUDNN_STATUS_BAD_PARAM;
  if (dtype != CUDNN_DATA_FLOAT) return bad(CUDNN_STATUS_NOT_SUPPORTED, "filter data type ", int(dtype));
  if (format != CUDNN_TENSOR_NCHW)
    return bad(CUDNN_STATUS_NOT_SUPPORTED, "filter format ", int(format), " (NCHW only)");
  if (k <= 0 || c <= 0 || h <= 0 || w <= 0)
    return bad(CUDNN_STATUS_BAD_PARAM, "filter dims ", k, "x", c, "x", h, "x", w);
  *d = cudnnFilterStruct{true, k, c, h, w};
  return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnCreateConvolutionDescriptor(cudnnConvolutionDescriptor_t* d) {
  if (!d) return CUDNN_STATUS_BAD_PARAM;
  *d = new cudnnConvolutionStruct();
  return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnDestroyConvolutionDescriptor(cudnnConvolutionDescriptor_t d) {
  delete d;
  return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnSetConvolution2dDescriptor(cudnnConvolutionDescriptor_t d, int ph, int pw, int u, int v, int dh,
                                              int dw, cudnnConvolutionMode_t mode, cudnnDataType_t compute) {
  if (!d) return CUDNN_STATUS_BAD_PARAM;
  if (ph < 0 || pw < 0 || u <= 0 || v <= 0 || dh <= 0 || dw <= 0)
    return bad(CUDNN_STATUS_BAD_PARAM, "convolution pad ", ph, ",", pw, " stride ", u, ",", v, " dilation ", dh, ",",
               dw);
  if (mode != CUDNN_CONVOLUTION && mode != CUDNN_CROSS_CORRELATION)
    return bad(CUDNN_STATUS_BAD_PARAM, "convolution mode ", int(mode));
  if (compute != CUDNN_DATA_FLOAT) return bad(CUDNN_STATUS_NOT_SUPPORTED, "compute type ", int(compute));
  d->set = true;
  d->ph = ph;
  d->pw = pw;
  d->u = u;
  d->v = v;
  d->dh = dh;
  d->dw = dw;
  d->mode = mode;
  return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnSetConvolutionGroupCount(cudnnConvolutionDescriptor_t d, int groups) {
  if (!d || groups < 1) return bad(CUDNN_STATUS_BAD_PARAM, "group count ", groups);
  d->groups = groups;
  return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnSetConvolutionMathType(cudnnConvolutionDescriptor_t d, cudnnMathType_t math) {
  if (!d) return CUDNN_STATUS_BAD_PARAM;
  if (math != CUDNN_DEFAULT_MATH && math != CUDNN_TENSOR_OP_MATH && math != CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION &&
      math != CUDNN_FMA_MATH)
    return bad(CUDNN_STATUS_BAD_PARAM, "math type ", int(math));
  d->math = math;
  return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnGetConvolution2dForwardOutputDim(const cudnnConvolutionDescriptor_t conv,
                                                    const cudnnTensorDescriptor_t x, const cudnnFilterDescriptor_t w,
                                                    int* n, int* c, int* h, int* wo) {
  if (!n || !c || !h || !wo) return CUDNN_STATUS_BAD_PARAM;
  return output_dim(conv, x, w, n, c, h, wo);
}

cudnnStatus_t cudnnGetConvolutionForwardAlgorithm_v7(cudnnHandle_t handle, const cudnnTensorDescriptor_t x,
                                                     const cudnnFilterDescriptor_t w,
                                                     const cudnnConvolutionDescriptor_t conv,
                                                     const cudnnTensorDescriptor_t y, const int requested,
                                                     int* returned, cudnnConvolutionFwdAlgoPerf_t* perf) {
  if (!handle) return CUDNN_STATUS_NOT_INITIALIZED;
  if (!returned || !perf || requested < 1) return bad(CUDNN_STATUS_BAD_PARAM, "forward _v7: requested ", requested);
  Geo g;
  const cudnnStatus_t s = geometry("cudnnGetConvolutionForwardAlgorithm_v7", x, w, conv, y, &g);
  if (s != CUDNN_STATUS_SUCCESS) return s;
  perf[0] = cudnnConvolutionFwdAlgoPerf_t{CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM,
                                          CUDNN_STATUS_SUCCESS,
                                          0.1f,
                                          workspace_of(g, false),
                                          CUDNN_DETERMINISTIC,
                                          conv->math,
                                          {0, 0, 0}};
  *returned = 1;
  return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnGetConvolutionBackwardDataAlgorithm_v7(cudnnHandle_t handle, const cudnnFilterDescriptor_t w,
                                                          const cudnnTensorDescriptor_t dy,
                                                          const cudnnConvolutionDescriptor_t conv,
                                                          const cudnnTensorDescriptor_t dx, const int requested,
                                                          int* returned, cudnnConvolutionBwdDataAlgoPerf_t* perf) {
  if (!handle) return CUDNN_STATUS_NOT_INITIALIZED;
  if (!returned || !perf || requested < 1)
    return bad(CUDNN_STATUS_BAD_PARAM, "backward-data _v7: requested ", requested);
  Geo g;
  const cudnnStatus_t s = geometry("cudnnGetConvolutionBackwardDataAlgorithm_v7", dx, w, conv, dy, &g);
  if (s != CUDNN_STATUS_SUCCESS) return s;
  const cudnnConvolutionBwdDataAlgoPerf_t all[2] = {{CUDNN_CONVOLUTION_BWD_DATA_ALGO_0,
                                                     CUDNN_STATUS_SUCCESS,
                                                     0.1f,
                                                     workspace_of(g, true),
                                                     CUDNN_NON_DETERMINISTIC,
                                                     conv->math,
                                                     {0, 0, 0}},
                                                    {CUDNN_CONVOLUTION_BWD_DATA_ALGO_1,
                                                     CUDNN_STATUS_SUCCESS,
                                                     0.2f,
                                                     workspace_of(g, false),
                                                     CUDNN_DETERMINISTIC,
                                                     conv->math,
                                                     {0, 0, 0}}};
  *returned = requested < 2 ? requested : 2;
  for (int i = 0; i < *returned; ++i) perf[i] = all[i];
  return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnGetConvolutionBackwardFilterAlgorithm_v7(cudnnHandle_t handle, const cudnnTensorDescriptor_t x,
                                                            const cudnnTensorDescriptor_t dy,
                                                            const cudnnConvolutionDescriptor_t conv,
                                                            const cudnnFilterDescriptor_t dw, const int requested,
                                                            int* returned, cudnnConvolutionBwdFilterAlgoPerf_t* perf) {
  if (!handle) return CUDNN_STATUS_NOT_INITIALIZED;
  if (!returned || !perf || requested < 1)
    return bad(CUDNN_STATUS_BAD_PARAM, "backward-filter _v7: requested ", requested);
  Geo g;
  const cudnnStatus_t s = geometry("cudnnGetConvolutionBackwardFilterAlgorithm_v7", x, dw, conv, dy, &g);
  if (s != CUDNN_STATUS_SUCCESS) return s;
  const cudnnConvolutionBwdFilterAlgoPerf_t all[2] = {{CUDNN_CONVOLUTION_BWD_FILTER_ALGO_0,
                                                       CUDNN_STATUS_SUCCESS,
                                                       0.1f,
                                                       workspace_of(g, true),
                                                       CUDNN_NON_DETERMINISTIC,
                                                       conv->math,
                                                       {0, 0, 0}},
                                                      {CUDNN_CONVOLUTION_BWD_FILTER_ALGO_1,
                                                       CUDNN_STATUS_SUCCESS,
                                                       0.2f,
                                                       workspace_of(g, false),
                                                       CUDNN_DETERMINISTIC,
                                                       conv->math,
                                                       {0, 0, 0}}};
  *returned = requested < 2 ? requested : 2;
  for (int i = 0; i < *returned; ++i) perf[i] = all[i];
  return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnGetConvolutionForwardWorkspaceSize(cudnnHandle_t handle, const cudnnTensorDescriptor_t x,
                                                      const cudnnFilterDescriptor_t w,
                                                      const cudnnConvolutionDescriptor_t conv,
                                                      const cudnnTensorDescriptor_t y, cudnnConvolutionFwdAlgo_t algo,
                                                      size_t* bytes) {
  if (!handle) return CUDNN_STATUS_NOT_INITIALIZED;
  if (!bytes || algo < 0 || algo >= CUDNN_CONVOLUTION_FWD_ALGO_COUNT)
    return bad(CUDNN_STATUS_BAD_PARAM, "forward workspace size: algorithm ", int(algo));
  Geo g;
  const cudnnStatus_t s = geometry("cudnnGetConvolutionForwardWorkspaceSize", x, w, conv, y, &g);
  if (s != CUDNN_STATUS_SUCCESS) return s;
  *bytes = workspace_of(g, false);
  return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnGetConvolutionBackwardDataWorkspaceSize(cudnnHandle_t handle, const cudnnFilterDescriptor_t w,
                                                           const cudnnTensorDescriptor_t dy,
                                                           const cudnnConvolutionDescriptor_t conv,
                                                           const cudnnTensorDescriptor_t dx,
                                                           cudnnConvolutionBwdDataAlgo_t algo, size_t* bytes) {
  if (!handle) return CUDNN_STATUS_NOT_INITIALIZED;
  if (!bytes || algo < 0 || algo >= CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT)
    return bad(CUDNN_STATUS_BAD_PARAM, "backward-data workspace size: algorithm ", int(algo));
  Geo g;
  const cudnnStatus_t s = geometry("cudnnGetConvolutionBackwardDataWorkspaceSize", dx, w, conv, dy, &g);
  if (s != CUDNN_STATUS_SUCCESS) return s;
  *bytes = workspace_of(g, algo == CUDNN_CONVOLUTION_BWD_DATA_ALGO_0);
  return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnGetConvolutionBackwardFilterWorkspaceSize(cudnnHandle_t handle, const cudnnTensorDescriptor_t x,
                                                             const cudnnTensorDescriptor_t dy,
                                                             const cudnnConvolutionDescriptor_t conv,
                                                             const cudnnFilterDescriptor_t dw,
                                                             cudnnConvolutionBwdFilterAlgo_t algo, size_t* bytes) {
  if (!handle) return CUDNN_STATUS_NOT_INITIALIZED;
  if (!bytes || algo < 0 || algo >= CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT)
    return bad(CUDNN_STATUS_BAD_PARAM, "backward-filter workspace size: algorithm ", int(algo));
  Geo g;
  const cudnnStatus_t s = geometry("cudnnGetConvolutionBackwardFilterWorkspaceSize", x, dw, conv, dy, &g);
  if (s != CUDNN_STATUS_SUCCESS) return s;
  *bytes = workspace_of(g, algo == CUDNN_CONVOLUTION_BWD_FILTER_ALGO_0);
  return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnConvolutionForward(cudnnHandle_t handle, const void* alpha, const cudnnTensorDescriptor_t xd,
                                      const void* x, const cudnnFilterDescriptor_t wd, const void* w,
                                      const cudnnConvolutionDescriptor_t conv, cudnnConvolutionFwdAlgo_t algo, void* ws,
                                      size_t ws_bytes, const void* beta, const cudnnTensorDescriptor_t yd, void* y) {
  detnas::emu::gpu::DeviceAccess access;  // the stub plays the GPU: it may touch device memory
  const char* api = "cudnnConvolutionForward";
  if (!handle) return CUDNN_STATUS_NOT_INITIALIZED;
  if (!alpha || !beta || algo < 0 || algo >= CUDNN_CONVOLUTION_FWD_ALGO_COUNT)
    return bad(CUDNN_STATUS_BAD_PARAM, api, ": alpha/beta null or algorithm ", int(algo));
  Geo g;
  cudnnStatus_t s = geometry(api, xd, wd, conv, yd, &g);
  if (s != CUDNN_STATUS_SUCCESS) return s;
  require_device(api, "x", x, tensor_bytes(xd));
  require_device(api, "w", w, filter_bytes(wd));
  require_device(api, "y", y, tensor_bytes(yd));
  s = use_workspace(api, ws, ws_bytes, workspace_of(g, false));
  if (s != CUDNN_STATUS_SUCCESS) return s;
  const float* xp = static_cast<const float*>(x);
  const float* wp = static_cast<const float*>(w);
  float* yp = static_cast<float*>(y);
  auto in = [&g](float v) { return double(g.tf32 ? detnas::emu::gpu::round_tf32(v) : v); };
  std::vector<double> acc(size_t(g.N) * g.K * g.P * g.Q, 0.0);
  for_each_term(g, [&](int n, int k, int p, int q, int ci, int hi, int wi, int c, int fr, int fs) {
    acc[((size_t(n) * g.K + k) * g.P + p) * g.Q + q] +=
        in(xp[tidx(xd, n, ci, hi, wi)]) * in(wp[((size_t(k) * g.Cg + c) * g.R + fr) * g.S + fs]);
  });
  const double al = scalar(alpha), be = scalar(beta);
  for (int n = 0; n < g.N; ++n)
    for (int k = 0; k < g.K; ++k)
      for (int p = 0; p < g.P; ++p)
        for (int q = 0; q < g.Q; ++q) {
          float& o = yp[tidx(yd, n, k, p, q)];
          const double r = al * acc[((size_t(n) * g.K + k) * g.P + p) * g.Q + q];
          o = be == 0.0 ? float(r) : float(r + be * double(o));
        }
  return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnConvolutionBackwardData(cudnnHandle_t handle, const void* alpha, const cudnnFilterDescriptor_t wd,
                                           const void* w, const cudnnTensorDescriptor_t dyd, const void* dy,
                                           const cudnnConvolutionDescriptor_t conv, cudnnConvolutionBwdDataAlgo_t algo,
                                           void* ws, size_t ws_bytes, const void* beta,
                                           const cudnnTensorDescriptor_t dxd, void* dx) {
  detnas::emu::gpu::DeviceAccess access;  // the stub plays the GPU: it may touch device memory
  const char* api = "cudnnConvolutionBackwardData";
  if (!handle) return CUDNN_STATUS_NOT_INITIALIZED;
  if (!alpha || !beta || algo < 0 || algo >= CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT)
    return bad(CUDNN_STATUS_BAD_PARAM, api, ": alpha/beta null or algorithm ", int(algo));
  Geo g;
  cudnnStatus_t s = geometry(api, dxd, wd, conv, dyd, &g);
  if (s != CUDNN_STATUS_SUCCESS) return s;
  require_device(api, "w", w, filter_bytes(wd));
  require_device(api, "dy", dy, tensor_bytes(dyd));
  require_device(api, "dx", dx, tensor_bytes(dxd));
  s = use_workspace(api, ws, ws_bytes, workspace_of(g, algo == CUDNN_CONVOLUTION_BWD_DATA_ALGO_0));
  if (s != CUDNN_STATUS_SUCCESS) return s;
  const float* wp = static_cast<const float*>(w);
  const float* dyp = static_cast<const float*>(dy);
  float* dxp = static_cast<float*>(dx);
  auto in = [&g](float v) { return double(g.tf32 ? detnas::emu::gpu::round_tf32(v) : v); };
  std::vector<double> acc(size_t(g.N) * g.C * g.H * g.W, 0.0);
  for_each_term(g, [&](int n, int k, int p, int q, int ci, int hi, int wi, int c, int fr, int fs) {
    acc[((size_t(n) * g.C + ci) * g.H + hi) * g.W + wi] +=
        in(dyp[tidx(dyd, n, k, p, q)]) * in(wp[((size_t(k) * g.Cg + c) * g.R + fr) * g.S + fs]);
  });
  const double al = scalar(alpha), be = scalar(beta);
  for (int n = 0; n < g.N; ++n)
    for (int c = 0; c < g.C; ++c)
      for (int h = 0; h < g.H; ++h)
        for (int x = 0; x < g.W; ++x) {
          float& o = dxp[tidx(dxd, n, c, h, x)];
          const double r = al * acc[((size_t(n) * g.C + c) * g.H + h) * g.W + x];
          o = be == 0.0 ? float(r) : float(r + be * double(o));
        }
  return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnConvolutionBackwardFilter(cudnnHandle_t handle, const void* alpha, const cudnnTensorDescriptor_t xd,
                                             const void* x, const cudnnTensorDescriptor_t dyd, const void* dy,
                                             const cudnnConvolutionDescriptor_t conv,
                                             cudnnConvolutionBwdFilterAlgo_t algo, void* ws, size_t ws_bytes,
                                             const void* beta, const cudnnFilterDescriptor_t dwd, void* dw) {
  detnas::emu::gpu::DeviceAccess access;  // the stub plays the GPU: it may touch device memory
  const char* api = "cudnnConvolutionBackwardFilter";
  if (!handle) return CUDNN_STATUS_NOT_INITIALIZED;
  if (!alpha || !beta || algo < 0 || algo >= CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT)
    return bad(CUDNN_STATUS_BAD_PARAM, api, ": alpha/beta null or algorithm ", int(algo));
  Geo g;
  cudnnStatus_t s = geometry(api, xd, dwd, conv, dyd, &g);
  if (s != CUDNN_STATUS_SUCCESS) return s;
  require_device(api, "x", x, tensor_bytes(xd));
  require_device(api, "dy", dy, tensor_bytes(dyd));
  require_device(api, "dw", dw, filter_bytes(dwd));
  s = use_workspace(api, ws, ws_bytes, workspace_of(g, algo == CUDNN_CONVOLUTION_BWD_FILTER_ALGO_0));
  if (s != CUDNN_STATUS_SUCCESS) return s;
  const float* xp = static_cast<const float*>(x);
  const float* dyp = static_cast<const float*>(dy);
  float* dwp = static_cast<float*>(dw);
  auto in = [&g](float v) { return double(g.tf32 ? detnas::emu::gpu::round_tf32(v) : v); };
  const size_t nw = size_t(g.K) * g.Cg * g.R * g.S;
  std::vector<double> acc(nw, 0.0);
  for_each_term(g, [&](int n, int k, int p, int q, int ci, int hi, int wi, int c, int fr, int fs) {
    acc[((size_t(k) * g.Cg + c) * g.R + fr) * g.S + fs] +=
        in(dyp[tidx(dyd, n, k, p, q)]) * in(xp[tidx(xd, n, ci, hi, wi)]);
  });
  const double al = scalar(alpha), be = scalar(beta);
  for (size_t i = 0; i < nw; ++i) dwp[i] = be == 0.0 ? float(al * acc[i]) : float(al * acc[i] + be * double(dwp[i]));
  return CUDNN_STATUS_SUCCESS;
}
