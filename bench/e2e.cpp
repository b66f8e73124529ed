// bench --e2e: end-to-end speed of the RetinaNet supernet on synthetic data.
// Cases (300M space unless --space): the training step (forward_train +
// backward + SGD step, SgdConfig::detection) at batch 2, 320x320 and 512x512,
// for a new uniform random path every step and for the uniform paths (every
// block choice c, c = 0..3); batch-1 800x800 inference (detect()); one
// search-candidate evaluation (BN recalibration forward on N images, then
// inference on N images at 320). Images are uniform random in [-2, 2) and
// every training image has 1-8 random boxes with random labels (synthetic:
// the speed does not depend on the pixel values; the number of positives only
// touches the loss, which is a small part of the step).
// Per case: wall time per step (min and median), images/s from the median,
// peak RSS (VmHWM, reset per case through /proc/self/clear_refs when the kernel
// allows it) and the caching allocator's high-water mark (reset per case).
// Not here: the kernel entries, argument parsing (bench/main.cpp).
#include "bench/e2e.h"

#include <malloc.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <exception>
#include <fstream>
#include <functional>
#include <memory>
#include <regex>
#include <string>
#include <vector>

#include "detect/detector.h"
#include "nn/layers.h"
#include "nn/optimizer.h"
#include "nn/space.h"
#include "runtime/allocator.h"
#include "runtime/autograd.h"
#include "runtime/rng.h"
#include "search/path_sampler.h"

namespace detnas::bench {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

// VmHWM / VmRSS of this process in MiB (0 when unreadable).
double proc_status_mib(const char* key) {
  std::ifstream f("/proc/self/status");
  std::string line;
  const size_t n = std::strlen(key);
  while (std::getline(f, line))
    if (line.compare(0, n, key) == 0 && line.size() > n && line[n] == ':')
      return std::atof(line.c_str() + n + 1) / 1024.0;
  return 0;
}

// Gives cached memory back and starts a new peak: allocator cache emptied,
// glibc heap trimmed, allocator high-water mark reset, VmHWM reset to the
// current RSS (echo 5 > clear_refs; Linux >= 4.0). Returns whether VmHWM was reset.
bool reset_peaks() {
  rt::host_allocator().empty_cache();
  malloc_trim(0);
  rt::host_allocator().reset_high_water();
  std::ofstream f("/proc/self/clear_refs");
  if (!f) return false;
  f << "5";
  f.flush();
  return bool(f);
}

rt::Tensor random_images(int64_t n, int64_t h, int64_t w, Rng& rng) {
  rt::Tensor t = rt::Tensor::empty({n, 3, h, w});
  float* p = t.data();
  for (int64_t i = 0; i < t.numel(); ++i) p[i] = float(rng.uniform(-2.0, 2.0));
  return t;
}

std::vector<det::Targets> random_targets(int64_t n, int64_t h, int64_t w, int64_t classes, Rng& rng) {
  std::vector<det::Targets> r(static_cast<size_t>(n));
  for (auto& t : r) {
    const int m = 1 + int(rng.below(8));
    for (int j = 0; j < m; ++j) {
      const double bw = rng.uniform(16.0, w * 0.6), bh = rng.uniform(16.0, h * 0.6);
      const double x1 = rng.uniform(0.0, w - bw), y1 = rng.uniform(0.0, h - bh);
      t.boxes.insert(t.boxes.end(), {float(x1), float(y1), float(x1 + bw), float(y1 + bh)});
      t.labels.push_back(int64_t(rng.below(uint64_t(classes))));
    }
  }
  return r;
}

struct Result {
  std::string name, what;
  int reps = 0;
  double min_s = 0, median_s = 0;  // per step / per call
  double images_per_call = 0;
  double rss_peak_mib = 0, alloc_hw_mib = 0;
  bool rss_reset = false;
};

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

class Runner {
 public:
  explicit Runner(const E2eOptions& o) : o_(o) {}

