// Run-folder helpers shared by the commands: a JSON Lines log that a resumed
// run truncates back to its checkpoint, a progress line with throughput and
// ETA, and the thread setting.
#pragma once
#include <chrono>
#include <cstdint>
#include <string>

#include "runtime/device.h"

namespace CLI {
class App;
}

namespace detnas::cli {

class JsonlLog {
 public:
  // Opens PATH for appending. With keep_until >= 0 (a resume), first drops every
  // record whose `key` ("iter") is greater than keep_until (work after the
  // checkpoint that will be redone); with keep_until < 0 the file is started afresh.
  JsonlLog(const std::string& path, int64_t keep_until, const std::string& key = "iter");
  ~JsonlLog();
  void write(const std::string& json_line);  // one object, no newline; throws naming the path on failure
  // Flushes the records to disk (before a checkpoint that a --resume truncates back to).
  void sync();
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  void* f_ = nullptr;
};

class Progress {
 public:
  Progress(int64_t first, int64_t total) : first_(first), total_(total), t0_(std::chrono::steady_clock::now()) {}
  double elapsed() const;
  // "iter 120/600 ... 85.3 img/s ETA 1m12s" given the iterations done so far.
  std::string eta(int64_t done) const;

 private:
  int64_t first_, total_;
  std::chrono::steady_clock::time_point t0_;
};

std::string format_duration(double seconds);

// --threads N > 0: threads of the OpenMP regions, rt::set_num_threads (0 keeps the
// default: all cores). OpenBLAS itself always runs on one thread (kernels/gemm.h).
void set_threads(int64_t threads);
// --sync-bn auto|on|off: auto is on when the job has more than one rank.
bool parse_sync_bn(const std::string& value, bool multi_rank);

// --device auto|cpu|cuda and --precision fp32|tf32 for the commands that run
// networks. select_run_device resolves the request (rt::select_device: `auto`
// takes a usable GPU, else the CPU with one log line; `cuda` without a usable GPU
// fails with the probe's reason) and returns the device the command moves its
// network to (nn::Module::to); batches follow inside the network's forward.
// --precision sets the cuBLAS/cuDNN math (rt::set_precision); bad values fail
// naming the value.
struct DeviceOptions {
  std::string device = "auto", precision = "fp32";
};
void add_device_options(CLI::App* sub, DeviceOptions* d);
rt::Device select_run_device(const DeviceOptions& d, const char* command);

}  // namespace detnas::cli
