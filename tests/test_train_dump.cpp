// `detnas train --dump-steps K --dump-dir DIR` (cli/train_dump.h, issue 19 step
// parity): the files exist with the shapes a twin needs (init weights under our
// names, each step's padded images and boxes, path, LR, losses, gradient norm),
// and dumping does not change training (the checkpoints of a run with and
// without it hold bit-identical tensors).
#include <doctest/doctest.h>
#include <unistd.h>

#include <cstring>
#include <set>

#include "nn/safetensors.h"
#include "runtime/fs.h"
#include "tests/test_util.h"

using namespace detnas;

namespace {

bool succeeded(const test::RunResult& r) { return r.exited() && r.exit_code() == 0; }

bool same_tensors(const std::string& a, const std::string& b, std::string* why) {
  nn::SafetensorsFile fa = nn::load_safetensors(a), fb = nn::load_safetensors(b);
  if (fa.tensors.size() != fb.tensors.size()) return *why = "tensor counts differ", false;
  for (size_t i = 0; i < fa.tensors.size(); ++i) {
    const auto& [na, ta] = fa.tensors[i];
    const auto& [nb, tb] = fb.tensors[i];
    if (na != nb || ta.shape() != tb.shape()) return *why = na + " vs " + nb, false;
    if (std::memcmp(ta.data(), tb.data(), size_t(ta.numel()) * sizeof(float)) != 0) return *why = na, false;
  }
  return true;
}

}  // namespace

TEST_CASE("train --dump-steps: init weights and per-step batches; training unchanged") {
  const std::string bin = test::detnas_binary();
  REQUIRE_MESSAGE(access(bin.c_str(), X_OK) == 0, "build " << bin << " first (make test builds it)");
  const std::string dir = "/tmp/detnas_train_dump_" + std::to_string(::getpid());
  make_dirs(dir);
  test::RunResult r = test::run_argv(
      {bin, "make-data", "--out", dir + "/d", "--train", "6", "--val", "2", "--size", "64", "--cls-train", "2"});
  REQUIRE_MESSAGE(succeeded(r), r.out);
  const std::vector<std::string> args{bin,
                                      "train",
                                      "--data",
                                      dir + "/d/det",
                                      "--iters",
                                      "2",
                                      "--batch",
                                      "2",
                                      "--short-side",
                                      "64",
                                      "--max-size",
                                      "96",
                                      "--fpn-channels",
                                      "16",
                                      "--tower-depth",
                                      "1",
                                      "--eval-every",
                                      "0",
                                      "--warmup",
                                      "1",
                                      "--workers",
                                      "1",
                                      "--threads",
                                      "1",
                                      "--pretrained",
                                      "none"};
  auto plus = [&](std::vector<std::string> extra) {
    std::vector<std::string> a = args;
    a.insert(a.end(), extra.begin(), extra.end());
    return a;
  };
  r = test::run_argv(plus({"--out", dir + "/plain"}), 300);
  REQUIRE_MESSAGE(succeeded(r), r.out);
  const std::string dump = dir + "/dump";
  r = test::run_argv(plus({"--out", dir + "/dumped", "--dump-steps", "2", "--dump-dir", dump}), 300);
  REQUIRE_MESSAGE(succeeded(r), r.out);

  std::string why;
  CHECK_MESSAGE(same_tensors(dir + "/plain/last.safetensors", dir + "/dumped/last.safetensors", &why), why);

  // init.safetensors: every parameter and buffer of the checkpoint, no optimizer state.
  nn::SafetensorsFile init = nn::load_safetensors(dump + "/init.safetensors");
  nn::SafetensorsFile last = nn::load_safetensors(dir + "/dumped/last.safetensors");
  std::set<std::string> model_names;
  for (const auto& [n, t] : last.tensors)
    if (n.rfind("optim.", 0) != 0) model_names.insert(n);
  std::set<std::string> init_names;
  for (const auto& [n, t] : init.tensors) {
    init_names.insert(n);
    REQUIRE(last.find(n) != nullptr);
    CHECK(last.find(n)->shape() == t.shape());
  }
  CHECK(init_names == model_names);
  CHECK(file_exists(dump + "/config.json"));
  CHECK(read_file(dump + "/config.json").find("\"clip_grad\"") != std::string::npos);

  for (const char* step : {"step_0001", "step_0002"}) {
    CAPTURE(step);
    nn::SafetensorsFile s = nn::load_safetensors(dump + "/" + step + ".safetensors");
    const rt::Tensor* images = s.find("images");
    REQUIRE(images != nullptr);
    REQUIRE(images->dim() == 4);
    CHECK(images->size(0) == 2);
    CHECK(images->size(1) == 3);
    CHECK(images->size(2) % 32 == 0);
    CHECK(images->size(3) % 32 == 0);
    const std::string js = read_file(dump + "/" + step + ".json");
    for (const char* key :
         {"\"lr\"", "\"path\"", "\"labels\"", "\"num_boxes\"", "\"cls\"", "\"box\"", "\"total\"", "\"grad_norm\""})
      CHECK_MESSAGE(js.find(key) != std::string::npos, key);
    for (const auto& [n, t] : s.tensors)
      if (n != "images") {
        CHECK(n.rfind("boxes.", 0) == 0);
        CHECK(t.dim() == 2);
        CHECK(t.size(1) == 4);
      }
  }
  CHECK(!file_exists(dump + "/step_0003.json"));
  remove_all(dir);
}
