// Box coder loops over the per-box math of kernels/box_coder.h.
#include "detect/box_coder.h"

#include <cmath>

#include "core/error.h"

namespace detnas::det {

BoxCoder::BoxCoder(BoxCoderWeights w, double bbox_xform_clip) {
  DETNAS_CHECK(w.wx > 0 && w.wy > 0 && w.ww > 0 && w.wh > 0, "box_coder: weights must be positive, got (", w.wx, ", ",
               w.wy, ", ", w.ww, ", ", w.wh, ")");
  DETNAS_CHECK(std::isfinite(bbox_xform_clip), "box_coder: bbox_xform_clip must be finite, got ", bbox_xform_clip);
  p_.wx = w.wx;
  p_.wy = w.wy;
  p_.ww = w.ww;
  p_.wh = w.wh;
  p_.clip = bbox_xform_clip;
}

void BoxCoder::encode(int64_t n, const float* anchors, const float* gt, float* codes) const {
#pragma omp parallel for schedule(static) if (n > 16384)
  for (int64_t i = 0; i < n; ++i) kernels::box_encode(p_, anchors + i * 4, gt + i * 4, codes + i * 4);
}

void BoxCoder::decode(int64_t n, const float* anchors, const float* codes, float* boxes) const {
#pragma omp parallel for schedule(static) if (n > 16384)
  for (int64_t i = 0; i < n; ++i) kernels::box_decode(p_, anchors + i * 4, codes + i * 4, boxes + i * 4);
}

static void check_pair(const char* op, const rt::Tensor& a, const rt::Tensor& b, const char* bname) {
  rt::check_defined(op, a, "anchors");
  rt::check_defined(op, b, bname);
  DETNAS_CHECK(a.dim() == 2 && a.size(1) == 4 && a.shape() == b.shape(), op, ": anchors and ", bname,
               " must both be (N,4), got ", rt::shape_str(a.shape()), " vs ", rt::shape_str(b.shape()));
  rt::require_cpu(op, {&a, &b});
}

rt::Tensor BoxCoder::encode(const rt::Tensor& anchors_in, const rt::Tensor& gt_in) const {
  check_pair("box_coder.encode", anchors_in, gt_in, "gt_boxes");
  rt::Tensor a = anchors_in.contiguous(), g = gt_in.contiguous();
  rt::Tensor out = rt::Tensor::empty(a.shape());
  encode(a.size(0), a.data(), g.data(), out.data());
  return out;
}

rt::Tensor BoxCoder::decode(const rt::Tensor& anchors_in, const rt::Tensor& codes_in) const {
  check_pair("box_coder.decode", anchors_in, codes_in, "codes");
  rt::Tensor a = anchors_in.contiguous(), c = codes_in.contiguous();
  rt::Tensor out = rt::Tensor::empty(a.shape());
  decode(a.size(0), a.data(), c.data(), out.data());
  return out;
}

}  // namespace detnas::det
