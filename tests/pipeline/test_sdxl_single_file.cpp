// Single-file SDXL checkpoints (Stability AI's original layout): base and refiner files built from
// the fixture folders by the key maps diffusers checked
// (tools/reference/make_sdxl_single_file_keymaps.py) convert back to the folders' exact weights
// and generate the folders' diffusers references.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "common/fixtures.h"
#include "common/pipeline_check.h"
#include "common/reference_data.h"
#include "diffuse/diffuse.hpp"
#include "io/png_image.h"
#include "io/safetensors.h"
#include "io/weight_store.h"
#include "pipeline/checkpoint_loader.h"

using namespace diffuse;
namespace fs = std::filesystem;

namespace {

std::string scratch(const std::string& name) {
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  const fs::path dir = fs::path(test::temp_dir()) / (std::string("single-file-") + info->name());
  fs::create_directories(dir);
  return (dir / name).string();
}

/// The [C, C] tensor `t` as [C, C, 1, 1], or `t` transposed, or `parts` stacked on dim 0: the key
/// map's operations, on float32 fixture weights.
Tensor apply_op(const std::string& op, const std::vector<Tensor>& parts) {
  const Tensor& t = parts.at(0);
  if (op == "copy") return t;
  if (op == "conv1x1") return t.contiguous().reshape({t.dim(0), t.dim(1), 1, 1});
  if (op == "transpose") {
    const std::vector<float> v = t.to_vector();
    std::vector<float> out(v.size());
    for (int64_t r = 0; r < t.dim(0); ++r)
      for (int64_t c = 0; c < t.dim(1); ++c)
        out[static_cast<size_t>(c * t.dim(0) + r)] = v[static_cast<size_t>(r * t.dim(1) + c)];
    return Tensor::from_floats(out.data(), {t.dim(1), t.dim(0)});
  }
  EXPECT_EQ(op, "stack");
  std::vector<float> out;
  int64_t rows = 0;
  for (const Tensor& p : parts) {
    const std::vector<float> v = p.to_vector();
    out.insert(out.end(), v.begin(), v.end());
    rows += p.dim(0);
  }
  Shape shape = t.shape();
  shape[0] = rows;
  return Tensor::from_floats(out.data(), shape);
}

/// Writes the original-layout checkpoint of `folder` that key map `keymap` describes to `path`.
void write_checkpoint(const std::string& keymap, const std::string& folder,
                      const std::string& path) {
  const nlohmann::json map = nlohmann::json::parse(std::ifstream(test::reference(keymap)));
  std::map<std::string, WeightStore> components;
  std::vector<std::pair<std::string, Tensor>> tensors;
  for (const auto& e : map.at("tensors")) {
    const std::string component = e.at("component");
    auto it = components.find(component);
    if (it == components.end())
      it = components.emplace(component, load_component_weights(folder + "/" + component)).first;
    std::vector<Tensor> parts;
    for (const auto& source : e.at("sources")) parts.push_back(it->second.get(source));
    tensors.emplace_back(e.at("key").get<std::string>(), apply_op(e.at("op"), parts));
  }
  write_safetensors(path, tensors);
}

void expect_same_weights(const WeightStore& converted, const std::string& component_dir) {
  const WeightStore folder = load_component_weights(component_dir);
  EXPECT_EQ(converted.keys(), folder.keys()) << component_dir;
  for (const std::string& key : folder.keys()) {
    if (!converted.contains(key)) continue;
    EXPECT_EQ(converted.get(key).to_vector(), folder.get(key).to_vector())
        << component_dir << ": " << key;
  }
}

}  // namespace

TEST(sdxl_single_file, base_checkpoint_converts_to_the_folder_and_its_golden) {
  const std::string folder = test::fixture("models/tiny-sdxl");
  const std::string file = scratch("tiny-sdxl.safetensors");
  write_checkpoint("sdxl-single-file-keymap-base.json", folder, file);
  const ConvertedCheckpoint c = convert_checkpoint(read_checkpoint_state_dict(file), file, folder);
  EXPECT_EQ(c.family, "sdxl");
  expect_same_weights(c.text_encoder, folder + "/text_encoder");
  expect_same_weights(c.text_encoder_2, folder + "/text_encoder_2");
  expect_same_weights(c.unet, folder + "/unet");
  expect_same_weights(c.vae, folder + "/vae");

  LoadOptions load;
  load.config_dir = folder;
  auto pipe = Pipeline::load(file, load);
  EXPECT_EQ(pipe->info().family, "sdxl");
  EXPECT_EQ(pipe->info().name, "tiny-sdxl");
  test::check_golden_pipeline(*pipe, test::fixture("golden/pipe-sdxl-txt2img.safetensors"),
                              test::fixture("golden/sdxl-txt2img-0.png"), "sdxl single file");
}

