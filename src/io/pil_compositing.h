// Pillow's alpha compositing on 8-bit RGBA images, bit for bit: pasting through a mask onto a
// premultiplied ("RGBa") image, converting back to straight alpha, and Image.alpha_composite.
// What diffusers' apply_overlay and A1111's masked-content fill do with PIL.
#pragma once

#include <cstdint>
#include <vector>

#include "io/png_image.h"

namespace diffuse {

/// 4 bytes per pixel, row-major; premultiplied or straight alpha as each function says.
struct Rgba8Image {
  int width = 0, height = 0;
  std::vector<uint8_t> pixels;
};

/// `Image.new("RGBa", size).paste(image.convert("RGBA").convert("RGBa"), mask=opacity)`: the
/// opaque `image` weighted by `opacity` (one byte per pixel) on transparent black; premultiplied.
Rgba8Image paste_through_mask(const Rgb8Image& image, const std::vector<uint8_t>& opacity);

/// `convert("RGBA")` of an "RGBa" image: colours divided by alpha (truncating), unchanged where
/// alpha is 0 or 255.
Rgba8Image unpremultiply(const Rgba8Image& premultiplied);

/// `dst.alpha_composite(src)`: src over dst, both straight alpha, with Pillow's fixed-point
/// rounding. The images must have the same size.
void alpha_composite(Rgba8Image& dst, const Rgba8Image& src);

/// `filter(ImageFilter.GaussianBlur(radius))` of a 4-band image: every band blurred alike.
Rgba8Image gaussian_blur(const Rgba8Image& image, float radius);

/// The colour bands (alpha dropped): `convert("RGB")` of an "RGBA" image.
Rgb8Image drop_alpha(const Rgba8Image& image);

}  // namespace diffuse
