// The commands on the device (`--device cuda`), end to end through the binary
// beside this test binary: pretrain and RetinaNet / FPN Faster R-CNN training
// steps on CUDA end with checkpoints that match the same steps on the CPU, and
// eval / detect / search of a checkpoint run on CUDA. Part of the `cuda` suite:
// skipped visibly without a GPU; in the emulated-GPU build (make test-emugpu)
// it runs the whole CUDA host path with the kernels in the SIMT emulator.
#include <doctest/doctest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <map>

#include "nn/safetensors.h"
#include "runtime/fs.h"
#include "tests/cuda_test_util.h"

using namespace detnas;

namespace {

void same_checkpoint(const std::string& gpu, const std::string& cpu, double atol, double rtol);

// Field `key` of the first line of a run's log.jsonl (iteration 1).
double first_log_value(const std::string& log, const std::string& key) {
  const std::string text = read_file(log), k = "\"" + key + "\":";
  const size_t at = text.find(k);
  const bool found = at != std::string::npos && at < text.find('\n');
  REQUIRE_MESSAGE(found, log << " has no " << key << " on its first line");
  return std::stod(text.substr(at + k.size()));
}

// One SGD step from the same weights on the same batch, on the CPU and on the device.
// - The loss of that step (a forward before any update) may differ only by float32
//   summation order: 1e-5 relative.
// - Every tensor of the two checkpoints (weights, momentum = the step's clipped
//   gradient, BN statistics): |gpu - cpu| <= 1e-6 + 3e-2 * max|cpu tensor|. Looser,
//   because a gradient is discontinuous in the forward's roundings: a ReLU input
//   within rounding of 0 switches a whole row of a weight gradient (seen in FPN's
//   fc6: 2 of 1024 rows at 6e-3), and BN over the 8-16 elements per channel of
//   these tiny inputs (2x2 maps in stage 4) amplifies roundings (5e-3 seen in
//   pretrain). A wrong kernel, a missed upload or a stale buffer is an O(1) error.
// - Only one step: from the second on, such differences grow chaotically.
void same_step(const std::string& gpu_run, const std::string& cpu_run) {
  const double lg = first_log_value(gpu_run + "/log.jsonl", "loss"),
               lc = first_log_value(cpu_run + "/log.jsonl", "loss");
  CHECK_MESSAGE(std::fabs(lg - lc) <= 1e-5 * std::fabs(lc), "loss of the step: cuda " << lg << ", cpu " << lc);
  same_checkpoint(gpu_run + "/last.safetensors", cpu_run + "/last.safetensors", 1e-6, 3e-2);
}

void same_checkpoint(const std::string& gpu, const std::string& cpu, double atol, double rtol) {
  nn::SafetensorsFile g = nn::load_safetensors(gpu), c = nn::load_safetensors(cpu);
  std::map<std::string, rt::Tensor> by_name;
  for (auto& [n, t] : c.tensors) by_name[n] = t;
  REQUIRE(g.tensors.size() == c.tensors.size());
  int64_t bad = 0;
  double worst = 0;
  std::string worst_name;
  for (auto& [n, t] : g.tensors) {
    auto it = by_name.find(n);
    REQUIRE_MESSAGE(it != by_name.end(), n << " is only in " << gpu);
    REQUIRE(it->second.shape() == t.shape());
    const float *a = t.data(), *b = it->second.data();
    double scale = 0;
    for (int64_t i = 0; i < t.numel(); ++i) scale = std::max(scale, std::fabs(double(b[i])));
    const double bound = atol + rtol * scale;
    for (int64_t i = 0; i < t.numel(); ++i) {
      const double d = std::fabs(double(a[i]) - double(b[i]));
      if (!(d <= bound)) ++bad;
      if (!(d / bound <= worst)) worst = d / bound, worst_name = n;
    }
  }
  CHECK_MESSAGE(bad == 0, bad << " values differ beyond the bound; worst " << worst << "x the bound in " << worst_name);
  MESSAGE("checkpoints " << gpu << " vs " << cpu << ": worst difference " << worst << " of the bound (" << worst_name
                         << ")");
}

}  // namespace

