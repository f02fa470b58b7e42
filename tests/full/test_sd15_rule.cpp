// Full-size SD 1.5 golden tests: the real architecture (../shared/configs/sd15) with weights made
// by the fixtures' rule (crc32 seed + torch randn, see ../shared/fixtures/README.md "golden-full"),
// checked against what diffusers computed with the same weights. The tiny models cannot reach
// real sizes (4096-token attention, 1280-channel convolutions, a 512x512 VAE), which is where fast
// kernels go wrong, so these run the whole thing. They are slow: CTest labels them `full`.
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "backend/ops.h"
#include "common/fixtures.h"
#include "models/clip/clip_text_model.h"
#include "models/unet/unet_2d_condition.h"
#include "models/vae/autoencoder_kl.h"
#include "pipeline/synthetic_weights.h"

using namespace diffuse;

namespace {

constexpr double kTolerance = 1e-4;  // fixtures README: text encoder, UNet, VAE at float32

std::string config(const std::string& component) {
  return std::string(DIFFUSE_CONFIGS_DIR) + "/sd15/" + component + "/config.json";
}

SafetensorsFile components() {
  return SafetensorsFile::open(test::fixture("golden-full/sd15-rule-components.safetensors"));
}

class Stopwatch {
 public:
  double seconds() const {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  }

 private:
  std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
};

// Checks `ours` against the reference tensor `name` and prints the error, so a run's log keeps
// the measured margins and not only pass/fail.
void expect_close(const Tensor& ours, const SafetensorsFile& ref, const std::string& name) {
  Tensor expected = ref.get(name);
  ASSERT_EQ(ours.shape().str(), expected.shape().str()) << name;
  const double err = test::rel_error(ours, expected);
  std::cout << "  " << name << ": rel error " << err << " (abs " << test::abs_error(ours, expected)
            << ")\n";
  EXPECT_LT(err, kTolerance) << name;
}

bool is_norm_weight(const std::string& key) {
  const size_t dot = key.rfind('.');
  return key.compare(dot + 1, std::string::npos, "weight") == 0 &&
         key.substr(0, dot).find("norm") != std::string::npos;
}
bool is_bias(const std::string& key) {
  return key.size() > 5 && key.compare(key.size() - 5, 5, ".bias") == 0;
}

}  // namespace

// Cheap: only a sample of tensors is generated, but it covers each branch of the rule (norm
// weights, biases, fan-in scaling of 1-D, 2-D and 4-D tensors) in every component, including the
// largest tensor (the 49408x768 token embedding).
TEST(sd15_full, weight_rule_matches_check_list) {
  std::ifstream in(test::fixture("golden-full/weights-rule-check.json"));
  ASSERT_TRUE(in) << "weights-rule-check.json missing";
  const nlohmann::json check = nlohmann::json::parse(in);
  Stopwatch clock;
  int checked = 0;
  for (const char* component : {"text_encoder", "unet", "vae"}) {
    const auto& tensors = check.at(component);
    ASSERT_GT(tensors.size(), 0u) << component;
    const size_t stride = std::max<size_t>(1, tensors.size() / 12);
    bool seen_norm = false, seen_bias = false, seen_other = false;
    size_t index = 0;
    for (const auto& [key, info] : tensors.items()) {
      const bool norm = is_norm_weight(key), bias = is_bias(key), other = !norm && !bias;
      const bool first_of_kind =
          (norm && !seen_norm) || (bias && !seen_bias) || (other && !seen_other);
      const bool take =
          index++ % stride == 0 || first_of_kind || key == "embeddings.token_embedding.weight";
      if (!take) continue;
      seen_norm |= norm;
      seen_bias |= bias;
      seen_other |= other;

      std::vector<int64_t> dims = info.at("shape").get<std::vector<int64_t>>();
      const Shape shape(dims.begin(), dims.end());
      Tensor t = rule_weight(key, shape);
      ASSERT_EQ(t.shape(), shape) << component << " " << key;
      const auto first = info.at("first").get<std::vector<double>>();
      for (size_t i = 0; i < first.size(); ++i)
        EXPECT_NEAR(t.f32()[i], first[i], 1e-6) << component << " " << key << " [" << i << "]";
      double abs_sum = 0;
      for (int64_t i = 0; i < t.numel(); ++i) abs_sum += std::fabs(static_cast<double>(t.f32()[i]));
      const double expected_sum = info.at("abs_sum").get<double>();
      EXPECT_LE(std::fabs(abs_sum - expected_sum), 1e-4 * expected_sum)
          << component << " " << key << ": abs_sum " << abs_sum << " vs " << expected_sum;
      ++checked;
    }
    EXPECT_TRUE(seen_norm && seen_bias && seen_other) << component;
  }
  std::cout << "  checked " << checked << " tensors against the rule in " << clock.seconds()
            << " s\n";
}

