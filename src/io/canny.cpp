#include "io/canny.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "diffuse/error.hpp"

namespace diffuse {

namespace {

/// Per pixel: the Sobel derivatives of the channel with the largest |dx| + |dy| (the first on a
/// tie, as OpenCV), and that magnitude.
struct Gradient {
  std::vector<int> dx, dy, magnitude;
};

Gradient sobel_l1(const Rgb8Image& im) {
  const int w = im.width, h = im.height;
  const auto at = [&](int x, int y, int c) {  // BORDER_REPLICATE
    x = std::clamp(x, 0, w - 1);
    y = std::clamp(y, 0, h - 1);
    return static_cast<int>(im.pixels[(static_cast<size_t>(y) * w + x) * 3 + c]);
  };
  Gradient g;
  const size_t n = static_cast<size_t>(w) * h;
  g.dx.resize(n);
  g.dy.resize(n);
  g.magnitude.resize(n);
  for (int y = 0; y < h; ++y) {
    for (int x = 0; x < w; ++x) {
      const size_t i = static_cast<size_t>(y) * w + x;
      for (int c = 0; c < 3; ++c) {
        const int dx = (at(x + 1, y - 1, c) - at(x - 1, y - 1, c)) +
                       2 * (at(x + 1, y, c) - at(x - 1, y, c)) +
                       (at(x + 1, y + 1, c) - at(x - 1, y + 1, c));
        const int dy = (at(x - 1, y + 1, c) - at(x - 1, y - 1, c)) +
                       2 * (at(x, y + 1, c) - at(x, y - 1, c)) +
                       (at(x + 1, y + 1, c) - at(x + 1, y - 1, c));
        const int m = std::abs(dx) + std::abs(dy);
        if (c == 0 || m > g.magnitude[i]) {
          g.dx[i] = dx;
          g.dy[i] = dy;
          g.magnitude[i] = m;
        }
      }
    }
  }
  return g;
}

enum : uint8_t { kCandidate = 0, kNotEdge = 1, kEdge = 2 };

/// Whether pixel (x, y) is a local maximum along its gradient direction, by OpenCV's test
/// (tan 22.5 degrees in 15-bit fixed point; magnitudes outside the image are 0).
bool is_ridge(const Gradient& g, int w, int h, int x, int y) {
  constexpr int kShift = 15;
  const int tg22 = static_cast<int>(0.4142135623730950488016887242097 * (1 << kShift) + 0.5);
  const auto mag = [&](int xx, int yy) {
    if (xx < 0 || yy < 0 || xx >= w || yy >= h) return 0;
    return g.magnitude[static_cast<size_t>(yy) * w + xx];
  };
  const size_t i = static_cast<size_t>(y) * w + x;
  const int m = g.magnitude[i], xs = g.dx[i], ys = g.dy[i];
  const int ax = std::abs(xs), ay = std::abs(ys) << kShift;
  const int tg22x = ax * tg22;
  if (ay < tg22x) return m > mag(x - 1, y) && m >= mag(x + 1, y);
  const int tg67x = tg22x + (ax << (kShift + 1));
  if (ay > tg67x) return m > mag(x, y - 1) && m >= mag(x, y + 1);
  const int s = (xs ^ ys) < 0 ? -1 : 1;
  return m > mag(x - s, y - 1) && m > mag(x + s, y + 1);
}

void check_threshold(double v, const char* name) {
  if (!std::isfinite(v) || v < 0)
    throw ConfigError(std::string("canny: ") + name + " threshold must be a number >= 0");
}

}  // namespace

Rgb8Image canny_edges(const Rgb8Image& image, double low, double high) {
  check_threshold(low, "low");
  check_threshold(high, "high");
  if (image.width <= 0 || image.height <= 0 ||
      image.pixels.size() != static_cast<size_t>(image.width) * image.height * 3)
    throw ConfigError("canny: the image's pixel buffer does not match its size");
  if (low > high) std::swap(low, high);
  const int lo = static_cast<int>(std::floor(low)), hi = static_cast<int>(std::floor(high));
  const int w = image.width, h = image.height;
  const Gradient g = sobel_l1(image);
  std::vector<uint8_t> map(static_cast<size_t>(w) * h, kNotEdge);
  std::vector<int> stack;
  for (int y = 0; y < h; ++y) {
    for (int x = 0; x < w; ++x) {
      const size_t i = static_cast<size_t>(y) * w + x;
      if (g.magnitude[i] <= lo || !is_ridge(g, w, h, x, y)) continue;
      map[i] = kCandidate;
      if (g.magnitude[i] > hi) {
        map[i] = kEdge;
        stack.push_back(static_cast<int>(i));
      }
    }
  }
  // Hysteresis: candidates 8-connected to an edge become edges.
  while (!stack.empty()) {
    const int i = stack.back();
    stack.pop_back();
    const int x = i % w, y = i / w;
    for (int dy = -1; dy <= 1; ++dy) {
      for (int dx = -1; dx <= 1; ++dx) {
        const int xx = x + dx, yy = y + dy;
        if (xx < 0 || yy < 0 || xx >= w || yy >= h) continue;
        const size_t j = static_cast<size_t>(yy) * w + xx;
        if (map[j] != kCandidate) continue;
        map[j] = kEdge;
        stack.push_back(static_cast<int>(j));
      }
    }
  }
  Rgb8Image out{w, h, std::vector<uint8_t>(static_cast<size_t>(w) * h * 3, 0)};
  for (size_t i = 0; i < map.size(); ++i)
    if (map[i] == kEdge) std::fill_n(&out.pixels[i * 3], 3, uint8_t{255});
  return out;
}

}  // namespace diffuse
