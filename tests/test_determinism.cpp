// End-to-end determinism across thread counts: a short supernet pretrain, a
// RetinaNet and an FPN Faster R-CNN supernet train, and a short search, each run
// with --threads 1 and --threads 2, give byte-identical checkpoints and logs and
// identical candidate scores. The sizes are chosen so the threaded code paths
// really run: at 96 px the stem's im2col GEMM has 2304 columns (several GEMM
// panels), and the OpenMP loops over channels/planes pass their thresholds.
// What this does NOT promise: the same bits on another CPU model (AVX2 vs
// AVX-512 kernels of OpenBLAS and of our -march=native loops round differently);
// the README says so.
#include <doctest/doctest.h>
#include <unistd.h>

#include <algorithm>

#include "runtime/fs.h"
#include "tests/test_util.h"

using namespace detnas;

namespace {

void same_file(const std::string& a, const std::string& b) {
  CAPTURE(a);
  CAPTURE(b);
  REQUIRE(file_exists(a));
  REQUIRE(file_exists(b));
  const std::string x = read_file(a), y = read_file(b);
  CHECK(x.size() == y.size());
  CHECK(x == y);
}

}  // namespace

TEST_CASE("determinism: pretrain, train (RetinaNet, FPN) and search give the same bytes on 1 and 2 threads") {
  const std::string bin = test::detnas_binary();
  REQUIRE_MESSAGE(access(bin.c_str(), X_OK) == 0, "build " << bin << " first (make test builds it)");
  const std::string dir = "/tmp/detnas_determinism_" + std::to_string(::getpid());
  make_dirs(dir);
  int st = 0;
  std::string out = test::run_capture(
      bin + " make-data --out " + dir + "/d --train 6 --val 3 --size 96 --cls-train 2 --cls-val 1 --cls-size 32 2>&1",
      &st);
  REQUIRE_MESSAGE(st == 0, out);

  for (const char* t : {"1", "2"}) {
    out = test::run_capture(bin + " pretrain --data " + dir + "/d/cls --iters 3 --batch 4 --input 32 --eval-every 3 " +
                                "--eval-paths 1 --recal-batches 1 --workers 2 --seed 5 --threads " + t + " --out " +
                                dir + "/p" + t + " 2>&1",
                            &st);
    REQUIRE_MESSAGE(st == 0, out);
  }
  same_file(dir + "/p1/last.safetensors", dir + "/p2/last.safetensors");
  same_file(dir + "/p1/last.json", dir + "/p2/last.json");
  same_file(dir + "/p1/log.jsonl", dir + "/p2/log.jsonl");

  for (const char* det : {"retinanet", "fpn"}) {
    for (const char* t : {"1", "2"}) {
      out = test::run_capture(bin + " train --detector " + det + " --data " + dir + "/d/det --pretrained " + dir +
                                  "/p1/last --iters 4 --batch 2 --short-side 96 --max-size 96 --fpn-channels 32 "
                                  "--tower-depth 1 --eval-every 2 --bn-images 2 --warmup 2 --workers 2 --seed 3 "
                                  "--threads " +
                                  t + " --out " + dir + "/" + det + t + " 2>&1",
                              &st);
      REQUIRE_MESSAGE(st == 0, out);
    }
    const std::string a = dir + "/" + det + "1/", b = dir + "/" + det + "2/";
    same_file(a + "last.safetensors", b + "last.safetensors");
    same_file(a + "last.json", b + "last.json");
    same_file(a + "log.jsonl", b + "log.jsonl");  // every loss part, gradient norm and AP
  }

  for (const char* t : {"1", "2"}) {
    out = test::run_capture(bin + " search --ckpt " + dir + "/retinanet1/last --data " + dir + "/d/det " +
                                "--val-split 2 --bn-images 2 --population 3 --parents 2 --mutants 1 --crossovers 1 "
                                "--generations 2 --flops-budget 0 --seed 5 --threads " +
                                t + " --out " + dir + "/s" + t + " 2>/dev/null",
                            &st);
    REQUIRE_MESSAGE(st == 0, out);
  }
  const std::string r1 = test::without_timings(read_file(dir + "/s1/search.jsonl"));
  CHECK(std::count(r1.begin(), r1.end(), '\n') == 6);
  // Same candidates, same AP/AP50/AP75 to the last digit.
  CHECK(r1 == test::without_timings(read_file(dir + "/s2/search.jsonl")));
  remove_all(dir);
}
