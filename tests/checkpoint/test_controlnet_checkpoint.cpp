// Single-file ControlNets. The fixture's tiny-controlnet in the original (lllyasviel / A1111)
// layout is built here, in the temp dir, from the folder's weights and
// tests/data/reference/tiny-controlnet-original-layout.json (every original key, the diffusers
// key it comes from, its original shape), written by
// tools/reference/make_controlnet_references.py, which checks that diffusers'
// ControlNetModel.from_single_file loads the file so built back to the folder's weights: ours must
// convert it to the same weights bit for bit and reproduce the fixture's ControlNet call. An SDXL
// (text_time) ControlNet with the fixtures' rule weights, as a diffusers-layout single file (how
// SDXL ControlNets are distributed), must reproduce diffusers' call on it
// (tests/data/reference/controlnet-sdxl-rule.safetensors).
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <nlohmann/json.hpp>
#include <stdexcept>

#include "common/fixtures.h"
#include "diffuse/error.hpp"
#include "io/safetensors.h"
#include "pipeline/checkpoint_loader.h"
#include "pipeline/controlnet_conversion.h"
#include "pipeline/synthetic_weights.h"

using namespace diffuse;
namespace fs = std::filesystem;

namespace {

std::string reference(const std::string& name) {
  return (fs::path(__FILE__).parent_path().parent_path() / "data" / "reference" / name).string();
}

std::string controlnet_dir() {
  return test::fixture("models/tiny-controlnet");
}

// The folder's weights renamed (and reshaped where the layout says) to the original layout, as
// listed by tiny-controlnet-original-layout.json; written once per process.
std::string build_original_file() {
  std::ifstream in(reference("tiny-controlnet-original-layout.json"));
  if (!in) throw std::runtime_error("cannot read tiny-controlnet-original-layout.json");
  const auto layout = nlohmann::json::parse(in);
  const SafetensorsFile folder =
      SafetensorsFile::open(controlnet_dir() + "/diffusion_pytorch_model.safetensors");
  std::vector<std::pair<std::string, Tensor>> tensors;
  for (const auto& t : layout.at("tensors")) {
    const auto dims = t.at("shape").get<std::vector<int64_t>>();
    const Shape shape(dims.begin(), dims.end());
    const Tensor w = folder.get(t.at("diffusers").get<std::string>());
    if (t.at("reshape").get<bool>()) {
      const auto from = t.at("diffusers_shape").get<std::vector<int64_t>>();
      if (w.shape() != Shape(from.begin(), from.end()))
        throw std::runtime_error("layout: unexpected folder shape for " +
                                 t.at("diffusers").get<std::string>());
    } else if (w.shape() != shape) {
      throw std::runtime_error("layout: shape differs for " + t.at("original").get<std::string>());
    }
    tensors.emplace_back(t.at("original").get<std::string>(), w.reshape(shape));
  }
  if (tensors.size() != folder.keys().size())
    throw std::runtime_error("layout: does not list every tensor of the folder");
  const std::string path = test::temp_dir() + "/tiny-controlnet-original.safetensors";
  write_safetensors(path, tensors);
  return path;
}

std::string original_file() {
  static const std::string path = build_original_file();
  return path;
}

ControlNetConfig tiny_config() {
  return ControlNetConfig::load(controlnet_dir() + "/config.json");
}

std::vector<double> timesteps_of(const Tensor& t) {
  std::vector<double> out;
  for (int64_t i = 0; i < t.numel(); ++i) out.push_back(double(t.data_as<int64_t>()[i]));
  return out;
}

// Every residual against `down<i>` / `mid` of `ref`, within 1e-4.
void check_residuals(const ControlNetOutput& out, const SafetensorsFile& ref,
                     const std::string& what) {
  size_t n = 0;
  while (ref.contains("down" + std::to_string(n))) ++n;
  EXPECT_EQ(out.down.size(), n) << what;
  double worst = 0;
  for (size_t i = 0; i < std::min(n, out.down.size()); ++i) {
    const Tensor r = ref.get("down" + std::to_string(i));
    EXPECT_EQ(out.down[i].shape(), r.shape()) << what << " down" << i;
    worst = std::max(worst, test::rel_error(out.down[i], r));
  }
  EXPECT_EQ(out.mid.shape(), ref.get("mid").shape()) << what;
  worst = std::max(worst, test::rel_error(out.mid, ref.get("mid")));
  std::cout << "[controlnet] " << what << ": max rel error " << worst << "\n";
  ::testing::Test::RecordProperty("rel_error_" + what, std::to_string(worst));
  EXPECT_LT(worst, 1e-4) << what;
}

// A copy of the original-layout file with every key renamed by `rename` (empty: dropped) and
// `extra` added.
std::string rewritten(const std::string& name,
                      const std::function<std::string(std::string)>& rename,
                      const std::vector<std::pair<std::string, Tensor>>& extra = {}) {
  const SafetensorsFile f = SafetensorsFile::open(original_file());
  std::vector<std::pair<std::string, Tensor>> tensors = extra;
  for (const auto& k : f.keys())
    if (const std::string n = rename(k); !n.empty()) tensors.emplace_back(n, f.get(k));
  const std::string path = test::temp_dir() + "/" + name;
  write_safetensors(path, tensors);
  return path;
}

}  // namespace

