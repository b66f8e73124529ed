// Fibers for the CPU SIMT emulator: context switch and stack pool (see fiber.h).
#include "tests/emu/fiber.h"

#include <sys/mman.h>

#include <cstdint>
#include <vector>

#include "core/error.h"

namespace detnas::emu::fiber {

// ---- context switch -------------------------------------------------------------
#if defined(DETNAS_EMU_UCONTEXT)
void switch_to(Context& from, Context& to) { swapcontext(&from.uc, &to.uc); }
void init(Context& c, char* stack, size_t size, void (*fn)(void*), void* arg) {
  getcontext(&c.uc);
  c.uc.uc_stack.ss_sp = stack;
  c.uc.uc_stack.ss_size = size;
  c.uc.uc_link = nullptr;
  uintptr_t p = reinterpret_cast<uintptr_t>(arg);
  makecontext(&c.uc, reinterpret_cast<void (*)()>(+[](unsigned hi, unsigned lo, unsigned fhi, unsigned flo) {
    auto f = reinterpret_cast<void (*)(void*)>((uintptr_t(fhi) << 32) | flo);
    f(reinterpret_cast<void*>((uintptr_t(hi) << 32) | lo));
  }),
              4, unsigned(p >> 32), unsigned(p), unsigned(reinterpret_cast<uintptr_t>(fn) >> 32),
              unsigned(reinterpret_cast<uintptr_t>(fn)));
}
#else
// x86-64 System V: save the callee-saved registers, MXCSR and the x87 control word
// on the old stack, store its pointer, load the new one. A new fiber's stack is
// laid out so the first switch "returns" into fiber_start, which calls fn(arg).
extern "C" void detnas_emu_switch(void** save_sp, void* to_sp);
extern "C" void detnas_emu_fiber_start();
asm(R"(
  .text
  .p2align 4
  .globl detnas_emu_switch
  .hidden detnas_emu_switch
  .type detnas_emu_switch, @function
detnas_emu_switch:
  pushq %rbp
  pushq %rbx
  pushq %r12
  pushq %r13
  pushq %r14
  pushq %r15
  subq $16, %rsp
  stmxcsr 8(%rsp)
  fnstcw (%rsp)
  movq %rsp, (%rdi)
  movq %rsi, %rsp
  ldmxcsr 8(%rsp)
  fldcw (%rsp)
  addq $16, %rsp
  popq %r15
  popq %r14
  popq %r13
  popq %r12
  popq %rbx
  popq %rbp
  ret
  .size detnas_emu_switch, .-detnas_emu_switch

  .p2align 4
  .globl detnas_emu_fiber_start
  .hidden detnas_emu_fiber_start
  .type detnas_emu_fiber_start, @function
detnas_emu_fiber_start:
  .cfi_startproc
  .cfi_undefined %rip
  movq %r12, %rdi
  callq *%r13
  ud2
  .cfi_endproc
  .size detnas_emu_fiber_start, .-detnas_emu_fiber_start
)");
void switch_to(Context& from, Context& to) { detnas_emu_switch(&from.sp, to.sp); }
void init(Context& c, char* stack, size_t size, void (*fn)(void*), void* arg) {
  uintptr_t top = (reinterpret_cast<uintptr_t>(stack) + size) & ~uintptr_t(15);
  uint64_t* sp = reinterpret_cast<uint64_t*>(top - 88);  // sp + 72 is 16-aligned at the call
  uint32_t mxcsr;
  uint16_t fpucw;
  asm volatile("stmxcsr %0" : "=m"(mxcsr));
  asm volatile("fnstcw %0" : "=m"(fpucw));
  sp[0] = fpucw;
  sp[1] = mxcsr;
  sp[2] = 0;                                // r15
  sp[3] = 0;                                // r14
  sp[4] = reinterpret_cast<uint64_t>(fn);   // r13
  sp[5] = reinterpret_cast<uint64_t>(arg);  // r12
  sp[6] = 0;                                // rbx
  sp[7] = 0;                                // rbp
  sp[8] = reinterpret_cast<uint64_t>(&detnas_emu_fiber_start);
  c.sp = sp;
}
#endif

// ---- stacks ----
namespace {
constexpr size_t kPageBytes = 4096;
std::vector<char*> g_stacks;  // usable region [p, p + kStackBytes)
}  // namespace

char* pooled_stack(size_t i) {
  while (g_stacks.size() <= i) {
    void* m = mmap(nullptr, kStackBytes + kPageBytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    DETNAS_CHECK(m != MAP_FAILED, "emu: cannot map a fiber stack");
    mprotect(m, kPageBytes, PROT_NONE);
    g_stacks.push_back(static_cast<char*>(m) + kPageBytes);
  }
  return g_stacks[i];
}

}  // namespace detnas::emu::fiber
