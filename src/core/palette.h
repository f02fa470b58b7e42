// Palettized weights (Core ML's "palettization"): every value of a tensor replaced by the nearest
// of 2^bits float16 entries of a lookup table, stored as packed bit indices. The table is found by
// 1-D k-means over the tensor's weighted histogram of float16 values (at most 65 536 distinct
// values however large the tensor), as Apple's converter does, instead of over every element.
// One table serves the whole tensor, or each group of output channels its own (Core ML's
// per_grouped_channel granularity): more tables, closer values.
#pragma once

#include <cstdint>
#include <vector>

#include "core/tensor.h"

namespace diffuse {

struct PalettizedTensor {
  int bits = 0;  // 1..8
  Shape shape;   // of the original tensor
  /// Tables: table g serves output channels (dim 0) [g * r, min((g + 1) * r, shape[0])), with
  /// r = palette_group_rows(shape[0], groups).
  int64_t groups = 1;
  /// groups x 2^bits float16 entries, each table ascending (a tensor with fewer distinct values
  /// than entries repeats its largest one).
  std::vector<uint16_t> palette;
  std::vector<uint8_t> packed;  // ceil(numel * bits / 8) bytes, little-endian bit order
};

/// Output channels per table when `rows` channels share `groups` tables (the last may have fewer).
int64_t palette_group_rows(int64_t rows, int64_t groups);

/// Palettizes float tensor `t` (F32/F16/BF16, finite) with 2^bits entries per table: one table,
/// or with `group_channels` > 0 one per group of at most that many output channels (balanced:
/// ceil(shape[0] / group_channels) tables). ConfigError for bits outside 1..8 or a negative
/// group size, ShapeError for non-finite values.
PalettizedTensor palettize(const Tensor& t, int bits, int64_t group_channels = 0);

/// The float16 tensor a palettized one stands for (each index looked up in its group's table of
/// `entries` values; `groups` tables one after another). FileError for inconsistent sizes.
Tensor expand_palette(const uint16_t* palette, int64_t entries, int64_t groups,
                      const uint8_t* packed, size_t packed_bytes, int bits, const Shape& shape);

}  // namespace diffuse