TEST(controlnet_checkpoint, original_layout_converts_to_the_folder_bit_for_bit) {
  const StateDict sd = read_checkpoint_state_dict(original_file());
  const WeightStore converted = convert_ldm_controlnet(sd, tiny_config(), original_file());
  const WeightStore ref = load_component_weights(controlnet_dir());
  EXPECT_EQ(converted.keys(), ref.keys());
  for (const auto& key : ref.keys()) {
    if (!converted.contains(key)) continue;
    const Tensor a = converted.raw(key).contiguous(), b = ref.raw(key).contiguous();
    ASSERT_EQ(a.shape(), b.shape()) << key;
    EXPECT_EQ(std::memcmp(a.raw(), b.raw(), a.nbytes()), 0) << key;
  }
}

TEST(controlnet_checkpoint, original_layout_matches_diffusers_call) {
  const ControlNetModel m = load_controlnet_checkpoint(original_file(), controlnet_dir());
  const SafetensorsFile g = test::golden("tiny-controlnet-io.safetensors");
  const ControlNetOutput out =
      m.forward(g.get("sample"), timesteps_of(g.get("timestep")), g.get("encoder_hidden_states"),
                g.get("controlnet_cond"), 0.8f);
  check_residuals(out, g, "original_layout");
}

TEST(controlnet_checkpoint, bare_keys_and_bundled_models_convert_alike) {
  const WeightStore ref = load_component_weights(controlnet_dir());
  // Standalone files (thibaud/controlnet-sd21) have no control_model. prefix.
  const std::string bare =
      rewritten("bare.safetensors", [](std::string k) { return k.substr(14); });
  EXPECT_EQ(convert_ldm_controlnet(read_checkpoint_state_dict(bare), tiny_config(), bare).keys(),
            ref.keys());
  // lllyasviel's first releases bundle the SD model: its keys are not the ControlNet's.
  const std::string bundled =
      rewritten("bundled.safetensors", [](std::string k) { return k; },
                {{"model.diffusion_model.out.2.bias", Tensor::zeros({4})},
                 {"first_stage_model.quant_conv.bias", Tensor::zeros({8})}});
  EXPECT_EQ(
      convert_ldm_controlnet(read_checkpoint_state_dict(bundled), tiny_config(), bundled).keys(),
      ref.keys());
}

TEST(controlnet_checkpoint, unrecognised_key_is_file_error_naming_it) {
  for (const std::string key :
       {"control_model.input_hint_block.1.weight", "control_model.input_hint_block.16.weight",
        "control_model.zero_convs.3.1.weight", "control_model.frob.weight"}) {
    const std::string path =
        rewritten("bad.safetensors", [](std::string k) { return k; }, {{key, Tensor::zeros({2})}});
    test::expect_error_mentioning<FileError>(
        [&] { load_controlnet_checkpoint(path, controlnet_dir()); }, {key, path});
  }
  // A key that converts but a weight the config expects is missing: FileError naming it.
  const std::string path = rewritten("missing.safetensors", [](std::string k) {
    return k == "control_model.zero_convs.11.0.weight" ? std::string() : k;
  });
  test::expect_error_mentioning<FileError>(
      [&] { load_controlnet_checkpoint(path, controlnet_dir()); },
      {"controlnet_down_blocks.11.weight"});
}

TEST(controlnet_checkpoint, sdxl_diffusers_layout_single_file_matches_diffusers) {
  const SafetensorsFile ref = SafetensorsFile::open(reference("controlnet-sdxl-rule.safetensors"));
  const auto meta = nlohmann::json::parse(ref.metadata().at("json"));
  const ControlNetConfig config = ControlNetConfig::parse(meta.at("config"), "sdxl config");
  EXPECT_TRUE(config.unet.text_time_embedding);
  // The rule's weights, written as a diffusers-layout single file.
  WeightStore rule = synthetic_weight_store();
  ControlNetModel::from_weights(config, rule);
  std::vector<std::pair<std::string, Tensor>> tensors;
  for (const auto& k : rule.keys()) tensors.emplace_back(k, rule.get(k));
  const std::string path = test::temp_dir() + "/controlnet-sdxl.safetensors";
  write_safetensors(path, tensors);

  const ControlNetModel m = load_controlnet_checkpoint(path, config);
  const UNetAddedConditions added{ref.get("text_embeds"), ref.get("time_ids")};
  const Tensor sample = ref.get("sample"), ctx = ref.get("encoder_hidden_states");
  const auto t = timesteps_of(ref.get("timestep"));
  const auto scale = meta.at("conditioning_scale").get<float>();
  check_residuals(m.forward(sample, t, ctx, ref.get("controlnet_cond"), scale, false, &added), ref,
                  "sdxl_text_time");
  test::expect_error_mentioning<ShapeError>(
      [&] { m.forward(sample, t, ctx, ref.get("controlnet_cond"), scale); },
      {"ControlNet", "text_time"});
}
