// diffuse generate: text-to-image and image-to-image from the command line.
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>
#include <random>

#include "commands.h"
#include "diffuse/diffuse.hpp"
#include "hub/hub_cache.h"
#include "serve/http_error.h"
#include "serve/prompt_loras.h"
#include "stop_signals.h"

namespace fs = std::filesystem;

namespace diffuse::cli {

namespace {

std::atomic<bool> g_interrupted{false};

struct GenerateArgs {
  std::string model, config_dir, prompt, negative_prompt, scheduler, timestep_spacing, image,
      rng = "torch";
  std::string output = "output.png";
  std::string original_size, target_size, crop_coords, negative_original_size;
  std::string refiner, prompt_syntax = "plain";
  float high_noise_frac = 0.8f, aesthetic_score = 6.f, negative_aesthetic_score = 2.5f;
  int steps = 50, width = 0, height = 0, image_count = 1, clip_skip = 0;
  LoadOptions load;
  int mask_blur = 0, vae_tile_size = 0, mask_crop = -1;
  std::string mask, vae_tiling = "auto";
  std::vector<std::string> loras, embeddings;
  std::string embeddings_dir, lora_dir, masked_content = "original";
  float hires_scale = 2.f, hires_strength = 0.7f;
  int hires_steps = 0;
  std::string hires_upscaler = "latent";
  // --controlnet k pairs with the k-th --control-image, --control-scale, --control-start/-end.
  std::vector<std::string> controlnets, control_images, control_preprocess;
  std::vector<float> control_scales;
  std::vector<double> control_starts, control_ends;
  bool control_guess_mode = false;
  float guidance = 7.5f, strength = 0.8f;
  double eta = 0;
  uint64_t seed = 0;
  bool karras = false, json = false;
};

std::string output_name(const std::string& output, int i, int count) {
  if (count == 1) return output;
  const fs::path p(output);
  return (p.parent_path() / (p.stem().string() + "-" + std::to_string(i) + p.extension().string()))
      .string();
}

class ProgressPrinter {
 public:
  explicit ProgressPrinter(bool quiet) : quiet_(quiet), tty_(isatty(STDERR_FILENO) != 0) {}
  bool operator()(const Progress& p) {
    if (g_interrupted) return false;
    if (quiet_) return true;
    const double per = p.elapsed_s / p.step;
    const double eta = per * (p.total_steps - p.step);
    char line[160];
    if (tty_) {
      constexpr int kWidth = 30;
      const int filled = p.step * kWidth / p.total_steps;
      std::snprintf(line, sizeof line, "\r[%-*s] %d/%d  %.2f s/it  ETA %.1f s ", kWidth,
                    std::string(static_cast<size_t>(filled), '#').c_str(), p.step, p.total_steps,
                    per, eta);
      std::cerr << line << (p.step == p.total_steps ? "\n" : "") << std::flush;
    } else {
      std::snprintf(line, sizeof line, "step %d/%d  %.2f s/it  ETA %.1f s", p.step, p.total_steps,
                    per, eta);
      std::cerr << line << "\n";
    }
    return true;
  }

