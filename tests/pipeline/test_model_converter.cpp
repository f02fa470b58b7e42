// convert_model / verify_package (diffuse convert, diffuse verify) on the tiny fixtures. A package
// stored at f32 is the source bit for bit; f16 and int8 packages are exactly what loading the
// source with that precision computes (the same rounding, done once on disk); palettized ones stay
// within a PSNR of the float32 image, better with more bits.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "common/fixtures.h"
#include "diffuse/diffuse.hpp"
#include "diffuse/error.hpp"

using namespace diffuse;
namespace fs = std::filesystem;

namespace {

GenerateOptions small_generation() {
  GenerateOptions o;
  o.prompt = "a red cube on a table";
  o.steps = 3;
  o.seed = 9;
  o.scheduler = "dpmpp-2m";
  return o;
}

std::vector<uint8_t> image_of(const std::string& model, const LoadOptions& load = {}) {
  return Pipeline::load(model, load)->generate(small_generation()).images.at(0).to_rgb8();
}

std::string tiny() {
  return test::fixture("models/tiny-sd1");
}

const std::vector<uint8_t>& source_image() {
  static const std::vector<uint8_t> image = image_of(tiny());
  return image;
}

/// Converts tiny-sd1 into a fresh folder `name` under `parent` (default: the temp folder).
std::string converted(const std::string& name, ConvertOptions o = {},
                      const std::string& source = tiny(),
                      const std::string& parent = test::temp_dir()) {
  const std::string out = parent + "/pkg-" + name;
  fs::remove_all(out);
  convert_model(source, out, o);
  return out;
}

ConvertOptions with_precision(const std::string& p) {
  ConvertOptions o;
  o.precision = p;
  return o;
}

nlohmann::json manifest(const std::string& package) {
  return nlohmann::json::parse(std::ifstream(package + "/diffuse.json"));
}

/// The UNet's weight files: nearly all layer matrices (the tiny text encoder is mostly its
/// float32 token embedding, which no precision touches).
int64_t unet_bytes(const std::string& package) {
  return manifest(package)["components"]["unet"]["disk_bytes"].get<int64_t>();
}

/// Names in `dir` starting with '.', i.e. leftovers of a failed conversion.
std::vector<std::string> hidden_entries(const std::string& dir) {
  std::vector<std::string> hidden;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.path().filename().string().rfind(".pkg-", 0) == 0) hidden.push_back(e.path().string());
  return hidden;
}

}  // namespace

TEST(model_converter, f32_packages_are_the_source_and_f16_int8_equal_load_time_rounding) {
  EXPECT_EQ(image_of(converted("f32", with_precision("f32"))), source_image());
  for (const char* precision : {"f16", "int8"}) {
    LoadOptions load;
    load.precision = precision;
    // Loaded at the same precision: an int8 package then computes in bf16 as --precision int8
    // does (loaded as stored, "f32", it would compute exactly from the dequantized values).
    EXPECT_EQ(image_of(converted(precision, with_precision(precision)), load),
              image_of(tiny(), load))
        << precision;
  }
  const nlohmann::json m = manifest(test::temp_dir() + "/pkg-int8");
  EXPECT_EQ(manifest(test::temp_dir() + "/pkg-f32")["components"]["unet"]["relative_error"], 0.0);
  const double int8_error = m["components"]["unet"]["relative_error"];
  EXPECT_GT(int8_error, 0.0);
  EXPECT_LT(int8_error, 0.01);  // int8 with per-channel scales: well under 1% of the weights' norm
  EXPECT_EQ(m["format"], "diffuse-package");
  EXPECT_EQ(m["precision"], "int8");
  EXPECT_EQ(m["components"]["unet"]["tensors"]["conv_in.weight"]["encoding"],
            "int8 per-output-channel");
  EXPECT_EQ(m["components"]["unet"]["tensors"]["conv_in.bias"]["encoding"], "F32");
}

