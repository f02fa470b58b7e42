#include "io/png_image.h"

#include <png.h>

#include <cstdio>
#include <cstring>
#include <memory>

#include "diffuse/error.hpp"
#include "io/atomic_file.h"

namespace diffuse {

namespace {

struct FileCloser {
  void operator()(FILE* f) const {
    if (f) std::fclose(f);
  }
};

// libpng reports errors through longjmp by default; we turn them into exceptions via this handler,
// which is safe because no C++ objects with destructors live between png_* calls and the setjmp.
[[noreturn]] void png_error_fn(png_structp png, png_const_charp msg) {
  auto* buf = static_cast<std::string*>(png_get_error_ptr(png));
  *buf = msg;
  png_longjmp(png, 1);
}
void png_warning_fn(png_structp, png_const_charp) {}

bool is_png(FILE* f) {
  unsigned char sig[8];
  if (std::fread(sig, 1, 8, f) != 8) return false;
  return png_sig_cmp(sig, 0, 8) == 0;
}

}  // namespace

void write_png(const std::string& path, const Rgb8Image& image,
               const std::map<std::string, std::string>& text) {
  if (image.width <= 0 || image.height <= 0 ||
      image.pixels.size() !=
          static_cast<size_t>(image.width) * static_cast<size_t>(image.height) * 3)
    throw FileError(path + ": image buffer does not match its size");
  AtomicFile f(path);
  std::string err;
  png_structp png =
      png_create_write_struct(PNG_LIBPNG_VER_STRING, &err, png_error_fn, png_warning_fn);
  png_infop info = png ? png_create_info_struct(png) : nullptr;
  std::vector<png_text> chunks;
  for (const auto& [k, v] : text) {
    png_text t{};
    t.compression = PNG_TEXT_COMPRESSION_NONE;
    t.key = const_cast<char*>(k.c_str());
    t.text = const_cast<char*>(v.c_str());
    t.text_length = v.size();
    chunks.push_back(t);
  }
  std::vector<png_bytep> rows(static_cast<size_t>(image.height));
  for (int y = 0; y < image.height; ++y)
    rows[static_cast<size_t>(y)] =
        const_cast<png_bytep>(image.pixels.data() + static_cast<size_t>(y) * image.width * 3);
  volatile bool ok = png && info;
  if (ok && setjmp(png_jmpbuf(png)) == 0) {
    png_init_io(png, f.get());
    png_set_IHDR(png, info, static_cast<png_uint_32>(image.width),
                 static_cast<png_uint_32>(image.height), 8, PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    if (!chunks.empty()) png_set_text(png, info, chunks.data(), static_cast<int>(chunks.size()));
    png_write_info(png, info);
    png_write_image(png, rows.data());
    png_write_end(png, nullptr);
  } else {
    ok = false;
  }
  png_destroy_write_struct(&png, &info);
  f.commit(ok, err.empty() && !ok ? "PNG encoding failed" : err);
}

Rgb8Image read_png(const std::string& path, std::map<std::string, std::string>* text) {
  std::unique_ptr<FILE, FileCloser> f(std::fopen(path.c_str(), "rb"));
  if (!f) throw FileError(path + ": cannot open: " + std::strerror(errno));
  if (!is_png(f.get())) throw FileError(path + ": not a PNG file");
  std::string err;
  png_structp png =
      png_create_read_struct(PNG_LIBPNG_VER_STRING, &err, png_error_fn, png_warning_fn);
  png_infop info = png ? png_create_info_struct(png) : nullptr;
  Rgb8Image img;
  volatile bool ok = png && info;
  std::vector<png_bytep> rows;
  if (ok && setjmp(png_jmpbuf(png)) == 0) {
    png_init_io(png, f.get());
    png_set_sig_bytes(png, 8);
    png_set_user_limits(png, 16384, 16384);  // refuse absurd sizes before allocating
    png_read_info(png, info);
    const png_uint_32 w = png_get_image_width(png, info), h = png_get_image_height(png, info);
    const int color = png_get_color_type(png, info), depth = png_get_bit_depth(png, info);
    if (depth == 16) png_set_strip_16(png);
    if (color == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
    if (color == PNG_COLOR_TYPE_GRAY && depth < 8) png_set_expand_gray_1_2_4_to_8(png);
    if (color == PNG_COLOR_TYPE_GRAY || color == PNG_COLOR_TYPE_GRAY_ALPHA)
      png_set_gray_to_rgb(png);
    if (png_get_valid(png, info, PNG_INFO_tRNS)) png_set_tRNS_to_alpha(png);
    png_set_strip_alpha(png);
    png_read_update_info(png, info);
    img.width = static_cast<int>(w);
    img.height = static_cast<int>(h);
    img.pixels.resize(static_cast<size_t>(w) * h * 3);
    rows.resize(h);
    for (png_uint_32 y = 0; y < h; ++y)
      rows[y] = img.pixels.data() + static_cast<size_t>(y) * w * 3;
    png_read_image(png, rows.data());
    png_read_end(png, info);
    if (text) {
      png_textp chunks = nullptr;
      int n = 0;
      png_get_text(png, info, &chunks, &n);
      for (int i = 0; i < n; ++i)
        (*text)[chunks[i].key] = std::string(chunks[i].text, chunks[i].text_length);
    }
  } else {
    ok = false;
  }
  png_destroy_read_struct(&png, &info, nullptr);
  if (!ok) throw FileError(path + ": corrupt PNG" + (err.empty() ? "" : ": " + err));
  return img;
}

std::map<std::string, std::string> read_png_text(const std::string& path) {
  std::map<std::string, std::string> text;
  read_png(path, &text);
  return text;
}

}  // namespace diffuse
