// Latency tables: see search/latency.h.
#include "search/latency.h"

#include <simdjson.h>

#include <cmath>

#include "core/error.h"
#include "data/json_writer.h"
#include "runtime/fs.h"

namespace detnas::search {

double LatencyTable::fixed_ms() const {
  double s = 0;
  for (const auto& kv : fixed) s += kv.second;
  return s;
}

double LatencyTable::predict_ms(const nn::Arch& arch) const {
  DETNAS_CHECK(arch.size() == blocks.size(), "latency table (", space, "): arch ", nn::format_arch(arch), " has ",
               arch.size(), " blocks, the table ", blocks.size());
  double s = fixed_ms();
  for (size_t b = 0; b < arch.size(); ++b) {
    DETNAS_CHECK(arch[b] >= 0 && size_t(arch[b]) < blocks[b].size(), "latency table (", space, "): block ", b,
                 " choice ", arch[b], " has no entry");
    s += blocks[b][size_t(arch[b])];
  }
  return s;
}

std::string LatencyTable::to_json() const {
  data::JsonWriter j(data::JsonStyle::Pretty);
  j.begin_object().field("format", "detnas-latency-1").field("space", space).field("detector", detector);
  j.key("input").begin_array().value((long long)height).value((long long)width).end_array();
  j.field("batch", (long long)batch).field("device", device).field("threads", (long long)threads);
  j.field("machine", machine).field("build", build).field("date", date).field("protocol", protocol);
  j.key("fixed").begin_object();
  for (const auto& [k, v] : fixed) j.field(k, v);
  j.end_object();
  j.key("blocks").begin_array();
  for (const auto& row : blocks) {
    j.begin_array();
    for (double v : row) j.value(v);
    j.end_array();
  }
  j.end_array().end_object();
  return j.str() + "\n";
}

namespace {

double time_value(simdjson::dom::element e, const std::string& where, const std::string& field) {
  double v = 0;
  DETNAS_CHECK(!e.get(v), where, ": ", field, " must be a number");
  DETNAS_CHECK(std::isfinite(v) && v >= 0, where, ": ", field, " = ", v, " is not a finite time >= 0");
  return v;
}

}  // namespace

LatencyTable LatencyTable::from_json(const std::string& text, const std::string& where) {
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  auto err = parser.parse(text).get(doc);
  DETNAS_CHECK(!err, where, ": not valid JSON (", simdjson::error_message(err), ")");
  std::string_view sv;
  DETNAS_CHECK(!doc["format"].get(sv) && sv == "detnas-latency-1", where,
               ": not a detnas latency table (\"format\": \"detnas-latency-1\" missing)");
  LatencyTable t;
  auto str = [&](const char* key, std::string& out, bool required) {
    if (doc[key].get(sv)) {
      DETNAS_CHECK(!required, where, ": missing or non-string field '", key, "'");
      return;
    }
    out = std::string(sv);
  };
  str("space", t.space, true);
  str("detector", t.detector, true);
  str("device", t.device, true);
  str("machine", t.machine, false);
  str("build", t.build, false);
  str("date", t.date, false);
  str("protocol", t.protocol, false);
  simdjson::dom::array input;
  DETNAS_CHECK(!doc["input"].get(input) && input.size() == 2 && !input.at(0).get(t.height) &&
                   !input.at(1).get(t.width) && t.height > 0 && t.width > 0,
               where, ": 'input' must be [height, width] with positive integers");
  DETNAS_CHECK(!doc["batch"].get(t.batch) && t.batch > 0, where, ": 'batch' must be a positive integer");
  DETNAS_CHECK(!doc["threads"].get(t.threads) && t.threads >= 0, where, ": 'threads' must be an integer >= 0");
  simdjson::dom::object fixed;
  DETNAS_CHECK(!doc["fixed"].get(fixed), where, ": missing object 'fixed'");
  for (auto kv : fixed) t.fixed[std::string(kv.key)] = time_value(kv.value, where, "fixed." + std::string(kv.key));
  for (const char* k : {"stem", "detector"}) DETNAS_CHECK(t.fixed.count(k), where, ": fixed part '", k, "' missing");
  simdjson::dom::array blocks;
  DETNAS_CHECK(!doc["blocks"].get(blocks) && blocks.size() > 0, where, ": missing or empty array 'blocks'");
  for (simdjson::dom::element row_e : blocks) {
    simdjson::dom::array row;
    const std::string f = "blocks[" + std::to_string(t.blocks.size()) + "]";
    DETNAS_CHECK(!row_e.get(row), where, ": ", f, " must be an array of times, one per choice");
    std::vector<double> r;
    for (simdjson::dom::element v : row) r.push_back(time_value(v, where, f + "[" + std::to_string(r.size()) + "]"));
    DETNAS_CHECK(r.size() == size_t(nn::kNumChoices), where, ": ", f, " has ", r.size(), " entries, expected one per ",
                 "choice (", nn::kNumChoices, ")");
    t.blocks.push_back(std::move(r));
  }
  t.check_space(nn::space_by_name(t.space), where);
  return t;
}

void LatencyTable::check_space(const nn::SearchSpace& s, const std::string& where) const {
  DETNAS_CHECK(space == s.name, where, ": latency table of space '", space, "', not '", s.name, "'");
  DETNAS_CHECK(int64_t(blocks.size()) == s.total_blocks(), where, ": ", blocks.size(), " block rows, space ", s.name,
               " has ", s.total_blocks(), " blocks");
}

LatencyTable read_latency_table(const std::string& path, const std::string& space) {
  DETNAS_CHECK(file_exists(path), "latency table ", path, " does not exist");
  LatencyTable t = LatencyTable::from_json(read_file(path), path);
  if (!space.empty()) t.check_space(nn::space_by_name(space), path);
  return t;
}

void write_latency_table(const std::string& path, const LatencyTable& t) { write_file_atomic(path, t.to_json()); }

double latency_objective(double ap, double latency_ms, double target_ms, double w) {
  DETNAS_CHECK(latency_ms > 0 && target_ms > 0 && std::isfinite(latency_ms) && std::isfinite(target_ms),
               "latency objective: latency ", latency_ms, " ms and target ", target_ms, " ms must be positive");
  return ap * std::pow(latency_ms / target_ms, w);
}

}  // namespace detnas::search