TEST(model_converter, palettized_packages_shrink_and_stay_close) {
  const int64_t f32 = unet_bytes(converted("size-f32", with_precision("f32")));
  const std::string p8 = converted("palette8", with_precision("palette8"));
  const std::string p4 = converted("palette4", with_precision("palette4"));
  // diffuse info counts a package's palettized matrices by their logical shapes.
  const ModelDescription described = inspect_model(p4);
  EXPECT_EQ(described.kind, "diffuse package (palette4)");
  const ModelDescription source = inspect_model(tiny());
  for (size_t i = 0; i < source.components.size(); ++i) {
    EXPECT_EQ(described.components.at(i).parameters, source.components[i].parameters);
    EXPECT_GT(described.components[i].parameters_by_dtype.at("palette4"), 0);
  }
  EXPECT_LT(unet_bytes(p8), f32 * 3 / 10);
  EXPECT_LT(unet_bytes(p4), unet_bytes(p8) * 6 / 10);
  EXPECT_LT(unet_bytes(converted("size-f16", with_precision("f16"))), f32 * 52 / 100);
  std::printf("UNet on disk: f32 %lld, palette8 %lld, palette4 %lld bytes\n",
              static_cast<long long>(f32), static_cast<long long>(unet_bytes(p8)),
              static_cast<long long>(unet_bytes(p4)));
  const double e8 = manifest(p8)["components"]["unet"]["relative_error"];
  const double e4 = manifest(p4)["components"]["unet"]["relative_error"];
  EXPECT_LT(e8, e4);
  EXPECT_LT(e4, 0.1);
  const double db8 = test::psnr_db(image_of(p8), source_image()),
               db4 = test::psnr_db(image_of(p4), source_image());
  EXPECT_GE(db8, 35.0);
  EXPECT_GT(db8, db4);
  EXPECT_GE(db4, 20.0);
  std::printf("PSNR vs float32: palette8 %.1f dB, palette4 %.1f dB\n", db8, db4);

  // A table per group of 8 output channels: closer weights for a few more bytes of tables.
  ConvertOptions grouped = with_precision("palette4");
  grouped.palette_group = 8;
  const std::string p4g = converted("palette4-g8", grouped);
  const nlohmann::json unet = manifest(p4g)["components"]["unet"];
  EXPECT_EQ(unet["palette_group"], 8);
  EXPECT_NE(unet["tensors"]["conv_in.weight"]["encoding"].get<std::string>().find("tables of 8"),
            std::string::npos)
      << unet["tensors"]["conv_in.weight"].dump();
  const double e4g = unet["relative_error"];
  EXPECT_LT(e4g, e4);
  EXPECT_LT(unet_bytes(p4g), unet_bytes(p8));
  const double db4g = test::psnr_db(image_of(p4g), source_image());
  EXPECT_GE(db4g, 20.0);
  std::printf(
      "palette4 with a table per 8 channels: %lld bytes, error %.4f (per tensor %.4f), "
      "%.1f dB\n",
      static_cast<long long>(unet_bytes(p4g)), e4g, e4, db4g);
}

TEST(model_converter, shards_components_checkpoints_and_per_component_precision) {
  ConvertOptions chunked = with_precision("f16");
  chunked.chunk_mib = 1;
  const std::string sharded = converted("chunked", chunked);
  EXPECT_TRUE(fs::exists(sharded + "/unet/diffusion_pytorch_model.safetensors.index.json"));
  EXPECT_GT(manifest(sharded)["components"]["unet"]["files"].size(), 3u);
  const nlohmann::json sharded_manifest = manifest(sharded);
  for (const auto& f : sharded_manifest["components"]["unet"]["files"])
    EXPECT_LE(f["bytes"].get<int64_t>(), (1 << 20) + (1 << 20));  // one tensor may overshoot
  EXPECT_EQ(image_of(sharded), image_of(converted("unchunked", with_precision("f16"))));

  ConvertOptions vae_f32 = with_precision("int8");
  vae_f32.component_precision["vae"] = "f32";
  const nlohmann::json m = manifest(converted("mixed", vae_f32));
  EXPECT_EQ(m["components"]["vae"]["precision"], "f32");
  EXPECT_EQ(m["components"]["unet"]["precision"], "int8");

  ConvertOptions some = with_precision("f16");
  some.components = {"unet", "vae"};
  const std::string partial = converted("partial", some);
  EXPECT_FALSE(manifest(partial)["components"].contains("text_encoder"));
  EXPECT_EQ(inspect_model(partial).components.size(), 2u);
  EXPECT_FALSE(fs::exists(partial + "/text_encoder/model.safetensors"));
  EXPECT_TRUE(fs::exists(partial + "/text_encoder/config.json"));

  ConvertOptions from_file = with_precision("f32");
  from_file.load.config_dir = tiny();
  const std::string ckpt = converted("from-ckpt", from_file, test::fixture("models/tiny-sd1.ckpt"));
  LoadOptions direct;
  direct.config_dir = tiny();
  EXPECT_EQ(image_of(ckpt), image_of(test::fixture("models/tiny-sd1.ckpt"), direct));
}

