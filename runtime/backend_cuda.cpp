// The CUDA kernel table (runtime/backend.h): the kernels::cuda wrappers with
// rt::cuda_stream() appended, plus adapters where CUDA needs something the table
// leaves to the backend (cuDNN's byte workspace, the two-pass device sums, the
// NMS class indices, running-stat resets done on host copies). In a build
// without CUDA this file is empty and kernels_for(Device::CUDA) fails.
#ifdef DETNAS_CUDA
#include <vector>

#include "kernels/batchnorm_cuda.h"
#include "kernels/bn_sync_cuda.h"
#include "kernels/box_ops_cuda.h"
#include "kernels/conv2d_cudnn.h"
#include "kernels/dwconv_cuda.h"
#include "kernels/elementwise_cuda.h"
#include "kernels/gemm_cublas.h"
#include "kernels/loss_cuda.h"
#include "kernels/pool_cuda.h"
#include "kernels/roi_align_cuda.h"
#include "kernels/sgd_cuda.h"
#include "kernels/shuffle_cuda.h"
#include "runtime/backend.h"
#include "runtime/device_allocator.h"

namespace detnas::rt {

namespace {
namespace kc = detnas::kernels::cuda;
namespace plan = detnas::kernels::cuda_plan;

// OnStream<entry type>::call<&kc::f>: the entry for a CUDA wrapper whose
// arguments are the entry's followed by the stream (a signature mismatch does
// not compile).
template <typename Fn>
struct OnStream;
template <typename R, typename... A>
struct OnStream<R (*)(A...)> {
  template <R (*F)(A..., cudaStream_t)>
  static R call(A... a) {
    return F(a..., cuda_stream());
  }
};
#define DETNAS_ON_STREAM(entry, fn) t.entry = &OnStream<decltype(t.entry)>::call<&fn>

size_t reduce_workspace_bytes(int64_t n) { return plan::loss_workspace_bytes(n); }

void sum(int64_t n, const float* x, float* y, void* ws) { kc::loss_sum_to(n, x, 1.0, y, ws, cuda_stream()); }

void loss_sum_to(int64_t n, const float* v, Reduction r, int64_t count, float* y, void* ws) {
  const double scale = r == Reduction::Mean ? (count > 0 ? 1.0 / double(count) : 0.0) : 1.0;
  kc::loss_sum_to(n, v, scale, y, ws, cuda_stream());
}

size_t batchnorm_workspace_bytes(int64_t C) { return plan::batchnorm_workspace_bytes(C); }

// Two (C) vectors: reset host copies with the CPU kernel, then upload them.
void batchnorm_reset_running(int64_t C, float* running_mean, float* running_var) {
  if (C == 0) return;
  std::vector<float> m(static_cast<size_t>(C)), v(static_cast<size_t>(C));
  kernels::cpu::batchnorm_reset_running(C, m.data(), v.data());
  cuda_copy_h2d(running_mean, m.data(), m.size() * sizeof(float));
  cuda_copy_h2d(running_var, v.data(), v.size() * sizeof(float));
}

// The bitmask NMS needs the same workspace with or without classes.
size_t nms_workspace_bytes(int64_t K) { return plan::nms_workspace_bytes(K); }

Kernels make_cuda_table() {
  Kernels t{};
  DETNAS_ON_STREAM(relu_forward, kc::relu_forward);
  DETNAS_ON_STREAM(relu_backward, kc::relu_backward);
  DETNAS_ON_STREAM(add_forward, kc::add_forward);
  DETNAS_ON_STREAM(scale_backward, kc::scale_backward);
  DETNAS_ON_STREAM(mul_forward, kc::mul_forward);
  DETNAS_ON_STREAM(mul_backward, kc::mul_backward);
  DETNAS_ON_STREAM(scale, kc::scale);
  DETNAS_ON_STREAM(broadcast_scalar, kc::broadcast_scalar);

  t.reduce_workspace_bytes = &reduce_workspace_bytes;
  t.sum = &sum;
  t.loss_sum_to = &loss_sum_to;
  DETNAS_ON_STREAM(sum_squares, kc::sum_squares);

  t.conv2d_workspace_bytes = &kc::conv2d_cudnn_workspace_bytes;
  t.conv2d_forward_workspace_bytes = &kc::conv2d_cudnn_workspace_bytes;
  DETNAS_ON_STREAM(conv2d_forward, kc::conv2d_forward);
  DETNAS_ON_STREAM(conv2d_backward_input, kc::conv2d_backward_input);
  DETNAS_ON_STREAM(conv2d_backward_weight, kc::conv2d_backward_weight);
  DETNAS_ON_STREAM(conv2d_backward_bias, kc::conv2d_backward_bias);
  DETNAS_ON_STREAM(dwconv_forward, kc::dwconv_forward);
  DETNAS_ON_STREAM(dwconv_backward_input, kc::dwconv_backward_input);
  DETNAS_ON_STREAM(dwconv_backward_weight, kc::dwconv_backward_weight);
  DETNAS_ON_STREAM(linear_forward, kc::linear_forward);
  DETNAS_ON_STREAM(linear_backward_input, kc::linear_backward_input);
  DETNAS_ON_STREAM(linear_backward_weight, kc::linear_backward_weight);
  DETNAS_ON_STREAM(linear_backward_bias, kc::linear_backward_bias);

  DETNAS_ON_STREAM(channel_shuffle_forward, kc::channel_shuffle_forward);
  DETNAS_ON_STREAM(channel_shuffle_backward_input, kc::channel_shuffle_backward_input);
  DETNAS_ON_STREAM(split_even_odd_forward, kc::split_even_odd_forward);
  DETNAS_ON_STREAM(split_even_odd_backward_input, kc::split_even_odd_backward_input);
  DETNAS_ON_STREAM(concat_forward, kc::concat_forward);
  DETNAS_ON_STREAM(concat_backward_input, kc::concat_backward_input);
  DETNAS_ON_STREAM(max_pool2d_forward, kc::max_pool2d_forward);
  DETNAS_ON_STREAM(max_pool2d_backward_input, kc::max_pool2d_backward_input);
  DETNAS_ON_STREAM(global_avg_pool_forward, kc::global_avg_pool_forward);
  DETNAS_ON_STREAM(global_avg_pool_backward_input, kc::global_avg_pool_backward_input);
  DETNAS_ON_STREAM(upsample_nearest2d_forward, kc::upsample_nearest2d_forward);
  DETNAS_ON_STREAM(upsample_nearest2d_backward_input, kc::upsample_nearest2d_backward_input);

  t.batchnorm_workspace_bytes = &batchnorm_workspace_bytes;
  DETNAS_ON_STREAM(batchnorm_forward_batch, kc::batchnorm_forward_batch);
  DETNAS_ON_STREAM(batchnorm_forward_eval, kc::batchnorm_forward_eval);
  DETNAS_ON_STREAM(batchnorm_backward, kc::batchnorm_backward);
  t.batchnorm_reset_running = &batchnorm_reset_running;

  DETNAS_ON_STREAM(bn_sync_forward_sums, kc::bn_sync_forward_sums);
  DETNAS_ON_STREAM(bn_sync_normalize, kc::bn_sync_normalize);
  DETNAS_ON_STREAM(bn_sync_backward_sums, kc::bn_sync_backward_sums);
  DETNAS_ON_STREAM(bn_sync_backward_input, kc::bn_sync_backward_input);

  DETNAS_ON_STREAM(softmax_xent_forward, kc::softmax_xent_forward);
  DETNAS_ON_STREAM(softmax_xent_backward, kc::softmax_xent_backward);
  DETNAS_ON_STREAM(sigmoid_focal_forward, kc::sigmoid_focal_forward);
  DETNAS_ON_STREAM(sigmoid_focal_backward, kc::sigmoid_focal_backward);
  DETNAS_ON_STREAM(smooth_l1_forward, kc::smooth_l1_forward);
  DETNAS_ON_STREAM(smooth_l1_backward, kc::smooth_l1_backward);
  DETNAS_ON_STREAM(bce_logits_forward, kc::bce_logits_forward);
  DETNAS_ON_STREAM(bce_logits_backward, kc::bce_logits_backward);
  DETNAS_ON_STREAM(giou_loss_forward, kc::giou_loss_forward);
  DETNAS_ON_STREAM(giou_loss_backward, kc::giou_loss_backward);

  DETNAS_ON_STREAM(roi_align_forward, kc::roi_align_forward);
  DETNAS_ON_STREAM(roi_align_backward_input, kc::roi_align_backward_input);
  DETNAS_ON_STREAM(box_iou_forward, kc::box_iou_forward);
  DETNAS_ON_STREAM(generalized_box_iou_forward, kc::generalized_box_iou_forward);
  t.nms_workspace_bytes = &nms_workspace_bytes;
  t.batched_nms_workspace_bytes = &nms_workspace_bytes;
  DETNAS_ON_STREAM(nms, kc::nms);
  DETNAS_ON_STREAM(batched_nms, kc::batched_nms);

  DETNAS_ON_STREAM(sgd_update, kc::sgd_update);
  t.upload = &cuda_copy_h2d;
  t.download = &cuda_copy_d2h;  // cudaMemcpy: waits for the stream's kernels (a blocking stream)
  check_complete(t, "cuda");
  return t;
}
#undef DETNAS_ON_STREAM
}  // namespace

const Kernels& cuda_kernels() {
  static const Kernels table = make_cuda_table();
  return table;
}

}  // namespace detnas::rt

#endif  // DETNAS_CUDA