  // warm-up calls, then `reps` timed calls of f(i); memory peaks cover all of them.
  Result time(const std::string& name, const std::string& what, double images_per_call, int warmup, int reps,
              const std::function<void(int)>& f) {
    Result r;
    r.name = name;
    r.what = what;
    r.images_per_call = images_per_call;
    r.rss_reset = reset_peaks();
    for (int i = 0; i < warmup; ++i) f(i);
    std::vector<double> ts;
    for (int i = 0; i < reps; ++i) {
      const auto t0 = Clock::now();
      f(warmup + i);
      ts.push_back(seconds_since(t0));
    }
    r.reps = reps;
    r.min_s = *std::min_element(ts.begin(), ts.end());
    r.median_s = median(ts);
    r.rss_peak_mib = proc_status_mib("VmHWM");
    r.alloc_hw_mib = double(rt::host_allocator().stats().high_water) / (1024.0 * 1024.0);
    return r;
  }

  void print(const Result& r) {
    const double ips = r.images_per_call / r.median_s;
    if (o_.json) {
      std::printf(
          "{\"name\":\"%s\",\"what\":\"%s\",\"reps\":%d,\"min_s\":%.6g,\"median_s\":%.6g,\"images_per_call\":%g,"
          "\"images_per_s\":%.6g,\"peak_rss_mib\":%.1f,\"peak_rss_reset\":%s,\"alloc_high_water_mib\":%.1f,%s}\n",
          r.name.c_str(), r.what.c_str(), r.reps, r.min_s, r.median_s, r.images_per_call, ips, r.rss_peak_mib,
          r.rss_reset ? "true" : "false", r.alloc_hw_mib, o_.json_context.c_str());
    } else {
      std::printf("%-34s %5d %10.3f %10.3f %9.2f %11.0f%s %12.0f  %s\n", r.name.c_str(), r.reps, r.min_s, r.median_s,
                  ips, r.rss_peak_mib, r.rss_reset ? " " : "*", r.alloc_hw_mib, r.what.c_str());
    }
    std::fflush(stdout);
  }

 private:
  const E2eOptions& o_;
};

}  // namespace

