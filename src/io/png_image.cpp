#include "io/png_image.h"

#include <png.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>

#include "diffuse/error.hpp"
#include "io/atomic_file.h"

namespace diffuse {

namespace {

constexpr size_t kSignatureBytes = 8;
constexpr png_uint_32 kMaxSide = 16384;
// Deflate expands at most ~1032:1, so a file of n bytes holds at most this many times n bytes of
// image rows; a header declaring more is truncated or lying, and is refused before the pixel
// buffer is allocated.
constexpr uint64_t kMaxDeflateRatio = 1032;

// libpng reports errors through longjmp by default; we turn them into exceptions via this handler,
// which is safe because no C++ objects with destructors live between png_* calls and the setjmp.
[[noreturn]] void png_error_fn(png_structp png, png_const_charp msg) {
  auto* buf = static_cast<std::string*>(png_get_error_ptr(png));
  *buf = msg;
  png_longjmp(png, 1);
}
void png_warning_fn(png_structp, png_const_charp) {}

struct MemoryReader {
  const uint8_t* data;
  size_t size, offset;
};

void read_from_memory(png_structp png, png_bytep out, png_size_t length) {
  auto* r = static_cast<MemoryReader*>(png_get_io_ptr(png));
  if (length > r->size - r->offset) png_error(png, "truncated PNG data");
  std::memcpy(out, r->data + r->offset, length);
  r->offset += length;
}

void write_to_memory(png_structp png, png_bytep data, png_size_t length) {
  auto* out = static_cast<std::vector<uint8_t>*>(png_get_io_ptr(png));
  out->insert(out->end(), data, data + length);
}
void flush_memory(png_structp) {}

// Expands every PNG colour type and depth to 8-bit RGB.
void request_rgb8(png_structp png, png_infop info) {
  const int color = png_get_color_type(png, info), depth = png_get_bit_depth(png, info);
  if (depth == 16) png_set_strip_16(png);
  if (color == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
  if (color == PNG_COLOR_TYPE_GRAY && depth < 8) png_set_expand_gray_1_2_4_to_8(png);
  if (color == PNG_COLOR_TYPE_GRAY || color == PNG_COLOR_TYPE_GRAY_ALPHA) png_set_gray_to_rgb(png);
  if (png_get_valid(png, info, PNG_INFO_tRNS)) png_set_tRNS_to_alpha(png);
  png_set_strip_alpha(png);
  png_read_update_info(png, info);
}

[[gnu::noinline]] void collect_text(png_structp png, png_infop info,
                                    std::map<std::string, std::string>* text) {
  png_textp chunks = nullptr;
  int n = 0;
  png_get_text(png, info, &chunks, &n);
  for (int i = 0; i < n; ++i)
    (*text)[chunks[i].key] = std::string(chunks[i].text, chunks[i].text_length);
}

std::vector<png_text> text_chunks(const std::map<std::string, std::string>& text) {
  std::vector<png_text> chunks;
  for (const auto& [k, v] : text) {
    png_text t{};
    t.compression = PNG_TEXT_COMPRESSION_NONE;
    t.key = const_cast<char*>(k.c_str());
    t.text = const_cast<char*>(v.c_str());
    t.text_length = v.size();
    chunks.push_back(t);
  }
  return chunks;
}

std::vector<uint8_t> read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw FileError(path + ": cannot open: " + std::strerror(errno));
  std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(in)),
                             std::istreambuf_iterator<char>());
  if (in.bad()) throw FileError(path + ": read error");
  return bytes;
}

enum class DecodeMode { Pixels, TextOnly };

struct DecodeOutcome {
  bool ok = false, too_large = false;
  png_uint_32 width = 0, height = 0;
};

