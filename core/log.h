// Logging helper: the only way code below cli/ emits text. Messages go to a
// settable sink (default: stderr), so an embedding program can capture them.
// In core/ (below kernels/) so that every layer can log; nothing here knows
// about tensors, devices or threads.
#pragma once
#include <functional>
#include <string>

#include "core/error.h"

namespace detnas {

enum class LogLevel { Debug = 0, Info = 1, Warn = 2, Error = 3 };

using LogSink = std::function<void(LogLevel, const std::string&)>;

void set_log_sink(LogSink sink);  // nullptr restores the default (stderr)
void set_log_level(LogLevel min_level);
LogLevel log_level();
void log_message(LogLevel level, const std::string& msg);

template <class... A>
void log_info(const A&... a) {
  if (log_level() <= LogLevel::Info) log_message(LogLevel::Info, detail::cat(a...));
}
template <class... A>
void log_warn(const A&... a) {
  if (log_level() <= LogLevel::Warn) log_message(LogLevel::Warn, detail::cat(a...));
}
template <class... A>
void log_debug(const A&... a) {
  if (log_level() <= LogLevel::Debug) log_message(LogLevel::Debug, detail::cat(a...));
}

}  // namespace detnas
