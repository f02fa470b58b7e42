// Inpainting, LoRAs and ControlNets through the server: A1111's img2img mask fields, <lora:...>
// prompt tags against --lora-dir, the ControlNet extension's alwayson_scripts units against
// --controlnet-dir, and the same options in diffuse's job API. Every image equals the library's
// own Pipeline::generate with the same options; what is not implemented is a 422 naming the field.
#include <filesystem>
#include <fstream>
#include <iterator>

#include "common/reference_data.h"
#include "server_fixture.h"

namespace {

namespace fs = std::filesystem;
using diffuse::GenerateOptions;
using diffuse::Image;
using diffuse::test::decode_b64_png;
using diffuse::test::fixture;
using diffuse::test::TestServer;
using diffuse::test::wait_for_job;

std::string b64_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(in)),
                             std::istreambuf_iterator<char>());
  EXPECT_FALSE(bytes.empty()) << path;
  return diffuse::serve::base64_encode(bytes);
}

diffuse::Pipeline& library() {
  static std::unique_ptr<diffuse::Pipeline> pipe =
      diffuse::Pipeline::load(fixture("models/tiny-sd1"));
  return *pipe;
}

std::vector<uint8_t> library_rgb8(const GenerateOptions& o) {
  return library().generate(o).images.at(0).to_rgb8();
}

// What an A1111 request with these values and A1111's defaults (Euler, cfg 7) asks the library.
GenerateOptions a1111_options(const std::string& prompt, int steps, uint64_t seed) {
  GenerateOptions o;
  o.prompt = prompt;
  o.negative_prompt = "";
  o.steps = steps;
  o.seed = seed;
  o.width = o.height = 64;
  o.guidance_scale = 7.f;
  o.scheduler = "euler";
  return o;
}

// A --lora-dir with the PEFT test LoRA as "peft" (and a file that is not a LoRA).
std::string lora_dir() {
  const std::string dir = diffuse::test::fresh_dir_for_test("serve-loras");
  fs::copy_file(diffuse::test::reference("inputs/lora-peft-tiny-sd1.safetensors"),
                fs::path(dir) / "peft.safetensors");
  std::ofstream(fs::path(dir) / "README.txt") << "not a LoRA\n";
  return dir;
}

// A --controlnet-dir with the tiny ControlNet folder (and a folder that is not a model).
std::string controlnet_dir() {
  const std::string dir = diffuse::test::fresh_dir_for_test("serve-controlnets");
  fs::create_directory_symlink(fixture("models/tiny-controlnet"),
                               fs::path(dir) / "tiny-controlnet");
  fs::create_directory(fs::path(dir) / "empty");
  return dir;
}

Image inverted(const Image& image) {
  std::vector<uint8_t> rgb8 = image.to_rgb8();
  for (uint8_t& v : rgb8) v = static_cast<uint8_t>(255 - v);
  return Image::from_rgb8(image.width, image.height, rgb8);
}

// Expects a 422 whose message contains every needle.
void expect_422(const TestServer& s, const std::string& path, const nlohmann::json& body,
                const std::vector<std::string>& needles) {
  auto [status, r] = s.post(path, body);
  EXPECT_EQ(status, 422) << body.dump().substr(0, 300) << " -> " << r.dump().substr(0, 300);
  if (!r.is_object() || !r.contains("detail")) return;
  const std::string message = r["detail"];
  for (const auto& n : needles)
    EXPECT_NE(message.find(n), std::string::npos) << "'" << message << "' lacks '" << n << "'";
  EXPECT_EQ(message.find('\n'), std::string::npos) << message;
}

std::vector<uint8_t> job_image(const TestServer& s, const nlohmann::json& body) {
  auto [status, created] = s.post("/api/v1/jobs", body);
  EXPECT_EQ(status, 202) << created.dump();
  if (status != 202) return {};
  const nlohmann::json job = wait_for_job(s, created["id"]);
  EXPECT_EQ(job.value("status", ""), "done") << job.dump().substr(0, 500);
  if (job.value("status", "") != "done") return {};
  return decode_b64_png(job["images"][0]["png_base64"]).to_rgb8();
}

