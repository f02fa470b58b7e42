// Inpainting "only masked" (diffusers' padding_mask_crop, A1111's inpaint_full_res): the region
// around the mask, grown by a padding and to the processing aspect ratio, is cut out of the image
// and the mask and resized to the generation size ("fill": aspect kept, the borders filled from
// the edge rows or columns); after decoding, the result is resized back into that region and laid
// over the original outside the mask. Step for step as diffusers' VaeImageProcessor
// (get_crop_region, resize modes "fill" and "crop", apply_overlay) does it with Pillow, byte for
// byte.
#pragma once

#include <optional>

#include "diffuse/diffuse.hpp"
#include "io/png_image.h"

namespace diffuse::stages {

/// A region of an image: columns [x1, x2), rows [y1, y2).
struct CropBox {
  int x1 = 0, y1 = 0, x2 = 0, y2 = 0;
  int width() const { return x2 - x1; }
  int height() const { return y2 - y1; }
};

/// VaeImageProcessor.get_crop_region: the bounding box of the mask's non-zero (in grey) pixels,
/// grown by `pad` on each side (within the image), then grown to the aspect ratio of width x
/// height (shifted back inside the image where it would leave it). ConfigError for a mask with
/// no non-zero pixel (nothing to repaint).
CropBox mask_crop_region(const Rgb8Image& mask, int width, int height, int pad);

/// `image.crop(box)`.
Rgb8Image crop(const Rgb8Image& image, const CropBox& box);

/// VaeImageProcessor.resize(resize_mode="fill"): the image resized (Lanczos) to fit width x height
/// with its aspect kept, centred, the empty bands filled by resizing the edge line outwards.
Rgb8Image resize_fill(const Rgb8Image& image, int width, int height);

/// VaeImageProcessor.resize(resize_mode="crop"): resized (Lanczos) to cover width x height with
/// its aspect kept, centred, the excess cut off.
Rgb8Image resize_crop(const Rgb8Image& image, int width, int height);

/// VaeImageProcessor.apply_overlay: `image` (resized into `region` of the original when given,
/// black elsewhere) with `original` laid over it where the mask is not white (its grey value
/// inverted is the original's opacity), as Pillow's premultiplied paste and alpha_composite
/// compute it. Returns an image of the original's size.
Rgb8Image apply_overlay(const Rgb8Image& mask, const Rgb8Image& original, const Rgb8Image& image,
                        const std::optional<CropBox>& region);

/// What an "only masked" run works on.
struct MaskedRegion {
  CropBox region;
  Rgb8Image mask;      // the mask at the original's size (blurred when asked)
  Rgb8Image original;  // the init image
  Image image;         // the region of the image, resized ("fill") to width x height
  Image region_mask;   // the same of the mask
};
/// Blurs the mask by `blur` pixels (mask_processor.blur, as diffusers' callers do before passing
/// it), finds the region (mask_crop_region) and cuts it out of both. ConfigError when the mask
/// and the image differ in size.
MaskedRegion cut_masked_region(const Image& image, const Image& mask, int blur, int width,
                               int height, int pad);

}  // namespace diffuse::stages
