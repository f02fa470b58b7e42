// Winograd F(4x4, 3x3) convolution, for 3x3 stride-1 float32 layers on CPUs where oneDNN has no
// Winograd kernel of its own (oneDNN 2.6 has one for AVX-512 only; conv2d_direct.cpp uses it
// there).
//
// Why: a 4x4 output tile costs 36 multiplications per input channel instead of 144, so the
// GEMM work falls to a quarter; the tile transforms add a few percent of memory traffic. On
// this project's AVX2-only Zen 3 machine the direct kernels were the VAE decoder's pace, at
// 120-133 GFLOP/s on 2 threads, and the VAE decode 256² was only 1.03x PyTorch's
// (docs/PERFORMANCE.md, "A CPU without AVX-512").
//
// How: the output is cut into bands of tile rows, counted through the batch's images (on small
// maps one band holds several images, so the GEMMs stay wide). For each band, every input
// channel's 6x6 tiles are transformed (v = B^T d B, winograd_transforms.h) into 36 matrices
// V[p] of C x tiles, each multiplied by the transformed weights U[p] (O x C, u = G g G^T) in one
// sgemm, and every output channel's 36 products are transformed back (A^T m A) with the bias
// added. U is made at every call, for blocks of output channels of at most 64 MB one after
// another (a whole 1280 x 1280-channel U would be 236 MB), so wide layers add no more transient
// memory than a 640 x 640 one. The three steps are each split over the thread pool by
// channel or position, never by the thread count, and the bands follow from the shapes alone,
// so the result is the same bits at any --threads. The transforms round differently from a
// direct sum: 2-4e-6 of the largest output from the exact sum at up to 128 channels, 1.1e-5 at
// 512 (tests/backend/test_winograd.cpp; a float32 direct sum is nearer, ~1e-6).
#include "backend/cpu/winograd_conv2d.h"

#include <algorithm>
#include <array>
#include <bit>
#include <cstring>
#include <vector>

#include "backend/cpu/kernels.h"
#include "backend/cpu/winograd_transforms.h"
#include "core/thread_pool.h"

namespace diffuse::cpu {

namespace {

constexpr int64_t kPositions = 36;  // the 6x6 points of a transformed tile
// Below this many 4x4 output tiles in the batch, transforming the weights at every call and
// streaming them 36 times costs more than the multiplications save (bench BM_Conv3x3 on the
// Zen 3 machine, best of 3: 2 x 1280 channels at 16x16, 32 tiles, 92 ms against 113 ms through
// the other kernels; at 8x8, 8 tiles, 65 ms against 36 ms).
constexpr int64_t kMinTiles = 32;

/// `floats` of workspace from the activation pool, rounded up to a power of two: the pool caches
/// freed blocks by size, and the layers' many shapes then share a few blocks instead of caching
/// one each (which had raised the peak RSS of a 512x512 generation by ~900 MB).
Tensor workspace(int64_t floats) {
  return Tensor::empty({static_cast<int64_t>(std::bit_ceil(static_cast<uint64_t>(floats)))});
}

struct Geometry {
  int64_t B, C, H, W, O, OH, OW;
  int64_t pad_top, pad_left;
  int64_t tile_rows, tile_cols;  // of an output image, in 4x4 tiles (the last may be partial)
  int64_t out_block;             // output channels per block of transformed weights
  int64_t band_rows;             // tile rows per band (counting through the batch's images)

