// Pipeline behaviour beyond the goldens: numeric failures, memory reuse, previews, API plumbing.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <thread>

#include "common/fixtures.h"
#include "core/allocator.h"
#include "diffuse/diffuse.h"
#include "diffuse/diffuse.hpp"
#include "io/image_resize.h"
#include "io/safetensors.h"

using namespace diffuse;
namespace fs = std::filesystem;

namespace {
/// A copy of tiny-sd1 whose VAE decoder output bias is NaN.
std::string poisoned_model() {
  const std::string dir = test::writable_model_copy("tiny-sd1", "nan-model");
  const std::string vae = dir + "/vae/diffusion_pytorch_model.safetensors";
  std::vector<std::pair<std::string, Tensor>> tensors;
  {
    auto f = SafetensorsFile::open(vae);
    for (const auto& k : f.keys()) {
      Tensor t = f.get(k).clone();
      if (k == "decoder.conv_out.bias") t.f32()[0] = std::numeric_limits<float>::quiet_NaN();
      tensors.emplace_back(k, t);
    }
  }
  write_safetensors(vae, tensors);
  return dir;
}
}  // namespace

TEST(pipeline_behaviour, nan_output_is_a_numeric_error) {
  auto pipe = Pipeline::load(poisoned_model());
  GenerateOptions o;
  o.prompt = "x";
  o.steps = 2;
  try {
    pipe->generate(o);
    FAIL() << "NaN image accepted";
  } catch (const NumericError& e) {
    EXPECT_NE(std::string(e.what()).find("decoded image"), std::string::npos) << e.what();
  }
}

TEST(pipeline_behaviour, denoising_reuses_activation_memory) {
  // Every step after the first takes its activations from the pool. The pool gives its blocks
  // back when a stage ends, so each generation allocates the same again, no more (after the
  // first, which also fills one-off caches).
  auto pipe = Pipeline::load(test::fixture("models/tiny-sd1"));
  GenerateOptions o;
  o.prompt = "a cat";
  o.steps = 2;
  EXPECT_GT(pipe->generate(o).activation_system_allocations, 0u);
  const GenerationResult two = pipe->generate(o);
  const GenerationResult again = pipe->generate(o);
  EXPECT_EQ(again.activation_system_allocations, two.activation_system_allocations);
  EXPECT_EQ(again.peak_activation_bytes, two.peak_activation_bytes);
  o.steps = 6;
  const GenerationResult six = pipe->generate(o);
  // Four more steps: a schedule of another length is a block or two of another size, while the
  // activations of one UNet step here are over a hundred.
  EXPECT_GT(two.activation_system_allocations, 100u);
  EXPECT_LE(six.activation_system_allocations, two.activation_system_allocations + 2);
}

TEST(pipeline_behaviour, preview_and_progress_are_reported) {
  auto pipe = Pipeline::load(test::fixture("models/tiny-sd1"));
  GenerateOptions o;
  o.prompt = "a cat";
  o.steps = 3;
  o.preview = true;
  o.scheduler = "euler";
  int seen = 0;
  pipe->generate(o, [&](const Progress& p) {
    ++seen;
    EXPECT_EQ(p.total_steps, 3);
    EXPECT_EQ(p.step, seen);
    EXPECT_TRUE(p.preview.has_value());
    EXPECT_EQ(p.preview->width, 16);
    EXPECT_EQ(p.latent_shape, (std::vector<int64_t>{1, 4, 16, 16}));
    return true;
  });
  EXPECT_EQ(seen, 3);
}

TEST(pipeline_behaviour, random_sources_differ_and_reproduce) {
  auto pipe = Pipeline::load(test::fixture("models/tiny-sd1"));
  GenerateOptions o;
  o.prompt = "a cat";
  o.steps = 2;
  o.seed = 11;
  std::vector<std::vector<float>> images;
  for (const char* rng : {"torch", "numpy", "philox"}) {
    o.rng = rng;
    images.push_back(pipe->generate(o).images[0].rgb);
    EXPECT_EQ(pipe->generate(o).images[0].rgb, images.back()) << rng;
  }
  EXPECT_NE(images[0], images[1]);
  EXPECT_NE(images[0], images[2]);
}

