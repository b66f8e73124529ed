// `detnas pretrain` end to end on a tiny generated ImageFolder: an interrupted
// and resumed run logs exactly the losses of an uninterrupted one, and bad
// inputs (missing folder, empty class, corrupt JPEG, wrong checkpoint) fail with
// a message naming the problem.
#include <doctest/doctest.h>
#include <unistd.h>

#include <sstream>

#include "runtime/fs.h"
#include "tests/test_util.h"

using namespace detnas;

namespace {
struct Tmp {
  std::string dir = "/tmp/detnas_pt_" + std::to_string(::getpid());
  Tmp() { make_dirs(dir); }
  ~Tmp() { remove_all(dir); }
};
std::string losses(const std::string& log) {
  std::istringstream in(read_file(log));
  std::string line, out;
  while (std::getline(in, line))
    if (line.find("\"loss\"") != std::string::npos) out += line + "\n";
  return out;
}
}  // namespace

TEST_CASE("pretrain: an interrupted and resumed run equals an uninterrupted one; bad inputs are named") {
  const std::string bin = test::detnas_binary();
  REQUIRE_MESSAGE(access(bin.c_str(), X_OK) == 0, "build " << bin << " first (make test builds it)");
  Tmp t;
  int st = 0;
  std::string out = test::run_capture(
      bin + " make-data --kind cls --out " + t.dir + "/d --cls-train 3 --cls-val 1 --cls-size 24 2>&1", &st);
  REQUIRE_MESSAGE(st == 0, out);
  const std::string common = " pretrain --data " + t.dir +
                             "/d/cls --iters 6 --batch 4 --input 16 --eval-every 0 "
                             "--eval-paths 1 --recal-batches 1 --ckpt-every 100 --workers 2 --seed 5 --out ";
  out = test::run_capture(bin + common + t.dir + "/a 2>&1", &st);
  REQUIRE_MESSAGE(st == 0, out);
  out = test::run_capture(bin + common + t.dir + "/b --stop-at 3 2>&1", &st);
  REQUIRE_MESSAGE(st == 0, out);
  CHECK(out.find("--resume") != std::string::npos);
  out = test::run_capture(bin + common + t.dir + "/b --resume 2>&1", &st);
  REQUIRE_MESSAGE(st == 0, out);
  std::string la = losses(t.dir + "/a/log.jsonl"), lb = losses(t.dir + "/b/log.jsonl");
  CHECK(std::count(la.begin(), la.end(), '\n') == 6);
  CHECK(la == lb);  // same losses, learning rates and paths, bit for bit
  CHECK(read_file(t.dir + "/a/last.safetensors") == read_file(t.dir + "/b/last.safetensors"));

  // Bad inputs.
  out = test::run_capture(bin + " pretrain --data " + t.dir + "/nowhere --out " + t.dir + "/c 2>&1", &st);
  CHECK(st != 0);
  CHECK(out.find(t.dir + "/nowhere/train does not exist") != std::string::npos);
  make_dirs(t.dir + "/d/cls/train/zz_empty");
  out = test::run_capture(bin + common + t.dir + "/c 2>&1", &st);
  CHECK(st != 0);
  CHECK(out.find("zz_empty holds no .jpg") != std::string::npos);
  remove_all(t.dir + "/d/cls/train/zz_empty");
  std::string victim = t.dir + "/d/cls/train/bar/000000.jpg";
  std::string bytes = read_file(victim);
  write_file_atomic(victim, bytes.substr(0, bytes.size() / 3));
  out = test::run_capture(bin + common + t.dir + "/c 2>&1", &st);
  CHECK(st != 0);
  CHECK(out.find("000000.jpg") != std::string::npos);
  write_file_atomic(victim, bytes);
  out = test::run_capture(bin + common + t.dir + "/a --space 300M --resume 2>&1", &st);
  CHECK(st != 0);
  CHECK(out.find("space tiny") != std::string::npos);
}
