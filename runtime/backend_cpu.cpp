// The CPU kernel table (runtime/backend.h): the float instantiations of
// kernels::cpu, plus small adapters where the table's device-neutral signature
// carries something the CPU kernel does not need (a byte workspace the CUDA
// twin uses, the loss reductions' rounding).
#include <cstring>

#include "kernels/box_ops.h"
#include "kernels/elementwise.h"
#include "kernels/shuffle.h"
#include "kernels/upsample.h"
#include "runtime/backend.h"

namespace detnas::rt {

namespace {
namespace k = detnas::kernels::cpu;
using kernels::Conv2dShape;

size_t no_workspace(int64_t) { return 0; }

void sum(int64_t n, const float* x, float* y, void*) { k::sum_forward(n, x, y); }

void loss_sum_to(int64_t n, const float* v, Reduction r, int64_t count, float* y, void*) {
  double s = k::loss_sum(n, v);
  if (r == Reduction::Mean) s = count > 0 ? s / double(count) : 0.0;
  *y = float(s);
}

double sum_squares(int64_t n, const float* x, void*) { return k::sum_squares(n, x); }

// im2col / Winograd scratch in floats.
size_t conv2d_workspace_bytes(const Conv2dShape& s) { return size_t(k::conv2d_workspace_size(s)) * sizeof(float); }
size_t conv2d_forward_workspace_bytes(const Conv2dShape& s) {
  return size_t(k::conv2d_forward_workspace_size<float>(s)) * sizeof(float);
}
void conv2d_forward(const Conv2dShape& s, const float* x, const float* w, const float* b, float* y, void* ws, size_t) {
  k::conv2d_forward(s, x, w, b, y, static_cast<float*>(ws));
}
void conv2d_backward_input(const Conv2dShape& s, const float* w, const float* dy, float* dx, GradientMode mode,
                           void* ws, size_t) {
  k::conv2d_backward_input(s, w, dy, dx, mode, static_cast<float*>(ws));
}
void conv2d_backward_weight(const Conv2dShape& s, const float* x, const float* dy, float* dw, GradientMode mode,
                            void* ws, size_t) {
  k::conv2d_backward_weight(s, x, dy, dw, mode, static_cast<float*>(ws));
}

void batchnorm_forward_batch(int64_t N, int64_t C, int64_t HW, const float* x, const float* gamma, const float* beta,
                             double eps, double factor, float* y, float* save_mean, float* save_invstd, float* rm,
                             float* rv, void*) {
  k::batchnorm_forward_batch(N, C, HW, x, gamma, beta, eps, factor, y, save_mean, save_invstd, rm, rv);
}
void batchnorm_forward_eval(int64_t N, int64_t C, int64_t HW, const float* x, const float* gamma, const float* beta,
                            const float* rm, const float* rv, double eps, float* y, float* save_mean,
                            float* save_invstd, void*) {
  k::batchnorm_forward_eval(N, C, HW, x, gamma, beta, rm, rv, eps, y, save_mean, save_invstd);
}
void batchnorm_backward(int64_t N, int64_t C, int64_t HW, const float* x, const float* dy, const float* gamma,
                        const float* save_mean, const float* save_invstd, kernels::BatchNormMode mode,
                        const k::BatchNormGrads<float>& g, void*) {
  k::batchnorm_backward(N, C, HW, x, dy, gamma, save_mean, save_invstd, mode, g);
}

int64_t softmax_xent_forward(int64_t N, int64_t K, const float* x, const int64_t* labels, float eps, float* loss,
                             float* lse, void*) {
  return k::softmax_xent_forward(N, K, x, labels, eps, loss, lse);
}
int64_t sigmoid_focal_forward(int64_t N, int64_t K, const float* x, const float* t, const float* row_w, FocalParams p,
                              float* loss, void*) {
  return k::sigmoid_focal_forward(N, K, x, t, row_w, p, loss);
}
int64_t smooth_l1_forward(int64_t n, const float* x, const float* t, const float* w, float beta, float* loss, void*) {
  return k::smooth_l1_forward(n, x, t, w, beta, loss);
}
int64_t bce_logits_forward(int64_t n, const float* x, const float* t, const float* w, float* loss, void*) {
  return k::bce_logits_forward(n, x, t, w, loss);
}
int64_t giou_loss_forward(int64_t N, const float* a, const float* b, float eps, float* loss, void*) {
  return k::giou_loss_forward(N, a, b, eps, loss);
}

void copy_bytes(void* dst, const void* src, size_t bytes) {
  if (bytes) std::memcpy(dst, src, bytes);
}

Kernels make_cpu_table() {
  Kernels t{};
  t.relu_forward = &k::relu_forward<float>;
  t.relu_backward = &k::relu_backward<float>;
  t.add_forward = &k::add_forward<float>;
  t.scale_backward = &k::scale_backward<float>;
  t.mul_forward = &k::mul_forward<float>;
  t.mul_backward = &k::mul_backward<float>;
  t.scale = &k::scale<float>;
  t.broadcast_scalar = &k::broadcast_scalar<float>;

  t.reduce_workspace_bytes = &no_workspace;
  t.sum = &sum;
  t.loss_sum_to = &loss_sum_to;
  t.sum_squares = &sum_squares;

  t.conv2d_workspace_bytes = &conv2d_workspace_bytes;
  t.conv2d_forward_workspace_bytes = &conv2d_forward_workspace_bytes;
  t.conv2d_forward = &conv2d_forward;
  t.conv2d_backward_input = &conv2d_backward_input;
  t.conv2d_backward_weight = &conv2d_backward_weight;
  t.conv2d_backward_bias = &k::conv2d_backward_bias<float>;
  t.dwconv_forward = &k::dwconv_forward<float>;
  t.dwconv_backward_input = &k::dwconv_backward_input<float>;
  t.dwconv_backward_weight = &k::dwconv_backward_weight<float>;
  t.linear_forward = &k::linear_forward<float>;
  t.linear_backward_input = &k::linear_backward_input<float>;
  t.linear_backward_weight = &k::linear_backward_weight<float>;
  t.linear_backward_bias = &k::linear_backward_bias<float>;

  t.channel_shuffle_forward = &k::channel_shuffle_forward<float>;
  t.channel_shuffle_backward_input = &k::channel_shuffle_backward_input<float>;
  t.split_even_odd_forward = &k::split_even_odd_forward<float>;
  t.split_even_odd_backward_input = &k::split_even_odd_backward_input<float>;
  t.concat_forward = &k::concat_forward<float>;
  t.concat_backward_input = &k::concat_backward_input<float>;
  t.max_pool2d_forward = &k::max_pool2d_forward<float>;
  t.max_pool2d_backward_input = &k::max_pool2d_backward_input<float>;
  t.global_avg_pool_forward = &k::global_avg_pool_forward<float>;
  t.global_avg_pool_backward_input = &k::global_avg_pool_backward_input<float>;
  t.upsample_nearest2d_forward = &k::upsample_nearest2d_forward<float>;
  t.upsample_nearest2d_backward_input = &k::upsample_nearest2d_backward_input<float>;

  t.batchnorm_workspace_bytes = &no_workspace;
  t.batchnorm_forward_batch = &batchnorm_forward_batch;
  t.batchnorm_forward_eval = &batchnorm_forward_eval;
  t.batchnorm_backward = &batchnorm_backward;
  t.batchnorm_reset_running = &k::batchnorm_reset_running<float>;

  t.bn_sync_forward_sums = &k::bn_sync_forward_sums<float>;
  t.bn_sync_normalize = &k::bn_sync_normalize<float>;
  t.bn_sync_backward_sums = &k::bn_sync_backward_sums<float>;
  t.bn_sync_backward_input = &k::bn_sync_backward_input<float>;

  t.softmax_xent_forward = &softmax_xent_forward;
  t.softmax_xent_backward = &k::softmax_xent_backward<float>;
  t.sigmoid_focal_forward = &sigmoid_focal_forward;
  t.sigmoid_focal_backward = &k::sigmoid_focal_backward<float>;
  t.smooth_l1_forward = &smooth_l1_forward;
  t.smooth_l1_backward = &k::smooth_l1_backward<float>;
  t.bce_logits_forward = &bce_logits_forward;
  t.bce_logits_backward = &k::bce_logits_backward<float>;
  t.giou_loss_forward = &giou_loss_forward;
  t.giou_loss_backward = &k::giou_loss_backward<float>;

  t.roi_align_forward = &k::roi_align_forward<float>;
  t.roi_align_backward_input = &k::roi_align_backward_input<float>;
  t.box_iou_forward = &k::box_iou_forward<float>;
  t.generalized_box_iou_forward = &k::generalized_box_iou_forward<float>;
  t.nms_workspace_bytes = &k::nms_workspace_bytes;
  t.batched_nms_workspace_bytes = &k::batched_nms_workspace_bytes;
  t.nms = &k::nms<float>;
  t.batched_nms = &k::batched_nms<float>;

  t.sgd_update = &k::sgd_update<float>;
  t.upload = &copy_bytes;
  t.download = &copy_bytes;
  check_complete(t, "cpu");
  return t;
}
}  // namespace

const Kernels& cpu_kernels() {
  static const Kernels table = make_cpu_table();
  return table;
}

}  // namespace detnas::rt
