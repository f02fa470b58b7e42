// Image conversions, PNG helpers and the A1111 parameters text.
#include <cmath>
#include <cstdio>
#include <sstream>

#include "diffuse/diffuse.hpp"
#include "io/png_image.h"

namespace diffuse {

std::vector<uint8_t> Image::to_rgb8() const {
  std::vector<uint8_t> out(rgb.size());
  // numpy's (images * 255).round() rounds half to even; nearbyint does the same.
  for (size_t i = 0; i < rgb.size(); ++i)
    out[i] = static_cast<uint8_t>(std::nearbyint(std::fmin(std::fmax(rgb[i], 0.f), 1.f) * 255.f));
  return out;
}

Image Image::from_rgb8(int width, int height, const std::vector<uint8_t>& rgb8) {
  Image img;
  img.width = width;
  img.height = height;
  img.rgb.resize(rgb8.size());
  for (size_t i = 0; i < rgb8.size(); ++i) img.rgb[i] = static_cast<float>(rgb8[i]) / 255.f;
  return img;
}

Image load_png(const std::string& path, uint64_t max_pixels) {
  Rgb8Image r = read_png(path, nullptr, PngLimits{max_pixels});
  return Image::from_rgb8(r.width, r.height, r.pixels);
}

namespace {
std::map<std::string, std::string> parameters_chunk(const std::string& parameters) {
  std::map<std::string, std::string> text;
  if (!parameters.empty()) text["parameters"] = parameters;
  return text;
}
}  // namespace

void save_png(const std::string& path, const Image& image, const std::string& parameters) {
  write_png(path, Rgb8Image{image.width, image.height, image.to_rgb8()},
            parameters_chunk(parameters));
}

std::string read_png_parameters(const std::string& path) {
  auto text = read_png_text(path);
  auto it = text.find("parameters");
  return it == text.end() ? std::string() : it->second;
}

std::vector<uint8_t> encode_png(const Image& image, const std::string& parameters) {
  return encode_png_bytes(Rgb8Image{image.width, image.height, image.to_rgb8()},
                          parameters_chunk(parameters), "PNG image");
}

Image decode_png(const uint8_t* data, size_t size, const std::string& what, uint64_t max_pixels) {
  Rgb8Image r = decode_png_bytes(data, size, what, nullptr, PngLimits{max_pixels});
  return Image::from_rgb8(r.width, r.height, r.pixels);
}

std::string png_parameters(const uint8_t* data, size_t size, const std::string& what) {
  auto text = decode_png_text(data, size, what);
  auto it = text.find("parameters");
  return it == text.end() ? std::string() : it->second;
}

std::string GenerationResult::parameters_text(size_t i) const {
  // AUTOMATIC1111's infotext: prompt, optional "Negative prompt:" line, then "Key: value, ...".
  std::ostringstream s;
  s << options.prompt << "\n";
  if (!options.negative_prompt.value_or("").empty())
    s << "Negative prompt: " << *options.negative_prompt << "\n";
  char cfg[32];
  std::snprintf(cfg, sizeof cfg, "%g", static_cast<double>(options.guidance_scale));
  s << "Steps: " << options.steps << ", Sampler: " << sampler_name << ", CFG scale: " << cfg
    << ", Seed: " << seed << ", Size: " << options.width << "x" << options.height
    << ", Model: " << model_name;
  if (options.init_image && options.strength) {
    char st[32];
    std::snprintf(st, sizeof st, "%g", static_cast<double>(*options.strength));
    s << ", Denoising strength: " << st;
  }
  if (options.mask_image && options.mask_blur > 0) s << ", Mask blur: " << options.mask_blur;
  // A1111's infotext for "only masked".
  if (options.mask_image && options.mask_crop)
    s << ", Inpaint area: Only masked, Masked area padding: " << *options.mask_crop;
  if (options.hires) {
    // A1111's names; its "Latent" upscaler is the bilinear one.
    const HiresFix& h = *options.hires;
    const char* upscaler = h.upscaler == "lanczos"           ? "Lanczos"
                           : h.upscaler == "latent-bilinear" ? "Latent"
                                                             : "Latent (nearest)";
    char buf[160];
    std::snprintf(buf, sizeof buf,
                  "%g, Hires steps: %d, Hires upscaler: %s, Denoising strength: %g",
                  static_cast<double>(h.scale), h.steps, upscaler, static_cast<double>(h.strength));
    s << ", Hires upscale: " << buf;
  }
  if (!options.refiner.empty()) {
    // A1111's names: the refiner checkpoint (here its folder's name) and the switch point.
    std::string folder = options.refiner;
    while (folder.size() > 1 && folder.back() == '/') folder.pop_back();
    char at[32];
    std::snprintf(at, sizeof at, "%g", static_cast<double>(options.high_noise_frac));
    s << ", Refiner: " << folder.substr(folder.find_last_of('/') + 1)
      << ", Refiner switch at: " << at;
  }
  if (options.clip_skip > 0) s << ", Clip skip: " << options.clip_skip + 1;
  if (options.rng != "torch") s << ", RNG: " << (options.rng == "numpy" ? "NumPy" : "NV");
  if (images.size() > 1) s << ", Batch size: " << images.size() << ", Batch pos: " << i;
  s << ", Version: diffuse " << version();
  return s.str();
}

const char* version() {
  return "0.1.0";
}

}  // namespace diffuse
