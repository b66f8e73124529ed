// Streaming JSON reading for the COCO files (data/coco_json.h): the memory map,
// the outer-structure scanner and the On-Demand batch reader with its messages.
#include "data/coco_json.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstring>

#include "core/text.h"

namespace detnas::data::coco_json {

std::string Where::str() const {
  std::string s = array;
  if (index >= 0) s += "[" + std::to_string(index) + "]";
  if (key) s += (s.empty() ? "" : ".") + std::string(key);
  return s.empty() ? "top level" : s;
}

// ---------------------------------------------------------------- JsonText

JsonText JsonText::map_file(const std::string& path) {
  JsonText t;
  t.source_ = path;
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  DETNAS_CHECK(fd >= 0, path, ": cannot open: ", std::strerror(errno));
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    DETNAS_FAIL(path, ": not a regular file");
  }
  if (st.st_size > 0) {
    void* p = mmap(nullptr, size_t(st.st_size), PROT_READ, MAP_PRIVATE, fd, 0);
    int err = errno;
    ::close(fd);
    DETNAS_CHECK(p != MAP_FAILED, path, ": cannot map ", st.st_size, " bytes: ", std::strerror(err));
    madvise(p, size_t(st.st_size), MADV_SEQUENTIAL);
    t.map_ = p;
    t.map_len_ = size_t(st.st_size);
    t.text_ = std::string_view(static_cast<const char*>(p), t.map_len_);
  } else {
    ::close(fd);
  }
  return t;
}

JsonText::JsonText(JsonText&& o) noexcept
    : text_(o.text_), source_(std::move(o.source_)), map_(o.map_), map_len_(o.map_len_), released_(o.released_) {
  o.map_ = nullptr;
  o.map_len_ = 0;
}

JsonText::~JsonText() {
  if (map_) munmap(map_, map_len_);
}

void JsonText::release_before(size_t offset) {
  if (!map_) return;
  const size_t page = size_t(sysconf(_SC_PAGESIZE));
  size_t upto = std::min(offset, map_len_) / page * page;
  if (upto <= released_) return;
  madvise(static_cast<char*>(map_) + released_, upto - released_, MADV_DONTNEED);
  released_ = upto;
}

std::string JsonText::position(int64_t offset) const {
  if (offset < 0) return "";
  size_t off = std::min(size_t(offset), text_.size());
  int64_t line = 1;
  size_t line_start = 0;
  for (const char* p = text_.data();
       (p = static_cast<const char*>(std::memchr(p, '\n', off - size_t(p - text_.data()))));) {
    ++line;
    line_start = size_t(++p - text_.data());
  }
  return detail::cat(" at byte ", off, " (line ", line, ", column ", off - line_start + 1, ")");
}

void JsonText::malformed(int64_t offset, const std::string& what) const {
  DETNAS_FAIL(source_, ": malformed JSON", position(offset), ": ", what);
}

// ---------------------------------------------------------------- JsonScanner

namespace {
inline bool is_delim(char c) {
  return c == ',' || c == ']' || c == '}' || c == ' ' || c == '\n' || c == '\r' || c == '\t';
}
inline bool is_special(char c) { return c == '"' || c == '[' || c == ']' || c == '{' || c == '}'; }
}  // namespace

size_t JsonScanner::skip_string(size_t at) const {
  size_t j = at + 1;
  for (;;) {
    const void* q = j < s_.size() ? std::memchr(s_.data() + j, '"', s_.size() - j) : nullptr;
    if (!q) fail(at, "unterminated string");
    size_t k = size_t(static_cast<const char*>(q) - s_.data()), bs = 0;
    while (k - bs > at + 1 && s_[k - bs - 1] == '\\') ++bs;
    if (bs % 2 == 0) return k + 1;
    j = k + 1;
  }
}

