// Fault injection for the crash-safety tests (tests/test_crash_safety.cpp): named
// points in the write paths and training loops where the environment variable
// DETNAS_FAULT can make the process die, fail a system call or see a NaN loss,
// at an exact moment. Not a general error-handling facility: with DETNAS_FAULT
// unset (always, outside tests) fault_point() is one load of a bool.
//
//   DETNAS_FAULT="ACTION@POINT:N[,ACTION@POINT:N...]"
//     ACTION  kill            raise(SIGKILL) (no clean-up, no flush: a real crash)
//             throw           throw detnas::Error (a failure the program reports)
//             nan             the caller replaces a value by NaN (point `loss`)
//             enospc|eacces|eio|erofs   the caller's system call fails with that errno
//     POINT   a point name, or NAME/FILE to count only passages for the file whose
//             name (no folder) is FILE, e.g. atomic.mid/last.safetensors
//     N       fire at the N-th matching passage (from 1); "N+" fires at the N-th and
//             every later one (a disk that stays full)
//   Each entry counts its own passages, per process.
//
// Points (FILE = the name, without folder, of the file being written):
//   atomic.begin/FILE        write_file_atomic called, temporary file not created yet
//   write/FILE               before the data of a file write (write_file_atomic, JSONL
//                            record); errno actions fail that write()
//   rename/FILE              before write_file_atomic's rename; errno actions fail it
//   atomic.mid/FILE          half of the temporary file written (kill: a torn temp file)
//   atomic.before_rename/FILE  temporary file complete and synced, not renamed yet
//   atomic.after_rename/FILE   renamed, folder not synced yet
//   jsonl.mid/FILE           half of a JSONL record written and flushed (a torn line)
//   ckpt.between/NAME        checkpoint NAME (e.g. last): NAME.safetensors written,
//                            NAME.json not yet
//   loss                     train/pretrain: the iteration's loss (nan: becomes NaN)
//   train.iter, pretrain.iter  start of every iteration
//   search.score             search: before a rank scores a candidate (every rank)
//   search.after_log         search: the candidate's search.jsonl record written,
//                            state.json not yet
//   search.after_state       search: state.json written, top10.json/plot.svg not yet
#pragma once
#include <string_view>

namespace detnas {

enum class FaultKind { None, Nan, Errno };

struct Fault {
  FaultKind kind = FaultKind::None;
  int err = 0;  // for FaultKind::Errno
  explicit operator bool() const { return kind != FaultKind::None; }
};

namespace fault_detail {
extern const bool g_enabled;  // DETNAS_FAULT set at start-up
Fault hit(std::string_view point, std::string_view file);
}  // namespace fault_detail

// Passes the named point; kills the process when asked, else returns what the
// caller should simulate (nothing, a NaN, a failed system call). A malformed
// DETNAS_FAULT throws detnas::Error naming the entry at the first point passed
// (then nothing is injected).
inline Fault fault_point(std::string_view point, std::string_view file = {}) {
  if (!fault_detail::g_enabled) return {};
  return fault_detail::hit(point, file);
}

}  // namespace detnas
