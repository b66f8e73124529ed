// DETNAS_FAULT parsing and counting (see fault.h).
#include "runtime/fault.h"

#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <mutex>
#include <string>
#include <vector>

#include "core/error.h"

namespace detnas {
namespace fault_detail {

const bool g_enabled = std::getenv("DETNAS_FAULT") != nullptr;

namespace {
struct Entry {
  std::string action, point, file;  // file empty: any file
  long n = 1;
  bool and_later = false;
  FaultKind kind = FaultKind::None;
  int err = 0;
  long seen = 0;
};

std::vector<Entry> parse(const std::string& spec) {
  std::vector<Entry> out;
  size_t pos = 0;
  while (pos <= spec.size()) {
    size_t end = spec.find(',', pos);
    if (end == std::string::npos) end = spec.size();
    const std::string item = spec.substr(pos, end - pos);
    pos = end + 1;
    if (item.empty()) continue;
    const size_t at = item.find('@'), colon = item.rfind(':');
    DETNAS_CHECK(at != std::string::npos && colon != std::string::npos && at < colon, "DETNAS_FAULT: entry '", item,
                 "' is not ACTION@POINT:N");
    Entry e;
    e.action = item.substr(0, at);
    std::string where = item.substr(at + 1, colon - at - 1), count = item.substr(colon + 1);
    if (size_t slash = where.find('/'); slash != std::string::npos) {
      e.file = where.substr(slash + 1);
      where.resize(slash);
    }
    e.point = where;
    if (!count.empty() && count.back() == '+') {
      e.and_later = true;
      count.pop_back();
    }
    char* stop = nullptr;
    e.n = std::strtol(count.c_str(), &stop, 10);
    DETNAS_CHECK(!count.empty() && *stop == '\0' && e.n >= 1, "DETNAS_FAULT: entry '", item,
                 "': N must be an integer >= 1 (optionally followed by '+')");
    if (e.action == "kill" || e.action == "throw") {
      e.kind = FaultKind::None;  // handled in hit()
    } else if (e.action == "nan") {
      e.kind = FaultKind::Nan;
    } else {
      e.kind = FaultKind::Errno;
      if (e.action == "enospc")
        e.err = ENOSPC;
      else if (e.action == "eacces")
        e.err = EACCES;
      else if (e.action == "eio")
        e.err = EIO;
      else if (e.action == "erofs")
        e.err = EROFS;
      else
        DETNAS_FAIL("DETNAS_FAULT: entry '", item, "': unknown action '", e.action,
                    "' (kill, throw, nan, enospc, eacces, eio, erofs)");
    }
    DETNAS_CHECK(!e.point.empty(), "DETNAS_FAULT: entry '", item, "' names no point");
    out.push_back(std::move(e));
  }
  return out;
}
}  // namespace

Fault hit(std::string_view point, std::string_view file) {
  static std::mutex mu;
  static std::vector<Entry> entries;
  static bool parsed = false;
  std::lock_guard<std::mutex> lock(mu);
  if (!parsed) {
    parsed = true;  // a malformed spec throws once, then injects nothing
    const char* s = std::getenv("DETNAS_FAULT");
    entries = parse(s ? s : "");
  }
  Fault f;
  for (Entry& e : entries) {
    if (e.point != point || (!e.file.empty() && e.file != file)) continue;
    ++e.seen;
    if (e.seen != e.n && !(e.and_later && e.seen > e.n)) continue;
    if (e.action == "kill") std::raise(SIGKILL);
    if (e.action == "throw") DETNAS_FAIL("injected fault (DETNAS_FAULT) at ", point);
    if (!f) f = Fault{e.kind, e.err};
  }
  return f;
}

}  // namespace fault_detail
}  // namespace detnas
