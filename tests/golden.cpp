// Golden case loading and the runner that checks every case in every golden root.
#include "tests/golden.h"

#include <dirent.h>
#include <sys/stat.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>

namespace detnas::test {

namespace dom = simdjson::dom;

std::map<std::string, GoldenHandler>& golden_handlers() {
  static std::map<std::string, GoldenHandler> m;
  return m;
}

GoldenRegistrar::GoldenRegistrar(const char* op, GoldenHandler h) { golden_handlers()[op] = std::move(h); }

static bool is_dir(const std::string& p) {
  struct stat st;
  return stat(p.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

std::vector<std::string> golden_roots() {
  std::vector<std::string> roots;
  const char* env = std::getenv("DETNAS_GOLDEN_DIR");
  std::string def = "../shared/golden";
  roots.push_back(def);
  if (env && *env && std::string(env) != def) roots.push_back(env);
  return roots;
}

std::vector<std::string> json_files(const std::string& dir) {
  std::vector<std::string> out;
  DIR* d = opendir(dir.c_str());
  if (!d) return out;
  while (dirent* e = readdir(d)) {
    std::string n = e->d_name;
    if (n.size() > 5 && n.substr(n.size() - 5) == ".json") out.push_back(dir + "/" + n);
  }
  closedir(d);
  std::sort(out.begin(), out.end());
  return out;
}

static GoldenTensor parse_tensor(dom::element e, const std::string& where) {
  GoldenTensor t;
  dom::object o;
  if (e.get(o)) throw std::runtime_error(where + ": tensor is not an object");
  for (auto d : o["shape"].get_array()) t.shape.push_back(int64_t(d.get_int64()));
  std::string_view dtype = o["dtype"].get_string();
  t.is_int = dtype == "int64";
  for (auto v : o["data"].get_array()) {
    if (v.is_int64())
      t.data.push_back(double(int64_t(v.get_int64())));
    else if (v.is_uint64())
      t.data.push_back(double(uint64_t(v.get_uint64())));
    else
      t.data.push_back(t.is_int ? double(v.get_double()) : double(float(v.get_double())));
  }
  int64_t n = 1;
  for (auto s : t.shape) n *= s;
  if (n != t.numel()) throw std::runtime_error(where + ": shape and data size disagree");
  return t;
}

static void parse_map(dom::object root, const char* key, std::map<std::string, GoldenTensor>& out,
                      const std::string& file) {
  dom::object m;
  if (root[key].get(m)) return;
  for (auto kv : m) out[std::string(kv.key)] = parse_tensor(kv.value, file + ": " + key + "." + std::string(kv.key));
}

GoldenCase load_golden_case(const std::string& path) {
  GoldenCase c;
  c.file = path;
  c.parser = std::make_shared<dom::parser>();
  dom::element doc;
  auto err = c.parser->load(path).get(doc);
  if (err) throw std::runtime_error(path + ": " + simdjson::error_message(err));
  dom::object root = doc.get_object();
  c.op = std::string(std::string_view(root["op"].get_string()));
  std::string_view nm;
  if (!root["case"].get(nm)) c.name = std::string(nm);
  if (root["params"].get(c.params)) c.params = dom::element();
  parse_map(root, "inputs", c.inputs, path);
  parse_map(root, "outputs", c.outputs, path);
  parse_map(root, "upstream_grads", c.upstream_grads, path);
  parse_map(root, "grads", c.grads, path);
  return c;
}

static const GoldenTensor& get(const std::map<std::string, GoldenTensor>& m, const std::string& k, const GoldenCase& c,
                               const char* where) {
  auto it = m.find(k);
  if (it == m.end()) throw std::runtime_error(c.file + ": missing " + where + "." + k);
  return it->second;
}
const GoldenTensor& GoldenCase::in(const std::string& k) const { return get(inputs, k, *this, "inputs"); }
const GoldenTensor& GoldenCase::out(const std::string& k) const { return get(outputs, k, *this, "outputs"); }
const GoldenTensor& GoldenCase::grad(const std::string& k) const { return get(grads, k, *this, "grads"); }
const GoldenTensor& GoldenCase::upstream(const std::string& k) const {
  return get(upstream_grads, k, *this, "upstream_grads");
}

bool GoldenCase::has_param(const std::string& k) const {
  dom::element e;
  return params.is_object() && !params[k].get(e);
}
static double as_num(dom::element e) {
  if (e.is_int64()) return double(int64_t(e.get_int64()));
  if (e.is_uint64()) return double(uint64_t(e.get_uint64()));
  if (e.is_bool()) return bool(e.get_bool()) ? 1.0 : 0.0;
  return double(e.get_double());
}
double GoldenCase::num(const std::string& k) const { return as_num(params[k]); }
bool GoldenCase::flag(const std::string& k) const { return bool(params[k].get_bool()); }
std::string GoldenCase::str(const std::string& k) const {
  return std::string(std::string_view(params[k].get_string()));
}
std::vector<double> GoldenCase::list(const std::string& k) const {
  std::vector<double> v;
  for (auto e : params[k].get_array()) v.push_back(as_num(e));
  return v;
}
std::vector<std::vector<double>> GoldenCase::list2(const std::string& k) const {
  std::vector<std::vector<double>> v;
  for (auto row : params[k].get_array()) {
    std::vector<double> r;
    if (row.is_array())
      for (auto e : row.get_array()) r.push_back(as_num(e));
    else
      r.push_back(as_num(row));
    v.push_back(r);
  }
  return v;
}

bool check_golden_forward(const GoldenCase& c, const std::string& what, const std::vector<float>& got,
                          const GoldenTensor& ref) {
  return check_close(c.file + " " + what, to_double(got), ref.data, ref.shape, Tol::golden_forward(max_abs(ref.data)));
}
bool check_golden_grad(const GoldenCase& c, const std::string& what, const std::vector<float>& got,
                       const GoldenTensor& ref) {
  return check_close(c.file + " " + what, to_double(got), ref.data, ref.shape, Tol::golden_grad(max_abs(ref.data)));
}
bool check_golden_exact(const GoldenCase& c, const std::string& what, const std::vector<double>& got,
                        const GoldenTensor& ref) {
  return check_close(c.file + " " + what, got, ref.data, ref.shape, Tol::exact());
}

TEST_CASE("golden: every operator case in every golden root") {
  int checked = 0;
  // DETNAS_GOLDEN_ONLY=op1,op2 restricts the run while developing one op; the
  // full suite (make test, CI) never sets it.
  const char* only_env = std::getenv("DETNAS_GOLDEN_ONLY");
  std::string only = only_env && *only_env ? "," + std::string(only_env) + "," : "";
  if (!only.empty()) std::printf("golden ops: restricted to %s\n", only_env);
  for (const std::string& root : golden_roots()) {
    std::string dir = root + "/ops";
    REQUIRE_MESSAGE(is_dir(dir),
                    "golden folder not found: " << dir
                                                << " (run from the repository root with ../shared beside it,"
                                                   " or set DETNAS_GOLDEN_DIR)");
    auto files = json_files(dir);
    CHECK_MESSAGE(!files.empty(), "no golden cases in " << dir);
    for (const std::string& f : files) {
      CAPTURE(f);
      GoldenCase c;
      try {
        c = load_golden_case(f);
      } catch (const std::exception& e) {
        FAIL_CHECK("cannot load golden case: " << e.what());
        continue;
      }
      if (!only.empty() && only.find("," + c.op + ",") == std::string::npos) continue;
      auto it = golden_handlers().find(c.op);
      if (it == golden_handlers().end()) {
        FAIL_CHECK(f << ": no test handler for op '" << c.op << "'");
        continue;
      }
      try {
        it->second(c);
      } catch (const std::exception& e) {
        FAIL_CHECK(f << ": " << e.what());
      }
      checked++;
    }
  }
  std::printf("golden ops: %d cases checked\n", checked);
  CHECK(checked > 0);
}

}  // namespace detnas::test
