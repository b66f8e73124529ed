// JsonWriter (see json_writer.h): structure checks, escaping, exact number text.
#include "data/json_writer.h"

#include <clocale>
#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "core/error.h"

namespace detnas::data {

namespace {

// printf-style %g is locale dependent; JSON needs '.'.
void fix_decimal_point(char* s) {
  const char* dp = std::localeconv()->decimal_point;
  if (!dp || (dp[0] == '.' && dp[1] == 0)) return;
  for (char* p = s; *p; ++p)
    if (*p == dp[0]) *p = '.';
}

std::string format_g(double v, int digits) {
  char tmp[40];
  std::snprintf(tmp, sizeof tmp, "%.*g", digits, v);
  fix_decimal_point(tmp);
  return tmp;
}

std::string format_shortest_double(double v) {
  char tmp[40];
  for (int digits = 15; digits <= 17; ++digits) {
    std::snprintf(tmp, sizeof tmp, "%.*g", digits, v);
    if (digits == 17 || std::strtod(tmp, nullptr) == v) break;
  }
  fix_decimal_point(tmp);
  return tmp;
}

std::string format_shortest_float(float v) {
  char tmp[40];
  for (int digits = 6; digits <= 9; ++digits) {
    std::snprintf(tmp, sizeof tmp, "%.*g", digits, double(v));
    if (digits == 9 || std::strtof(tmp, nullptr) == v) break;
  }
  fix_decimal_point(tmp);
  return tmp;
}

void append_escaped(std::string& out, std::string_view s) {
  static const char* hex = "0123456789abcdef";
  out += '"';
  for (char ch : s) {
    unsigned char c = static_cast<unsigned char>(ch);
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\b':
        out += "\\b";
        break;
      case '\f':
        out += "\\f";
        break;
      default:
        if (c < 0x20) {
          out += "\\u00";
          out += hex[c >> 4];
          out += hex[c & 15];
        } else {
          out += ch;
        }
    }
  }
  out += '"';
}

}  // namespace

std::string json_number(double v) { return std::isfinite(v) ? format_shortest_double(v) : "null"; }

std::string json_quote(std::string_view s) {
  std::string out;
  append_escaped(out, s);
  return out;
}

void JsonWriter::newline_indent(size_t depth) {
  if (style_ != JsonStyle::Pretty) return;
  buf_ += '\n';
  buf_.append(2 * depth, ' ');
}

void JsonWriter::before_value(const char* what) {
  if (stack_.empty()) {
    DETNAS_CHECK(!top_done_, "JsonWriter: ", what,
                 " after the complete top-level value (call reset() for a new document)");
    return;
  }
  if (stack_.back() == Ctx::Object) {
    DETNAS_CHECK(key_pending_, "JsonWriter: ", what, " inside an object needs a key() first");
    key_pending_ = false;
    return;
  }
  if (has_items_.back()) buf_ += ',';
  has_items_.back() = true;
  newline_indent(stack_.size());
}

JsonWriter& JsonWriter::key(std::string_view k) {
  DETNAS_CHECK(!stack_.empty() && stack_.back() == Ctx::Object, "JsonWriter: key \"", k, "\" outside an object");
  DETNAS_CHECK(!key_pending_, "JsonWriter: key \"", k, "\" follows another key without a value");
  if (has_items_.back()) buf_ += ',';
  has_items_.back() = true;
  newline_indent(stack_.size());
  append_escaped(buf_, k);
  buf_ += style_ == JsonStyle::Pretty ? ": " : ":";
  key_pending_ = true;
  return *this;
}

JsonWriter& JsonWriter::begin_object() {
  before_value("begin_object");
  buf_ += '{';
  stack_.push_back(Ctx::Object);
  has_items_.push_back(false);
  return *this;
}

JsonWriter& JsonWriter::begin_array() {
  before_value("begin_array");
  buf_ += '[';
  stack_.push_back(Ctx::Array);
  has_items_.push_back(false);
  return *this;
}

JsonWriter& JsonWriter::end_object() {
  DETNAS_CHECK(!stack_.empty() && stack_.back() == Ctx::Object,
               "JsonWriter: end_object without a matching begin_object");
  DETNAS_CHECK(!key_pending_, "JsonWriter: end_object right after a key (the key has no value)");
  bool had = has_items_.back();
  stack_.pop_back();
  has_items_.pop_back();
  if (had) newline_indent(stack_.size());
  buf_ += '}';
  if (stack_.empty()) top_done_ = true;
  return *this;
}

JsonWriter& JsonWriter::end_array() {
  DETNAS_CHECK(!stack_.empty() && stack_.back() == Ctx::Array, "JsonWriter: end_array without a matching begin_array");
  bool had = has_items_.back();
  stack_.pop_back();
  has_items_.pop_back();
  if (had) newline_indent(stack_.size());
  buf_ += ']';
  if (stack_.empty()) top_done_ = true;
  return *this;
}

// A scalar written at top level completes the document.
#define DETNAS_JSON_SCALAR(what, text_expr) \
  before_value(what);                       \
  text_expr;                                \
  if (stack_.empty()) top_done_ = true;     \
  return *this

JsonWriter& JsonWriter::value(std::string_view s) { DETNAS_JSON_SCALAR("string value", append_escaped(buf_, s)); }
JsonWriter& JsonWriter::value(double v) { DETNAS_JSON_SCALAR("number", buf_ += json_number(v)); }
JsonWriter& JsonWriter::value(float v) {
  DETNAS_JSON_SCALAR("number", buf_ += std::isfinite(v) ? format_shortest_float(v) : std::string("null"));
}
JsonWriter& JsonWriter::value(double v, Precision p) {
  DETNAS_CHECK(p.significant_digits >= 1 && p.significant_digits <= 17,
               "JsonWriter: precision must be 1..17 significant digits, got ", p.significant_digits);
  DETNAS_JSON_SCALAR("number", buf_ += std::isfinite(v) ? format_g(v, p.significant_digits) : std::string("null"));
}
JsonWriter& JsonWriter::write_int(long long v) { DETNAS_JSON_SCALAR("number", buf_ += std::to_string(v)); }
JsonWriter& JsonWriter::write_uint(unsigned long long v) { DETNAS_JSON_SCALAR("number", buf_ += std::to_string(v)); }
JsonWriter& JsonWriter::value_bool(bool b) { DETNAS_JSON_SCALAR("boolean", buf_ += b ? "true" : "false"); }
JsonWriter& JsonWriter::null() { DETNAS_JSON_SCALAR("null", buf_ += "null"); }
JsonWriter& JsonWriter::raw_value(std::string_view json) {
  DETNAS_CHECK(!json.empty(), "JsonWriter: raw_value with empty text");
  DETNAS_JSON_SCALAR("raw value", buf_.append(json.data(), json.size()));
}
#undef DETNAS_JSON_SCALAR

const std::string& JsonWriter::str() const {
  DETNAS_CHECK(complete(), "JsonWriter: document is incomplete (", stack_.size(), " open containers",
               key_pending_ ? ", a key without a value" : "", top_done_ || !stack_.empty() ? "" : ", nothing written",
               ")");
  return buf_;
}

std::string JsonWriter::take_buffer() {
  std::string out;
  out.swap(buf_);
  return out;
}

void JsonWriter::reset() {
  buf_.clear();
  stack_.clear();
  has_items_.clear();
  key_pending_ = false;
  top_done_ = false;
}

}  // namespace detnas::data
