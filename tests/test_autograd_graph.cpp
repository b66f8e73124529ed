// Autograd through a small composite graph: conv -> BN -> ReLU -> shuffle ->
// narrow split -> depthwise conv on one half -> concat -> weighted sum, checked
// against central differences of the same float32 graph.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdlib>

#include "runtime/ops_conv.h"
#include "runtime/ops_elementwise.h"
#include "runtime/ops_norm.h"
#include "runtime/ops_shape.h"
#include "runtime/runtime.h"
#include "tests/test_util.h"

using namespace detnas;
using namespace detnas::rt;

namespace {
struct Graph {
  Tensor x, w1, gamma, beta, rm, rv, wdw, g;
  std::vector<bool> relu_signs;  // sign pattern of the ReLU input of the last call
  float min_relu_margin = 0;     // min |ReLU input| of the last call
  Tensor loss() {
    Tensor y = ops::conv2d(x, w1, Tensor(), {1, 1, 1});
    y = ops::batch_norm(y, gamma, beta, rm, rv, ops::BatchNormMode::Train);
    relu_signs.assign(size_t(y.numel()), false);
    min_relu_margin = 1e30f;
    for (int64_t i = 0; i < y.numel(); ++i) {
      relu_signs[size_t(i)] = y.data()[i] > 0;
      min_relu_margin = std::min(min_relu_margin, std::fabs(y.data()[i]));
    }
    y = ops::relu(y);
    y = ops::channel_shuffle(y, 2);
    const int64_t h = y.size(1) / 2;
    Tensor a = y.narrow(1, 0, h), b = y.narrow(1, h, h);
    Tensor bb = ops::conv2d(b, wdw, Tensor(), {1, 1, h});
    Tensor z = ops::concat({a, bb});
    return ops::sum(ops::mul(z, g));
  }
};
}  // namespace

TEST_CASE("autograd: composite conv/BN/ReLU/shuffle/split/concat graph matches finite differences") {
  const int64_t N = 2, C = 3, H = 5, W = 6, Co = 6;
  Graph G;
  // BN's beta is +-2 per channel with gamma ~0.3, so every ReLU input stays
  // well away from its kink (channels with beta -2 are off, testing ReLU's zero
  // branch) and finite differences see a smooth function.
  G.x = Tensor::from_vector({N, C, H, W}, test::randn_f(N * C * H * W, 1));
  G.w1 = Tensor::from_vector({Co, C, 3, 3}, test::randn_f(Co * C * 9, 2, 0.4));
  std::vector<float> gam = test::randn_f(Co, 3, 0.05), bet(static_cast<size_t>(Co));
  for (int64_t c = 0; c < Co; ++c) {
    gam[size_t(c)] += 0.3f;
    bet[size_t(c)] = c % 3 == 1 ? -2.f : 2.f;
  }
  G.gamma = Tensor::from_vector({Co}, gam);
  G.beta = Tensor::from_vector({Co}, bet);
  G.rm = Tensor::zeros({Co});
  G.rv = Tensor::full({Co}, 1.f);
  G.wdw = Tensor::from_vector({Co / 2, 1, 3, 3}, test::randn_f(Co / 2 * 9, 5, 0.5));
  G.g = Tensor::from_vector({N, Co, H, W}, test::randn_f(N * Co * H * W, 6));
  {
    NoGradGuard ng;
    G.loss();
    REQUIRE(G.min_relu_margin > 0.2f);
  }
  std::vector<Tensor*> params = {&G.x, &G.w1, &G.gamma, &G.beta, &G.wdw};
  for (Tensor* p : params) p->requires_grad_();
  backward(G.loss());
  CHECK(tape_size() == 0);
  // Float32 central differences with h = 1e-2 (the float forward's rounding,
  // ~1e-6 absolute per evaluation here, gives ~1e-4 absolute error), hence a
  // looser bound than the double checks of the kernel tests: this test is about
  // wiring (every backward reached, grads routed to the right elements and
  // accumulated). Like Caffe's checker it knows about kinks: a coordinate whose
  // +-h perturbation flips the sign of any ReLU input is skipped (counted).
  const double h = 1e-2;
  NoGradGuard ng;
  G.loss();
  const std::vector<bool> base = G.relu_signs;
  int checked = 0, skipped = 0;
  for (Tensor* p : params) {
    std::vector<float> an = p->grad().to_vector();
    std::vector<double> num, got;
    for (size_t i = 0; i < an.size(); ++i) {
      float v0 = p->data()[i];
      p->data()[i] = v0 + float(h);
      double lp = G.loss().item();
      bool kink = G.relu_signs != base;
      p->data()[i] = v0 - float(h);
      double lm = G.loss().item();
      kink = kink || G.relu_signs != base;
      p->data()[i] = v0;
      if (kink) {
        skipped++;
        continue;
      }
      num.push_back((lp - lm) / (2 * h));
      got.push_back(an[i]);
      checked++;
    }
    double scale = test::max_abs(num);
    test::check_close("grad of " + shape_str(p->shape()), got, num, {int64_t(got.size())},
                      test::Tol{1e-2 * std::max(1.0, scale), 1e-2});
  }
  MESSAGE("composite graph: " << checked << " coordinates checked, " << skipped << " skipped at ReLU kinks");
  CHECK(skipped == 0);
}
