// Inputs the libFuzzer targets (fuzz/, scripts/run_fuzzers.sh) found to crash, hang or allocate
// far too much, kept as regression tests: each must now be a one-line FileError naming the input.
#include <gtest/gtest.h>
#include <zlib.h>

#include <cstdint>
#include <string>
#include <vector>

#include "diffuse/error.hpp"
#include "io/png_image.h"

using namespace diffuse;

namespace {

// The FileError `f` throws: one line, naming `what`, containing `needle`.
template <class F>
void expect_one_line_error(F f, const std::string& what, const std::string& needle) {
  try {
    f();
    ADD_FAILURE() << "no error";
  } catch (const FileError& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find(what), std::string::npos) << msg;
    EXPECT_NE(msg.find(needle), std::string::npos) << msg;
    EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
  }
}

void put_be32(std::vector<uint8_t>& out, uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<uint8_t>(v >> shift));
}

// A PNG chunk: length, type, data, CRC of type + data.
std::vector<uint8_t> chunk(const std::string& type, const std::vector<uint8_t>& data,
                           uint32_t declared_length) {
  std::vector<uint8_t> out;
  put_be32(out, declared_length);
  out.insert(out.end(), type.begin(), type.end());
  out.insert(out.end(), data.begin(), data.end());
  uLong crc = crc32(0, reinterpret_cast<const Bytef*>(type.data()), 4);
  crc = crc32(crc, data.data(), static_cast<uInt>(data.size()));
  put_be32(out, static_cast<uint32_t>(crc));
  return out;
}

std::vector<uint8_t> small_png() {
  Rgb8Image img{9, 4, std::vector<uint8_t>(9 * 4 * 3, 77)};
  return encode_png_bytes(img, {{"parameters", "a cat"}}, "small.png");
}

constexpr size_t kSignature = 8, kIhdrChunk = 8 + 13 + 4;

}  // namespace

// fuzz_png: an iTXt chunk right after IHDR whose length field says 0x3f000027 bytes in a 316-byte
// file; libpng allocated the declared length (1 GB) before finding the data missing.
TEST(reader_regressions, png_text_chunk_longer_than_the_file) {
  std::vector<uint8_t> png = small_png();
  const std::vector<uint8_t> itxt = chunk("iTXt", {'p', 0, 0, 0, 0, 'x'}, 0x3f000027u);
  png.insert(png.begin() + kSignature + kIhdrChunk, itxt.begin(), itxt.end());
  expect_one_line_error([&] { decode_png_text(png.data(), png.size(), "big-itxt.png"); },
                        "big-itxt.png", "runs past the end");
  expect_one_line_error([&] { decode_png_bytes(png.data(), png.size(), "big-itxt.png"); },
                        "big-itxt.png", "runs past the end");
}

// A header declaring 16000x16000 RGB over a few hundred bytes of data: refused before the 768 MB
// pixel buffer is allocated (deflate cannot expand the data that far).
TEST(reader_regressions, png_header_larger_than_its_data_could_hold) {
  std::vector<uint8_t> png = small_png();
  std::vector<uint8_t> ihdr;
  put_be32(ihdr, 16000);
  put_be32(ihdr, 16000);
  ihdr.insert(ihdr.end(), {8, 2, 0, 0, 0});  // 8-bit RGB, deflate, no filter, not interlaced
  const std::vector<uint8_t> c = chunk("IHDR", ihdr, 13);
  std::copy(c.begin(), c.end(), png.begin() + kSignature);
  expect_one_line_error([&] { decode_png_bytes(png.data(), png.size(), "huge.png"); }, "huge.png",
                        "too short");
  // Its text still reads: only the pixels are refused.
  EXPECT_EQ(decode_png_text(png.data(), png.size(), "huge.png").at("parameters"), "a cat");
}
