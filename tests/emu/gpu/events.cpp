// Emulated-GPU build: CUDA events (cudaEventCreate/Record/Synchronize/ElapsedTime/
// Destroy) for `bench --cuda`. Every emulated launch and copy completes before it
// returns, so recording an event stamps the host clock at once and synchronising
// is a no-op; elapsed times are those of the emulator on the CPU and mean nothing
// about a GPU. Events must come from cudaEventCreate and not be destroyed (checked).
// Not here: streams, memory (tests/emu/gpu/cudart.cpp).
#include <chrono>
#include <mutex>
#include <set>

#include "tests/emu/gpu/include/cuda_runtime.h"

namespace {

struct Event {
  std::chrono::steady_clock::time_point t;
  bool recorded = false;
};

std::mutex g_mu;
std::set<Event*> g_events;

Event* find(cudaEvent_t e) {
  std::lock_guard<std::mutex> lock(g_mu);
  Event* p = reinterpret_cast<Event*>(e);
  return g_events.count(p) ? p : nullptr;
}

}  // namespace

cudaError_t cudaEventCreate(cudaEvent_t* event) {
  if (!event) return cudaErrorInvalidValue;
  Event* e = new Event;
  std::lock_guard<std::mutex> lock(g_mu);
  g_events.insert(e);
  *event = reinterpret_cast<cudaEvent_t>(e);
  return cudaSuccess;
}

cudaError_t cudaEventDestroy(cudaEvent_t event) {
  Event* e = reinterpret_cast<Event*>(event);
  {
    std::lock_guard<std::mutex> lock(g_mu);
    if (g_events.erase(e) == 0) return cudaErrorInvalidResourceHandle;
  }
  delete e;
  return cudaSuccess;
}

cudaError_t cudaEventRecord(cudaEvent_t event, cudaStream_t stream) {
  Event* e = find(event);
  if (!e) return cudaErrorInvalidResourceHandle;
  detnas::emu::gpu::require_stream("cudaEventRecord", stream);
  e->t = std::chrono::steady_clock::now();
  e->recorded = true;
  return cudaSuccess;
}

cudaError_t cudaEventSynchronize(cudaEvent_t event) {
  Event* e = find(event);
  return e && e->recorded ? cudaSuccess : cudaErrorInvalidResourceHandle;
}

cudaError_t cudaEventElapsedTime(float* ms, cudaEvent_t start, cudaEvent_t stop) {
  Event *a = find(start), *b = find(stop);
  if (!ms) return cudaErrorInvalidValue;
  if (!a || !b || !a->recorded || !b->recorded) return cudaErrorInvalidResourceHandle;
  *ms = std::chrono::duration<float, std::milli>(b->t - a->t).count();
  return cudaSuccess;
}