TEST(model_converter, verify_finds_changed_and_missing_files) {
  const std::string pkg = converted("verify", with_precision("f16"));
  EXPECT_TRUE(verify_package(pkg).empty());
  const std::string vae = pkg + "/vae/diffusion_pytorch_model.safetensors";
  {
    std::fstream f(vae, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(-1, std::ios::end);
    f.put('\x55');
  }
  auto problems = verify_package(pkg);
  ASSERT_EQ(problems.size(), 1u);
  EXPECT_NE(problems[0].find(vae + ": SHA-256 differs"), std::string::npos) << problems[0];
  fs::resize_file(vae, 100);
  problems = verify_package(pkg);
  ASSERT_EQ(problems.size(), 1u);
  EXPECT_NE(problems[0].find("100 bytes, expected"), std::string::npos) << problems[0];
  fs::remove(pkg + "/unet/diffusion_pytorch_model.safetensors");
  EXPECT_EQ(verify_package(pkg).size(), 2u);
  EXPECT_THROW(verify_package(tiny()), FileError);
}

TEST(model_converter, bad_options_and_failures_leave_nothing_behind) {
  // A folder of its own: other tests convert beside the shared temp folder at the same time.
  const std::string dir = test::temp_dir() + "/leave-nothing-behind";
  fs::remove_all(dir);
  fs::create_directories(dir);
  EXPECT_THROW(converted("bad-precision", with_precision("fp8"), tiny(), dir), ConfigError);
  ConvertOptions group_without_palette = with_precision("f16");
  group_without_palette.palette_group = 16;
  test::expect_error_mentioning<ConfigError>(
      [&] { converted("group-f16", group_without_palette, tiny(), dir); }, {"palette group"});
  ConvertOptions bad_component;
  bad_component.components = {"safety_checker"};
  EXPECT_THROW(converted("bad-component", bad_component, tiny(), dir), ConfigError);
  const std::string exists = converted("exists", with_precision("f16"), tiny(), dir);
  EXPECT_THROW(convert_model(tiny(), exists), FileError);
  const std::string cancelled = dir + "/pkg-cancelled";
  fs::remove_all(cancelled);
  EXPECT_THROW(
      convert_model(tiny(), cancelled, {},
                    [](const std::string& c, int done, int) { return c != "unet" || done < 5; }),
      Cancelled);
  EXPECT_FALSE(fs::exists(cancelled));
  EXPECT_THROW(converted("missing-source", {}, dir + "/no-such-model", dir), FileError);
  EXPECT_TRUE(hidden_entries(dir).empty());
}

// The attention kernel is a package option (Core ML's attention variants): recorded in
// diffuse.json, the default of every load of the package, overridden by LoadOptions::attention;
// each kernel gives the source's image to float32 rounding.
TEST(model_converter, attention_kernel_is_the_package_default_and_a_load_overrides_it) {
  ConvertOptions o;
  o.precision = "f32";
  o.attention = "flash";
  const std::string package = converted("flash", o);
  EXPECT_EQ(manifest(package)["attention"], "flash");
  EXPECT_EQ(Pipeline::load(package)->info().attention, "flash");
  EXPECT_EQ(Pipeline::load(tiny())->info().attention, "sliced");
  LoadOptions standard;
  standard.attention = "standard";
  EXPECT_EQ(Pipeline::load(package, standard)->info().attention, "standard");
  for (const LoadOptions& load : {LoadOptions{}, standard}) {
    const std::vector<uint8_t> image = image_of(package, load), source = source_image();
    ASSERT_EQ(image.size(), source.size());
    int worst = 0;
    for (size_t i = 0; i < image.size(); ++i)
      worst = std::max(worst, std::abs(int(image[i]) - int(source[i])));
    EXPECT_LE(worst, 1) << "attention " << load.attention;
  }

  // A kernel diffuse does not know, in the options or in a manifest, names where it came from.
  LoadOptions unknown;
  unknown.attention = "ring";
  test::expect_error_mentioning<ConfigError>([&] { Pipeline::load(package, unknown); },
                                             {"attention", "ring", "flash"});
  o.attention = "ring";
  EXPECT_THROW(converted("ring", o), ConfigError);
  EXPECT_FALSE(fs::exists(test::temp_dir() + "/pkg-ring"));
  nlohmann::json m = manifest(package);
  m["attention"] = "ring";
  std::ofstream(package + "/diffuse.json") << m.dump();
  test::expect_error_mentioning<FileError>([&] { Pipeline::load(package); },
                                           {"diffuse.json", "ring"});
}
