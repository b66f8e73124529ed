// Emulated strided copy (kernels/copy_cuda.cu) against cpu::strided_copy: a
// transpose, a channel slice, a broadcast-free permutation of rank 5, rank 0, and
// both write modes; bit-exact.
// clang-format off
#include "tests/emu/emu.h"  // first: renames namespace cuda and defines DETNAS_EMU
// clang-format on

#include <vector>

#include "kernels/copy.h"
#include "kernels/copy_cuda.h"
#include "tests/emu/emu_test.h"
#include "tests/test_util.h"

using namespace detnas;
using kernels::StridedLayout;
namespace kc = detnas::kernels::cuda;
namespace kcpu = detnas::kernels::cpu;

namespace {
StridedLayout layout(std::vector<int64_t> shape, std::vector<int64_t> src, std::vector<int64_t> dst) {
  StridedLayout L;
  L.rank = int(shape.size());
  for (size_t k = 0; k < shape.size(); ++k) L.shape[k] = shape[k], L.src_stride[k] = src[k], L.dst_stride[k] = dst[k];
  return L;
}
}  // namespace

DETNAS_EMU_KERNEL_TEST("strided_copy_kernel", "strided_copy_kernel matches cpu::strided_copy") {
  const StridedLayout cases[] = {
      layout({5, 7}, {1, 5}, {7, 1}),                                 // transpose
      layout({2, 3, 4, 5}, {120, 20, 5, 1}, {60, 20, 5, 1}),          // channel slice 3 of 6 -> contiguous
      layout({2, 3, 2, 3, 2}, {1, 2, 6, 12, 36}, {36, 12, 6, 2, 1}),  // rank-5 permutation
      layout({}, {}, {}),                                             // one element
  };
  for (const StridedLayout& L : cases) {
    CAPTURE(L.rank);
    const std::vector<float> src = test::randn_f(240, 121), dst0 = test::randn_f(240, 122);
    for (GradientMode mode : {GradientMode::Overwrite, GradientMode::Accumulate}) {
      std::vector<float> r = dst0, g = dst0;
      kcpu::strided_copy(L, src.data(), r.data(), mode);
      kc::strided_copy(L, src.data(), g.data(), mode, nullptr);
      CHECK(test::check_close("strided_copy", test::to_double(g), test::to_double(r), {240}, test::Tol::exact()));
    }
  }
}
