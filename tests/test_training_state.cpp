// Optimizer and checkpoints: unsampled supernet choices get no update at all;
// checkpoints round-trip exactly and report every mismatch.
#include <doctest/doctest.h>
#include <unistd.h>

#include "nn/backbone.h"
#include "nn/checkpoint.h"
#include "nn/optimizer.h"
#include "runtime/fs.h"
#include "runtime/ops_elementwise.h"
#include "runtime/ops_loss.h"
#include "runtime/runtime.h"
#include "tests/test_util.h"

using namespace detnas;
using namespace detnas::nn;
using rt::Tensor;

namespace {
std::map<std::string, std::vector<float>> snapshot(const Module& m) {
  std::map<std::string, std::vector<float>> s;
  for (auto& p : m.parameters()) s[p.name] = p.tensor.to_vector();
  for (auto& b : m.buffers()) s[b.name] = b.tensor.to_vector();
  return s;
}
bool on_path(const Backbone& net, const Arch& path, const std::string& name) {
  if (name.rfind("stage", 0) != 0) return true;
  for (const BlockSpec& b : net.block_specs()) {
    std::string pre = "stage" + std::to_string(b.stage + 1) + "." + std::to_string(b.index_in_stage) + ".";
    if (name.rfind(pre, 0) == 0)
      return name.rfind(pre + "choice" + std::to_string(path[size_t(b.index)]) + ".", 0) == 0;
  }
  return true;
}
void train_step(Backbone& net, Sgd& opt, const Arch& path, uint64_t seed) {
  Tensor x = Tensor::from_vector({2, 3, 32, 32}, test::randn_f(2 * 3 * 32 * 32, seed, 50.0));
  Rng rng(seed);
  Tensor logits = net.forward_logits(x, path, rng);
  rt::backward(rt::ops::softmax_cross_entropy(logits, {1, 4}, 0.1f, Reduction::Mean));
  opt.step(0.1);
}
}  // namespace

TEST_CASE("sgd: parameters of unsampled choices get no update, no momentum, no weight decay") {
  BackboneOptions o;
  o.space = "tiny";
  o.head = Head::Classification;
  o.num_classes = 5;
  Backbone net(o);
  Sgd opt(net.parameters(), SgdConfig::spos(0.1));  // large wd: any decay would show
  Arch a = uniform_arch(net.space(), 0), b = uniform_arch(net.space(), 3);
  auto s0 = snapshot(net);
  train_step(net, opt, a, 1);
  auto s1 = snapshot(net);
  int changed = 0;
  for (auto& p : net.parameters()) {
    bool same = s0[p.name] == s1[p.name];
    if (!on_path(net, a, p.name)) CHECK_MESSAGE(same, p.name);
    changed += !same;
  }
  CHECK(changed > 0);
  int64_t with_momentum = int64_t(opt.state().size());
  // A step on path b must leave every choice-0 parameter exactly as it was
  // (momentum from the previous step is not applied to them).
  train_step(net, opt, b, 2);
  auto s2 = snapshot(net);
  for (auto& p : net.parameters())
    if (on_path(net, a, p.name) && !on_path(net, b, p.name)) CHECK_MESSAGE(s1[p.name] == s2[p.name], p.name);
  CHECK(int64_t(opt.state().size()) > with_momentum);
}

TEST_CASE("checkpoint: round trip restores parameters, buffers, optimizer state and metadata exactly") {
  std::string dir = "/tmp/detnas_ck_" + std::to_string(::getpid());
  std::string base = dir + "_a";
  BackboneOptions o;
  o.space = "tiny";
  o.head = Head::Classification;
  o.num_classes = 5;
  Backbone net(o);
  Sgd opt(net.parameters(), SgdConfig::spos());
  train_step(net, opt, uniform_arch(net.space(), 1), 3);
  CheckpointMeta m;
  m.kind = "pretrain";
  m.step = 1;
  m.space = "tiny";
  m.arch = "supernet";
  m.rng["data"] = {123456789012345ULL, 42};
  m.config["lr"] = "0.5";
  save_checkpoint(base, net, &opt, m);
  BackboneOptions o2 = o;
  o2.seed = 77;
  Backbone net2(o2);
  Sgd opt2(net2.parameters(), SgdConfig::spos());
  CheckpointMeta r = load_checkpoint(base + ".safetensors", net2, &opt2, ExtraTensors::Error);
  CHECK(snapshot(net2) == snapshot(net));
  REQUIRE(opt2.state().size() == opt.state().size());
  for (size_t i = 0; i < opt.state().size(); ++i)
    CHECK(opt2.state()[i].second.to_vector() == opt.state()[i].second.to_vector());
  CHECK(r.step == 1);
  CHECK(r.rng.at("data").first == 123456789012345ULL);
  CHECK(r.config.at("lr") == "0.5");
  // The same optimizer step from both gives identical weights.
  train_step(net, opt, uniform_arch(net.space(), 2), 4);
  train_step(net2, opt2, uniform_arch(net.space(), 2), 4);
  CHECK(snapshot(net2) == snapshot(net));

  // A supernet checkpoint loads into a standalone network of one path.
  BackboneOptions so = o;
  so.kind = NetKind::Standalone;
  so.arch = uniform_arch(net.space(), 1);
  Backbone single(so);
  load_checkpoint(base, single, nullptr, ExtraTensors::Ignore);
  CHECK_THROWS_WITH_AS(load_checkpoint(base, single, nullptr, ExtraTensors::Error), doctest::Contains("unexpected"),
                       Error);

  // A model of another space: every mismatch is reported, with names and shapes.
  BackboneOptions bo;
  bo.space = "300M";
  Backbone other(bo);
  try {
    load_checkpoint(base, other, nullptr, ExtraTensors::Ignore);
    FAIL("expected an error");
  } catch (const Error& e) {
    std::string w = e.what();
    CHECK(w.find("mismatches with the model") != std::string::npos);
    CHECK(w.find("in the file,") != std::string::npos);  // a shape mismatch, both shapes named
    CHECK(w.find("more") != std::string::npos);          // long lists are summarised
  }
  // Damaged files.
  std::string bytes = read_file(base + ".safetensors");
  write_file_atomic(base + ".safetensors", bytes.substr(0, bytes.size() / 2));
  CHECK_THROWS_WITH_AS(load_checkpoint(base, net2, nullptr, ExtraTensors::Error), doctest::Contains("truncated"),
                       Error);
  write_file_atomic(base + ".json", "{\"format\": 3");
  CHECK_THROWS_WITH_AS(read_checkpoint_meta(base), doctest::Contains("not valid JSON"), Error);
  CHECK_THROWS_WITH_AS(read_checkpoint_meta(dir + "_missing"), doctest::Contains("_missing.json"), Error);
  ::unlink((base + ".safetensors").c_str());
  ::unlink((base + ".json").c_str());
}
