// OnnxGraph: see export/onnx_graph.h.
#include "export/onnx_graph.h"

#include <onnx/checker.h>
#include <onnx/shape_inference/implementation.h>

#include "core/error.h"
#include "runtime/fs.h"

namespace detnas::exporter {

OnnxGraph::OnnxGraph(const std::string& name, int opset) {
  DETNAS_CHECK(opset >= 13 && opset <= 17, "export: opset ", opset,
               " is not supported (13..17: the Resize, Split and Gather forms used here, up to what this ONNX ",
               "library checks)");
  model_.set_ir_version(onnx::IR_VERSION);
  model_.set_producer_name("detnas");
  auto* op = model_.add_opset_import();
  op->set_domain("");
  op->set_version(opset);
  model_.mutable_graph()->set_name(name);
}

std::string OnnxGraph::fresh(const std::string& hint) {
  const int n = used_[hint]++;
  return n == 0 ? hint : hint + "_" + std::to_string(n);
}

static void set_shape(onnx::ValueInfoProto* v, const std::vector<int64_t>& shape,
                      const std::vector<std::string>& dim_names) {
  auto* tt = v->mutable_type()->mutable_tensor_type();
  tt->set_elem_type(onnx::TensorProto::FLOAT);
  auto* s = tt->mutable_shape();
  for (size_t i = 0; i < shape.size(); ++i) {
    auto* d = s->add_dim();
    if (shape[i] >= 0)
      d->set_dim_value(shape[i]);
    else
      d->set_dim_param(i < dim_names.size() ? dim_names[i] : "d" + std::to_string(i));
  }
}

std::string OnnxGraph::input(const std::string& name, const std::vector<int64_t>& shape,
                             const std::vector<std::string>& dim_names) {
  const std::string v = fresh(name);
  DETNAS_CHECK(v == name, "export: input name ", name, " used twice");
  set_shape(model_.mutable_graph()->add_input(), shape, dim_names);
  model_.mutable_graph()->mutable_input()->rbegin()->set_name(v);
  return v;
}

void OnnxGraph::output(const std::string& value, const std::string& name, bool int64) {
  const std::string v = fresh(name);
  DETNAS_CHECK(v == name, "export: output name ", name, " used twice");
  auto* n = model_.mutable_graph()->add_node();
  n->set_op_type("Identity");
  n->set_name(name);
  n->add_input(value);
  n->add_output(v);
  auto* o = model_.mutable_graph()->add_output();
  o->set_name(v);
  o->mutable_type()->mutable_tensor_type()->set_elem_type(int64 ? onnx::TensorProto::INT64 : onnx::TensorProto::FLOAT);
}

std::string OnnxGraph::initializer(const std::string& hint, const std::vector<int64_t>& shape,
                                   std::vector<float> data) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  DETNAS_CHECK(n == int64_t(data.size()), "export: initializer ", hint, " has ", data.size(), " values for ", n);
  auto* t = model_.mutable_graph()->add_initializer();
  t->set_name(fresh(hint));
  t->set_data_type(onnx::TensorProto::FLOAT);
  for (int64_t d : shape) t->add_dims(d);
  t->set_raw_data(std::string(reinterpret_cast<const char*>(data.data()), data.size() * sizeof(float)));
  return t->name();
}

std::string OnnxGraph::initializer_i64(const std::string& hint, const std::vector<int64_t>& shape,
                                       const std::vector<int64_t>& data) {
  auto* t = model_.mutable_graph()->add_initializer();
  t->set_name(fresh(hint));
  t->set_data_type(onnx::TensorProto::INT64);
  for (int64_t d : shape) t->add_dims(d);
  for (int64_t v : data) t->add_int64_data(v);
  return t->name();
}

std::vector<std::string> OnnxGraph::node(const std::string& op, const std::vector<std::string>& inputs,
                                         const std::vector<Attr>& attrs, const std::string& hint, int outputs) {
  auto* n = model_.mutable_graph()->add_node();
  n->set_op_type(op);
  std::vector<std::string> outs;
  for (int i = 0; i < outputs; ++i) outs.push_back(fresh(hint));
  n->set_name(outs[0]);
  for (const auto& in : inputs) n->add_input(in);
  for (const auto& o : outs) n->add_output(o);
  for (const Attr& a : attrs) {
    auto* p = n->add_attribute();
    p->set_name(a.name);
    switch (a.kind) {
      case Attr::Int:
        p->set_type(onnx::AttributeProto::INT);
        p->set_i(a.i);
        break;
      case Attr::Ints:
        p->set_type(onnx::AttributeProto::INTS);
        for (int64_t v : a.ints) p->add_ints(v);
        break;
      case Attr::Float:
        p->set_type(onnx::AttributeProto::FLOAT);
        p->set_f(a.f);
        break;
      case Attr::String:
        p->set_type(onnx::AttributeProto::STRING);
        p->set_s(a.s);
        break;
    }
  }
  return outs;
}

int64_t OnnxGraph::finish(const std::string& path, const std::map<std::string, std::string>& metadata) {
  for (const auto& [k, v] : metadata) {
    auto* p = model_.add_metadata_props();
    p->set_key(k);
    p->set_value(v);
  }
  try {
    // Strict mode: a node whose output type or shape cannot be inferred is an error.
    onnx::ShapeInferenceOptions opts(true, 1, true);
    onnx::shape_inference::InferShapes(model_, onnx::OpSchemaRegistry::Instance(), opts);
    // Every graph output must have come out with a shape (the checker requires it).
    std::map<std::string, const onnx::ValueInfoProto*> inferred;
    for (const auto& vi : model_.graph().value_info()) inferred[vi.name()] = &vi;
    for (auto& o : *model_.mutable_graph()->mutable_output()) {
      if (o.type().tensor_type().has_shape()) continue;
      auto it = inferred.find(o.name());
      DETNAS_CHECK(it != inferred.end() && it->second->type().tensor_type().has_shape(), "export: ONNX shape ",
                   "inference left the shape of output ", o.name(), " unknown");
      *o.mutable_type() = it->second->type();
    }
    onnx::checker::check_model(model_);
  } catch (const onnx::checker::ValidationError& e) {
    DETNAS_CHECK(false, "export: the ONNX checker rejected the model for ", path, ": ", e.what());
  } catch (const onnx::InferenceError& e) {
    DETNAS_CHECK(false, "export: ONNX shape inference failed for ", path, ": ", e.what());
  }
  std::string bytes;
  DETNAS_CHECK(model_.SerializeToString(&bytes), "export: could not serialise the ONNX model for ", path);
  write_file_atomic(path, bytes);
  return int64_t(bytes.size());
}

}  // namespace detnas::exporter
