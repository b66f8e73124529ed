// The training-run skeleton of pretrain and train (train_loop.h).
#include "cli/train_loop.h"

#include <algorithm>

#include "core/error.h"
#include "core/log.h"
#include "runtime/dist.h"
#include "runtime/fault.h"

namespace detnas::cli {

std::string other_checkpoint_kind(const std::string& path, const std::string& expected) {
  try {
    const std::string kind = nn::read_checkpoint_meta(path).kind;
    return kind == expected ? "" : kind;
  } catch (const Error&) {
    return "";
  }
}

bool TrainLoop::begin(bool resume) {
  if (rt::dist::is_root()) {  // rank 0 alone writes the run folder; every rank reads it
    make_dirs(out);
    if (int64_t n = remove_stale_temporaries(out))
      log_info(command, ": removed ", n, " temporary file(s) of an interrupted write in ", out);
  }
  rt::dist::barrier();
  if (resume && !file_exists(ckpt + ".safetensors") && !file_exists(ckpt + ".json")) {
    // Killed before its first checkpoint: nothing to continue, so start over (the
    // same run, as it is deterministic) rather than make the user drop --resume.
    log_warn(command, " --resume: no checkpoint ", ckpt, " in ", out, " yet: starting from iteration 0");
    resume = false;
  }
  if (!resume) return false;
  nn::CheckpointMeta m;
  try {
    m = nn::load_checkpoint(ckpt, net, &opt, nn::ExtraTensors::Error);
  } catch (const Error& e) {
    const std::string kind = other_checkpoint_kind(ckpt, command);
    if (kind.empty()) throw;
    DETNAS_FAIL(command, " --resume: ", ckpt, " is a '", kind, "' checkpoint, not one of detnas ", command, ": ",
                e.message());
  }
  DETNAS_CHECK(m.kind == command && m.space == space, command, " --resume: ", ckpt, " is a '", m.kind,
               "' checkpoint of space ", m.space, ", not a ", command, " checkpoint of space ", space);
  for (auto& [name, rng] : rngs) {
    if (!rng) continue;
    DETNAS_CHECK(m.rng.count(name), command, " --resume: ", ckpt, " has no '", name, "' RNG state");
    rng->set_state(m.rng.at(name).first, m.rng.at(name).second);
  }
  start = saved = m.step;
  log_info(command, ": resumed from ", ckpt, " at iteration ", start);
  return true;
}

void TrainLoop::run(const std::string& outputs) {
  auto save = [&](int64_t iter) {
    nn::CheckpointMeta m;
    m.kind = command;
    m.step = iter;
    m.space = space;
    for (auto& [name, rng] : rngs)
      if (rng) m.rng[name] = {rng->state0(), rng->state1()};
    meta(m);
    if (!rt::dist::is_root()) return;
    nn::save_checkpoint(ckpt, net, &opt, m);
    if (after_save) after_save();
  };
  // A resumed run keeps the records up to its checkpoint. Rank 0 alone logs.
  if (rt::dist::is_root()) log.emplace(path_join(out, "log.jsonl"), saved);
  prog.emplace(start, iters);
  for (int64_t it = start; it < iters; ++it) {
    fault_point(command + ".iter");
    step(it);
    const int64_t done = it + 1;
    if ((eval_every > 0 && done % eval_every == 0) || done == iters) {
      nn::BufferSnapshot snap(net);  // the evaluation's BN recalibration leaves the training statistics
      eval(done);
      snap.restore();
      net.set_mode(nn::Mode::Train);
    }
    if ((ckpt_every > 0 && done % ckpt_every == 0) || done == iters || done == stop_at) {
      if (log) log->sync();  // every record up to the checkpoint is on disk before it
      save(done);
      saved = done;
    }
    if (done == stop_at) {
      log_info(command, ": stopping at iteration ", done, " as asked (--stop-at); continue with --resume");
      return;
    }
  }
  // Resumed with nothing left to do: a crash may have cut the final save between
  // its two files or before after_save; saving the loaded state again gives the
  // files of an uninterrupted run.
  if (start >= iters) save(start);
  log_info(command, ": done in ", format_duration(prog->elapsed()), "; checkpoint ", ckpt, ".safetensors, log ",
           path_join(out, "log.jsonl"), outputs);
}

void TrainLoop::record(const std::string& json) {
  if (log) log->write(json);
}

double TrainLoop::images_per_s(int64_t done, int64_t batch) const {
  return double((done - start) * batch) / std::max(1e-9, prog->elapsed());
}

void TrainLoop::stop(const std::string& what, int64_t iter, const std::string& detail, const char* hint) const {
  DETNAS_FAIL(command, ": ", what, " at iteration ", iter, ": ", detail, "; stopped; ",
              saved >= 0 ? "the checkpoint " + ckpt + " of iteration " + std::to_string(saved) + " is kept"
                         : std::string("no checkpoint was written"),
              " (", hint, ")");
}

}  // namespace detnas::cli
