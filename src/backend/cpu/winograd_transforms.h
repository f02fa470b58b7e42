// The tile transforms of the Winograd F(4x4, 3x3) convolution (winograd_conv2d.cpp), compiled
// once per instruction set like the vector kernels (vector_kernels.h) and picked at run time.
//
// Both transforms run over a row of tiles at once, with the tiles innermost and contiguous, so
// that plain loops vectorise: a 6x6 input tile d becomes B^T d B, a 6x6 product tile m becomes
// the 4x4 output A^T m A (Lavin and Gray, "Fast Algorithms for Convolutional Neural Networks",
// 2015; the interpolation points 0, 1, -1, 2, -2 and infinity). Every set computes the same bits
// (fixed operation order, no FMA contraction): the result does not depend on which one ran.
#pragma once

#include <cstdint>
#include <vector>

namespace diffuse::cpu {

/// Floats of scratch the transforms need for a row of `tiles` tiles.
inline int64_t winograd_scratch_floats(int64_t tiles) {
  return 6 * (4 * tiles + 4) + 4 * (tiles + 1);
}
/// Doubles of scratch the weight transform needs for `channels` input channels.
inline int64_t winograd_weight_scratch_doubles(int64_t channels) {
  return 27 * channels;
}

struct WinogradTransforms {
  const char* isa;  // "avx512", "avx2", "baseline"
  /// For one output channel: its 3x3 kernels w[c][9] for `channels` input channels; writes
  /// u[p * position_stride + c] = (G w[c] G^T)[p], p = 6 * i + j, computed in double.
  void (*weights)(const float* w, int64_t channels, float* u, int64_t position_stride,
                  double* scratch);
  /// For one channel and one row of `tiles` tiles: rows[k] (k < 6) is input row k of the tile
  /// row, zero-padded, with 4 * tiles + 4 readable floats (tile t reads rows[k][4t, 4t + 6)).
  /// Writes the 36 transformed values of tile t to v[p * position_stride + t], p = 6 * i + j.
  void (*input)(const float* const rows[6], int64_t tiles, float* v, int64_t position_stride,
                float* scratch);
  /// For one output channel and one row of `tiles` tiles: the 36 products of tile t at
  /// m[p * position_stride + t]; writes rows[r][4t + s] = (A^T m A)[r][s] + bias for r, s < 4
  /// (each row has room for 4 * tiles floats).
  void (*output)(const float* m, int64_t position_stride, int64_t tiles, float bias,
                 float* const rows[4], float* scratch);
};

/// The fastest set this CPU runs (chosen once).
const WinogradTransforms& winograd_transforms();
/// Every set this CPU can run, the baseline first.
std::vector<const WinogradTransforms*> runnable_winograd_transforms();

}  // namespace diffuse::cpu