int run_e2e(const E2eOptions& o) {
  try {
    FILE* h = o.json ? stderr : stdout;
    const nn::SearchSpace& space = nn::space_by_name(o.space);
    const int64_t nblocks = int64_t(nn::blocks(space).size());
    nn::BackboneOptions bo;
    bo.space = o.space;
    bo.kind = nn::NetKind::Supernet;
    bo.seed = 1;
    det::DetectorConfig dc;
    dc.kind = "retinanet";
    dc.num_classes = 80;
    dc.fpn_channels = 256;
    dc.head_depth = 4;
    dc.seed = 2;
    std::unique_ptr<det::Detector> net = det::make_detector(bo, dc);
    std::fprintf(h,
                 "e2e: RetinaNet (FPN 256, head depth 4, 80 classes) on the %s supernet (%lld blocks, %lld "
                 "parameters); synthetic images uniform in [-2,2), 1-8 random boxes per image\n",
                 o.space.c_str(), (long long)nblocks, (long long)net->num_parameters());
    std::fprintf(h,
                 "train = forward_train + backward + SGD step (SgdConfig::detection, lr 0.01), batch 2, 2 warm-up "
                 "steps;\nimg/s = images per call / median time; peak RSS = VmHWM over the case (* = could not be "
                 "reset: process-wide peak); alloc hw = caching allocator high-water mark\n");
    std::fprintf(h, "%-34s %5s %10s %10s %9s %12s %12s  %s\n", "case", "reps", "min_s", "median_s", "img/s",
                 "peakRSS_MiB", "alloc_hw_MiB", "what");
    std::fflush(h);
    Runner run(o);
    Rng data_rng(7), path_rng(11);
    const std::regex wanted(o.filter.empty() ? std::string(".") : o.filter);
    auto selected = [&](const std::string& name) { return std::regex_search(name, wanted); };

    // ---- training steps ----
    const int64_t batch = 2;
    std::vector<int64_t> sizes = o.quick ? std::vector<int64_t>{320} : std::vector<int64_t>{320, 512};
    std::vector<int> path_kinds = {-1};  // -1: a new uniform random path per step
    if (!o.quick)
      for (int c = 0; c < space.num_choices; ++c) path_kinds.push_back(c);
    for (int64_t s : sizes) {
      // A few distinct batches, cycled, so the step does not see the same data every time.
      std::vector<rt::Tensor> imgs;
      std::vector<std::vector<det::Targets>> tgts;
      for (int i = 0; i < 3; ++i) {
        imgs.push_back(random_images(batch, s, s, data_rng));
        tgts.push_back(random_targets(batch, s, s, dc.num_classes, data_rng));
      }
      for (int pk : path_kinds) {
        nn::Sgd opt(net->parameters(), nn::SgdConfig::detection());
        net->set_mode(nn::Mode::Train);
        const std::string pname = pk < 0 ? "random" : "all-" + std::to_string(pk);
        const std::string name = "train/" + o.space + "@" + std::to_string(s) + "/" + pname;
        if (!selected(name)) continue;
        Result r = run.time(name, "batch 2, " + std::to_string(s) + "x" + std::to_string(s) + ", path " + pname,
                            double(batch), 2, o.steps, [&](int i) {
                              const nn::Arch path =
                                  pk < 0 ? search::sample_uniform_path(space, path_rng) : nn::Arch(size_t(nblocks), pk);
                              det::DetLosses L = net->forward_train(imgs[i % 3], tgts[i % 3], path);
                              rt::backward(L.total);
                              opt.step(0.01);
                            });
        run.print(r);
      }
    }

    // A deployed detector holds no gradients: drop the training cases' ones, so
    // that the inference peaks below count the weights and the inference only.
    for (auto& p : net->parameters()) p.tensor.reset_grad();

    // ---- inference, batch 1, 800x800 ----
    // Own streams: the path and the images do not depend on the cases selected above.
    Rng eval_rng(13);
    const nn::Arch eval_path = search::sample_uniform_path(space, eval_rng);
    if (selected("infer/" + o.space + "@800/random")) {
      rt::Tensor img = random_images(1, 800, 800, eval_rng);
      std::vector<det::ImageMeta> metas{{1, 800, 800, 1.0, 1.0}};
      size_t ndet = 0;
      Result r = run.time("infer/" + o.space + "@800/random", "batch 1, 800x800, detect(), one random path", 1.0, 1,
                          o.infer_reps, [&](int) { ndet = net->detect(img, metas, eval_path)[0].size(); });
      r.what += ", " + std::to_string(ndet) + " detections";
      run.print(r);
    }

    // ---- one search-candidate evaluation at 320 ----
    if (selected("search/" + o.space + "@320/candidate")) {
      const int64_t eb = 8, s = 320, nb = (o.eval_images + eb - 1) / eb;
      rt::Tensor img = random_images(eb, s, s, eval_rng);  // one synthetic batch, reused: speed only
      std::vector<det::ImageMeta> metas;
      for (int64_t i = 0; i < eb; ++i) metas.push_back({i, s, s, 1.0, 1.0});
      const std::string n = std::to_string(nb * eb);
      double t_recal = 0, t_infer = 0;
      Result r = run.time("search/" + o.space + "@320/candidate", "", double(nb * eb), 0, 1, [&](int) {
        const auto t0 = Clock::now();
        {
          rt::NoGradGuard ng;
          nn::reset_bn_stats(*net);
          net->set_mode(nn::Mode::Recalibrate);
          for (int64_t b = 0; b < nb; ++b) net->forward_features(img, eval_path);
          net->set_mode(nn::Mode::Train);
        }
        t_recal = seconds_since(t0);
        const auto t1 = Clock::now();
        for (int64_t b = 0; b < nb; ++b) net->detect(img, metas, eval_path);
        t_infer = seconds_since(t1);
      });
      char buf[200];
      std::snprintf(buf, sizeof buf,
                    "BN recalibration forward on %s images (%.2f s, %.1f img/s) + detect() on %s images (%.2f s, "
                    "%.1f img/s), batch 8",
                    n.c_str(), t_recal, double(nb * eb) / t_recal, n.c_str(), t_infer, double(nb * eb) / t_infer);
      r.what = buf;
      run.print(r);
    }
    std::fprintf(h, "e2e: done; process peak RSS %.0f MiB\n", proc_status_mib("VmHWM"));
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench --e2e: %s\n", e.what());
    return 1;
  }
}

}  // namespace detnas::bench
