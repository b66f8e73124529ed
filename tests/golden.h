// Golden operator cases (../shared/golden/ops/*.json, format in its README).
// Every file in the folder — and in $DETNAS_GOLDEN_DIR/ops when that variable is
// set — is dispatched on its "op" field to a handler registered with
// DETNAS_GOLDEN_OP; a case whose op has no handler is a failure.
#pragma once
#include <simdjson.h>

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "tests/test_util.h"

namespace detnas::test {

struct GoldenTensor {
  std::vector<int64_t> shape;
  std::vector<double> data;  // float32 values widened exactly, or int64 values
  bool is_int = false;
  int64_t numel() const { return int64_t(data.size()); }
  std::vector<float> as_float() const { return std::vector<float>(data.begin(), data.end()); }
};

struct GoldenCase {
  std::string file, op, name;
  std::shared_ptr<simdjson::dom::parser> parser;  // owns the document
  simdjson::dom::element params;
  std::map<std::string, GoldenTensor> inputs, outputs, upstream_grads, grads;

  const GoldenTensor& in(const std::string& k) const;
  const GoldenTensor& out(const std::string& k) const;
  const GoldenTensor& grad(const std::string& k) const;
  const GoldenTensor& upstream(const std::string& k) const;
  bool has_param(const std::string& k) const;
  double num(const std::string& k) const;  // number (int or float) param
  bool flag(const std::string& k) const;   // bool param
  std::string str(const std::string& k) const;
  std::vector<double> list(const std::string& k) const;                // flat number list
  std::vector<std::vector<double>> list2(const std::string& k) const;  // list of lists
};

using GoldenHandler = std::function<void(const GoldenCase&)>;
struct GoldenRegistrar {
  GoldenRegistrar(const char* op, GoldenHandler h);
};
std::map<std::string, GoldenHandler>& golden_handlers();

#define DETNAS_GOLDEN_CAT2(a, b) a##b
#define DETNAS_GOLDEN_CAT(a, b) DETNAS_GOLDEN_CAT2(a, b)
// DETNAS_GOLDEN_OP("depthwise_conv2d") { ... uses `c` (const GoldenCase&) ... }
#define DETNAS_GOLDEN_OP(opname)                                                            \
  static void DETNAS_GOLDEN_CAT(golden_fn_, __LINE__)(const ::detnas::test::GoldenCase& c); \
  static ::detnas::test::GoldenRegistrar DETNAS_GOLDEN_CAT(golden_reg_, __LINE__)(          \
      opname, DETNAS_GOLDEN_CAT(golden_fn_, __LINE__));                                     \
  static void DETNAS_GOLDEN_CAT(golden_fn_, __LINE__)(const ::detnas::test::GoldenCase& c)

// Golden roots to read: ../shared/golden (from the repo root) plus $DETNAS_GOLDEN_DIR.
std::vector<std::string> golden_roots();
// Sorted list of *.json files in `dir` (empty if the folder is missing).
std::vector<std::string> json_files(const std::string& dir);
GoldenCase load_golden_case(const std::string& path);

// Compare helpers for golden values with the README's suggested tolerances.
bool check_golden_forward(const GoldenCase& c, const std::string& what, const std::vector<float>& got,
                          const GoldenTensor& ref);
bool check_golden_grad(const GoldenCase& c, const std::string& what, const std::vector<float>& got,
                       const GoldenTensor& ref);
bool check_golden_exact(const GoldenCase& c, const std::string& what, const std::vector<double>& got,
                        const GoldenTensor& ref);

}  // namespace detnas::test
