// Single-file checkpoints (original LDM layout) against the diffusers folders they were made from:
// every converted weight equal bit for bit, the same key sets, and whole pipelines through the
// single file reproducing diffusers' golden images.
#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>

#include "checkpoint/checkpoint_test_util.h"
#include "common/fixtures.h"
#include "common/pipeline_check.h"
#include "pipeline/checkpoint_loader.h"
#include "tokenizer/clip_tokenizer.h"

using namespace diffuse;
namespace fs = std::filesystem;

namespace {

// The project's assets folder (bundled configs), found from this source file's location.
std::string assets_dir() {
  return (fs::path(__FILE__).parent_path().parent_path().parent_path() / "assets").string();
}

void expect_same_weights(const WeightStore& converted, const std::string& diffusers_dir,
                         const std::string& label) {
  const WeightStore ref = load_component_weights(diffusers_dir);
  EXPECT_EQ(converted.keys(), ref.keys()) << label << ": key sets differ";
  size_t compared = 0;
  for (const auto& key : ref.keys()) {
    if (!converted.contains(key)) continue;
    const Tensor ours = converted.raw(key), theirs = ref.raw(key);
    ASSERT_EQ(ours.dtype(), theirs.dtype()) << label << " " << key;
    ASSERT_EQ(ours.shape(), theirs.shape()) << label << " " << key;
    const Tensor a = ours.contiguous(), b = theirs.contiguous();
    EXPECT_EQ(std::memcmp(a.raw(), b.raw(), a.nbytes()), 0) << label << " " << key;
    ++compared;
  }
  EXPECT_EQ(compared, ref.size()) << label;
}

void check_conversion(const std::string& file, const std::string& folder,
                      const std::string& family) {
  const std::string path = test::fixture("models/" + file);
  const std::string dir = test::fixture("models/" + folder);
  const StateDict sd = read_checkpoint_state_dict(path);
  const ConvertedCheckpoint c = convert_checkpoint(sd, path, dir);
  EXPECT_EQ(c.family, family);
  expect_same_weights(c.unet, dir + "/unet", file + " unet");
  expect_same_weights(c.vae, dir + "/vae", file + " vae");
  expect_same_weights(c.text_encoder, dir + "/text_encoder", file + " text_encoder");
}

void check_golden(const std::string& file, const std::string& folder, const std::string& name) {
  LoadOptions o;
  o.config_dir = test::fixture("models/" + folder);
  auto pipe = Pipeline::load(test::fixture("models/" + file), o);
  EXPECT_EQ(pipe->info().name, fs::path(file).stem().string());
  test::check_golden_pipeline(*pipe, test::fixture("golden/pipe-" + name + ".safetensors"),
                              test::fixture("golden/" + name + "-0.png"), file + " " + name);
}

}  // namespace

TEST(checkpoint_conversion, sd1_safetensors_matches_diffusers_bit_for_bit) {
  check_conversion("tiny-sd1.safetensors", "tiny-sd1", "sd1");
}
TEST(checkpoint_conversion, sd1_ckpt_matches_diffusers_bit_for_bit) {
  check_conversion("tiny-sd1.ckpt", "tiny-sd1", "sd1");
}
TEST(checkpoint_conversion, sd2_openclip_matches_diffusers_bit_for_bit) {
  // The checkpoint holds one more resblock than the diffusers folder: it must be dropped.
  check_conversion("tiny-sd2.safetensors", "tiny-sd2", "sd2");
}

TEST(checkpoint_pipeline, sd1_safetensors_txt2img_dpmpp) {
  check_golden("tiny-sd1.safetensors", "tiny-sd1", "txt2img-dpmpp");
}
TEST(checkpoint_pipeline, sd1_ckpt_txt2img_dpmpp) {
  check_golden("tiny-sd1.ckpt", "tiny-sd1", "txt2img-dpmpp");
}
TEST(checkpoint_pipeline, sd2_safetensors_txt2img_v_prediction) {
  check_golden("tiny-sd2.safetensors", "tiny-sd2", "txt2img-sd2-dpmpp-v");
}

TEST(checkpoint_loading, bundled_tokenizers_keep_their_configured_pad_token) {
  // The bundled config folders hold tokenizer configs only; the vocabulary is shared. SD 2.x and
  // SDXL's second tokenizer pad with "!" (id 0), SD 1.x with <|endoftext|>.
  const fs::path assets = assets_dir();
  const std::string vocabulary = (assets / "tokenizer").string();
  const auto pad_of = [&](const char* config) {
    return ClipTokenizer::load(vocabulary, (assets / "configs" / config).string()).pad_id();
  };
  EXPECT_EQ(pad_of("sd15/tokenizer"), 49407);
  EXPECT_EQ(pad_of("sd21-768v/tokenizer"), 0);
  EXPECT_EQ(pad_of("sdxl-base/tokenizer"), 49407);
  EXPECT_EQ(pad_of("sdxl-base/tokenizer_2"), 0);
  EXPECT_EQ(pad_of("sdxl-refiner/tokenizer_2"), 0);
}

