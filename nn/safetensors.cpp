// safetensors writer (hand-written JSON header) and reader (simdjson).
#include "nn/safetensors.h"

#include <simdjson.h>

#include <cstring>
#include <set>
#include <sstream>

#include "runtime/fs.h"

namespace detnas::nn {

namespace {
std::string json_escape(const std::string& s) {
  std::string o;
  for (char c : s) {
    switch (c) {
      case '"':
        o += "\\\"";
        break;
      case '\\':
        o += "\\\\";
        break;
      case '\n':
        o += "\\n";
        break;
      case '\t':
        o += "\\t";
        break;
      case '\r':
        o += "\\r";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char b[8];
          std::snprintf(b, sizeof b, "\\u%04x", c);
          o += b;
        } else {
          o += c;
        }
    }
  }
  return o;
}
}  // namespace

void save_safetensors(const std::string& path, const NamedTensors& tensors,
                      const std::map<std::string, std::string>& metadata) {
  std::set<std::string> seen;
  std::ostringstream h;
  h << "{";
  bool first = true;
  if (!metadata.empty()) {
    h << "\"__metadata__\":{";
    bool f2 = true;
    for (auto& kv : metadata) {
      h << (f2 ? "" : ",") << "\"" << json_escape(kv.first) << "\":\"" << json_escape(kv.second) << "\"";
      f2 = false;
    }
    h << "}";
    first = false;
  }
  int64_t off = 0;
  for (auto& [name, t] : tensors) {
    DETNAS_CHECK(!name.empty() && name != "__metadata__", "save_safetensors ", path, ": bad tensor name '", name, "'");
    DETNAS_CHECK(seen.insert(name).second, "save_safetensors ", path, ": duplicate tensor name '", name, "'");
    int64_t bytes = t.numel() * int64_t(sizeof(float));
    h << (first ? "" : ",") << "\"" << json_escape(name) << "\":{\"dtype\":\"F32\",\"shape\":[";
    for (size_t i = 0; i < t.shape().size(); ++i) h << (i ? "," : "") << t.shape()[i];
    h << "],\"data_offsets\":[" << off << "," << off + bytes << "]}";
    off += bytes;
    first = false;
  }
  h << "}";
  std::string header = h.str();
  while (header.size() % 8) header += ' ';  // keeps the data 8-byte aligned
  std::string out;
  out.reserve(8 + header.size() + size_t(off));
  uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) out += char((n >> (8 * i)) & 0xff);
  out += header;
  for (auto& [name, t] : tensors) {
    rt::Tensor c = t.device() == rt::Device::CPU && t.is_contiguous() ? t : t.clone().to(rt::Device::CPU);
    out.append(reinterpret_cast<const char*>(c.data()), size_t(c.numel()) * sizeof(float));
  }
  write_file_atomic(path, out);
}

const rt::Tensor* SafetensorsFile::find(const std::string& name) const {
  for (auto& kv : tensors)
    if (kv.first == name) return &kv.second;
  return nullptr;
}

SafetensorsFile parse_safetensors(const std::string& bytes, const std::string& what) {
  DETNAS_CHECK(bytes.size() >= 8, what, ": not a safetensors file (", bytes.size(), " bytes, truncated?)");
  uint64_t n = 0;
  for (int i = 0; i < 8; ++i) n |= uint64_t(static_cast<unsigned char>(bytes[size_t(i)])) << (8 * i);
  DETNAS_CHECK(n >= 2 && n <= bytes.size() - 8, what, ": header length ", n, " does not fit in a file of ",
               bytes.size(), " bytes (truncated or not a safetensors file)");
  const size_t data_start = 8 + size_t(n);
  const size_t data_len = bytes.size() - data_start;
  simdjson::dom::parser parser;
  simdjson::padded_string header(bytes.data() + 8, size_t(n));
  simdjson::dom::element doc;
  auto err = parser.parse(header).get(doc);
  DETNAS_CHECK(!err, what, ": header is not valid JSON (", simdjson::error_message(err), ")");
  simdjson::dom::object root;
  DETNAS_CHECK(!doc.get(root), what, ": header is not a JSON object");
  SafetensorsFile f;
  std::vector<std::pair<uint64_t, uint64_t>> ranges;
  for (auto kv : root) {
    std::string name(kv.key);
    if (name == "__metadata__") {
      simdjson::dom::object md;
      DETNAS_CHECK(!kv.value.get(md), what, ": __metadata__ is not an object");
      for (auto m : md) {
        std::string_view v;
        DETNAS_CHECK(!m.value.get(v), what, ": __metadata__.", std::string(m.key), " is not a string");
        f.metadata[std::string(m.key)] = std::string(v);
      }
      continue;
    }
    simdjson::dom::object o;
    DETNAS_CHECK(!kv.value.get(o), what, ": entry '", name, "' is not an object");
    std::string_view dtype;
    DETNAS_CHECK(!o["dtype"].get(dtype), what, ": tensor '", name, "' has no dtype");
    DETNAS_CHECK(dtype == "F32", what, ": tensor '", name, "' has dtype ", std::string(dtype),
                 "; detnas reads F32 only");
    simdjson::dom::array shape, offs;
    DETNAS_CHECK(!o["shape"].get(shape), what, ": tensor '", name, "' has no shape list");
    DETNAS_CHECK(!o["data_offsets"].get(offs) && offs.size() == 2, what, ": tensor '", name,
                 "' needs data_offsets [begin, end]");
    rt::Shape s;
    // The product of the nonzero entries: with a zero entry the tensor is empty,
    // but its strides (products of trailing entries) are still computed.
    int64_t extent = 1;
    for (auto d : shape) {
      int64_t v;
      DETNAS_CHECK(!d.get(v) && v >= 0, what, ": tensor '", name, "' has a bad shape entry");
      // Checked here: shape_numel, the strides and the byte count below must not overflow.
      DETNAS_CHECK(v == 0 || extent <= INT64_MAX / int64_t(sizeof(float)) / v, what, ": tensor '", name,
                   "' has a shape whose size overflows 64 bits (entry ", s.size(), " = ", v, ")");
      if (v > 0) extent *= v;
      s.push_back(v);
    }
    uint64_t b = 0, e = 0;
    DETNAS_CHECK(!offs.at(0).get(b) && !offs.at(1).get(e) && b <= e, what, ": tensor '", name,
                 "' has bad data_offsets");
    DETNAS_CHECK(e <= data_len, what, ": tensor '", name, "' data [", b, ", ", e,
                 ") extends past the end of the data (", data_len, " bytes): file truncated?");
    DETNAS_CHECK(e - b == uint64_t(rt::shape_numel(s)) * sizeof(float), what, ": tensor '", name, "' shape ",
                 rt::shape_str(s), " needs ", rt::shape_numel(s) * 4, " bytes but data_offsets give ", e - b);
    ranges.push_back({b, e});
    rt::Tensor t = rt::Tensor::empty(s);
    if (e > b) std::memcpy(t.data(), bytes.data() + data_start + b, size_t(e - b));
    f.tensors.emplace_back(name, t);
  }
  std::sort(ranges.begin(), ranges.end());
  for (size_t i = 1; i < ranges.size(); ++i)
    DETNAS_CHECK(ranges[i].first >= ranges[i - 1].second, what, ": tensors overlap in the data section");
  return f;
}

SafetensorsFile load_safetensors(const std::string& path) { return parse_safetensors(read_file(path), path); }

}  // namespace detnas::nn