// The libpng calls, in a function of their own that creates no C++ temporaries: a longjmp from
// libpng's error handler returns here through setjmp, so nothing with a destructor may live in
// this frame (the vectors written belong to the caller).
[[gnu::noinline]] DecodeOutcome run_decoder(const uint8_t* data, size_t size, DecodeMode mode,
                                            uint64_t max_pixels, Rgb8Image& img,
                                            std::vector<png_bytep>& rows,
                                            std::map<std::string, std::string>* text,
                                            std::string& err) {
  png_structp png =
      png_create_read_struct(PNG_LIBPNG_VER_STRING, &err, png_error_fn, png_warning_fn);
  png_infop info = png ? png_create_info_struct(png) : nullptr;
  MemoryReader reader{data, size, kSignatureBytes};
  volatile DecodeOutcome outcome;
  outcome.ok = png && info;
  if (outcome.ok && setjmp(png_jmpbuf(png)) == 0) {
    png_set_read_fn(png, &reader, read_from_memory);
    png_set_sig_bytes(png, static_cast<int>(kSignatureBytes));
    png_set_user_limits(png, kMaxSide, kMaxSide);
    png_read_info(png, info);
    const png_uint_32 w = png_get_image_width(png, info), h = png_get_image_height(png, info);
    outcome.width = w;
    outcome.height = h;
    outcome.too_large = mode == DecodeMode::Pixels && uint64_t{w} * h > max_pixels;
    if (mode == DecodeMode::Pixels &&
        uint64_t{h} * (png_get_rowbytes(png, info) + 1) > uint64_t{size} * kMaxDeflateRatio)
      png_error(png, "image data too short for the size in its header (truncated?)");
    if (mode == DecodeMode::Pixels && !outcome.too_large) {
      request_rgb8(png, info);
      img.width = static_cast<int>(w);
      img.height = static_cast<int>(h);
      img.pixels.resize(size_t{w} * h * 3);
      rows.resize(h);
      for (png_uint_32 y = 0; y < h; ++y) rows[y] = img.pixels.data() + size_t{y} * w * 3;
      png_read_image(png, rows.data());
      png_read_end(png, info);
    }
    if (text && !outcome.too_large) collect_text(png, info, text);
  } else {
    outcome.ok = false;
  }
  png_destroy_read_struct(&png, &info, nullptr);
  DecodeOutcome result;
  result.ok = outcome.ok && !outcome.too_large;
  result.too_large = outcome.too_large;
  result.width = outcome.width;
  result.height = outcome.height;
  return result;
}

// One decoder for both uses; returns false with `err` set when decoding failed.
bool decode(const uint8_t* data, size_t size, DecodeMode mode, const PngLimits& limits,
            Rgb8Image& img, std::map<std::string, std::string>* text, std::string& err) {
  std::vector<png_bytep> rows;
  const DecodeOutcome o = run_decoder(data, size, mode, limits.max_pixels, img, rows, text, err);
  if (o.too_large) {
    err = "image is " + std::to_string(o.width) + "x" + std::to_string(o.height) +
          ", over the limit of " + std::to_string(limits.max_pixels) + " pixels";
    return false;
  }
  if (!o.ok && err.empty()) err = "corrupt PNG";
  return o.ok;
}

void check_signature(const uint8_t* data, size_t size, const std::string& what) {
  if (size < kSignatureBytes || png_sig_cmp(data, 0, kSignatureBytes) != 0)
    throw FileError(what + ": not a PNG file");
}

// Walks the chunks libpng will read (all of them through IEND; only those before the first IDAT
// for the text) and refuses one whose length runs past the end of the data. libpng allocates a
// text chunk's declared length before reading it: a 300-byte file could claim 2 GB (found by
// fuzz/fuzz_png.cpp). The outcome is the error libpng would reach anyway, without the allocation.
void check_chunk_lengths(const uint8_t* data, size_t size, DecodeMode mode,
                         const std::string& what) {
  constexpr size_t kLengthBytes = 4, kTypeBytes = 4, kCrcBytes = 4;
  auto be32 = [data](size_t at) {
    return uint32_t{data[at]} << 24 | uint32_t{data[at + 1]} << 16 | uint32_t{data[at + 2]} << 8 |
           uint32_t{data[at + 3]};
  };
  for (size_t pos = kSignatureBytes; size - pos >= kLengthBytes + kTypeBytes;) {
    const uint64_t length = be32(pos);
    const std::string type(reinterpret_cast<const char*>(data + pos + kLengthBytes), kTypeBytes);
    if (mode == DecodeMode::TextOnly && type == "IDAT") return;
    if (length + kLengthBytes + kTypeBytes + kCrcBytes > size - pos) {
      std::string name;
      for (char c : type) name += (c >= 0x20 && c < 0x7f) ? c : '?';
      throw FileError(what + ": corrupt PNG: chunk '" + name + "' of " + std::to_string(length) +
                      " bytes runs past the end of the data (truncated?)");
    }
    if (type == "IEND") return;
    pos += static_cast<size_t>(length) + kLengthBytes + kTypeBytes + kCrcBytes;
  }
}

}  // namespace

