// `detnas train` (RetinaNet) end to end on a tiny generated COCO set: runs,
// evaluates, and an interrupted + resumed run logs exactly the losses of an
// uninterrupted one; a missing annotation file is named.
#include <doctest/doctest.h>
#include <unistd.h>

#include <algorithm>
#include <sstream>

#include "runtime/fs.h"
#include "tests/test_util.h"

using namespace detnas;

TEST_CASE("train: RetinaNet supernet fine-tuning resumes exactly; bad input is named") {
  const std::string bin = test::detnas_binary();
  REQUIRE_MESSAGE(access(bin.c_str(), X_OK) == 0, "build " << bin << " first (make test builds it)");
  const std::string dir = "/tmp/detnas_train_" + std::to_string(::getpid());
  make_dirs(dir);
  int st = 0;
  std::string out =
      test::run_capture(bin + " make-data --kind det --out " + dir + "/d --train 4 --val 2 --size 64 2>&1", &st);
  REQUIRE_MESSAGE(st == 0, out);
  const std::string common = " train --detector retinanet --data " + dir +
                             "/d/det --iters 4 --batch 2 --short-side 64 --max-size 64 "
                             "--fpn-channels 16 --tower-depth 1 --eval-every 0 --bn-images 2 --warmup 2 "
                             "--workers 2 --seed 3 --out ";
  out = test::run_capture(bin + common + dir + "/a 2>&1", &st);
  REQUIRE_MESSAGE(st == 0, out);
  CHECK(out.find("train eval at iter 4: AP") != std::string::npos);
  out = test::run_capture(bin + common + dir + "/b --stop-at 2 2>&1", &st);
  REQUIRE_MESSAGE(st == 0, out);
  out = test::run_capture(bin + common + dir + "/b --resume 2>&1", &st);
  REQUIRE_MESSAGE(st == 0, out);
  auto losses = [](const std::string& path) {
    std::istringstream in(read_file(path));
    std::string line, o;
    while (std::getline(in, line))
      if (line.find("\"loss\"") != std::string::npos) o += line + "\n";
    return o;
  };
  std::string la = losses(dir + "/a/log.jsonl"), lb = losses(dir + "/b/log.jsonl");
  CHECK(std::count(la.begin(), la.end(), '\n') == 4);
  CHECK(la == lb);
  CHECK(file_exists(dir + "/a/plot.svg"));
  CHECK(read_file(dir + "/a/plot.svg").find("<polyline") != std::string::npos);
  out = test::run_capture(bin + " train --train-json " + dir + "/nope.json --out " + dir + "/c 2>&1", &st);
  CHECK(st != 0);
  CHECK(out.find(dir + "/nope.json") != std::string::npos);
  remove_all(dir);
}
