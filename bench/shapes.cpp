// Shapes of the networks the bench times and the box sets of the detection
// entries. See bench/shapes.h. bench/compare/torch_bench.py mirrors
// make_rois / make_nms_boxes draw for draw (all arithmetic in double, then
// rounded to float).
#include "bench/shapes.h"

#include <algorithm>
#include <cmath>

#include "bench/harness.h"
#include "kernels/conv2d.h"
#include "nn/space.h"

namespace detnas::bench {

std::string NetConfig::tag() const { return space + "@" + std::to_string(res); }

std::vector<NetConfig> net_configs() {
  // The default run covers the small space at the small input and the large
  // space at the large input; --all adds the other two combinations.
  return {{"300M", 320, true}, {"1.3G", 800, true}, {"300M", 800, false}, {"1.3G", 320, false}};
}

BackboneShapes backbone_shapes(const std::string& space_name, int64_t res) {
  const nn::SearchSpace& space = nn::space_by_name(space_name);
  BackboneShapes out;
  out.stem_out = space.stem;
  out.stem_H = kernels::conv_out_size(res, 3, 2, 1);
  int64_t H = out.stem_H;
  const std::vector<nn::BlockSpec> specs = nn::blocks(space);
  for (int s = 0; s < nn::kNumStages; ++s) {
    StageShape st;
    st.stage = s + 1;
    st.H_in = H;
    H = kernels::conv_out_size(H, 3, 2, 1);  // the same for k 3, 5, 7 with pad k/2
    st.H = H;
    st.width = space.stage_widths[size_t(s)];
    bool have_s1 = false, have_s2 = false;
    for (const nn::BlockSpec& b : specs) {
      if (b.stage != s) continue;
      if (b.stride == 2 && !have_s2) {
        st.s2_in = b.in_channels;
        st.s2_mid = b.mid_channels;
        have_s2 = true;
      } else if (b.stride == 1 && !have_s1) {
        st.main_in = b.main_in;
        st.mid = b.mid_channels;
        have_s1 = true;
      }
    }
    if (!have_s1) {  // a one-block stage: time its width as if it had a stride-1 block
      st.main_in = st.width / 2;
      st.mid = st.width / 2;
    }
    out.stages.push_back(st);
  }
  return out;
}

int64_t level_size(int64_t res, int level) {
  int64_t h = res;
  for (int l = 1; l <= level; ++l) h = kernels::conv_out_size(h, 3, 2, 1);
  return h;
}

int64_t retina_anchors(int64_t res) {
  int64_t cells = 0;
  for (int l = 3; l <= 7; ++l) cells += level_size(res, l) * level_size(res, l);
  return cells * kAnchorsPerCell;
}

RoiSet make_rois(int64_t R, int64_t res, uint64_t seed) {
  SplitMix rng(seed);
  RoiSet s;
  const double r = double(res);
  for (int64_t i = 0; i < R; ++i) {
    const double u_size = rng.uniform(), u_aspect = rng.uniform(), u_cx = rng.uniform(), u_cy = rng.uniform();
    const double side = 16.0 * std::pow(r / 16.0, u_size);  // log-uniform in [16, res)
    const double aspect = std::pow(2.0, 2.0 * u_aspect - 1.0);
    const double w = side * std::sqrt(aspect), h = side / std::sqrt(aspect);
    const double cx = u_cx * r, cy = u_cy * r;
    const float x1 = float(std::clamp(cx - 0.5 * w, 0.0, r)), y1 = float(std::clamp(cy - 0.5 * h, 0.0, r));
    const float x2 = float(std::clamp(cx + 0.5 * w, 0.0, r)), y2 = float(std::clamp(cy + 0.5 * h, 0.0, r));
    s.rows.insert(s.rows.end(), {float(i % kBatch), x1, y1, x2, y2});
    const double area = double(x2 - x1) * double(y2 - y1);
    int lvl = int(std::floor(4.0 + std::log2(std::sqrt(area) / 224.0 + 1e-12) + 1e-6));
    s.level.push_back(std::clamp(lvl, 2, 5));
  }
  return s;
}

BoxSet make_nms_boxes(int64_t K, int64_t res, uint64_t seed) {
  SplitMix rng(seed);
  const int64_t nc = std::max<int64_t>(1, K / 20);
  const double r = double(res);
  std::vector<double> ccx(static_cast<size_t>(nc)), ccy(ccx), csz(ccx);
  for (int64_t c = 0; c < nc; ++c) {
    ccx[size_t(c)] = rng.uniform() * r;
    ccy[size_t(c)] = rng.uniform() * r;
    csz[size_t(c)] = 16.0 + rng.uniform() * (r / 4.0);
  }
  BoxSet b;
  for (int64_t i = 0; i < K; ++i) {
    const size_t c = size_t(i % nc);
    const double u_cx = rng.uniform(), u_cy = rng.uniform(), u_w = rng.uniform(), u_h = rng.uniform();
    const double u_score = rng.uniform(), u_class = rng.uniform();
    const double cx = ccx[c] + (u_cx - 0.5) * 0.3 * csz[c], cy = ccy[c] + (u_cy - 0.5) * 0.3 * csz[c];
    const double w = csz[c] * (0.7 + 0.6 * u_w), h = csz[c] * (0.7 + 0.6 * u_h);
    b.boxes.insert(b.boxes.end(), {float(cx - 0.5 * w), float(cy - 0.5 * h), float(cx + 0.5 * w), float(cy + 0.5 * h)});
    b.scores.push_back(float(u_score));
    b.classes.push_back(std::min<int64_t>(kClasses - 1, int64_t(u_class * double(kClasses))));
  }
  return b;
}

}  // namespace detnas::bench
