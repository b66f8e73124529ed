// bench: kernel throughput at the real shapes of the DetNAS supernets and the
// FPN / RetinaNet heads, against this machine's measured ceilings.
// Each entry checks the kernel against a plain reference loop first (a failure
// prints the worst element and makes bench exit 1), warms up, repeats to about
// --budget seconds and reports min / median time, GB/s and GFLOP/s and their
// fractions of the ceilings (memory bandwidth from a large copy and a large
// in-place update, peak FLOP/s from a large sgemm, measured at start;
// --roofline measures only those; --e2e runs bench/e2e.cpp instead). Not here:
// the entries (bench/entries_*.cpp), the end-to-end cases (bench/e2e.cpp).
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <regex>
#include <string>
#include <vector>

#include "bench/e2e.h"
#include "bench/harness.h"
#include "kernels/gemm.h"
#include "runtime/allocator.h"
#include "runtime/device.h"
#include "runtime/threads.h"

using namespace detnas;
using namespace detnas::bench;

namespace {

struct Options {
  bool roofline_only = false, json = false, list = false, all = false;
  bool e2e = false;
  bool cuda = false;  // the CUDA entries instead of the CPU ones
  E2eOptions e2e_opts;
  int threads = 0;
  double budget = 0.2;
  std::string filter;
};

const char* kUsage =
    "usage: bench [--cuda] [--filter REGEX] [--all] [--json] [--list] [--threads N] [--budget SECONDS] [--roofline]\n"
    "       bench --e2e [--space NAME] [--steps N] [--eval-images N] [--quick] [--filter REGEX] [--json] [--threads "
    "N]\n"
    "  (no option)      validate and time the default entries (about a minute or two on 2 cores)\n"
    "  --cuda           the CUDA entries (\"cuda/<entry>\"): each kernel on the GPU, checked against the CPU\n"
    "                   kernel on the same inputs, timed with CUDA events (needs a usable GPU, else exit 2)\n"
    "  --all            every entry: adds the 300M@800 and 1.3G@320 backbones and extra head shapes\n"
    "  --filter REGEX   only entries (with --e2e: cases) whose name matches (ECMAScript regex, searched anywhere)\n"
    "  --json           one JSON line per result on stdout (the human header goes to stderr)\n"
    "  --list           list the selected entries (with --json: their op and parameters)\n"
    "  --threads N      OpenMP and OpenBLAS threads (default: OpenMP's default)\n"
    "  --budget S       timed seconds per entry after warm-up (default 0.2; at least 3 repetitions)\n"
    "  --roofline       measure only the ceilings (copy and in-place update bandwidth, sgemm peak)\n"
    "  --e2e            end to end, synthetic data: training step at batch 2, 320 and 512, random and uniform\n"
    "                   paths; batch-1 800x800 inference; one search-candidate evaluation (about 4 min on 2 cores)\n"
    "  --space NAME     e2e backbone search space (default 300M; tiny for a quick run)\n"
    "  --steps N        e2e timed training steps per case after 2 warm-up steps (default 3)\n"
    "  --eval-images N  e2e search-candidate images, BN recalibration and inference each (default 256)\n"
    "  --quick          e2e: 320 and the random path only, 1 timed step, 1 inference, 16 candidate images\n"
    "exit status: 0 ok, 1 a validation failure or error in an entry, 2 bad arguments (or --cuda without a GPU)\n";

bool parse(int argc, char** argv, Options* o) {
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&](const char* what) -> const char* {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "bench: %s needs a value\n", what);
        return nullptr;
      }
      return argv[++i];
    };
    if (a == "--roofline") {
      o->roofline_only = true;
    } else if (a == "--json") {
      o->json = true;
    } else if (a == "--list") {
      o->list = true;
    } else if (a == "--all") {
      o->all = true;
    } else if (a == "--cuda") {
      o->cuda = true;
    } else if (a == "--e2e") {
      o->e2e = true;
    } else if (a == "--quick") {
      o->e2e_opts.quick = true;
      o->e2e_opts.steps = 1;
      o->e2e_opts.infer_reps = 1;
      o->e2e_opts.eval_images = 16;
    } else if (a == "--space") {
      const char* v = value(a.c_str());
      if (!v) return false;
      o->e2e_opts.space = v;
    } else if (a == "--steps" || a == "--eval-images") {
      const char* v = value(a.c_str());
      if (!v) return false;
      char* end = nullptr;
      const long n = std::strtol(v, &end, 10);
      if (*end || n < 1 || n > 100000) {
        std::fprintf(stderr, "bench: %s wants a positive integer, got '%s'\n", a.c_str(), v);
        return false;
      }
      (a == "--steps" ? o->e2e_opts.steps : o->e2e_opts.eval_images) = int(n);
    } else if (a == "--threads" || a == "--budget" || a == "--filter") {
      const char* v = value(a.c_str());
      if (!v) return false;
      if (a == "--filter") {
        o->filter = v;
      } else {
        char* end = nullptr;
        const double d = std::strtod(v, &end);
        if (*end || !(d >= 0) || (a == "--threads" && (d < 1 || d != int(d)))) {
          std::fprintf(stderr, "bench: %s wants a %s, got '%s'\n", a.c_str(),
                       a == "--threads" ? "positive integer" : "number of seconds >= 0", v);
          return false;
        }
        if (a == "--threads")
          o->threads = int(d);
        else
          o->budget = d;
      }
    } else if (a == "--help" || a == "-h") {
      std::printf("%s", kUsage);
      std::exit(0);
    } else {
      std::fprintf(stderr, "bench: unknown argument '%s'\n%s", a.c_str(), kUsage);
      return false;
    }
  }
  return true;
}

