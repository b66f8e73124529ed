// Emulated-GPU build: "device memory" that host code cannot touch. Allocations
// are whole pages tagged with one x86 memory-protection key (Linux pkeys) whose
// access every thread is denied by default; only the emulator's kernel threads
// and the stubs that play the GPU's part (copies, memsets, cuBLAS, cuDNN) open it,
// for the duration of their work. So a CPU op that reads or writes a CUDA
// tensor's data faults at once: a SIGSEGV handler reports it as such, with a
// backtrace, and aborts. Without pkeys (another CPU, a kernel without them, or
// DETNAS_EMU_PKEYS=0) allocations are plain pages and nothing is enforced; the
// start-up log line says which.
// Not here: the allocation registry and the copy checks (tests/emu/gpu/cudart.cpp).
#pragma once
#include <cstddef>

namespace detnas::emu::gpu {

// Page-aligned, page-rounded memory tagged with the device key (when active).
void* device_pages_alloc(size_t bytes);
void device_pages_free(void* p, size_t bytes);
// Whether device memory is protected in this process.
bool pkeys_active();

// While alive, the calling thread may read and write device memory (nests).
class DeviceAccess {
 public:
  DeviceAccess();
  ~DeviceAccess();
  DeviceAccess(const DeviceAccess&) = delete;
  DeviceAccess& operator=(const DeviceAccess&) = delete;

 private:
  int saved_ = 0;
};

}  // namespace detnas::emu::gpu
