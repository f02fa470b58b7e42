// ControlNetModel against diffusers' outputs (the shared fixture's call, and the guess-mode, global
// pooling and bgr references in tests/data/reference written by
// tools/reference/make_controlnet_references.py, versions in their metadata), and the UNet
// consuming ControlNet residuals as diffusers does.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>

#include "common/fixtures.h"
#include "core/mapped_file.h"
#include "diffuse/error.hpp"
#include "models/controlnet/controlnet_model.h"
#include "models/unet/unet_2d_condition.h"

using namespace diffuse;

namespace {

constexpr double kTolerance = 1e-4;

SafetensorsFile reference(const std::string& name) {
  return SafetensorsFile::open(
      (std::filesystem::path(__FILE__).parent_path().parent_path() / "data" / "reference" / name)
          .string());
}

std::vector<double> timesteps_of(const Tensor& t) {
  std::vector<double> out;
  for (int64_t i = 0; i < t.numel(); ++i) out.push_back(double(t.data_as<int64_t>()[i]));
  return out;
}

std::string controlnet_dir() {
  return test::fixture("models/tiny-controlnet");
}

nlohmann::json tiny_config() {
  return nlohmann::json::parse(read_text_file(controlnet_dir() + "/config.json"));
}

// tiny-controlnet's weights with an edited config.
ControlNetModel tiny_with(const std::string& key, const nlohmann::json& value) {
  nlohmann::json j = tiny_config();
  j[key] = value;
  return ControlNetModel::from_weights(ControlNetConfig::parse(j, "edited config.json"),
                                       load_component_weights(controlnet_dir()));
}

// The residuals `<prefix>down0`.. and `<prefix>mid` of a reference file.
UNetResiduals residuals_of(const SafetensorsFile& f, const std::string& prefix = "") {
  UNetResiduals r;
  for (size_t i = 0; f.contains(prefix + "down" + std::to_string(i)); ++i)
    r.down.push_back(f.get(prefix + "down" + std::to_string(i)));
  r.mid = f.get(prefix + "mid");
  return r;
}

// The largest relative error over every residual; each must have the reference's shape.
double max_error(const ControlNetOutput& ours, const UNetResiduals& ref, const std::string& what) {
  EXPECT_EQ(ours.down.size(), ref.down.size()) << what;
  double worst = 0;
  for (size_t i = 0; i < std::min(ours.down.size(), ref.down.size()); ++i) {
    EXPECT_EQ(ours.down[i].shape(), ref.down[i].shape()) << what << " down" << i;
    const double e = test::rel_error(ours.down[i], ref.down[i]);
    EXPECT_LT(e, kTolerance) << what << " down" << i;
    worst = std::max(worst, e);
  }
  EXPECT_EQ(ours.mid.shape(), ref.mid.shape()) << what << " mid";
  const double e = test::rel_error(ours.mid, ref.mid);
  EXPECT_LT(e, kTolerance) << what << " mid";
  worst = std::max(worst, e);
  std::cout << "[controlnet] " << what << ": max rel error " << worst << "\n";
  ::testing::Test::RecordProperty("rel_error_" + what, std::to_string(worst));
  return worst;
}

// A call on the inputs of a reference file.
ControlNetOutput call(const ControlNetModel& m, const SafetensorsFile& f, float scale, bool guess) {
  return m.forward(f.get("sample"), timesteps_of(f.get("timestep")), f.get("encoder_hidden_states"),
                   f.get("controlnet_cond"), scale, guess);
}

}  // namespace

TEST(controlnet, tiny_controlnet_matches_diffusers) {
  const ControlNetModel m = ControlNetModel::load(controlnet_dir());
  EXPECT_EQ(m.config().conditioning_embedding_out_channels, std::vector<int>({8, 16, 32, 32}));
  EXPECT_EQ(m.config().downscale(), 8);
  const SafetensorsFile g = test::golden("tiny-controlnet-io.safetensors");
  const auto meta = nlohmann::json::parse(g.metadata().at("json"));
  const auto scale = meta.at("conditioning_scale").get<float>();
  EXPECT_EQ(scale, 0.8f);
  const ControlNetOutput out = call(m, g, scale, false);
  EXPECT_EQ(out.down.size(), 12u);
  max_error(out, residuals_of(g), "tiny_controlnet_batch2");
}