TEST(pipeline_behaviour, c_api_generates_and_reports_errors) {
  diffuse_pipeline* p = nullptr;
  EXPECT_EQ(diffuse_pipeline_load("/nonexistent", &p), DIFFUSE_ERROR_FILE);
  EXPECT_NE(std::string(diffuse_last_error()).find("/nonexistent"), std::string::npos);
  ASSERT_EQ(diffuse_pipeline_load(test::fixture("models/tiny-sd1").c_str(), &p), DIFFUSE_OK);
  diffuse_options* o = nullptr;
  ASSERT_EQ(diffuse_options_create(&o), DIFFUSE_OK);
  diffuse_options_set_prompt(o, "a cat");
  diffuse_options_set_steps(o, 2);
  diffuse_options_set_seed(o, 5);
  diffuse_result* r = nullptr;
  ASSERT_EQ(diffuse_generate(p, o, nullptr, nullptr, &r), DIFFUSE_OK) << diffuse_last_error();
  ASSERT_EQ(diffuse_result_image_count(r), 1u);
  const uint8_t* rgb = nullptr;
  int w = 0, h = 0;
  ASSERT_EQ(diffuse_result_image(r, 0, &rgb, &w, &h), DIFFUSE_OK);
  EXPECT_EQ(w, 128);
  EXPECT_EQ(h, 128);
  EXPECT_EQ(diffuse_result_seed(r), 5u);
  EXPECT_EQ(diffuse_result_image(r, 3, &rgb, &w, &h), DIFFUSE_ERROR_ARGUMENT);
  diffuse_result_free(r);
  diffuse_options_set_steps(o, 0);
  EXPECT_EQ(diffuse_generate(p, o, nullptr, nullptr, &r), DIFFUSE_ERROR_CONFIG);
  EXPECT_EQ(r, nullptr);
  diffuse_options_set_steps(o, 3);
  auto cancel = [](int, int, void*) { return 1; };
  EXPECT_EQ(diffuse_generate(p, o, cancel, nullptr, &r), DIFFUSE_ERROR_CANCELLED);
  EXPECT_EQ(diffuse_generate(nullptr, o, nullptr, nullptr, &r), DIFFUSE_ERROR_ARGUMENT);
  diffuse_options_free(o);
  diffuse_pipeline_free(p);
}

namespace {
std::string model_copy(const std::string& name) {
  return test::writable_model_copy("tiny-sd1", name);
}
template <typename E>
void expect_load_error(const std::string& dir, const std::string& fragment1,
                       const std::string& fragment2) {
  try {
    Pipeline::load(dir);
    FAIL() << "loaded " << dir;
  } catch (const E& e) {
    const std::string w = e.what();
    EXPECT_NE(w.find(fragment1), std::string::npos) << w;
    EXPECT_NE(w.find(fragment2), std::string::npos) << w;
    EXPECT_EQ(w.find('\n'), std::string::npos) << "multi-line error: " << w;
  }
}
}  // namespace

TEST(pipeline_behaviour, missing_component_key_is_named) {
  const std::string dir = model_copy("no-unet-key");
  auto index = nlohmann::json::parse(std::ifstream(dir + "/model_index.json"));
  index.erase("unet");
  std::ofstream(dir + "/model_index.json") << index.dump(2);
  expect_load_error<ConfigError>(dir, "model_index.json", "'unet'");
}

TEST(pipeline_behaviour, missing_tokenizer_file_is_named) {
  const std::string dir = model_copy("no-vocab");
  fs::remove(dir + "/tokenizer/vocab.json");
  expect_load_error<FileError>(dir, "vocab.json", "tokenizer");
}

TEST(pipeline_behaviour, missing_scheduler_config_is_named) {
  const std::string dir = model_copy("no-scheduler");
  fs::remove(dir + "/scheduler/scheduler_config.json");
  expect_load_error<FileError>(dir, "scheduler_config.json", "missing");
}

TEST(pipeline_behaviour, sd_folder_labelled_sdxl_names_the_missing_encoder) {
  const std::string dir = model_copy("sdxl");
  auto index = nlohmann::json::parse(std::ifstream(dir + "/model_index.json"));
  index["_class_name"] = "StableDiffusionXLPipeline";
  std::ofstream(dir + "/model_index.json") << index.dump(2);
  expect_load_error<ConfigError>(dir, "'text_encoder_2'", "model_index.json");
}

