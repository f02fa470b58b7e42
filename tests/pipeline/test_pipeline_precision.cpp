// LoadOptions::precision on the tiny SD 1.x fixture: a 16-bit model file held as stored computes
// exactly what its float32 upcast computes; f16, bf16 and int8 matrices change the image (they are
// really used) but stay within the PSNR target of the float32 image.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <string>
#include <vector>

#include "common/fixtures.h"
#include "diffuse/diffuse.hpp"
#include "diffuse/error.hpp"
#include "io/safetensors.h"

using namespace diffuse;
namespace fs = std::filesystem;

namespace {

GenerateOptions small_generation_in_pipeline_precision() {
  GenerateOptions o;
  o.prompt = "a red cube on a table";
  o.negative_prompt = "blurry";
  o.steps = 6;
  o.seed = 11;
  o.scheduler = "dpmpp-2m";
  return o;
}

/// A copy of tiny-sd1 whose weight files store every float tensor as `dtype` (for F32: the values
/// of `rounded_through` widened back, so that both copies hold the same numbers).
std::string converted_copy(const std::string& name, DType dtype, DType rounded_through) {
  const std::string dir = test::writable_model_copy("tiny-sd1", name);
  for (const char* file :
       {"text_encoder/model.safetensors", "unet/diffusion_pytorch_model.safetensors",
        "vae/diffusion_pytorch_model.safetensors"}) {
    const std::string path = dir + "/" + file;
    std::vector<std::pair<std::string, Tensor>> tensors;
    {
      const SafetensorsFile f = SafetensorsFile::open(path);
      for (const auto& k : f.keys()) {
        const Tensor t = f.get(k);
        tensors.emplace_back(k, t.dtype() == DType::F32 ? t.to(rounded_through).to(dtype) : t);
      }
    }
    write_safetensors(path, tensors, {{"format", "pt"}});
  }
  return dir;
}

}  // namespace

TEST(precision, a_float16_model_held_as_stored_computes_as_its_float32_upcast) {
  const std::string half = converted_copy("tiny-sd1-f16", DType::F16, DType::F16);
  const std::string upcast = converted_copy("tiny-sd1-f16-upcast", DType::F32, DType::F16);
  const GenerationResult a =
      Pipeline::load(half)->generate(small_generation_in_pipeline_precision());
  const GenerationResult b =
      Pipeline::load(upcast)->generate(small_generation_in_pipeline_precision());
  EXPECT_EQ(a.images.at(0).rgb, b.images.at(0).rgb) << "widening an F16 matrix is exact";
  fs::remove_all(half);
  fs::remove_all(upcast);
}

// --low-memory streams the file-backed matrices (each layer's pages released after it runs) and
// frees activation blocks as they are released: the same image, bit for bit, from both tiny-sd1
// and its fp16 copy.
TEST(precision, low_memory_gives_the_same_image) {
  const std::string half = converted_copy("tiny-sd1-f16-lowmem", DType::F16, DType::F16);
  for (const std::string& model : {test::fixture("models/tiny-sd1"), half}) {
    SCOPED_TRACE(model);
    LoadOptions low;
    low.low_memory = true;
    const auto pipe = Pipeline::load(model);
    const GenerationResult a = pipe->generate(small_generation_in_pipeline_precision());
    const GenerationResult b =
        Pipeline::load(model, low)->generate(small_generation_in_pipeline_precision());
    EXPECT_EQ(a.images.at(0).rgb, b.images.at(0).rgb);
    // Every mode releases a component's file pages once its stage is done: the next generation
    // reads them back unchanged.
    EXPECT_EQ(pipe->generate(small_generation_in_pipeline_precision()).images.at(0).rgb,
              a.images.at(0).rgb);
  }
  fs::remove_all(half);
}

TEST(precision, compact_matrices_stay_within_35_db_of_float32) {
  LoadOptions lo;
  const Image f32 = Pipeline::load(test::fixture("models/tiny-sd1"), lo)
                        ->generate(small_generation_in_pipeline_precision())
                        .images.at(0);
  for (const char* p : {"f16", "bf16", "int8"}) {
    SCOPED_TRACE(p);
    lo.precision = p;
    const Image got = Pipeline::load(test::fixture("models/tiny-sd1"), lo)
                          ->generate(small_generation_in_pipeline_precision())
                          .images.at(0);
    EXPECT_NE(got.rgb, f32.rgb) << "the precision was not applied";
    const double db = test::psnr_db(got.to_rgb8(), f32.to_rgb8());
    EXPECT_GE(db, 35.0);
    std::printf("[ measured ] %s: PSNR %.1f dB against f32\n", p, db);
  }
}

TEST(precision, an_unknown_precision_is_a_config_error_naming_the_option) {
  LoadOptions lo;
  lo.precision = "fp8";
  test::expect_error_mentioning<ConfigError>(
      [&] { Pipeline::load(test::fixture("models/tiny-sd1"), lo); }, {"precision", "fp8", "int8"});
}