TEST(controlnet, guess_mode_matches_diffusers) {
  const SafetensorsFile f = reference("controlnet-io-guess.safetensors");
  // The ramp itself: torch.logspace(-1, 0, n) * 0.7 in float32, bit for bit.
  const Tensor ref_scales = f.get("guess_scales");
  const std::vector<float> scales =
      controlnet_guess_mode_scales(static_cast<size_t>(ref_scales.numel()), 0.7f);
  for (size_t i = 0; i < scales.size(); ++i)
    EXPECT_EQ(scales[i], ref_scales.f32()[i]) << "scale " << i;
  const ControlNetModel m = ControlNetModel::load(controlnet_dir());
  max_error(call(m, f, 0.7f, true), residuals_of(f, "guess."), "guess_mode");
}

TEST(controlnet, global_pooling_matches_diffusers) {
  const SafetensorsFile f = reference("controlnet-io-guess.safetensors");
  const ControlNetModel m = tiny_with("global_pool_conditions", true);
  EXPECT_TRUE(m.config().global_pool_conditions);
  const ControlNetOutput out = call(m, f, 0.7f, false);
  for (const auto& d : out.down) EXPECT_EQ(d.dim(2) * d.dim(3), 1);
  max_error(out, residuals_of(f, "pool."), "global_pool");
  // Guess mode's ramp does not apply to a pooling ControlNet, as in diffusers.
  max_error(call(m, f, 0.7f, true), residuals_of(f, "pool_guess."), "global_pool_guess");
}

TEST(controlnet, bgr_channel_order_matches_diffusers) {
  const SafetensorsFile f = reference("controlnet-io-guess.safetensors");
  const ControlNetModel m = tiny_with("controlnet_conditioning_channel_order", "bgr");
  EXPECT_TRUE(m.config().bgr);
  max_error(call(m, f, 1.0f, false), residuals_of(f, "bgr."), "bgr");
}

// Through the op seam only: the reference backend (plain loop nests) gives the same residuals,
// pooling and channel flip included.
TEST(controlnet, runs_on_the_reference_backend) {
  const SafetensorsFile f = reference("controlnet-io-guess.safetensors");
  const auto on_reference = [&](const ControlNetModel& m, float scale, bool guess) {
    const ControlNetOutput out =
        m.forward(f.get("sample").on(kReference), timesteps_of(f.get("timestep")),
                  f.get("encoder_hidden_states").on(kReference),
                  f.get("controlnet_cond").on(kReference), scale, guess);
    EXPECT_EQ(out.mid.device(), kReference);
    return out;
  };
  max_error(on_reference(tiny_with("controlnet_conditioning_channel_order", "bgr"), 1.0f, false),
            residuals_of(f, "bgr."), "bgr_reference_backend");
  max_error(on_reference(tiny_with("global_pool_conditions", true), 0.7f, true),
            residuals_of(f, "pool_guess."), "global_pool_reference_backend");
}

TEST(controlnet, bad_inputs_are_shape_errors) {
  const ControlNetModel m = ControlNetModel::load(controlnet_dir());
  const SafetensorsFile g = test::golden("tiny-controlnet-io.safetensors");
  const Tensor sample = g.get("sample"), ctx = g.get("encoder_hidden_states");
  const std::vector<double> t = timesteps_of(g.get("timestep"));
  // 120x128 is not 8x the 16x16 latent.
  test::expect_error_mentioning<ShapeError>(
      [&] {
        m.forward(sample, t, ctx, Tensor::full({2, 3, 120, 128}, 0.5f));
      },
      {"120x128", "8x the latent size", "128x128"});
  test::expect_error_mentioning<ShapeError>(
      [&] {
        m.forward(sample, t, ctx, Tensor::full({2, 1, 128, 128}, 0.5f));
      },
      {"controlnet_cond", "[2, 3, H, W]", "[2, 1, 128, 128]"});
  test::expect_error_mentioning<ShapeError>(
      [&] {
        m.forward(sample, t, ctx, Tensor::full({1, 3, 128, 128}, 0.5f));
      },
      {"controlnet_cond"});
  test::expect_error_mentioning<ShapeError>(
      [&] { m.forward(sample.narrow(1, 0, 3).contiguous(), t, ctx, g.get("controlnet_cond")); },
      {"ControlNet: sample"});
  test::expect_error_mentioning<ShapeError>(
      [&] {
        m.forward(sample, {1, 2, 3}, ctx, g.get("controlnet_cond"));
      },
      {"timesteps"});
  // Added conditions are only for text_time ControlNets.
  const UNetAddedConditions added{Tensor::zeros({2, 8}), Tensor::zeros({2, 6})};
  test::expect_error_mentioning<ShapeError>(
      [&] { m.forward(sample, t, ctx, g.get("controlnet_cond"), 1.f, false, &added); },
      {"addition_embed_type"});
}