TEST(checkpoint_loading, default_configs_follow_the_detected_family) {
  LoadOptions o;
  o.assets_dir = assets_dir();
  EXPECT_EQ(fs::path(checkpoint_config_dir("sd1", "x", o)).filename(), "sd15");
  EXPECT_EQ(fs::path(checkpoint_config_dir("sd2", "x", o)).filename(), "sd21-768v");
  EXPECT_EQ(fs::path(checkpoint_config_dir("sdxl", "x", o)).filename(), "sdxl-base");
  EXPECT_EQ(fs::path(checkpoint_config_dir("sdxl-refiner", "x", o)).filename(), "sdxl-refiner");
  for (const char* f : {"sdxl-base", "sdxl-refiner"})
    for (const char* c :
         {"model_index.json", "unet/config.json", "vae/config.json", "text_encoder_2/config.json",
          "scheduler/scheduler_config.json", "tokenizer_2/tokenizer_config.json"})
      EXPECT_TRUE(fs::exists(fs::path(o.assets_dir) / "configs" / f / c)) << f << "/" << c;
  for (const char* f : {"sd15", "sd21-768v"})
    for (const char* c :
         {"model_index.json", "unet/config.json", "vae/config.json", "text_encoder/config.json",
          "scheduler/scheduler_config.json", "tokenizer/tokenizer_config.json"})
      EXPECT_TRUE(fs::exists(fs::path(o.assets_dir) / "configs" / f / c)) << f << "/" << c;
  // The tiny checkpoint with the full-size SD 1.5 config: the shapes disagree, and the error says
  // so.
  const std::string path = test::fixture("models/tiny-sd1.safetensors");
  try {
    Pipeline::load(path, o);
    ADD_FAILURE() << "loaded a tiny checkpoint with the full-size config";
  } catch (const FileError& e) {
    EXPECT_NE(std::string(e.what()).find("disagree"), std::string::npos) << e.what();
  }
  // Neither a config folder nor assets: a plain ConfigError naming the file.
  try {
    Pipeline::load(path, LoadOptions{});
    ADD_FAILURE() << "loaded without a config";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
  }
  // An SD 2.x checkpoint with an SD 1.x config folder is refused.
  LoadOptions wrong;
  wrong.config_dir = test::fixture("models/tiny-sd1");
  EXPECT_THROW(Pipeline::load(test::fixture("models/tiny-sd2.safetensors"), wrong), Error);
}

TEST(checkpoint_loading, cli_generates_from_a_single_file) {
  const std::string bin = DIFFUSE_BINARY;
  if (!fs::exists(bin)) GTEST_SKIP() << "diffuse executable not built";
  const std::string out = (fs::path(test::temp_dir()) / "ckpt.png").string();
  fs::remove(out);
  const std::string cmd = "'" + bin + "' generate --model '" +
                          test::fixture("models/tiny-sd1.ckpt") + "' --config-dir '" +
                          test::fixture("models/tiny-sd1") +
                          "' --prompt 'a cat' --steps 2 --seed 1 -o '" + out + "' >/dev/null 2>&1";
  EXPECT_EQ(std::system(cmd.c_str()), 0) << cmd;
  EXPECT_TRUE(fs::exists(out));
}

TEST(checkpoint_loader, a_tensor_larger_than_any_sd_weight_is_refused_before_inflating) {
  // 2^29 float32 elements (2 GiB) declared, with a zip entry that declares exactly that much
  // but holds a few deflated bytes: refused from data.pkl alone, nothing is inflated.
  const std::string path = test::temp_dir() + "/huge-tensor.ckpt";
  const int numel = 1 << 29;
  test::PickleWriter p;
  p.op('}').op('(').str("model.diffusion_model.conv_in.weight");
  p.float_tensor("0", numel, 0, {numel}, {1}).op('u');
  std::string zip = test::zip_bytes(
      {{"archive/data.pkl", p.done()}, {"archive/data/0", std::string(64, '\0')}}, true);
  test::patch_central(zip, "archive/data/0", test::kCentralSize, 0x80000000u);
  test::write_file(path, zip);
  try {
    read_checkpoint_state_dict(path);
    FAIL() << "accepted";
  } catch (const FileError& e) {
    EXPECT_NE(std::string(e.what()).find("declares 536870912 elements"), std::string::npos)
        << e.what();
  }
}
