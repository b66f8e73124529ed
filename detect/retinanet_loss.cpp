// RetinaNet training targets and loss: anchors on P3..P7, per-image IoU matching,
// dense focal-loss / smooth-L1 inputs, and the normalised loss computed with the
// sigmoid_focal_loss and smooth_l1_loss ops (maskrcnn-benchmark RetinaNetLossComputation).
#include <algorithm>
#include <cmath>

#include "detect/retinanet.h"
#include "runtime/ops_box.h"
#include "runtime/ops_elementwise.h"
#include "runtime/ops_loss.h"

namespace detnas::det {

rt::Tensor retinanet_anchors(const AnchorGenerator& gen, const std::vector<HW>& feature_sizes) {
  DETNAS_CHECK(int64_t(feature_sizes.size()) == gen.num_levels(), "retinanet_anchors: ", feature_sizes.size(),
               " feature maps for ", gen.num_levels(), " anchor levels");
  std::vector<HW> strides;
  for (size_t l = 0; l < feature_sizes.size(); ++l) strides.push_back({int64_t(8) << l, int64_t(8) << l});
  std::vector<float> a = gen.grid_anchors(feature_sizes, strides);
  return rt::Tensor::from_vector({int64_t(a.size() / 4), 4}, a);
}

AnchorTargets assign_anchor_targets(const rt::Tensor& anchors, const Targets& t, int64_t K, const MatcherParams& mp,
                                    const BoxCoder& coder) {
  DETNAS_CHECK(anchors.dim() == 2 && anchors.size(1) == 4, "assign_anchor_targets: anchors ",
               rt::shape_str(anchors.shape()), " are not (T,4)");
  const int64_t T = anchors.size(0), M = int64_t(t.labels.size());
  DETNAS_CHECK(int64_t(t.boxes.size()) == 4 * M, "assign_anchor_targets: ", t.boxes.size() / 4, " boxes and ", M,
               " labels");
  for (int64_t j = 0; j < M; ++j) {
    const float* b = t.boxes.data() + 4 * j;
    // A degenerate box has no valid regression target (log of a zero size).
    DETNAS_CHECK(std::isfinite(b[0]) && std::isfinite(b[1]) && std::isfinite(b[2]) && std::isfinite(b[3]) &&
                     b[2] > b[0] && b[3] > b[1],
                 "assign_anchor_targets: box ", j, " (", b[0], ", ", b[1], ", ", b[2], ", ", b[3],
                 ") is not finite with x2 > x1 and y2 > y1");
  }
  for (int64_t j = 0; j < M; ++j)
    DETNAS_CHECK(t.labels[size_t(j)] >= 0 && t.labels[size_t(j)] < K, "assign_anchor_targets: label ",
                 t.labels[size_t(j)], " of box ", j, " outside [0, ", K, ")");
  AnchorTargets r;
  r.cls_targets.assign(size_t(T * K), 0.0f);
  r.row_weight.assign(size_t(T), 1.0f);
  r.box_targets.assign(size_t(T * 4), 0.0f);
  r.box_weight.assign(size_t(T * 4), 0.0f);
  if (M == 0) return r;  // every anchor is background
  rt::Tensor gt = rt::Tensor::from_vector({M, 4}, t.boxes);
  rt::Tensor iou = rt::ops::box_iou(gt, anchors);  // (M,T)
  std::vector<int64_t> m = match(iou, mp);
  const float* ap = anchors.contiguous().data();
  for (int64_t i = 0; i < T; ++i) {
    const int64_t g = m[size_t(i)];
    if (g == kBetweenThresholds) {
      r.row_weight[size_t(i)] = 0.0f;
    } else if (g >= 0) {
      ++r.num_pos;
      r.cls_targets[size_t(i * K + t.labels[size_t(g)])] = 1.0f;
      coder.encode(1, ap + i * 4, t.boxes.data() + g * 4, r.box_targets.data() + i * 4);
      std::fill(r.box_weight.begin() + i * 4, r.box_weight.begin() + i * 4 + 4, 1.0f);
    }
  }
  return r;
}

Losses retinanet_loss(const rt::Tensor& cls, const rt::Tensor& box, const rt::Tensor& anchors,
                      const std::vector<Targets>& targets, const RetinaNetOptions& o, const BatchPart& part) {
  DETNAS_CHECK(cls.dim() == 3 && box.dim() == 3 && box.size(2) == 4 && cls.size(0) == box.size(0) &&
                   cls.size(1) == box.size(1) && anchors.dim() == 2 && anchors.size(0) == cls.size(1),
               "retinanet_loss: logits ", rt::shape_str(cls.shape()), ", deltas ", rt::shape_str(box.shape()),
               ", anchors ", rt::shape_str(anchors.shape()), " do not agree");
  const int64_t N = cls.size(0), T = cls.size(1), K = cls.size(2);
  DETNAS_CHECK(int64_t(targets.size()) == N, "retinanet_loss: ", targets.size(), " targets for ", N, " images");
  DETNAS_CHECK(K == o.num_classes, "retinanet_loss: logits have ", K, " classes, options say ", o.num_classes);
  BoxCoder coder(o.box_weights);
  std::vector<float> ct, rw, bt, bw;
  ct.reserve(size_t(N * T * K));
  rw.reserve(size_t(N * T));
  bt.reserve(size_t(N * T * 4));
  bw.reserve(size_t(N * T * 4));
  int64_t num_pos = 0;
  for (int64_t n = 0; n < N; ++n) {
    AnchorTargets a = assign_anchor_targets(anchors, targets[size_t(n)], K, o.matcher, coder);
    ct.insert(ct.end(), a.cls_targets.begin(), a.cls_targets.end());
    rw.insert(rw.end(), a.row_weight.begin(), a.row_weight.end());
    bt.insert(bt.end(), a.box_targets.begin(), a.box_targets.end());
    bw.insert(bw.end(), a.box_weight.begin(), a.box_weight.end());
    num_pos += a.num_pos;
  }
  int64_t counts[2] = {num_pos, N};  // of the global batch (BatchPart)
  part.sum_counts(counts, 2);
  const int64_t num_pos_all = counts[0], images_all = counts[1];
  Losses l;
  const rt::Device dev = cls.device();  // targets are built on the host
  rt::Tensor logits = cls.reshape({N * T, K});
  l.cls = rt::ops::sigmoid_focal_loss(logits, rt::Tensor::from_vector({N * T, K}, ct).to(dev), o.focal, Reduction::Sum,
                                      rt::Tensor::from_vector({N * T}, rw).to(dev));
  l.cls = rt::ops::mul_scalar(l.cls, float(1.0 / double(num_pos_all + images_all)));
  rt::Tensor deltas = box.reshape({N * T, 4});
  l.box = rt::ops::smooth_l1_loss(deltas, rt::Tensor::from_vector({N * T, 4}, bt).to(dev), o.smooth_l1_beta,
                                  Reduction::Sum, rt::Tensor::from_vector({N * T, 4}, bw).to(dev));
  l.box = rt::ops::mul_scalar(l.box, float(1.0 / std::max(1.0, double(o.box_loss_norm) * double(num_pos_all))));
  l.total = rt::ops::add(l.cls, l.box);
  return l;
}

}  // namespace detnas::det