TEST(pipeline_behaviour, img2img_resizes_init_image_like_diffusers) {
  // VaeImageProcessor: the default size is the image's rounded down to a multiple of 8, and the
  // image is resized to the target with PIL's Lanczos (here resize_lanczos, checked against
  // Pillow in tests/io).
  auto pipe = Pipeline::load(test::fixture("models/tiny-sd1"));
  std::vector<uint8_t> px(100 * 90 * 3);
  for (int y = 0; y < 90; ++y)
    for (int x = 0; x < 100; ++x) {
      uint8_t* p = &px[(size_t(y) * 100 + size_t(x)) * 3];
      p[0] = uint8_t(x * 255 / 99);
      p[1] = uint8_t(y * 255 / 89);
      p[2] = uint8_t(((x / 5 + y / 5) % 2) * 255);
    }
  GenerateOptions o;
  o.prompt = "a cat";
  o.steps = 2;
  o.strength = 0.5f;
  o.init_image = Image::from_rgb8(100, 90, px);
  auto r = pipe->generate(o);
  ASSERT_EQ(r.images.size(), 1u);
  EXPECT_EQ(r.images[0].width, 96);
  EXPECT_EQ(r.images[0].height, 88);
  EXPECT_EQ(r.options.width, 96);
  EXPECT_EQ(r.options.height, 88);
  ASSERT_TRUE(r.options.init_image.has_value());
  EXPECT_EQ(r.options.init_image->to_rgb8(), resize_lanczos(Rgb8Image{100, 90, px}, 96, 88).pixels);

  o.width = o.height = 128;
  r = pipe->generate(o);
  EXPECT_EQ(r.images[0].width, 128);
  EXPECT_EQ(r.images[0].height, 128);
  EXPECT_EQ(r.options.init_image->to_rgb8(),
            resize_lanczos(Rgb8Image{100, 90, px}, 128, 128).pixels);

  o.width = 100;  // an explicit size must still be a multiple of 8
  EXPECT_THROW(pipe->generate(o), ConfigError);
  o.width = 0;
  o.init_image = Image::from_rgb8(5, 40, std::vector<uint8_t>(5 * 40 * 3, 9));  // < 8 wide
  EXPECT_THROW(pipe->generate(o), ConfigError);
}

TEST(pipeline_behaviour, two_pipelines_run_side_by_side_on_their_own_threads) {
  // Two pipelines in one process, each with its own one-thread pool and memory pool, generating
  // at the same time from two threads: each result (and its memory figures) equals that pipeline
  // running alone.
  LoadOptions one_thread;
  one_thread.threads = 1;
  auto a = Pipeline::load(test::fixture("models/tiny-sd1"), one_thread);
  auto b = Pipeline::load(test::fixture("models/tiny-sd2"), one_thread);
  EXPECT_EQ(a->info().threads, 1);
  GenerateOptions o;
  o.prompt = "a lighthouse";
  o.steps = 4;
  o.seed = 3;
  a->generate(o);  // one-off caches filled, as below
  b->generate(o);
  const GenerationResult alone_a = a->generate(o), alone_b = b->generate(o);
  GenerationResult together_a, together_b;
  std::thread ta([&] { together_a = a->generate(o); });
  std::thread tb([&] { together_b = b->generate(o); });
  ta.join();
  tb.join();
  EXPECT_EQ(together_a.images[0].rgb, alone_a.images[0].rgb);
  EXPECT_EQ(together_b.images[0].rgb, alone_b.images[0].rgb);
  EXPECT_EQ(together_a.peak_activation_bytes, alone_a.peak_activation_bytes);
  EXPECT_EQ(together_b.peak_activation_bytes, alone_b.peak_activation_bytes);
  // Each pipeline's pool serves its own generation alone.
  EXPECT_EQ(together_a.activation_system_allocations, alone_a.activation_system_allocations);
  EXPECT_EQ(together_b.activation_system_allocations, alone_b.activation_system_allocations);
}

