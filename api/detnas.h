// Umbrella header of the detnas embedding API (installed as <detnas/detnas.h>):
// runtime (tensors, ops, autograd, devices, logging), models (spaces, backbones,
// detectors, checkpoints), inference (Detector), search (FLOPs, latency tables,
// evolution) and export (ONNX).
// Build with `pkg-config --cflags --libs detnas`. Everything is in detnas::api;
// the internal layers (detnas::rt, nn, det, data, search) are reachable too.
#pragma once
#include "export.h"
#include "inference.h"
#include "models.h"
#include "runtime.h"
#include "search.h"
