// inspect_model (diffuse info): what a path holds, from configs and tensor headers alone. The
// counts of a single-file checkpoint (LDM keys) must agree with its diffusers folder's.
#include <gtest/gtest.h>

#include <filesystem>

#include "common/fixtures.h"
#include "common/reference_data.h"
#include "diffuse/diffuse.hpp"
#include "diffuse/error.hpp"

using namespace diffuse;
namespace fs = std::filesystem;

namespace {

const ComponentDescription& component(const ModelDescription& m, const std::string& name) {
  for (const auto& c : m.components)
    if (c.name == name) return c;
  throw std::runtime_error("no component " + name + " in " + m.path);
}

}  // namespace

TEST(model_inspection, a_diffusers_folder_is_described_from_its_configs_and_headers) {
  const ModelDescription m = inspect_model(test::fixture("models/tiny-sd1"));
  EXPECT_EQ(m.kind, "diffusers folder");
  EXPECT_EQ(m.pipeline, "StableDiffusionPipeline");
  EXPECT_EQ(m.family, "sd1");
  EXPECT_EQ(m.prediction_type, "epsilon");
  EXPECT_FALSE(m.inpainting);
  ASSERT_EQ(m.components.size(), 3u);  // the tokenizer and scheduler hold no weights
  EXPECT_EQ(component(m, "unet").class_name, "UNet2DConditionModel");
  EXPECT_EQ(component(m, "text_encoder").class_name, "CLIPTextModel");
  int64_t files = 0;
  for (const auto& c : m.components) {
    EXPECT_GT(c.parameters, 0) << c.name;
    EXPECT_EQ(c.bytes, 4 * c.parameters) << c.name;  // all float32
    EXPECT_EQ(c.parameters_by_dtype.at("F32"), c.parameters) << c.name;
    files += static_cast<int64_t>(fs::file_size(c.source));
  }
  EXPECT_EQ(m.file_bytes, files);
}

TEST(model_inspection, a_checkpoint_counts_what_its_folder_counts) {
  const ModelDescription folder = inspect_model(test::fixture("models/tiny-sd1"));
  for (const char* file : {"models/tiny-sd1.ckpt", "models/tiny-sd1.safetensors"}) {
    const ModelDescription ckpt = inspect_model(test::fixture(file));
    EXPECT_EQ(ckpt.kind, "single-file checkpoint");
    EXPECT_EQ(ckpt.family, "sd1");
    EXPECT_EQ(ckpt.file_bytes, static_cast<int64_t>(fs::file_size(test::fixture(file))));
    for (const char* name : {"unet", "vae"})
      EXPECT_EQ(component(ckpt, name).parameters, component(folder, name).parameters)
          << file << " " << name;
  }
  const ModelDescription sd2 = inspect_model(test::fixture("models/tiny-sd2.safetensors"));
  EXPECT_EQ(sd2.family, "sd2");
  EXPECT_NE(sd2.prediction_type.find("assumed"), std::string::npos);
}

TEST(model_inspection, sdxl_inpainting_variants_and_component_folders) {
  const ModelDescription xl = inspect_model(test::fixture("models/tiny-sdxl"));
  EXPECT_EQ(xl.family, "sdxl");
  EXPECT_EQ(component(xl, "text_encoder_2").class_name, "CLIPTextModelWithProjection");
  EXPECT_TRUE(inspect_model(test::fixture("models/tiny-sd1-inpaint")).inpainting);

  const ModelDescription vae = inspect_model(test::reference("inputs/vae-fp16-variant"));
  EXPECT_EQ(vae.kind, "component folder");
  ASSERT_EQ(vae.components.size(), 1u);
  EXPECT_EQ(vae.components[0].class_name, "AutoencoderKL");
  EXPECT_EQ(vae.components[0].parameters_by_dtype.at("F16"), vae.components[0].parameters);
  EXPECT_EQ(vae.components[0].parameters, component(xl, "vae").parameters);
}

TEST(model_inspection, what_is_not_a_model_is_named) {
  EXPECT_THROW(inspect_model(test::temp_dir() + "/missing-model"), FileError);
  const std::string empty = test::temp_dir() + "/not-a-model";
  fs::create_directories(empty);
  try {
    inspect_model(empty);
    FAIL();
  } catch (const FileError& e) {
    EXPECT_NE(std::string(e.what()).find(empty + ": not a model"), std::string::npos);
  }
  try {
    inspect_model(test::reference("inputs/lora-peft-tiny-sd1.safetensors"));
    FAIL();
  } catch (const FileError& e) {
    EXPECT_NE(std::string(e.what()).find("not a Stable Diffusion checkpoint"), std::string::npos);
  }
}