std::vector<uint8_t> encode_png_bytes(const Rgb8Image& image,
                                      const std::map<std::string, std::string>& text,
                                      const std::string& what) {
  if (image.width <= 0 || image.height <= 0 ||
      image.pixels.size() !=
          static_cast<size_t>(image.width) * static_cast<size_t>(image.height) * 3)
    throw FileError(what + ": image buffer does not match its size");
  std::string err;
  std::vector<uint8_t> out;
  png_structp png =
      png_create_write_struct(PNG_LIBPNG_VER_STRING, &err, png_error_fn, png_warning_fn);
  png_infop info = png ? png_create_info_struct(png) : nullptr;
  std::vector<png_text> chunks = text_chunks(text);
  std::vector<png_bytep> rows(static_cast<size_t>(image.height));
  for (int y = 0; y < image.height; ++y)
    rows[static_cast<size_t>(y)] =
        const_cast<png_bytep>(image.pixels.data() + static_cast<size_t>(y) * image.width * 3);
  volatile bool ok = png && info;
  if (ok && setjmp(png_jmpbuf(png)) == 0) {
    png_set_write_fn(png, &out, write_to_memory, flush_memory);
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
  if (!ok) throw FileError(what + ": PNG encoding failed" + (err.empty() ? "" : ": " + err));
  return out;
}

Rgb8Image decode_png_bytes(const uint8_t* data, size_t size, const std::string& what,
                           std::map<std::string, std::string>* text, const PngLimits& limits) {
  check_signature(data, size, what);
  check_chunk_lengths(data, size, DecodeMode::Pixels, what);
  Rgb8Image img;
  std::string err;
  if (!decode(data, size, DecodeMode::Pixels, limits, img, text, err))
    throw FileError(
        what + ": " +
        (err.find("over the limit") != std::string::npos ? err : "corrupt PNG: " + err));
  return img;
}

std::map<std::string, std::string> decode_png_text(const uint8_t* data, size_t size,
                                                   const std::string& what) {
  check_signature(data, size, what);
  check_chunk_lengths(data, size, DecodeMode::TextOnly, what);
  Rgb8Image unused;
  std::map<std::string, std::string> text;
  std::string err;
  if (!decode(data, size, DecodeMode::TextOnly, {}, unused, &text, err))
    throw FileError(what + ": corrupt PNG: " + err);
  return text;
}

void write_png(const std::string& path, const Rgb8Image& image,
               const std::map<std::string, std::string>& text) {
  const std::vector<uint8_t> bytes = encode_png_bytes(image, text, path);
  AtomicFile f(path);
  const bool ok = std::fwrite(bytes.data(), 1, bytes.size(), f.get()) == bytes.size();
  f.commit(ok, ok ? "" : std::strerror(errno));
}

Rgb8Image read_png(const std::string& path, std::map<std::string, std::string>* text,
                   const PngLimits& limits) {
  const std::vector<uint8_t> bytes = read_file(path);
  return decode_png_bytes(bytes.data(), bytes.size(), path, text, limits);
}

std::map<std::string, std::string> read_png_text(const std::string& path) {
  const std::vector<uint8_t> bytes = read_file(path);
  return decode_png_text(bytes.data(), bytes.size(), path);
}

}  // namespace diffuse
