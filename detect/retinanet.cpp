// RetinaNet module: head towers, the flatten of head outputs into anchor order
// (an autograd data-movement op local to the detector), the whole forward for
// training and inference. Losses: detect/retinanet_loss.cpp.
#include "detect/retinanet.h"

#include <cmath>
#include <map>
#include <string>

#include "core/profile.h"
#include "runtime/autograd.h"
#include "runtime/ops_conv.h"
#include "runtime/ops_elementwise.h"
#include "runtime/ops_shape.h"

namespace detnas::det {

// ---- flatten_head_output --------------------------------------------------

// x (N, A*C, H, W) -> y (N, H*W*A, C) =, or its adjoint (y -> x) with `dir`.
enum class FlattenDir { Forward, Backward };
static void flatten_move(int64_t N, int64_t A, int64_t C, int64_t HW, float* x, float* y, FlattenDir dir,
                         GradientMode mode) {
#pragma omp parallel for collapse(2)
  for (int64_t n = 0; n < N; ++n)
    for (int64_t a = 0; a < A; ++a)
      for (int64_t c = 0; c < C; ++c) {
        float* xp = x + ((n * A + a) * C + c) * HW;
        float* yp = y + (n * HW * A + a) * C + c;
        for (int64_t s = 0; s < HW; ++s) {
          if (dir == FlattenDir::Forward)
            yp[s * A * C] = xp[s];
          else if (mode == GradientMode::Accumulate)
            xp[s] += yp[s * A * C];
          else
            xp[s] = yp[s * A * C];
        }
      }
}

rt::Tensor flatten_head_output(const rt::Tensor& x_in, int64_t C) {
  rt::check_defined("flatten_head_output", x_in, "input");
  DETNAS_CHECK(x_in.dim() == 4 && C > 0 && x_in.size(1) % C == 0 && x_in.size(1) > 0, "flatten_head_output: input ",
               rt::shape_str(x_in.shape()), " is not (N, A*", C, ", H, W)");
  if (x_in.device() != rt::Device::CPU) {  // CUDA: the same layout through the generic (recorded) permute
    const int64_t N = x_in.size(0), A = x_in.size(1) / C, HW = x_in.size(2) * x_in.size(3);
    return rt::permute(x_in.reshape({N, A, C, HW}), {0, 3, 1, 2}).reshape({N, HW * A, C});
  }
  rt::Tensor x = x_in.contiguous();
  const int64_t N = x.size(0), A = x.size(1) / C, HW = x.size(2) * x.size(3);
  rt::Tensor y = rt::Tensor::empty({N, HW * A, C}, x.device());
  flatten_move(N, A, C, HW, x.data(), y.data(), FlattenDir::Forward, GradientMode::Overwrite);
  if (rt::wants_grad({&x})) {
    rt::record({&y}, [x, y, N, A, C, HW]() {
      rt::Tensor gy = y.grad();
      if (!gy.defined()) return;
      rt::GradSlot g = rt::grad_slot(x);
      if (g.mode == GradientMode::Ignore) return;
      flatten_move(N, A, C, HW, g.ptr, gy.data(), FlattenDir::Backward, g.mode);
    });
  }
  return y;
}

// ---- RetinaHead -----------------------------------------------------------

RetinaHead::RetinaHead(int64_t channels, int64_t num_anchors, int64_t num_classes, int64_t tower_depth, float init_std,
                       float prior_prob, Rng& rng) {
  DETNAS_CHECK(channels > 0 && num_anchors > 0 && num_classes > 0 && tower_depth >= 0,
               "RetinaHead: bad sizes channels=", channels, " anchors=", num_anchors, " classes=", num_classes,
               " tower_depth=", tower_depth);
  DETNAS_CHECK(prior_prob > 0 && prior_prob < 1, "RetinaHead: prior_prob must be in (0, 1), got ", prior_prob);
  nn::ConvOptions co;
  co.in = channels;
  co.out = channels;
  co.kernel = 3;
  co.bias = nn::Bias::With;
  co.init = nn::ConvInit::FixedStd;
  co.init_std = init_std;
  for (int64_t i = 0; i < tower_depth; ++i)
    cls_tower_.push_back(register_module("cls_tower." + std::to_string(i), std::make_unique<nn::Conv2d>(co, rng)));
  for (int64_t i = 0; i < tower_depth; ++i)
    box_tower_.push_back(register_module("box_tower." + std::to_string(i), std::make_unique<nn::Conv2d>(co, rng)));
  nn::ConvOptions cl = co;
  cl.out = num_anchors * num_classes;
  cl.bias_init = float(-std::log((1.0 - prior_prob) / prior_prob));
  cls_logits = register_module("cls_logits", std::make_unique<nn::Conv2d>(cl, rng));
  nn::ConvOptions bp = co;
  bp.out = num_anchors * 4;
  bbox_pred = register_module("bbox_pred", std::make_unique<nn::Conv2d>(bp, rng));
}

std::pair<rt::Tensor, rt::Tensor> RetinaHead::forward(const rt::Tensor& p) const {
  rt::Tensor c = p, b = p;
  for (auto* conv : cls_tower_) c = rt::ops::relu(conv->forward(c));
  for (auto* conv : box_tower_) b = rt::ops::relu(conv->forward(b));
  return {cls_logits->forward(c), bbox_pred->forward(b)};
}

// ---- RetinaNet ------------------------------------------------------------

RetinaNet::RetinaNet(const nn::BackboneOptions& bo, const RetinaNetOptions& o)
    : o_(o), anchors_(AnchorGenerator::retinanet(5, o.anchor_size)), coder_(o.box_weights) {
  DETNAS_CHECK(o.num_classes > 0, "RetinaNet: num_classes must be positive, got ", o.num_classes);
  nn::BackboneOptions b = bo;
  b.head = nn::Head::None;
  backbone_ = register_module("backbone", std::make_unique<nn::Backbone>(b));
  Rng rng(o.seed ^ 0x7e71aa11ULL);
  std::vector<int64_t> widths = backbone_->feature_channels();
  RetinaFpnOptions fo;
  fo.in_channels = {widths[1], widths[2], widths[3]};
  fo.channels = o.fpn_channels;
  fpn_ = register_module("fpn", std::make_unique<RetinaFpn>(fo, rng));
  head_ = register_module(
      "head", std::make_unique<RetinaHead>(o.fpn_channels, anchors_.num_anchors_per_location(0), o.num_classes,
                                           o.tower_depth, o.head_init_std, o.prior_prob, rng));
}

void RetinaNet::check_images(const rt::Tensor& images) {
  rt::check_defined("RetinaNet", images, "images");
  DETNAS_CHECK(images.dim() == 4 && images.size(1) == 3 && images.size(0) > 0 && images.size(2) > 0 &&
                   images.size(2) % 32 == 0 && images.size(3) > 0 && images.size(3) % 32 == 0,
               "RetinaNet: images ", rt::shape_str(images.shape()),
               " must be (N,3,H,W) with H and W positive multiples of 32");
}

RetinaNet::Outputs RetinaNet::forward_heads(const rt::Tensor& images, const nn::Arch& path) {
  check_images(images);
  std::vector<rt::Tensor> c, p;
  {
    DETNAS_PROFILE_SCOPE("backbone");
    c = backbone_->forward_features(images, path);
  }
  {
    DETNAS_PROFILE_SCOPE("fpn");
    p = fpn_->forward({c[1], c[2], c[3]});
  }
  c.clear();  // the backbone's outputs are dead from here (unless autograd keeps them): not held during the head
  DETNAS_PROFILE_SCOPE("head");
  Outputs out;
  for (const rt::Tensor& pl : p) {
    auto [cl, bx] = head_->forward(pl);
    out.cls.push_back(flatten_head_output(cl, o_.num_classes));
    out.box.push_back(flatten_head_output(bx, 4));
    out.feature_sizes.push_back({pl.size(2), pl.size(3)});
  }
  return out;
}

void RetinaNet::forward_features(const rt::Tensor& images, const nn::Arch& path) {
  check_images(images);
  DETNAS_PROFILE_SCOPE("forward_features");
  DETNAS_PROFILE_SCOPE("backbone");
  backbone_->forward_features(images, path);
}

DetLosses RetinaNet::forward_train(const rt::Tensor& images, const std::vector<Targets>& targets,
                                   const nn::Arch& path) {
  DETNAS_CHECK(int64_t(targets.size()) == images.size(0), "RetinaNet::forward_train: ", targets.size(),
               " targets for images ", rt::shape_str(images.shape()));
  DETNAS_PROFILE_SCOPE("forward_train");
  Outputs h = forward_heads(images, path);
  rt::Tensor cls = rt::ops::concat(h.cls), box = rt::ops::concat(h.box);
  rt::Tensor anchors = retinanet_anchors(anchors_, h.feature_sizes);
  Losses l = retinanet_loss(cls, box, anchors, targets, o_, part_);
  return DetLosses{{{"cls", l.cls}, {"box", l.box}}, l.total};
}

std::vector<std::vector<Detection>> RetinaNet::detect(const rt::Tensor& images, const std::vector<ImageMeta>& metas,
                                                      const nn::Arch& path) {
  DETNAS_CHECK(images.dim() == 4 && int64_t(metas.size()) == images.size(0), "RetinaNet::detect: ", metas.size(),
               " image descriptions for images ", rt::shape_str(images.shape()));
  for (const ImageMeta& m : metas)
    DETNAS_CHECK(m.height > 0 && m.width > 0 && m.height <= images.size(2) && m.width <= images.size(3) &&
                     m.scale_x > 0 && m.scale_y > 0,
                 "RetinaNet::detect: image ", m.image_id, " size ", m.height, "x", m.width, " scale ", m.scale_x, ",",
                 m.scale_y, " does not fit the batch ", rt::shape_str(images.shape()));
  nn::ModeGuard eval(*this, nn::Mode::Eval);
  rt::NoGradGuard ng;
  DETNAS_PROFILE_SCOPE("detect");
  Outputs h = forward_heads(images, path);
  DETNAS_PROFILE_SCOPE("postprocess");
  rt::Tensor all = retinanet_anchors(anchors_, h.feature_sizes);
  std::vector<rt::Tensor> anchors;
  int64_t off = 0;
  for (const rt::Tensor& c : h.cls) {
    anchors.push_back(all.narrow(0, off, c.size(1)).contiguous());
    off += c.size(1);
  }
  return retinanet_postprocess(h.cls, h.box, anchors, metas, coder_, o_.post);
}

}  // namespace detnas::det
