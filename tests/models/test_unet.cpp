// UNet2DConditionModel against diffusers' outputs on the tiny SD 1.x / 2.x fixtures, and the
// failures a broken config or checkpoint must produce.
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>

#include "common/fixtures.h"
#include "core/mapped_file.h"
#include "diffuse/error.hpp"
#include "models/unet/timestep_embedding.h"
#include "models/unet/unet_2d_condition.h"

using namespace diffuse;

namespace {

std::vector<double> timesteps_of_in_unet(const Tensor& t) {
  std::vector<double> out;
  for (int64_t i = 0; i < t.numel(); ++i) out.push_back(double(t.data_as<int64_t>()[i]));
  return out;
}

// Runs one golden case (`suffix` "" or "2"), returns the relative error and prints it with the
// time.
double run_case(const UNet2DConditionModel& unet, const SafetensorsFile& g, const std::string& name,
                const std::string& suffix) {
  const Tensor sample = g.get("sample" + suffix);
  const auto t = timesteps_of_in_unet(g.get("timestep" + suffix));
  const Tensor ctx = g.get("encoder_hidden_states" + suffix);
  unet.forward(sample, t, ctx);  // warm the activation pool
  const auto start = std::chrono::steady_clock::now();
  const Tensor out = unet.forward(sample, t, ctx);
  const double ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  EXPECT_EQ(out.shape(), g.get("out" + suffix).shape());
  const double err = test::rel_error(out, g.get("out" + suffix));
  std::cout << "[unet] " << name << " case '" << ("out" + suffix) << "' " << sample.shape().str()
            << ": rel error " << err << ", forward " << ms << " ms\n";
  return err;
}

void check_model(const std::string& model) {
  const UNet2DConditionModel unet =
      UNet2DConditionModel::load(test::fixture("models/" + model + "/unet"));
  const SafetensorsFile g = test::golden(model + "-unet.safetensors");
  const double e1 = run_case(unet, g, model, "");
  const double e2 = run_case(unet, g, model, "2");
  ::testing::Test::RecordProperty("rel_error_batch2", std::to_string(e1));
  ::testing::Test::RecordProperty("rel_error_16x24", std::to_string(e2));
  EXPECT_LT(e1, 1e-4);
  EXPECT_LT(e2, 1e-4);
}

nlohmann::json tiny_config_in_unet(const std::string& model = "tiny-sd1") {
  return nlohmann::json::parse(
      read_text_file(test::fixture("models/" + model + "/unet/config.json")));
}

// A UNet folder with an edited config and the fixture's weights (linked, not copied).
std::string unet_dir_with(const nlohmann::json& config, const std::string& name) {
  namespace fs = std::filesystem;
  const fs::path dir = fs::path(test::temp_dir()) / name;
  fs::remove_all(dir);
  fs::create_directories(dir);
  std::ofstream(dir / "config.json") << config.dump(2);
  fs::create_symlink(
      fs::absolute(test::fixture("models/tiny-sd1/unet/diffusion_pytorch_model.safetensors")),
      dir / "diffusion_pytorch_model.safetensors");
  return dir.string();
}

// All weights of the tiny SD 1.x UNet, except `drop`, plus `extra`.
WeightStore weights_except(const std::string& drop, const std::string& replace = "",
                           const Tensor& replacement = {}) {
  const SafetensorsFile f = SafetensorsFile::open(
      test::fixture("models/tiny-sd1/unet/diffusion_pytorch_model.safetensors"));
  WeightStore w;
  for (const auto& k : f.keys()) {
    if (k == drop) continue;
    w.add(k, k == replace ? replacement : f.get(k).clone());
  }
  return w;
}

}  // namespace

TEST(unet, tiny_sd1_matches_diffusers) {
  check_model("tiny-sd1");
}

TEST(unet, tiny_sd2_matches_diffusers) {
  check_model("tiny-sd2");
}