TEST(a1111_inpainting, a_masked_img2img_equals_the_library) {
  TestServer s;
  const std::string init = b64_file(fixture("golden/img2img-init.png"));
  const std::string mask = b64_file(fixture("golden/inpaint-mask.png"));
  // The inpainting fields as a client sends them, at A1111's defaults: mask_blur 4 through its
  // axes, "original" fill, the whole picture.
  const nlohmann::json body = {{"prompt", "a red hat"},
                               {"init_images", {init}},
                               {"mask", "data:image/png;base64," + mask},
                               {"steps", 3},
                               {"seed", 21},
                               {"width", 64},
                               {"height", 64},
                               {"mask_blur_x", 4},
                               {"mask_blur_y", 4},
                               {"mask_round", true},
                               {"inpainting_fill", 1},
                               {"inpaint_full_res", false},
                               {"inpaint_full_res_padding", 32},
                               {"inpainting_mask_invert", 0}};
  auto [status, r] = s.post("/sdapi/v1/img2img", body);
  ASSERT_EQ(status, 200) << r.dump().substr(0, 500);
  GenerateOptions o = a1111_options("a red hat", 3, 21);
  o.init_image = diffuse::load_png(fixture("golden/img2img-init.png"));
  o.mask_image = diffuse::load_png(fixture("golden/inpaint-mask.png"));
  o.mask_blur = 4;
  o.strength = 0.75f;  // A1111's denoising_strength default
  const std::vector<uint8_t> masked = decode_b64_png(r["images"][0]).to_rgb8();
  EXPECT_EQ(masked, library_rgb8(o));
  const nlohmann::json info = nlohmann::json::parse(r["info"].get<std::string>());
  EXPECT_EQ(info["extra_generation_params"]["Mask blur"], 4);
  const std::string infotext = info["infotexts"][0];
  EXPECT_NE(infotext.find("Mask blur: 4"), std::string::npos) << infotext;
  EXPECT_TRUE(r["parameters"]["mask"].is_null());  // not echoed back

  // "Inpaint not masked" inverts the mask; mask_blur overrides the axes at their default.
  nlohmann::json invert = body;
  invert["inpainting_mask_invert"] = 1;
  invert["mask_blur"] = 2;
  auto [status2, r2] = s.post("/sdapi/v1/img2img", invert);
  ASSERT_EQ(status2, 200) << r2.dump().substr(0, 500);
  o.mask_image = inverted(*o.mask_image);
  o.mask_blur = 2;
  const std::vector<uint8_t> not_masked = decode_b64_png(r2["images"][0]).to_rgb8();
  EXPECT_EQ(not_masked, library_rgb8(o));
  EXPECT_NE(not_masked, masked);
}

TEST(a1111_inpainting, inpainting_fill_is_the_library_masked_content) {
  TestServer s;
  GenerateOptions o = a1111_options("a red hat", 3, 23);
  o.init_image = diffuse::load_png(fixture("golden/img2img-init.png"));
  o.mask_image = diffuse::load_png(fixture("golden/inpaint-mask.png"));
  o.mask_blur = 4;
  o.strength = 0.75f;
  const char* modes[] = {"fill", "original", "latent-noise", "latent-nothing"};
  for (int fill = 0; fill < 4; ++fill) {
    const nlohmann::json body = {{"prompt", "a red hat"},
                                 {"init_images", {b64_file(fixture("golden/img2img-init.png"))}},
                                 {"mask", b64_file(fixture("golden/inpaint-mask.png"))},
                                 {"steps", 3},
                                 {"seed", 23},
                                 {"width", 64},
                                 {"height", 64},
                                 {"inpainting_fill", fill}};
    auto [status, r] = s.post("/sdapi/v1/img2img", body);
    ASSERT_EQ(status, 200) << r.dump().substr(0, 300);
    o.masked_content = modes[fill];
    EXPECT_TRUE(decode_b64_png(r["images"][0]).to_rgb8() == library_rgb8(o)) << modes[fill];
  }
}

