// JsonWriter: a small streaming JSON writer for results files, JSON Lines logs
// and checkpoint sidecars. It appends to an in-memory buffer and checks the
// structure as it goes (keys only inside objects, every value in an object has a
// key, ends match begins). For big outputs, take_buffer() hands over the text
// written so far and keeps the nesting state, so a caller can stream to a file.
// Not a parser (that is simdjson) and not a DOM.
//
// Numbers: doubles are written with the shortest of %.15g/%.16g/%.17g that reads
// back to the same double (exact round trip, and 0.1 stays "0.1"); floats with the
// shortest %.6g..%.9g that reads back to the same float; value(v, Precision{n})
// uses %.{n}g. NaN and infinities are not JSON: they are written as null.
// Strings: '"', '\\' and control characters are escaped; other bytes (UTF-8) pass
// through unchanged. Formatting uses the "C" locale's '.' regardless of setlocale.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace detnas::data {

enum class JsonStyle { Compact, Pretty };  // Pretty: 2-space indent, one member per line
struct Precision {
  int significant_digits;  // 1..17, used as %.{n}g
};

class JsonWriter {
 public:
  explicit JsonWriter(JsonStyle style = JsonStyle::Compact) : style_(style) {}

  JsonWriter& begin_object();
  JsonWriter& end_object();
  JsonWriter& begin_array();
  JsonWriter& end_array();
  JsonWriter& key(std::string_view k);

  JsonWriter& value(std::string_view s);
  JsonWriter& value(const char* s) { return value(std::string_view(s)); }
  JsonWriter& value(const std::string& s) { return value(std::string_view(s)); }
  JsonWriter& value(double v);
  JsonWriter& value(float v);
  JsonWriter& value(double v, Precision p);
  JsonWriter& value(int v) { return write_int(v); }
  JsonWriter& value(long v) { return write_int(v); }
  JsonWriter& value(long long v) { return write_int(v); }
  JsonWriter& value(unsigned v) { return write_uint(v); }
  JsonWriter& value(unsigned long v) { return write_uint(v); }
  JsonWriter& value(unsigned long long v) { return write_uint(v); }
  JsonWriter& value(bool b) { return value_bool(b); }  // true/false, never 1/0
  JsonWriter& value_bool(bool b);
  JsonWriter& null();
  // A pre-formatted JSON value inserted verbatim (the caller vouches for it).
  JsonWriter& raw_value(std::string_view json);

  // key(k).value(v) in one call.
  template <class T>
  JsonWriter& field(std::string_view k, const T& v) {
    key(k);
    return value(v);
  }
  // An array of numbers or strings.
  template <class T>
  JsonWriter& array(const std::vector<T>& values) {
    begin_array();
    for (const auto& v : values) value(v);
    return end_array();
  }

  // True when exactly one complete top-level value has been written.
  bool complete() const { return stack_.empty() && top_done_; }
  // The whole text; throws if the document is not complete.
  const std::string& str() const;
  // Hands over the text written so far (complete or not) and clears the buffer;
  // the nesting state is kept so writing can continue (streaming to a file).
  std::string take_buffer();
  // Starts a new document (for JSON Lines: one complete record per line).
  void reset();

 private:
  enum class Ctx : uint8_t { Object, Array };
  JsonWriter& write_int(long long v);
  JsonWriter& write_uint(unsigned long long v);
  void before_value(const char* what);
  void newline_indent(size_t depth);
  void write_string(std::string_view s);

  JsonStyle style_;
  std::string buf_;
  std::vector<Ctx> stack_;
  std::vector<bool> has_items_;  // per open container: something written already
  bool key_pending_ = false;
  bool top_done_ = false;
};

// Formats a double exactly as JsonWriter::value(double) would ("null" if not finite).
std::string json_number(double v);
// Escapes s as a JSON string literal, quotes included.
std::string json_quote(std::string_view s);

}  // namespace detnas::data