// SDXL's text-time UNet (no attention at level 0, transformer_layers_per_block [1, 1, 2], linear
// projection, 72-wide context) with its added conditions, against diffusers.
TEST(unet, tiny_sdxl_with_added_conditions_matches_diffusers) {
  const UNet2DConditionModel unet =
      UNet2DConditionModel::load(test::fixture("models/tiny-sdxl/unet"));
  EXPECT_TRUE(unet.config().text_time_embedding);
  EXPECT_EQ(unet.config().transformer_layers_per_block, std::vector<int>({1, 1, 2}));
  const SafetensorsFile g = test::golden("tiny-sdxl-components.safetensors");
  const Tensor sample = g.get("unet_sample"), ctx = g.get("unet_encoder_hidden_states");
  const auto t = timesteps_of_in_unet(g.get("unet_timestep"));
  const UNetAddedConditions added{g.get("unet_text_embeds"), g.get("unet_time_ids")};
  const Tensor out = unet.forward(sample, t, ctx, &added);
  const double err = test::rel_error(out, g.get("unet_out"));
  std::cout << "[unet] tiny-sdxl " << sample.shape().str() << ": rel error " << err << "\n";
  ::testing::Test::RecordProperty("rel_error", std::to_string(err));
  EXPECT_LT(err, 1e-4);
  // The time ids change the output: they are really conditioning.
  Tensor other_ids = g.get("unet_time_ids").clone();
  other_ids.data_as<float>()[0] += 64.f;
  const UNetAddedConditions moved{g.get("unet_text_embeds"), other_ids};
  EXPECT_GT(
      test::rel_error(unet.forward(sample, t, ctx, &moved).narrow(0, 0, 1), out.narrow(0, 0, 1)),
      1e-3);
  // A text-time UNet needs its added conditions, of the configured widths.
  test::expect_error_mentioning<ShapeError>([&] { unet.forward(sample, t, ctx); },
                                            {"text_time", "text_embeds"});
  const UNetAddedConditions narrow{g.get("unet_text_embeds"),
                                   g.get("unet_time_ids").narrow(1, 0, 5).contiguous()};
  test::expect_error_mentioning<ShapeError>([&] { unet.forward(sample, t, ctx, &narrow); },
                                            {"projection_class_embeddings_input_dim"});
  // ... and a UNet without them refuses added conditions rather than ignoring them.
  const UNet2DConditionModel sd1 =
      UNet2DConditionModel::load(test::fixture("models/tiny-sd1/unet"));
  const SafetensorsFile g1 = test::golden("tiny-sd1-unet.safetensors");
  EXPECT_THROW(sd1.forward(g1.get("sample"), {1, 2}, g1.get("encoder_hidden_states"), &added),
               ShapeError);
}

TEST(unet, timestep_embedding_layout) {
  // flip_sin_to_cos puts cos first; t = 0 gives cos = 1, sin = 0.
  const Tensor e = unet::timestep_embedding({0.0, 1.0}, 6, true, 0);
  EXPECT_EQ(e.shape(), Shape({2, 6}));
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(e.f32()[i], 1.f);
    EXPECT_EQ(e.f32()[3 + i], 0.f);
  }
  // Row t=1: frequencies exp(-ln(1e4) * i / 3) = 1, 10^(-4/3), 10^(-8/3).
  EXPECT_NEAR(e.f32()[6 + 3], std::sin(1.0), 1e-6);
  EXPECT_NEAR(e.f32()[6 + 1], std::cos(std::pow(10.0, -4.0 / 3)), 1e-6);
  const Tensor odd = unet::timestep_embedding({5.0}, 7, false, 1);
  EXPECT_EQ(odd.f32()[6], 0.f);  // zero padding column
}

TEST(unet, single_timestep_broadcasts_and_odd_sizes_run) {
  const UNet2DConditionModel unet =
      UNet2DConditionModel::load(test::fixture("models/tiny-sd1/unet"));
  const SafetensorsFile g = test::golden("tiny-sd1-unet.safetensors");
  const Tensor sample = g.get("sample"), ctx = g.get("encoder_hidden_states");
  const Tensor both = unet.forward(sample, {500, 500}, ctx);
  const Tensor one = unet.forward(sample, {500}, ctx);
  EXPECT_EQ(test::abs_error(both, one), 0.0);
  // 9x13 latents halve to 5x7, 3x4, 2x2: the up path must upsample to each skip's size.
  Tensor odd = Tensor::full({1, 4, 9, 13}, 0.25f);
  const Tensor out = unet.forward(odd, {10}, ctx.narrow(0, 0, 1).contiguous());
  EXPECT_EQ(out.shape(), Shape({1, 4, 9, 13}));
  EXPECT_THROW(unet.forward(sample, {1, 2, 3}, ctx), ShapeError);
  EXPECT_THROW(unet.forward(sample, {1, 2}, ctx.narrow(2, 0, 16).contiguous()), ShapeError);
}