TEST(pipeline_behaviour, backend_choice_is_checked_and_reported) {
  LoadOptions load;
  load.backend = "tpu";
  test::expect_error_mentioning<ConfigError>(
      [&] { Pipeline::load(test::fixture("models/tiny-sd1"), load); }, {"unknown backend 'tpu'"});
  load.backend = "cuda";
  test::expect_error_mentioning<ConfigError>(
      [&] { Pipeline::load(test::fixture("models/tiny-sd1"), load); }, {"CUDA"});
  load.backend = "all";  // Core ML's "all": the GPU where there is one, else the CPU, said once
  auto pipe = Pipeline::load(test::fixture("models/tiny-sd1"), load);
  EXPECT_EQ(pipe->info().backend, "cpu");
  GenerateOptions o;
  o.prompt = "x";
  o.steps = 1;
  const GenerationResult r = pipe->generate(o);
  EXPECT_EQ(r.backend, "cpu");
  ASSERT_EQ(r.warnings.size(), 1u);
  EXPECT_NE(r.warnings[0].find("all"), std::string::npos) << r.warnings[0];
  load.backend = "cuda";
  load.device = -1;
  test::expect_error_mentioning<ConfigError>(
      [&] { Pipeline::load(test::fixture("models/tiny-sd1"), load); }, {"device"});
  load.device = 0;
  load.threads = -1;
  load.backend = "cpu";
  test::expect_error_mentioning<ConfigError>(
      [&] { Pipeline::load(test::fixture("models/tiny-sd1"), load); }, {"threads"});
}

TEST(pipeline_behaviour, c_api_load_options_and_warnings) {
  diffuse_load_options* lo = nullptr;
  ASSERT_EQ(diffuse_load_options_create(&lo), DIFFUSE_OK);
  ASSERT_EQ(diffuse_load_options_set_backend(lo, "warp"), DIFFUSE_OK);  // checked at load
  diffuse_pipeline* p = nullptr;
  const std::string model = test::fixture("models/tiny-sd1");
  EXPECT_EQ(diffuse_pipeline_load_with_options(model.c_str(), lo, &p), DIFFUSE_ERROR_CONFIG);
  EXPECT_EQ(p, nullptr);
  EXPECT_NE(std::string(diffuse_last_error()).find("warp"), std::string::npos);
  ASSERT_EQ(diffuse_load_options_set_backend(lo, "all"), DIFFUSE_OK);
  ASSERT_EQ(diffuse_load_options_set_precision(lo, "fp8"), DIFFUSE_OK);  // checked at load
  EXPECT_EQ(diffuse_pipeline_load_with_options(model.c_str(), lo, &p), DIFFUSE_ERROR_CONFIG);
  EXPECT_NE(std::string(diffuse_last_error()).find("fp8"), std::string::npos);
  ASSERT_EQ(diffuse_load_options_set_precision(lo, "int8"), DIFFUSE_OK);
  ASSERT_EQ(diffuse_load_options_set_attention(lo, "ring"), DIFFUSE_OK);  // checked at load
  EXPECT_EQ(diffuse_pipeline_load_with_options(model.c_str(), lo, &p), DIFFUSE_ERROR_CONFIG);
  EXPECT_NE(std::string(diffuse_last_error()).find("ring"), std::string::npos);
  ASSERT_EQ(diffuse_load_options_set_attention(lo, "flash"), DIFFUSE_OK);
  ASSERT_EQ(diffuse_load_options_set_threads(lo, 1), DIFFUSE_OK);
  ASSERT_EQ(diffuse_pipeline_load_with_options(model.c_str(), lo, &p), DIFFUSE_OK);
  diffuse_options* o = nullptr;
  ASSERT_EQ(diffuse_options_create(&o), DIFFUSE_OK);
  diffuse_options_set_prompt(o, "x");
  diffuse_options_set_steps(o, 1);
  diffuse_result* r = nullptr;
  ASSERT_EQ(diffuse_generate(p, o, nullptr, nullptr, &r), DIFFUSE_OK);
  ASSERT_EQ(diffuse_result_warning_count(r), 1u);
  EXPECT_NE(std::string(diffuse_result_warning(r, 0)).find("all"), std::string::npos);
  EXPECT_EQ(diffuse_result_warning(r, 1), nullptr);
  diffuse_result_free(r);
  diffuse_options_free(o);
  diffuse_pipeline_free(p);
  diffuse_load_options_free(lo);
}
