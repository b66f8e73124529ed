// Deterministic random numbers: one Rng stream per purpose (init, data order,
// augmentation, path sampling, evolution). The state is two 64-bit words so it
// can be saved in a checkpoint sidecar and restored exactly.
#pragma once
#include <cmath>
#include <cstdint>

namespace detnas {

class Rng {
 public:
  explicit Rng(uint64_t seed = 0x5eedULL) { seed_with(seed); }
  void seed_with(uint64_t seed) {
    // splitmix64 to spread the seed over both words of xoroshiro128+.
    uint64_t z = seed;
    s0_ = splitmix(z);
    s1_ = splitmix(z);
    if (s0_ == 0 && s1_ == 0) s1_ = 1;
  }
  uint64_t next_u64() {
    uint64_t a = s0_, b = s1_, r = a + b;
    b ^= a;
    s0_ = rotl(a, 24) ^ b ^ (b << 16);
    s1_ = rotl(b, 37);
    return r;
  }
  // Uniform in [0, 1) with 53 random bits.
  double uniform() { return (next_u64() >> 11) * (1.0 / 9007199254740992.0); }
  double uniform(double lo, double hi) { return lo + (hi - lo) * uniform(); }
  // Uniform integer in [0, n), n > 0 (rejection sampling: no modulo bias).
  uint64_t below(uint64_t n) {
    uint64_t limit = ~uint64_t(0) - (~uint64_t(0) % n);
    uint64_t x;
    do x = next_u64();
    while (x >= limit);
    return x % n;
  }
  // Standard normal by Box-Muller (no cached second value: state stays two words).
  double normal() {
    double u1 = uniform(), u2 = uniform();
    if (u1 < 1e-300) u1 = 1e-300;
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
  }
  uint64_t state0() const { return s0_; }
  uint64_t state1() const { return s1_; }
  void set_state(uint64_t a, uint64_t b) {
    s0_ = a;
    s1_ = b;
  }

 private:
  static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  static uint64_t splitmix(uint64_t& z) {
    uint64_t x = (z += 0x9e3779b97f4a7c15ULL);
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
  }
  uint64_t s0_ = 0, s1_ = 0;
};

}  // namespace detnas