TEST(a1111_inpainting, only_masked_is_the_library_mask_crop) {
  TestServer s;
  const nlohmann::json body = {{"prompt", "a red hat"},
                               {"init_images", {b64_file(fixture("golden/img2img-init.png"))}},
                               {"mask", b64_file(fixture("golden/inpaint-mask.png"))},
                               {"steps", 2},
                               {"seed", 22},
                               {"width", 64},
                               {"height", 64},
                               {"mask_blur", 0},
                               {"inpaint_full_res", true},
                               {"inpaint_full_res_padding", 8}};
  auto [status, r] = s.post("/sdapi/v1/img2img", body);
  ASSERT_EQ(status, 200) << r.dump().substr(0, 500);
  GenerateOptions o = a1111_options("a red hat", 2, 22);
  o.init_image = diffuse::load_png(fixture("golden/img2img-init.png"));
  o.mask_image = diffuse::load_png(fixture("golden/inpaint-mask.png"));
  o.strength = 0.75f;
  o.mask_crop = 8;
  const Image out = decode_b64_png(r["images"][0]);
  EXPECT_EQ(out.width, o.init_image->width);  // the image's size, not width x height
  EXPECT_EQ(out.to_rgb8(), library_rgb8(o));
  const std::string infotext = nlohmann::json::parse(r["info"].get<std::string>())["infotexts"][0];
  EXPECT_NE(infotext.find("Inpaint area: Only masked, Masked area padding: 8"), std::string::npos)
      << infotext;
}

TEST(a1111_inpainting, mask_settings_diffuse_lacks_are_refused_naming_the_field) {
  TestServer s;
  const nlohmann::json body = {{"prompt", "x"},
                               {"init_images", {b64_file(fixture("golden/img2img-init.png"))}},
                               {"mask", b64_file(fixture("golden/inpaint-mask.png"))},
                               {"steps", 2},
                               {"width", 64},
                               {"height", 64}};
  const std::vector<std::tuple<std::string, nlohmann::json, std::vector<std::string>>> cases = {
      {"inpainting_fill", 4, {"inpainting_fill"}},
      {"inpaint_full_res", "yes", {"inpaint_full_res", "true or false"}},
      {"inpaint_full_res_padding", -4, {"inpaint_full_res_padding"}},
      {"mask_blur_y", 8, {"mask_blur_y = 8", "separate"}},
      {"inpainting_mask_invert", 2, {"inpainting_mask_invert"}},
      {"mask", "aGVsbG8=", {"mask", "PNG"}},
      {"mask", 5, {"mask"}},
  };
  for (const auto& [field, value, needles] : cases) {
    nlohmann::json b = body;
    b[field] = value;
    expect_422(s, "/sdapi/v1/img2img", b, needles);
  }
  nlohmann::json axes = body;  // an axis away from both mask_blur and its default
  axes["mask_blur"] = 6;
  axes["mask_blur_x"] = 2;
  expect_422(s, "/sdapi/v1/img2img", axes, {"mask_blur_x = 2", "mask_blur = 6"});

  // Without a mask these settings have no effect, as in A1111.
  nlohmann::json unmasked = body;
  unmasked.erase("mask");
  unmasked.update({{"inpainting_fill", 0},
                   {"inpaint_full_res", true},
                   {"mask_blur_x", 1},
                   {"mask_blur_y", 9},
                   {"inpainting_mask_invert", 1}});
  auto [code, r] = s.post("/sdapi/v1/img2img", unmasked);
  EXPECT_EQ(code, 200) << r.dump();
  unmasked["mask"] = "";
  auto [code2, r2] = s.post("/sdapi/v1/img2img", unmasked);
  EXPECT_EQ(code2, 200) << r2.dump();
}

