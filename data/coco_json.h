// Streaming JSON reading for the COCO files (internal to data/coco.cpp).
// A byte scanner walks the outer structure (the root object's keys, the elements
// of its big arrays) over a memory-mapped file and hands simdjson On-Demand a few
// megabytes of elements at a time, so memory is the parsed structs plus one
// batch, not the 450 MB text and its structural index. Every simdjson error
// becomes a detnas::Error naming the file, the field path ("annotations[12].bbox")
// and, for malformed JSON, the byte offset, line and column in the file.
// Not a general JSON library: it only knows what coco.cpp needs.
#pragma once
#include <simdjson.h>

#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/error.h"
#include "data/coco.h"

namespace detnas::data::coco_json {

namespace od = simdjson::ondemand;
using simdjson::error_code;

// A field path for messages: array[index].key ("top level" when all are empty).
struct Where {
  const char* array;
  int64_t index;    // -1: the array itself
  const char* key;  // nullptr: the element itself
  std::string str() const;
};

// The whole document: a read-only map of a file, or a borrowed string.
class JsonText {
 public:
  static JsonText map_file(const std::string& path);
  JsonText(std::string_view text, std::string source) : text_(text), source_(std::move(source)) {}
  JsonText(JsonText&& o) noexcept;
  JsonText(const JsonText&) = delete;
  JsonText& operator=(const JsonText&) = delete;
  ~JsonText();

  std::string_view text() const { return text_; }
  const std::string& source() const { return source_; }
  // Gives the mapped pages before `offset` back (they stay in the page cache):
  // what has been parsed no longer counts towards this process's memory.
  void release_before(size_t offset);
  // " at byte N (line L, column C)" for a 0-based offset ("" if negative).
  std::string position(int64_t offset) const;
  [[noreturn]] void malformed(int64_t offset, const std::string& what) const;

 private:
  JsonText() = default;
  std::string_view text_;
  std::string source_;
  void* map_ = nullptr;
  size_t map_len_ = 0, released_ = 0;
};

// Elements first_index .. first_index+count-1 of an array: text()[begin, end)
// holds them with their separating commas.
struct JsonBatch {
  size_t begin = 0, end = 0;
  int64_t first_index = 0, count = 0;
};

// The byte-level walk of the outer structure. It checks strings and bracket
// nesting; what it hands on is checked in full by simdjson.
class JsonScanner {
 public:
  explicit JsonScanner(const JsonText& doc) : doc_(doc), s_(doc.text()) {}
  // Each returns false if the next value is not of that type (use describe_next()).
  bool begin_object();
  bool begin_array();
  bool next_key(std::string& key);                  // false at the closing '}'
  bool next_batch(JsonBatch& b, size_t max_bytes);  // false once the array has ended
  std::pair<size_t, size_t> skip_value();           // [begin, end) of the next value
  void expect_end();                                // only whitespace may follow
  std::string describe_next();                      // "an object", "a string", "5", ...

 private:
  void ws() {
    while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\n' || s_[i_] == '\r' || s_[i_] == '\t')) ++i_;
  }
  size_t skip_string(size_t at) const;  // at: the opening quote; returns one past the closing quote
  [[noreturn]] void fail(size_t at, const std::string& what) const { doc_.malformed(int64_t(at), what); }

  const JsonText& doc_;
  std::string_view s_;
  size_t i_ = 0;
  bool first_ = true;        // before the first member of the (root) object
  bool array_first_ = true;  // before the first element of the current array
  bool array_done_ = false;
  int64_t index_ = 0;  // elements of the current array seen so far
};

// Walks one batch with simdjson On-Demand. The batch text is doc[begin, end)
// wrapped in "[...]", copied into `buf` (reused between batches) with padding;
// `context` names it in messages ("annotations").
class JsonReader {
 public:
  JsonReader(const JsonText& doc, size_t begin, size_t end, std::vector<char>& buf, od::parser& parser,
             const char* context);

  [[noreturn]] void fail(const Where& w, const std::string& what) const {
    DETNAS_FAIL(doc_.source(), ": ", w.str(), ": ", what);
  }
  [[noreturn]] void malformed(error_code e, const Where& w, int64_t batch_offset = -2);
  [[noreturn]] void malformed_token(od::value& v, const Where& w);

  void require(unsigned seen, std::initializer_list<std::pair<unsigned, const char*>> keys, const Where& w) const {
    for (const auto& [bit, name] : keys)
      if (!(seen & bit)) fail(w, std::string("missing key \"") + name + "\"");
  }

  // f(object&, index) for each element of the batch; index counts from first_index.
  template <class F>
  void for_each_object(const char* name, int64_t first_index, F&& f) {
    od::array arr;
    if (error_code e = doc_od_.get_array().get(arr)) malformed(e, Where{name, -1, nullptr});
    int64_t i = first_index;
    for (auto er : arr) {
      od::value ev;
      if (error_code e = er.get(ev)) malformed(e, Where{name, i, nullptr});
      od::object o;
      if (error_code e = ev.get_object().get(o)) bad_value(e, ev, Where{name, i, nullptr}, "an object");
      f(o, i);
      ++i;
    }
    check_end();
  }

  // Validates every element of the batch without keeping anything.
  void validate_all(const Where& w);

  // f(raw key, value&) -> true if it read the value; the others are validated and skipped.
  template <class F>
  void for_each_field(od::object& o, const Where& w, F&& f) {
    for (auto fr : o) {
      od::field fld;
      if (error_code e = std::move(fr).get(fld)) malformed(e, w);
      if (!f(fld.key(), fld.value())) skip(fld.value(), w);
    }
  }

  // Walks a value nobody reads (segmentation, info, ...) so that malformed JSON
  // inside it is still an error: On-Demand alone would skip it by counting brackets.
  void skip(od::value& v, const Where& w);

  int64_t integer(od::value& v, const Where& w) {
    int64_t x = 0;
    if (error_code e = v.get_int64().get(x)) bad_value(e, v, w, "an integer");
    return x;
  }
  int32_t int32(od::value& v, const Where& w);
  double number(od::value& v, const Where& w) {
    double x = 0;
    if (error_code e = v.get_double().get(x)) bad_value(e, v, w, "a number");
    return x;
  }
  std::string_view string(od::value& v, const Where& w) {
    std::string_view s;
    if (error_code e = v.get_string().get(s)) bad_value(e, v, w, "a string");
    return s;
  }
  CocoBox box(od::value& v, const Where& w);

 private:
  void check_end();
  // A value of the wrong type is a type error; a token that is not JSON at all
  // (nul, 1., NaN, a number beyond the double range) is malformed JSON.
  [[noreturn]] void bad_value(error_code e, od::value& v, const Where& w, const char* expected);
  static bool valid_scalar(od::value& v);
  int64_t token_offset(od::value& v) const;
  static std::string describe(od::value& v);
  static std::string token_text(od::value& v);

  const JsonText& doc_;
  std::string_view batch_;
  int64_t base_;  // offset in the document of batch byte 0 (the added '[')
  od::document doc_od_;
};

}  // namespace detnas::data::coco_json
