// FPN Faster R-CNN: module tree, the shared backbone/FPN/RPN forward, training
// (RPN loss, proposals, RoI sampling, RoI loss), BN-recalibration forward and inference.
#include "detect/faster_rcnn.h"

#include <map>
#include <string>
#include <tuple>

#include "core/profile.h"
#include "detect/retinanet.h"  // flatten_head_output
#include "runtime/autograd.h"
#include "runtime/ops_elementwise.h"
#include "runtime/ops_shape.h"

namespace detnas::det {

FasterRcnn::FasterRcnn(const nn::BackboneOptions& bo, const FasterRcnnOptions& o)
    : o_(o), anchors_(AnchorGenerator::rpn(5, o.anchor_size)), rng_(o.seed ^ 0x5a3b1e77c0ffeeULL) {
  DETNAS_CHECK(o.num_classes > 0 && o.fpn_channels > 0 && o.head_depth >= 0 && o.fc_dim > 0,
               "FasterRcnn: bad options num_classes=", o.num_classes, " fpn_channels=", o.fpn_channels,
               " head_depth=", o.head_depth, " fc_dim=", o.fc_dim);
  nn::BackboneOptions b = bo;
  b.head = nn::Head::None;
  backbone_ = register_module("backbone", std::make_unique<nn::Backbone>(b));
  Rng rng(o.seed ^ 0xf9a2c4d1ULL);
  FpnBnOptions fo;
  fo.in_channels = backbone_->feature_channels();
  fo.channels = o.fpn_channels;
  fo.bn_momentum = o.bn_momentum;
  fpn_ = register_module("fpn", std::make_unique<FpnBn>(fo, rng));
  rpn_ = register_module(
      "rpn", std::make_unique<RpnHead>(o.fpn_channels, anchors_.num_anchors_per_location(0), o.rpn.init_std, rng));
  box_head_ = register_module("box_head", std::make_unique<BoxHead>(o.fpn_channels, o.roi.pooler.pooled_h, o.head_depth,
                                                                    o.fc_dim, o.num_classes, o.bn_momentum, rng));
  DETNAS_CHECK(o.roi.pooler.pooled_h == o.roi.pooler.pooled_w, "FasterRcnn: the box head needs a square pooler, got ",
               o.roi.pooler.pooled_h, "x", o.roi.pooler.pooled_w);
}

FasterRcnn::RpnOutputs FasterRcnn::forward_rpn(const rt::Tensor& images, const nn::Arch& path) {
  rt::check_defined("FasterRcnn", images, "images");
  DETNAS_CHECK(images.dim() == 4 && images.size(1) == 3 && images.size(0) > 0 && images.size(2) > 0 &&
                   images.size(2) % 32 == 0 && images.size(3) > 0 && images.size(3) % 32 == 0,
               "FasterRcnn: images ", rt::shape_str(images.shape()),
               " must be (N,3,H,W) with H and W positive multiples of 32");
  RpnOutputs r;
  {
    std::vector<rt::Tensor> c;
    {
      DETNAS_PROFILE_SCOPE("backbone");
      c = backbone_->forward_features(images, path);
    }
    DETNAS_PROFILE_SCOPE("fpn");
    r.features = fpn_->forward(c);
  }
  DETNAS_PROFILE_SCOPE("rpn_head");
  for (const rt::Tensor& p : r.features) {
    auto [ob, de] = rpn_->forward(p);
    r.objectness.push_back(flatten_head_output(ob, 1));
    r.deltas.push_back(flatten_head_output(de, 4));
    r.feature_sizes.push_back({p.size(2), p.size(3)});
  }
  r.all_anchors = rpn_anchors(anchors_, r.feature_sizes);
  int64_t off = 0;
  for (const rt::Tensor& ob : r.objectness) {
    r.anchors.push_back(r.all_anchors.narrow(0, off, ob.size(1)).contiguous());
    off += ob.size(1);
  }
  return r;
}

std::vector<Proposals> FasterRcnn::proposals(const RpnOutputs& r, const std::vector<HW>& sizes, bool train) const {
  DETNAS_PROFILE_SCOPE("proposals");
  ProposalParams pp;
  pp.pre_nms_top_n = train ? o_.rpn.pre_nms_top_n_train : o_.rpn.pre_nms_top_n_test;
  pp.post_nms_top_n = train ? o_.rpn.post_nms_top_n_train : o_.rpn.post_nms_top_n_test;
  pp.nms_thresh = o_.rpn.nms_thresh;
  pp.min_size = o_.rpn.min_size;
  return generate_proposals(r.objectness, r.deltas, r.anchors, sizes, pp);
}

DetLosses FasterRcnn::forward_train(const rt::Tensor& images, const std::vector<Targets>& targets,
                                    const nn::Arch& path) {
  DETNAS_CHECK(images.dim() == 4 && int64_t(targets.size()) == images.size(0),
               "FasterRcnn::forward_train: ", targets.size(), " targets for images ", rt::shape_str(images.shape()));
  for (size_t n = 0; n < targets.size(); ++n)
    for (size_t j = 0; j < targets[n].labels.size(); ++j)
      DETNAS_CHECK(targets[n].labels[j] >= 0 && targets[n].labels[j] < o_.num_classes,
                   "FasterRcnn::forward_train: image ", n, " label ", targets[n].labels[j], " of box ", j,
                   " outside [0, ", o_.num_classes, ")");
  DETNAS_PROFILE_SCOPE("forward_train");
  RpnOutputs r = forward_rpn(images, path);
  const int64_t N = images.size(0);
  RpnLosses rl = rpn_loss(rt::ops::concat(r.objectness), rt::ops::concat(r.deltas), r.all_anchors, targets, o_.rpn,
                          rng_, part_, trace_ ? &trace_->rpn : nullptr);
  std::vector<HW> sizes(size_t(N), HW{images.size(2), images.size(3)});
  std::vector<Proposals> props = proposals(r, sizes, true);
  std::vector<std::vector<float>> boxes;
  for (Proposals& p : props) boxes.push_back(std::move(p.boxes));
  if (trace_) trace_->proposals = boxes;
  RoiSamples s = sample_rois(boxes, targets, o_.roi, rng_, part_, trace_ ? &trace_->roi : nullptr);
  std::vector<int64_t> order;
  rt::Tensor feats = roi_features(r.features, s.rois, &order);
  RoiLosses ll;
  if (order.empty()) {
    ll = roi_loss(rt::Tensor::zeros({0, o_.num_classes + 1}), rt::Tensor::zeros({0, 4 * (o_.num_classes + 1)}), {}, {},
                  o_.roi, part_);  // still a collective with part_ across ranks
  } else {
    std::vector<int64_t> labels;
    std::vector<float> bt;
    for (int64_t i : order) {
      labels.push_back(s.labels[size_t(i)]);
      bt.insert(bt.end(), s.box_targets.begin() + i * 4, s.box_targets.begin() + i * 4 + 4);
    }
    DETNAS_PROFILE_SCOPE("box_head");
    auto [cls, box] = box_head_->forward(feats);
    ll = roi_loss(cls, box, labels, bt, o_.roi, part_);
  }
  rt::Tensor total = rt::ops::add(rt::ops::add(rl.cls, rl.box), rt::ops::add(ll.cls, ll.box));
  return DetLosses{{{"rpn_cls", rl.cls}, {"rpn_box", rl.box}, {"roi_cls", ll.cls}, {"roi_box", ll.box}}, total};
}

rt::Tensor FasterRcnn::roi_features(const std::vector<rt::Tensor>& features, const std::vector<float>& rois,
                                    std::vector<int64_t>* order) const {
  DETNAS_PROFILE_SCOPE("roi_align");
  return multiscale_roi_align({features.begin(), features.begin() + 4}, rois, o_.roi.pooler, order);
}

// RoIs (R,5) of the proposals, batch index first.
static std::vector<float> rois_of(const std::vector<Proposals>& props) {
  std::vector<float> rois;
  for (size_t n = 0; n < props.size(); ++n)
    for (size_t i = 0; i < props[n].scores.size(); ++i) {
      rois.push_back(float(n));
      rois.insert(rois.end(), props[n].boxes.begin() + int64_t(i) * 4, props[n].boxes.begin() + int64_t(i) * 4 + 4);
    }
  return rois;
}

static std::vector<float> reorder_rois(const std::vector<float>& rois, const std::vector<int64_t>& order) {
  std::vector<float> out;
  out.reserve(rois.size());
  for (int64_t i : order) out.insert(out.end(), rois.begin() + i * 5, rois.begin() + i * 5 + 5);
  return out;
}

void FasterRcnn::forward_features(const rt::Tensor& images, const nn::Arch& path) {
  DETNAS_PROFILE_SCOPE("forward_features");
  RpnOutputs r = forward_rpn(images, path);
  std::vector<HW> sizes(size_t(images.size(0)), HW{images.size(2), images.size(3)});
  std::vector<float> rois = rois_of(proposals(r, sizes, false));
  std::vector<int64_t> order;
  rt::Tensor feats = roi_features(r.features, rois, &order);
  DETNAS_PROFILE_SCOPE("box_head");
  if (!order.empty()) box_head_->forward(feats);
}

std::vector<std::vector<Detection>> FasterRcnn::detect(const rt::Tensor& images, const std::vector<ImageMeta>& metas,
                                                       const nn::Arch& path) {
  DETNAS_CHECK(images.dim() == 4 && int64_t(metas.size()) == images.size(0), "FasterRcnn::detect: ", metas.size(),
               " image descriptions for images ", rt::shape_str(images.shape()));
  for (const ImageMeta& m : metas)
    DETNAS_CHECK(m.height > 0 && m.width > 0 && m.height <= images.size(2) && m.width <= images.size(3) &&
                     m.scale_x > 0 && m.scale_y > 0,
                 "FasterRcnn::detect: image ", m.image_id, " size ", m.height, "x", m.width, " scale ", m.scale_x, ",",
                 m.scale_y, " does not fit the batch ", rt::shape_str(images.shape()));
  nn::ModeGuard eval(*this, nn::Mode::Eval);
  rt::NoGradGuard ng;
  DETNAS_PROFILE_SCOPE("detect");
  RpnOutputs r = forward_rpn(images, path);
  std::vector<HW> sizes;
  for (const ImageMeta& m : metas) sizes.push_back({m.height, m.width});
  std::vector<float> rois = rois_of(proposals(r, sizes, false));
  std::vector<int64_t> order;
  rt::Tensor feats = roi_features(r.features, rois, &order);
  if (order.empty()) return std::vector<std::vector<Detection>>(metas.size());
  rt::Tensor cls, box;
  {
    DETNAS_PROFILE_SCOPE("box_head");
    std::tie(cls, box) = box_head_->forward(feats);
  }
  DETNAS_PROFILE_SCOPE("postprocess");
  return roi_postprocess(cls, box, reorder_rois(rois, order), metas, o_.roi);
}

}  // namespace detnas::det
