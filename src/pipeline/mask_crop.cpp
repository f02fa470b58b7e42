#include "pipeline/mask_crop.h"

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "diffuse/error.hpp"
#include "io/image_filters.h"
#include "io/image_resize.h"
#include "io/pil_compositing.h"

namespace diffuse::stages {

namespace {

bool column_is_zero(const std::vector<uint8_t>& luma, int w, int h, int x) {
  for (int y = 0; y < h; ++y)
    if (luma[static_cast<size_t>(y) * w + x] != 0) return false;
  return true;
}

bool row_is_zero(const std::vector<uint8_t>& luma, int w, int y) {
  const auto row = luma.begin() + static_cast<ptrdiff_t>(y) * w;
  return std::all_of(row, row + w, [](uint8_t v) { return v == 0; });
}

/// get_crop_region's step 3 along one axis: [lo, hi) grown by `diff` (half before, half after),
/// shifted back inside [0, size).
void grow_span(int& lo, int& hi, int diff, int size) {
  lo -= diff / 2;  // diff >= 0: C++ and Python division agree
  hi += diff - diff / 2;
  if (hi >= size) {
    const int over = hi - size;
    hi -= over;
    lo -= over;
  }
  if (lo < 0) {
    hi -= lo;
    lo = 0;
  }
  if (hi >= size) hi = size;
}

Rgb8Image black(int width, int height) {
  return Rgb8Image{
      width, height,
      std::vector<uint8_t>(static_cast<size_t>(width) * static_cast<size_t>(height) * 3)};
}

/// `dst.paste(src, (x, y))` for RGB images (the part of src inside dst).
void paste(Rgb8Image& dst, const Rgb8Image& src, int x, int y) {
  for (int r = 0; r < src.height; ++r) {
    const int dy = y + r;
    if (dy < 0 || dy >= dst.height) continue;
    for (int c = 0; c < src.width; ++c) {
      const int dx = x + c;
      if (dx < 0 || dx >= dst.width) continue;
      std::copy_n(&src.pixels[(static_cast<size_t>(r) * src.width + c) * 3], 3,
                  &dst.pixels[(static_cast<size_t>(dy) * dst.width + dx) * 3]);
    }
  }
}

}  // namespace

CropBox mask_crop_region(const Rgb8Image& mask, int width, int height, int pad) {
  const std::vector<uint8_t> luma = to_grayscale(mask);
  const int w = mask.width, h = mask.height;
  int left = 0, right = 0, top = 0, bottom = 0;
  while (left < w && column_is_zero(luma, w, h, left)) ++left;
  if (left == w) throw ConfigError("mask crop: the mask is black everywhere (nothing to repaint)");
  while (column_is_zero(luma, w, h, w - 1 - right)) ++right;
  while (row_is_zero(luma, w, top)) ++top;
  while (row_is_zero(luma, w, h - 1 - bottom)) ++bottom;
  CropBox b{std::max(left - pad, 0), std::max(top - pad, 0), std::min(w - right + pad, w),
            std::min(h - bottom + pad, h)};
  const double crop_ratio = static_cast<double>(b.width()) / b.height();
  const double processing_ratio = static_cast<double>(width) / height;
  if (crop_ratio > processing_ratio) {
    const double desired = b.width() / processing_ratio;
    grow_span(b.y1, b.y2, static_cast<int>(desired - b.height()), h);
  } else {
    const double desired = b.height() * processing_ratio;
    grow_span(b.x1, b.x2, static_cast<int>(desired - b.width()), w);
  }
  return b;
}

Rgb8Image crop(const Rgb8Image& image, const CropBox& box) {
  return resize(image, box.width(), box.height(), ResizeBox{box.x1, box.y1, box.x2, box.y2},
                ResizeFilter::lanczos);
}

Rgb8Image resize_fill(const Rgb8Image& image, int width, int height) {
  const double ratio = static_cast<double>(width) / height;
  const double src_ratio = static_cast<double>(image.width) / image.height;
  const int src_w = ratio < src_ratio ? width : image.width * height / image.height;
  const int src_h = ratio >= src_ratio ? height : image.height * width / image.width;
  const Rgb8Image resized = resize_lanczos(image, src_w, src_h);
  Rgb8Image res = black(width, height);
  paste(res, resized, width / 2 - src_w / 2, height / 2 - src_h / 2);
  // The bands come from Image.resize without a filter argument: Pillow's default, BICUBIC.
  const auto edge = [&](int w, int h, ResizeBox box) {
    return resize(resized, w, h, box, ResizeFilter::bicubic);
  };
  if (ratio < src_ratio) {
    const int fill = height / 2 - src_h / 2;
    if (fill > 0) {
      paste(res, edge(width, fill, ResizeBox{0, 0, width, 0}), 0, 0);
      paste(res, edge(width, fill, ResizeBox{0, resized.height, width, resized.height}), 0,
            fill + src_h);
    }
  } else if (ratio > src_ratio) {
    const int fill = width / 2 - src_w / 2;
    if (fill > 0) {
      paste(res, edge(fill, height, ResizeBox{0, 0, 0, height}), 0, 0);
      paste(res, edge(fill, height, ResizeBox{resized.width, 0, resized.width, height}),
            fill + src_w, 0);
    }
  }
  return res;
}

Rgb8Image resize_crop(const Rgb8Image& image, int width, int height) {
  const double ratio = static_cast<double>(width) / height;
  const double src_ratio = static_cast<double>(image.width) / image.height;
  const int src_w = ratio > src_ratio ? width : image.width * height / image.height;
  const int src_h = ratio <= src_ratio ? height : image.height * width / image.width;
  Rgb8Image res = black(width, height);
  paste(res, resize_lanczos(image, src_w, src_h), width / 2 - src_w / 2, height / 2 - src_h / 2);
  return res;
}

Rgb8Image apply_overlay(const Rgb8Image& mask, const Rgb8Image& original, const Rgb8Image& image,
                        const std::optional<CropBox>& region) {
  if (mask.width != original.width || mask.height != original.height)
    throw ConfigError("mask crop: the mask is " + std::to_string(mask.width) + "x" +
                      std::to_string(mask.height) + ", the image " +
                      std::to_string(original.width) + "x" + std::to_string(original.height) +
                      "; they must be the same size");
  Rgb8Image under = image;
  if (region) {
    under = black(original.width, original.height);
    paste(under, resize_crop(image, region->width(), region->height()), region->x1, region->y1);
  }
  // The original, opaque where the mask is black, pasted through the inverted mask onto
  // transparent black, laid over the (opaque) result.
  std::vector<uint8_t> opacity = to_grayscale(mask);
  for (uint8_t& v : opacity) v = static_cast<uint8_t>(255 - v);
  Rgba8Image out = paste_through_mask(under, std::vector<uint8_t>(opacity.size(), 255));
  alpha_composite(out, unpremultiply(paste_through_mask(original, opacity)));
  return drop_alpha(out);
}

MaskedRegion cut_masked_region(const Image& image, const Image& mask, int blur, int width,
                               int height, int pad) {
  if (mask.width != image.width || mask.height != image.height)
    throw ConfigError("mask crop: the mask is " + std::to_string(mask.width) + "x" +
                      std::to_string(mask.height) + ", the image " + std::to_string(image.width) +
                      "x" + std::to_string(image.height) + "; they must be the same size");
  MaskedRegion r;
  r.original = Rgb8Image{image.width, image.height, image.to_rgb8()};
  r.mask = Rgb8Image{mask.width, mask.height, mask.to_rgb8()};
  if (blur > 0) r.mask = gaussian_blur(r.mask, static_cast<float>(blur));
  r.region = mask_crop_region(r.mask, width, height, pad);
  const Rgb8Image cut_image = resize_fill(crop(r.original, r.region), width, height);
  const Rgb8Image cut_mask = resize_fill(crop(r.mask, r.region), width, height);
  r.image = Image::from_rgb8(width, height, cut_image.pixels);
  r.region_mask = Image::from_rgb8(width, height, cut_mask.pixels);
  return r;
}

}  // namespace diffuse::stages