TEST(unet, full_size_configs_parse) {
  const UNetConfig sd15 =
      UNetConfig::load(std::string(DIFFUSE_CONFIGS_DIR) + "/sd15/unet/config.json");
  EXPECT_EQ(sd15.num_heads, std::vector<int>({8, 8, 8, 8}));
  EXPECT_EQ(sd15.head_dim(0), 40);
  EXPECT_EQ(sd15.time_embedding_dim, 1280);
  EXPECT_FALSE(sd15.use_linear_projection);
  for (const char* m : {"sd21-base", "sd21-768v"}) {
    const UNetConfig c =
        UNetConfig::load(std::string(DIFFUSE_CONFIGS_DIR) + "/" + m + "/unet/config.json");
    // attention_head_dim [5, 10, 20, 20] counts heads: 64 channels each.
    EXPECT_EQ(c.num_heads, std::vector<int>({5, 10, 20, 20}));
    for (size_t i = 0; i < 4; ++i) EXPECT_EQ(c.head_dim(i), 64);
    EXPECT_TRUE(c.use_linear_projection);
    EXPECT_EQ(c.cross_attention_dim[0], 1024);
  }
  const UNetConfig xl =
      UNetConfig::load(std::string(DIFFUSE_CONFIGS_DIR) + "/sdxl-base/unet/config.json");
  EXPECT_TRUE(xl.text_time_embedding);
  EXPECT_EQ(xl.addition_time_embed_dim, 256);
  EXPECT_EQ(xl.projection_class_embeddings_input_dim, 2816);  // 1280 pooled + 6 x 256
  EXPECT_EQ(xl.transformer_layers_per_block, std::vector<int>({1, 2, 10}));
  EXPECT_EQ(xl.num_heads, std::vector<int>({5, 10, 20}));
  EXPECT_EQ(xl.cross_attention_dim, std::vector<int>({2048, 2048, 2048}));
  EXPECT_EQ(xl.down_blocks[0], UNetConfig::DownBlock::kPlain);
}

TEST(unet, unknown_config_key_is_config_error_naming_it) {
  nlohmann::json j = tiny_config_in_unet();
  j["frobnicate_attention"] = true;
  const std::string dir = unet_dir_with(j, "unknown_key");
  test::expect_error_mentioning<ConfigError>([&] { UNet2DConditionModel::load(dir); },
                                             {"frobnicate_attention", "config.json"});
}

TEST(unet, unsupported_features_are_config_errors) {
  const std::vector<std::pair<std::string, nlohmann::json>> cases = {
      {"class_embed_type", "timestep"},
      {"addition_embed_type", "image"},
      {"dual_cross_attention", true},
      {"resnet_time_scale_shift", "scale_shift"},
      {"only_cross_attention", true},
      {"time_cond_proj_dim", 256},
      {"mid_block_type", nullptr},
      {"down_block_types",
       {"AttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"}},
  };
  for (const auto& [key, value] : cases) {
    nlohmann::json j = tiny_config_in_unet();
    j[key] = value;
    test::expect_error_mentioning<ConfigError>([&] { UNetConfig::parse(j, "unet/config.json"); },
                                               {key});
  }
  nlohmann::json j = tiny_config_in_unet();
  j["norm_num_groups"] = 24;  // 32 and 64 channels do not split into 24 groups
  test::expect_error_mentioning<ConfigError>([&] { UNetConfig::parse(j, "c.json"); },
                                             {"block_out_channels", "norm_num_groups"});
  j = tiny_config_in_unet("tiny-sd2");
  j["attention_head_dim"] = {3, 4, 4, 4};  // 32 channels into 3 heads
  test::expect_error_mentioning<ConfigError>([&] { UNetConfig::parse(j, "c.json"); },
                                             {"attention_head_dim"});
}

TEST(unet, missing_weight_is_file_error_naming_key) {
  const UNetConfig c = UNetConfig::load(test::fixture("models/tiny-sd1/unet/config.json"));
  const std::string key = "up_blocks.2.attentions.1.transformer_blocks.0.attn2.to_k.weight";
  test::expect_error_mentioning<FileError>(
      [&] { UNet2DConditionModel::from_weights(c, weights_except(key)); }, {key});
}

TEST(unet, wrongly_shaped_weight_is_file_error_naming_key) {
  const UNetConfig c = UNetConfig::load(test::fixture("models/tiny-sd1/unet/config.json"));
  const std::string key = "down_blocks.1.resnets.0.conv1.weight";  // [64, 32, 3, 3]
  test::expect_error_mentioning<FileError>(
      [&] {
        UNet2DConditionModel::from_weights(c,
                                           weights_except("", key, Tensor::zeros({64, 32, 1, 1})));
      },
      {key});
}

TEST(unet, default_constructed_model_throws) {
  const UNet2DConditionModel unet;
  EXPECT_THROW(unet.config(), Error);
  EXPECT_THROW(unet.forward(Tensor::zeros({1, 4, 8, 8}), {1}, Tensor::zeros({1, 77, 32})), Error);
}
