// MT19937: the 32-bit Mersenne Twister (Matsumoto & Nishimura, 1998), shared by the "torch" and
// "numpy" sources.
//
// Both libraries run the reference algorithm unchanged; they differ only in how they seed it and in
// how they turn 32-bit words into floats, so the engine lives here once and each source adds its
// own conversions. Seeding a fresh engine leaves it "exhausted" (pos == N), so the first draw
// regenerates the whole state block, exactly as both reference implementations do.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>

namespace diffuse {

class Mt19937 {
 public:
  static constexpr int kStateSize = 624;

  /// Seeded with init_genrand(seed) (5489 is the reference default).
  explicit Mt19937(uint32_t seed = 5489) { seed_genrand(seed); }

  /// The reference init_genrand: the linear recurrence 1812433253 * (s ^ (s >> 30)) + i.
  void seed_genrand(uint32_t seed);
  /// The reference init_by_array (mt19937ar.c, 2002): init_genrand(19650218), then mixes the key
  /// in. `key` must have at least one element.
  void seed_by_array(const uint32_t* key, size_t length);

  /// Next tempered 32-bit output.
  uint32_t operator()() {
    if (pos_ >= kStateSize) regenerate();
    return temper(state_[static_cast<size_t>(pos_++)]);
  }

 private:
  std::array<uint32_t, kStateSize> state_{};
  int pos_ = kStateSize;

  /// Produces the next 624 untempered words in place (the "twist").
  void regenerate();

  static uint32_t temper(uint32_t y) {
    y ^= y >> 11;
    y ^= (y << 7) & 0x9d2c5680u;
    y ^= (y << 15) & 0xefc60000u;
    y ^= y >> 18;
    return y;
  }
};

}  // namespace diffuse
