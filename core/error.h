// detnas::Error and the check macros used everywhere. core/ is the bottom layer:
// every other folder may include it, it includes nothing of the project.
// Checks stay on in release builds. Only main() turns an Error into a message and
// an exit code; library code never prints or exits.
#pragma once
#include <sstream>
#include <stdexcept>
#include <string>

namespace detnas {

class Error : public std::runtime_error {
 public:
  Error(const std::string& msg, const char* file, int line, const char* expr)
      : std::runtime_error(format(msg, file, line, expr)), msg_(msg), file_(file), line_(line) {}
  const std::string& message() const { return msg_; }  // without file:line
  const char* file() const { return file_; }
  int line() const { return line_; }

 private:
  static std::string format(const std::string& msg, const char* file, int line, const char* expr) {
    std::ostringstream os;
    os << msg;
    if (expr && *expr) os << " [check failed: " << expr << "]";
    os << " (" << file << ":" << line << ")";
    return os.str();
  }
  std::string msg_;
  const char* file_;
  int line_;
};

namespace detail {
template <class... A>
std::string cat(const A&... a) {
  std::ostringstream os;
  (os << ... << a);
  return os.str();
}
}  // namespace detail

}  // namespace detnas

// DETNAS_CHECK(cond, "message parts", value, ...): throws detnas::Error naming the
// expression, file and line. The message should name the op/file/field and value.
#define DETNAS_CHECK(cond, ...)                                                                        \
  do {                                                                                                 \
    if (!(cond)) throw ::detnas::Error(::detnas::detail::cat(__VA_ARGS__), __FILE__, __LINE__, #cond); \
  } while (0)

// DETNAS_FAIL("message parts", ...): unconditional error.
#define DETNAS_FAIL(...) throw ::detnas::Error(::detnas::detail::cat(__VA_ARGS__), __FILE__, __LINE__, "")
