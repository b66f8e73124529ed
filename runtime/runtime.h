// Umbrella header for the runtime layer.
#pragma once
#include "runtime/allocator.h"
#include "runtime/autograd.h"
#include "runtime/device.h"
#include "runtime/error.h"
#include "runtime/log.h"
#include "runtime/rng.h"
#include "runtime/tensor.h"
