// AutoencoderKL against diffusers' outputs on the tiny SD 1.x / 2.x fixtures, and the failures a
// broken config, checkpoint or input must produce.
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>

#include "common/fixtures.h"
#include "common/reference_data.h"
#include "core/mapped_file.h"
#include "diffuse/error.hpp"
#include "models/vae/autoencoder_kl.h"

using namespace diffuse;

namespace {

double ms_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start)
      .count();
}

double report(const std::string& what, const Tensor& ours, const Tensor& ref, double ms) {
  EXPECT_EQ(ours.shape(), ref.shape()) << what;
  const double err = test::rel_error(ours, ref);
  std::cout << "[vae] " << what << " " << ours.shape().str() << ": rel error " << err << ", " << ms
            << " ms\n";
  ::testing::Test::RecordProperty("rel_error_" + what, std::to_string(err));
  return err;
}

void check_model_in_vae(const std::string& model) {
  const AutoencoderKL vae = AutoencoderKL::load(test::fixture("models/" + model + "/vae"));
  const SafetensorsFile g = test::golden(model + "-vae.safetensors");

  const Tensor latents = g.get("latents");
  vae.decode(latents);  // warm the activation pool
  auto start = std::chrono::steady_clock::now();
  const Tensor decoded = vae.decode(latents);
  EXPECT_LT(report(model + "_decoded", decoded, g.get("decoded"), ms_since(start)), 1e-4);

  const Tensor image = g.get("image");
  vae.encode(image);
  start = std::chrono::steady_clock::now();
  const AutoencoderKL::LatentDist d = vae.encode(image);
  const double ms = ms_since(start);
  EXPECT_LT(report(model + "_mean", d.mean, g.get("mean"), ms), 1e-4);
  EXPECT_LT(report(model + "_logvar", d.logvar, g.get("logvar"), ms), 1e-4);
}

nlohmann::json tiny_config_in_vae() {
  return nlohmann::json::parse(read_text_file(test::fixture("models/tiny-sd1/vae/config.json")));
}

// The tiny SD 1.x VAE's weights, without `drop`, with `replace` swapped for `replacement`, and with
// the mid-block attention under its pre-0.14 names when `legacy_names`.
WeightStore tiny_weights(const std::string& drop, const std::string& replace = "",
                         const Tensor& replacement = {}, bool legacy_names = false) {
  const SafetensorsFile f = SafetensorsFile::open(
      test::fixture("models/tiny-sd1/vae/diffusion_pytorch_model.safetensors"));
  const std::pair<std::string, std::string> renames[] = {{".to_q.", ".query."},
                                                         {".to_k.", ".key."},
                                                         {".to_v.", ".value."},
                                                         {".to_out.0.", ".proj_attn."}};
  WeightStore w;
  for (const auto& k : f.keys()) {
    if (k == drop) continue;
    std::string name = k;
    Tensor t = k == replace ? replacement : f.get(k).clone();
    if (legacy_names)
      for (const auto& [now, old] : renames)
        if (auto p = name.find(now); p != std::string::npos) {
          name.replace(p, now.size(), old);
          if (old == ".query." && name.ends_with("weight"))  // one as an LDM-style 1x1 conv
            t = t.reshape({t.dim(0), t.dim(1), 1, 1});
        }
    w.add(name, t);
  }
  return w;
}

}  // namespace

TEST(vae, tiny_sd1_matches_diffusers) {
  check_model_in_vae("tiny-sd1");
}

TEST(vae, tiny_sd2_matches_diffusers) {
  check_model_in_vae("tiny-sd2");
}

// diffusers' enable_tiling() on the tiny VAE (tools/reference/make_vae_tiling_references.py): the
// config's tile size over a 24x40 latent (3x4 tiles, batch 2), tiles a user set to 64 pixels over
// a 13x21 latent (short edge tiles), and a latent no larger than one tile, decoded whole.
TEST(vae, tiled_decode_matches_diffusers) {
  const AutoencoderKL vae = AutoencoderKL::load(test::fixture("models/tiny-sd1/vae"));
  const std::string path = test::reference("vae-tiling.safetensors");
  const SafetensorsFile ref = SafetensorsFile::open(path);
  const nlohmann::json cases = parse_json(ref.metadata().at("json"), path).at("cases");
  for (const std::string name : {"default_tiles", "small_tiles", "untiled_fits"}) {
    SCOPED_TRACE(name);
    const int tile = cases.at(name).at("tile_sample_min_size").get<int>();
    VaeTiling tiling{true, tile == vae.config().sample_size ? 0 : tile};
    const Tensor decoded = vae.decode(ref.get(name + ".latents"), tiling);
    EXPECT_LT(report("tiled_" + name, decoded, ref.get(name + ".decoded"), 0), 1e-4);
  }
  // Tiling really changes the result (the seams are blended), so the test above checks it.
  const Tensor latents = ref.get("default_tiles.latents");
  EXPECT_GT(test::rel_error(vae.decode(latents), ref.get("default_tiles.decoded")), 1e-3);
}

TEST(vae, tile_sizes_that_do_not_line_up_are_config_errors) {
  const AutoencoderKL vae = AutoencoderKL::load(test::fixture("models/tiny-sd1/vae"));
  const Tensor latents = Tensor::zeros({1, 4, 20, 20});
  test::expect_error_mentioning<ConfigError>(
      [&] {
        vae.decode(latents, VaeTiling{true, 40});
      },
      {"VAE tile size 40", "multiple of 32"});
  test::expect_error_mentioning<ConfigError>(
      [&] {
        vae.decode(latents, VaeTiling{true, -64});
      },
      {"VAE tile size -64"});
}

