// Runtime: tensors, views, allocator counters, the tape, errors.
#include <doctest/doctest.h>

#include <cmath>

#include "runtime/ops_elementwise.h"
#include "runtime/runtime.h"
#include "tests/test_util.h"

using namespace detnas;
using namespace detnas::rt;

TEST_CASE("tensor: creation, shape, contiguity, views share storage") {
  Tensor t = Tensor::from_vector({2, 3}, {1, 2, 3, 4, 5, 6});
  CHECK(t.dim() == 2);
  CHECK(t.size(-1) == 3);
  CHECK(t.numel() == 6);
  CHECK(t.is_contiguous());
  Tensor v = t.narrow(1, 1, 2);  // [[2,3],[5,6]]
  CHECK_FALSE(v.is_contiguous());
  CHECK(v.to_vector() == std::vector<float>{2, 3, 5, 6});
  v.data()[0] = 20;  // a view writes through to its base
  CHECK(t.to_vector()[1] == 20);
  Tensor r = t.reshape({3, -1});
  CHECK(r.shape() == Shape{3, 2});
  CHECK(r.data() == t.data());
  // narrow along dim 1 of a batch-1 NCHW map stays contiguous (the channel split)
  Tensor m = Tensor::zeros({1, 8, 4, 4});
  CHECK(m.narrow(1, 4, 4).is_contiguous());
  CHECK(m.narrow(1, 4, 4).data() == m.data() + 4 * 16);
}

TEST_CASE("tensor: bad input gives clear errors") {
  Tensor t = Tensor::zeros({2, 3});
  CHECK_THROWS_WITH_AS(t.reshape({4, 2}), doctest::Contains("cannot reshape [2, 3]"), Error);
  CHECK_THROWS_WITH_AS(t.narrow(1, 2, 2), doctest::Contains("out of bounds"), Error);
  CHECK_THROWS_WITH_AS(Tensor::zeros({1, 1, 1, 1, 1, 1}), doctest::Contains("rank 6"), Error);
  CHECK_THROWS_WITH_AS(ops::add(t, Tensor::zeros({3, 2})), doctest::Contains("add: shape mismatch [2, 3] vs [3, 2]"),
                       Error);
  CHECK_THROWS_AS(Tensor().shape(), Error);
  CHECK_THROWS_WITH_AS(t.item(), doctest::Contains("has 6 elements"), Error);
  try {
    DETNAS_CHECK(1 + 1 == 3, "arithmetic ", 42);
  } catch (const Error& e) {
    std::string w = e.what();
    CHECK(w.find("arithmetic 42") != std::string::npos);
    CHECK(w.find("1 + 1 == 3") != std::string::npos);
    CHECK(w.find("test_runtime.cpp") != std::string::npos);
  }
}

TEST_CASE("allocator: 64-byte alignment and steady state without system allocations") {
  auto& A = host_allocator();
  for (int64_t n : {1, 17, 1000, 123457}) {
    Tensor t = Tensor::empty({n});
    CHECK(reinterpret_cast<uintptr_t>(t.data()) % 64 == 0);
  }
  auto loop = [] {
    Tensor w = Tensor::full({64, 32}, 0.5f);
    w.requires_grad_();
    for (int it = 0; it < 3; ++it) {
      Tensor x = Tensor::full({64, 32}, float(it));
      Tensor y = ops::relu(ops::add(x, w));
      Tensor l = ops::sum(ops::mul_scalar(y, 2.0f));
      backward(l);
      w.reset_grad();
    }
  };
  loop();  // warm-up reaches the steady state
  int64_t before = A.stats().system_allocs;
  loop();
  CHECK(A.stats().system_allocs == before);
  CHECK(A.stats().high_water >= A.stats().bytes_in_use);
}

TEST_CASE("autograd: no-grad records nothing; tape freed after backward") {
  Tensor w = Tensor::full({4}, 1.0f);
  w.requires_grad_();
  {
    NoGradGuard ng;
    Tensor y = ops::relu(ops::add(w, w));
    CHECK(tape_size() == 0);
    CHECK_FALSE(y.requires_grad());
  }
  Tensor l = ops::sum(ops::relu(ops::add(w, w)));
  CHECK(tape_size() == 3);
  backward(l);
  CHECK(tape_size() == 0);
  CHECK(w.grad().to_vector() == std::vector<float>{2, 2, 2, 2});
  // a second backward accumulates into .grad
  backward(ops::sum(w));
  CHECK(w.grad().to_vector() == std::vector<float>{3, 3, 3, 3});
  CHECK_THROWS_WITH_AS(backward(ops::sum(Tensor::zeros({2}))), doctest::Contains("does not depend"), Error);
}

TEST_CASE("autograd: gradients through narrow, reshape and contiguous views") {
  // l = sum(relu(narrow(x,1,1,2)) * 3) + sum(reshape(x)), x (2,3)
  Tensor x = Tensor::from_vector({2, 3}, {1, -2, 3, 4, 5, -6});
  x.requires_grad_();
  Tensor a = ops::mul_scalar(ops::relu(x.narrow(1, 1, 2).contiguous()), 3.0f);
  Tensor b = x.reshape({6});
  Tensor l = ops::add(ops::sum(a), ops::sum(b));
  backward(l);
  CHECK(x.grad().to_vector() == std::vector<float>{1, 1, 4, 1, 4, 1});
}