TEST(a1111_lora, a_prompt_tag_applies_the_lora_as_the_library_does) {
  diffuse::serve::ServerConfig config;
  config.lora_dir = lora_dir();
  TestServer s(config);
  auto [ls, loras] = s.get("/sdapi/v1/loras");
  ASSERT_EQ(ls, 200);
  ASSERT_EQ(loras.size(), 1u) << loras.dump();
  EXPECT_EQ(loras[0]["name"], "peft");
  EXPECT_EQ(loras[0]["alias"], "peft");
  const std::string path = (fs::path(config.lora_dir) / "peft.safetensors").string();
  EXPECT_EQ(loras[0]["path"], path);
  EXPECT_EQ(loras[0]["metadata"], nlohmann::json::object());
  EXPECT_EQ(s.post("/sdapi/v1/refresh-loras", nlohmann::json::object()).first, 200);

  const nlohmann::json body = {{"prompt", "a cat <lora:peft:0.8>"},
                               {"negative_prompt", "blurry"},
                               {"steps", 3},
                               {"seed", 4},
                               {"width", 64},
                               {"height", 64}};
  auto [status, r] = s.post("/sdapi/v1/txt2img", body);
  ASSERT_EQ(status, 200) << r.dump();
  GenerateOptions o = a1111_options("a cat", 3, 4);
  o.negative_prompt = "blurry";
  o.loras = {{path, 0.8f}};
  const std::vector<uint8_t> with_lora = decode_b64_png(r["images"][0]).to_rgb8();
  EXPECT_EQ(with_lora, library_rgb8(o));
  o.loras.clear();
  const std::vector<uint8_t> without = library_rgb8(o);
  EXPECT_NE(with_lora, without);  // the LoRA changes the image
  // A1111 reports the prompt as sent.
  EXPECT_EQ(nlohmann::json::parse(r["info"].get<std::string>())["prompt"], body["prompt"]);

  // A tag in the negative prompt applies too, as in A1111.
  nlohmann::json negative = body;
  negative["prompt"] = "a cat";
  negative["negative_prompt"] = "blurry <lora:peft:0.8>";
  auto [status2, r2] = s.post("/sdapi/v1/txt2img", negative);
  ASSERT_EQ(status2, 200) << r2.dump();
  EXPECT_EQ(decode_b64_png(r2["images"][0]).to_rgb8(), with_lora);
  // disable_extra_networks removes the tags unused.
  nlohmann::json disabled = body;
  disabled["disable_extra_networks"] = true;
  auto [status3, r3] = s.post("/sdapi/v1/txt2img", disabled);
  ASSERT_EQ(status3, 200) << r3.dump();
  EXPECT_EQ(decode_b64_png(r3["images"][0]).to_rgb8(), without);

  // diffuse's job API: the same LoRA by the `loras` field.
  EXPECT_EQ(job_image(s, {{"prompt", "a cat"},
                          {"negative_prompt", "blurry"},
                          {"steps", 3},
                          {"seed", 4},
                          {"width", 64},
                          {"height", 64},
                          {"guidance_scale", 7},
                          {"scheduler", "euler"},
                          {"loras", {{{"name", "peft"}, {"scale", 0.8}}}}}),
            with_lora);
}

TEST(a1111_lora, unknown_and_unsafe_lora_names_are_refused_naming_tag_and_folder) {
  diffuse::serve::ServerConfig config;
  config.lora_dir = lora_dir();
  TestServer s(config);
  const nlohmann::json base = {{"steps", 1}, {"width", 64}, {"height", 64}};
  auto with_prompt = [&](const std::string& prompt) {
    nlohmann::json b = base;
    b["prompt"] = prompt;
    return b;
  };
  expect_422(s, "/sdapi/v1/txt2img", with_prompt("a <lora:missing:1>"),
             {"prompt: <lora:missing:1>", "no LoRA \"missing\"", config.lora_dir});
  expect_422(s, "/sdapi/v1/txt2img", with_prompt("<lora:../peft:1>"),
             {"<lora:../peft:1>", config.lora_dir, "without '/'"});
  expect_422(s, "/sdapi/v1/txt2img", with_prompt("<lora:sub/peft>"), {"<lora:sub/peft>"});
  expect_422(s, "/sdapi/v1/txt2img", with_prompt("<lora:README>"), {"no LoRA \"README\""});
  expect_422(s, "/sdapi/v1/txt2img", with_prompt("<lora:peft:0.5:1>"), {"separate"});
  nlohmann::json negative = with_prompt("x");
  negative["negative_prompt"] = "<lora:gone>";
  expect_422(s, "/sdapi/v1/txt2img", negative, {"negative_prompt: <lora:gone>"});
  expect_422(s, "/api/v1/jobs", with_prompt("<lora:missing>"), {"<lora:missing>"});
  nlohmann::json job = base;
  job["loras"] = {{{"name", "missing"}}};
  expect_422(s, "/api/v1/jobs", job, {"loras[0].name", "missing", config.lora_dir});
  job["loras"] = {{{"name", "peft"}, {"weight", 1}}};
  expect_422(s, "/api/v1/jobs", job, {"loras[0].weight"});
  job["loras"] = "peft";
  expect_422(s, "/api/v1/jobs", job, {"loras must be a list"});

  TestServer plain;  // no --lora-dir
  expect_422(plain, "/sdapi/v1/txt2img", with_prompt("<lora:peft>"), {"<lora:peft>", "--lora-dir"});
  EXPECT_EQ(plain.get("/sdapi/v1/loras").second, nlohmann::json::array());
}