std::string fmt(const char* f, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}

// The context every JSON line carries.
std::string json_context(int threads) {
  return "\"machine\":\"" + json_escape(cpu_model()) + "\",\"threads\":" + std::to_string(threads) + ",\"git_rev\":\"" +
         json_escape(DETNAS_GIT_REV) + "\",\"build_flags\":\"" + json_escape(DETNAS_BUILD_FLAGS) +
         "\",\"blas_core\":\"" + json_escape(rt::blas_core_name()) + "\",\"loadavg\":\"" + loadavg() + "\"";
}

// Memory bandwidth, bytes read + written / min time, two ways: a large copy
// (the write to a second buffer also costs a read-for-ownership the count
// leaves out) and a large in-place update (the written line was just read, so
// nothing is hidden); the bandwidth ceiling is the better of the two. Peak
// FLOP/s: a large sgemm through OpenBLAS.
Ceilings measure_ceilings(const Options& o, int threads) {
  Ceilings c;
  const int64_t n = int64_t(64) << 20;  // 256 MiB per buffer: far beyond the caches
  rt::Tensor a = rt::Tensor::full({n}, 1.0f), b = rt::Tensor::zeros({n});
  const Timing tc = time_adaptive(
      [&] {
        const float* s = a.data();
        float* d = b.data();
#pragma omp parallel for schedule(static)
        for (int64_t i = 0; i < n; ++i) d[i] = s[i];
      },
      0.3);
  const Timing tu = time_adaptive(
      [&] {
        float* d = b.data();
#pragma omp parallel for schedule(static)
        for (int64_t i = 0; i < n; ++i) d[i] = d[i] * 0.5f + 1.0f;
      },
      0.3);
  c.copy_gbps = 2.0 * double(n) * sizeof(float) / tc.min_s * 1e-9;
  c.update_gbps = 2.0 * double(n) * sizeof(float) / tu.min_s * 1e-9;
  c.bw_gbps = std::max(c.copy_gbps, c.update_gbps);
  const int64_t M = 2048;
  rt::Tensor A = rt::Tensor::full({M, M}, 0.5f), B = rt::Tensor::full({M, M}, 0.25f), C = rt::Tensor::zeros({M, M});
  const Timing tg = time_adaptive(
      [&] {
        kernels::cpu::gemm<float>(Trans::No, Trans::No, M, M, M, 1.f, A.data(), M, B.data(), M, 0.f, C.data(), M);
      },
      0.5);
  c.sgemm_gflops = 2.0 * double(M) * M * M / tg.min_s * 1e-9;
  FILE* h = o.json ? stderr : stdout;
  std::fprintf(h,
               "ceiling  copy    256 MiB -> 256 MiB  min %8.3f ms  median %8.3f ms  %7.2f GB/s (read+written / min)\n",
               tc.min_s * 1e3, tc.median_s * 1e3, c.copy_gbps);
  std::fprintf(h,
               "ceiling  update  256 MiB in place    min %8.3f ms  median %8.3f ms  %7.2f GB/s (read+written / min)\n",
               tu.min_s * 1e3, tu.median_s * 1e3, c.update_gbps);
  std::fprintf(h, "ceiling  sgemm   %lldx%lldx%lld      min %8.3f ms  median %8.3f ms  %7.2f GFLOP/s (2*M*N*K / min)\n",
               (long long)M, (long long)M, (long long)M, tg.min_s * 1e3, tg.median_s * 1e3, c.sgemm_gflops);
  if (o.json) {
    const std::string ctx = json_context(threads);
    std::printf(
        "{\"name\":\"roofline/copy\",\"shape\":\"256 MiB\",\"min_ms\":%.6g,\"median_ms\":%.6g,\"gbps\":%.6g,%s}\n",
        tc.min_s * 1e3, tc.median_s * 1e3, c.copy_gbps, ctx.c_str());
    std::printf(
        "{\"name\":\"roofline/update\",\"shape\":\"256 MiB\",\"min_ms\":%.6g,\"median_ms\":%.6g,\"gbps\":%.6g,%s}\n",
        tu.min_s * 1e3, tu.median_s * 1e3, c.update_gbps, ctx.c_str());
    std::printf(
        "{\"name\":\"roofline/sgemm\",\"shape\":\"2048x2048x2048\",\"min_ms\":%.6g,\"median_ms\":%.6g,"
        "\"gflops\":%.6g,%s}\n",
        tg.min_s * 1e3, tg.median_s * 1e3, c.sgemm_gflops, ctx.c_str());
  }
  std::fflush(stdout);
  return c;
}