TEST(sdxl_single_file, refiner_checkpoint_converts_and_refines_as_diffusers) {
  const std::string folder =
      test::assemble_tiny_sdxl_refiner(fs::path(scratch("tiny-sdxl-refiner")));
  const std::string file = scratch("tiny-refiner.safetensors");
  write_checkpoint("sdxl-single-file-keymap-refiner.json", folder, file);
  const ConvertedCheckpoint c = convert_checkpoint(read_checkpoint_state_dict(file), file, folder);
  EXPECT_EQ(c.family, "sdxl-refiner");
  EXPECT_EQ(c.text_encoder.size(), 0u);
  expect_same_weights(c.text_encoder_2, folder + "/text_encoder_2");
  expect_same_weights(c.unet, folder + "/unet");

  LoadOptions load;
  load.config_dir = folder;
  auto pipe = Pipeline::load(file, load);
  const std::string name = "sdxl-refiner-dpmpp";
  const nlohmann::json m = test::reference_metadata(name);
  GenerateOptions o = test::options_from_metadata(m);
  o.aesthetic_score = m.at("aesthetic_score").get<float>();
  o.negative_aesthetic_score = m.at("negative_aesthetic_score").get<float>();
  test::check_pipeline_reference(*pipe, o, test::reference("pipe-" + name + ".safetensors"),
                                 {test::reference(name + "-0.png")}, name + " (single file)");
}

TEST(sdxl_single_file, layouts_and_config_folders_that_do_not_fit_are_named) {
  const std::string folder = test::fixture("models/tiny-sdxl");
  const std::string file = scratch("tiny-sdxl.safetensors");
  write_checkpoint("sdxl-single-file-keymap-base.json", folder, file);
  // An SD 1.x config folder for an SDXL file, and the reverse.
  LoadOptions load;
  load.config_dir = test::fixture("models/tiny-sd1");
  test::expect_error_mentioning<ConfigError>([&] { Pipeline::load(file, load); },
                                             {"SDXL", "tiny-sd1"});
  // Without its second text encoder the file is no SDXL checkpoint diffuse can load.
  const SafetensorsFile full = SafetensorsFile::open(file);
  std::vector<std::pair<std::string, Tensor>> partial;
  for (const std::string& key : full.keys())
    if (key.rfind("conditioner.embedders.1.", 0) != 0) partial.emplace_back(key, full.get(key));
  const std::string cut = scratch("tiny-sdxl-no-te2.safetensors");
  write_safetensors(cut, partial);
  load.config_dir = folder;
  test::expect_error_mentioning<FileError>([&] { Pipeline::load(cut, load); },
                                           {"second text encoder", "conditioner.embedders.1"});
}

TEST(sdxl_single_file, info_and_convert_take_sdxl_files) {
  const std::string folder = test::fixture("models/tiny-sdxl");
  const std::string file = scratch("tiny-sdxl.safetensors");
  write_checkpoint("sdxl-single-file-keymap-base.json", folder, file);
  const ModelDescription d = inspect_model(file);
  EXPECT_EQ(d.family, "sdxl");
  EXPECT_EQ(d.pipeline, "StableDiffusionXLPipeline");
  const std::string refiner_folder =
      test::assemble_tiny_sdxl_refiner(fs::path(scratch("tiny-sdxl-refiner")));
  const std::string refiner_file = scratch("tiny-refiner.safetensors");
  write_checkpoint("sdxl-single-file-keymap-refiner.json", refiner_folder, refiner_file);
  EXPECT_EQ(inspect_model(refiner_file).pipeline, "StableDiffusionXLImg2ImgPipeline");

  // A package converted from the file generates what the file does.
  ConvertOptions convert;
  convert.precision = "f32";
  convert.load.config_dir = folder;
  const std::string package = scratch("package");
  fs::remove_all(package);
  convert_model(file, package, convert);
  GenerateOptions o;
  o.prompt = "a horse";
  o.steps = 2;
  o.width = o.height = 64;
  LoadOptions load;
  load.config_dir = folder;
  EXPECT_EQ(Pipeline::load(package)->generate(o).images.at(0).rgb,
            Pipeline::load(file, load)->generate(o).images.at(0).rgb);
}