std::pair<size_t, size_t> JsonScanner::skip_value() {
  ws();
  const size_t b = i_, n = s_.size();
  if (i_ >= n) fail(i_, "expected a value, found the end of the input");
  char c = s_[i_];
  if (c == '"') {
    i_ = skip_string(i_);
    return {b, i_};
  }
  if (c == '[' || c == '{') {
    char stack[1024];
    int depth = 0;
    for (;;) {
      while (i_ < n && !is_special(s_[i_])) ++i_;
      if (i_ >= n) fail(b, std::string("unclosed '") + c + "'");
      char x = s_[i_];
      if (x == '"') {
        i_ = skip_string(i_);
        continue;
      }
      if (x == '[' || x == '{') {
        if (depth == 1024) fail(i_, "nesting deeper than 1024 levels");
        stack[depth++] = x;
      } else if (depth == 0 || stack[depth - 1] != (x == ']' ? '[' : '{')) {
        fail(i_, std::string("unexpected '") + x + "'");
      } else {
        --depth;
      }
      ++i_;
      if (depth == 0) return {b, i_};
    }
  }
  while (i_ < n && !is_delim(s_[i_])) ++i_;
  if (i_ == b) fail(i_, std::string("unexpected '") + c + "'");
  return {b, i_};
}

bool JsonScanner::begin_object() {
  ws();
  if (i_ >= s_.size()) fail(i_, "expected a JSON value, found the end of the input");
  if (s_[i_] != '{') return false;
  ++i_;
  first_ = true;
  return true;
}

bool JsonScanner::begin_array() {
  ws();
  if (i_ >= s_.size()) fail(i_, "expected a JSON value, found the end of the input");
  if (s_[i_] != '[') return false;
  ++i_;
  array_first_ = true;
  array_done_ = false;
  index_ = 0;
  return true;
}

bool JsonScanner::next_key(std::string& key) {
  ws();
  if (i_ >= s_.size()) fail(i_, "unexpected end of the input inside the top-level object");
  if (s_[i_] == '}') {
    ++i_;
    return false;
  }
  if (!first_) {
    if (s_[i_] != ',') fail(i_, "expected ',' or '}' after a member of the top-level object");
    ++i_;
    ws();
  }
  first_ = false;
  if (i_ >= s_.size() || s_[i_] != '"') fail(i_, "expected a key (a string)");
  size_t e = skip_string(i_);
  key.assign(s_.data() + i_ + 1, e - i_ - 2);
  for (char c : key)
    if (static_cast<unsigned char>(c) < 0x20) fail(i_, "control character in a key");
  i_ = e;
  ws();
  if (i_ >= s_.size() || s_[i_] != ':') fail(i_, "expected ':' after the key \"" + key + "\"");
  ++i_;
  ws();
  return true;
}

bool JsonScanner::next_batch(JsonBatch& b, size_t max_bytes) {
  b = JsonBatch{};
  b.first_index = index_;
  while (!array_done_) {
    ws();
    if (i_ >= s_.size()) fail(i_, "unexpected end of the input inside an array");
    if (s_[i_] == ']') {
      ++i_;
      array_done_ = true;
      break;
    }
    if (!array_first_) {
      if (s_[i_] != ',') fail(i_, "expected ',' or ']' after an array element");
      if (b.count > 0 && b.end - b.begin >= max_bytes) break;  // the comma starts the next batch
      ++i_;
    }
    array_first_ = false;
    auto [vb, ve] = skip_value();  // after a comma: a value must follow ("[1,]" fails here)
    if (b.count == 0) b.begin = vb;
    b.end = ve;
    b.count++;
    index_++;
  }
  return b.count > 0;
}

void JsonScanner::expect_end() {
  ws();
  if (i_ < s_.size()) fail(i_, "unexpected content after the end of the JSON value");
}

std::string JsonScanner::describe_next() {
  ws();
  if (i_ >= s_.size()) return "the end of the input";
  switch (s_[i_]) {
    case '{':
      return "an object";
    case '[':
      return "an array";
    case '"':
      return "a string";
    default:
      break;
  }
  size_t e = i_;
  while (e < s_.size() && e - i_ < 40 && !is_delim(s_[e])) ++e;
  return printable_excerpt(s_.substr(i_, e - i_), 40);
}

// ---------------------------------------------------------------- JsonReader