TEST(a1111_controlnet, canny_module_is_the_library_preprocessor) {
  diffuse::serve::ServerConfig config;
  config.controlnet_dir = controlnet_dir();
  TestServer s(config);
  const nlohmann::json unit = {{"module", "canny"},
                               {"model", "tiny-controlnet"},
                               {"image", b64_file(fixture("golden/img2img-init.png"))},
                               {"threshold_a", 20},
                               {"threshold_b", 60},
                               {"processor_res", 512}};
  const nlohmann::json body = {
      {"prompt", "a house"}, {"steps", 2},
      {"seed", 7},           {"width", 64},
      {"height", 64},        {"alwayson_scripts", {{"controlnet", {{"args", {unit}}}}}}};
  auto [status, r] = s.post("/sdapi/v1/txt2img", body);
  ASSERT_EQ(status, 200) << r.dump().substr(0, 500);
  GenerateOptions o = a1111_options("a house", 2, 7);
  diffuse::ControlNetSpec spec{(fs::path(config.controlnet_dir) / "tiny-controlnet").string(),
                               diffuse::load_png(fixture("golden/img2img-init.png")), 1.f, 0.0,
                               1.0};
  spec.preprocessor = "canny";
  spec.low_threshold = 20.f;
  spec.high_threshold = 60.f;
  o.controlnets = {spec};
  EXPECT_EQ(decode_b64_png(r["images"][0]).to_rgb8(), library_rgb8(o));
}

TEST(a1111_controlnet, an_extension_unit_equals_the_library) {
  diffuse::serve::ServerConfig config;
  config.controlnet_dir = controlnet_dir();
  TestServer s(config);
  auto [ms, models] = s.get("/controlnet/model_list");
  ASSERT_EQ(ms, 200);
  EXPECT_EQ(models, (nlohmann::json{{"model_list", {"tiny-controlnet"}}}));
  EXPECT_EQ(s.get("/controlnet/module_list").second["module_list"],
            nlohmann::json({"none", "canny"}));

  const std::string control = b64_file(fixture("golden/img2img-init.png"));
  // A unit as the extension's clients send it: the model by its title with a hash, preprocessor
  // settings that do nothing without a preprocessor.
  const nlohmann::json unit = {{"enabled", true},
                               {"module", "none"},
                               {"model", "tiny-controlnet [0123abcd]"},
                               {"weight", 0.8},
                               {"image", control},
                               {"resize_mode", "Crop and Resize"},
                               {"low_vram", false},
                               {"processor_res", 512},
                               {"threshold_a", 64},
                               {"threshold_b", 64},
                               {"guidance_start", 0.0},
                               {"guidance_end", 0.75},
                               {"control_mode", "Balanced"},
                               {"pixel_perfect", false}};
  const nlohmann::json disabled = {{"enabled", false}, {"module", "canny"}, {"model", "None"}};
  nlohmann::json body = {
      {"prompt", "a house"}, {"steps", 3},
      {"seed", 6},           {"width", 64},
      {"height", 64},        {"alwayson_scripts", {{"controlnet", {{"args", {unit, disabled}}}}}}};
  auto [status, r] = s.post("/sdapi/v1/txt2img", body);
  ASSERT_EQ(status, 200) << r.dump().substr(0, 500);
  GenerateOptions o = a1111_options("a house", 3, 6);
  o.controlnets = {{(fs::path(config.controlnet_dir) / "tiny-controlnet").string(),
                    diffuse::load_png(fixture("golden/img2img-init.png")), 0.8f, 0.0, 0.75}};
  const std::vector<uint8_t> balanced = decode_b64_png(r["images"][0]).to_rgb8();
  EXPECT_EQ(balanced, library_rgb8(o));
  EXPECT_TRUE(r["parameters"]["alwayson_scripts"]["controlnet"]["args"][0]["image"].is_null());

  // "ControlNet is more important" is diffusers' guess mode; the script name in any case, the
  // extension's older input_image field.
  nlohmann::json guess_unit = unit;
  guess_unit.erase("image");
  guess_unit["input_image"] = control;
  guess_unit["control_mode"] = 2;
  body["alwayson_scripts"] = {{"ControlNet", {{"args", {guess_unit}}}}};
  auto [status2, r2] = s.post("/sdapi/v1/txt2img", body);
  ASSERT_EQ(status2, 200) << r2.dump().substr(0, 500);
  o.control_guess_mode = true;
  const std::vector<uint8_t> guess = decode_b64_png(r2["images"][0]).to_rgb8();
  EXPECT_EQ(guess, library_rgb8(o));
  EXPECT_NE(guess, balanced);
}

