// Crash safety of the long jobs, end to end through the `detnas` binary:
// - train and search killed (SIGKILL) at named moments (DETNAS_FAULT, runtime/fault.h:
//   before the first checkpoint, inside a temporary file, before a rename, between
//   a checkpoint's .safetensors and .json, inside a JSONL record, between a search
//   record and its state) and by a timer at random moments, then resumed with
//   --resume until done, end with the files of an uninterrupted run: checkpoint
//   .safetensors and .json, log.jsonl, plot.svg byte for byte; search.jsonl,
//   state.json (timings removed), top10.json, plot.svg and the printed best arch;
// - a non-finite loss (injected NaN, or a real divergence) stops train and pretrain
//   naming the iteration and every loss component, non-zero exit, last checkpoint
//   byte-identical;
// - a full or unwritable output folder (injected ENOSPC/EACCES, and a real small or
//   read-only tmpfs where mount is permitted) fails naming the path and the
//   system's reason, non-zero exit, previous checkpoint intact.
// The timer kills draw their delays from a seed printed with the case
// (DETNAS_CRASH_SEED=N repeats a run).
#include <doctest/doctest.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <limits>
#include <regex>
#include <sstream>
#include <thread>

#include "nn/backbone.h"
#include "nn/checkpoint.h"
#include "nn/safetensors.h"
#include "runtime/fs.h"
#include "runtime/rng.h"
#include "tests/test_util.h"

using namespace detnas;

