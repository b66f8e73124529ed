// The run-folder skeleton of `detnas pretrain` and `detnas train`: temporaries of
// an interrupted write, the --resume decision and load, the JSONL log, the
// evaluation / checkpoint / --stop-at cadence, the text naming the checkpoint a
// failure keeps, and the done message. Under mpirun every rank runs the loop and
// reads the run folder; rank 0 alone writes it (folder, log, checkpoints). Not a trainer: each command brings its
// network, data, step, log records, evaluation and checkpoint fields as hooks.
#pragma once
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "cli/run_log.h"
#include "nn/checkpoint.h"
#include "runtime/fs.h"
#include "runtime/rng.h"

namespace detnas::cli {

// Brace-initialised from `command` to `opt`; the command then sets rngs and the hooks.
struct TrainLoop {
  std::string command, out, space;  // command: message prefix and checkpoint kind; space: checked on --resume
  int64_t iters, eval_every, ckpt_every, log_every, stop_at;  // the options (0: never; stop_at -1: none)
  nn::Module& net;
  nn::Sgd& opt;
  std::vector<std::pair<std::string, Rng*>> rngs{};  // restored on --resume, saved in checkpoints; null: skipped
  std::function<void(int64_t it)> step{};            // iteration it + 1: the step, its log record, progress line
  std::function<void(int64_t done)> eval{};          // after iteration `done` (every eval_every and the last),
                                                     // between a snapshot and a restore of the network's buffers
  std::function<void(nn::CheckpointMeta&)> meta{};   // the command's checkpoint fields (arch, config)
  std::function<void()> after_save{};                // optional: files made from the log (train's plot)

  std::string ckpt = path_join(out, "last");
  int64_t start = 0, saved = -1;  // saved: step of the last checkpoint on disk from this run (or resumed)
  std::optional<JsonlLog> log{};  // from run(), on rank 0 only (under mpirun)
  std::optional<Progress> prog{};

  // Creates OUT and removes temporaries; on `resume` loads OUT/last into net, opt
  // and rngs. Returns whether it resumed.
  bool begin(bool resume);
  // Opens the log, runs the iterations from `start` to `iters` or stop_at, then
  // prints the done message (`outputs`: further files, ", plot PATH").
  void run(const std::string& outputs = "");
  // From step(), for an iteration that failed before its optimizer step (the
  // weights and the last checkpoint stay as they were): "COMMAND: WHAT at iteration
  // ITER: DETAIL; stopped; the checkpoint OUT/last of iteration N is kept (HINT)".
  [[noreturn]] void stop(const std::string& what, int64_t iter, const std::string& detail, const char* hint) const;
  // Appends a record to OUT/log.jsonl (rank 0; the other ranks write nothing).
  void record(const std::string& json);
  bool progress_due(int64_t it) const { return (it + 1) % log_every == 0 || it + 1 == iters; }
  double images_per_s(int64_t done, int64_t batch) const;  // since `start`
};

// The kind of the checkpoint at `path` when its metadata reads and is not
// `expected`, else "": the likely cause of a failed load.
std::string other_checkpoint_kind(const std::string& path, const std::string& expected);

}  // namespace detnas::cli
