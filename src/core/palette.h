// Palettized weights (Core ML's "palettization"): every value of a tensor replaced by the nearest
// of 2^bits float16 entries of a lookup table, stored as packed bit indices. The table is found by
// 1-D k-means over the tensor's weighted histogram of float16 values (at most 65 536 distinct
// values however large the tensor), as Apple's converter does, instead of over every element.
#pragma once

#include <cstdint>
#include <vector>

#include "core/tensor.h"

namespace diffuse {

struct PalettizedTensor {
  int bits = 0;                   // 1..8
  Shape shape;                    // of the original tensor
  std::vector<uint16_t> palette;  // float16 entries, 2^bits (or fewer distinct values), ascending
  std::vector<uint8_t> packed;    // ceil(numel * bits / 8) bytes, little-endian bit order
};

/// Palettizes float tensor `t` (F32/F16/BF16, finite) with 2^bits entries; ConfigError for bits
/// outside 1..8, ShapeError for non-finite values.
PalettizedTensor palettize(const Tensor& t, int bits);

/// The float16 tensor a palettized one stands for (each index looked up in the palette).
Tensor expand_palette(const uint16_t* palette, int64_t palette_size, const uint8_t* packed,
                      size_t packed_bytes, int bits, const Shape& shape);

}  // namespace diffuse