TEST(a1111_controlnet, what_the_extension_does_and_diffuse_does_not_is_refused) {
  diffuse::serve::ServerConfig config;
  config.controlnet_dir = controlnet_dir();
  TestServer s(config);
  const std::string control = b64_file(fixture("golden/img2img-init.png"));
  const nlohmann::json unit = {
      {"model", "tiny-controlnet"}, {"image", control}, {"module", "none"}};
  auto body_with = [&](const nlohmann::json& changes) {
    nlohmann::json u = unit;
    if (changes.is_object()) u.update(changes);
    return nlohmann::json{{"prompt", "x"},
                          {"steps", 1},
                          {"width", 64},
                          {"height", 64},
                          {"alwayson_scripts", {{"controlnet", {{"args", {u}}}}}}};
  };
  const std::string at = "alwayson_scripts.controlnet.args[0].";
  const std::string path = "/sdapi/v1/txt2img";
  expect_422(s, path, body_with({{"module", "depth_midas"}}),
             {at + "module", "depth_midas", "preprocessed map"});
  expect_422(s, path, body_with({{"module", "canny"}, {"threshold_a", 20000}}),
             {at + "threshold_a"});
  expect_422(s, path, body_with({{"control_mode", 1}}), {at + "control_mode", "not supported"});
  expect_422(s, path, body_with({{"control_mode", "My prompt is more important"}}),
             {at + "control_mode"});
  expect_422(s, path, body_with({{"control_mode", 7}}), {at + "control_mode"});
  expect_422(s, path, body_with({{"model", "nope [12345678]"}}),
             {at + "model", "no ControlNet \"nope [12345678]\"", config.controlnet_dir});
  expect_422(s, path, body_with({{"model", "../tiny-controlnet"}}), {at + "model", "'/'"});
  expect_422(s, path, body_with({{"model", "None"}}), {at + "model", "required"});
  expect_422(s, path, body_with({{"image", nullptr}}), {at + "image", "required"});
  expect_422(s, path, body_with({{"weight", 3}}), {at + "weight"});
  expect_422(s, path, body_with({{"guidance_start", 0.5}, {"guidance_end", 0.5}}),
             {at + "guidance_start"});
  expect_422(s, path, body_with({{"mask", control}}), {at + "mask"});
  expect_422(s, path, body_with({{"image", {{"image", control}, {"mask", control}}}}),
             {at + "image.mask"});
  // The output's aspect differs from the 96x64 control image's: only "Just Resize" stretches.
  const std::string wide = b64_file(diffuse::test::reference("inputs/control-96x64.png"));
  expect_422(s, path, body_with({{"image", wide}}), {at + "resize_mode", "Just Resize"});
  expect_422(s, path, body_with({{"image", wide}, {"resize_mode", 2}}), {at + "resize_mode"});
  EXPECT_EQ(s.post(path, body_with({{"image", wide}, {"resize_mode", "Just Resize"}})).first, 200);
  // Units must agree on guess mode.
  nlohmann::json mixed = body_with({});
  nlohmann::json second = unit;
  second["control_mode"] = "ControlNet is more important";
  mixed["alwayson_scripts"]["controlnet"]["args"].push_back(second);
  expect_422(s, path, mixed, {"alwayson_scripts.controlnet.args[1].control_mode", "same"});
  // Other scripts, and ControlNet with img2img.
  nlohmann::json other = body_with({});
  other["alwayson_scripts"]["ADetailer"] = {{"args", nlohmann::json::array()}};
  expect_422(s, path, other, {"alwayson_scripts.ADetailer"});
  // img2img with a unit: its image, or without one the init image (as the extension).
  nlohmann::json img2img = body_with({});
  img2img["init_images"] = {control};
  img2img["steps"] = 2;
  img2img["seed"] = 5;
  auto [with_image, r1] = s.post("/sdapi/v1/img2img", img2img);
  ASSERT_EQ(with_image, 200) << r1.dump().substr(0, 300);
  img2img["alwayson_scripts"]["controlnet"]["args"][0].erase("image");
  auto [without_image, r2] = s.post("/sdapi/v1/img2img", img2img);
  ASSERT_EQ(without_image, 200) << r2.dump().substr(0, 300);
  // The control image was the init image.
  EXPECT_TRUE(r1["images"][0] == r2["images"][0]) << "the images differ";
  img2img.erase("init_images");
  expect_422(s, path, img2img, {at + "image"});

  TestServer plain;  // no --controlnet-dir
  expect_422(plain, path, body_with({}), {at + "model", "--controlnet-dir"});
  EXPECT_EQ(plain.get("/controlnet/model_list").second["model_list"], nlohmann::json::array());
}

