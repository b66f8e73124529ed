// Value checks for numeric command-line options, attached with CLI11's
// ->check(...): a bad value fails at parse time, before any work, with a message
// that names the option and the value, e.g. "--batch: must be > 0, got 0" (CLI11
// prefixes the option name). NaN, infinities and non-numbers fail every check. Used instead of
// CLI::PositiveNumber / CLI::Range, whose messages print DBL_MAX in full.
#pragma once
#include <CLI/CLI.hpp>
#include <cmath>
#include <cstdlib>
#include <functional>
#include <sstream>
#include <string>

namespace detnas::cli {

namespace option_checks_detail {
inline CLI::Validator number_check(const std::string& desc, const std::string& want, std::function<bool(double)> ok) {
  return CLI::Validator(
      [want, ok](std::string& in) -> std::string {
        const char* s = in.c_str();
        char* end = nullptr;
        const double v = std::strtod(s, &end);
        if (in.empty() || end == s || *end != '\0') return "must be a number " + want + ", got '" + in + "'";
        if (!std::isfinite(v) || !ok(v)) return "must be " + want + ", got " + in;
        return std::string();
      },
      desc);
}
inline std::string num(double v) {
  std::ostringstream os;
  os << v;
  return os.str();
}
}  // namespace option_checks_detail

// > 0
inline CLI::Validator positive() {
  return option_checks_detail::number_check("POSITIVE", "> 0", [](double v) { return v > 0; });
}
// >= 0
inline CLI::Validator non_negative() {
  return option_checks_detail::number_check("NONNEGATIVE", ">= 0", [](double v) { return v >= 0; });
}
// >= lo
inline CLI::Validator at_least(double lo) {
  const std::string l = option_checks_detail::num(lo);
  return option_checks_detail::number_check(">=" + l, ">= " + l, [lo](double v) { return v >= lo; });
}
// lo <= v <= hi, or with an open end lo < v / v < hi ("must be in [0, 1), got 1.5")
inline CLI::Validator in_range(double lo, double hi, bool lo_open = false, bool hi_open = false) {
  const std::string range = std::string(lo_open ? "(" : "[") + option_checks_detail::num(lo) + ", " +
                            option_checks_detail::num(hi) + (hi_open ? ")" : "]");
  return option_checks_detail::number_check(
      range, "in " + range, [=](double v) { return (lo_open ? v > lo : v >= lo) && (hi_open ? v < hi : v <= hi); });
}
// any finite number (refuses nan and inf)
inline CLI::Validator finite() {
  return option_checks_detail::number_check("FINITE", "finite", [](double) { return true; });
}

}  // namespace detnas::cli