TEST_CASE(
    "cuda: pretrain, train (RetinaNet, FPN), eval, detect and search run on the device; checkpoints match the CPU") {
  if (!test::gpu_or_skip("the commands with --device cuda")) return;
  const std::string bin = test::detnas_binary();
  REQUIRE_MESSAGE(access(bin.c_str(), X_OK) == 0, "build " << bin << " first");
  const std::string dir = "/tmp/detnas_cuda_cli_" + std::to_string(::getpid());
  make_dirs(dir);
  int st = 0;
  std::string out =
      test::run_capture(bin + " make-data --kind det --out " + dir + "/d --train 6 --val 2 --size 64 2>&1", &st);
  REQUIRE_MESSAGE(st == 0, out);
  out = test::run_capture(
      bin + " make-data --kind cls --out " + dir + "/d --cls-train 2 --cls-val 1 --cls-size 24 2>&1", &st);
  REQUIRE_MESSAGE(st == 0, out);

  SUBCASE("pretrain") {
    const std::string common = " --data " + dir +
                               "/d/cls --iters 1 --batch 4 --input 16 --eval-every 0 "
                               "--eval-paths 1 --recal-batches 1 --workers 1 --seed 2";
    for (const char* d : {"cpu", "cuda"}) {
      out = test::run_capture(bin + " pretrain --device " + d + common + " --out " + dir + "/p_" + d + " 2>&1", &st);
      REQUIRE_MESSAGE(st == 0, out);
    }
    CHECK(out.find("network on CUDA") != std::string::npos);
    same_step(dir + "/p_cuda", dir + "/p_cpu");
  }

  for (const char* detector : {"retinanet", "fpn"}) {
    SUBCASE(detector) {
      const std::string data = " --data " + dir + "/d/det";
      const std::string common = data + " --detector " + detector +
                                 " --iters 1 --batch 2 --short-side 64 --max-size 64 --fpn-channels 16 --tower-depth 1 "
                                 "--eval-every 0 --bn-images 2 --warmup 1 --workers 1 --seed 3 --pretrained none";
      for (const char* d : {"cpu", "cuda"}) {
        out = test::run_capture(
            bin + " train --device " + d + common + " --out " + dir + "/t_" + detector + "_" + d + " 2>&1", &st);
        REQUIRE_MESSAGE(st == 0, out);
      }
      const std::string t = dir + "/t_" + detector + "_cuda/last";
      same_step(dir + "/t_" + std::string(detector) + "_cuda", dir + "/t_" + std::string(detector) + "_cpu");
      // The CUDA run's checkpoint through eval (postprocessing of device outputs), detect and a short search.
      out = test::run_capture(bin + " eval --device cuda --ckpt " + t + data + " --bn-images 2 2>&1", &st);
      REQUIRE_MESSAGE(st == 0, out);
      CHECK(out.find("Average Precision  (AP) @[ IoU=0.50:0.95 | area=   all | maxDets=100 ]") != std::string::npos);
      const std::string img = dir + "/d/det/val/" + list_dir(dir + "/d/det/val")[0];
      out = test::run_capture(bin + " detect --device cuda --ckpt " + t + data + " --bn-images 2 --out " + dir +
                                  "/det_" + detector + " " + img + " 2>&1",
                              &st);
      REQUIRE_MESSAGE(st == 0, out);
      CHECK(file_exists(dir + "/det_" + std::string(detector) + "/detections.json"));
      out = test::run_capture(bin + " search --device cuda --ckpt " + t + data +
                                  " --val-split 2 --bn-images 2 --population 4 --parents 2 --mutants 1 --crossovers 1 "
                                  "--generations 1 --flops-budget 45 --seed 5 --out " +
                                  dir + "/s_" + detector + " 2>&1",
                              &st);
      REQUIRE_MESSAGE(st == 0, out);
    }
  }
  (void)test::run_capture("rm -rf " + dir, &st);
}