namespace {

// Offset of the first byte that is not valid UTF-8, or -1.
int64_t first_invalid_utf8(std::string_view s) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const size_t n = s.size();
  for (size_t i = 0; i < n;) {
    unsigned c = p[i];
    if (c < 0x80) {
      ++i;
      continue;
    }
    size_t len = c >= 0xC2 && c <= 0xDF ? 2 : c >= 0xE0 && c <= 0xEF ? 3 : c >= 0xF0 && c <= 0xF4 ? 4 : 0;
    if (len == 0 || i + len > n) return int64_t(i);
    unsigned lo = c == 0xE0 ? 0xA0 : c == 0xF0 ? 0x90 : 0x80;
    unsigned hi = c == 0xED ? 0x9F : c == 0xF4 ? 0x8F : 0xBF;
    if (p[i + 1] < lo || p[i + 1] > hi) return int64_t(i);
    for (size_t k = 2; k < len; ++k)
      if ((p[i + k] & 0xC0) != 0x80) return int64_t(i);
    i += len;
  }
  return -1;
}

// simdjson's stage 1 (run by iterate()) reports string and UTF-8 errors without
// a position; find it with a plain scan (only ever run on a bad batch).
int64_t locate_stage1_error(std::string_view s, error_code e) {
  if (e == simdjson::UTF8_ERROR) return first_invalid_utf8(s);
  bool in_str = false;
  size_t start = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    if (in_str) {
      if (c == '\\')
        ++i;
      else if (c == '"')
        in_str = false;
      else if (c < 0x20 && e == simdjson::UNESCAPED_CHARS)
        return int64_t(i);
    } else if (c == '"') {
      in_str = true;
      start = i;
    }
  }
  return in_str && e == simdjson::UNCLOSED_STRING ? int64_t(start) : -1;
}

}  // namespace

JsonReader::JsonReader(const JsonText& doc, size_t begin, size_t end, std::vector<char>& buf, od::parser& parser,
                       const char* context)
    : doc_(doc), base_(int64_t(begin) - 1) {
  const size_t len = end - begin + 2;
  if (buf.size() < len + simdjson::SIMDJSON_PADDING) buf.resize(len + simdjson::SIMDJSON_PADDING);
  buf[0] = '[';
  std::memcpy(buf.data() + 1, doc.text().data() + begin, end - begin);
  buf[len - 1] = ']';
  std::memset(buf.data() + len, ' ', simdjson::SIMDJSON_PADDING);
  batch_ = std::string_view(buf.data(), len);
  error_code e = parser.iterate(simdjson::padded_string_view(buf.data(), len, buf.size())).get(doc_od_);
  if (e) malformed(e, Where{context, -1, nullptr}, locate_stage1_error(batch_, e));
}

void JsonReader::malformed(error_code e, const Where& w, int64_t batch_offset) {
  if (batch_offset == -2) {
    const char* p = nullptr;
    batch_offset = doc_od_.current_location().get(p) ? int64_t(batch_.size()) - 1 : int64_t(p - batch_.data());
  }
  int64_t off = batch_offset < 0 ? -1 : std::max<int64_t>(base_ + batch_offset, 0);
  DETNAS_FAIL(doc_.source(), ": malformed JSON", doc_.position(off), " (in ", w.str(),
              "): ", simdjson::error_message(e));
}

void JsonReader::malformed_token(od::value& v, const Where& w) {
  int64_t t = token_offset(v);
  DETNAS_FAIL(doc_.source(), ": malformed JSON", doc_.position(t < 0 ? -1 : base_ + t), " (in ", w.str(),
              "): invalid value '", token_text(v), "'");
}

void JsonReader::check_end() {
  const char* p = nullptr;
  if (!doc_od_.current_location().get(p))
    DETNAS_FAIL(doc_.source(), ": malformed JSON", doc_.position(base_ + (p - batch_.data())),
                ": unexpected content after the end of the JSON value");
}

void JsonReader::validate_all(const Where& w) {
  od::array arr;
  if (error_code e = doc_od_.get_array().get(arr)) malformed(e, w);
  for (auto er : arr) {
    od::value ev;
    if (error_code e = er.get(ev)) malformed(e, w);
    skip(ev, w);
  }
  check_end();
}

