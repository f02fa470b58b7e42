#include "io/pil_compositing.h"

#include <algorithm>
#include <string>

#include "diffuse/error.hpp"
#include "io/image_filters.h"

namespace diffuse {

namespace {

// Paste.c's and AlphaComposite.c's integer arithmetic.
uint32_t div255(uint32_t v) {
  const uint32_t t = v + 128;
  return ((t >> 8) + t) >> 8;
}
uint32_t shift_for_div255(uint32_t a) {
  return ((a >> 8) + a) >> 8;
}
constexpr uint32_t kCompositeBits = 7;  // AlphaComposite.c's PRECISION_BITS

size_t pixel_count(int width, int height) {
  return static_cast<size_t>(width) * static_cast<size_t>(height);
}

}  // namespace

Rgba8Image paste_through_mask(const Rgb8Image& image, const std::vector<uint8_t>& opacity) {
  const size_t n = pixel_count(image.width, image.height);
  if (opacity.size() != n) throw ConfigError("paste: the mask and the image differ in size");
  Rgba8Image out{image.width, image.height, std::vector<uint8_t>(n * 4)};
  for (size_t i = 0; i < n; ++i) {
    const uint32_t m = opacity[i];
    for (int c = 0; c < 3; ++c)
      out.pixels[i * 4 + c] = static_cast<uint8_t>(div255(image.pixels[i * 3 + c] * m));
    out.pixels[i * 4 + 3] = static_cast<uint8_t>(div255(255u * m));
  }
  return out;
}

Rgba8Image unpremultiply(const Rgba8Image& premultiplied) {
  Rgba8Image out = premultiplied;
  for (size_t i = 0; i < out.pixels.size(); i += 4) {
    const uint32_t a = out.pixels[i + 3];
    if (a == 0 || a == 255) continue;
    for (int c = 0; c < 3; ++c)
      out.pixels[i + c] = static_cast<uint8_t>(std::min(255u, 255u * out.pixels[i + c] / a));
  }
  return out;
}

void alpha_composite(Rgba8Image& dst, const Rgba8Image& src) {
  if (dst.width != src.width || dst.height != src.height)
    throw ConfigError("alpha_composite: the images differ in size");
  for (size_t i = 0; i < dst.pixels.size(); i += 4) {
    const uint32_t src_a = src.pixels[i + 3];
    if (src_a == 0) continue;
    const uint32_t blend = dst.pixels[i + 3] * (255u - src_a);
    const uint32_t out_a255 = src_a * 255u + blend;
    const uint32_t coef1 = src_a * 255u * 255u * (1u << kCompositeBits) / out_a255;
    const uint32_t coef2 = 255u * (1u << kCompositeBits) - coef1;
    for (int c = 0; c < 3; ++c) {
      const uint32_t t = src.pixels[i + c] * coef1 + dst.pixels[i + c] * coef2;
      dst.pixels[i + c] =
          static_cast<uint8_t>(shift_for_div255(t + (0x80u << kCompositeBits)) >> kCompositeBits);
    }
    dst.pixels[i + 3] = static_cast<uint8_t>(shift_for_div255(out_a255 + 0x80u));
  }
}

Rgba8Image gaussian_blur(const Rgba8Image& image, float radius) {
  const size_t n = pixel_count(image.width, image.height);
  Rgb8Image colour{image.width, image.height, std::vector<uint8_t>(n * 3)};
  Rgb8Image alpha{image.width, image.height, std::vector<uint8_t>(n * 3)};
  for (size_t i = 0; i < n; ++i) {
    std::copy_n(&image.pixels[i * 4], 3, &colour.pixels[i * 3]);
    std::fill_n(&alpha.pixels[i * 3], 3, image.pixels[i * 4 + 3]);
  }
  colour = gaussian_blur(colour, radius);
  alpha = gaussian_blur(alpha, radius);
  Rgba8Image out{image.width, image.height, std::vector<uint8_t>(n * 4)};
  for (size_t i = 0; i < n; ++i) {
    std::copy_n(&colour.pixels[i * 3], 3, &out.pixels[i * 4]);
    out.pixels[i * 4 + 3] = alpha.pixels[i * 3];
  }
  return out;
}

Rgb8Image drop_alpha(const Rgba8Image& image) {
  const size_t n = pixel_count(image.width, image.height);
  Rgb8Image out{image.width, image.height, std::vector<uint8_t>(n * 3)};
  for (size_t i = 0; i < n; ++i) std::copy_n(&image.pixels[i * 4], 3, &out.pixels[i * 3]);
  return out;
}

}  // namespace diffuse
