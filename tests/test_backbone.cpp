// Supernet and standalone backbones: parameter naming, structure checked against
// the analytic cost model (itself checked against the published table), path
// equivalence (outputs and gradients), and untouched unsampled choices.
#include <doctest/doctest.h>

#include <set>

#include "nn/backbone.h"
#include "runtime/ops_elementwise.h"
#include "runtime/runtime.h"
#include "search/cost_model.h"
#include "tests/test_util.h"

using namespace detnas;
using namespace detnas::nn;
using rt::Tensor;

static const char* kCocoFpn300M = "2,1,2,0,2,1,1,2,3,3,1,3,0,0,3,1,3,1,3,2";

TEST_CASE("backbone: standalone parameter counts equal the cost model (published table)") {
  for (const char* arch : {kCocoFpn300M, "2,3,1,1,3,2,1,3,3,1,1,1,3,3,2,0,3,3,3,3"}) {
    BackboneOptions o;
    o.space = "300M";
    o.kind = NetKind::Standalone;
    o.arch = parse_arch(arch);
    o.split = ChannelSplit::EvenOdd;
    Backbone b(o);
    auto cost = search::arch_cost(space_by_name("300M"), o.arch);
    CHECK(b.num_parameters() == cost.backbone.params);
    o.head = Head::Classification;
    Backbone bh(o);
    CHECK(bh.num_parameters() == cost.with_head.params);
  }
}

TEST_CASE("backbone: parameter names follow stageS.B.choiceC.branch.layer") {
  BackboneOptions o;
  o.space = "300M";
  Backbone sn(o);
  std::set<std::string> names;
  for (auto& p : sn.parameters()) names.insert(p.name);
  CHECK(names.count("stem.conv.weight"));
  CHECK(names.count("stem.conv.bias"));
  CHECK(names.count("stage2.3.choice1.main.dw.weight"));
  CHECK(names.count("stage1.0.choice3.proj.dw.weight"));
  CHECK(names.count("stage4.3.choice3.main.pw3.weight"));
  CHECK_FALSE(names.count("stage2.4.choice0.main.dw.weight"));
  std::set<std::string> bufs;
  for (auto& b : sn.buffers()) bufs.insert(b.name);
  CHECK(bufs.count("stage3.7.choice2.main.bn2.running_var"));
}

TEST_CASE("backbone: supernet with a fixed path equals the standalone network (outputs and gradients)") {
  for (ChannelSplit split : {ChannelSplit::ShuffleHalve, ChannelSplit::EvenOdd}) {
    BackboneOptions so;
    so.space = "tiny";
    so.split = split;
    so.seed = 11;
    Backbone sn(so);
    Arch path = {0, 3, 1, 2, 3, 0, 1, 2, 3, 1};
    BackboneOptions ao = so;
    ao.kind = NetKind::Standalone;
    ao.arch = path;
    ao.seed = 99;  // different init: every weight must come from load_from
    Backbone net(ao);
    net.load_from(sn);
    Tensor x = Tensor::from_vector({2, 3, 64, 48}, test::randn_f(2 * 3 * 64 * 48, 5, 50.0));
    auto fs = sn.forward_features(x, path);
    auto fn = net.forward_features(x, {});
    REQUIRE(fs.size() == 4);
    std::vector<Tensor> gs;
    Tensor ls, ln;
    for (size_t i = 0; i < 4; ++i) {
      CHECK(fs[i].shape() == fn[i].shape());
      CHECK(fs[i].to_vector() == fn[i].to_vector());
      Tensor g = Tensor::from_vector(fs[i].shape(), test::randn_f(fs[i].numel(), 20 + i));
      Tensor a = rt::ops::sum(rt::ops::mul(fs[i], g)), b = rt::ops::sum(rt::ops::mul(fn[i], g));
      ls = ls.defined() ? rt::ops::add(ls, a) : a;
      ln = ln.defined() ? rt::ops::add(ln, b) : b;
    }
    // One backward for both graphs: the tape holds every op since the last
    // backward (see runtime/autograd.h).
    rt::backward(rt::ops::add(ls, ln));
    std::map<std::string, Tensor> sgrads;
    for (auto& p : sn.parameters()) sgrads[p.name] = p.tensor.grad();
    int compared = 0;
    for (auto& p : net.parameters()) {
      REQUIRE(sgrads.count(p.name));
      REQUIRE_MESSAGE(p.tensor.grad().defined(), p.name);
      CHECK_MESSAGE(p.tensor.grad().to_vector() == sgrads[p.name].to_vector(), p.name);
      compared++;
    }
    CHECK(compared == int(net.parameters().size()));
    // Unsampled choices received no gradient at all.
    for (auto& p : sn.parameters()) {
      bool on_path = p.name.rfind("stem.", 0) == 0;
      for (const BlockSpec& b : sn.block_specs()) {
        std::string pre = "stage" + std::to_string(b.stage + 1) + "." + std::to_string(b.index_in_stage) + ".choice" +
                          std::to_string(path[size_t(b.index)]) + ".";
        if (p.name.rfind(pre, 0) == 0) on_path = true;
      }
      CHECK_MESSAGE(p.tensor.grad().defined() == on_path, p.name);
    }
  }
}

TEST_CASE("backbone: classification logits, feature strides, bad input") {
  BackboneOptions o;
  o.space = "tiny";
  o.head = Head::Classification;
  o.num_classes = 7;
  Backbone net(o);
  Rng rng(1);
  Arch path = uniform_arch(net.space(), 3);
  Tensor x = Tensor::from_vector({2, 3, 64, 64}, test::randn_f(2 * 3 * 64 * 64, 3, 50.0));
  Tensor logits = net.forward_logits(x, path, rng);
  CHECK(logits.shape() == rt::Shape{2, 7});
  auto f = net.forward_features(x, path);
  CHECK(f[0].shape() == rt::Shape{2, 32, 16, 16});
  CHECK(f[3].shape() == rt::Shape{2, 256, 2, 2});
  CHECK_THROWS_WITH_AS(net.forward_features(Tensor::zeros({1, 4, 32, 32}), path),
                       doctest::Contains("expected input (N, 3, H, W)"), Error);
  CHECK_THROWS_AS(net.forward_features(x, {0, 1}), Error);
  rt::clear_tape();
}
