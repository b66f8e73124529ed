// Test-side helpers of the CPU SIMT emulator: the registration macro for
// kernel-vs-CPU tests and the source scan the coverage test uses.
//
//   DETNAS_EMU_KERNEL_TEST("relu_forward_kernel relu_backward_kernel", "relu kernels match the CPU") {
//     ... launch through the host wrappers or DETNAS_LAUNCH, compare with the CPU twin ...
//   }
// defines the doctest case "emu: <title>", runs its body once per thread order
// (the body sees `order`), and fails unless every named kernel was launched in
// every order; the names count as covered in "emu: N of M CUDA kernels covered".
#pragma once
#include <doctest/doctest.h>

#include <map>
#include <set>
#include <string>
#include <vector>

#include "tests/emu/emu.h"

namespace detnas::emu::test {

using KernelTestBody = void (*)(ThreadOrder order);

// Kernel names registered by DETNAS_EMU_KERNEL_TEST (bare names).
const std::set<std::string>& covered_kernels();
struct KernelTestRegistrar {
  explicit KernelTestRegistrar(const char* kernels);
};
// Runs body in each order, checking the launch log for each named kernel.
void run_kernel_test(const char* kernels, KernelTestBody body);
std::vector<std::string> split_names(const std::string& s);

// Every `__global__` function defined or declared in the .cu files under the
// given folders (and their subfolders one level down): name -> file.
std::map<std::string, std::string> find_global_kernels(const std::vector<std::string>& dirs);
// The same scan over one source text (comments ignored).
std::set<std::string> global_kernels_in(const std::string& source);

}  // namespace detnas::emu::test

#define DETNAS_EMU_CAT2(a, b) a##b
#define DETNAS_EMU_CAT(a, b) DETNAS_EMU_CAT2(a, b)
#define DETNAS_EMU_KERNEL_TEST(kernels, title)                                                              \
  static void DETNAS_EMU_CAT(emu_kernel_test_, __LINE__)(::detnas::emu::ThreadOrder order);                 \
  static const ::detnas::emu::test::KernelTestRegistrar DETNAS_EMU_CAT(emu_kernel_reg_, __LINE__)(kernels); \
  TEST_CASE("emu: " title) {                                                                                \
    ::detnas::emu::test::run_kernel_test(kernels, &DETNAS_EMU_CAT(emu_kernel_test_, __LINE__));             \
  }                                                                                                         \
  static void DETNAS_EMU_CAT(emu_kernel_test_, __LINE__)([[maybe_unused]] ::detnas::emu::ThreadOrder order)
