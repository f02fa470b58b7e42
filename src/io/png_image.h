// PNG reading and writing (libpng), with tEXt chunks: AUTOMATIC1111 stores generation settings in
// a `parameters` text chunk, which we write and read back.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace diffuse {

struct Rgb8Image {
  int width = 0, height = 0;
  std::vector<uint8_t> pixels;  // RGB, row-major, 3 bytes per pixel
};

/// Writes an 8-bit RGB PNG with text chunks through an AtomicFile (a unique temporary name in the
/// same folder, fsynced, then renamed), so a failure never leaves a partial or temporary file.
/// Throws FileError naming the path.
void write_png(const std::string& path, const Rgb8Image& image,
               const std::map<std::string, std::string>& text = {});

/// Reads any PNG (gray, palette, alpha, 16-bit) as 8-bit RGB (alpha composited on black, as PIL's
/// convert("RGB") drops it). Throws FileError naming the path.
Rgb8Image read_png(const std::string& path, std::map<std::string, std::string>* text = nullptr);

/// Only the text chunks.
std::map<std::string, std::string> read_png_text(const std::string& path);

}  // namespace diffuse
