// Device selection, and the CUDA checks that need a real GPU: skipped visibly
// (never counted as passed) when none is usable; DETNAS_REQUIRE_CUDA=1 turns a
// missing GPU into a failure.
#include <doctest/doctest.h>

#include <cstdlib>

#include "runtime/runtime.h"
#include "tests/test_util.h"
#ifdef DETNAS_CUDA
#include <fstream>
#include <string>

#include "kernels/elementwise.h"
#include "kernels/elementwise_cuda.h"
#include "kernels/gemm_cublas.h"
#endif

using namespace detnas;
using namespace detnas::rt;

static bool require_cuda() {
  const char* v = std::getenv("DETNAS_REQUIRE_CUDA");
  return v && *v && *v != '0';
}

TEST_CASE("device: auto resolves to a usable device; cuda fails clearly without a GPU") {
  Device d = select_device(DeviceRequest::Auto);
  CHECK(d == (cuda_usable() ? Device::CUDA : Device::CPU));
  CHECK(select_device(DeviceRequest::CPU) == Device::CPU);
  if (!cuda_usable()) {
    CHECK_THROWS_WITH_AS(select_device(DeviceRequest::CUDA), doctest::Contains("no usable GPU"), Error);
    CHECK_THROWS_AS(Tensor::zeros({2}, Device::CUDA), Error);
  }
  CHECK(parse_device_request("cuda") == DeviceRequest::CUDA);
  CHECK_THROWS_WITH_AS(parse_device_request("tpu"), doctest::Contains("unknown device 'tpu'"), Error);
}

#if defined(DETNAS_CUDA) && !defined(DETNAS_EMU_GPU)
// Whether a shared library whose file name contains `name` is mapped into this process.
static bool library_mapped(const std::string& name) {
  std::ifstream f("/proc/self/maps");
  std::string line;
  while (std::getline(f, line))
    if (line.find(name) != std::string::npos) return true;
  return false;
}

// Needs the CUDA toolkit's libraries (as the link does), not a GPU.
TEST_CASE("device: cuBLAS is not loaded at start-up; it loads on first use with every entry point") {
  if (!cuda_usable())  // a usable GPU means the probe has loaded it already
    CHECK_MESSAGE(!library_mapped("libcublas"), "libcublas is mapped before anything asked for it");
  std::string why;
  CHECK_MESSAGE(kernels::cuda::cublas_available(&why), why);
  CHECK(why.empty());
  CHECK(library_mapped("libcublas"));
}
#endif

TEST_CASE("cuda: elementwise kernels match the CPU kernels on a real GPU") {
  if (!cuda_usable()) {
    if (require_cuda()) FAIL("DETNAS_REQUIRE_CUDA=1 but " << cuda_probe_message());
    test::test_skip("cuda: elementwise kernels on GPU — " + cuda_probe_message());
    return;
  }
#ifdef DETNAS_CUDA
  const int64_t n = 1000003;
  Tensor x = Tensor::from_vector({n}, test::randn_f(n, 7));
  Tensor dy = Tensor::from_vector({n}, test::randn_f(n, 8));
  Tensor xd = x.to(Device::CUDA), dyd = dy.to(Device::CUDA);
  Tensor yd = Tensor::empty({n}, Device::CUDA), dxd = Tensor::empty({n}, Device::CUDA);
  kernels::cuda::relu_forward(n, xd.data(), yd.data(), nullptr);
  kernels::cuda::relu_backward(n, xd.data(), dyd.data(), dxd.data(), GradientMode::Overwrite, nullptr);
  std::vector<float> y(static_cast<size_t>(n)), dx(static_cast<size_t>(n));
  kernels::cpu::relu_forward(n, x.data(), y.data());
  kernels::cpu::relu_backward(n, x.data(), dy.data(), dx.data(), GradientMode::Overwrite);
  CHECK(yd.to_vector() == y);
  CHECK(dxd.to_vector() == dx);
#endif
}
