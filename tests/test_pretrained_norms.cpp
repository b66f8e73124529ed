// Pre-trained backbones get a fresh network's conv-kernel norms
// (nn::rescale_conv_weights, `train --pretrained-norms init`, the default):
// the norms become the targets, each layer's bias follows its kernel, and the
// network computes the same function in training mode (every backbone conv
// feeds a BN, which removes the scale up to its eps). End to end, the weights a
// `train --pretrained` run starts from (its --dump-steps init.safetensors) have
// the fresh network's norms with `init` and the checkpoint's with `keep`, and
// the first step's losses of the two agree.
#include <doctest/doctest.h>
#include <simdjson.h>
#include <unistd.h>

#include <cmath>
#include <map>

#include "nn/backbone.h"
#include "nn/safetensors.h"
#include "runtime/autograd.h"
#include "runtime/fs.h"
#include "tests/test_util.h"

using namespace detnas;

namespace {

rt::Tensor ramp_input(int64_t n, int64_t side) {
  rt::Tensor x = rt::Tensor::empty({n, 3, side, side});
  uint64_t s = 12345;
  for (int64_t i = 0; i < x.numel(); ++i) {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    x.data()[i] = float((s >> 40) % 256);  // 0-255 like the detectors' input
  }
  return x;
}

double max_rel_diff(const rt::Tensor& a, const rt::Tensor& b) {
  double num = 0, den = 0;
  for (int64_t i = 0; i < a.numel(); ++i) {
    num = std::max(num, double(std::fabs(a.data()[i] - b.data()[i])));
    den = std::max(den, double(std::fabs(b.data()[i])));
  }
  return num / den;
}

// name -> L2 norm of every 4-d tensor named "<prefix>...weight" of a safetensors file.
std::map<std::string, double> conv_norms(const std::string& path, const std::string& prefix) {
  std::map<std::string, double> out;
  for (const auto& [name, t] : nn::load_safetensors(path).tensors) {
    if (t.dim() != 4 || name.compare(0, prefix.size(), prefix) != 0) continue;
    double ss = 0;
    for (int64_t i = 0; i < t.numel(); ++i) ss += double(t.data()[i]) * double(t.data()[i]);
    out[name.substr(prefix.size())] = std::sqrt(ss);
  }
  return out;
}

}  // namespace

TEST_CASE("rescale_conv_weights: target norms, bias follows, same training-mode function") {
  nn::BackboneOptions o;
  o.space = "tiny";
  o.seed = 5;
  nn::Backbone fresh(o);
  o.seed = 9;
  nn::Backbone net(o);
  const std::vector<double> want = nn::conv_weight_norms(fresh);
  REQUIRE(want.size() == nn::conv_weight_norms(net).size());
  auto times = [&](double lo) {  // fresh norms x (lo .. lo + 4), unlike each other
    std::vector<double> v = want;
    for (size_t i = 0; i < v.size(); ++i) v[i] *= lo + double(i % 5);
    return v;
  };
  for (nn::ParamRef p : net.parameters())  // a non-zero stem bias, to see it follow its kernel
    if (p.name == "stem.conv.bias")
      for (int64_t i = 0; i < p.tensor.numel(); ++i) p.tensor.data()[i] = 0.5f + 0.01f * float(i);
  auto stem = [&](const char* name) {
    for (const nn::ParamRef& p : net.parameters())
      if (p.name == name) return double(p.tensor.data()[3]);
    return 0.0;
  };
  const nn::Arch path = {0, 1, 2, 3, 3, 2, 1, 0, 1, 2};
  const rt::Tensor x = ramp_input(2, 64);

  // Large norms on both sides: BN's eps (1e-5) is negligible against the conv
  // outputs' batch variances, so the outputs agree to float rounding.
  nn::rescale_conv_weights(net, times(20));
  const double w20 = stem("stem.conv.weight"), b20 = stem("stem.conv.bias");
  std::vector<rt::Tensor> big = net.forward_features(x, path);
  const double f = nn::rescale_conv_weights(net, times(10));
  CHECK(f < 0.75);
  CHECK(stem("stem.conv.bias") / b20 == doctest::Approx(stem("stem.conv.weight") / w20).epsilon(1e-6));
  for (size_t i = 0; i < want.size(); ++i) CHECK(nn::conv_weight_norms(net)[i] == doctest::Approx(times(10)[i]));
  std::vector<rt::Tensor> half = net.forward_features(x, path);
  REQUIRE(half.size() == big.size());
  for (size_t k = 0; k < big.size(); ++k) CHECK(max_rel_diff(half[k], big[k]) < 1e-4);

  // Down to a fresh network's norms. There a pointwise conv's output variance is
  // of order 1/C (kernels N(0, 1/fan_in)), and eps/var ~ 1e-3 moves the outputs
  // by a few 1e-3 relative: the same function up to BN's eps, not bit for bit.
  nn::rescale_conv_weights(net, want);
  const std::vector<double> got = nn::conv_weight_norms(net);
  for (size_t i = 0; i < got.size(); ++i) CHECK(got[i] == doctest::Approx(want[i]).epsilon(1e-6));
  std::vector<rt::Tensor> at_fresh = net.forward_features(x, path);
  for (size_t k = 0; k < big.size(); ++k) CHECK(max_rel_diff(at_fresh[k], big[k]) < 2e-2);
  CHECK_THROWS_WITH_AS(nn::rescale_conv_weights(net, {1.0}), doctest::Contains("norms for"), Error);
  rt::clear_tape();
}