TEST(controlnet, unsupported_configs_are_config_errors_naming_the_key) {
  const std::vector<std::pair<std::string, nlohmann::json>> cases = {
      {"controlnet_conditioning_channel_order", "rgba"},
      {"mid_block_type", "UNetMidBlock2D"},
      {"addition_embed_type", "text"},
      {"class_embed_type", "timestep"},
      {"conditioning_channels", 0},
      {"conditioning_embedding_out_channels", {8, -16}},
      {"out_channels", 4},  // a UNet key, not a ControlNet one
      {"frobnicate", true},
  };
  for (const auto& [key, value] : cases) {
    nlohmann::json j = tiny_config();
    j[key] = value;
    test::expect_error_mentioning<ConfigError>(
        [&] { ControlNetConfig::parse(j, "controlnet/config.json"); },
        {key, "controlnet/config.json"});
  }
}

TEST(controlnet, missing_weight_is_file_error_naming_key) {
  const SafetensorsFile f =
      SafetensorsFile::open(controlnet_dir() + "/diffusion_pytorch_model.safetensors");
  for (const std::string drop :
       {"controlnet_down_blocks.11.weight", "controlnet_cond_embedding.blocks.5.bias",
        "controlnet_mid_block.bias"}) {
    WeightStore w;
    for (const auto& k : f.keys())
      if (k != drop) w.add(k, f.get(k));
    test::expect_error_mentioning<FileError>(
        [&] { ControlNetModel::from_weights(ControlNetConfig::parse(tiny_config(), "c"), w); },
        {drop});
  }
}

TEST(controlnet, default_constructed_model_throws) {
  const ControlNetModel m;
  EXPECT_THROW(m.config(), Error);
}

// ---- the UNet side: down_block_additional_residuals / mid_block_additional_residual

namespace {

UNet2DConditionModel tiny_unet() {
  return UNet2DConditionModel::load(test::fixture("models/tiny-sd1/unet"));
}

double unet_error(const UNet2DConditionModel& unet, const SafetensorsFile& g,
                  const UNetResiduals& r, const Tensor& ref, const std::string& what) {
  const Tensor out = unet.forward(g.get("sample"), timesteps_of(g.get("timestep")),
                                  g.get("encoder_hidden_states"), nullptr, &r);
  EXPECT_EQ(out.shape(), ref.shape());
  const double e = test::rel_error(out, ref);
  std::cout << "[unet+controlnet] " << what << ": rel error " << e << "\n";
  ::testing::Test::RecordProperty("rel_error_" + what, std::to_string(e));
  EXPECT_LT(e, kTolerance) << what;
  return e;
}

}  // namespace

TEST(unet_controlnet_residuals, match_diffusers) {
  const UNet2DConditionModel unet = tiny_unet();
  const SafetensorsFile g = test::golden("tiny-controlnet-io.safetensors");
  const SafetensorsFile ref = reference("unet-with-controlnet-residuals.safetensors");
  unet_error(unet, g, residuals_of(g), ref.get("out"), "residuals");
  // The residuals change the prediction: they are really applied.
  const Tensor plain = unet.forward(g.get("sample"), timesteps_of(g.get("timestep")),
                                    g.get("encoder_hidden_states"));
  EXPECT_GT(test::rel_error(plain, ref.get("out")), 1e-2);
}

TEST(unet_controlnet_residuals, controlnet_into_unet_matches_diffusers) {
  const SafetensorsFile g = test::golden("tiny-controlnet-io.safetensors");
  const ControlNetOutput r = call(ControlNetModel::load(controlnet_dir()), g, 0.8f, false);
  unet_error(tiny_unet(), g, r, reference("unet-with-controlnet-residuals.safetensors").get("out"),
             "controlnet_then_unet");
}

