// PNG reading and writing (libpng), with tEXt chunks: AUTOMATIC1111 stores generation settings in
// a `parameters` text chunk, which we write and read back. Files and in-memory buffers go through
// the same encoder and decoder.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace diffuse {

struct Rgb8Image {
  int width = 0, height = 0;
  std::vector<uint8_t> pixels;  // RGB, row-major, 3 bytes per pixel
};

/// Decoding limits. A PNG whose header declares more than `max_pixels` pixels (or a side over
/// 16384) is refused after reading the header, before any pixel memory is allocated.
struct PngLimits {
  uint64_t max_pixels = uint64_t{16384} * 16384;
};

/// Encodes an 8-bit RGB PNG with text chunks. `what` names the destination in errors.
std::vector<uint8_t> encode_png_bytes(const Rgb8Image& image,
                                      const std::map<std::string, std::string>& text,
                                      const std::string& what);

/// Decodes any PNG (gray, palette, alpha, 16-bit) as 8-bit RGB (alpha dropped, as PIL's
/// convert("RGB")). `what` names the source in errors (FileError).
Rgb8Image decode_png_bytes(const uint8_t* data, size_t size, const std::string& what,
                           std::map<std::string, std::string>* text = nullptr,
                           const PngLimits& limits = {});

/// Only the text chunks (the pixels are not decoded).
std::map<std::string, std::string> decode_png_text(const uint8_t* data, size_t size,
                                                   const std::string& what);

/// Writes an 8-bit RGB PNG with text chunks through an AtomicFile (a unique temporary name in the
/// same folder, fsynced, then renamed), so a failure never leaves a partial or temporary file.
/// Throws FileError naming the path.
void write_png(const std::string& path, const Rgb8Image& image,
               const std::map<std::string, std::string>& text = {});

/// Reads a PNG file (decode_png). Throws FileError naming the path.
Rgb8Image read_png(const std::string& path, std::map<std::string, std::string>* text = nullptr,
                   const PngLimits& limits = {});

/// Only the text chunks of a PNG file.
std::map<std::string, std::string> read_png_text(const std::string& path);

}  // namespace diffuse