TEST(vae, legacy_attention_names_load_identically) {
  const VaeConfig c = VaeConfig::load(test::fixture("models/tiny-sd1/vae/config.json"));
  const AutoencoderKL modern = AutoencoderKL::from_weights(c, tiny_weights(""));
  const WeightStore old_names = tiny_weights("", "", {}, true);
  ASSERT_TRUE(old_names.contains("decoder.mid_block.attentions.0.proj_attn.weight"));
  ASSERT_EQ(old_names.raw("encoder.mid_block.attentions.0.query.weight").ndim(), 4);
  const AutoencoderKL legacy = AutoencoderKL::from_weights(c, old_names);
  const Tensor latents = test::golden("tiny-sd1-vae.safetensors").get("latents");
  EXPECT_EQ(test::abs_error(legacy.decode(latents), modern.decode(latents)), 0.0);
}

TEST(vae, full_size_configs_parse) {
  for (const char* m : {"sd15", "sd21-base", "sd21-768v"}) {
    const VaeConfig c =
        VaeConfig::load(std::string(DIFFUSE_CONFIGS_DIR) + "/" + m + "/vae/config.json");
    EXPECT_EQ(c.downsample_factor(), 8);
    EXPECT_EQ(c.block_out_channels, std::vector<int>({128, 256, 512, 512}));
    EXPECT_DOUBLE_EQ(c.scaling_factor, 0.18215);
  }
}

TEST(vae, image_not_multiple_of_8_is_shape_error) {
  const AutoencoderKL vae = AutoencoderKL::load(test::fixture("models/tiny-sd1/vae"));
  test::expect_error_mentioning<ShapeError>(
      [&] {
        vae.encode(Tensor::zeros({1, 3, 64, 60}));
      },
      {"60", "multiple of 8"});
  test::expect_error_mentioning<ShapeError>(
      [&] {
        vae.encode(Tensor::zeros({1, 3, 4, 4}));
      },
      {"4x4"});
  EXPECT_THROW(vae.encode(Tensor::zeros({1, 4, 64, 64})), ShapeError);
  EXPECT_THROW(vae.decode(Tensor::zeros({1, 3, 8, 8})), ShapeError);
  // Latents of any size decode, odd ones included.
  EXPECT_EQ(vae.decode(Tensor::zeros({1, 4, 3, 5})).shape(), Shape({1, 3, 24, 40}));
}

TEST(vae, unknown_config_key_is_config_error_naming_it) {
  namespace fs = std::filesystem;
  nlohmann::json j = tiny_config_in_vae();
  j["use_tiling_magic"] = 1;
  const fs::path dir = fs::path(test::temp_dir()) / "vae_unknown_key";
  fs::remove_all(dir);
  fs::create_directories(dir);
  std::ofstream(dir / "config.json") << j.dump(2);
  test::expect_error_mentioning<ConfigError>([&] { AutoencoderKL::load(dir.string()); },
                                             {"use_tiling_magic", "config.json"});
}

TEST(vae, unsupported_features_are_config_errors) {
  const std::vector<std::pair<std::string, nlohmann::json>> cases = {
      {"shift_factor", 0.0609},
      {"latents_mean", {0.1, 0.2, 0.3, 0.4}},
      {"down_block_types",
       {"DownEncoderBlock2D", "AttnDownEncoderBlock2D", "DownEncoderBlock2D",
        "DownEncoderBlock2D"}},
      {"up_block_types", {"UpDecoderBlock2D"}},
      {"act_fn", "gelu"},
      {"norm_num_groups", 12},
  };
  for (const auto& [key, value] : cases) {
    nlohmann::json j = tiny_config_in_vae();
    j[key] = value;
    test::expect_error_mentioning<ConfigError>([&] { VaeConfig::parse(j, "vae/config.json"); },
                                               {key});
  }
}

TEST(vae, missing_weight_is_file_error_naming_key) {
  const VaeConfig c = VaeConfig::load(test::fixture("models/tiny-sd1/vae/config.json"));
  for (const std::string key : {"decoder.up_blocks.1.resnets.2.norm2.bias", "quant_conv.weight",
                                "encoder.mid_block.attentions.0.to_v.weight"})
    test::expect_error_mentioning<FileError>(
        [&] { AutoencoderKL::from_weights(c, tiny_weights(key)); }, {key});
}

TEST(vae, wrongly_shaped_weight_is_file_error_naming_key) {
  const VaeConfig c = VaeConfig::load(test::fixture("models/tiny-sd1/vae/config.json"));
  const std::string key = "encoder.down_blocks.0.downsamplers.0.conv.weight";  // [16, 16, 3, 3]
  test::expect_error_mentioning<FileError>(
      [&] {
        AutoencoderKL::from_weights(c, tiny_weights("", key, Tensor::zeros({16, 16, 2, 2})));
      },
      {key});
}

TEST(vae, default_constructed_model_throws) {
  const AutoencoderKL vae;
  EXPECT_THROW(vae.config(), Error);
  EXPECT_THROW(vae.decode(Tensor::zeros({1, 4, 8, 8})), Error);
}
