// A small builder over the ONNX protobuf definitions of Debian's libonnx-dev
// (onnx::ModelProto): graph inputs and outputs, float and int64 initializers,
// nodes with attributes, fresh value names; `finish` runs ONNX's checker and its
// strict shape inference and writes the model atomically. Internal to export/:
// it is the only header that includes ONNX's, so the rest of the library (and
// its installed headers) never needs them.
#pragma once
#define ONNX_ML 1
#define ONNX_NAMESPACE onnx
#include <onnx/onnx_pb.h>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace detnas::exporter {

// One node attribute: an int, a list of ints, a float or a string.
struct Attr {
  std::string name;
  enum Kind { Int, Ints, Float, String } kind = Int;
  int64_t i = 0;
  std::vector<int64_t> ints;
  float f = 0;
  std::string s;
  static Attr of(const std::string& n, int64_t v) { return {n, Int, v, {}, 0, {}}; }
  static Attr of(const std::string& n, std::vector<int64_t> v) { return {n, Ints, 0, std::move(v), 0, {}}; }
  static Attr of_f(const std::string& n, float v) { return {n, Float, 0, {}, v, {}}; }
  static Attr of(const std::string& n, const char* v) { return {n, String, 0, {}, 0, v}; }
};

class OnnxGraph {
 public:
  OnnxGraph(const std::string& name, int opset);
  // A float input; a dimension < 0 is symbolic, named by dim_names[i].
  std::string input(const std::string& name, const std::vector<int64_t>& shape,
                    const std::vector<std::string>& dim_names);
  // Declares `value` (float, or int64) a graph output named `name` (an Identity node renames it).
  void output(const std::string& value, const std::string& name, bool int64 = false);
  // A scalar (shape {}) constant.
  std::string scalar(const std::string& hint, float v) { return initializer(hint, {}, {v}); }
  std::string scalar_i64(const std::string& hint, int64_t v) { return initializer_i64(hint, {}, {v}); }
  std::string initializer(const std::string& hint, const std::vector<int64_t>& shape, std::vector<float> data);
  std::string initializer_i64(const std::string& hint, const std::vector<int64_t>& shape,
                              const std::vector<int64_t>& data);
  // Appends op(inputs) with `outputs` fresh results named after `hint`.
  std::vector<std::string> node(const std::string& op, const std::vector<std::string>& inputs,
                                const std::vector<Attr>& attrs, const std::string& hint, int outputs = 1);
  std::string node1(const std::string& op, const std::vector<std::string>& inputs, const std::vector<Attr>& attrs,
                    const std::string& hint) {
    return node(op, inputs, attrs, hint, 1)[0];
  }
  // Checker + strict shape inference (fills every output's shape), then writes
  // `path` atomically with the metadata. Returns the file size in bytes.
  int64_t finish(const std::string& path, const std::map<std::string, std::string>& metadata);
  int64_t num_nodes() const { return model_.graph().node_size(); }
  int64_t num_initializers() const { return model_.graph().initializer_size(); }

 private:
  std::string fresh(const std::string& hint);
  onnx::ModelProto model_;
  std::map<std::string, int> used_;
};

}  // namespace detnas::exporter
