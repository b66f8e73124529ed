// `detnas eval`, `detnas detect` and `detnas search` end to end on a tiny
// generated COCO set and a few-iteration supernet: eval prints the 12 COCO
// lines and writes a results file the COCO parser accepts; detect writes the
// drawn JPEG and the detections JSON; a search stopped midway and resumed ends
// with exactly the candidates and records of an uninterrupted one (timings
// aside); bad input is named.
#include <doctest/doctest.h>
#include <unistd.h>

#include <algorithm>

#include "data/coco.h"
#include "runtime/fs.h"
#include "tests/test_util.h"

using namespace detnas;

TEST_CASE("eval/detect/search: CLI end to end; search resumes without losing or repeating candidates") {
  const std::string bin = test::detnas_binary();
  REQUIRE_MESSAGE(access(bin.c_str(), X_OK) == 0, "build " << bin << " first (make test builds it)");
  const std::string dir = "/tmp/detnas_search_" + std::to_string(::getpid());
  make_dirs(dir);
  int st = 0;
  std::string out =
      test::run_capture(bin + " make-data --kind det --out " + dir + "/d --train 8 --val 3 --size 64 2>&1", &st);
  REQUIRE_MESSAGE(st == 0, out);
  const std::string data = " --data " + dir + "/d/det";
  out = test::run_capture(bin + " train --detector retinanet" + data +
                              " --iters 3 --batch 2 --short-side 64 --max-size 64 --fpn-channels 16 --tower-depth 1 "
                              "--eval-every 0 --bn-images 2 --warmup 1 --workers 1 --seed 3 --out " +
                              dir + "/t 2>&1",
                          &st);
  REQUIRE_MESSAGE(st == 0, out);

  // eval: default path (the one train evaluated), results file parses against the GT.
  out = test::run_capture(bin + " eval --ckpt " + dir + "/t/last" + data + " --bn-images 2 2>&1", &st);
  REQUIRE_MESSAGE(st == 0, out);
  CHECK(out.find("Average Precision  (AP) @[ IoU=0.50:0.95 | area=   all | maxDets=100 ]") != std::string::npos);
  CHECK(out.find("using the path train evaluated") != std::string::npos);
  data::CocoDataset gt = data::load_coco_instances(dir + "/d/det/annotations/instances_val.json");
  CHECK_NOTHROW(data::load_coco_results(dir + "/t/eval_results.json", gt));
  // No GPU here: --device cuda fails by name, with the probe's reason.
  out = test::run_capture(bin + " eval --device cuda --ckpt " + dir + "/t/last" + data + " 2>&1", &st);
  CHECK(st != 0);
  CHECK(out.find("--device cuda") != std::string::npos);
  out = test::run_capture(bin + " eval --precision fp16 --ckpt " + dir + "/t/last" + data + " 2>&1", &st);
  CHECK(st != 0);
  CHECK(out.find("fp16") != std::string::npos);
  out = test::run_capture(bin + " eval --ckpt " + dir + "/t/last --arch 1,2,3" + data + " 2>&1", &st);
  CHECK(st != 0);
  CHECK(out.find("1,2,3") != std::string::npos);

  // detect: a drawn JPEG per image and one JSON.
  const std::string img = dir + "/d/det/val/" + list_dir(dir + "/d/det/val")[0];
  out = test::run_capture(
      bin + " detect --ckpt " + dir + "/t/last" + data + " --bn-images 2 --out " + dir + "/det " + img + " 2>&1", &st);
  REQUIRE_MESSAGE(st == 0, out);
  CHECK(list_dir(dir + "/det").size() == 2);
  CHECK(read_file(dir + "/det/detections.json").front() == '[');

  // search: uninterrupted vs stopped after 3 + resumed.
  const std::string s = " search --ckpt " + dir + "/t/last" + data +
                        " --val-split 2 --bn-images 2 --population 4 --parents 2 --mutants 1 --crossovers 1 "
                        "--generations 3 --flops-budget 45 --seed 5 --out ";
  out = test::run_capture(bin + s + dir + "/sa 2>/dev/null", &st);
  REQUIRE_MESSAGE(st == 0, out);
  const std::string best = out;
  out = test::run_capture(bin + s + dir + "/sb --stop-after 3 2>&1", &st);
  REQUIRE_MESSAGE(st == 0, out);
  CHECK(test::without_timings(read_file(dir + "/sb/search.jsonl")).size() <
        test::without_timings(read_file(dir + "/sa/search.jsonl")).size());
  out = test::run_capture(bin + s + dir + "/sb --resume 2>/dev/null", &st);
  REQUIRE_MESSAGE(st == 0, out);
  CHECK(out == best);
  const std::string ra = test::without_timings(read_file(dir + "/sa/search.jsonl"));
  CHECK(std::count(ra.begin(), ra.end(), '\n') == 12);
  CHECK(ra == test::without_timings(read_file(dir + "/sb/search.jsonl")));
  for (const char* f : {"state.json", "top10.json", "plot.svg"}) CHECK(file_exists(dir + "/sb/" + f));
  // Resuming with other options is refused by name.
  out = test::run_capture(bin + s + dir + "/sb --resume --population 5 2>&1", &st);
  CHECK(st != 0);
  CHECK(out.find("population") != std::string::npos);

  // A standalone checkpoint cannot be searched.
  out = test::run_capture(bin + " train --detector retinanet" + data +
                              " --arch 0,1,2,3,0,1,2,3,0,1 --iters 1 --batch 2 --short-side 64 --max-size 64 "
                              "--fpn-channels 16 --tower-depth 1 --eval-every 0 --warmup 1 --workers 1 --out " +
                              dir + "/st 2>&1",
                          &st);
  REQUIRE_MESSAGE(st == 0, out);
  out = test::run_capture(bin + " search --ckpt " + dir + "/st/last" + data + " --out " + dir + "/sc 2>&1", &st);
  CHECK(st != 0);
  CHECK(out.find("standalone") != std::string::npos);

  // The two-stage detector goes through the same commands.
  out = test::run_capture(bin + " train --detector fpn" + data +
                              " --iters 2 --batch 2 --short-side 64 --max-size 64 --fpn-channels 16 --tower-depth 1 "
                              "--eval-every 0 --bn-images 2 --warmup 1 --workers 1 --out " +
                              dir + "/f 2>&1",
                          &st);
  REQUIRE_MESSAGE(st == 0, out);
  CHECK(out.find("roi_cls") != std::string::npos);
  out = test::run_capture(bin + " search --ckpt " + dir + "/f/last" + data +
                              " --val-split 2 --bn-images 2 --population 2 --parents 1 --mutants 0 --crossovers 0 "
                              "--generations 1 --flops-budget 0 --out " +
                              dir + "/sf 2>&1",
                          &st);
  REQUIRE_MESSAGE(st == 0, out);
  CHECK(out.find("fpn supernet") != std::string::npos);
  const std::string rf = test::without_timings(read_file(dir + "/sf/search.jsonl"));
  CHECK(std::count(rf.begin(), rf.end(), '\n') == 2);
  remove_all(dir);
}
