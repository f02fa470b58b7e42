#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <iostream>

#include "common/fixtures.h"
#include "diffuse/error.hpp"
#include "models/clip/clip_text_model.h"

using namespace diffuse;

namespace {
void check_text_encoder(const std::string& model) {
  auto g = test::golden(model + "-text-encoder.safetensors");
  auto te = ClipTextModel::load(test::fixture("models/" + model + "/text_encoder"));
  Tensor ids = g.get("input_ids");
  auto out = te.forward(ids, true);
  const double e_last = test::rel_error(out.last_hidden_state, g.get("last_hidden_state"));
  const double e_pool = test::rel_error(out.pooler_output, g.get("pooler_output"));
  Tensor ref_hidden = g.get("hidden_states");
  ASSERT_EQ(static_cast<int64_t>(out.hidden_states.size()), ref_hidden.dim(0));
  double e_hidden = 0;
  for (size_t i = 0; i < out.hidden_states.size(); ++i)
    e_hidden = std::max(
        e_hidden,
        test::rel_error(out.hidden_states[i], ref_hidden.narrow(0, static_cast<int64_t>(i), 1)));
  std::cout << model << " text encoder rel error: last " << e_last << ", hidden " << e_hidden
            << ", pooled " << e_pool << "\n";
  EXPECT_LT(e_last, 1e-4);
  EXPECT_LT(e_hidden, 1e-4);
  EXPECT_LT(e_pool, 1e-4);
  // clip skip 1 = final layer norm applied to the reference's penultimate hidden state.
  auto weights = load_component_weights(test::fixture("models/" + model + "/text_encoder"));
  const int64_t n = ref_hidden.dim(0);
  Tensor penultimate =
      ref_hidden.narrow(0, n - 2, 1).contiguous().reshape({ids.dim(0), ids.dim(1), -1});
  Tensor expected = ops::layer_norm(penultimate, weights.get("text_model.final_layer_norm.weight"),
                                    weights.get("text_model.final_layer_norm.bias"), 1e-5f);
  EXPECT_LT(test::rel_error(te.encode(ids, 1), expected), 1e-4);
  EXPECT_LT(test::rel_error(te.encode(ids, 0), g.get("last_hidden_state")), 1e-4);
  EXPECT_THROW(te.encode(ids, static_cast<int>(n - 1)), ConfigError);
}
}  // namespace

TEST(text_encoder, tiny_sd1_matches_transformers) {
  check_text_encoder("tiny-sd1");
}
TEST(text_encoder, tiny_sd2_matches_transformers) {
  check_text_encoder("tiny-sd2");
}

namespace {
// Every hidden state of `te` on `ids` against `ref` [layers + 1, B, L, H]; returns the worst error.
double hidden_states_error(const ClipTextOutput& out, const Tensor& ref) {
  EXPECT_EQ(static_cast<int64_t>(out.hidden_states.size()), ref.dim(0));
  double e = 0;
  for (size_t i = 0; i < out.hidden_states.size(); ++i)
    e = std::max(e,
                 test::rel_error(out.hidden_states[i], ref.narrow(0, static_cast<int64_t>(i), 1)
                                                           .contiguous()
                                                           .reshape(out.hidden_states[i].shape())));
  return e;
}
}  // namespace

// SDXL's encoders: CLIPTextModel (quick_gelu) and CLIPTextModelWithProjection (gelu, projection
// 24), both conditioning on the penultimate hidden state (hidden_states[-2], no final norm).
TEST(text_encoder, tiny_sdxl_encoders_match_transformers) {
  const auto g = test::golden("tiny-sdxl-components.safetensors");
  const auto te1 = ClipTextModel::load(test::fixture("models/tiny-sdxl/text_encoder"));
  const auto te2 = ClipTextModel::load(test::fixture("models/tiny-sdxl/text_encoder_2"),
                                       /*with_projection=*/true);
  EXPECT_FALSE(te1.has_projection());
  EXPECT_TRUE(te2.has_projection());
  const Tensor ids1 = g.get("input_ids"), ids2 = g.get("input_ids_2");
  const auto out1 = te1.forward(ids1, true);
  const auto out2 = te2.forward(ids2, true);
  const Tensor ref1 = g.get("te1_hidden_states"), ref2 = g.get("te2_hidden_states");
  const double e1 = hidden_states_error(out1, ref1), e2 = hidden_states_error(out2, ref2);
  const double e_proj = test::rel_error(out2.text_embeds, g.get("te2_text_embeds"));
  const auto penultimate = [](const Tensor& ref) {
    return ref.narrow(0, ref.dim(0) - 2, 1).contiguous().reshape({ref.dim(1), ref.dim(2), -1});
  };
  const double e_pen1 = test::rel_error(te1.hidden_state_from_end(ids1, 2), penultimate(ref1));
  const double e_pen2 = test::rel_error(te2.hidden_state_from_end(ids2, 2), penultimate(ref2));
  std::cout << "tiny-sdxl text encoders rel error: te1 hidden " << e1 << ", te2 hidden " << e2
            << ", te2 text_embeds " << e_proj << ", penultimate " << e_pen1 << " / " << e_pen2
            << "\n";
  EXPECT_LT(e1, 1e-4);
  EXPECT_LT(e2, 1e-4);
  EXPECT_LT(e_proj, 1e-4);
  EXPECT_LT(e_pen1, 1e-4);
  EXPECT_LT(e_pen2, 1e-4);
  EXPECT_FALSE(out1.text_embeds.defined());
  // hidden_states[-(layers + 1)] is the embedding output; beyond it is out of range.
  EXPECT_LT(test::rel_error(te2.hidden_state_from_end(ids2, 4), out2.hidden_states[0]), 1e-7);
  test::expect_error_mentioning<ConfigError>([&] { te2.hidden_state_from_end(ids2, 5); },
                                             {"hidden state -5"});
  EXPECT_THROW(te2.hidden_state_from_end(ids2, 0), ConfigError);
}

TEST(text_encoder, unknown_config_key_is_named) {
  namespace fs = std::filesystem;
  const std::string dir = test::temp_dir() + "/bad_te";
  fs::create_directories(dir);
  fs::copy_file(test::fixture("models/tiny-sd1/text_encoder/model.safetensors"),
                dir + "/model.safetensors", fs::copy_options::overwrite_existing);
  std::ifstream in(test::fixture("models/tiny-sd1/text_encoder/config.json"));
  std::string cfg((std::istreambuf_iterator<char>(in)), {});
  cfg.insert(cfg.find('{') + 1, "\"rotary_embeddings\": true,");
  std::ofstream(dir + "/config.json") << cfg;
  try {
    ClipTextModel::load(dir);
    FAIL() << "expected ConfigError";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("rotary_embeddings"), std::string::npos) << e.what();
  }
}

TEST(text_encoder, too_many_tokens_is_an_error) {
  auto te = ClipTextModel::load(test::fixture("models/tiny-sd1/text_encoder"));
  Tensor ids = Tensor::zeros({1, 78}, DType::I64);
  EXPECT_THROW(te.forward(ids), ShapeError);
}
