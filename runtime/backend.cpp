// Table lookup, the mixed-device check and workspaces (runtime/backend.h).
#include "runtime/backend.h"

#include <cstring>

#include "core/error.h"

namespace detnas::rt {

const Kernels& kernels_for(Device d) {
  if (d == Device::CPU) return cpu_kernels();
#ifdef DETNAS_CUDA
  return cuda_kernels();
#else
  DETNAS_FAIL("kernels for ", device_name(d), " tensors: built without CUDA");
#endif
}

void check_complete(const Kernels& t, const char* device) {
  // Every member is a function pointer of the same size: walk them as slots.
  using Slot = void (*)();
  static_assert(sizeof(Kernels) % sizeof(Slot) == 0, "Kernels must hold function pointers only");
  constexpr size_t kSlots = sizeof(Kernels) / sizeof(Slot);
  const unsigned char* base = reinterpret_cast<const unsigned char*>(&t);
  for (size_t i = 0; i < kSlots; ++i) {
    Slot s = nullptr;
    std::memcpy(&s, base + i * sizeof(Slot), sizeof(Slot));
    DETNAS_CHECK(s != nullptr, "kernel table for ", device, ": entry ", i, " of ", kSlots,
                 " (in declaration order, runtime/backend.h) is not filled");
  }
}

Device common_device(const char* op, std::initializer_list<const Tensor*> ts) {
  int cuda = 0, cpu = 0;
  for (const Tensor* t : ts)
    if (t && t->defined()) (t->device() == Device::CUDA ? cuda : cpu)++;
  DETNAS_CHECK(cuda == 0 || cpu == 0, op, ": inputs on different devices (", cuda, " on cuda, ", cpu, " on cpu)");
  return cuda > 0 ? Device::CUDA : Device::CPU;
}

Workspace::Workspace(size_t bytes, Device d) : bytes_(bytes) {
  if (bytes == 0) return;
  buf_ = Tensor::empty({int64_t((bytes + sizeof(float) - 1) / sizeof(float))}, d);
  ptr_ = buf_.data();
}

}  // namespace detnas::rt
