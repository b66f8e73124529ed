// Umbrella header for the runtime layer.
#pragma once
#include "core/error.h"
#include "core/log.h"
#include "runtime/allocator.h"
#include "runtime/autograd.h"
#include "runtime/device.h"
#include "runtime/rng.h"
#include "runtime/tensor.h"
