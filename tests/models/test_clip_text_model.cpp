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