TEST(jobs_api, inpainting_loras_and_controlnets_as_the_library) {
  diffuse::serve::ServerConfig config;
  config.lora_dir = lora_dir();
  config.controlnet_dir = controlnet_dir();
  TestServer s(config);
  const std::string init = b64_file(fixture("golden/img2img-init.png"));
  const std::string mask = b64_file(fixture("golden/inpaint-mask.png"));
  GenerateOptions o;
  o.prompt = "a red hat";
  o.steps = 3;
  o.seed = 9;
  o.width = o.height = 64;
  o.scheduler = "ddim";
  o.init_image = diffuse::load_png(fixture("golden/img2img-init.png"));
  o.mask_image = diffuse::load_png(fixture("golden/inpaint-mask.png"));
  o.mask_blur = 3;  // strength unset: 1.0 for inpainting
  const nlohmann::json inpaint = {
      {"prompt", "a red hat"}, {"init_image", init}, {"mask_image", mask},
      {"mask_blur", 3},        {"steps", 3},         {"seed", 9},
      {"width", 64},           {"height", 64},       {"scheduler", "ddim"}};
  EXPECT_EQ(job_image(s, inpaint), library_rgb8(o));

  GenerateOptions c;
  c.prompt = "a house";
  c.steps = 3;
  c.seed = 10;
  c.width = c.height = 64;
  c.scheduler = "euler";
  c.loras = {{(fs::path(config.lora_dir) / "peft.safetensors").string(), 0.5f}};
  c.controlnets = {{(fs::path(config.controlnet_dir) / "tiny-controlnet").string(),
                    diffuse::load_png(fixture("golden/img2img-init.png")), 0.7f, 0.0, 0.8}};
  c.control_guess_mode = true;
  const nlohmann::json controlled = {
      {"prompt", "a house <lora:peft:0.5>"},
      {"steps", 3},
      {"seed", 10},
      {"width", 64},
      {"height", 64},
      {"scheduler", "euler"},
      {"controlnets",
       {{{"model", "tiny-controlnet"}, {"image", init}, {"scale", 0.7}, {"end", 0.8}}}},
      {"control_guess_mode", true}};
  auto [status, created] = s.post("/api/v1/jobs", controlled);
  ASSERT_EQ(status, 202) << created.dump();
  const nlohmann::json job = wait_for_job(s, created["id"]);
  ASSERT_EQ(job.value("status", ""), "done") << job.dump().substr(0, 500);
  EXPECT_EQ(decode_b64_png(job["images"][0]["png_base64"]).to_rgb8(), library_rgb8(c));
  EXPECT_FALSE(job["request"]["controlnets"][0].contains("image"));  // not echoed back

  const std::string path = "/api/v1/jobs";
  expect_422(s, path, {{"mask_image", mask}}, {"mask_image needs init_image"});
  expect_422(s, path, {{"init_image", init}, {"mask_blur", 2}}, {"mask_blur needs mask_image"});
  expect_422(s, path, {{"init_image", init}, {"mask_image", "aGVsbG8="}}, {"mask_image", "PNG"});
  nlohmann::json bad = controlled;
  bad["controlnets"][0]["model"] = "nope";
  expect_422(s, path, bad, {"controlnets[0].model", "nope", config.controlnet_dir});
  bad = controlled;
  bad["controlnets"][0]["start"] = 0.9;
  expect_422(s, path, bad, {"controlnets[0].start"});
  bad = controlled;
  bad["controlnets"][0].erase("image");
  expect_422(s, path, bad, {"controlnets[0].image"});
  bad = controlled;
  bad["controlnets"][0]["weight"] = 1;
  expect_422(s, path, bad, {"controlnets[0].weight"});
  bad = controlled;
  bad["controlnets"][0]["preprocessor"] = "hed";
  expect_422(s, path, bad, {"controlnets[0].preprocessor", "hed"});
  expect_422(s, path, {{"control_guess_mode", true}}, {"control_guess_mode needs controlnets"});
  expect_422(s, path, {{"init_image", init}, {"mask_crop", 4}}, {"mask_crop needs mask_image"});

  // A photo with the canny preprocessor, and only-masked inpainting.
  GenerateOptions e = c;
  e.loras.clear();
  e.control_guess_mode = false;
  e.controlnets[0].preprocessor = "canny";
  e.controlnets[0].low_threshold = 20.f;
  e.controlnets[0].high_threshold = 60.f;
  nlohmann::json edges = controlled;
  edges["prompt"] = "a house";
  edges.erase("control_guess_mode");
  edges["controlnets"][0].update(
      {{"preprocessor", "canny"}, {"low_threshold", 20}, {"high_threshold", 60}});
  EXPECT_EQ(job_image(s, edges), library_rgb8(e));
  GenerateOptions m = o;
  m.mask_blur = 0;
  m.mask_crop = 6;
  nlohmann::json only_masked = inpaint;
  only_masked.erase("mask_blur");
  only_masked["mask_crop"] = 6;
  EXPECT_EQ(job_image(s, only_masked), library_rgb8(m));
}

}  // namespace

