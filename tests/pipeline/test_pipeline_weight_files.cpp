// Which files a pipeline reads its weights from: PyTorch .bin components, diffusers' weight-file
// variants (LoadOptions::variant) and a replacement VAE (LoadOptions::vae) in every layout people
// download. The .bin and fp16 files are what diffusers' save_pretrained wrote
// (tools/reference/make_weight_layout_references.py); the .bin VAE holds exactly the fixture's
// float32 values, so its images must equal the fixture's bit for bit.
#include <gtest/gtest.h>

#include <filesystem>
#include <string>
#include <vector>

#include "common/fixtures.h"
#include "common/reference_data.h"
#include "diffuse/diffuse.hpp"
#include "diffuse/error.hpp"
#include "io/safetensors.h"

using namespace diffuse;
namespace fs = std::filesystem;

namespace {

GenerateOptions small_generation_in_pipeline_weight_files() {
  GenerateOptions o;
  o.prompt = "a lighthouse on a cliff";
  o.steps = 3;
  o.seed = 5;
  o.scheduler = "euler";
  return o;
}

std::vector<uint8_t> image_of_in_pipeline_weight_files(const std::string& model,
                                                       const LoadOptions& options = {}) {
  return Pipeline::load(model, options)
      ->generate(small_generation_in_pipeline_weight_files())
      .images.at(0)
      .to_rgb8();
}

const std::vector<uint8_t>& fixture_image() {
  static const std::vector<uint8_t> image =
      image_of_in_pipeline_weight_files(test::fixture("models/tiny-sd1"));
  return image;
}

/// tiny-sd1 with its vae/ folder replaced by a link to `vae_dir`.
std::string model_with_vae(const std::string& name, const std::string& vae_dir) {
  const fs::path dir = fs::path(test::temp_dir()) / name;
  fs::remove_all(dir);
  fs::create_directories(dir);
  const fs::path src = test::fixture("models/tiny-sd1");
  for (const auto& e : fs::directory_iterator(src)) {
    const fs::path target = dir / e.path().filename();
    if (e.path().filename() == "vae")
      fs::create_directory_symlink(vae_dir, target);
    else if (e.is_directory())
      fs::create_directory_symlink(e.path(), target);
    else
      fs::copy_file(e.path(), target);
  }
  return dir.string();
}

/// The fixture's VAE as a standalone file in the original LDM layout (the single-file
/// checkpoint's first_stage_model.* keys without the prefix, plus EMA bookkeeping), as the
/// ft-MSE VAE releases are laid out.
std::string ldm_vae_file() {
  const std::string path = test::temp_dir() + "/ldm-vae.safetensors";
  const SafetensorsFile ckpt = SafetensorsFile::open(test::fixture("models/tiny-sd1.safetensors"));
  std::vector<std::pair<std::string, Tensor>> tensors;
  const std::string prefix = "first_stage_model.";
  for (const auto& k : ckpt.keys())
    if (k.rfind(prefix, 0) == 0) tensors.emplace_back(k.substr(prefix.size()), ckpt.get(k));
  tensors.emplace_back("model_ema.decay", Tensor::full({}, 0.9999f));
  write_safetensors(path, tensors);
  return path;
}

template <typename E>
std::string error_of(const std::string& model, const LoadOptions& options) {
  try {
    Pipeline::load(model, options);
  } catch (const E& e) {
    return e.what();
  }
  return "no error";
}

}  // namespace

TEST(weight_files, a_component_saved_as_pytorch_bin_gives_the_same_image) {
  const std::string model = model_with_vae("model-bin-vae", test::reference("inputs/vae-bin"));
  EXPECT_EQ(image_of_in_pipeline_weight_files(model), fixture_image());
}

TEST(weight_files, the_fp16_variant_loads_by_name_by_default_when_alone_and_falls_back) {
  const std::string variant_dir = test::reference("inputs/vae-fp16-variant");
  const std::string model = model_with_vae("model-fp16-vae", variant_dir);
  LoadOptions fp16;
  fp16.variant = "fp16";
  const std::vector<uint8_t> with_fp16 = image_of_in_pipeline_weight_files(model, fp16);
  EXPECT_NE(with_fp16, fixture_image());  // the rounded VAE really is used
  EXPECT_EQ(image_of_in_pipeline_weight_files(model),
            with_fp16);  // the VAE's only weights are the variant's
  // Components without fp16 files (here all of them) load their plain files.
  EXPECT_EQ(image_of_in_pipeline_weight_files(test::fixture("models/tiny-sd1"), fp16),
            fixture_image());
  // --vae with the same folder and variant: the same image.
  LoadOptions replaced = fp16;
  replaced.vae = variant_dir;
  EXPECT_EQ(image_of_in_pipeline_weight_files(test::fixture("models/tiny-sd1"), replaced),
            with_fp16);
}

TEST(weight_files, a_replacement_vae_is_read_in_every_layout) {
  const std::string model = test::fixture("models/tiny-sd1");
  for (const std::string& vae :
       {test::reference("inputs/vae-bin"),             // VAE folder, .bin weights
        test::fixture("models/tiny-sd1"),              // a model folder: its vae/
        test::fixture("models/tiny-sd1.safetensors"),  // a whole LDM checkpoint
        ldm_vae_file(),                                // a standalone LDM VAE file
        test::fixture("models/tiny-sd1/vae/diffusion_pytorch_model.safetensors")}) {  // diffusers
    LoadOptions o;
    o.vae = vae;
    EXPECT_EQ(image_of_in_pipeline_weight_files(model, o), fixture_image()) << vae;
  }
  // A single-file checkpoint takes the replacement too.
  LoadOptions o;
  o.vae = test::reference("inputs/vae-fp16-variant");
  LoadOptions fp16 = o;
  fp16.variant = "fp16";
  fp16.config_dir = model;
  EXPECT_EQ(image_of_in_pipeline_weight_files(test::fixture("models/tiny-sd1.safetensors"), fp16),
            image_of_in_pipeline_weight_files(model, o));
}

TEST(weight_files, bad_variant_and_vae_values_are_named) {
  const std::string model = test::fixture("models/tiny-sd1");
  LoadOptions o;
  o.variant = "../fp16";
  EXPECT_NE(error_of<ConfigError>(model, o).find("variant: '../fp16'"), std::string::npos);
  o = {};
  o.vae = test::temp_dir() + "/no-such-vae";
  EXPECT_NE(error_of<FileError>(model, o).find(o.vae + ": VAE not found"), std::string::npos);
  o.vae = test::reference("inputs/lora-peft-tiny-sd1.safetensors");
  EXPECT_NE(error_of<FileError>(model, o).find(o.vae + ": not a VAE"), std::string::npos)
      << error_of<FileError>(model, o);
  o.vae = test::fixture("models/tiny-sd1/unet");  // a folder with a config, not a VAE's
  EXPECT_NE(error_of<Error>(model, o), "no error");
}
