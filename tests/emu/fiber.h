// Fibers for the CPU SIMT emulator (tests/emu/emu.cpp): a minimal context switch
// (a few lines of x86-64 assembly; ucontext on other targets or with
// -DDETNAS_EMU_UCONTEXT) and a pool of mmap'd stacks with a guard page below each.
// Not a general coroutine library: a fiber never returns from its function and
// never moves to another OS thread.
#pragma once
#include <cstddef>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#define DETNAS_EMU_ASAN 1
#endif
#if !defined(__x86_64__) && !defined(DETNAS_EMU_UCONTEXT)
#define DETNAS_EMU_UCONTEXT 1
#endif
#if defined(DETNAS_EMU_UCONTEXT)
#include <ucontext.h>
#endif

namespace detnas::emu::fiber {

#if defined(DETNAS_EMU_UCONTEXT)
struct Context {
  ucontext_t uc;
};
#else
struct Context {
  void* sp = nullptr;  // saved stack pointer; the registers are on that stack
};
#endif

#if defined(DETNAS_EMU_ASAN)
constexpr size_t kStackBytes = 256 * 1024;  // ASan frames are several times larger
#else
constexpr size_t kStackBytes = 64 * 1024;
#endif

// Prepares c so that the first switch to it runs fn(arg) on [stack, stack + size).
void init(Context& c, char* stack, size_t size, void (*fn)(void*), void* arg);
// Saves the current context in `from` and continues in `to`.
void switch_to(Context& from, Context& to);
// The i-th stack of the pool (kStackBytes each), mapped on first use and kept.
// Not thread-safe: the emulator serialises launches.
char* pooled_stack(size_t i);

}  // namespace detnas::emu::fiber
