// Detection ops: validate once, call the box / RoIAlign kernels, record the
// RoIAlign backward. NMS workspace comes from a Tensor (caching allocator).
#include "runtime/ops_box.h"

#include <cmath>

#include "kernels/box_ops.h"
#include "runtime/autograd.h"
#include "runtime/ops_cuda.h"

namespace detnas::rt::ops {

namespace k = detnas::kernels::cpu;

namespace {

void check_boxes4(const char* op, const Tensor& t, const char* what) {
  check_defined(op, t, what);
  DETNAS_CHECK(t.dim() == 2 && t.size(1) == 4, op, ": ", what, " must be (K,4) boxes (x1,y1,x2,y2), got ",
               shape_str(t.shape()));
}

void check_finite(const char* op, const float* p, int64_t n, int64_t row_len, const char* what) {
  for (int64_t i = 0; i < n; ++i)
    DETNAS_CHECK(std::isfinite(p[i]), op, ": ", what, " row ", i / row_len, " has a non-finite value ", p[i]);
}

Tensor workspace(size_t bytes) { return Tensor::empty({int64_t((bytes + sizeof(float) - 1) / sizeof(float))}); }

}  // namespace

Tensor roi_align(const Tensor& input_in, const Tensor& boxes_in, const RoiAlignParams& p) {
  check_defined("roi_align", input_in, "input");
  check_defined("roi_align", boxes_in, "boxes");
  DETNAS_CHECK(input_in.dim() == 4, "roi_align: input must be (N,C,H,W), got ", shape_str(input_in.shape()));
  DETNAS_CHECK(boxes_in.dim() == 2 && boxes_in.size(1) == 5,
               "roi_align: boxes must be (K,5) rows (batch_index,x1,y1,x2,y2), got ", shape_str(boxes_in.shape()),
               " for input ", shape_str(input_in.shape()));
  DETNAS_CHECK(p.pooled_h >= 1 && p.pooled_w >= 1, "roi_align: output size must be >= 1, got ", p.pooled_h, "x",
               p.pooled_w);
  DETNAS_CHECK(std::isfinite(p.spatial_scale) && p.spatial_scale > 0, "roi_align: spatial_scale must be > 0, got ",
               p.spatial_scale);
  const bool on_cuda = cuda_ops::on_cuda("roi_align", {&input_in, &boxes_in});  // validated on a host copy below
  if (!on_cuda) require_cpu("roi_align", {&input_in, &boxes_in});
  const int64_t N = input_in.size(0), C = input_in.size(1), H = input_in.size(2), W = input_in.size(3);
  const int64_t K = boxes_in.size(0);
  DETNAS_CHECK(K == 0 || (H >= 1 && W >= 1), "roi_align: input spatial size must be >= 1, got ",
               shape_str(input_in.shape()));
  Tensor x = on_cuda ? input_in : input_in.contiguous();
  Tensor boxes = (on_cuda ? boxes_in.to(Device::CPU) : boxes_in.contiguous()).detach();
  const float* bp = boxes.data();
  for (int64_t i = 0; i < K; ++i) {
    const float* b = bp + i * 5;
    const float bi = b[0];
    DETNAS_CHECK(std::isfinite(bi) && bi == std::floor(bi) && bi >= 0 && bi < float(N), "roi_align: box ", i,
                 " batch index ", bi, " is not an integer in [0, ", N, ") for input ", shape_str(x.shape()));
    for (int j = 1; j < 5; ++j)
      DETNAS_CHECK(std::isfinite(b[j]), "roi_align: box ", i, " has a non-finite coordinate ", b[j]);
  }
  if (on_cuda) return cuda_ops::roi_align(input_in, boxes_in, p);
  Tensor y = Tensor::empty({K, C, p.pooled_h, p.pooled_w});
  if (y.numel() > 0) k::roi_align_forward(p, N, C, H, W, K, x.data(), bp, y.data());
  if (wants_grad({&x})) {
    record({&y}, [x, boxes, y, p]() {
      Tensor gy = y.grad();
      if (!gy.defined()) return;
      GradSlot g = grad_slot(x);
      const int64_t N = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3);
      if (g.mode == GradientMode::Ignore || x.numel() == 0) return;
      k::roi_align_backward_input(p, N, C, H, W, boxes.size(0), gy.data(), boxes.data(), g.ptr, g.mode);
    });
  }
  return y;
}

