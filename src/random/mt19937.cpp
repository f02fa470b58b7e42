#include "random/mt19937.h"

#include <algorithm>

namespace diffuse {

namespace {

constexpr int kN = Mt19937::kStateSize;
constexpr int kM = 397;
constexpr uint32_t kMatrixA = 0x9908b0dfu;
constexpr uint32_t kUpperMask = 0x80000000u;
constexpr uint32_t kLowerMask = 0x7fffffffu;

// One step of the recurrence: the top bit of `a` joined with the low 31 bits of `b`, shifted,
// xor-ed with the twist matrix when that joined word is odd, then with the word M ahead.
inline uint32_t twist(uint32_t far, uint32_t a, uint32_t b) {
  const uint32_t y = (a & kUpperMask) | (b & kLowerMask);
  return far ^ (y >> 1) ^ ((b & 1u) ? kMatrixA : 0u);
}

}  // namespace

void Mt19937::seed_genrand(uint32_t seed) {
  state_[0] = seed;
  for (int i = 1; i < kN; ++i) {
    const uint32_t prev = state_[static_cast<size_t>(i - 1)];
    state_[static_cast<size_t>(i)] = 1812433253u * (prev ^ (prev >> 30)) + static_cast<uint32_t>(i);
  }
  pos_ = kN;
}

void Mt19937::seed_by_array(const uint32_t* key, size_t length) {
  seed_genrand(19650218u);
  auto& s = state_;
  size_t i = 1, j = 0;
  for (size_t k = std::max<size_t>(static_cast<size_t>(kN), length); k > 0; --k) {
    const uint32_t prev = s[i - 1];
    s[i] = (s[i] ^ ((prev ^ (prev >> 30)) * 1664525u)) + key[j] + static_cast<uint32_t>(j);
    ++i;
    ++j;
    if (i >= static_cast<size_t>(kN)) {
      s[0] = s[kN - 1];
      i = 1;
    }
    if (j >= length) j = 0;
  }
  for (size_t k = kN - 1; k > 0; --k) {
    const uint32_t prev = s[i - 1];
    s[i] = (s[i] ^ ((prev ^ (prev >> 30)) * 1566083941u)) - static_cast<uint32_t>(i);
    ++i;
    if (i >= static_cast<size_t>(kN)) {
      s[0] = s[kN - 1];
      i = 1;
    }
  }
  s[0] = 0x80000000u;  // guarantees a non-zero initial state
  pos_ = kN;
}

void Mt19937::regenerate() {
  auto& s = state_;
  int i = 0;
  for (; i < kN - kM; ++i) s[i] = twist(s[i + kM], s[i], s[i + 1]);
  for (; i < kN - 1; ++i) s[i] = twist(s[i + kM - kN], s[i], s[i + 1]);
  s[kN - 1] = twist(s[kM - 1], s[kN - 1], s[0]);
  pos_ = 0;
}

}  // namespace diffuse
