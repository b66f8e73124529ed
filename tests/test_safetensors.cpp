// safetensors round trip, atomic writes, and clear errors on damaged files.
#include <doctest/doctest.h>
#include <unistd.h>

#include "nn/safetensors.h"
#include "runtime/fs.h"
#include "tests/test_util.h"

using namespace detnas;
using namespace detnas::rt;

static std::string tmp_path(const char* name) {
  return std::string("/tmp/detnas_test_") + std::to_string(::getpid()) + "_" + name;
}

TEST_CASE("safetensors: round trip keeps names, shapes, values and metadata") {
  std::string p = tmp_path("rt.safetensors");
  Tensor a = Tensor::from_vector({2, 3}, {1, 2, 3, 4, 5, -6.5f});
  Tensor b = Tensor::from_vector({1}, {3.25f});
  Tensor c = Tensor::zeros({0, 4});
  nn::save_safetensors(p, {{"stage2.3.choice1.main.dw.weight", a}, {"b", b}, {"empty", c}}, {{"arch", "supernet"}});
  auto f = nn::load_safetensors(p);
  REQUIRE(f.tensors.size() == 3);
  CHECK(f.tensors[0].first == "stage2.3.choice1.main.dw.weight");
  CHECK(f.tensors[0].second.shape() == Shape{2, 3});
  CHECK(f.tensors[0].second.to_vector() == a.to_vector());
  CHECK(f.find("b")->item() == 3.25f);
  CHECK(f.find("empty")->shape() == Shape{0, 4});
  CHECK(f.metadata.at("arch") == "supernet");
  CHECK_FALSE(file_exists(p + ".tmp." + std::to_string(::getpid())));
  // The header is 8-byte aligned as the format recommends.
  std::string bytes = read_file(p);
  uint64_t n = 0;
  for (int i = 0; i < 8; ++i) n |= uint64_t(static_cast<unsigned char>(bytes[size_t(i)])) << (8 * i);
  CHECK(n % 8 == 0);
  ::unlink(p.c_str());
}

TEST_CASE("safetensors: truncated, corrupt and wrong-dtype files give errors naming the file") {
  std::string p = tmp_path("bad.safetensors");
  nn::save_safetensors(p, {{"w", Tensor::full({4, 4}, 1.f)}});
  std::string good = read_file(p);
  CHECK_THROWS_WITH_AS(nn::parse_safetensors(good.substr(0, good.size() - 5), "ck.safetensors"),
                       doctest::Contains("ck.safetensors: tensor 'w' data"), Error);
  CHECK_THROWS_WITH_AS(nn::parse_safetensors(good.substr(0, 5), "ck.safetensors"), doctest::Contains("truncated"),
                       Error);
  std::string bad_len = good;
  bad_len[7] = char(0x7f);
  CHECK_THROWS_WITH_AS(nn::parse_safetensors(bad_len, "x.st"), doctest::Contains("header length"), Error);
  std::string bad_json = good;
  bad_json[8] = '[';
  CHECK_THROWS_WITH_AS(nn::parse_safetensors(bad_json, "x.st"), doctest::Contains("x.st: header"), Error);
  std::string f16 = good;
  auto pos = f16.find("F32");
  f16.replace(pos, 3, "F16");
  CHECK_THROWS_WITH_AS(nn::parse_safetensors(f16, "x.st"), doctest::Contains("dtype F16"), Error);
  // An empty tensor (a zero entry) whose other entries overflow 64 bits: its
  // strides would (a fuzzing finding, fuzz/regressions/safetensors/).
  const std::string header =
      "{\"t\":{\"dtype\":\"F32\",\"shape\":[0,94967296,4,29,2944967296],\"data_offsets\":[0,0]}}";
  std::string empty_big(8, '\0');
  empty_big[0] = char(header.size());
  empty_big += header;
  CHECK_THROWS_WITH_AS(nn::parse_safetensors(empty_big, "x.st"), doctest::Contains("overflows 64 bits"), Error);
  CHECK_THROWS_WITH_AS(nn::load_safetensors("/nonexistent/ck.safetensors"),
                       doctest::Contains("/nonexistent/ck.safetensors"), Error);
  ::unlink(p.c_str());
}