TEST(unet_controlnet_residuals, pooled_residuals_broadcast_and_sums_match_diffusers) {
  const UNet2DConditionModel unet = tiny_unet();
  const SafetensorsFile g = test::golden("tiny-controlnet-io.safetensors");
  const SafetensorsFile ref = reference("unet-with-controlnet-residuals.safetensors");
  const UNetResiduals pooled = residuals_of(ref, "pool.");
  EXPECT_EQ(pooled.mid.shape(), Shape({2, 64, 1, 1}));
  unet_error(unet, g, pooled, ref.get("out_pooled"), "pooled");
  // Our pooling ControlNet gives the same residuals diffusers' does.
  const ControlNetOutput ours = call(tiny_with("global_pool_conditions", true), g, 0.8f, false);
  max_error(ours, pooled, "global_pool_batch2");
  // Two ControlNets' residuals, summed as MultiControlNetModel does; the order does not matter.
  const UNetResiduals sum = add_residuals(residuals_of(g), pooled);
  unet_error(unet, g, sum, ref.get("out_sum"), "summed");
  const UNetResiduals swapped = add_residuals(pooled, residuals_of(g));
  for (size_t i = 0; i < sum.down.size(); ++i)
    EXPECT_EQ(test::abs_error(sum.down[i], swapped.down[i]), 0.0);
  EXPECT_EQ(test::abs_error(sum.mid, swapped.mid), 0.0);
}

TEST(unet_controlnet_residuals, pooled_residuals_on_the_reference_backend) {
  const SafetensorsFile g = test::golden("tiny-controlnet-io.safetensors");
  const SafetensorsFile ref = reference("unet-with-controlnet-residuals.safetensors");
  UNetResiduals pooled = residuals_of(ref, "pool.");
  for (auto& d : pooled.down) d = d.on(kReference);
  pooled.mid = pooled.mid.on(kReference);
  const Tensor out =
      tiny_unet().forward(g.get("sample").on(kReference), timesteps_of(g.get("timestep")),
                          g.get("encoder_hidden_states").on(kReference), nullptr, &pooled);
  EXPECT_EQ(out.device(), kReference);
  const double e = test::rel_error(out, ref.get("out_pooled"));
  std::cout << "[unet+controlnet] pooled, reference backend: rel error " << e << "\n";
  EXPECT_LT(e, kTolerance);
}

TEST(unet_controlnet_residuals, zero_residuals_change_nothing) {
  const UNet2DConditionModel unet = tiny_unet();
  const SafetensorsFile g = test::golden("tiny-controlnet-io.safetensors");
  UNetResiduals zeros = residuals_of(g);
  for (auto& d : zeros.down) d = Tensor::zeros(d.shape());
  zeros.mid = Tensor::zeros(zeros.mid.shape());
  const Tensor sample = g.get("sample"), ctx = g.get("encoder_hidden_states");
  const auto t = timesteps_of(g.get("timestep"));
  EXPECT_EQ(
      test::abs_error(unet.forward(sample, t, ctx, nullptr, &zeros), unet.forward(sample, t, ctx)),
      0.0);
}

TEST(unet_controlnet_residuals, wrong_count_or_shape_is_shape_error) {
  const UNet2DConditionModel unet = tiny_unet();
  const SafetensorsFile g = test::golden("tiny-controlnet-io.safetensors");
  const Tensor sample = g.get("sample"), ctx = g.get("encoder_hidden_states");
  const auto t = timesteps_of(g.get("timestep"));
  UNetResiduals r = residuals_of(g);
  r.down.pop_back();
  test::expect_error_mentioning<ShapeError>([&] { unet.forward(sample, t, ctx, nullptr, &r); },
                                            {"11 down residuals", "12 skip connections"});
  r = residuals_of(g);
  r.down[3] = g.get("down4");  // 64 channels where the skip has 32
  test::expect_error_mentioning<ShapeError>([&] { unet.forward(sample, t, ctx, nullptr, &r); },
                                            {"down residual 3", "[2, 64, 8, 8]", "[2, 32, 8, 8]"});
  r = residuals_of(g);
  r.mid = Tensor();
  test::expect_error_mentioning<ShapeError>([&] { unet.forward(sample, t, ctx, nullptr, &r); },
                                            {"mid"});
  UNetResiduals shorter = residuals_of(g);
  shorter.down.pop_back();
  EXPECT_THROW(add_residuals(residuals_of(g), shorter), ShapeError);
}
