// Text helpers for error messages (below kernels/, like core/error.h).
#pragma once
#include <cstdio>
#include <string>
#include <string_view>

namespace detnas {

// Up to `max` bytes of s for an error message, bytes outside printable ASCII as
// \xNN, "..." when cut: a binary file given where text was expected (a JPEG as
// JSON or as an --arch file) must not put raw bytes, or a NUL that cuts the
// printed message short, into the error.
inline std::string printable_excerpt(std::string_view s, size_t max) {
  std::string r;
  for (size_t i = 0; i < s.size() && i < max; ++i) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    if (c >= 0x20 && c < 0x7f) {
      r += char(c);
    } else {
      char b[8];
      std::snprintf(b, sizeof b, "\\x%02x", c);
      r += b;
    }
  }
  if (s.size() > max) r += "...";
  return r;
}

}  // namespace detnas
