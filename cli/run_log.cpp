// JSONL log and progress helpers.
#include "cli/run_log.h"

#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "core/error.h"
#include "core/log.h"
#include "runtime/device.h"
#include "runtime/fault.h"
#include "runtime/fs.h"
#include "runtime/threads.h"

namespace detnas::cli {

JsonlLog::JsonlLog(const std::string& path, int64_t keep_until, const std::string& key) : path_(path) {
  const std::string pat = "\"" + key + "\":";
  std::string kept;
  if (keep_until >= 0 && file_exists(path)) {
    std::string text = read_file(path);
    size_t pos = 0;
    while (pos < text.size()) {
      size_t nl = text.find('\n', pos);
      if (nl == std::string::npos) break;  // a torn last line from a crash is dropped
      std::string line = text.substr(pos, nl - pos);
      pos = nl + 1;
      size_t k = line.find(pat);
      int64_t it = k == std::string::npos ? -1 : std::atoll(line.c_str() + k + pat.size());
      if (it <= keep_until) kept += line + "\n";
    }
  }
  write_file_atomic(path, kept);
  f_ = std::fopen(path.c_str(), "a");
  DETNAS_CHECK(f_ != nullptr, "cannot open log ", path, " for appending: ", std::strerror(errno));
}

JsonlLog::~JsonlLog() {
  if (f_) std::fclose(static_cast<FILE*>(f_));
}

void JsonlLog::write(const std::string& line) {
  FILE* f = static_cast<FILE*>(f_);
  const std::string rec = line + "\n", name = path_filename(path_);
  if (Fault ft = fault_point("write", name); ft.kind == FaultKind::Errno)
    DETNAS_FAIL("cannot write log ", path_, ": ", std::strerror(ft.err));
  // Flushed in two halves so that a test can kill the process with the last line
  // torn (the constructor drops it on --resume); a full disk is an error.
  const size_t half = rec.size() / 2;
  bool ok = std::fwrite(rec.data(), 1, half, f) == half && std::fflush(f) == 0;
  if (ok) fault_point("jsonl.mid", name);
  ok = ok && std::fwrite(rec.data() + half, 1, rec.size() - half, f) == rec.size() - half && std::fflush(f) == 0;
  if (!ok) DETNAS_FAIL("cannot write log ", path_, ": ", std::strerror(errno));
}

void JsonlLog::sync() {
  FILE* f = static_cast<FILE*>(f_);
  if (std::fflush(f) != 0 || ::fsync(::fileno(f)) != 0)
    DETNAS_FAIL("cannot write log ", path_, " (fsync): ", std::strerror(errno));
}

double Progress::elapsed() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0_).count();
}

std::string format_duration(double s) {
  char b[32];
  long t = long(s + 0.5);
  if (t >= 3600)
    std::snprintf(b, sizeof b, "%ldh%02ldm", t / 3600, (t / 60) % 60);
  else if (t >= 60)
    std::snprintf(b, sizeof b, "%ldm%02lds", t / 60, t % 60);
  else
    std::snprintf(b, sizeof b, "%lds", t);
  return b;
}

std::string Progress::eta(int64_t done) const {
  int64_t n = done - first_;
  if (n <= 0) return "ETA ?";
  double per = elapsed() / double(n);
  return "ETA " + format_duration(per * double(total_ - done));
}

bool parse_sync_bn(const std::string& value, bool multi_rank) {
  if (value == "auto") return multi_rank;
  DETNAS_CHECK(value == "on" || value == "off", "--sync-bn: '", value, "' is not auto, on or off");
  return value == "on";
}

void set_threads(int64_t threads) {
  if (threads <= 0) return;
  rt::set_num_threads(int(threads));
}

void add_device_options(CLI::App* sub, DeviceOptions* d) {
  sub->add_option("--device", d->device, "auto, cpu or cuda")->capture_default_str();
  sub->add_option("--precision", d->precision, "CUDA library math: fp32, or tf32 (cuBLAS/cuDNN tensor cores)")
      ->capture_default_str();
}

rt::Device select_run_device(const DeviceOptions& d, const char* command) {
  rt::set_precision(rt::parse_precision(d.precision));
  const rt::Device dev = rt::select_device(rt::parse_device_request(d.device));
  if (dev == rt::Device::CUDA)
    log_info(command, ": network on CUDA, ", rt::precision_name(rt::precision()), " cuBLAS/cuDNN math");
  return dev;
}

}  // namespace detnas::cli
