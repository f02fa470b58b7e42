// Which weight files of a component folder load: safetensors or PyTorch .bin, single or sharded,
// plain or a diffusers variant ("fp16"), as from_pretrained picks them. The real-file cases read
// what diffusers' save_pretrained wrote (tools/reference/make_weight_layout_references.py).
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>

#include "common/fixtures.h"
#include "common/reference_data.h"
#include "diffuse/error.hpp"
#include "io/weight_store.h"

using namespace diffuse;
namespace fs = std::filesystem;

namespace {

void write_value(const std::string& path, float v) {
  write_safetensors(path, {{"w", Tensor::full({2}, v)}});
}

float value_of(const WeightStore& w) {
  return w.get("w", {2}).f32()[0];
}

std::string error_of(const std::string& dir, const std::string& variant = {}) {
  try {
    load_component_weights(dir, variant);
  } catch (const FileError& e) {
    return e.what();
  }
  return "no error";
}

// Bit-for-bit equality of every tensor (as float32) of two stores with the same keys.
void expect_same_weights(const WeightStore& a, const WeightStore& b) {
  ASSERT_EQ(a.keys(), b.keys());
  for (const auto& k : a.keys()) {
    const Tensor x = a.get(k), y = b.get(k);
    ASSERT_EQ(x.shape(), y.shape()) << k;
    ASSERT_EQ(0, std::memcmp(x.f32(), y.f32(), x.numel() * sizeof(float))) << k;
  }
}

}  // namespace

TEST(component_weights, a_variant_is_chosen_by_name_and_falls_back_to_the_plain_files) {
  const std::string d = test::fresh_dir("layout-variants");
  write_value(d + "/diffusion_pytorch_model.safetensors", 1.f);
  write_value(d + "/diffusion_pytorch_model.fp16.safetensors", 2.f);
  EXPECT_EQ(value_of(load_component_weights(d)), 1.f);
  EXPECT_EQ(value_of(load_component_weights(d, "fp16")), 2.f);
  // diffusers loads the plain files of a component that lacks the requested variant.
  EXPECT_EQ(value_of(load_component_weights(d, "ema")), 1.f);
}

TEST(component_weights, a_component_with_only_one_variant_loads_it) {
  const std::string d = test::fresh_dir("layout-only-variant");
  write_value(d + "/model.fp16.safetensors", 3.f);
  EXPECT_EQ(value_of(load_component_weights(d)), 3.f);
  write_value(d + "/model.ema.safetensors", 4.f);
  const std::string e = error_of(d);
  EXPECT_NE(e.find("ema, fp16"), std::string::npos) << e;
  EXPECT_NE(e.find("--variant"), std::string::npos) << e;
  EXPECT_EQ(value_of(load_component_weights(d, "ema")), 4.f);
}

TEST(component_weights, a_sharded_variant_index_names_its_shards) {
  const std::string d = test::fresh_dir("layout-sharded-variant");
  write_safetensors(d + "/diffusion_pytorch_model.fp16-00001-of-00002.safetensors",
                    {{"a", Tensor::full({1}, 5.f)}});
  write_safetensors(d + "/diffusion_pytorch_model.fp16-00002-of-00002.safetensors",
                    {{"b", Tensor::full({1}, 6.f)}});
  std::ofstream(d + "/diffusion_pytorch_model.safetensors.index.fp16.json")
      << R"({"metadata": {}, "weight_map": {
            "a": "diffusion_pytorch_model.fp16-00001-of-00002.safetensors",
            "b": "diffusion_pytorch_model.fp16-00002-of-00002.safetensors"}})";
  const WeightStore w = load_component_weights(d, "fp16");
  EXPECT_EQ(w.get("a").f32()[0], 5.f);
  EXPECT_EQ(w.get("b").f32()[0], 6.f);
  EXPECT_EQ(w.size(), 2u);
}

TEST(component_weights, safetensors_win_over_pytorch_pickles) {
  const std::string d = test::fresh_dir("layout-prefer-safetensors");
  fs::copy_file(test::reference("inputs/vae-bin/diffusion_pytorch_model.bin"),
                d + "/diffusion_pytorch_model.bin");
  write_value(d + "/diffusion_pytorch_model.safetensors", 7.f);
  EXPECT_EQ(value_of(load_component_weights(d)), 7.f);
}

TEST(component_weights, a_diffusers_bin_holds_the_same_tensors_as_its_safetensors) {
  const WeightStore bin = load_component_weights(test::reference("inputs/vae-bin"));
  EXPECT_NE(bin.source().find("diffusion_pytorch_model.bin"), std::string::npos) << bin.source();
  expect_same_weights(bin, load_component_weights(test::fixture("models/tiny-sd1/vae")));
}

TEST(component_weights, sharded_fp16_bins_equal_the_fp16_safetensors_and_round_the_fp32_ones) {
  const std::string src = test::reference("inputs/vae-fp16-variant");
  const std::string d = test::fresh_dir("layout-bin-shards");
  for (const auto& e : fs::directory_iterator(src))
    if (e.path().extension() != ".safetensors")
      fs::copy_file(e.path(), fs::path(d) / e.path().filename());
  const WeightStore shards = load_component_weights(d, "fp16");
  EXPECT_NE(shards.source().find("3 shards"), std::string::npos) << shards.source();
  EXPECT_EQ(shards.raw("decoder.conv_in.weight").dtype(), DType::F16);
  const WeightStore safetensors = load_component_weights(src, "fp16");
  EXPECT_NE(safetensors.source().find("fp16.safetensors"), std::string::npos);
  expect_same_weights(shards, safetensors);
  // Without --variant the folder's only weights (the fp16 variant) load too.
  expect_same_weights(load_component_weights(d), safetensors);

  const WeightStore fp32 = load_component_weights(test::fixture("models/tiny-sd1/vae"));
  for (const auto& k : fp32.keys()) {
    const Tensor rounded = fp32.get(k).to(DType::F16).to(DType::F32);
    const Tensor stored = shards.get(k);
    ASSERT_EQ(0, std::memcmp(rounded.f32(), stored.f32(), rounded.numel() * sizeof(float))) << k;
  }
}

TEST(component_weights, problems_name_the_folder_or_file) {
  const std::string empty = test::fresh_dir("layout-empty-folder");
  EXPECT_NE(error_of(empty).find(empty + ": no weights found"), std::string::npos);
  EXPECT_NE(error_of(empty + "/nope").find("component folder not found"), std::string::npos);

  const std::string corrupt = test::fresh_dir("layout-corrupt-bin");
  std::ofstream(corrupt + "/pytorch_model.bin") << "not a pickle";
  EXPECT_NE(error_of(corrupt).find(corrupt + "/pytorch_model.bin"), std::string::npos)
      << error_of(corrupt);

  const std::string missing_shard = test::fresh_dir("layout-missing-shard");
  std::ofstream(missing_shard + "/pytorch_model.bin.index.json")
      << R"({"weight_map": {"x": "pytorch_model-00001-of-00002.bin"}})";
  const std::string e = error_of(missing_shard);
  EXPECT_NE(e.find("pytorch_model-00001-of-00002.bin: missing"), std::string::npos) << e;
}
