#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "common/fixtures.h"
#include "diffuse/error.hpp"
#include "io/json_config.h"
#include "io/weight_store.h"

using namespace diffuse;
namespace fs = std::filesystem;

namespace {
Tensor filled(const Shape& s, float v) {
  return Tensor::full(s, v);
}

}  // namespace

TEST(weight_store, loads_sharded_index) {
  const std::string d = test::fresh_dir("sharded");
  write_safetensors(d + "/model-00001-of-00002.safetensors", {{"a.weight", filled({2, 2}, 1.f)}});
  write_safetensors(d + "/model-00002-of-00002.safetensors", {{"b.weight", filled({3}, 2.f)}});
  std::ofstream(d + "/model.safetensors.index.json")
      << R"({"metadata": {"total_size": 28}, "weight_map": {"a.weight": "model-00001-of-00002.safetensors", "b.weight": "model-00002-of-00002.safetensors"}})";
  WeightStore w = load_component_weights(d);
  EXPECT_EQ(w.size(), 2u);
  EXPECT_EQ(w.get("b.weight", {3}).f32()[2], 2.f);
  EXPECT_EQ(w.get("a.weight").shape(), Shape({2, 2}));
}

TEST(weight_store, f16_weights_convert_to_f32) {
  const std::string d = test::fresh_dir("half");
  write_safetensors(d + "/diffusion_pytorch_model.safetensors",
                    {{"w", filled({4}, 0.5f).to(DType::F16)}});
  WeightStore w = load_component_weights(d);
  Tensor t = w.get("w");
  EXPECT_EQ(t.dtype(), DType::F32);
  EXPECT_EQ(t.f32()[3], 0.5f);
}

// --low-memory: matrices that view the file are streamed (their pages go back after each use and
// read the same values again); converted matrices live in memory of their own and are not.
TEST(weight_store, streaming_marks_only_views_of_the_file) {
  const std::string d = test::fresh_dir("streamed");
  Tensor big = Tensor::empty({256, 1024});  // 1 MiB: whole pages to release
  for (int64_t i = 0; i < big.numel(); ++i) big.f32()[i] = float(i % 977) * 0.25f;
  write_safetensors(d + "/diffusion_pytorch_model.safetensors", {{"w", big}});
  WeightStore store = load_component_weights(d);
  store.set_streaming(true);
  const Weight w = store.get_weight("w", {256, 1024});
  EXPECT_TRUE(w.streamed);
  w.release_pages();
  const Tensor again = w.to_f32();
  for (int64_t i = 0; i < big.numel(); ++i) ASSERT_EQ(again.f32()[i], big.f32()[i]) << i;
  store.set_precision(WeightPrecision::Int8);
  EXPECT_FALSE(store.get_weight("w", {256, 1024}).streamed) << "an int8 copy is not the file";
  WeightStore plain = load_component_weights(d);
  EXPECT_FALSE(plain.get_weight("w").streamed);
}

TEST(weight_store, errors_name_key_and_file) {
  const std::string d = test::fresh_dir("errors");
  write_safetensors(d + "/model.safetensors", {{"w", filled({4}, 1.f)}});
  WeightStore w = load_component_weights(d);
  try {
    w.get("missing.weight");
    FAIL();
  } catch (const FileError& e) {
    EXPECT_NE(std::string(e.what()).find("missing.weight"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("model.safetensors"), std::string::npos);
  }
  try {
    w.get("w", {2, 2});
    FAIL();
  } catch (const FileError& e) {
    EXPECT_NE(std::string(e.what()).find("[2, 2]"), std::string::npos) << e.what();
  }
}

TEST(weight_store, shard_missing_from_index_is_an_error) {
  const std::string d = test::fresh_dir("badindex");
  write_safetensors(d + "/a.safetensors", {{"x", filled({1}, 1.f)}});
  std::ofstream(d + "/model.safetensors.index.json")
      << R"({"weight_map": {"x": "a.safetensors", "y": "a.safetensors"}})";
  EXPECT_THROW(load_component_weights(d), FileError);
  std::ofstream(d + "/model.safetensors.index.json")
      << R"({"weight_map": {"x": "../escape.safetensors"}})";
  EXPECT_THROW(load_component_weights(d), FileError);
}

TEST(weight_store, a_corrupt_pickle_is_named) {
  const std::string d = test::fresh_dir("empty");
  std::ofstream(d + "/pytorch_model.bin") << "x";
  try {
    load_component_weights(d);
    FAIL();
  } catch (const FileError& e) {
    EXPECT_NE(std::string(e.what()).find(".bin"), std::string::npos) << e.what();
  }
}

TEST(json_config, unknown_missing_and_wrong_typed_keys_are_named) {
  JsonConfig c(nlohmann::json::parse(R"({"a": 1, "b": "x", "_class_name": "Y", "extra": 2})"),
               "cfg.json");
  EXPECT_EQ(c.integer("a", 0), 1);
  EXPECT_THROW(c.integer("b", 0), ConfigError);
  EXPECT_THROW(c.required_integer("nope"), ConfigError);
  try {
    c.finish();
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("'extra'"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("cfg.json"), std::string::npos) << e.what();
  }
}

TEST(json_config, python_infinity_and_nan_parse) {
  auto j = parse_json(R"({"lambda_min_clipped": -Infinity, "s": "NaN Infinity", "x": NaN})",
                      "sched.json");
  EXPECT_LT(j["lambda_min_clipped"].get<double>(), -1e300);
  EXPECT_EQ(j["s"], "NaN Infinity");
  EXPECT_TRUE(j["x"].is_null());
  EXPECT_THROW(parse_json("{bad", "sched.json"), FileError);
}