namespace {

bool was_killed(int st) {
  // popen's shell may exec the command (killed by the signal) or wait for it (exit 128+9).
  return (WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL) || (WIFEXITED(st) && WEXITSTATUS(st) == 128 + SIGKILL);
}
bool succeeded(int st) { return WIFEXITED(st) && WEXITSTATUS(st) == 0; }
bool failed_cleanly(int st) { return WIFEXITED(st) && WEXITSTATUS(st) != 0 && WEXITSTATUS(st) < 128; }

struct Run {
  int st = 0;
  std::string out;  // stderr + stdout
};
enum class Stderr { Keep, Drop };
// `cmd` with DETNAS_FAULT=`fault` (unset when empty); Stderr::Drop keeps stdout only.
Run run(const std::string& fault, const std::string& cmd, Stderr err = Stderr::Keep) {
  Run r;
  const std::string env = fault.empty() ? "env -u DETNAS_FAULT " : "env DETNAS_FAULT='" + fault + "' ";
  r.out = test::run_capture(env + cmd + (err == Stderr::Keep ? " 2>&1" : " 2>/dev/null"), &r.st);
  return r;
}

// Starts `cmd` and SIGKILLs it after `delay_ms` unless it ended first; true when killed.
bool run_killed_after(const std::string& cmd, double delay_ms) {
  const std::string line = "exec env -u DETNAS_FAULT " + cmd + " >/dev/null 2>&1";
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::execl("/bin/sh", "sh", "-c", line.c_str(), static_cast<char*>(nullptr));
    ::_exit(127);
  }
  REQUIRE(pid > 0);
  const auto t0 = std::chrono::steady_clock::now();
  int st = 0;
  for (;;) {
    if (::waitpid(pid, &st, WNOHANG) == pid) return false;
    if (std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count() >= delay_ms) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  ::kill(pid, SIGKILL);
  ::waitpid(pid, &st, 0);
  return was_killed(st);
}

// Runs `cmd` (fresh, then with --resume after each kill) and SIGKILLs it after a
// random delay in 25%..100% of `full_seconds` (a whole run, start-up included),
// until it has been killed 5 times. A run that ends before its timer is checked
// with `verify`, its folder `out` removed, and the delays shortened (the machine
// may be faster than when `full_seconds` was measured). `describe` notes the
// state each kill left. Returns the number of kills.
int kill_by_timer(const std::string& cmd, const std::string& out, double full_seconds, Rng& rng,
                  const std::function<void()>& verify, const std::function<std::string()>& describe,
                  std::string* states) {
  int kills = 0;
  bool fresh = true;
  double scale = 1.0;
  for (int attempt = 0; attempt < 16 && kills < 5; ++attempt) {
    const double ms = 1000.0 * full_seconds * scale * (0.25 + 0.75 * rng.uniform());
    INFO("timer attempt " << attempt << " (" << ms << " ms)");
    if (run_killed_after(cmd + (fresh ? "" : " --resume"), ms)) {
      ++kills;
      fresh = false;
      *states += "\n  after " + std::to_string(int(ms)) + " ms: " + describe();
    } else {
      verify();
      remove_all(out);
      fresh = true;
      scale *= 0.7;
      *states += "\n  after " + std::to_string(int(ms)) + " ms: had completed (checked); starting over";
    }
  }
  return kills;
}

double seconds_of(const std::function<void()>& f) {
  const auto t0 = std::chrono::steady_clock::now();
  f();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

uint64_t crash_seed() {
  static const uint64_t s = [] {
    const char* e = std::getenv("DETNAS_CRASH_SEED");
    return e ? std::strtoull(e, nullptr, 10)
             : uint64_t(std::chrono::steady_clock::now().time_since_epoch().count()) % 1000000007ULL;
  }();
  return s;
}

std::vector<std::string> temporaries(const std::string& dir) {
  std::vector<std::string> t;
  for (const std::string& n : list_dir(dir, ListFilter::All, ListHidden::Include))
    if (n.find(".tmp.") != std::string::npos) t.push_back(n);
  return t;
}

// What a killed run left in `dir`: the committed file's size (checkpoint weights or
// search state), the log's complete records, a torn last line, temporaries.
std::string describe_run(const std::string& dir, const std::string& commit, const std::string& log) {
  if (!dir_exists(dir)) return "no run folder";
  std::ostringstream os;
  const std::string c = path_join(dir, commit), l = path_join(dir, log);
  os << commit << (file_exists(c) ? " present" : " missing");
  if (file_exists(c) && path_extension(c) == ".safetensors")
    os << " (step " << nn::load_safetensors(c).metadata.at("detnas_step") << ")";
  if (file_exists(l)) {
    const std::string text = read_file(l);
    os << ", " << std::count(text.begin(), text.end(), '\n') << " " << log << " records"
       << (!text.empty() && text.back() != '\n' ? " + a torn line" : "");
  }
  os << ", " << temporaries(dir).size() << " temporary files";
  return os.str();
}

// Byte comparison of one file of two run folders, reported by name.
void check_same_file(const std::string& a, const std::string& b, const std::string& name) {
  INFO("file " << name << " of " << a << " and " << b);
  REQUIRE(file_exists(a + "/" + name));
  REQUIRE(file_exists(b + "/" + name));
  const std::string x = read_file(a + "/" + name), y = read_file(b + "/" + name);
  CHECK(x.size() == y.size());
  CHECK_MESSAGE(x == y, name << " differs");
}

// search.jsonl / state.json without the timing fields (evaluation wall times).
bool all_finite(const std::string& safetensors_path) {
  nn::SafetensorsFile f = nn::load_safetensors(safetensors_path);
  for (auto& [n, t] : f.tensors)
    for (float v : t.to_vector())
      if (!std::isfinite(v)) return false;
  return true;
}

// The data, commands and uninterrupted reference runs every case compares with;
// built once, on first use, and removed at exit.
struct Fixture {
  std::string bin, dir;
  std::string train;   // train command line without --out
  std::string search;  // search command line without --out
  std::string pretrain;
  std::string search_best;  // what the uninterrupted search printed on stdout
  double train_seconds = 0, search_seconds = 0;

  Fixture() {
    bin = test::detnas_binary();
    REQUIRE_MESSAGE(access(bin.c_str(), X_OK) == 0, "build " << bin << " first (make test builds it)");
    dir = "/tmp/detnas_crash_" + std::to_string(::getpid());
    make_dirs(dir);
    int st = 0;
    std::string out =
        test::run_capture(bin + " make-data --kind both --out " + dir +
                              "/d --train 4 --val 2 --size 64 --cls-train 3 --cls-val 1 --cls-size 24 2>&1",
                          &st);
    REQUIRE_MESSAGE(st == 0, out);
    // RetinaNet supernet, 6 iterations, checkpoints after 2, 4 and 6, AP at the end.
    train = train_with("--ckpt-every 2 --warmup 2");
    train_seconds = seconds_of([&] {
      Run r = run("", train + dir + "/train_ref");
      REQUIRE_MESSAGE(succeeded(r.st), r.out);
    });
    // The state after 2 iterations, as an uninterrupted run left it.
    Run r = run("", train + dir + "/train_at2 --stop-at 2");
    REQUIRE_MESSAGE(succeeded(r.st), r.out);
    // 12 candidates (3 generations of 4) on the reference supernet.
    search = bin + " search --ckpt " + dir + "/train_ref/last --data " + dir + "/d/det --val-split 2 --bn-images 2 " +
             "--population 4 --parents 2 --mutants 1 --crossovers 1 --generations 3 --flops-budget 45 --seed 5 --out ";
    search_seconds = seconds_of([&] {
      r = run("", search + dir + "/search_ref", Stderr::Drop);
      REQUIRE_MESSAGE(succeeded(r.st), r.out);
    });
    search_best = r.out;
    pretrain = pretrain_with("--ckpt-every 2");
    MESSAGE("crash safety: reference train " << train_seconds << " s, search " << search_seconds << " s");
  }
  // The command lines above with other checkpoint/warm-up/LR options.
  std::string train_with(const std::string& opts) const {
    return bin + " train --detector retinanet --data " + dir +
           "/d/det --iters 6 --batch 2 --short-side 64 --max-size 64 " +
           "--fpn-channels 16 --tower-depth 1 --eval-every 0 --bn-images 2 --workers 2 --seed 3 --log-every 1 " + opts +
           " --out ";
  }
  std::string pretrain_with(const std::string& opts) const {
    return bin + " pretrain --data " + dir + "/d/cls --iters 4 --batch 4 --input 16 --eval-every 0 " +
           "--eval-paths 1 --recal-batches 1 --workers 2 --seed 5 " + opts + " --out ";
  }
  ~Fixture() {
    ::umount2((dir + "/mnt").c_str(), MNT_DETACH);  // in case a case stopped with it mounted
    try {
      remove_all(dir);
    } catch (const std::exception&) {
    }
  }
};
Fixture& fixture() {
  static Fixture f;
  return f;
}

void check_train_matches_reference(const Fixture& fx, const std::string& out) {
  for (const char* f : {"last.safetensors", "last.json", "log.jsonl", "plot.svg"})
    check_same_file(fx.dir + "/train_ref", out, f);
  CHECK_MESSAGE(temporaries(out).empty(), "temporary files left in " << out);
}

void check_search_matches_reference(const Fixture& fx, const std::string& out) {
  const std::string ref = fx.dir + "/search_ref";
  const std::string ra = test::without_timings(read_file(ref + "/search.jsonl"));
  CHECK(std::count(ra.begin(), ra.end(), '\n') == 12);
  CHECK(ra == test::without_timings(read_file(out + "/search.jsonl")));  // no candidate lost or scored twice
  CHECK(test::without_timings(read_file(ref + "/state.json")) == test::without_timings(read_file(out + "/state.json")));
  check_same_file(ref, out, "top10.json");
  check_same_file(ref, out, "plot.svg");
  CHECK_MESSAGE(temporaries(out).empty(), "temporary files left in " << out);
}

}  // namespace

TEST_CASE("crash safety: train killed at named points resumes to byte-identical checkpoint, log and plot") {
  Fixture& fx = fixture();
  const std::string out = fx.dir + "/train_named", cmd = fx.train + out, resume = cmd + " --resume";
  const std::string ck = out + "/last";
  struct Step {
    const char* fault;
    bool resume;
    const char* expect_out;  // a line the run must print ("" none)
  };
  // Each step is killed where its fault says; the comment gives the state it leaves.
  const Step steps[] = {
      {"kill@train.iter:2", false, ""},                                           // iteration 1 logged, no checkpoint
      {"kill@atomic.mid/last.safetensors:1", true, "starting from iteration 0"},  // torn temporary weights
      {"kill@atomic.before_rename/last.json:1", true, "starting from iteration 0"},  // weights of 2, no .json
      {"kill@jsonl.mid/log.jsonl:2", true, "a save interrupted before it"},          // from 2; record of 4 torn
      {"kill@ckpt.between/last:2", true, "at iteration 2"},  // pair of 4, then weights of 6 + .json of 4
      {"kill@atomic.before_rename/last.safetensors:1", true, "not the sidecar"},  // at the end: re-save cut
  };
  int k = 0;
  for (const Step& s : steps) {
    INFO("step " << k << ": DETNAS_FAULT=" << std::string(s.fault));
    Run r = run(s.fault, s.resume ? resume : cmd);
    CHECK_MESSAGE(was_killed(r.st), "expected the fault to kill the run; output:\n" << r.out);
    if (*s.expect_out) CHECK_MESSAGE(r.out.find(s.expect_out) != std::string::npos, r.out);
    if (k == 0) CHECK(!file_exists(ck + ".safetensors"));
    if (k == 1) CHECK(!temporaries(out).empty());
    if (k == 2) {
      CHECK((file_exists(ck + ".safetensors") && !file_exists(ck + ".json")));
      // The other commands read such a checkpoint too (the sidecar copy in the weights).
      Run e = run("", fx.bin + " eval --ckpt " + ck + " --data " + fx.dir + "/d/det --bn-images 2 --out " + fx.dir +
                          "/eval_cut.json");
      CHECK_MESSAGE(succeeded(e.st), e.out);
      CHECK_MESSAGE(e.out.find("using the copy in " + ck + ".safetensors") != std::string::npos, e.out);
      CHECK(!file_exists(ck + ".json"));
    }
    if (k == 4) CHECK(nn::load_safetensors(ck + ".safetensors").metadata.at("detnas_step") == "6");
    if (k == 4) CHECK(read_file(ck + ".json").find("\"step\": 4") != std::string::npos);
    ++k;
  }
  Run r = run("", resume);
  REQUIRE_MESSAGE(succeeded(r.st), r.out);
  CHECK(r.out.find("resumed from " + ck + " at iteration 6") != std::string::npos);
  check_train_matches_reference(fx, out);
}

TEST_CASE("crash safety: train killed by a timer at random moments resumes to byte-identical files") {
  Fixture& fx = fixture();
  const std::string out = fx.dir + "/train_timer", cmd = fx.train + out;
  Rng rng(crash_seed() * 2 + 1);
  MESSAGE("crash safety: timer seed " << crash_seed() << " (DETNAS_CRASH_SEED)");
  std::string states;
  const int kills = kill_by_timer(
      cmd, out, fx.train_seconds, rng, [&] { check_train_matches_reference(fx, out); },
      [&] { return describe_run(out, "last.safetensors", "log.jsonl"); }, &states);
  MESSAGE("crash safety: train killed " << kills << " times by the timer, leaving:" << states);
  CHECK(kills >= 1);
  bool done = false;
  for (int tries = 0; tries < 2 && !done; ++tries) {
    Run r = run("", cmd + " --resume");
    done = succeeded(r.st);
    CHECK_MESSAGE(done, r.out);
  }
  REQUIRE(done);
  check_train_matches_reference(fx, out);
}

TEST_CASE("crash safety: search killed at named points and by a timer loses and repeats no candidate") {
  Fixture& fx = fixture();
  const std::string out = fx.dir + "/search_named", cmd = fx.search + out, resume = cmd + " --resume";
  const char* faults[] = {
      "kill@search.after_log:1",                 // first record logged, no state.json
      "kill@search.after_log:3",                 // (start over) 0,1 committed; record of 2 logged
      "kill@search.after_state:2",               // 2,3 committed, outputs of 3 not written
      "kill@atomic.mid/state.json:1",            // 4 logged, state.json temporary torn
      "kill@jsonl.mid/search.jsonl:2",           // 4 committed, record of 5 torn
      "kill@atomic.before_rename/state.json:3",  // 5,6 committed, state of 7 not renamed
      "enospc@write/state.json:2",               // 7 committed, disk full at 8: clean error
      "kill@atomic.before_rename/top10.json:2",  // 8 committed, outputs of 9 not renamed
      "kill@search.after_state:2",               // 10, 11 (the last) committed, outputs not written
  };
  int k = 0;
  for (const char* f : faults) {
    INFO("step " << k << ": DETNAS_FAULT=" << std::string(f));
    Run r = run(f, k ? resume : cmd);
    if (std::string(f).rfind("enospc", 0) == 0) {
      CHECK_MESSAGE(failed_cleanly(r.st), r.out);
      CHECK(r.out.find(out + "/state.json") != std::string::npos);
      CHECK(r.out.find("No space left on device") != std::string::npos);
    } else {
      CHECK_MESSAGE(was_killed(r.st), "expected the fault to kill the run; output:\n" << r.out);
    }
    if (k == 0) CHECK(!file_exists(out + "/state.json"));
    if (k == 1) CHECK(r.out.find("starting from the first candidate") != std::string::npos);
    ++k;
  }
  Run r = run("", resume, Stderr::Drop);
  REQUIRE_MESSAGE(succeeded(r.st), r.out);
  CHECK(r.out == fx.search_best);
  check_search_matches_reference(fx, out);

  // Timer kills at random moments of the whole search.
  const std::string tout = fx.dir + "/search_timer", tcmd = fx.search + tout;
  Rng rng(crash_seed() * 2 + 2);
  MESSAGE("crash safety: timer seed " << crash_seed() << " (DETNAS_CRASH_SEED)");
  std::string states;
  const int kills = kill_by_timer(
      tcmd, tout, fx.search_seconds, rng, [&] { check_search_matches_reference(fx, tout); },
      [&] { return describe_run(tout, "state.json", "search.jsonl"); }, &states);
  MESSAGE("crash safety: search killed " << kills << " times by the timer, leaving:" << states);
  CHECK(kills >= 1);
  Run last = run("", tcmd + " --resume", Stderr::Drop);
  REQUIRE_MESSAGE(succeeded(last.st), last.out);
  CHECK(last.out == fx.search_best);
  check_search_matches_reference(fx, tout);
}

TEST_CASE("crash safety: a non-finite loss stops train and pretrain naming iteration and components") {
  Fixture& fx = fixture();
  // train: NaN injected into the loss of iteration 3; the checkpoint of 2 stays as it was.
  const std::string out = fx.dir + "/train_nan", ref2 = fx.dir + "/train_at2";
  Run r = run("nan@loss:3", fx.train + out);
  CHECK_MESSAGE(failed_cleanly(r.st), r.out);
  CHECK_MESSAGE(r.out.find("non-finite loss at iteration 3: loss nan (") != std::string::npos, r.out);
  // Every component is named with its value (the first is the injected NaN).
  const std::string log = read_file(ref2 + "/log.jsonl");
  std::smatch m;
  std::string rest = log.substr(0, log.find('\n'));
  int parts = 0;
  for (std::regex re("\"loss_([a-z_0-9]+)\":"); std::regex_search(rest, m, re); rest = m.suffix()) {
    CHECK_MESSAGE(std::regex_search(r.out, std::regex("[( ]" + m[1].str() + " (nan|[-0-9.e+]+)[,)]")),
                  "component " << m[1] << " not named with its value in:\n"
                               << r.out);
    ++parts;
  }
  CHECK(parts >= 2);
  CHECK(r.out.find("the checkpoint " + out + "/last of iteration 2 is kept") != std::string::npos);
  check_same_file(ref2, out, "last.safetensors");
  check_same_file(ref2, out, "last.json");
  // Again after a resume (NaN in the resumed run's first iteration, iteration 3).
  r = run("nan@loss:1", fx.train + out + " --resume");
  CHECK_MESSAGE(failed_cleanly(r.st), r.out);
  CHECK(r.out.find("non-finite loss at iteration 3") != std::string::npos);
  check_same_file(ref2, out, "last.safetensors");
  check_same_file(ref2, out, "last.json");

  // A real divergence: no clipping, a huge learning rate. Whatever goes first
  // (loss, gradient, or weights about to be saved), the run stops with a message
  // and no checkpoint on disk holds a NaN or an infinity.
  const std::string dv = fx.dir + "/train_div";
  r = run("", fx.train_with("--lr 1e12 --clip-grad 0 --warmup 0 --ckpt-every 1") + dv);
  CHECK_MESSAGE(failed_cleanly(r.st), r.out);
  CHECK_MESSAGE(r.out.find("non-finite") != std::string::npos, r.out);
  CHECK_MESSAGE(std::regex_search(r.out, std::regex("at iteration [0-9]+: .*; stopped; ")), r.out);
  if (file_exists(dv + "/last.safetensors")) CHECK(all_finite(dv + "/last.safetensors"));

  // pretrain: the same, with its one component.
  const std::string p2 = fx.dir + "/pre_at2", pn = fx.dir + "/pre_nan";
  r = run("", fx.pretrain + p2 + " --stop-at 2");
  REQUIRE_MESSAGE(succeeded(r.st), r.out);
  r = run("nan@loss:3", fx.pretrain + pn);
  CHECK_MESSAGE(failed_cleanly(r.st), r.out);
  CHECK_MESSAGE(r.out.find("non-finite loss at iteration 3: loss nan (its only component: softmax cross-entropy") !=
                    std::string::npos,
                r.out);
  CHECK(r.out.find("the checkpoint " + pn + "/last of iteration 2 is kept") != std::string::npos);
  check_same_file(p2, pn, "last.safetensors");
  check_same_file(p2, pn, "last.json");
  const std::string pd = fx.dir + "/pre_div";
  r = run("", fx.pretrain_with("--lr 1e30 --ckpt-every 1") + pd);
  CHECK_MESSAGE(failed_cleanly(r.st), r.out);
  CHECK_MESSAGE(r.out.find("non-finite") != std::string::npos, r.out);
  if (file_exists(pd + "/last.safetensors")) CHECK(all_finite(pd + "/last.safetensors"));

  // Weights that turned non-finite in the step before a checkpoint (the loss of that
  // step was finite) are never saved: save_checkpoint refuses, writing nothing.
  nn::BackboneOptions bo;
  bo.space = "tiny";
  bo.head = nn::Head::Classification;
  bo.num_classes = 3;
  nn::Backbone net(bo);
  nn::CheckpointMeta meta;
  meta.kind = "pretrain";
  meta.step = 1;
  meta.space = "tiny";
  meta.arch = "supernet";
  const std::string base = fx.dir + "/unit/last";
  make_dirs(fx.dir + "/unit");
  nn::save_checkpoint(base, net, nullptr, meta);
  const std::string w = read_file(base + ".safetensors"), j = read_file(base + ".json");
  rt::Tensor p = net.parameters().back().tensor;
  p.data()[p.numel() - 1] = std::numeric_limits<float>::infinity();
  meta.step = 2;
  const std::string want =
      net.parameters().back().name + " " + rt::shape_str(p.shape()) + " holds a non-finite value (inf)";
  CHECK_THROWS_WITH_AS(nn::save_checkpoint(base, net, nullptr, meta), doctest::Contains(want.c_str()), Error);
  CHECK(read_file(base + ".safetensors") == w);
  CHECK(read_file(base + ".json") == j);
  CHECK(temporaries(fx.dir + "/unit").empty());
}

TEST_CASE("crash safety: a full or unwritable output folder fails naming the path; the checkpoint stays") {
  Fixture& fx = fixture();
  const std::string ref2 = fx.dir + "/train_at2";
  auto copy_run = [&](const std::string& to) {
    make_dirs(to);
    for (const char* f : {"last.safetensors", "last.json", "log.jsonl", "plot.svg"})
      write_file_atomic(to + "/" + f, read_file(ref2 + "/" + f));
  };
  // A malformed fault spec is refused by name, not ignored.
  Run bad = run("kill@ckpt.between", fx.train + fx.dir + "/train_badspec");
  CHECK_MESSAGE(failed_cleanly(bad.st), bad.out);
  CHECK_MESSAGE(bad.out.find("DETNAS_FAULT: entry 'kill@ckpt.between' is not ACTION@POINT:N") != std::string::npos,
                bad.out);
  // Injected: the disk fills while the weights of iteration 4 are written.
  const std::string out = fx.dir + "/train_full";
  copy_run(out);
  Run r = run("enospc@write/last.safetensors:1", fx.train + out + " --resume");
  CHECK_MESSAGE(failed_cleanly(r.st), r.out);
  CHECK_MESSAGE(r.out.find("cannot write '" + out + "/last.safetensors'") != std::string::npos, r.out);
  CHECK(r.out.find("No space left on device") != std::string::npos);
  check_same_file(ref2, out, "last.safetensors");
  check_same_file(ref2, out, "last.json");
  CHECK(temporaries(out).empty());
  // The sidecar's rename refused: the weights of 4 are in place and carry their own
  // sidecar, so the run still resumes exactly.
  r = run("eacces@rename/last.json:1", fx.train + out + " --resume");
  CHECK_MESSAGE(failed_cleanly(r.st), r.out);
  CHECK_MESSAGE(r.out.find("cannot rename '" + out + "/last.json.tmp.") != std::string::npos, r.out);
  CHECK(r.out.find("Permission denied") != std::string::npos);
  // The log: a record that cannot be written stops the run by name.
  r = run("enospc@write/log.jsonl:2", fx.train + out + " --resume");
  CHECK_MESSAGE(failed_cleanly(r.st), r.out);
  CHECK_MESSAGE(r.out.find("cannot write log " + out + "/log.jsonl: No space left on device") != std::string::npos,
                r.out);
  r = run("", fx.train + out + " --resume");
  REQUIRE_MESSAGE(succeeded(r.st), r.out);
  check_train_matches_reference(fx, out);
}

TEST_CASE("crash safety: a real full or read-only tmpfs fails naming the path; the checkpoint stays") {
  // A tmpfs too small for a second copy of the weights (the atomic write needs the
  // old and the new file at once), then remounted read-only. Needs mount(2).
  Fixture& fx = fixture();
  const std::string ref2 = fx.dir + "/train_at2";
  auto copy_run = [&](const std::string& to) {
    make_dirs(to);
    for (const char* f : {"last.safetensors", "last.json", "log.jsonl", "plot.svg"})
      write_file_atomic(to + "/" + f, read_file(ref2 + "/" + f));
  };
  Run r;
  const std::string mnt = fx.dir + "/mnt";
  make_dirs(mnt);
  const size_t weights = read_file(ref2 + "/last.safetensors").size();
  const std::string opts = "size=" + std::to_string((weights + weights / 2 + (256 << 10)) / 4096 * 4096);
  if (::mount("tmpfs", mnt.c_str(), "tmpfs", 0, opts.c_str()) != 0) {
    test::test_skip(std::string("crash safety: cannot mount a tmpfs here (") + std::strerror(errno) +
                    "): the real full and read-only folder checks did not run");
    return;
  }
  struct Unmount {
    std::string at;
    ~Unmount() { ::umount2(at.c_str(), MNT_DETACH); }
  } unmount{mnt};
  copy_run(mnt + "/run");
  r = run("", fx.train + mnt + "/run --resume");
  CHECK_MESSAGE(failed_cleanly(r.st), r.out);
  CHECK_MESSAGE(r.out.find(mnt + "/run/last.safetensors") != std::string::npos, r.out);
  CHECK(r.out.find("No space left on device") != std::string::npos);
  check_same_file(ref2, mnt + "/run", "last.safetensors");
  check_same_file(ref2, mnt + "/run", "last.json");
  CHECK(temporaries(mnt + "/run").empty());
  // Read-only: remounted, the resume fails at its first write (the log), naming it.
  const std::string log_before = read_file(mnt + "/run/log.jsonl");
  if (::mount("tmpfs", mnt.c_str(), "tmpfs", MS_REMOUNT | MS_RDONLY, opts.c_str()) == 0) {
    r = run("", fx.train + mnt + "/run --resume");
    CHECK_MESSAGE(failed_cleanly(r.st), r.out);
    CHECK_MESSAGE(r.out.find(mnt + "/run/log.jsonl") != std::string::npos, r.out);
    CHECK(r.out.find("Read-only file system") != std::string::npos);
    check_same_file(ref2, mnt + "/run", "last.safetensors");
    CHECK(read_file(mnt + "/run/log.jsonl") == log_before);
  } else {
    test::test_skip(std::string("crash safety: cannot remount the tmpfs read-only (") + std::strerror(errno) + ")");
  }
}