TEST_CASE("train --pretrained: conv kernels start at a fresh network's norms (init) or as loaded (keep)") {
  const std::string bin = test::detnas_binary();
  REQUIRE_MESSAGE(access(bin.c_str(), X_OK) == 0, "build " << bin << " first (make test builds it)");
  const std::string dir = "/tmp/detnas_pretrained_norms_" + std::to_string(::getpid());
  make_dirs(dir);
  auto ok = [](const test::RunResult& r) { return r.exited() && r.exit_code() == 0; };
  test::RunResult r = test::run_argv({bin, "make-data", "--out", dir + "/d", "--train", "4", "--val", "2", "--size",
                                      "64", "--cls-train", "4", "--cls-val", "1", "--cls-size", "32"});
  REQUIRE_MESSAGE(ok(r), r.out);
  r = test::run_argv(test::argv_words(bin,
                                      "pretrain --iters 30 --batch 8 --input 32 --lr 0.2 --eval-every 0 "
                                      "--workers 1 --threads 1",
                                      {"--data", dir + "/d/cls", "--out", dir + "/pre"}),
                     300);
  REQUIRE_MESSAGE(ok(r), r.out);
  auto train = [&](const std::string& name, std::vector<std::string> extra) {
    std::vector<std::string> a = test::argv_words(
        bin,
        "train --detector retinanet --iters 1 --batch 2 --short-side 64 --max-size 64 --fpn-channels 16 "
        "--tower-depth 1 --eval-every 0 --workers 1 --threads 1",
        {"--data", dir + "/d/det", "--out", dir + "/" + name, "--dump-steps", "1", "--dump-dir",
         dir + "/" + name + "/dump"});
    a.insert(a.end(), extra.begin(), extra.end());
    test::RunResult t = test::run_argv(a, 300);
    REQUIRE_MESSAGE(ok(t), t.out);
    return t.out;
  };
  const std::string out_init = train("init", {"--pretrained", dir + "/pre/last"});
  CHECK(out_init.find("rescaled to the fresh network's norms") != std::string::npos);
  train("keep", {"--pretrained", dir + "/pre/last", "--pretrained-norms", "keep"});
  train("none", {"--pretrained", "none"});

  const auto fresh = conv_norms(dir + "/none/dump/init.safetensors", "backbone.");
  const auto init = conv_norms(dir + "/init/dump/init.safetensors", "backbone.");
  const auto keep = conv_norms(dir + "/keep/dump/init.safetensors", "backbone.");
  const auto pre = conv_norms(dir + "/pre/last.safetensors", "");
  REQUIRE(fresh.size() > 50);
  REQUIRE(init.size() == fresh.size());
  int64_t grown = 0;
  for (const auto& [name, n] : fresh) {
    CAPTURE(name);
    CHECK(init.at(name) == doctest::Approx(n).epsilon(1e-5));
    CHECK(keep.at(name) == doctest::Approx(pre.at(name)).epsilon(1e-6));
    grown += pre.at(name) > 1.05 * n;
  }
  CHECK(grown > 0);  // the pre-training moved norms, so `init` did something

  // Same function up to BN's eps (first test case): the first step's losses of
  // `init` and `keep` agree (RetinaNet: no proposal ranking that a small change
  // could reorder).
  simdjson::dom::parser p1, p2;
  simdjson::dom::element a = p1.load(dir + "/init/dump/step_0001.json");
  simdjson::dom::element b = p2.load(dir + "/keep/dump/step_0001.json");
  CHECK(double(a["total"]) == doctest::Approx(double(b["total"])).epsilon(1e-3));
  remove_all(dir);
}
