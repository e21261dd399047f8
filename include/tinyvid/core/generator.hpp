#pragma once
// Seeded random numbers that are the same on every machine: the engine is std::mt19937_64, whose
// output the C++ standard fixes; the distributions are written here because std's are not portable.
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <random>
#include <sstream>
#include <string>

#include "tinyvid/core/error.hpp"

namespace tv {

class Generator {
 public:
  explicit Generator(uint64_t seed = 5489u) : engine_(seed) {}
  void manual_seed(uint64_t seed) {
    engine_.seed(seed);
    has_spare_ = false;
  }
  uint64_t next_u64() { return engine_(); }
  // Uniform in [0, 1) with 53 random bits.
  double next_double() { return static_cast<double>(engine_() >> 11) * 0x1.0p-53; }
  double uniform(double lo, double hi) { return lo + (hi - lo) * next_double(); }
  // Standard normal by Box-Muller; the second value of each pair is kept for the next call.
  double normal() {
    if (has_spare_) {
      has_spare_ = false;
      return spare_;
    }
    double u1 = 1.0 - next_double();  // in (0, 1]: log(u1) is finite
    double u2 = next_double();
    double r = std::sqrt(-2.0 * std::log(u1));
    constexpr double two_pi = 6.283185307179586476925286766559;
    spare_ = r * std::sin(two_pi * u2);
    has_spare_ = true;
    return r * std::cos(two_pi * u2);
  }
  // Uniform integer in [0, n), without modulo bias.
  uint64_t randint(uint64_t n) {
    uint64_t limit = UINT64_MAX - UINT64_MAX % n;
    uint64_t x;
    do x = engine_(); while (x >= limit);
    return x % n;
  }

  // The whole state as text (a checkpoint stores it): restoring it continues the same sequence.
  std::string state() const {
    std::ostringstream out;
    out << engine_ << ' ' << has_spare_ << ' ' << std::hexfloat << spare_;
    return out.str();
  }
  void set_state(const std::string& s) {
    std::istringstream in(s);
    std::mt19937_64 engine;
    bool has_spare = false;
    std::string spare_text;
    in >> engine >> has_spare >> spare_text;
    TV_CHECK(!in.fail(), "Generator::set_state: not a generator state (expected the text of Generator::state())");
    engine_ = engine;
    has_spare_ = has_spare;
    spare_ = std::strtod(spare_text.c_str(), nullptr);
  }

 private:
  std::mt19937_64 engine_;
  bool has_spare_ = false;
  double spare_ = 0.0;
};

// The generator used when a function is not given one; tv::manual_seed(s) seeds it, as torch.manual_seed.
// splitmix64's finalizer: derives unrelated seeds from related inputs (a seed, an epoch, an index...),
// so a sample's random draws depend only on what identifies it, never on thread timing.
inline uint64_t mix_seed(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

inline Generator& default_generator() {
  static Generator g;
  return g;
}
inline void manual_seed(uint64_t seed) { default_generator().manual_seed(seed); }

}  // namespace tv