std::string params_json(const Entry& e) {
  std::string s = "{";
  for (size_t i = 0; i < e.params.size(); ++i)
    s += (i ? "," : "") + ("\"" + e.params[i].first + "\":" + fmt("%.10g", e.params[i].second));
  return s + "}";
}

// Builds the entry's inputs and runs its check; a failure is reported on stderr.
bool make_and_validate(const Entry& e, Case* c, Checker* chk) {
  *c = e.make();
  c->validate(*chk);
  if (!chk->ok())
    std::fprintf(stderr, "VALIDATION FAILED %s (%s): %s\n", e.name.c_str(), e.shape.c_str(), chk->report().c_str());
  return chk->ok();
}

// --cuda: validate each CUDA entry against the CPU kernel, then time it with
// CUDA events. There are no device ceilings here, so no fractions.
int run_cuda_entries(const Options& o, const std::vector<const Entry*>& sel, int threads) {
  FILE* h = o.json ? stderr : stdout;
  std::fprintf(h, "bench --cuda: %s; host %s, build %s, rev %s, loadavg %s\n", rt::cuda_probe_message().c_str(),
               cpu_model().c_str(), DETNAS_BUILD_FLAGS, DETNAS_GIT_REV, loadavg().c_str());
  std::fprintf(h, "(CUDA events around each call on the device stream; min and median over about %.2g s)\n", o.budget);
  std::fprintf(h, "%-50s %9s %9s %6s %8s %8s  %s\n", "name", "min_ms", "median_ms", "reps", "GB/s", "GFLOP/s", "shape");
  int failures = 0;
  for (const Entry* e : sel) {
    try {
      Case c;
      Checker chk;
      if (!make_and_validate(*e, &c, &chk)) {
        ++failures;
        continue;
      }
      const Timing t = time_cuda(c.run, o.budget);
      const double gbps = c.bytes > 0 ? c.bytes / t.min_s * 1e-9 : 0;
      const double gflops = c.flops > 0 ? c.flops / t.min_s * 1e-9 : 0;
      if (o.json)
        std::printf(
            "{\"name\":\"%s\",\"op\":\"%s\",\"shape\":\"%s\",\"device\":\"cuda\",\"min_ms\":%.6g,"
            "\"median_ms\":%.6g,\"reps\":%d,\"gbps\":%s,\"gflops\":%s,\"checked\":%lld,%s}\n",
            e->name.c_str(), e->op.c_str(), json_escape(e->shape).c_str(), t.min_s * 1e3, t.median_s * 1e3, t.reps,
            gbps > 0 ? fmt("%.6g", gbps).c_str() : "null", gflops > 0 ? fmt("%.6g", gflops).c_str() : "null",
            (long long)chk.checked(), json_context(threads).c_str());
      else
        std::printf("%-50s %9.4f %9.4f %6d %8s %8s  %s\n", e->name.c_str(), t.min_s * 1e3, t.median_s * 1e3, t.reps,
                    gbps > 0 ? fmt("%.2f", gbps).c_str() : "-", gflops > 0 ? fmt("%.2f", gflops).c_str() : "-",
                    e->shape.c_str());
      std::fflush(stdout);
    } catch (const std::exception& err) {
      std::fprintf(stderr, "ERROR in %s (%s): %s\n", e->name.c_str(), e->shape.c_str(), err.what());
      ++failures;
    }
  }
  std::fprintf(h, "bench --cuda: %zu entries, %d failed\n", sel.size(), failures);
  return failures ? 1 : 0;
}

}  // namespace

