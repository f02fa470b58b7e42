// Image resizing that reproduces Pillow bit for bit, so that img2img init images are prepared
// exactly as diffusers' VaeImageProcessor does (PIL `image.resize((w, h), Image.LANCZOS)`).
#pragma once

#include "io/png_image.h"

namespace diffuse {

/// Resizes an RGB8 image to width x height with Pillow's LANCZOS (a = 3) filter, byte-identical to
/// `PIL.Image.resize((width, height), PIL.Image.LANCZOS)` on an "RGB" image: separable passes
/// (horizontal first, each skipped when that side keeps its size), a support of 3 * max(scale, 1)
/// source pixels, normalised coefficients quantised to 22-bit fixed point, rounding and clipping
/// to 8 bits after each pass. The same size returns a copy. Throws ConfigError for a size <= 0 or
/// above 16384, or an input whose pixel buffer does not match its size.
Rgb8Image resize_lanczos(const Rgb8Image& in, int width, int height);

/// The source region of a resize, in pixels: [x0, x1) x [y0, y1) (PIL's `box`). An empty span
/// (x0 == x1 or y0 == y1) is allowed: each output pixel then filters the source around that line.
struct ResizeBox {
  int x0 = 0, y0 = 0, x1 = 0, y1 = 0;
};
/// Pillow's resampling filters: LANCZOS (a = 3) and BICUBIC (Keys, a = -0.5; Image.resize's
/// default filter).
enum class ResizeFilter { lanczos, bicubic };
/// `PIL.Image.resize((width, height), filter, box=box)` on an "RGB" image, byte for byte (a box of
/// the output's size is a crop, as in Pillow). ConfigError for a box outside the image or
/// reversed.
Rgb8Image resize(const Rgb8Image& in, int width, int height, const ResizeBox& box,
                 ResizeFilter filter);

}  // namespace diffuse
