// Bench entries for the remaining CPU kernels at real sizes: ReLU forward /
// backward and add at a stage-1 activation, the SGD step over the parameters a
// training step updates (the largest path of a supernet plus the RetinaNet
// head and FPN), and the anchor x ground-truth IoU matrix of RetinaNet matching.
// References are plain loops. Not here: the kernels (kernels/elementwise.h,
// kernels/sgd.h, kernels/box_ops.h).
#include <cmath>
#include <limits>

#include "bench/harness.h"
#include "bench/shapes.h"
#include "kernels/box_ops.h"
#include "kernels/elementwise.h"
#include "kernels/sgd.h"
#include "nn/space.h"
#include "search/cost_model.h"

namespace detnas::bench {
namespace {

const float kNaN = std::numeric_limits<float>::quiet_NaN();
constexpr int64_t kGtBoxes = 20;  // ground-truth boxes per image for the IoU matrix

Entry entry(const std::string& name, const std::string& op, const std::string& shape,
            std::vector<std::pair<std::string, double>> params, bool in_default, std::function<Case()> make) {
  Entry e;
  e.name = name;
  e.op = op;
  e.shape = shape;
  e.params = std::move(params);
  e.in_default = in_default;
  e.make = std::move(make);
  return e;
}

enum class Elem { ReluFwd, ReluBwd, Add };

Case make_elementwise(Elem k, int64_t n) {
  struct Bufs {
    rt::Tensor a, b, y;
  };
  auto B = std::make_shared<Bufs>();
  B->a = uniform_buffer(n, 111);
  B->b = uniform_buffer(n, 112);
  B->y = rt::Tensor::full({n}, kNaN);
  Case c;
  if (k == Elem::ReluFwd) c.run = [B, n] { kernels::cpu::relu_forward<float>(n, B->a.data(), B->y.data()); };
  if (k == Elem::ReluBwd)
    c.run = [B, n] {
      kernels::cpu::relu_backward<float>(n, B->a.data(), B->b.data(), B->y.data(), GradientMode::Overwrite);
    };
  if (k == Elem::Add) c.run = [B, n] { kernels::cpu::add_forward<float>(n, B->a.data(), B->b.data(), B->y.data()); };
  c.validate = [B, k, n, run = c.run](Checker& chk) {
    run();
    const float *a = B->a.data(), *b = B->b.data();
    for (int64_t i = 0; i < n; ++i) {
      const double ref = k == Elem::ReluFwd   ? (a[i] > 0 ? a[i] : 0.0)
                         : k == Elem::ReluBwd ? (a[i] > 0 ? b[i] : 0.0)
                                              : double(a[i] + b[i]);
      chk.expect("y", {n}, i, B->y.data()[i], ref, Tol::exact());
    }
  };
  c.bytes = 4.0 * n * (k == Elem::ReluFwd ? 2 : 3);
  return c;
}

// torch.optim.SGD step, momentum 0.9, weight decay 4e-5 (DetNAS), an existing buffer.
Case make_sgd(int64_t n) {
  struct Bufs {
    rt::Tensor p, g, buf, p0, buf0;
  };
  auto B = std::make_shared<Bufs>();
  B->p0 = uniform_buffer(n, 121);
  B->g = uniform_buffer(n, 122, -0.01f, 0.01f);
  B->buf0 = uniform_buffer(n, 123, -0.01f, 0.01f);
  B->p = B->p0.clone();
  B->buf = B->buf0.clone();
  SgdParams sp;
  sp.lr = 0.02, sp.momentum = 0.9, sp.weight_decay = 4e-5, sp.buffer = MomentumBuffer::Existing;
  Case c;
  c.run = [B, n, sp] { kernels::cpu::sgd_update<float>(n, B->p.data(), B->g.data(), B->buf.data(), sp); };
  c.validate = [B, n, sp, run = c.run](Checker& chk) {
    B->p.copy_from(B->p0);
    B->buf.copy_from(B->buf0);
    run();
    for (int64_t i = 0; i < n; ++i) {
      const double p = B->p0.data()[i], d = double(B->g.data()[i]) + sp.weight_decay * p;
      const double buf = sp.momentum * double(B->buf0.data()[i]) + d;
      chk.expect("momentum_buf", {n}, i, B->buf.data()[i], buf, Tol::elementwise());
      chk.expect("param", {n}, i, B->p.data()[i], p - sp.lr * buf, Tol::elementwise());
    }
  };
  c.bytes = 4.0 * 5.0 * n;  // read p, g, buf; write p, buf
  return c;
}

// Anchors (N,4) on the RetinaNet grid of a res x res image against M boxes.
Case make_box_iou(int64_t res, int64_t M) {
  struct Bufs {
    std::vector<float> anchors, gt;
    rt::Tensor iou;
  };
  auto B = std::make_shared<Bufs>();
  for (int l = 3; l <= 7; ++l) {
    const int64_t H = level_size(res, l);
    const double stride = double(int64_t(1) << l), base = 4.0 * stride;
    for (int64_t y = 0; y < H; ++y)
      for (int64_t x = 0; x < H; ++x)
        for (double scale : {1.0, 1.2599210498948732, 1.5874010519681994})
          for (double ratio : {0.5, 1.0, 2.0}) {
            const double w = base * scale / std::sqrt(ratio), h = base * scale * std::sqrt(ratio);
            const double cx = (double(x) + 0.5) * stride, cy = (double(y) + 0.5) * stride;
            B->anchors.insert(B->anchors.end(),
                              {float(cx - w / 2), float(cy - h / 2), float(cx + w / 2), float(cy + h / 2)});
          }
  }
  const BoxSet gt = make_nms_boxes(M, res, 131);
  B->gt = gt.boxes;
  const int64_t N = int64_t(B->anchors.size() / 4);
  B->iou = rt::Tensor::full({N * M}, kNaN);
  Case c;
  c.run = [B, N, M] { kernels::cpu::box_iou_forward<float>(N, M, B->anchors.data(), B->gt.data(), B->iou.data()); };
  c.validate = [B, N, M, run = c.run](Checker& chk) {
    run();
    for (int64_t i : sample_indices(N * M, 8192, 132)) {
      const float* a = &B->anchors[size_t(4 * (i / M))];
      const float* b = &B->gt[size_t(4 * (i % M))];
      const double iw = std::fmax(0.0, std::fmin(a[2], b[2]) - std::fmax(a[0], b[0]));
      const double ih = std::fmax(0.0, std::fmin(a[3], b[3]) - std::fmax(a[1], b[1]));
      const double inter = iw * ih;
      const double uni = double(a[2] - a[0]) * (a[3] - a[1]) + double(b[2] - b[0]) * (b[3] - b[1]) - inter;
      chk.expect("iou", {N, M}, i, B->iou.data()[i], inter / uni, Tol::elementwise());
    }
  };
  c.bytes = 4.0 * (4.0 * N + 4.0 * M + double(N) * M);
  return c;
}

// Parameters of one training step: the largest path (all k7) of the space's
// backbone plus RetinaNet's FPN (laterals on C3..C5, 3x3 outputs, P6 from C5,
// P7) and head (two towers of four 3x3 convs, class and box outputs).
int64_t step_params(const std::string& space_name) {
  const nn::SearchSpace& space = nn::space_by_name(space_name);
  const int64_t backbone = search::arch_cost(space, nn::uniform_arch(space, 2)).backbone.params;
  const int64_t F = kFpnChannels, c3 = space.stage_widths[1], c4 = space.stage_widths[2], c5 = space.stage_widths[3];
  const int64_t conv3 = F * F * 9 + F;
  int64_t fpn = (c3 + c4 + c5) * F + 3 * F + 3 * conv3 + (c5 * F * 9 + F) + conv3;
  int64_t head = 8 * conv3 + (F * kAnchorsPerCell * kClasses * 9 + kAnchorsPerCell * kClasses) +
                 (F * kAnchorsPerCell * 4 * 9 + kAnchorsPerCell * 4);
  return backbone + fpn + head;
}

}  // namespace

void register_misc_entries(Registry& r) {
  for (const NetConfig& cfg : net_configs()) {
    const BackboneShapes bb = backbone_shapes(cfg.space, cfg.res);
    const StageShape& s1 = bb.stages.front();
    const int64_t n = kBatch * s1.mid * s1.H * s1.H;
    const std::string shape =
        std::to_string(kBatch) + "x" + std::to_string(s1.mid) + "x" + std::to_string(s1.H) + "x" + std::to_string(s1.H);
    const std::string sp = cfg.tag() + "/stage1";
    const std::vector<std::pair<std::string, double>> p{{"n", n}};
    r.push_back(entry(sp + "/relu/fwd", "relu.fwd", shape, p, cfg.in_default,
                      [n] { return make_elementwise(Elem::ReluFwd, n); }));
    r.push_back(entry(sp + "/relu/bwd", "relu.bwd", shape, p, cfg.in_default,
                      [n] { return make_elementwise(Elem::ReluBwd, n); }));
    r.push_back(
        entry(sp + "/add/fwd", "add.fwd", shape, p, cfg.in_default, [n] { return make_elementwise(Elem::Add, n); }));
  }
  for (const char* space : {"300M", "1.3G"}) {
    const int64_t n = step_params(space);
    r.push_back(entry(std::string("sgd/") + space + "-k7+retina", "sgd.update",
                      std::to_string(n) + " params (all-k7 path + FPN + RetinaNet head), momentum 0.9", {{"n", n}},
                      true, [n] { return make_sgd(n); }));
  }
  for (int64_t res : {320, 800}) {
    const int64_t N = retina_anchors(res);
    r.push_back(entry("retina@" + std::to_string(res) + "/box_iou/anchors_x_gt", "box_iou",
                      std::to_string(N) + " anchors x " + std::to_string(kGtBoxes) + " boxes (one image)",
                      {{"N", N}, {"M", kGtBoxes}, {"res", res}}, true, [res] { return make_box_iou(res, kGtBoxes); }));
  }
}

}  // namespace detnas::bench
