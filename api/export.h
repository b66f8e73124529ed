// Public API, export part (installed as <detnas/export.h>): a detector's path as
// ONNX (export/onnx_export.h: BN folded, raw head outputs plus anchors, or
// RetinaNet's post-processing as ONNX ops; FPN Faster R-CNN as two graphs), and
// detnas's own outputs of the same graph for checking a runtime against it.
// Needs nothing of ONNX at compile time (the library links libonnx).
#pragma once
#include "export/onnx_export.h"
#include "models.h"

namespace detnas::api {

using exporter::box_head_file;
using exporter::export_onnx;
using exporter::OnnxExport;
using exporter::OnnxOptions;
using exporter::reference_outputs;

}  // namespace detnas::api
