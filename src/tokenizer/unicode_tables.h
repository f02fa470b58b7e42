// Raw Unicode data tables for the tokenizer, generated into unicode_tables.cpp by
// tools/gen/gen_unicode_tables.py. Query them through tokenizer/unicode.h, not directly.
#pragma once

#include <cstddef>
#include <cstdint>

namespace diffuse::unicode_tables {

/// [first, last] all share General_Category class `cls`: 1 = letter (L*), 2 = number (N*).
struct ClassRange {
  uint32_t first, last;
  uint8_t cls;
};

/// Every `stride`-th codepoint from `first` to `last` lowercases to itself + `delta`.
struct LowerRange {
  uint32_t first, last;
  int32_t delta;
  uint8_t stride;
};

/// [first, last] all have canonical combining class `ccc` (non-zero).
struct CombiningRange {
  uint32_t first, last;
  uint8_t ccc;
};

/// One level of canonical decomposition: cp -> first [second]; second == 0 for singletons.
/// `composes` is 1 when NFC recomposes first+second back into cp (a primary composite).
struct Decomposition {
  uint32_t cp, first, second;
  uint8_t composes;
};

extern const ClassRange kClassRanges[];
extern const size_t kClassRangeCount;
extern const LowerRange kLowerRanges[];
extern const size_t kLowerRangeCount;
extern const CombiningRange kCombiningRanges[];
extern const size_t kCombiningRangeCount;
extern const Decomposition kDecompositions[];
extern const size_t kDecompositionCount;

}  // namespace diffuse::unicode_tables
