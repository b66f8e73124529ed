// Data parallelism on the device: `mpirun -np 2 detnas train --device cuda`
// (gradients through NCCL, synchronized BN, the evaluation split over the ranks)
// against one process on the device with the whole batch. Part of the `cuda`
// suite: skipped visibly without a GPU; in the emulated-GPU build the NCCL calls
// go to the NCCL stand-in (tests/emu/gpu/nccl.cpp) over MPI, so the NCCL code
// path of runtime/dist_nccl.cpp runs in CI.
// Bound: as tests/test_dist_train.cpp (one step; reduction order only):
// |a - b| <= 1e-4 * (1 + |b|) for every checkpoint value and the logged losses.
#include <doctest/doctest.h>
#include <unistd.h>

#include <cmath>

#include "nn/safetensors.h"
#include "runtime/fs.h"
#include "tests/cuda_test_util.h"

using namespace detnas;

namespace {

bool succeeded(const test::RunResult& r) { return r.exited() && r.exit_code() == 0; }

bool within(double a, double b) { return std::fabs(a - b) <= 1e-4 * (1 + std::fabs(b)); }

double first_value(const std::string& log, const std::string& key) {
  const std::string text = read_file(log), k = "\"" + key + "\":";
  const size_t at = text.find(k);
  REQUIRE_MESSAGE(at != std::string::npos, log << " has no " << key);
  return std::stod(text.substr(at + k.size()));
}

}  // namespace

TEST_CASE("cuda: 2 ranks x 1 image on the device (NCCL) train like 1 process x 2 images") {
  if (!test::gpu_or_skip("2-rank training with --device cuda")) return;
  const std::string bin = test::detnas_binary();
  REQUIRE_MESSAGE(access(bin.c_str(), X_OK) == 0, "build " << bin << " first");
  const std::string dir = "/tmp/detnas_cuda_dist_" + std::to_string(::getpid());
  make_dirs(dir);
  test::RunResult r = test::run_argv(
      {bin, "make-data", "--kind", "det", "--out", dir + "/d", "--train", "6", "--val", "2", "--size", "64"});
  REQUIRE_MESSAGE(succeeded(r), r.out);
  const std::vector<std::string> train{bin,
                                       "train",
                                       "--detector",
                                       "retinanet",
                                       "--device",
                                       "cuda",
                                       "--data",
                                       dir + "/d/det",
                                       "--iters",
                                       "1",
                                       "--batch",
                                       "2",
                                       "--short-side",
                                       "64",
                                       "--max-size",
                                       "64",
                                       "--fpn-channels",
                                       "16",
                                       "--tower-depth",
                                       "1",
                                       "--eval-every",
                                       "0",
                                       "--bn-images",
                                       "2",
                                       "--warmup",
                                       "1",
                                       "--workers",
                                       "1",
                                       "--threads",
                                       "1",
                                       "--seed",
                                       "3"};
  auto with_out = [&](std::vector<std::string> a, const std::string& out) {
    a.push_back("--out");
    a.push_back(dir + "/" + out);
    return a;
  };
  r = test::run_argv(with_out(train, "one"), 600);
  REQUIRE_MESSAGE(succeeded(r), r.out);
  std::vector<std::string> two = test::mpirun_argv(2);
  for (const std::string& a : with_out(train, "two")) two.push_back(a);
  r = test::run_argv(two, 600);
  REQUIRE_MESSAGE(succeeded(r), r.describe() << "\n" << r.out);
  CHECK_MESSAGE(r.out.find("NCCL communicator over 2 ranks") != std::string::npos, r.out);
  CHECK(r.out.find("2 ranks x 1 images, synchronized BN on") != std::string::npos);

  for (const char* key : {"loss", "grad_norm", "ap"}) {
    CAPTURE(key);
    const double a = first_value(dir + "/one/log.jsonl", key), b = first_value(dir + "/two/log.jsonl", key);
    CHECK_MESSAGE(within(b, a), b << " vs " << a);
  }
  nn::SafetensorsFile fa = nn::load_safetensors(dir + "/one/last.safetensors");
  nn::SafetensorsFile fb = nn::load_safetensors(dir + "/two/last.safetensors");
  REQUIRE(fa.tensors.size() == fb.tensors.size());
  int64_t bad = 0;
  std::string first_bad;
  for (size_t i = 0; i < fa.tensors.size(); ++i) {
    REQUIRE(fa.tensors[i].first == fb.tensors[i].first);
    const rt::Tensor &ta = fa.tensors[i].second, &tb = fb.tensors[i].second;
    REQUIRE(ta.numel() == tb.numel());
    for (int64_t k = 0; k < ta.numel(); ++k)
      if (!within(tb.data()[k], ta.data()[k]) && bad++ == 0)
        first_bad = fa.tensors[i].first + "[" + std::to_string(k) + "]: " + std::to_string(tb.data()[k]) + " vs " +
                    std::to_string(ta.data()[k]);
  }
  CHECK_MESSAGE(bad == 0, bad << " checkpoint values outside the bound, first " << first_bad);
  remove_all(dir);
}
