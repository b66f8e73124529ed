// Detection ops: validate once (box values on host copies), call the device's
// box / RoIAlign kernels (runtime/backend.h), record the RoIAlign backward.
// Workspaces come from the device's caching allocator (rt::Workspace).
#include "runtime/ops_box.h"

#include <cmath>

#include "core/profile.h"
#include "runtime/autograd.h"
#include "runtime/backend.h"

namespace detnas::rt::ops {

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

// A contiguous host copy (the tensor itself when it is a contiguous CPU tensor).
Tensor host_contiguous(const Tensor& t) { return t.to(Device::CPU).contiguous(); }

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
  const Kernels& kt = kernels_for(common_device("roi_align", {&input_in, &boxes_in}));
  const int64_t N = input_in.size(0), C = input_in.size(1), H = input_in.size(2), W = input_in.size(3);
  const int64_t K = boxes_in.size(0);
  DETNAS_CHECK(K == 0 || (H >= 1 && W >= 1), "roi_align: input spatial size must be >= 1, got ",
               shape_str(input_in.shape()));
  Tensor x = input_in.contiguous();
  const Tensor boxes = boxes_in.contiguous().detach();
  const Tensor boxes_h = host_contiguous(boxes);
  const float* bp = boxes_h.data();
  for (int64_t i = 0; i < K; ++i) {
    const float* b = bp + i * 5;
    const float bi = b[0];
    DETNAS_CHECK(std::isfinite(bi) && bi == std::floor(bi) && bi >= 0 && bi < float(N), "roi_align: box ", i,
                 " batch index ", bi, " is not an integer in [0, ", N, ") for input ", shape_str(x.shape()));
    for (int j = 1; j < 5; ++j)
      DETNAS_CHECK(std::isfinite(b[j]), "roi_align: box ", i, " has a non-finite coordinate ", b[j]);
  }
  Tensor y = Tensor::empty({K, C, p.pooled_h, p.pooled_w}, x.device());
  DETNAS_PROFILE_SCOPE("roi_align_kernel");
  if (y.numel() > 0) kt.roi_align_forward(p, N, C, H, W, K, x.data(), boxes.data(), y.data());
  if (wants_grad({&x})) {
    record({&y}, [x, boxes, y, p, &kt]() {
      Tensor gy = y.grad();
      if (!gy.defined()) return;
      GradSlot g = grad_slot(x);
      const int64_t N = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3);
      if (g.mode == GradientMode::Ignore || x.numel() == 0) return;
      kt.roi_align_backward_input(p, N, C, H, W, boxes.size(0), gy.data(), boxes.data(), g.ptr, g.mode);
    });
  }
  return y;
}

// The kernel entry of an IoU matrix: Kernels::box_iou_forward or ::generalized_box_iou_forward.
using PairwiseEntry = void (*Kernels::*)(int64_t, int64_t, const float*, const float*, float*);

static Tensor iou_matrix(const char* op, const Tensor& a_in, const Tensor& b_in, PairwiseEntry entry) {
  check_boxes4(op, a_in, "boxes1");
  check_boxes4(op, b_in, "boxes2");
  const Kernels& kt = kernels_for(common_device(op, {&a_in, &b_in}));
  Tensor a = a_in.contiguous(), b = b_in.contiguous();
  const int64_t N = a.size(0), M = b.size(0);
  Tensor out = Tensor::empty({N, M}, a.device());
  if (out.numel() == 0) return out;
  (kt.*entry)(N, M, a.data(), b.data(), out.data());
  return out;
}

Tensor box_iou(const Tensor& a, const Tensor& b) { return iou_matrix("box_iou", a, b, &Kernels::box_iou_forward); }
Tensor generalized_box_iou(const Tensor& a, const Tensor& b) {
  return iou_matrix("generalized_box_iou", a, b, &Kernels::generalized_box_iou_forward);
}

// Shared checks of nms / batched_nms (values on host copies); returns the
// contiguous boxes and scores on their device.
static void check_nms_inputs(const char* op, const Tensor& boxes_in, const Tensor& scores_in, float thr, Tensor* boxes,
                             Tensor* scores) {
  check_boxes4(op, boxes_in, "boxes");
  check_defined(op, scores_in, "scores");
  DETNAS_CHECK(scores_in.dim() == 1 && scores_in.size(0) == boxes_in.size(0), op, ": scores must be (K) for boxes ",
               shape_str(boxes_in.shape()), ", got ", shape_str(scores_in.shape()));
  DETNAS_CHECK(!std::isnan(thr), op, ": iou_threshold is NaN");
  common_device(op, {&boxes_in, &scores_in});
  *boxes = boxes_in.contiguous();
  *scores = scores_in.contiguous();
  const int64_t K = boxes->size(0);
  check_finite(op, host_contiguous(*boxes).data(), K * 4, 4, "boxes");
  check_finite(op, host_contiguous(*scores).data(), K, 1, "scores");
}

std::vector<int64_t> nms(const Tensor& boxes_in, const Tensor& scores_in, float iou_threshold) {
  Tensor boxes, scores;
  check_nms_inputs("nms", boxes_in, scores_in, iou_threshold, &boxes, &scores);
  const int64_t K = boxes.size(0);
  if (K == 0) return {};
  const Kernels& kt = kernels_for(boxes.device());
  const Workspace ws(kt.nms_workspace_bytes(K), boxes.device());
  std::vector<int64_t> keep(size_t(K), 0);
  const int64_t n = kt.nms(K, boxes.data(), scores.data(), iou_threshold, ws.ptr(), keep.data());
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
  const Kernels& kt = kernels_for(boxes.device());
  const Workspace ws(kt.batched_nms_workspace_bytes(K), boxes.device());
  const Workspace dclasses = upload_array(classes.data(), classes.size(), boxes.device());
  std::vector<int64_t> keep(size_t(K), 0);
  const int64_t n = kt.batched_nms(K, boxes.data(), scores.data(), static_cast<const int64_t*>(dclasses.ptr()),
                                   iou_threshold, ws.ptr(), keep.data());
  keep.resize(size_t(n));
  return keep;
}

}  // namespace detnas::rt::ops