  /// Readable floats per padded input row: tile t reads [4t, 4t + 6), and the phase split reads
  /// up to 4 * tile_cols + 4.
  int64_t padded_width() const { return 4 * tile_cols + 4; }
};

Geometry geometry(const Tensor& x, const Tensor& w, const ops::Conv2dParams& p, const Tensor& out,
                  const WinogradBudget& budget) {
  Geometry g{x.dim(0),  x.dim(1),   x.dim(2), x.dim(3), w.dim(0), out.dim(2), out.dim(3),
             p.pad_top, p.pad_left, 0,        0,        0,        0};
  g.tile_rows = (g.OH + 3) / 4;
  g.tile_cols = (g.OW + 3) / 4;
  // Output channels in equal blocks whose transformed weights (36 x block x C floats) fit their
  // budget: one block up to 640 x 640 channels, three for the UNet's 1920 -> 640 layers (whose
  // whole U would be 177 MB).
  const int64_t per_output = kPositions * g.C;
  const int64_t blocks = std::clamp<int64_t>(
      (g.O * per_output + budget.weight_floats - 1) / budget.weight_floats, 1, g.O);
  g.out_block = (g.O + blocks - 1) / blocks;
  const int64_t per_tile_row = kPositions * (g.C + g.out_block) * g.tile_cols;
  // V and a block's M together (36 x (C + block) x tiles) within the band budget: 32 MB by
  // default, enough tiles per band for sgemm to run near its rate (on the Zen 3 machine, 512
  // channels at 128x128 took 338 ms with 12 MB, 208 ms with 32 MB and 235 ms with 64 MB).
  g.band_rows = std::clamp<int64_t>(budget.band_floats / per_tile_row, 1, g.B * g.tile_rows);
  return g;
}

/// Output channels [first, first + count) of the convolution: the block a U holds.
struct OutputBlock {
  int64_t first, count;
};

/// U[p][o][c] = (G w[first + o][c] G^T)[p] for the block's output channels o, every input c.
void transform_weights(const Tensor& w, const OutputBlock& block, float* u) {
  const WinogradTransforms& k = winograd_transforms();
  const int64_t C = w.dim(1);
  parallel_for(block.count, [&](int64_t o0, int64_t o1) {
    std::vector<double> scratch(static_cast<size_t>(winograd_weight_scratch_doubles(C)));
    for (int64_t o = o0; o < o1; ++o)
      k.weights(w.f32() + (block.first + o) * C * 9, C, u + o * C, block.count * C, scratch.data());
  });
}

/// V[p][c][t] for the band's tiles t (tile row by tile row) from rows [row0, row0 + rows).
void transform_input(const Geometry& g, const float* x, int64_t row0, int64_t rows, float* v,
                     int64_t tiles) {
  const WinogradTransforms& k = winograd_transforms();
  const int64_t width = g.padded_width();
  parallel_for(g.C, [&](int64_t c0, int64_t c1) {
    // Six zero-padded input rows and the transforms' scratch, reused for every tile row.
    std::vector<float> padded(static_cast<size_t>(6 * width));
    std::vector<float> scratch(static_cast<size_t>(winograd_scratch_floats(g.tile_cols)));
    for (int64_t c = c0; c < c1; ++c)
      for (int64_t band_row = row0; band_row < row0 + rows; ++band_row) {
        const int64_t image = band_row / g.tile_rows, tr = band_row % g.tile_rows;
        const float* plane = x + (image * g.C + c) * g.H * g.W;
        std::array<const float*, 6> row_ptrs{};
        for (int64_t kr = 0; kr < 6; ++kr) {
          float* dst = padded.data() + kr * width;
          std::fill(dst, dst + width, 0.f);
          const int64_t y = 4 * tr + kr - g.pad_top;
          if (y >= 0 && y < g.H) {
            const int64_t first = std::min(g.pad_left, width);
            const int64_t count = std::min(g.W, width - first);
            std::memcpy(dst + first, plane + y * g.W, sizeof(float) * static_cast<size_t>(count));
          }
          row_ptrs[static_cast<size_t>(kr)] = dst;
        }
        k.input(row_ptrs.data(), g.tile_cols, v + c * tiles + (band_row - row0) * g.tile_cols,
                g.C * tiles, scratch.data());
      }
  });
}

/// M[p] = U[p] V[p] for the 36 positions: the block's channels x used products of the band
/// (row stride tiles).
void multiply(const Geometry& g, const OutputBlock& block, const float* u, const float* v, float* m,
              int64_t used, int64_t tiles) {
  const int64_t n = block.count;
  parallel_for(kPositions, [&](int64_t p0, int64_t p1) {
    for (int64_t p = p0; p < p1; ++p)
      gemm(false, false, n, used, g.C, 1.f, u + p * n * g.C, g.C, v + p * g.C * tiles, tiles, 0.f,
           m + p * n * tiles, tiles);
  });
}

/// The band's output rows of the block's channels from their products M.
void transform_output(const Geometry& g, const OutputBlock& block, const float* m,
                      const float* bias, int64_t row0, int64_t rows, float* out, int64_t tiles) {
  const WinogradTransforms& k = winograd_transforms();
  const int64_t width = 4 * g.tile_cols;
  parallel_for(block.count, [&](int64_t o0, int64_t o1) {
    std::vector<float> tile_rows(static_cast<size_t>(4 * width));
    std::vector<float> scratch(static_cast<size_t>(winograd_scratch_floats(g.tile_cols)));
    std::array<float*, 4> row_ptrs{};
    for (int64_t r = 0; r < 4; ++r) row_ptrs[static_cast<size_t>(r)] = tile_rows.data() + r * width;
    for (int64_t o = o0; o < o1; ++o)
      for (int64_t band_row = row0; band_row < row0 + rows; ++band_row) {
        const int64_t image = band_row / g.tile_rows, tr = band_row % g.tile_rows;
        const int64_t channel = block.first + o;
        float* plane = out + (image * g.O + channel) * g.OH * g.OW;
        k.output(m + o * tiles + (band_row - row0) * g.tile_cols, block.count * tiles, g.tile_cols,
                 bias ? bias[channel] : 0.f, row_ptrs.data(), scratch.data());
        for (int64_t r = 0; r < 4 && 4 * tr + r < g.OH; ++r)
          std::memcpy(plane + (4 * tr + r) * g.OW, row_ptrs[static_cast<size_t>(r)],
                      sizeof(float) * static_cast<size_t>(g.OW));
      }
  });
}

}  // namespace

bool winograd_conv2d_pays(const Tensor& w, const ops::Conv2dParams& p, const Tensor& out) {
  if (w.dtype() != DType::F32 || w.dim(2) != 3 || w.dim(3) != 3 || p.stride != 1) return false;
  return out.dim(0) * ((out.dim(2) + 3) / 4) * ((out.dim(3) + 3) / 4) >= kMinTiles;
}

void winograd_conv2d(const Tensor& x, const Tensor& w, const Tensor* bias,
                     const ops::Conv2dParams& p, Tensor& out, const WinogradBudget& budget) {
  const Geometry g = geometry(x, w, p, out, budget);
  const int64_t band_tiles = g.band_rows * g.tile_cols;
  Tensor u = workspace(kPositions * g.out_block * g.C);
  Tensor products_and_tiles = workspace(kPositions * (g.C + g.out_block) * band_tiles);
  float* v = products_and_tiles.f32();           // V[36][C][band_tiles]
  float* m = v + kPositions * g.C * band_tiles;  // M[36][block][band_tiles]
  // Tile rows of every image, one after another: a band of a small map takes in several images.
  const int64_t all_rows = g.B * g.tile_rows;
  const bool one_band = g.band_rows >= all_rows;
  for (int64_t first = 0; first < g.O; first += g.out_block) {
    const OutputBlock block{first, std::min(g.out_block, g.O - first)};
    transform_weights(w, block, u.f32());
    for (int64_t row0 = 0; row0 < all_rows; row0 += g.band_rows) {
      const int64_t rows = std::min(g.band_rows, all_rows - row0);
      // A shorter last band keeps the full band's strides and leaves the columns past it unused.
      // With one band, its V serves every block of output channels.
      if (first == 0 || !one_band) transform_input(g, x.f32(), row0, rows, v, band_tiles);
      multiply(g, block, u.f32(), v, m, rows * g.tile_cols, band_tiles);
      transform_output(g, block, m, bias ? bias->f32() : nullptr, row0, rows, out.f32(),
                       band_tiles);
    }
  }
}

}  // namespace diffuse::cpu