int main(int argc, char** argv) {
  detnas::rt::ensure_blas_core(argv);
  Options o;
  if (!parse(argc, argv, &o)) return 2;
  if (o.threads > 0) rt::set_num_threads(o.threads);
  const int threads = rt::num_threads();
  if (o.e2e) {
    o.e2e_opts.json = o.json;
    o.e2e_opts.json_context = json_context(threads);
    o.e2e_opts.filter = o.filter;
    try {
      const std::regex check(o.filter.empty() ? std::string(".") : o.filter);
    } catch (const std::regex_error& err) {
      std::fprintf(stderr, "bench: --filter '%s' is not a valid regex: %s\n", o.filter.c_str(), err.what());
      return 2;
    }
    std::fprintf(o.json ? stderr : stdout,
                 "bench --e2e: %s, %d threads, build %s, rev %s, OpenBLAS core %s, loadavg %s\n", cpu_model().c_str(),
                 threads, DETNAS_BUILD_FLAGS, DETNAS_GIT_REV, rt::blas_core_name(), loadavg().c_str());
    const int rc = run_e2e(o.e2e_opts);
    std::fprintf(o.json ? stderr : stdout, "bench --e2e: loadavg at the end %s\n", loadavg().c_str());
    return rc;
  }

  Registry reg;
  register_conv_entries(reg);
  register_data_entries(reg);
  register_det_entries(reg);
  register_misc_entries(reg);
  register_cuda_entries(reg);
  std::vector<const Entry*> sel;
  try {
    const std::regex re(o.filter.empty() ? std::string(".") : o.filter);
    for (const Entry& e : reg)
      if (e.cuda == o.cuda && (o.all || e.in_default) && std::regex_search(e.name, re)) sel.push_back(&e);
  } catch (const std::regex_error& err) {
    std::fprintf(stderr, "bench: --filter '%s' is not a valid regex: %s\n", o.filter.c_str(), err.what());
    return 2;
  }

  if (o.list && !o.roofline_only) {
    for (const Entry* e : sel) {
      if (o.json)
        std::printf("{\"name\":\"%s\",\"op\":\"%s\",\"shape\":\"%s\",\"params\":%s,\"default\":%s}\n", e->name.c_str(),
                    e->op.c_str(), json_escape(e->shape).c_str(), params_json(*e).c_str(),
                    e->in_default ? "true" : "false");
      else
        std::printf("%c %-44s %s\n", e->in_default ? '*' : ' ', e->name.c_str(), e->shape.c_str());
    }
    if (!o.json) std::printf("%zu entries (* = in the default run; --all runs all of them)\n", sel.size());
    return 0;
  }

  FILE* h = o.json ? stderr : stdout;  // the human-readable header
  if (o.cuda) {
    try {
      rt::select_device(rt::DeviceRequest::CUDA);
    } catch (const std::exception& err) {
      std::fprintf(stderr, "bench: --cuda: %s\n", err.what());
      return 2;
    }
    return run_cuda_entries(o, sel, threads);
  }
  std::fprintf(h, "bench: %s, %d threads, build %s, rev %s, OpenBLAS core %s, loadavg %s\n", cpu_model().c_str(),
               threads, DETNAS_BUILD_FLAGS, DETNAS_GIT_REV, rt::blas_core_name(), loadavg().c_str());
  const Ceilings ceil = measure_ceilings(o, threads);
  if (o.roofline_only) return 0;
  std::fprintf(h,
               "GB/s    = (bytes read + bytes written) / min time; every tensor a kernel must read or write is\n"
               "          counted once (float32 = 4 B); a shape that fits in cache can exceed the bandwidth ceiling\n"
               "GFLOP/s = 2 * multiply-adds / min time (convolutions)\n"
               "%%bw = GB/s / bandwidth ceiling (best of copy and update)   %%peak = GFLOP/s / sgemm ceiling\n"
               "(timed: min and median over about %.2g s of repetitions)\n",
               o.budget);
  std::fprintf(h, "%-44s %9s %9s %6s %8s %6s %8s %6s  %s\n", "name", "min_ms", "median_ms", "reps", "GB/s", "%bw",
               "GFLOP/s", "%peak", "shape");
  std::fflush(h);

  int failures = 0;
  for (const Entry* e : sel) {
    try {
      Case c;
      Checker chk;
      if (!make_and_validate(*e, &c, &chk)) {
        ++failures;
        continue;
      }
      const Timing t = time_adaptive(c.run, o.budget);
      const double gbps = c.bytes > 0 ? c.bytes / t.min_s * 1e-9 : 0;
      const double gflops = c.flops > 0 ? c.flops / t.min_s * 1e-9 : 0;
      const double fbw = gbps / ceil.bw_gbps, fpk = gflops / ceil.sgemm_gflops;
      if (o.json) {
        // "fraction": of the ceiling that bounds the kernel (FLOPs for convolutions, else bandwidth).
        const double frac = gflops > 0 ? fpk : fbw;
        std::printf(
            "{\"name\":\"%s\",\"op\":\"%s\",\"shape\":\"%s\",\"params\":%s,\"min_ms\":%.6g,\"median_ms\":%.6g,\"reps\":"
            "%d,"
            "\"gbps\":%s,\"gflops\":%s,\"fraction\":%s,\"fraction_bw\":%s,\"fraction_peak\":%s,\"checked\":%lld,%s}\n",
            e->name.c_str(), e->op.c_str(), json_escape(e->shape).c_str(), params_json(*e).c_str(), t.min_s * 1e3,
            t.median_s * 1e3, t.reps, gbps > 0 ? fmt("%.6g", gbps).c_str() : "null",
            gflops > 0 ? fmt("%.6g", gflops).c_str() : "null",
            gbps > 0 || gflops > 0 ? fmt("%.4g", frac).c_str() : "null", gbps > 0 ? fmt("%.4g", fbw).c_str() : "null",
            gflops > 0 ? fmt("%.4g", fpk).c_str() : "null", (long long)chk.checked(), json_context(threads).c_str());
      } else {
        std::printf("%-44s %9.4f %9.4f %6d %8s %6s %8s %6s  %s\n", e->name.c_str(), t.min_s * 1e3, t.median_s * 1e3,
                    t.reps, gbps > 0 ? fmt("%.2f", gbps).c_str() : "-",
                    gbps > 0 ? fmt("%.0f%%", 100 * fbw).c_str() : "-", gflops > 0 ? fmt("%.2f", gflops).c_str() : "-",
                    gflops > 0 ? fmt("%.0f%%", 100 * fpk).c_str() : "-", e->shape.c_str());
      }
      std::fflush(stdout);
    } catch (const std::exception& err) {
      std::fprintf(stderr, "ERROR in %s (%s): %s\n", e->name.c_str(), e->shape.c_str(), err.what());
      ++failures;
    }
    rt::host_allocator().empty_cache();  // entries differ in size: keep the cache from growing
  }
  std::fprintf(h, "bench: %zu entries, %d failed, loadavg %s\n", sel.size(), failures, loadavg().c_str());
  return failures ? 1 : 0;
}
