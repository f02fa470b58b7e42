// The bodies of one WinogradTransforms set, in namespace DIFFUSE_VECTOR_ISA: included by
// winograd_transforms_<isa>.cpp, each compiled with its instruction set's flags and
// -ffp-contract=off (CMakeLists.txt). The loops are written for the auto-vectoriser: every inner
// loop runs over tiles, reading and writing contiguous arrays (the stride-4 reads and writes of
// a row's pixels are gathered into, or spread from, four phase arrays first).
#include "backend/cpu/winograd_transforms.h"

// The loops' arrays never overlap: GCC may vectorise without checking at run time. (Clang's
// equivalent turns into an error where it cannot vectorise, as under the sanitizers at -O1.)
#if defined(__GNUC__) && !defined(__clang__)
#define DIFFUSE_INDEPENDENT_ITERATIONS _Pragma("GCC ivdep")
#else
#define DIFFUSE_INDEPENDENT_ITERATIONS
#endif

namespace diffuse::cpu::DIFFUSE_VECTOR_ISA {

namespace {

/// phase[l][t] = row[4t + l] for l < 4, t <= tiles (the stride-4 gather of a row of pixels).
void split_phases(const float* __restrict row, int64_t tiles, float* __restrict phases) {
  const int64_t n = tiles + 1;
  float* __restrict p0 = phases;
  float* __restrict p1 = phases + n;
  float* __restrict p2 = phases + 2 * n;
  float* __restrict p3 = phases + 3 * n;
  DIFFUSE_INDEPENDENT_ITERATIONS
  for (int64_t t = 0; t < n; ++t) {
    p0[t] = row[4 * t];
    p1[t] = row[4 * t + 1];
    p2[t] = row[4 * t + 2];
    p3[t] = row[4 * t + 3];
  }
}

void weights(const float* w, int64_t channels, float* u, int64_t position_stride, double* scratch) {
  static constexpr double G[6][3] = {{1.0 / 4, 0, 0},
                                     {-1.0 / 6, -1.0 / 6, -1.0 / 6},
                                     {-1.0 / 6, 1.0 / 6, -1.0 / 6},
                                     {1.0 / 24, 1.0 / 12, 1.0 / 6},
                                     {1.0 / 24, -1.0 / 12, 1.0 / 6},
                                     {0, 0, 1}};
  // taps[k][c] = w[c][k]: the kernels' nine taps, each across the channels.
  double* taps = scratch;
  for (int64_t c = 0; c < channels; ++c)
    for (int k = 0; k < 9; ++k) taps[k * channels + c] = w[c * 9 + k];
  // left[i][l][c] = (G w[c])[i][l]
  double* left = scratch + 9 * channels;
  for (int i = 0; i < 6; ++i)
    for (int l = 0; l < 3; ++l) {
      const double* __restrict t0 = taps + l * channels;
      const double* __restrict t1 = taps + (3 + l) * channels;
      const double* __restrict t2 = taps + (6 + l) * channels;
      double* __restrict out = left + (i * 3 + l) * channels;
      DIFFUSE_INDEPENDENT_ITERATIONS
      for (int64_t c = 0; c < channels; ++c)
        out[c] = (G[i][0] * t0[c] + G[i][1] * t1[c]) + G[i][2] * t2[c];
    }
  for (int i = 0; i < 6; ++i)
    for (int j = 0; j < 6; ++j) {
      const double* __restrict l0 = left + (i * 3) * channels;
      const double* __restrict l1 = left + (i * 3 + 1) * channels;
      const double* __restrict l2 = left + (i * 3 + 2) * channels;
      float* __restrict out = u + (6 * i + j) * position_stride;
      DIFFUSE_INDEPENDENT_ITERATIONS
      for (int64_t c = 0; c < channels; ++c)
        out[c] = static_cast<float>((l0[c] * G[j][0] + l1[c] * G[j][1]) + l2[c] * G[j][2]);
    }
}

void input(const float* const rows[6], int64_t tiles, float* v, int64_t position_stride,
           float* scratch) {
  const int64_t width = 4 * tiles + 4;
  float* columns = scratch;             // 6 rows of B^T d: the transform down the columns
  float* phases = scratch + 6 * width;  // one such row split into its four phases
  {
    const float* __restrict d0 = rows[0];
    const float* __restrict d1 = rows[1];
    const float* __restrict d2 = rows[2];
    const float* __restrict d3 = rows[3];
    const float* __restrict d4 = rows[4];
    const float* __restrict d5 = rows[5];
    float* __restrict c0 = columns;
    float* __restrict c1 = columns + width;
    float* __restrict c2 = columns + 2 * width;
    float* __restrict c3 = columns + 3 * width;
    float* __restrict c4 = columns + 4 * width;
    float* __restrict c5 = columns + 5 * width;
    DIFFUSE_INDEPENDENT_ITERATIONS
    for (int64_t x = 0; x < width; ++x) {
      c0[x] = (4.f * d0[x] - 5.f * d2[x]) + d4[x];
      c1[x] = (d3[x] + d4[x]) - 4.f * (d1[x] + d2[x]);
      c2[x] = (d4[x] - d3[x]) + 4.f * (d1[x] - d2[x]);
      c3[x] = (d4[x] - d2[x]) + 2.f * (d3[x] - d1[x]);
      c4[x] = (d4[x] - d2[x]) - 2.f * (d3[x] - d1[x]);
      c5[x] = (4.f * d1[x] - 5.f * d3[x]) + d5[x];
    }
  }
  for (int i = 0; i < 6; ++i) {
    split_phases(columns + i * width, tiles, phases);
    const int64_t n = tiles + 1;
    const float* __restrict q0 = phases;
    const float* __restrict q1 = phases + n;
    const float* __restrict q2 = phases + 2 * n;
    const float* __restrict q3 = phases + 3 * n;
    float* __restrict v0 = v + (6 * i + 0) * position_stride;
    float* __restrict v1 = v + (6 * i + 1) * position_stride;
    float* __restrict v2 = v + (6 * i + 2) * position_stride;
    float* __restrict v3 = v + (6 * i + 3) * position_stride;
    float* __restrict v4 = v + (6 * i + 4) * position_stride;
    float* __restrict v5 = v + (6 * i + 5) * position_stride;
    DIFFUSE_INDEPENDENT_ITERATIONS
    for (int64_t t = 0; t < tiles; ++t) {
      // The tile's six values along the row: four phases of tile t, two of tile t + 1.
      const float e0 = q0[t], e1 = q1[t], e2 = q2[t], e3 = q3[t], e4 = q0[t + 1], e5 = q1[t + 1];
      v0[t] = (4.f * e0 - 5.f * e2) + e4;
      v1[t] = (e3 + e4) - 4.f * (e1 + e2);
      v2[t] = (e4 - e3) + 4.f * (e1 - e2);
      v3[t] = (e4 - e2) + 2.f * (e3 - e1);
      v4[t] = (e4 - e2) - 2.f * (e3 - e1);
      v5[t] = (4.f * e1 - 5.f * e3) + e5;
    }
  }
}

void output(const float* m, int64_t position_stride, int64_t tiles, float bias,
            float* const rows[4], float* scratch) {
  // columns[r][j][t]: A^T m down the columns, for output row r and product column j.
  float* columns = scratch;
  for (int j = 0; j < 6; ++j) {
    const float* __restrict m0 = m + (0 + j) * position_stride;
    const float* __restrict m1 = m + (6 + j) * position_stride;
    const float* __restrict m2 = m + (12 + j) * position_stride;
    const float* __restrict m3 = m + (18 + j) * position_stride;
    const float* __restrict m4 = m + (24 + j) * position_stride;
    const float* __restrict m5 = m + (30 + j) * position_stride;
    float* __restrict r0 = columns + (0 * 6 + j) * tiles;
    float* __restrict r1 = columns + (1 * 6 + j) * tiles;
    float* __restrict r2 = columns + (2 * 6 + j) * tiles;
    float* __restrict r3 = columns + (3 * 6 + j) * tiles;
    DIFFUSE_INDEPENDENT_ITERATIONS
    for (int64_t t = 0; t < tiles; ++t) {
      const float sum12 = m1[t] + m2[t], dif12 = m1[t] - m2[t];
      const float sum34 = m3[t] + m4[t], dif34 = m3[t] - m4[t];
      r0[t] = (m0[t] + sum12) + sum34;
      r1[t] = dif12 + 2.f * dif34;
      r2[t] = sum12 + 4.f * sum34;
      r3[t] = (dif12 + 8.f * dif34) + m5[t];
    }
  }
  for (int r = 0; r < 4; ++r) {
    const float* c = columns + r * 6 * tiles;
    const float* __restrict m0 = c;
    const float* __restrict m1 = c + tiles;
    const float* __restrict m2 = c + 2 * tiles;
    const float* __restrict m3 = c + 3 * tiles;
    const float* __restrict m4 = c + 4 * tiles;
    const float* __restrict m5 = c + 5 * tiles;
    float* __restrict out = rows[r];
    DIFFUSE_INDEPENDENT_ITERATIONS
    for (int64_t t = 0; t < tiles; ++t) {
      const float sum12 = m1[t] + m2[t], dif12 = m1[t] - m2[t];
      const float sum34 = m3[t] + m4[t], dif34 = m3[t] - m4[t];
      out[4 * t] = ((m0[t] + sum12) + sum34) + bias;
      out[4 * t + 1] = (dif12 + 2.f * dif34) + bias;
      out[4 * t + 2] = (sum12 + 4.f * sum34) + bias;
      out[4 * t + 3] = ((dif12 + 8.f * dif34) + m5[t]) + bias;
    }
  }
}

}  // namespace

extern const WinogradTransforms winograd;
const WinogradTransforms winograd{DIFFUSE_VECTOR_ISA_NAME, weights, input, output};

}  // namespace diffuse::cpu::DIFFUSE_VECTOR_ISA
