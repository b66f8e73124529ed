// Box coding math (torchvision BoxCoder, golden README "box_coder"): one box's
// regression code relative to an anchor and back, as DETNAS_HD functions so the
// CPU loops in detect/box_coder.cpp and a later CUDA decode share them.
// Boxes are (x1, y1, x2, y2); w = x2 - x1, cx = x1 + 0.5*w (no +1).
// Not here: the loops over boxes and input checks (detect/box_coder.cpp).
#pragma once
#include <cmath>

#include "kernels/common.h"

namespace detnas::kernels {

struct BoxCoderParams {
  float wx = 1, wy = 1, ww = 1, wh = 1;  // per-coordinate weights
  double clip = 4.135166556742356;       // max dw, dh before exp: log(1000/16)
};

// code = (wx*(gcx-acx)/aw, wy*(gcy-acy)/ah, ww*log(gw/aw), wh*log(gh/ah))
template <typename T>
DETNAS_HD void box_encode(const BoxCoderParams& p, const T* anchor, const T* gt, T* code) {
  const T aw = anchor[2] - anchor[0], ah = anchor[3] - anchor[1];
  const T acx = anchor[0] + T(0.5) * aw, acy = anchor[1] + T(0.5) * ah;
  const T gw = gt[2] - gt[0], gh = gt[3] - gt[1];
  const T gcx = gt[0] + T(0.5) * gw, gcy = gt[1] + T(0.5) * gh;
  code[0] = T(p.wx) * (gcx - acx) / aw;
  code[1] = T(p.wy) * (gcy - acy) / ah;
  code[2] = T(p.ww) * std::log(gw / aw);
  code[3] = T(p.wh) * std::log(gh / ah);
}

// box = (pcx - pw/2, pcy - ph/2, pcx + pw/2, pcy + ph/2) with pcx = dx*aw + acx,
// pw = exp(min(code2/ww, clip))*aw (same for y).
template <typename T>
DETNAS_HD void box_decode(const BoxCoderParams& p, const T* anchor, const T* code, T* box) {
  const T aw = anchor[2] - anchor[0], ah = anchor[3] - anchor[1];
  const T acx = anchor[0] + T(0.5) * aw, acy = anchor[1] + T(0.5) * ah;
  const T dx = code[0] / T(p.wx), dy = code[1] / T(p.wy);
  T dw = code[2] / T(p.ww), dh = code[3] / T(p.wh);
  if (dw > T(p.clip)) dw = T(p.clip);
  if (dh > T(p.clip)) dh = T(p.clip);
  const T pcx = dx * aw + acx, pcy = dy * ah + acy;
  const T pw = std::exp(dw) * aw, ph = std::exp(dh) * ah;
  const T hw = T(0.5) * pw, hh = T(0.5) * ph;
  box[0] = pcx - hw;
  box[1] = pcy - hh;
  box[2] = pcx + hw;
  box[3] = pcy + hh;
}

}  // namespace detnas::kernels
