// The C API: a thin shell over the C++ API that turns exceptions into status codes.
#include <new>
#include <string>

#include "diffuse/diffuse.h"
#include "diffuse/diffuse.hpp"

struct diffuse_pipeline {
  std::unique_ptr<diffuse::Pipeline> impl;
};
struct diffuse_options {
  diffuse::GenerateOptions impl;
};
struct diffuse_load_options {
  diffuse::LoadOptions impl;
};
struct diffuse_result {
  diffuse::GenerationResult impl;
  std::vector<std::vector<uint8_t>> rgb8;
};

namespace {

thread_local std::string t_last_error;

template <typename F>
diffuse_status guarded(F&& f) {
  try {
    f();
    t_last_error.clear();
    return DIFFUSE_OK;
  } catch (const diffuse::Cancelled& e) {
    t_last_error = e.what();
    return DIFFUSE_ERROR_CANCELLED;
  } catch (const diffuse::FileError& e) {
    t_last_error = e.what();
    return DIFFUSE_ERROR_FILE;
  } catch (const diffuse::ConfigError& e) {
    t_last_error = e.what();
    return DIFFUSE_ERROR_CONFIG;
  } catch (const diffuse::ShapeError& e) {
    t_last_error = e.what();
    return DIFFUSE_ERROR_SHAPE;
  } catch (const diffuse::NumericError& e) {
    t_last_error = e.what();
    return DIFFUSE_ERROR_NUMERIC;
  } catch (const std::bad_alloc&) {
    t_last_error = "out of memory";
    return DIFFUSE_ERROR_MEMORY;
  } catch (const std::exception& e) {
    t_last_error = e.what();
    return DIFFUSE_ERROR_INTERNAL;
  }
}

diffuse_status null_argument(const char* what) {
  t_last_error = std::string(what) + " is null";
  return DIFFUSE_ERROR_ARGUMENT;
}

#define DIFFUSE_REQUIRE(p) \
  if (!(p)) return null_argument(#p)

/// The width*height*3 bytes at `rgb` as an Image; ConfigError naming `what` for an absurd size.
diffuse::Image image_from_rgb(const uint8_t* rgb, int width, int height, const char* what) {
  if (width <= 0 || height <= 0 || width > 16384 || height > 16384)
    throw diffuse::ConfigError(std::string(what) + " size " + std::to_string(width) + "x" +
                               std::to_string(height));
  return diffuse::Image::from_rgb8(
      width, height, std::vector<uint8_t>(rgb, rgb + size_t(width) * size_t(height) * 3));
}

}  // namespace

extern "C" {

const char* diffuse_version(void) {
  return diffuse::version();
}
const char* diffuse_last_error(void) {
  return t_last_error.c_str();
}

diffuse_status diffuse_pipeline_load(const char* model_dir, diffuse_pipeline** out) {
  DIFFUSE_REQUIRE(model_dir);
  DIFFUSE_REQUIRE(out);
  *out = nullptr;
  return guarded([&] { *out = new diffuse_pipeline{diffuse::Pipeline::load(model_dir)}; });
}
diffuse_status diffuse_load_options_create(diffuse_load_options** out) {
  DIFFUSE_REQUIRE(out);
  *out = nullptr;
  return guarded([&] { *out = new diffuse_load_options{}; });
}
void diffuse_load_options_free(diffuse_load_options* o) {
  delete o;
}
diffuse_status diffuse_load_options_set_backend(diffuse_load_options* o, const char* backend) {
  DIFFUSE_REQUIRE(o);
  DIFFUSE_REQUIRE(backend);
  return guarded([&] { o->impl.backend = backend; });
}
diffuse_status diffuse_load_options_set_threads(diffuse_load_options* o, int threads) {
  DIFFUSE_REQUIRE(o);
  return guarded([&] { o->impl.threads = threads; });
}
diffuse_status diffuse_load_options_set_low_memory(diffuse_load_options* o, int low_memory) {
  DIFFUSE_REQUIRE(o);
  return guarded([&] { o->impl.low_memory = low_memory != 0; });
}
diffuse_status diffuse_load_options_set_precision(diffuse_load_options* o, const char* precision) {
  DIFFUSE_REQUIRE(o);
  DIFFUSE_REQUIRE(precision);
  return guarded([&] { o->impl.precision = precision; });
}
diffuse_status diffuse_load_options_set_attention(diffuse_load_options* o, const char* attention) {
  DIFFUSE_REQUIRE(o);
  DIFFUSE_REQUIRE(attention);
  return guarded([&] { o->impl.attention = attention; });
}
diffuse_status diffuse_load_options_set_variant(diffuse_load_options* o, const char* variant) {
  DIFFUSE_REQUIRE(o);
  DIFFUSE_REQUIRE(variant);
  return guarded([&] { o->impl.variant = variant; });
}
diffuse_status diffuse_load_options_set_vae(diffuse_load_options* o, const char* vae) {
  DIFFUSE_REQUIRE(o);
  DIFFUSE_REQUIRE(vae);
  return guarded([&] { o->impl.vae = vae; });
}
diffuse_status diffuse_pipeline_load_with_options(const char* model_dir,
                                                  const diffuse_load_options* options,
                                                  diffuse_pipeline** out) {
  DIFFUSE_REQUIRE(model_dir);
  DIFFUSE_REQUIRE(options);
  DIFFUSE_REQUIRE(out);
  *out = nullptr;
  return guarded(
      [&] { *out = new diffuse_pipeline{diffuse::Pipeline::load(model_dir, options->impl)}; });
}

void diffuse_pipeline_free(diffuse_pipeline* p) {
  delete p;
}

diffuse_status diffuse_options_create(diffuse_options** out) {
  DIFFUSE_REQUIRE(out);
  return guarded([&] { *out = new diffuse_options{}; });
}
void diffuse_options_free(diffuse_options* o) {
  delete o;
}

diffuse_status diffuse_options_set_prompt(diffuse_options* o, const char* s) {
  DIFFUSE_REQUIRE(o);
  DIFFUSE_REQUIRE(s);
  return guarded([&] { o->impl.prompt = s; });
}
diffuse_status diffuse_options_set_negative_prompt(diffuse_options* o, const char* s) {
  DIFFUSE_REQUIRE(o);
  DIFFUSE_REQUIRE(s);
  return guarded([&] { o->impl.negative_prompt = s; });
}
diffuse_status diffuse_options_set_steps(diffuse_options* o, int steps) {
  DIFFUSE_REQUIRE(o);
  o->impl.steps = steps;
  return DIFFUSE_OK;
}
diffuse_status diffuse_options_set_guidance_scale(diffuse_options* o, float g) {
  DIFFUSE_REQUIRE(o);
  o->impl.guidance_scale = g;
  return DIFFUSE_OK;
}
diffuse_status diffuse_options_set_seed(diffuse_options* o, uint64_t seed) {
  DIFFUSE_REQUIRE(o);
  o->impl.seed = seed;
  return DIFFUSE_OK;
}
diffuse_status diffuse_options_set_size(diffuse_options* o, int width, int height) {
  DIFFUSE_REQUIRE(o);
  o->impl.width = width;
  o->impl.height = height;
  return DIFFUSE_OK;
}
diffuse_status diffuse_options_set_scheduler(diffuse_options* o, const char* s) {
  DIFFUSE_REQUIRE(o);
  DIFFUSE_REQUIRE(s);
  return guarded([&] { o->impl.scheduler = s; });
}
diffuse_status diffuse_options_set_image_count(diffuse_options* o, int n) {
  DIFFUSE_REQUIRE(o);
  o->impl.image_count = n;
  return DIFFUSE_OK;
}
diffuse_status diffuse_options_set_rng(diffuse_options* o, const char* s) {
  DIFFUSE_REQUIRE(o);
  DIFFUSE_REQUIRE(s);
  return guarded([&] { o->impl.rng = s; });
}
diffuse_status diffuse_options_set_clip_skip(diffuse_options* o, int n) {
  DIFFUSE_REQUIRE(o);
  o->impl.clip_skip = n;
  return DIFFUSE_OK;
}
diffuse_status diffuse_options_set_init_image(diffuse_options* o, const uint8_t* rgb, int width,
                                              int height, float strength) {
  DIFFUSE_REQUIRE(o);
  DIFFUSE_REQUIRE(rgb);
  return guarded([&] {
    o->impl.init_image = image_from_rgb(rgb, width, height, "init image");
    o->impl.strength = strength;
  });
}

diffuse_status diffuse_options_set_mask(diffuse_options* o, const uint8_t* rgb, int width,
                                        int height, int blur) {
  DIFFUSE_REQUIRE(o);
  DIFFUSE_REQUIRE(rgb);
  return guarded([&] {
    o->impl.mask_image = image_from_rgb(rgb, width, height, "mask");
    o->impl.mask_blur = blur;
  });
}

diffuse_status diffuse_options_set_mask_crop(diffuse_options* o, int padding) {
  DIFFUSE_REQUIRE(o);
  return guarded([&] {
    if (padding < -1) throw diffuse::ConfigError("mask crop padding must be -1 (off) or >= 0");
    o->impl.mask_crop = padding < 0 ? std::nullopt : std::optional<int>(padding);
  });
}

diffuse_status diffuse_options_set_masked_content(diffuse_options* o, const char* mode) {
  DIFFUSE_REQUIRE(o);
  DIFFUSE_REQUIRE(mode);
  return guarded([&] { o->impl.masked_content = mode; });
}

diffuse_status diffuse_options_set_vae_tiling(diffuse_options* o, const char* mode, int tile_size) {
  DIFFUSE_REQUIRE(o);
  DIFFUSE_REQUIRE(mode);
  return guarded([&] {
    o->impl.vae_tiling = mode;
    o->impl.vae_tile_size = tile_size;
  });
}

diffuse_status diffuse_options_add_lora(diffuse_options* o, const char* path, float scale) {
  DIFFUSE_REQUIRE(o);
  DIFFUSE_REQUIRE(path);
  return guarded([&] { o->impl.loras.push_back({path, scale}); });
}

diffuse_status diffuse_options_add_embedding(diffuse_options* o, const char* path) {
  DIFFUSE_REQUIRE(o);
  DIFFUSE_REQUIRE(path);
  return guarded([&] { o->impl.embeddings.emplace_back(path); });
}

diffuse_status diffuse_options_add_controlnet(diffuse_options* o, const char* model,
                                              const uint8_t* rgb, int width, int height,
                                              float scale, double start, double end) {
  DIFFUSE_REQUIRE(o);
  DIFFUSE_REQUIRE(model);
  DIFFUSE_REQUIRE(rgb);
  return guarded([&] {
    o->impl.controlnets.push_back(
        {model, image_from_rgb(rgb, width, height, "control image"), scale, start, end});
  });
}

diffuse_status diffuse_options_set_hires(diffuse_options* o, float scale, int steps, float strength,
                                         const char* upscaler) {
  DIFFUSE_REQUIRE(o);
  DIFFUSE_REQUIRE(upscaler);
  return guarded([&] { o->impl.hires = diffuse::HiresFix{scale, steps, strength, upscaler}; });
}

diffuse_status diffuse_options_set_original_size(diffuse_options* o, int width, int height) {
  DIFFUSE_REQUIRE(o);
  o->impl.original_size = diffuse::SizeHW{height, width};
  return DIFFUSE_OK;
}
diffuse_status diffuse_options_set_target_size(diffuse_options* o, int width, int height) {
  DIFFUSE_REQUIRE(o);
  o->impl.target_size = diffuse::SizeHW{height, width};
  return DIFFUSE_OK;
}
diffuse_status diffuse_options_set_crop_coords(diffuse_options* o, int top, int left) {
  DIFFUSE_REQUIRE(o);
  o->impl.crop_coords = diffuse::CropTopLeft{top, left};
  return DIFFUSE_OK;
}
diffuse_status diffuse_options_set_negative_original_size(diffuse_options* o, int width,
                                                          int height) {
  DIFFUSE_REQUIRE(o);
  o->impl.negative_original_size = diffuse::SizeHW{height, width};
  return DIFFUSE_OK;
}
diffuse_status diffuse_options_set_aesthetic_scores(diffuse_options* o, float score,
                                                    float negative_score) {
  DIFFUSE_REQUIRE(o);
  o->impl.aesthetic_score = score;
  o->impl.negative_aesthetic_score = negative_score;
  return DIFFUSE_OK;
}
diffuse_status diffuse_options_set_refiner(diffuse_options* o, const char* refiner_dir,
                                           float high_noise_frac) {
  DIFFUSE_REQUIRE(o);
  DIFFUSE_REQUIRE(refiner_dir);
  return guarded([&] {
    o->impl.refiner = refiner_dir;
    o->impl.high_noise_frac = high_noise_frac;
  });
}

diffuse_status diffuse_generate(diffuse_pipeline* p, const diffuse_options* o,
                                diffuse_progress_fn progress, void* user_data,
                                diffuse_result** out) {
  DIFFUSE_REQUIRE(p);
  DIFFUSE_REQUIRE(o);
  DIFFUSE_REQUIRE(out);
  *out = nullptr;
  return guarded([&] {
    diffuse::ProgressCallback cb;
    if (progress)
      cb = [&](const diffuse::Progress& pr) {
        return progress(pr.step, pr.total_steps, user_data) == 0;
      };
    auto r = std::make_unique<diffuse_result>();
    r->impl = p->impl->generate(o->impl, cb);
    for (const auto& img : r->impl.images) r->rgb8.push_back(img.to_rgb8());
    *out = r.release();
  });
}

size_t diffuse_result_image_count(const diffuse_result* r) {
  return r ? r->rgb8.size() : 0;
}

diffuse_status diffuse_result_image(const diffuse_result* r, size_t index, const uint8_t** rgb,
                                    int* width, int* height) {
  DIFFUSE_REQUIRE(r);
  DIFFUSE_REQUIRE(rgb);
  if (index >= r->rgb8.size()) {
    t_last_error = "image index " + std::to_string(index) + " out of range";
    return DIFFUSE_ERROR_ARGUMENT;
  }
  *rgb = r->rgb8[index].data();
  if (width) *width = r->impl.images[index].width;
  if (height) *height = r->impl.images[index].height;
  return DIFFUSE_OK;
}

uint64_t diffuse_result_seed(const diffuse_result* r) {
  return r ? r->impl.seed : 0;
}

size_t diffuse_result_warning_count(const diffuse_result* r) {
  return r ? r->impl.warnings.size() : 0;
}
const char* diffuse_result_warning(const diffuse_result* r, size_t index) {
  if (!r || index >= r->impl.warnings.size()) return nullptr;
  return r->impl.warnings[index].c_str();
}

diffuse_status diffuse_result_save_png(const diffuse_result* r, size_t index, const char* path) {
  DIFFUSE_REQUIRE(r);
  DIFFUSE_REQUIRE(path);
  return guarded([&] {
    if (index >= r->impl.images.size()) throw diffuse::ConfigError("image index out of range");
    diffuse::save_png(path, r->impl.images[index], r->impl.parameters_text(index));
  });
}

void diffuse_result_free(diffuse_result* r) {
  delete r;
}

}  // extern "C"