 private:
  bool quiet_, tty_;
};

// "WxH" (as --width/--height and A1111 write sizes) -> diffusers' (height, width).
SizeHW parse_size(const std::string& flag, const std::string& text) {
  int w = 0, h = 0;
  char x = 0, extra = 0;
  if (std::sscanf(text.c_str(), "%d%c%d%c", &w, &x, &h, &extra) != 3 || (x != 'x' && x != 'X'))
    throw ConfigError(flag + " \"" + text + "\": expected WIDTHxHEIGHT, e.g. 1024x1024");
  return SizeHW{h, w};
}

// "TOP,LEFT", in diffusers' crops_coords_top_left order.
CropTopLeft parse_crop(const std::string& flag, const std::string& text) {
  int top = 0, left = 0;
  char comma = 0, extra = 0;
  if (std::sscanf(text.c_str(), "%d%c%d%c", &top, &comma, &left, &extra) != 3 || comma != ',')
    throw ConfigError(flag + " \"" + text + "\": expected TOP,LEFT, e.g. 0,0");
  return CropTopLeft{top, left};
}

/// --lora FILE[:SCALE]: the scale is what follows the last ':' when it reads as a number.
LoraSpec parse_lora(const std::string& arg) {
  LoraSpec spec{arg, 1.f};
  const size_t colon = arg.rfind(':');
  if (colon != std::string::npos && colon + 1 < arg.size()) {
    const std::string tail = arg.substr(colon + 1);
    char* end = nullptr;
    const float scale = std::strtof(tail.c_str(), &end);
    if (end && *end == '\0') spec = LoraSpec{arg.substr(0, colon), scale};
  }
  if (spec.path.empty()) throw ConfigError("--lora " + arg + ": expected FILE[:SCALE]");
  return spec;
}

/// The k-th value of a repeatable per-ControlNet option: one value applies to all, none is the
/// default, otherwise there must be one per --controlnet.
template <typename T>
T per_controlnet(const std::vector<T>& values, size_t k, size_t count, T fallback,
                 const char* flag) {
  if (values.empty()) return fallback;
  if (values.size() == 1) return values[0];
  if (values.size() != count)
    throw ConfigError(std::string(flag) + " is given " + std::to_string(values.size()) +
                      " times for " + std::to_string(count) +
                      " --controlnet (give it once for all, or once per --controlnet)");
  return values[k];
}

/// --control-preprocess none|canny[:LOW:HIGH] into `spec`.
void set_preprocessor(const std::string& arg, ControlNetSpec& spec) {
  const size_t colon = arg.find(':');
  spec.preprocessor = arg.substr(0, colon);
  if (spec.preprocessor != "none" && spec.preprocessor != "canny")
    throw ConfigError("--control-preprocess " + arg + ": expected none or canny[:LOW:HIGH]");
  if (colon == std::string::npos) return;
  const std::string rest = arg.substr(colon + 1);
  const size_t second = rest.find(':');
  try {
    if (spec.preprocessor != "canny" || second == std::string::npos)
      throw std::invalid_argument("");
    size_t used = 0, used2 = 0;
    spec.low_threshold = std::stof(rest.substr(0, second), &used);
    spec.high_threshold = std::stof(rest.substr(second + 1), &used2);
    if (used != second || used2 != rest.size() - second - 1) throw std::invalid_argument("");
  } catch (const std::exception&) {
    throw ConfigError("--control-preprocess " + arg +
                      ": expected canny:LOW:HIGH with two numbers (e.g. canny:100:200)");
  }
}

void set_controlnets(const GenerateArgs& a, GenerateOptions& o) {
  const size_t n = a.controlnets.size();
  if (n == 0) {
    if (!a.control_images.empty() || !a.control_scales.empty() || !a.control_starts.empty() ||
        !a.control_ends.empty() || a.control_guess_mode || !a.control_preprocess.empty())
      throw ConfigError(
          "--control-image/--control-scale/--control-start/--control-end/"
          "--control-preprocess/--control-guess-mode need --controlnet");
    return;
  }
  if (a.control_images.size() != n)
    throw ConfigError("each --controlnet needs its --control-image (" + std::to_string(n) +
                      " --controlnet, " + std::to_string(a.control_images.size()) +
                      " --control-image)");
  for (size_t k = 0; k < n; ++k) {
    ControlNetSpec spec{a.controlnets[k], load_png(a.control_images[k]),
                        per_controlnet(a.control_scales, k, n, 1.f, "--control-scale"),
                        per_controlnet(a.control_starts, k, n, 0.0, "--control-start"),
                        per_controlnet(a.control_ends, k, n, 1.0, "--control-end")};
    set_preprocessor(
        per_controlnet(a.control_preprocess, k, n, std::string("none"), "--control-preprocess"),
        spec);
    o.controlnets.push_back(std::move(spec));
  }
  o.control_guess_mode = a.control_guess_mode;
}

/// With --lora-dir: A1111's <lora:NAME:WEIGHT> tags are taken out of the prompts and NAME is
/// DIR/NAME.safetensors (the server's parser; its refusals become ConfigErrors).
void apply_prompt_lora_tags(const std::string& dir, GenerateOptions& o) {
  if (dir.empty()) return;
  if (!std::filesystem::is_directory(dir)) throw FileError(dir + ": --lora-dir is not a folder");
  const auto take = [&](std::string& prompt, const char* field) {
    serve::PromptTags tags;
    try {
      tags = serve::parse_prompt_tags(prompt, field);
    } catch (const serve::HttpError& e) {
      throw ConfigError(e.what());
    }
    prompt = tags.text;
    for (const serve::LoraTag& t : tags.loras) {
      const std::filesystem::path file = std::filesystem::path(dir) / (t.name + ".safetensors");
      if (t.name.find('/') != std::string::npos || t.name.find("..") != std::string::npos ||
          !std::filesystem::is_regular_file(file))
        throw FileError(std::string(field) + ": " + t.tag + ": no " + file.string());
      o.loras.push_back({file.string(), t.scale});
    }
  };
  take(o.prompt, "--prompt");
  if (o.negative_prompt) take(*o.negative_prompt, "--negative-prompt");
}

void set_size_conditions(const GenerateArgs& a, const CLI::App& cmd, GenerateOptions& o) {
  if (cmd.count("--original-size"))
    o.original_size = parse_size("--original-size", a.original_size);
  if (cmd.count("--target-size")) o.target_size = parse_size("--target-size", a.target_size);
  if (cmd.count("--crop-coords")) o.crop_coords = parse_crop("--crop-coords", a.crop_coords);
  if (cmd.count("--negative-original-size"))
    o.negative_original_size = parse_size("--negative-original-size", a.negative_original_size);
  if (cmd.count("--aesthetic-score")) o.aesthetic_score = a.aesthetic_score;
  if (cmd.count("--negative-aesthetic-score"))
    o.negative_aesthetic_score = a.negative_aesthetic_score;
}

/// --refiner (a folder, or a pulled org/name as --model) and where it takes over.
void set_refiner(const GenerateArgs& a, const CLI::App& cmd, GenerateOptions& o) {
  if (a.refiner.empty()) {
    if (cmd.count("--high-noise-frac")) throw ConfigError("--high-noise-frac needs --refiner");
    return;
  }
  o.refiner = a.refiner;
  if (auto cached = hub::resolve_cached_model(a.refiner, hub_options_from_environment()))
    o.refiner = *cached;
  o.high_noise_frac = a.high_noise_frac;
}

int run_generate(const GenerateArgs& a, const CLI::App& cmd) {
  if (cmd.count("--strength") && a.image.empty()) throw ConfigError("--strength needs --image");
  if (!a.mask.empty() && a.image.empty())
    throw ConfigError("--mask needs --image (the image to inpaint)");
  if (cmd.count("--mask-blur") && a.mask.empty()) throw ConfigError("--mask-blur needs --mask");
  if (cmd.count("--mask-crop") && a.mask.empty()) throw ConfigError("--mask-crop needs --mask");
  if (cmd.count("--masked-content") && a.mask.empty())
    throw ConfigError("--masked-content needs --mask");
  GenerateOptions o;
  if (!a.image.empty()) {
    o.init_image = load_png(a.image);
    // Unset, the library picks diffusers' default (0.8 img2img, 1.0 inpainting).
    if (cmd.count("--strength")) o.strength = a.strength;
  }
  o.vae_tiling = a.vae_tiling;
  o.vae_tile_size = a.vae_tile_size;
  if (!a.mask.empty()) {
    o.mask_image = load_png(a.mask);
    o.mask_blur = a.mask_blur;
    if (cmd.count("--mask-crop")) o.mask_crop = a.mask_crop;
    o.masked_content = a.masked_content;
  }
  for (const std::string& l : a.loras) o.loras.push_back(parse_lora(l));
  o.embeddings = a.embeddings;
  if (!a.embeddings_dir.empty()) {
    if (!std::filesystem::is_directory(a.embeddings_dir))
      throw FileError(a.embeddings_dir + ": --embeddings-dir is not a folder");
    // A1111 makes every embedding of its folder available; sorted for a stable token order.
    std::vector<std::string> found;
    for (const auto& e : std::filesystem::directory_iterator(a.embeddings_dir))
      if (e.is_regular_file() && (e.path().extension() == ".safetensors" ||
                                  e.path().extension() == ".pt" || e.path().extension() == ".bin"))
        found.push_back(e.path().string());
    std::sort(found.begin(), found.end());
    o.embeddings.insert(o.embeddings.end(), found.begin(), found.end());
  }
  set_controlnets(a, o);
  if (cmd.count("--hires-scale")) {
    o.hires = HiresFix{a.hires_scale, a.hires_steps, a.hires_strength, a.hires_upscaler};
  } else if (cmd.count("--hires-steps") || cmd.count("--hires-strength") ||
             cmd.count("--hires-upscaler")) {
    throw ConfigError("--hires-steps/--hires-strength/--hires-upscaler need --hires-scale");
  }
  o.prompt = a.prompt;
  o.prompt_syntax = a.prompt_syntax;
  // An explicit --negative-prompt "" differs from none for SDXL (force_zeros_for_empty_prompt).
  if (cmd.count("--negative-prompt")) o.negative_prompt = a.negative_prompt;
  apply_prompt_lora_tags(a.lora_dir, o);
  o.steps = a.steps;
  o.guidance_scale = a.guidance;
  o.scheduler = a.scheduler;
  if (cmd.count("--karras")) o.karras_sigmas = a.karras;
  o.timestep_spacing = a.timestep_spacing;
  if (cmd.count("--eta")) o.eta = a.eta;
  o.width = a.width;
  o.height = a.height;
  o.image_count = a.image_count;
  o.rng = a.rng;
  o.clip_skip = a.clip_skip;
  set_size_conditions(a, cmd, o);
  set_refiner(a, cmd, o);
  if (cmd.count("--seed")) {
    o.seed = a.seed;
  } else {
    o.seed = std::random_device{}();
  }

  std::string model_dir = a.model, hub_name;
  // org/name: the snapshot `diffuse pull` put in the Hugging Face cache (a local path wins); the
  // PNG names it "name", as the folder of a clone of the repository.
  if (auto cached = hub::resolve_cached_model(model_dir, hub_options_from_environment())) {
    model_dir = *cached;
    hub_name = hub::parse_repo_reference(a.model)->name();
  }
  if (model_dir.empty()) {
    model_dir = demo_model_dir(true);
    std::cerr << "No --model given: using the built-in demo model (random weights, its images are "
                 "noise).\n"
                 "For real images pass --model <diffusers folder>, e.g. a download of "
                 "stable-diffusion-v1-5.\n";
  }
  LoadOptions lo = a.load;
  lo.config_dir = a.config_dir;
  lo.assets_dir = assets_dir();
  auto pipe = load_pipeline(model_dir, lo, backend_flag(cmd));
  if (!a.json) std::cerr << "seed: " << o.seed << "\n";
  ProgressPrinter printer(a.json);
  GenerationResult r;
  {
    // Ctrl-C (or SIGTERM) stops within one step; a second one kills at once.
    StopScope stop_on_signal([](int) { g_interrupted = true; });
    r = pipe->generate(o, [&](const Progress& p) { return printer(p); });
  }
  if (!hub_name.empty()) r.model_name = hub_name;
  print_warnings(r.warnings);

  std::vector<std::string> files;
  for (size_t i = 0; i < r.images.size(); ++i) {
    files.push_back(output_name(a.output, static_cast<int>(i), static_cast<int>(r.images.size())));
    save_png(files.back(), r.images[i], r.parameters_text(i));
  }
  if (a.json) {
    nlohmann::json j;
    j["outputs"] = files;
    j["seed"] = r.seed;
    j["scheduler"] = r.scheduler_class;
    j["sampler"] = r.sampler_name;
    j["width"] = r.options.width;
    j["height"] = r.options.height;
    j["steps"] = r.options.steps;
    j["backend"] = r.backend;
    j["warnings"] = r.warnings;
    j["seconds"] = {{"load", r.times.load_s},
                    {"text_encoder", r.times.text_encoder_s},
                    {"denoise", r.times.denoise_s},
                    {"vae", r.times.vae_s},
                    {"total", r.times.total_s}};
    j["peak_memory_bytes"] = process_peak_rss_bytes();
    j["peak_activation_bytes"] = r.peak_activation_bytes;
    std::cout << j.dump(2) << "\n";
  } else {
    for (const auto& f : files) std::cout << f << "\n";
    std::fprintf(stderr, "text %.2f s, denoise %.2f s, decode %.2f s, peak memory %.0f MiB\n",
                 r.times.text_encoder_s, r.times.denoise_s, r.times.vae_s,
                 double(process_peak_rss_bytes()) / (1 << 20));
  }
  return 0;
}

}  // namespace

Command add_generate(CLI::App& app) {
  auto a = std::make_shared<GenerateArgs>();
  CLI::App* c = app.add_subcommand("generate",
                                   "Generate images from a prompt (and optionally an init image)");
  c->add_option("--model,-m", a->model,
                "diffusers model folder, a single-file checkpoint (.safetensors/.ckpt, original "
                "SD layout), or org/name pulled with `diffuse pull` (default: the built-in demo "
                "model)");
  c->add_option("--config-dir", a->config_dir,
                "for a single-file checkpoint: diffusers folder whose configs describe it "
                "(default: bundled SD 1.5, or SD 2.1 768-v for SD 2.x checkpoints)");
  c->add_option("--prompt,-p", a->prompt, "what to draw");
  c->add_option("--negative-prompt,-n", a->negative_prompt, "what to avoid");
  c->add_option("--prompt-syntax", a->prompt_syntax,
                "plain (diffusers: as written, 77 tokens) or a1111 ((word:1.2) emphasis, BREAK, "
                "prompts of any length, as AUTOMATIC1111's web UI)")
      ->capture_default_str();
  c->add_option("--steps", a->steps, "denoising steps")->capture_default_str();
  c->add_option("--guidance-scale,--cfg", a->guidance, "classifier-free guidance (<= 1 disables)")
      ->capture_default_str();
  c->add_option("--seed", a->seed, "random seed (random when absent, and printed)");
  c->add_option("--scheduler,--sampler", a->scheduler,
                "sampler: pndm, ddim, ddpm, euler, euler-a, lms, heun, kdpm2, kdpm2-a, dpmpp-2m, "
                "dpmpp-2m-karras, dpmpp-2m-sde, unipc, lcm, ... or a diffusers class name");
  c->add_flag("--karras,!--no-karras", a->karras, "use Karras sigmas");
  c->add_option("--timestep-spacing", a->timestep_spacing, "linspace, leading or trailing");
  c->add_option("--eta", a->eta, "DDIM eta (0 = deterministic)");
  c->add_option("--width,-W", a->width, "image width (multiple of 8; default: the model's)");
  c->add_option("--height,-H", a->height, "image height (multiple of 8; default: the model's)");
  c->add_option("--image-count,--batch", a->image_count, "images per prompt")
      ->capture_default_str();
  c->add_option("--image,-i", a->image, "init image (PNG) for image-to-image");
  c->add_option("--strength", a->strength,
                "fraction of the schedule re-noised, (0, 1] (default 0.8, SDXL 0.3; 1.0 with "
                "--mask)");
  c->add_option("--vae-tiling", a->vae_tiling,
                "decode in overlapping tiles (diffusers' enable_tiling): auto (only when the image "
                "would need more than ~4 GiB to decode whole), on, off")
      ->capture_default_str();
  c->add_option("--vae-tile-size", a->vae_tile_size,
                "VAE tile side in pixels, a multiple of 32 (default: the VAE's sample_size, 512 "
                "for SD 1.5)");
  c->add_option("--mask", a->mask,
                "inpainting mask (PNG, white = repaint) for --image; any size, resized");
  c->add_option("--mask-blur", a->mask_blur, "blur the mask by N pixels first (0 = off)")
      ->capture_default_str();
  c->add_option("--mask-crop", a->mask_crop,
                "inpaint only the region around the mask, with PAD pixels of context (diffusers' "
                "padding_mask_crop, A1111's \"only masked\"): generated at -W x -H and laid back "
                "into the image, which keeps its size; the mask must have the image's size")
      ->option_text("PAD");
  c->add_option("--masked-content", a->masked_content,
                "what the masked region starts from below --strength 1 (A1111's masked "
                "content): original, fill (colours from around it), latent-noise, latent-nothing")
      ->check(CLI::IsMember({"original", "fill", "latent-noise", "latent-nothing"}))
      ->capture_default_str();
  c->add_option("--lora", a->loras,
                "LoRA FILE[:SCALE] (kohya/A1111 or diffusers .safetensors; scale 1 by default); "
                "repeat for several");
  c->add_option("--lora-dir", a->lora_dir,
                "folder of LoRAs for A1111's <lora:NAME:WEIGHT> tags in the prompts "
                "(NAME.safetensors; without it tags stay plain text)");
  c->add_option("--embedding", a->embeddings,
                "textual-inversion embedding (.safetensors/.pt/.bin, diffusers or A1111 layout; "
                "SDXL: clip_l + clip_g); write its token (diffusers: the stored name, A1111: the "
                "file name) in the prompt");
  c->add_option("--embeddings-dir", a->embeddings_dir,
                "folder whose .safetensors/.pt/.bin embeddings are all available (A1111's "
                "embeddings/)");
  c->add_option("--hires-scale", a->hires_scale,
                "hires fix (A1111's enable_hr): generate at -W x -H, upscale by this factor, "
                "refine with img2img");
  c->add_option("--hires-steps", a->hires_steps, "hires fix: second-pass steps (0 = --steps)")
      ->capture_default_str();
  c->add_option("--hires-strength", a->hires_strength, "hires fix: second-pass strength")
      ->capture_default_str();
  c->add_option("--hires-upscaler", a->hires_upscaler,
                "hires fix: latent (nearest), latent-bilinear or lanczos")
      ->capture_default_str();
  c->add_option("--controlnet", a->controlnets,
                "ControlNet folder or single file (control_*.safetensors); repeat for several, "
                "each with its --control-image");
  c->add_option("--control-image", a->control_images,
                "control image (PNG: edges, depth, pose, ... already preprocessed, or a photo "
                "with --control-preprocess) for the matching --controlnet");
  c->add_option("--control-preprocess", a->control_preprocess,
                "make the control map from the control image first: none (default) or "
                "canny[:LOW:HIGH] (OpenCV's Canny edges, thresholds 100 and 200 unless given); "
                "once for all or per --controlnet");
  c->add_option("--control-scale", a->control_scales,
                "ControlNet conditioning scale (default 1; once for all or per --controlnet)");
  c->add_option("--control-start", a->control_starts,
                "fraction of the steps after which the ControlNet starts acting (default 0)");
  c->add_option("--control-end", a->control_ends,
                "fraction of the steps after which it stops (default 1)");
  c->add_flag("--control-guess-mode", a->control_guess_mode,
              "ControlNet guess mode: control only the conditional half, ramped per level");
  c->add_option("--rng", a->rng, "random source: torch, numpy or philox")->capture_default_str();
  c->add_option("--clip-skip", a->clip_skip, "skip the last N CLIP layers (0 = none)")
      ->capture_default_str();
  c->add_option("--original-size", a->original_size,
                "SDXL: original size WxH conditioning the image (default: the image size)");
  c->add_option("--target-size", a->target_size,
                "SDXL: target size WxH conditioning the image (default: the image size)");
  c->add_option("--crop-coords", a->crop_coords,
                "SDXL: crop top-left TOP,LEFT conditioning the image (default: 0,0)");
  c->add_option("--negative-original-size", a->negative_original_size,
                "SDXL: original size WxH for the negative (unconditional) half");
  c->add_option("--refiner", a->refiner,
                "SDXL: refiner folder (or pulled org/name) that finishes the base model's "
                "denoising (ensemble of experts)");
  c->add_option("--high-noise-frac", a->high_noise_frac,
                "SDXL: fraction of the schedule the base denoises before --refiner takes over")
      ->capture_default_str();
  c->add_option("--aesthetic-score", a->aesthetic_score,
                "SDXL refiner: aesthetic score conditioning the prompt")
      ->capture_default_str();
  c->add_option("--negative-aesthetic-score", a->negative_aesthetic_score,
                "SDXL refiner: aesthetic score conditioning the negative prompt")
      ->capture_default_str();
  add_backend_options(*c, a->load);
  c->add_option("--output,-o", a->output, "output PNG (with --image-count K: <stem>-0.png ...)")
      ->capture_default_str();
  c->add_flag("--json", a->json, "print a JSON summary on stdout");
  return [a, c] { return run_generate(*a, *c); };
}

}  // namespace diffuse::cli
