#include "io/image_resize.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numbers>
#include <string>
#include <vector>

#include "diffuse/error.hpp"

namespace diffuse {

namespace {

constexpr int kMaxResizeSide = 16384;
// Pillow's PRECISION_BITS for 8-bit images: 32 - 8 bits of result - 2 bits of headroom, because
// Lanczos coefficients can be negative and partial sums can exceed 1.
constexpr int kPrecisionBits = 32 - 8 - 2;

double sinc(double x) {
  if (x == 0.0) return 1.0;
  x *= std::numbers::pi;
  return std::sin(x) / x;
}

double lanczos(double x) {
  // Truncated sinc, as Pillow's lanczos_filter (including its half-open window).
  if (-3.0 <= x && x < 3.0) return sinc(x) * sinc(x / 3);
  return 0.0;
}

double bicubic(double x) {
  // Pillow's bicubic_filter (Keys, a = -0.5).
  constexpr double a = -0.5;
  if (x < 0.0) x = -x;
  if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
  if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
  return 0.0;
}

struct Filter {
  double (*weight)(double);
  double support;
};

Filter filter_of(ResizeFilter f) {
  return f == ResizeFilter::bicubic ? Filter{bicubic, 2.0} : Filter{lanczos, 3.0};
}

/// The filter window of one output pixel along one axis: source pixels [first, first + count)
/// weighted by fixed-point coefficients.
struct Window {
  int first = 0, count = 0;
};

struct Coefficients {
  int ksize = 0;  // coefficient slots per output pixel
  std::vector<Window> windows;
  std::vector<int32_t> k;  // windows.size() * ksize, fixed point with kPrecisionBits
};

/// Pillow's precompute_coeffs + normalize_coeffs_8bpc for the source span [in0, in1) of a side of
/// in_size pixels -> out_size pixels. An empty span (in0 == in1) gives every output pixel the
/// filter's window around in0 (what Pillow does; diffusers' "fill" resize relies on it).
Coefficients precompute(int in_size, double in0, double in1, int out_size, Filter filter) {
  const double scale = (in1 - in0) / out_size;
  const double filterscale = scale < 1.0 ? 1.0 : scale;
  const double support = filter.support * filterscale;
  Coefficients c;
  c.ksize = static_cast<int>(std::ceil(support)) * 2 + 1;
  c.windows.resize(static_cast<size_t>(out_size));
  c.k.assign(static_cast<size_t>(out_size) * static_cast<size_t>(c.ksize), 0);
  std::vector<double> w(static_cast<size_t>(c.ksize));
  for (int xx = 0; xx < out_size; ++xx) {
    const double center = in0 + (xx + 0.5) * scale;
    const double ss = 1.0 / filterscale;
    // (int) truncates toward zero, as Pillow's C cast does.
    int xmin = static_cast<int>(center - support + 0.5);
    if (xmin < 0) xmin = 0;
    int xmax = static_cast<int>(center + support + 0.5);
    if (xmax > in_size) xmax = in_size;
    xmax -= xmin;
    double ww = 0.0;
    for (int x = 0; x < xmax; ++x) {
      const double v = filter.weight((x + xmin - center + 0.5) * ss);
      w[static_cast<size_t>(x)] = v;
      ww += v;
    }
    int32_t* k = &c.k[static_cast<size_t>(xx) * static_cast<size_t>(c.ksize)];
    for (int x = 0; x < xmax; ++x) {
      double v = w[static_cast<size_t>(x)];
      if (ww != 0.0) v /= ww;
      const double scaled = v * static_cast<double>(1 << kPrecisionBits);
      k[x] = static_cast<int32_t>(v < 0 ? -0.5 + scaled : 0.5 + scaled);
    }
    c.windows[static_cast<size_t>(xx)] = {xmin, xmax};
  }
  return c;
}

/// Pillow's clip8: the accumulator (with its rounding half already added) shifted down, clamped.
uint8_t clip8(int64_t acc) {
  const int64_t v = acc >> kPrecisionBits;
  return static_cast<uint8_t>(v < 0 ? 0 : (v > 255 ? 255 : v));
}

constexpr int64_t kHalf = int64_t(1) << (kPrecisionBits - 1);

/// Horizontal pass over rows [row0, row0 + rows) of `in` (width in_w) into an out_w-wide image.
std::vector<uint8_t> horizontal(const std::vector<uint8_t>& in, int in_w, int row0, int rows,
                                const Coefficients& c, int out_w) {
  std::vector<uint8_t> out(static_cast<size_t>(out_w) * static_cast<size_t>(rows) * 3);
  for (int yy = 0; yy < rows; ++yy) {
    const uint8_t* src = &in[static_cast<size_t>(yy + row0) * static_cast<size_t>(in_w) * 3];
    uint8_t* dst = &out[static_cast<size_t>(yy) * static_cast<size_t>(out_w) * 3];
    for (int xx = 0; xx < out_w; ++xx) {
      const Window win = c.windows[static_cast<size_t>(xx)];
      const int32_t* k = &c.k[static_cast<size_t>(xx) * static_cast<size_t>(c.ksize)];
      int64_t s0 = kHalf, s1 = kHalf, s2 = kHalf;
      for (int x = 0; x < win.count; ++x) {
        const uint8_t* p = src + static_cast<size_t>(x + win.first) * 3;
        s0 += int64_t(p[0]) * k[x];
        s1 += int64_t(p[1]) * k[x];
        s2 += int64_t(p[2]) * k[x];
      }
      dst[xx * 3 + 0] = clip8(s0);
      dst[xx * 3 + 1] = clip8(s1);
      dst[xx * 3 + 2] = clip8(s2);
    }
  }
  return out;
}

/// Vertical pass: `in` is w wide; window firsts are relative to its first row.
std::vector<uint8_t> vertical(const std::vector<uint8_t>& in, int w, const Coefficients& c,
                              int row_shift, int out_h) {
  const size_t stride = static_cast<size_t>(w) * 3;
  std::vector<uint8_t> out(stride * static_cast<size_t>(out_h));
  for (int yy = 0; yy < out_h; ++yy) {
    const Window win = c.windows[static_cast<size_t>(yy)];
    const int32_t* k = &c.k[static_cast<size_t>(yy) * static_cast<size_t>(c.ksize)];
    uint8_t* dst = &out[static_cast<size_t>(yy) * stride];
    for (size_t i = 0; i < stride; ++i) {
      int64_t s = kHalf;
      for (int y = 0; y < win.count; ++y)
        s += int64_t(in[static_cast<size_t>(win.first - row_shift + y) * stride + i]) * k[y];
      dst[i] = clip8(s);
    }
  }
  return out;
}

void check_side(const char* name, int v) {
  if (v <= 0 || v > kMaxResizeSide)
    throw ConfigError(std::string("resize: ") + name + " " + std::to_string(v) +
                      " must be between 1 and " + std::to_string(kMaxResizeSide));
}

}  // namespace

Rgb8Image resize_lanczos(const Rgb8Image& in, int width, int height) {
  return resize(in, width, height, ResizeBox{0, 0, in.width, in.height}, ResizeFilter::lanczos);
}

Rgb8Image resize(const Rgb8Image& in, int width, int height, const ResizeBox& box,
                 ResizeFilter filter_kind) {
  const Filter filter = filter_of(filter_kind);
  check_side("width", width);
  check_side("height", height);
  check_side("source width", in.width);
  check_side("source height", in.height);
  if (in.pixels.size() != static_cast<size_t>(in.width) * static_cast<size_t>(in.height) * 3)
    throw ConfigError("resize: the source pixel buffer does not match its " +
                      std::to_string(in.width) + "x" + std::to_string(in.height) + " size");
  if (box.x0 < 0 || box.y0 < 0 || box.x1 > in.width || box.y1 > in.height || box.x1 < box.x0 ||
      box.y1 < box.y0)
    throw ConfigError("resize: the source box lies outside the " + std::to_string(in.width) + "x" +
                      std::to_string(in.height) + " image");
  const bool whole = box.x0 == 0 && box.y0 == 0 && box.x1 == in.width && box.y1 == in.height;
  // Image.resize returns a copy when the size is unchanged; a box of the output's size is a crop.
  if (whole && width == in.width && height == in.height) return in;
  if (box.x1 - box.x0 == width && box.y1 - box.y0 == height) {
    Rgb8Image out{width, height, {}};
    out.pixels.resize(static_cast<size_t>(width) * static_cast<size_t>(height) * 3);
    for (int y = 0; y < height; ++y)
      std::copy_n(&in.pixels[(static_cast<size_t>(box.y0 + y) * in.width + box.x0) * 3],
                  static_cast<size_t>(width) * 3, &out.pixels[static_cast<size_t>(y) * width * 3]);
    return out;
  }

  // Pillow's ImagingResampleInner compares the box's far edge with the output size.
  const bool need_horizontal = width != in.width || box.x0 != 0 || box.x1 != width;
  const bool need_vertical = height != in.height || box.y0 != 0 || box.y1 != height;
  const Coefficients vert = precompute(in.height, box.y0, box.y1, height, filter);
  // Like Pillow, the horizontal pass only computes the source rows the vertical pass reads.
  const int row_first = vert.windows.front().first;
  const int row_last = vert.windows.back().first + vert.windows.back().count;

  Rgb8Image out{width, in.height, {}};
  const std::vector<uint8_t>* src = &in.pixels;
  int row_shift = 0;
  std::vector<uint8_t> temp;
  if (need_horizontal) {
    temp = horizontal(in.pixels, in.width, row_first, row_last - row_first,
                      precompute(in.width, box.x0, box.x1, width, filter), width);
    src = &temp;
    row_shift = row_first;
    out.height = row_last - row_first;
  }
  if (need_vertical) {
    out.pixels = vertical(*src, width, vert, row_shift, height);
    out.height = height;
  } else {
    out.pixels = need_horizontal ? std::move(temp) : in.pixels;
  }
  return out;
}

}  // namespace diffuse