TEST(sd15_full, text_encoder_matches_transformers) {
  const SafetensorsFile ref = components();
  Stopwatch build;
  // The rule names text encoder weights without transformers' "text_model." prefix.
  const WeightStore weights = synthetic_weight_store("text_model.");
  const ClipTextModel te =
      ClipTextModel::from_weights(ClipTextConfig::load(config("text_encoder")), weights);
  std::cout << "  text encoder weights made in " << build.seconds() << " s\n";

  const Tensor ids = ref.get("input_ids");
  Stopwatch run;
  const ClipTextOutput out = te.forward(ids, /*output_hidden_states=*/true);
  std::cout << "  forward (2 prompts) in " << run.seconds() << " s\n";
  expect_close(out.last_hidden_state, ref, "last_hidden_state");
  // `penultimate` is hidden_states[-2] as transformers returns it: the output of layer 11, without
  // the final layer norm (what SD pipelines condition on with clip skip 1 after that norm).
  ASSERT_EQ(out.hidden_states.size(), 13u);
  expect_close(out.hidden_states[11], ref, "penultimate");
  // And clip skip 1 itself: the final norm applied to the reference's penultimate state.
  const Tensor skip1 = ops::layer_norm(
      ref.get("penultimate"), weights.get("text_model.final_layer_norm.weight", {768}),
      weights.get("text_model.final_layer_norm.bias", {768}), 1e-5f);
  const double err_skip = test::rel_error(te.encode(ids, 1), skip1);
  std::cout << "  encode(clip_skip=1): rel error " << err_skip << "\n";
  EXPECT_LT(err_skip, kTolerance);
}

TEST(sd15_full, unet_64x64_batch2_matches_diffusers) {
  const SafetensorsFile ref = components();
  Stopwatch build;
  const WeightStore weights = synthetic_weight_store();
  const UNet2DConditionModel unet =
      UNet2DConditionModel::from_weights(UNetConfig::load(config("unet")), weights);
  std::cout << "  unet weights made in " << build.seconds() << " s\n";

  const Tensor t = ref.get("unet_timestep");
  std::vector<double> timesteps;
  for (int64_t i = 0; i < t.numel(); ++i)
    timesteps.push_back(static_cast<double>(t.data_as<int64_t>()[i]));
  Stopwatch run;
  const Tensor out =
      unet.forward(ref.get("unet_sample"), timesteps, ref.get("unet_encoder_hidden_states"));
  std::cout << "  unet forward (batch 2, 64x64) in " << run.seconds() << " s\n";
  expect_close(out, ref, "unet_out");
}

TEST(sd15_full, vae_decode_512_and_encode_256x320_match_diffusers) {
  const SafetensorsFile ref = components();
  Stopwatch build;
  const WeightStore weights = synthetic_weight_store();
  const AutoencoderKL vae = AutoencoderKL::from_weights(VaeConfig::load(config("vae")), weights);
  std::cout << "  vae weights made in " << build.seconds() << " s\n";

  Stopwatch decode;
  const Tensor decoded = vae.decode(ref.get("vae_latents"));
  std::cout << "  vae decode 64x64 -> 512x512 in " << decode.seconds() << " s\n";
  expect_close(decoded, ref, "vae_decoded");

  Stopwatch encode;
  const auto posterior = vae.encode(ref.get("vae_image"));
  std::cout << "  vae encode 256x320 in " << encode.seconds() << " s\n";
  expect_close(posterior.mean, ref, "vae_mean");
  expect_close(posterior.logvar, ref, "vae_logvar");
}
