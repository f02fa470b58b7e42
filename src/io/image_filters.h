// Pillow's image filters that mask preparation needs, bit for bit, so that inpainting masks are
// prepared exactly as diffusers' mask processor prepares them with PIL.
#pragma once

#include <cstdint>
#include <vector>

#include "io/png_image.h"

namespace diffuse {

/// `image.filter(PIL.ImageFilter.GaussianBlur(radius))`: Pillow's approximation of a Gaussian of
/// standard deviation `radius` by three box blurs per axis (fractional box radius, 24-bit fixed
/// point, rounding to 8 bits after every pass, edge pixels extended). radius 0 returns a copy.
/// ConfigError for a negative or non-finite radius.
Rgb8Image gaussian_blur(const Rgb8Image& image, float radius);

/// `image.convert("L")`: ITU-R 601-2 luma with Pillow's fixed-point rounding, one byte per pixel.
std::vector<uint8_t> to_grayscale(const Rgb8Image& image);

}  // namespace diffuse
