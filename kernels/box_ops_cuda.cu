// CUDA box kernels over kernels/box_ops.h (box_area, box_iou_value,
// generalized_box_iou_value, nms_before, nms_suppresses): pairwise matrices and
// bitmask NMS.
#include <vector>

#include "kernels/box_ops.h"
#include "kernels/box_ops_cuda.h"
#include "kernels/cuda_check.h"
#include "kernels/cuda_reduce.cuh"
#include "kernels/launch.h"

namespace detnas::kernels::cuda {

constexpr int kBlock = 256;
constexpr int kTile = int(cuda_plan::kNmsTile);

__global__ void box_iou_kernel(int64_t N, int64_t M, const float* __restrict__ a, const float* __restrict__ b,
                               int generalized, float* __restrict__ out) {
  const int64_t total = N * M;
  for (int64_t e = global_thread(); e < total; e += global_stride()) {
    const float* ai = a + (e / M) * 4;
    const float* bj = b + (e % M) * 4;
    out[e] = generalized ? generalized_box_iou_value(ai, bj, box_area(ai), box_area(bj))
                         : box_iou_value(ai, bj, box_area(ai), box_area(bj));
  }
}

// order[rank of i] = i, rank = number of boxes visited before i.
__global__ void nms_rank_kernel(int64_t K, const float* __restrict__ scores, int64_t* __restrict__ order) {
  for (int64_t i = global_thread(); i < K; i += global_stride()) {
    int64_t r = 0;
    for (int64_t j = 0; j < K; ++j) r += nms_before(scores, j, i) ? 1 : 0;
    order[r] = i;
  }
}

// Block (col_block, row_block), kTile threads: row position a = row_block*kTile + t
// gets the bits of the positions b > a in the column block whose box it suppresses.
__global__ void __launch_bounds__(kTile)
    nms_mask_kernel(int64_t K, const float* __restrict__ boxes, const int64_t* __restrict__ order,
                    const int64_t* __restrict__ classes, float threshold, unsigned long long* __restrict__ mask) {
  __shared__ float cb[kTile * 4];
  __shared__ float carea[kTile];
  __shared__ int64_t ccls[kTile];
  const int64_t col_blocks = (K + kTile - 1) / kTile;
  const int64_t col0 = int64_t(blockIdx.x) * kTile, row0 = int64_t(blockIdx.y) * kTile;
  const int t = int(threadIdx.x);
  if (col0 + t < K) {
    const int64_t j = order[col0 + t];
    for (int k = 0; k < 4; ++k) cb[t * 4 + k] = boxes[j * 4 + k];
    carea[t] = box_area(cb + t * 4);
    ccls[t] = classes ? classes[j] : 0;
  }
  __syncthreads();
  const int64_t a = row0 + t;
  if (a >= K) return;
  const int64_t i = order[a];
  const float* bi = boxes + i * 4;
  const float area_i = box_area(bi);
  const int64_t ci = classes ? classes[i] : 0;
  unsigned long long bits = 0;
  const int64_t n = K - col0 < kTile ? K - col0 : kTile;
  for (int64_t c = 0; c < n; ++c) {
    if (col0 + c <= a || ccls[c] != ci) continue;
    if (nms_suppresses(bi, area_i, cb + c * 4, carea[c], threshold)) bits |= 1ull << c;
  }
  mask[a * col_blocks + blockIdx.x] = bits;
}

void box_iou_forward(int64_t N, int64_t M, const float* a, const float* b, float* iou, cudaStream_t stream) {
  if (N * M == 0) return;
  DETNAS_LAUNCH(box_iou_kernel, cuda_plan::grid_1d(N * M, kBlock), kBlock, 0, stream, N, M, a, b, 0, iou);
  DETNAS_CUDA_CHECK_LAUNCH("box_iou_kernel");
}

void generalized_box_iou_forward(int64_t N, int64_t M, const float* a, const float* b, float* giou,
                                 cudaStream_t stream) {
  if (N * M == 0) return;
  DETNAS_LAUNCH(box_iou_kernel, cuda_plan::grid_1d(N * M, kBlock), kBlock, 0, stream, N, M, a, b, 1, giou);
  DETNAS_CUDA_CHECK_LAUNCH("box_iou_kernel");
}

namespace {
int64_t nms_impl(int64_t K, const float* boxes, const float* scores, const int64_t* classes, float thr, void* workspace,
                 int64_t* keep, cudaStream_t stream) {
  if (K == 0) return 0;
  const size_t ws_bytes = cuda_plan::nms_workspace_bytes(K);  // checks K
  (void)ws_bytes;
  DETNAS_CHECK(workspace != nullptr && keep != nullptr, "nms (cuda): null workspace or keep");
  int64_t* order = static_cast<int64_t*>(workspace);
  auto* mask = reinterpret_cast<unsigned long long*>(static_cast<char*>(workspace) + cuda_plan::nms_order_bytes(K));
  const int64_t cols = cuda_plan::nms_col_blocks(K);
  DETNAS_LAUNCH(nms_rank_kernel, cuda_plan::grid_1d(K, kBlock), kBlock, 0, stream, K, scores, order);
  DETNAS_CUDA_CHECK_LAUNCH("nms_rank_kernel");
  DETNAS_LAUNCH(nms_mask_kernel, dim3(unsigned(cols), unsigned(cols)), kTile, 0, stream, K, boxes, order, classes, thr,
                mask);
  DETNAS_CUDA_CHECK_LAUNCH("nms_mask_kernel");
  std::vector<int64_t> h_order(static_cast<size_t>(K));
  std::vector<unsigned long long> h_mask(size_t(K) * size_t(cols)), removed(static_cast<size_t>(cols), 0ull);
  DETNAS_CUDA_CHECK(cudaMemcpyAsync(h_order.data(), order, size_t(K) * 8, cudaMemcpyDeviceToHost, stream));
  DETNAS_CUDA_CHECK(cudaMemcpyAsync(h_mask.data(), mask, h_mask.size() * 8, cudaMemcpyDeviceToHost, stream));
  DETNAS_CUDA_CHECK(cudaStreamSynchronize(stream));
  int64_t n = 0;
  for (int64_t a = 0; a < K; ++a) {
    if (removed[size_t(a / kTile)] >> (a % kTile) & 1ull) continue;
    keep[n++] = h_order[size_t(a)];
    const unsigned long long* row = h_mask.data() + size_t(a) * size_t(cols);
    for (int64_t c = a / kTile; c < cols; ++c) removed[size_t(c)] |= row[c];
  }
  return n;
}
}  // namespace

int64_t nms(int64_t K, const float* boxes, const float* scores, float iou_threshold, void* workspace, int64_t* keep,
            cudaStream_t stream) {
  return nms_impl(K, boxes, scores, nullptr, iou_threshold, workspace, keep, stream);
}

int64_t batched_nms(int64_t K, const float* boxes, const float* scores, const int64_t* classes, float iou_threshold,
                    void* workspace, int64_t* keep, cudaStream_t stream) {
  DETNAS_CHECK(classes != nullptr, "batched_nms (cuda): null classes");
  return nms_impl(K, boxes, scores, classes, iou_threshold, workspace, keep, stream);
}

}  // namespace detnas::kernels::cuda
