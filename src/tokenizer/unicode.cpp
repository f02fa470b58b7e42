#include "tokenizer/unicode.h"

#include <algorithm>
#include <cstdint>
#include <unordered_map>
#include <vector>

#include "tokenizer/unicode_tables.h"

namespace diffuse::unicode {

namespace ut = unicode_tables;

// ---------------------------------------------------------------------------------------------
// UTF-8

std::u32string decode_utf8(std::string_view bytes) {
  std::u32string out;
  out.reserve(bytes.size());
  const auto* s = reinterpret_cast<const unsigned char*>(bytes.data());
  const size_t n = bytes.size();
  size_t i = 0;
  while (i < n) {
    const unsigned b0 = s[i];
    if (b0 < 0x80) {
      out.push_back(b0);
      ++i;
      continue;
    }
    // Sequence length and the valid range of the second byte (Unicode Table 3-7), which rules
    // out overlong forms, surrogates and values above U+10FFFF up front.
    int len = 0;
    unsigned lo = 0x80, hi = 0xBF;
    char32_t cp = 0;
    if (b0 >= 0xC2 && b0 <= 0xDF) {
      len = 2, cp = b0 & 0x1F;
    } else if (b0 >= 0xE0 && b0 <= 0xEF) {
      len = 3, cp = b0 & 0x0F;
      if (b0 == 0xE0) lo = 0xA0;
      if (b0 == 0xED) hi = 0x9F;
    } else if (b0 >= 0xF0 && b0 <= 0xF4) {
      len = 4, cp = b0 & 0x07;
      if (b0 == 0xF0) lo = 0x90;
      if (b0 == 0xF4) hi = 0x8F;
    } else {
      out.push_back(kReplacementChar);  // stray continuation byte or never-valid lead byte
      ++i;
      continue;
    }
    size_t j = i + 1;
    bool ok = true;
    for (int k = 1; k < len; ++k, ++j) {
      const unsigned lo_k = k == 1 ? lo : 0x80, hi_k = k == 1 ? hi : 0xBF;
      if (j >= n || s[j] < lo_k || s[j] > hi_k) {
        ok = false;
        break;
      }
      cp = (cp << 6) | (s[j] & 0x3F);
    }
    // On failure the valid prefix [i, j) is one maximal subpart: one U+FFFD, resume at j.
    out.push_back(ok ? cp : kReplacementChar);
    i = j;
  }
  return out;
}

void append_utf8(std::string& out, char32_t c) {
  if (c < 0x80) {
    out.push_back(static_cast<char>(c));
  } else if (c < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (c >> 6)));
    out.push_back(static_cast<char>(0x80 | (c & 0x3F)));
  } else if (c < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (c >> 12)));
    out.push_back(static_cast<char>(0x80 | ((c >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (c & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (c >> 18)));
    out.push_back(static_cast<char>(0x80 | ((c >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((c >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (c & 0x3F)));
  }
}

std::string encode_utf8(std::u32string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char32_t c : text) append_utf8(out, c);
  return out;
}

// ---------------------------------------------------------------------------------------------
// Classes and lowercasing

namespace {

// Finds the range whose `last` is the first >= c; the caller checks `first`.
template <typename Range>
const Range* find_range(const Range* table, size_t count, char32_t c) {
  const Range* end = table + count;
  const Range* it =
      std::lower_bound(table, end, c, [](const Range& r, char32_t v) { return r.last < v; });
  return it != end && it->first <= c ? it : nullptr;
}

bool is_white_space(char32_t c) {
  // Unicode White_Space (PropList.txt), stable since Unicode 6.3: what Oniguruma's \s matches.
  return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F ||
         c == 0x3000;
}

}  // namespace

CharClass char_class(char32_t c) {
  if (c < 0x80) {
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) return CharClass::Letter;
    if (c >= '0' && c <= '9') return CharClass::Number;
    return is_white_space(c) ? CharClass::Space : CharClass::Other;
  }
  if (is_white_space(c)) return CharClass::Space;
  const ut::ClassRange* r = find_range(ut::kClassRanges, ut::kClassRangeCount, c);
  if (!r) return CharClass::Other;
  return r->cls == 1 ? CharClass::Letter : CharClass::Number;
}

void append_lowercase(std::u32string& out, char32_t c) {
  if (c < 0x80) {
    out.push_back(c >= 'A' && c <= 'Z' ? c + 32 : c);
    return;
  }
  if (c == 0x130) {  // the one unconditional multi-character lowercase mapping
    out.push_back('i');
    out.push_back(0x307);
    return;
  }
  const ut::LowerRange* r = find_range(ut::kLowerRanges, ut::kLowerRangeCount, c);
  if (r && (c - r->first) % r->stride == 0) {
    out.push_back(static_cast<char32_t>(static_cast<int64_t>(c) + r->delta));
  } else {
    out.push_back(c);
  }
}

// ---------------------------------------------------------------------------------------------
// NFC: full canonical decomposition, canonical ordering, then canonical composition (UAX #15).

namespace {

// Hangul syllables decompose and compose algorithmically (Unicode 3.12).
constexpr char32_t kSBase = 0xAC00, kLBase = 0x1100, kVBase = 0x1161, kTBase = 0x11A7;
constexpr char32_t kLCount = 19, kVCount = 21, kTCount = 28, kNCount = kVCount * kTCount,
                   kSCount = kLCount * kNCount;

uint8_t combining_class(char32_t c) {
  if (c < 0x300) return 0;
  const ut::CombiningRange* r = find_range(ut::kCombiningRanges, ut::kCombiningRangeCount, c);
  return r ? r->ccc : 0;
}

const ut::Decomposition* find_decomposition(char32_t c) {
  const ut::Decomposition* end = ut::kDecompositions + ut::kDecompositionCount;
  const ut::Decomposition* it = std::lower_bound(
      ut::kDecompositions, end, c, [](const ut::Decomposition& d, char32_t v) { return d.cp < v; });
  return it != end && it->cp == c ? it : nullptr;
}

void decompose(char32_t c, std::u32string& out) {
  if (c >= kSBase && c < kSBase + kSCount) {
    const char32_t s = c - kSBase;
    out.push_back(kLBase + s / kNCount);
    out.push_back(kVBase + (s % kNCount) / kTCount);
    if (s % kTCount != 0) out.push_back(kTBase + s % kTCount);
    return;
  }
  const ut::Decomposition* d = c < 0xC0 ? nullptr : find_decomposition(c);
  if (!d) {
    out.push_back(c);
    return;
  }
  decompose(d->first, out);
  if (d->second != 0) decompose(d->second, out);
}

// Primary composites keyed by (first << 21 | second); built once, read-only afterwards.
const std::unordered_map<uint64_t, char32_t>& composition_map() {
  static const std::unordered_map<uint64_t, char32_t> map = [] {
    std::unordered_map<uint64_t, char32_t> m;
    m.reserve(ut::kDecompositionCount);
    for (size_t i = 0; i < ut::kDecompositionCount; ++i) {
      const ut::Decomposition& d = ut::kDecompositions[i];
      if (d.composes) m.emplace((uint64_t(d.first) << 21) | d.second, d.cp);
    }
    return m;
  }();
  return map;
}

// Returns the primary composite of (a, b), or 0 when there is none.
char32_t compose_pair(char32_t a, char32_t b) {
  if (a >= kLBase && a < kLBase + kLCount && b >= kVBase && b < kVBase + kVCount)
    return kSBase + ((a - kLBase) * kVCount + (b - kVBase)) * kTCount;
  if (a >= kSBase && a < kSBase + kSCount && (a - kSBase) % kTCount == 0 && b > kTBase &&
      b < kTBase + kTCount)
    return a + (b - kTBase);
  const auto& map = composition_map();
  const auto it = map.find((uint64_t(a) << 21) | b);
  return it == map.end() ? 0 : it->second;
}

}  // namespace

std::u32string nfc(std::u32string_view text) {
  // Below U+0300 nothing decomposes-and-stays-decomposed and nothing combines, so the common
  // (Latin-1) prompt skips all the work.
  if (std::all_of(text.begin(), text.end(), [](char32_t c) { return c < 0x300; }))
    return std::u32string(text);

  std::u32string d;
  d.reserve(text.size() + 8);
  for (char32_t c : text) decompose(c, d);

  // Canonical ordering: a stable sort by combining class within each run of non-starters.
  std::vector<uint8_t> ccc(d.size());
  for (size_t i = 0; i < d.size(); ++i) ccc[i] = combining_class(d[i]);
  for (size_t i = 1; i < d.size(); ++i) {
    for (size_t j = i; j > 0 && ccc[j] != 0 && ccc[j - 1] > ccc[j]; --j) {
      std::swap(d[j], d[j - 1]);
      std::swap(ccc[j], ccc[j - 1]);
    }
  }

  // Composition: each character combines with the last starter unless blocked, i.e. unless a
  // character in between has combining class 0 or >= its own.
  std::u32string out;
  out.reserve(d.size());
  ptrdiff_t starter = -1;
  uint8_t last_ccc = 0;  // class of the last character kept after the starter
  for (size_t i = 0; i < d.size(); ++i) {
    const char32_t c = d[i];
    const uint8_t cc = ccc[i];
    if (starter >= 0) {
      const bool adjacent = static_cast<size_t>(starter) + 1 == out.size();
      if (adjacent || last_ccc < cc) {
        const char32_t composite = compose_pair(out[starter], c);
        if (composite != 0) {
          out[starter] = composite;
          continue;
        }
      }
    }
    if (cc == 0) {
      starter = static_cast<ptrdiff_t>(out.size());
      last_ccc = 0;
    } else {
      last_ccc = cc;
    }
    out.push_back(c);
  }
  return out;
}

}  // namespace diffuse::unicode
