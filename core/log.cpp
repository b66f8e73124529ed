// Default log sink writes "[detnas] msg" to stderr under a mutex.
#include "core/log.h"

#include <cstdio>
#include <mutex>

namespace detnas {
namespace {
std::mutex g_mu;
LogSink g_sink;
LogLevel g_level = LogLevel::Info;
}  // namespace

void set_log_sink(LogSink sink) {
  std::lock_guard<std::mutex> lock(g_mu);
  g_sink = std::move(sink);
}
void set_log_level(LogLevel min_level) { g_level = min_level; }
LogLevel log_level() { return g_level; }

void log_message(LogLevel level, const std::string& msg) {
  std::lock_guard<std::mutex> lock(g_mu);
  if (g_sink) {
    g_sink(level, msg);
    return;
  }
  const char* tag = level == LogLevel::Warn ? "warning: " : level == LogLevel::Error ? "error: " : "";
  std::fprintf(stderr, "[detnas] %s%s\n", tag, msg.c_str());
}
}  // namespace detnas
