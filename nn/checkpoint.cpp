// Checkpoint save/load.
#include "nn/checkpoint.h"

#include <simdjson.h>

#include <charconv>
#include <cmath>
#include <set>
#include <sstream>

#include "core/log.h"
#include "runtime/fault.h"
#include "runtime/fs.h"

namespace detnas::nn {

namespace {
std::string esc(const std::string& s) {
  std::string o;
  for (char c : s) {
    if (c == '"' || c == '\\') o += '\\';
    if (static_cast<unsigned char>(c) < 0x20) {
      char b[8];
      std::snprintf(b, sizeof b, "\\u%04x", c);
      o += b;
      continue;
    }
    o += c;
  }
  return o;
}
bool ends_with(const std::string& s, const std::string& e) {
  return s.size() >= e.size() && s.compare(s.size() - e.size(), e.size(), e) == 0;
}
// An RNG state word as save_checkpoint writes it: decimal digits only.
uint64_t parse_u64(std::string_view s, const std::string& file, const std::string& field) {
  uint64_t v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  DETNAS_CHECK(!s.empty() && ec == std::errc() && end == s.data() + s.size(), file, ": ", field, " = \"",
               std::string(s), "\" is not a decimal 64-bit unsigned integer");
  return v;
}
}  // namespace

std::string checkpoint_base(const std::string& path) {
  if (ends_with(path, ".safetensors")) return path.substr(0, path.size() - 12);
  if (ends_with(path, ".json")) return path.substr(0, path.size() - 5);
  return path;
}

// Crash safety of the pair. The two files cannot be replaced together, so the
// weights file is the commit record: its header metadata carries the whole
// sidecar text ("detnas_checkpoint"), and PATH.json is a readable copy written
// after it. A process killed between the two renames leaves new weights with the
// previous sidecar (or none, at the first save); load_checkpoint then takes the
// weights file's copy and says so, so a --resume continues from the newest
// complete save exactly. A kill inside either write leaves that file's previous
// version (write_file_atomic). Non-finite values are refused before anything is
// written, so a diverged run never replaces its last good checkpoint.
void save_checkpoint(const std::string& path_in, const Module& model, const Sgd* opt, const CheckpointMeta& meta) {
  const std::string base = checkpoint_base(path_in);
  NamedTensors tensors;
  for (auto& p : model.parameters()) tensors.emplace_back(p.name, p.tensor);
  for (auto& b : model.buffers()) tensors.emplace_back(b.name, b.tensor);
  if (opt)
    for (auto& t : opt->state()) tensors.emplace_back("optim." + t.first, t.second);
  for (auto& [name, t] : tensors) {
    if (t.device() != rt::Device::CPU || !t.is_contiguous()) t = t.clone().to(rt::Device::CPU);
    const float* d = t.data();
    for (int64_t i = 0; i < t.numel(); ++i)
      DETNAS_CHECK(std::isfinite(d[i]), "checkpoint ", base, " (step ", meta.step, "): tensor ", name, " ",
                   rt::shape_str(t.shape()), " holds a non-finite value (", d[i], ") at element ", i,
                   "; nothing written, the previous checkpoint is kept");
  }
  std::ostringstream j;
  j << "{\n  \"format\": \"detnas-checkpoint-1\",\n  \"kind\": \"" << esc(meta.kind) << "\",\n  \"step\": " << meta.step
    << ",\n  \"space\": \"" << esc(meta.space) << "\",\n  \"arch\": \"" << esc(meta.arch) << "\",\n  \"weights\": \""
    << esc(base.substr(base.rfind('/') + 1)) << ".safetensors\",\n  \"rng\": {";
  bool first = true;
  for (auto& [k, v] : meta.rng) {
    j << (first ? "" : ",") << "\n    \"" << esc(k) << "\": [\"" << v.first << "\", \"" << v.second << "\"]";
    first = false;
  }
  j << "\n  },\n  \"config\": {";
  first = true;
  for (auto& [k, v] : meta.config) {
    j << (first ? "" : ",") << "\n    \"" << esc(k) << "\": \"" << esc(v) << "\"";
    first = false;
  }
  j << "\n  }\n}\n";
  const std::string sidecar = j.str();
  save_safetensors(
      base + ".safetensors", tensors,
      {{"detnas_step", std::to_string(meta.step)}, {"detnas_kind", meta.kind}, {"detnas_checkpoint", sidecar}});
  fault_point("ckpt.between", path_filename(base));
  write_file_atomic(base + ".json", sidecar);
}

CheckpointMeta read_checkpoint_meta(const std::string& path_in) {
  const std::string base = checkpoint_base(path_in), file = base + ".json", wfile = base + ".safetensors";
  if (!file_exists(file) && file_exists(wfile)) {
    // A first save cut between its two files: the weights file carries the sidecar.
    SafetensorsFile f = load_safetensors(wfile);
    auto side = f.metadata.find("detnas_checkpoint");
    DETNAS_CHECK(side != f.metadata.end(), "no checkpoint sidecar ", file, " (and ", wfile,
                 " has no embedded copy to recover it from)");
    log_warn("checkpoint ", base, ": no ", file, " (a save interrupted before it); using the copy in ", wfile);
    return parse_checkpoint_meta(side->second, wfile + " (sidecar copy in its header)");
  }
  return parse_checkpoint_meta(read_file(file), file);
}

CheckpointMeta parse_checkpoint_meta(const std::string& text, const std::string& file) {
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  auto err = parser.parse(text).get(doc);
  DETNAS_CHECK(!err, file, ": not valid JSON (", simdjson::error_message(err), ")");
  CheckpointMeta m;
  std::string_view sv;
  DETNAS_CHECK(!doc["format"].get(sv) && sv == "detnas-checkpoint-1", file, ": not a detnas checkpoint sidecar");
  auto str = [&](const char* key, std::string& out) {
    DETNAS_CHECK(!doc[key].get(sv), file, ": missing or non-string field '", key, "'");
    out = std::string(sv);
  };
  str("kind", m.kind);
  str("space", m.space);
  str("arch", m.arch);
  DETNAS_CHECK(!doc["step"].get(m.step), file, ": missing or non-integer field 'step'");
  simdjson::dom::object rng, cfg;
  if (!doc["rng"].get(rng))
    for (auto kv : rng) {
      simdjson::dom::array a;
      std::string_view s0, s1;
      DETNAS_CHECK(!kv.value.get(a) && a.size() == 2 && !a.at(0).get(s0) && !a.at(1).get(s1), file, ": rng.",
                   std::string(kv.key), " must be two decimal strings");
      const std::string field = "rng." + std::string(kv.key);
      m.rng[std::string(kv.key)] = {parse_u64(s0, file, field + "[0]"), parse_u64(s1, file, field + "[1]")};
    }
  if (!doc["config"].get(cfg))
    for (auto kv : cfg) {
      DETNAS_CHECK(!kv.value.get(sv), file, ": config.", std::string(kv.key), " must be a string");
      m.config[std::string(kv.key)] = std::string(sv);
    }
  return m;
}

CheckpointMeta load_checkpoint(const std::string& path_in, Module& model, Sgd* opt, ExtraTensors extra,
                               const std::string& prefix) {
  const std::string base = checkpoint_base(path_in);
  const std::string wfile = base + ".safetensors";
  SafetensorsFile f = load_safetensors(wfile);
  CheckpointMeta meta;
  if (auto side = f.metadata.find("detnas_checkpoint"); side != f.metadata.end()) {
    // The weights file's own copy of the sidecar is authoritative (see save_checkpoint).
    meta = parse_checkpoint_meta(side->second, wfile + " (sidecar copy in its header)");
    const std::string sfile = base + ".json";
    if (!file_exists(sfile))
      log_warn("checkpoint ", base, ": no ", sfile, " (a save interrupted before it); using the copy in ", wfile,
               " (step ", meta.step, ")");
    else if (read_file(sfile) != side->second)
      log_warn("checkpoint ", base, ": ", sfile, " is not the sidecar of ", wfile,
               " (a save interrupted between the two files?); using the copy in ", wfile, " (step ", meta.step, ")");
  } else {
    // Checkpoints from before the embedded copy: the two files must agree.
    meta = read_checkpoint_meta(base);
    auto st = f.metadata.find("detnas_step");
    DETNAS_CHECK(st != f.metadata.end() && st->second == std::to_string(meta.step), wfile, ": step ",
                 st == f.metadata.end() ? std::string("(none)") : st->second, " does not match step ", meta.step,
                 " of ", base, ".json (files from different saves?)");
  }
  std::map<std::string, const rt::Tensor*> by_name;
  for (auto& [n, t] : f.tensors) by_name[n] = &t;
  std::set<std::string> used;
  std::vector<std::string> problems;
  auto take = [&](const std::string& name, rt::Tensor dst) {
    auto it = by_name.find(prefix + name);
    if (it == by_name.end()) {
      problems.push_back("missing " + prefix + name + " " + rt::shape_str(dst.shape()));
      return;
    }
    used.insert(it->first);
    if (it->second->shape() != dst.shape()) {
      problems.push_back(prefix + name + " has shape " + rt::shape_str(it->second->shape()) + " in the file, " +
                         rt::shape_str(dst.shape()) + " in the model");
      return;
    }
    dst.copy_from(*it->second);
  };
  for (auto& p : model.parameters()) take(p.name, p.tensor);
  for (auto& b : model.buffers()) take(b.name, b.tensor);
  NamedTensors optim;
  for (auto& [n, t] : f.tensors) {
    if (n.rfind("optim.", 0) == 0) {
      optim.emplace_back(n.substr(6), t);
      continue;
    }
    if (!used.count(n) && extra == ExtraTensors::Error && n.rfind(prefix, 0) == 0)
      problems.push_back("unexpected " + n + " (not in the model)");
  }
  if (!problems.empty()) {
    std::string msg;
    const size_t show = 20;
    for (size_t i = 0; i < problems.size() && i < show; ++i) msg += "\n  " + problems[i];
    if (problems.size() > show) msg += "\n  ... and " + std::to_string(problems.size() - show) + " more";
    DETNAS_FAIL(wfile, ": ", problems.size(), " mismatches with the model (space ", meta.space, ", arch ", meta.arch,
                "):", msg);
  }
  if (opt) opt->load_state(optim, wfile);
  return meta;
}

}  // namespace detnas::nn
