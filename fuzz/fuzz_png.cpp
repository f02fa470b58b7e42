// libFuzzer target: the PNG reader, text chunks only (what `diffuse info` reads) and a full
// decode (img2img inputs, masks, control images) with the default limits.
#include <cstddef>
#include <cstdint>

#include "fuzz/fuzz_util.h"
#include "io/png_image.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace diffuse;
  const std::string what = "fuzz.png";
  try {
    const auto text = decode_png_text(data, size, what);
    volatile size_t sink = 0;
    for (const auto& [k, v] : text) sink = sink + k.size() + v.size();
  } catch (const FileError& e) {
    fuzz::check_error(e, what);
  }
  try {
    std::map<std::string, std::string> text;
    const Rgb8Image img = decode_png_bytes(data, size, what, &text);
    if (img.pixels.size() != static_cast<size_t>(img.width) * img.height * 3) std::abort();
  } catch (const FileError& e) {
    fuzz::check_error(e, what);
  }
  return 0;
}