void JsonReader::skip(od::value& v, const Where& w) {
  od::json_type t;
  if (v.type().get(t)) malformed_token(v, w);
  error_code e = simdjson::SUCCESS;
  switch (t) {
    case od::json_type::array: {
      od::array arr;
      if ((e = v.get_array().get(arr))) break;
      for (auto er : arr) {
        od::value ev;
        if ((e = er.get(ev))) malformed(e, w);
        skip(ev, w);
      }
      break;
    }
    case od::json_type::object: {
      od::object obj;
      if ((e = v.get_object().get(obj))) break;
      for (auto fr : obj) {
        od::field fld;
        if ((e = std::move(fr).get(fld))) malformed(e, w);
        skip(fld.value(), w);
      }
      break;
    }
    case od::json_type::string: {
      std::string_view s;
      e = v.get_string().get(s);
      break;
    }
    case od::json_type::number: {
      double x;  // numbers beyond the double range are errors here too
      e = v.get_double().get(x);
      break;
    }
    case od::json_type::boolean: {
      bool b;
      e = v.get_bool().get(b);
      break;
    }
    case od::json_type::null: {
      bool is_null = false;
      e = v.is_null().get(is_null);
      if (!e && !is_null) e = simdjson::N_ATOM_ERROR;
      break;
    }
  }
  if (e == simdjson::STRING_ERROR || e == simdjson::UTF8_ERROR) malformed(e, w, token_offset(v));
  if (e) malformed_token(v, w);
}

int32_t JsonReader::int32(od::value& v, const Where& w) {
  int64_t x = integer(v, w);
  if (x < INT32_MIN || x > INT32_MAX) fail(w, "value " + std::to_string(x) + " out of the 32-bit range");
  return int32_t(x);
}

CocoBox JsonReader::box(od::value& v, const Where& w) {
  od::array arr;
  if (error_code e = v.get_array().get(arr)) bad_value(e, v, w, "4 numbers [x, y, w, h]");
  double b[4] = {0, 0, 0, 0};
  int n = 0;
  for (auto er : arr) {
    od::value ev;
    if (error_code e = er.get(ev)) malformed(e, w);
    double x = 0;
    if (error_code e = ev.get_double().get(x)) {
      if (e != simdjson::INCORRECT_TYPE || !valid_scalar(ev)) malformed_token(ev, w);
      fail(w, "expected 4 numbers [x, y, w, h], element " + std::to_string(n) + " is " + describe(ev));
    }
    if (n < 4) b[n] = x;
    ++n;
  }
  if (n != 4) fail(w, "expected 4 numbers [x, y, w, h], got " + std::to_string(n) + " elements");
  return CocoBox{b[0], b[1], b[2], b[3]};
}

void JsonReader::bad_value(error_code e, od::value& v, const Where& w, const char* expected) {
  if (!valid_scalar(v)) malformed_token(v, w);
  if (e == simdjson::INCORRECT_TYPE || e == simdjson::NUMBER_ERROR || e == simdjson::NUMBER_OUT_OF_RANGE)
    fail(w, std::string("expected ") + expected + ", got " + describe(v));
  malformed(e, w);
}

bool JsonReader::valid_scalar(od::value& v) {
  od::json_type t;
  if (v.type().get(t)) return false;
  if (t == od::json_type::number) {
    double x;
    return !v.get_double().get(x);
  }
  if (t == od::json_type::boolean) {
    bool b;
    return !v.get_bool().get(b);
  }
  if (t == od::json_type::null) {
    bool n = false;
    return !v.is_null().get(n) && n;
  }
  return true;
}

int64_t JsonReader::token_offset(od::value& v) const {
  std::string_view raw = v.raw_json_token();
  if (raw.data() < batch_.data() || raw.data() > batch_.data() + batch_.size()) return -1;
  return int64_t(raw.data() - batch_.data());
}

std::string JsonReader::describe(od::value& v) {
  od::json_type t;
  if (v.type().get(t)) return "invalid JSON";
  switch (t) {
    case od::json_type::array:
      return "an array";
    case od::json_type::object:
      return "an object";
    case od::json_type::string:
      return "a string";
    default:
      break;
  }
  return token_text(v);
}

std::string JsonReader::token_text(od::value& v) {
  std::string_view raw = v.raw_json_token();
  while (!raw.empty() && (raw.back() == ' ' || raw.back() == '\n' || raw.back() == '\r' || raw.back() == '\t'))
    raw.remove_suffix(1);
  return printable_excerpt(raw, 40);
}

}  // namespace detnas::data::coco_json
