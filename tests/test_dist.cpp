// Scale-out (runtime/dist.h) through the CLI under `mpirun -np 2` on this
// machine: a 2-rank search equals the 1-rank search (candidates, scores, best),
// a search stopped on 2 ranks resumes on 1, and a rank that fails (an error, or
// a killed process) ends the whole job with a non-zero exit naming the rank
// within 30 s, after which --resume completes the same search.
#include <doctest/doctest.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>

#include "runtime/fs.h"
#include "tests/test_util.h"

using namespace detnas;

namespace {

std::vector<std::string> cat(std::vector<std::string> a, const std::vector<std::string>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

bool succeeded(const test::RunResult& r) { return r.exited() && r.exit_code() == 0; }

bool have_mpirun() {
  int st = 0;
  test::run_capture("command -v mpirun >/dev/null 2>&1", &st);
  return st == 0;
}

}  // namespace

TEST_CASE("dist: search on 2 ranks equals 1 rank; stop on 2 ranks, resume on 1; a failing rank ends the job") {
  REQUIRE_MESSAGE(have_mpirun(), "mpirun not found: make deps installs openmpi-bin");
  const std::string bin = test::detnas_binary();
  REQUIRE_MESSAGE(access(bin.c_str(), X_OK) == 0, "build " << bin << " first (make test builds it)");
  const std::string dir = "/tmp/detnas_dist_" + std::to_string(::getpid());
  make_dirs(dir);
  test::RunResult r = test::run_argv(
      {bin, "make-data", "--kind", "det", "--out", dir + "/d", "--train", "8", "--val", "3", "--size", "64"});
  REQUIRE_MESSAGE(succeeded(r), r.out);
  const std::string data = dir + "/d/det";
  // Trained enough for the candidates to get different, non-zero APs (so equal
  // records say something).
  r = test::run_argv({bin,
                      "train",
                      "--detector",
                      "retinanet",
                      "--data",
                      data,
                      "--iters",
                      "40",
                      "--batch",
                      "4",
                      "--lr",
                      "0.05",
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
                      "4",
                      "--warmup",
                      "5",
                      "--workers",
                      "1",
                      "--seed",
                      "3",
                      "--out",
                      dir + "/t"});
  REQUIRE_MESSAGE(succeeded(r), r.out);

  auto search = [&](const std::string& out) {
    return std::vector<std::string>{bin,
                                    "search",
                                    "--ckpt",
                                    dir + "/t/last",
                                    "--data",
                                    data,
                                    "--val-split",
                                    "3",
                                    "--bn-images",
                                    "4",
                                    "--population",
                                    "3",
                                    "--parents",
                                    "2",
                                    "--mutants",
                                    "1",
                                    "--crossovers",
                                    "1",
                                    "--generations",
                                    "2",
                                    "--flops-budget",
                                    "45",
                                    "--seed",
                                    "5",
                                    "--threads",
                                    "1",
                                    "--out",
                                    dir + "/" + out};
  };
  auto records = [&](const std::string& out) {
    return test::without_timings(read_file(dir + "/" + out + "/search.jsonl"));
  };

  // The reference: one process, no mpirun.
  r = test::run_argv(search("s1"));
  REQUIRE_MESSAGE(succeeded(r), r.out);
  const std::string ref = records("s1");
  CHECK(std::count(ref.begin(), ref.end(), '\n') == 6);
  CHECK_MESSAGE(ref.find("\"ap\":0,") == std::string::npos, ref);  // every candidate scored above 0

  // Two ranks: the same candidates, scores and best; rank 1 scored some of them.
  r = test::run_argv(cat(test::mpirun_argv(2), search("s2")), 300);
  REQUIRE_MESSAGE(succeeded(r), r.describe() << "\n" << r.out);
  CHECK(records("s2") == ref);
  CHECK(read_file(dir + "/s2/top10.json") == read_file(dir + "/s1/top10.json"));
  CHECK(read_file(dir + "/s2/search.jsonl").find("\"rank\":1") != std::string::npos);
  CHECK(r.out.find("candidates spread over 2 ranks") != std::string::npos);

  // Stopped on 2 ranks after the first round, resumed on 1: the same search.
  r = test::run_argv(cat(cat(test::mpirun_argv(2), search("s3")), {"--stop-after", "2"}), 300);
  REQUIRE_MESSAGE(succeeded(r), r.describe() << "\n" << r.out);
  CHECK(records("s3").size() < ref.size());
  r = test::run_argv(cat(search("s3"), {"--resume"}));
  REQUIRE_MESSAGE(succeeded(r), r.out);
  CHECK(records("s3") == ref);

  // A rank that fails: an error on rank 1 (MPMD: DETNAS_FAULT only in the second
  // context), then a killed rank 1. Both end the job quickly, non-zero, naming rank 1;
  // --resume on 2 ranks then completes the same search.
  for (const char* fault : {"throw@search.score:2", "kill@search.score:2"}) {
    CAPTURE(fault);
    std::vector<std::string> argv = test::mpirun_argv(1);
    argv = cat(argv, search("s4"));
    argv.push_back(":");
    argv = cat(argv, {"-np", "1", "-x", std::string("DETNAS_FAULT=") + fault});
    argv = cat(argv, search("s4"));
    const auto t0 = std::chrono::steady_clock::now();
    r = test::run_argv(argv, 120);
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    CHECK_MESSAGE(!r.timed_out, r.out);
    CHECK_MESSAGE(!succeeded(r), r.out);
    CHECK_MESSAGE(secs < 30, secs << " s\n" << r.out);
    CHECK_MESSAGE(r.out.find("rank 1") != std::string::npos, r.out);
    if (std::string(fault).rfind("throw", 0) == 0)
      CHECK_MESSAGE(r.out.find("injected fault") != std::string::npos, r.out);
    r = test::run_argv(cat(cat(test::mpirun_argv(2), search("s4")), {"--resume"}), 300);
    REQUIRE_MESSAGE(succeeded(r), r.describe() << "\n" << r.out);
    CHECK(records("s4") == ref);
    remove_all(dir + "/s4");
  }
  remove_all(dir);
}
