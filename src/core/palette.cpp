#include "core/palette.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <string>

#include "core/thread_pool.h"
#include "diffuse/error.hpp"

namespace diffuse {

namespace {

constexpr int kHalfCodes = 1 << 16;

struct WeightedValue {
  float value;
  double weight;
  uint16_t code;
};

/// The distinct float16 values of codes[0, n) with their counts, ascending by value.
std::vector<WeightedValue> half_histogram(const uint16_t* codes, size_t n) {
  std::vector<uint64_t> counts(kHalfCodes, 0);
  for (size_t i = 0; i < n; ++i) ++counts[codes[i]];
  std::vector<WeightedValue> values;
  for (int c = 0; c < kHalfCodes; ++c) {
    if (counts[static_cast<size_t>(c)] == 0) continue;
    const float v = half_to_float(static_cast<uint16_t>(c));
    if (!std::isfinite(v)) throw ShapeError("palettize: the tensor holds a non-finite value");
    values.push_back(
        {v, static_cast<double>(counts[static_cast<size_t>(c)]), static_cast<uint16_t>(c)});
  }
  std::sort(values.begin(), values.end(),
            [](const WeightedValue& a, const WeightedValue& b) { return a.value < b.value; });
  return values;
}

/// Weighted 1-D k-means (Lloyd) over sorted values: centroids start at weighted quantiles; each
/// pass assigns values to the nearest centroid in one sweep (boundaries are the midpoints).
std::vector<double> kmeans_1d(const std::vector<WeightedValue>& values, size_t k) {
  double total = 0;
  for (const auto& v : values) total += v.weight;
  std::vector<double> centroids(k);
  double seen = 0;
  size_t j = 0;
  for (const auto& v : values) {
    seen += v.weight;
    while (j < k && seen >= total * (static_cast<double>(j) + 0.5) / static_cast<double>(k))
      centroids[j++] = v.value;
  }
  for (; j < k; ++j) centroids[j] = values.back().value;
  // A value heavier than 1/k of the total starts several centroids at once; move the repeats on to
  // the next distinct values so that every entry of the table gets used (values.size() > k here).
  size_t next = 0;
  for (size_t c = 0; c < k; ++c) {
    while (next < values.size() && values[next].value < centroids[c]) ++next;
    if (c > 0 && centroids[c] <= centroids[c - 1]) {
      while (next < values.size() && values[next].value <= centroids[c - 1]) ++next;
      if (next == values.size()) break;
      centroids[c] = values[next].value;
    }
  }
  std::sort(centroids.begin(), centroids.end());
  for (int pass = 0; pass < 50; ++pass) {
    std::vector<double> sum(k, 0), weight(k, 0);
    size_t c = 0;
    for (const auto& v : values) {
      while (c + 1 < k && v.value > 0.5 * (centroids[c] + centroids[c + 1])) ++c;
      sum[c] += v.weight * v.value;
      weight[c] += v.weight;
    }
    bool moved = false;
    for (size_t i = 0; i < k; ++i) {
      if (weight[i] == 0) continue;  // an empty cluster keeps its place
      const double mean = sum[i] / weight[i];
      moved |= mean != centroids[i];
      centroids[i] = mean;
    }
    std::sort(centroids.begin(), centroids.end());
    if (!moved) break;
  }
  return centroids;
}

void put_bits(std::vector<uint8_t>& packed, size_t index, int bits, uint32_t value) {
  const size_t bit = index * static_cast<size_t>(bits);
  for (int b = 0; b < bits; ++b)
    if (value >> b & 1u)
      packed[(bit + static_cast<size_t>(b)) / 8] |=
          static_cast<uint8_t>(1u << ((bit + static_cast<size_t>(b)) % 8));
}

/// One table of 2^bits entries for codes[0, n), written to `table`, and each code's index in it.
void palettize_group(const uint16_t* codes, size_t n, int bits, uint16_t* table,
                     std::vector<uint8_t>& index_of_code) {
  const std::vector<WeightedValue> values = half_histogram(codes, n);
  const size_t k = size_t{1} << bits;
  if (values.size() <= k) {
    for (size_t i = 0; i < k; ++i) table[i] = values[std::min(i, values.size() - 1)].code;
    for (size_t i = 0; i < values.size(); ++i)
      index_of_code[values[i].code] = static_cast<uint8_t>(i);
    return;
  }
  const std::vector<double> centroids = kmeans_1d(values, k);
  for (size_t i = 0; i < k; ++i) table[i] = float_to_half(static_cast<float>(centroids[i]));
  // Each distinct float16 value goes to its nearest table entry.
  size_t c = 0;
  for (const auto& v : values) {
    // "<=": equal neighbouring entries (clusters that met) must not stop the sweep.
    while (c + 1 < k && std::fabs(half_to_float(table[c + 1]) - v.value) <=
                            std::fabs(half_to_float(table[c]) - v.value))
      ++c;
    index_of_code[v.code] = static_cast<uint8_t>(c);
  }
}

}  // namespace

int64_t palette_group_rows(int64_t rows, int64_t groups) {
  return groups <= 1 ? rows : (rows + groups - 1) / groups;
}

PalettizedTensor palettize(const Tensor& t, int bits, int64_t group_channels) {
  if (bits < 1 || bits > 8)
    throw ConfigError("palettize: bits must be 1..8, got " + std::to_string(bits));
  if (group_channels < 0)
    throw ConfigError("palettize: group size must be >= 0, got " + std::to_string(group_channels));
  PalettizedTensor p;
  p.bits = bits;
  p.shape = t.shape();
  const Tensor h = t.to(DType::F16).contiguous();
  const uint16_t* codes = h.data_as<uint16_t>();
  const size_t n = static_cast<size_t>(h.numel()), k = size_t{1} << bits;
  const int64_t rows = t.ndim() > 0 ? std::max<int64_t>(t.dim(0), 1) : 1;
  p.groups = group_channels == 0 ? 1 : (rows + group_channels - 1) / group_channels;
  const int64_t group_rows = palette_group_rows(rows, p.groups);
  const size_t per_row = n / static_cast<size_t>(rows);
  p.palette.assign(static_cast<size_t>(p.groups) * k, 0);
  p.packed.assign((n * static_cast<size_t>(bits) + 7) / 8, 0);
  std::vector<uint8_t> index_of_code(kHalfCodes, 0);
  for (int64_t g = 0; g < p.groups; ++g) {
    const size_t begin = static_cast<size_t>(g * group_rows) * per_row;
    const size_t end = std::min(n, static_cast<size_t>((g + 1) * group_rows) * per_row);
    if (begin >= end) continue;
    palettize_group(codes + begin, end - begin, bits, &p.palette[static_cast<size_t>(g) * k],
                    index_of_code);
    for (size_t i = begin; i < end; ++i) put_bits(p.packed, i, bits, index_of_code[codes[i]]);
  }
  return p;
}

Tensor expand_palette(const uint16_t* palette, int64_t entries, int64_t groups,
                      const uint8_t* packed, size_t packed_bytes, int bits, const Shape& shape) {
  if (bits < 1 || bits > 8 || entries < 1 || entries > (int64_t{1} << bits))
    throw FileError("palettized tensor: " + std::to_string(entries) + " entries for " +
                    std::to_string(bits) + " bits");
  const int64_t rows = shape.ndim() > 0 ? std::max<int64_t>(shape[0], 1) : 1;
  if (groups < 1 || groups > rows)
    throw FileError("palettized tensor: " + std::to_string(groups) + " tables for " +
                    std::to_string(rows) + " output channels");
  const size_t n = static_cast<size_t>(shape.numel());
  // Elements per table (the last table may serve fewer).
  const int64_t group_elements =
      palette_group_rows(rows, groups) * (static_cast<int64_t>(n) / rows);
  if (packed_bytes != (n * static_cast<size_t>(bits) + 7) / 8)
    throw FileError("palettized tensor: " + std::to_string(packed_bytes) + " index bytes for " +
                    std::to_string(n) + " values of " + std::to_string(bits) + " bits");
  Tensor out = Tensor::empty(shape, DType::F16);
  uint16_t* dst = out.data_as<uint16_t>();
  // An index spans at most two bytes (bits <= 8): read a 16-bit window instead of bit by bit.
  // Out-of-table indices (only a corrupt file has them) are found after the parallel pass.
  const uint32_t mask = (1u << bits) - 1;
  std::atomic<bool> bad{false};
  parallel_for(
      static_cast<int64_t>(n),
      [&](int64_t begin, int64_t end) {
        for (int64_t i = begin; i < end; ++i) {
          const size_t bit = static_cast<size_t>(i) * static_cast<size_t>(bits), byte = bit / 8;
          uint32_t window = packed[byte];
          if (byte + 1 < packed_bytes) window |= static_cast<uint32_t>(packed[byte + 1]) << 8;
          const uint32_t idx = window >> (bit % 8) & mask;
          if (idx >= static_cast<uint32_t>(entries)) {
            bad = true;
            dst[i] = 0;
          } else {
            dst[i] = palette[(group_elements > 0 ? i / group_elements : 0) * entries + idx];
          }
        }
      },
      1 << 16);
  if (bad) throw FileError("palettized tensor: an index points past the palette");
  return out;
}

}  // namespace diffuse
