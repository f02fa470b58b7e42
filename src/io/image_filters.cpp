#include "io/image_filters.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "diffuse/error.hpp"

namespace diffuse {

namespace {

constexpr int kGaussianPasses = 3;  // Pillow's default for GaussianBlur

/// Pillow's _gaussian_blur_radius: the (fractional) box radius whose `passes`-fold repetition has
/// the variance of a Gaussian of standard deviation `radius` (Gwosdek et al., SSVM 2011). Float
/// arithmetic as Pillow's C code does it.
float box_radius_for_gaussian(float radius, int passes) {
  const float sigma2 = radius * radius / static_cast<float>(passes);
  const auto L = static_cast<float>(std::sqrt(12.0 * sigma2 + 1.0));
  const auto l = static_cast<float>(std::floor((L - 1.0) / 2.0));
  float a = (2 * l + 1) * (l * (l + 1) - 3 * sigma2);
  a /= 6 * (sigma2 - (l + 1) * (l + 1));
  return l + a;
}

/// One box blur of one line of `n` samples `stride` bytes apart (Pillow's ImagingLineBoxBlur8):
/// a running sum over 2r + 1 samples plus the two next ones weighted by the fractional part,
/// with the line's end samples repeated beyond its edges. `out` is contiguous.
void box_blur_line(const uint8_t* in, uint8_t* out, int n, int stride, float float_radius) {
  const int radius = static_cast<int>(float_radius);
  const auto ww = static_cast<uint32_t>(static_cast<float>(1 << 24) / (float_radius * 2 + 1));
  const uint32_t fw = ((1u << 24) - static_cast<uint32_t>(radius * 2 + 1) * ww) / 2;
  const int last = n - 1;
  const int edge_a = std::min(radius + 1, n), edge_b = std::max(n - radius - 1, 0);
  const auto at = [&](int x) -> uint32_t { return in[static_cast<ptrdiff_t>(x) * stride]; };
  // The sum for the position before the first: first sample r + 1 times, then the ones after.
  uint32_t acc = at(0) * static_cast<uint32_t>(radius + 1);
  for (int x = 0; x < edge_a - 1; ++x) acc += at(x);
  acc += at(last) * static_cast<uint32_t>(radius - edge_a + 1);
  const auto emit = [&](int x, int sub, int add, int left, int right) {
    acc += at(add) - at(sub);  // unsigned wrap-around, as Pillow's UINT32 accumulator
    const uint32_t bulk = acc * ww + (at(left) + at(right)) * fw;
    out[x] = static_cast<uint8_t>((bulk + (1u << 23)) >> 24);
  };
  if (edge_a <= edge_b) {
    for (int x = 0; x < edge_a; ++x) emit(x, 0, x + radius, 0, x + radius + 1);
    for (int x = edge_a; x < edge_b; ++x)
      emit(x, x - radius - 1, x + radius, x - radius - 1, x + radius + 1);
    for (int x = edge_b; x <= last; ++x) emit(x, x - radius - 1, last, x - radius - 1, last);
  } else {
    for (int x = 0; x < edge_b; ++x) emit(x, 0, x + radius, 0, x + radius + 1);
    for (int x = edge_b; x < edge_a; ++x) emit(x, 0, last, 0, last);
    for (int x = edge_a; x <= last; ++x) emit(x, x - radius - 1, last, x - radius - 1, last);
  }
}

/// `passes` box blurs of every row (horizontal) or column of every channel, in place.
void box_blur(Rgb8Image& img, float radius, int passes, bool horizontal) {
  const int lines = horizontal ? img.height : img.width;
  const int n = horizontal ? img.width : img.height;
  const int stride = horizontal ? 3 : 3 * img.width;
  std::vector<uint8_t> line(static_cast<size_t>(n));
  for (int pass = 0; pass < passes; ++pass)
    for (int l = 0; l < lines; ++l)
      for (int c = 0; c < 3; ++c) {
        uint8_t* start =
            img.pixels.data() + c + static_cast<ptrdiff_t>(l) * (horizontal ? 3 * img.width : 3);
        box_blur_line(start, line.data(), n, stride, radius);
        for (int x = 0; x < n; ++x) start[static_cast<ptrdiff_t>(x) * stride] = line[size_t(x)];
      }
}

}  // namespace

Rgb8Image gaussian_blur(const Rgb8Image& image, float radius) {
  if (!std::isfinite(radius) || radius < 0.f)
    throw ConfigError("blur radius must be >= 0, got " + std::to_string(radius));
  if (image.pixels.size() != size_t(image.width) * size_t(image.height) * 3)
    throw ConfigError("blur: pixel buffer does not match the image size");
  Rgb8Image out = image;
  if (radius == 0.f || image.width == 0 || image.height == 0) return out;
  const float box = box_radius_for_gaussian(radius, kGaussianPasses);
  // Pillow blurs rows first, then columns (through a transposed copy: the same arithmetic).
  if (box != 0.f) {
    box_blur(out, box, kGaussianPasses, /*horizontal=*/true);
    box_blur(out, box, kGaussianPasses, /*horizontal=*/false);
  }
  return out;
}

std::vector<uint8_t> to_grayscale(const Rgb8Image& image) {
  std::vector<uint8_t> out(size_t(image.width) * size_t(image.height));
  for (size_t i = 0; i < out.size(); ++i) {
    const uint32_t r = image.pixels[3 * i], g = image.pixels[3 * i + 1],
                   b = image.pixels[3 * i + 2];
    // Pillow's L24 conversion: 0.299, 0.587, 0.114 in 16-bit fixed point, rounded.
    out[i] = static_cast<uint8_t>((r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16);
  }
  return out;
}

}  // namespace diffuse
