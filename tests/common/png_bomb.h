// A decompression bomb's header: a small valid PNG whose IHDR claims width x height, for tests
// that a decoder refuses oversized images from the header, before allocating their pixels.
#pragma once

#include <cstdint>
#include <vector>

#include "diffuse/diffuse.hpp"

namespace diffuse::test {

inline uint32_t png_crc32(const uint8_t* data, size_t n) {
  uint32_t c = 0xffffffffu;
  for (size_t i = 0; i < n; ++i) {
    c ^= data[i];
    for (int k = 0; k < 8; ++k) c = (c >> 1) ^ (0xedb88320u & (0u - (c & 1u)));
  }
  return ~c;
}

inline std::vector<uint8_t> png_declaring(uint32_t width, uint32_t height) {
  Image img;
  img.width = img.height = 8;
  img.rgb.assign(8 * 8 * 3, 0.5f);
  std::vector<uint8_t> png = encode_png(img);
  auto put32 = [&](size_t at, uint32_t v) {
    for (int i = 0; i < 4; ++i) png[at + i] = static_cast<uint8_t>(v >> (24 - 8 * i));
  };
  put32(16, width);  // IHDR data follows the signature (8), chunk length (4) and type (4)
  put32(20, height);
  put32(29, png_crc32(png.data() + 12, 17));  // CRC over type + 13 data bytes
  return png;
}

}  // namespace diffuse::test