TEST(a1111_hires, enable_hr_equals_the_library_hires_fix) {
  TestServer s;
  const nlohmann::json body = {{"prompt", "a cat"},
                               {"steps", 3},
                               {"seed", 8},
                               {"width", 64},
                               {"height", 64},
                               {"sampler_name", "Euler"},
                               {"enable_hr", true},
                               {"hr_scale", 1.5},
                               {"hr_upscaler", "Latent"},
                               {"hr_second_pass_steps", 2},
                               {"denoising_strength", 0.6}};
  auto [status, r] = s.post("/sdapi/v1/txt2img", body);
  ASSERT_EQ(status, 200) << r.dump();
  const diffuse::Image image = decode_b64_png(r["images"][0]);
  EXPECT_EQ(image.width, 96);
  GenerateOptions o = a1111_options("a cat", 3, 8);
  o.hires = diffuse::HiresFix{1.5f, 2, 0.6f, "latent-bilinear"};
  EXPECT_EQ(image.to_rgb8(), library_rgb8(o));
  nlohmann::json bad = body;
  bad["hr_upscaler"] = "R-ESRGAN 4x+";
  auto [code, err] = s.post("/sdapi/v1/txt2img", bad);
  EXPECT_EQ(code, 422);
  EXPECT_NE(err["detail"].get<std::string>().find("hr_upscaler"), std::string::npos) << err.dump();
}