using PairwiseKernel = void (*)(int64_t, int64_t, const float*, const float*, float*);

static Tensor iou_matrix(const char* op, const Tensor& a_in, const Tensor& b_in, PairwiseKernel kernel) {
  check_boxes4(op, a_in, "boxes1");
  check_boxes4(op, b_in, "boxes2");
  if (cuda_ops::on_cuda(op, {&a_in, &b_in}))
    return cuda_ops::box_iou(a_in, b_in, kernel == &k::generalized_box_iou_forward<float>);
  require_cpu(op, {&a_in, &b_in});
  Tensor a = a_in.contiguous(), b = b_in.contiguous();
  const int64_t N = a.size(0), M = b.size(0);
  Tensor out = Tensor::empty({N, M});
  if (out.numel() == 0) return out;
  kernel(N, M, a.data(), b.data(), out.data());
  return out;
}

Tensor box_iou(const Tensor& a, const Tensor& b) { return iou_matrix("box_iou", a, b, k::box_iou_forward<float>); }
Tensor generalized_box_iou(const Tensor& a, const Tensor& b) {
  return iou_matrix("generalized_box_iou", a, b, k::generalized_box_iou_forward<float>);
}

// Shared checks of nms / batched_nms; returns contiguous boxes and scores.
static void check_nms_inputs(const char* op, const Tensor& boxes_in, const Tensor& scores_in, float thr, Tensor* boxes,
                             Tensor* scores) {
  check_boxes4(op, boxes_in, "boxes");
  check_defined(op, scores_in, "scores");
  DETNAS_CHECK(scores_in.dim() == 1 && scores_in.size(0) == boxes_in.size(0), op, ": scores must be (K) for boxes ",
               shape_str(boxes_in.shape()), ", got ", shape_str(scores_in.shape()));
  DETNAS_CHECK(!std::isnan(thr), op, ": iou_threshold is NaN");
  const bool on_cuda = cuda_ops::on_cuda(op, {&boxes_in, &scores_in});  // CUDA: checked on host copies
  if (!on_cuda) require_cpu(op, {&boxes_in, &scores_in});
  *boxes = on_cuda ? boxes_in.to(Device::CPU) : boxes_in.contiguous();
  *scores = on_cuda ? scores_in.to(Device::CPU) : scores_in.contiguous();
  const int64_t K = boxes->size(0);
  check_finite(op, boxes->data(), K * 4, 4, "boxes");
  check_finite(op, scores->data(), K, 1, "scores");
}

std::vector<int64_t> nms(const Tensor& boxes_in, const Tensor& scores_in, float iou_threshold) {
  Tensor boxes, scores;
  check_nms_inputs("nms", boxes_in, scores_in, iou_threshold, &boxes, &scores);
  const int64_t K = boxes.size(0);
  if (K == 0) return {};
  if (boxes_in.device() == Device::CUDA) return cuda_ops::nms(boxes_in, scores_in, nullptr, iou_threshold);
  Tensor ws = workspace(k::nms_workspace_bytes(K));
  std::vector<int64_t> keep(size_t(K), 0);
  int64_t n = k::nms(K, boxes.data(), scores.data(), iou_threshold, ws.data(), keep.data());
  keep.resize(size_t(n));
  return keep;
}

std::vector<int64_t> batched_nms(const Tensor& boxes_in, const Tensor& scores_in, const std::vector<int64_t>& classes,
                                 float iou_threshold) {
  Tensor boxes, scores;
  check_nms_inputs("batched_nms", boxes_in, scores_in, iou_threshold, &boxes, &scores);
  const int64_t K = boxes.size(0);
  DETNAS_CHECK(int64_t(classes.size()) == K, "batched_nms: ", classes.size(), " class indices for boxes ",
               shape_str(boxes.shape()));
  if (K == 0) return {};
  if (boxes_in.device() == Device::CUDA) return cuda_ops::nms(boxes_in, scores_in, &classes, iou_threshold);
  Tensor ws = workspace(k::batched_nms_workspace_bytes(K));
  std::vector<int64_t> keep(size_t(K), 0);
  int64_t n = k::batched_nms(K, boxes.data(), scores.data(), classes.data(), iou_threshold, ws.data(), keep.data());
  keep.resize(size_t(n));
  return keep;
}

}  // namespace detnas::rt::ops
