// diffuse bench: time the stages of a generation (load, text encoder, one UNet step, VAE decode)
// and report peak memory, on a real model folder or on any architecture config with synthetic
// weights (e.g. ../shared/configs/sd15), so performance can be measured without downloads.
#include <algorithm>
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>

#include "commands.h"
#include "diffuse/diffuse.hpp"

namespace diffuse::cli {

Command add_bench(CLI::App& app) {
  struct Args {
    std::string model, config, scheduler = "euler", vae_tiling = "auto";
    int width = 512, height = 512, steps = 2, vae_tile_size = 0;
    LoadOptions load;
    float guidance = 7.5f;
    bool json = false;
  };
  auto a = std::make_shared<Args>();
  CLI::App* c = app.add_subcommand("bench", "Time text encoding, UNet steps and VAE decoding");
  auto* src = c->add_option_group("source");
  src->add_option(
      "--model,-m", a->model,
      "diffusers model folder, single-file checkpoint, or org/name pulled with `diffuse pull`");
  src->add_option("--config", a->config, "architecture folder (configs only): synthetic weights");
  src->require_option(1);
  c->add_option("--width,-W", a->width, "image width")->capture_default_str();
  c->add_option("--height,-H", a->height, "image height")->capture_default_str();
  c->add_option("--steps", a->steps, "denoising steps to time")->capture_default_str();
  c->add_option("--guidance-scale", a->guidance, "> 1: each step runs the UNet on batch 2")
      ->capture_default_str();
  c->add_option("--scheduler", a->scheduler, "sampler (one UNet call per step)")
      ->capture_default_str();
  c->add_option("--vae-tiling", a->vae_tiling, "VAE decode in tiles: auto, on, off")
      ->capture_default_str();
  c->add_option("--vae-tile-size", a->vae_tile_size,
                "VAE tile side in pixels (multiple of 32; default: the VAE's sample_size)");
  add_backend_options(*c, a->load);
  c->add_flag("--json", a->json, "print JSON");
  return [a, c] {
    LoadOptions lo = a->load;
    lo.synthetic_weights = !a->config.empty();
    lo.tokenizer_fallback_dir = assets_dir() + "/tokenizer";
    auto pipe = load_pipeline(a->config.empty() ? resolve_model_argument(a->model) : a->config, lo,
                              backend_flag(*c));
    GenerateOptions o;
    o.prompt = "a photograph of an astronaut riding a horse on mars, highly detailed";
    o.width = a->width;
    o.height = a->height;
    o.steps = a->steps;
    o.guidance_scale = a->guidance;
    o.scheduler = a->scheduler;
    o.seed = 1;
    o.vae_tiling = a->vae_tiling;
    o.vae_tile_size = a->vae_tile_size;
    std::vector<double> step_s;
    double last = 0;
    auto r = pipe->generate(o, [&](const Progress& p) {
      step_s.push_back(p.elapsed_s - last);
      last = p.elapsed_s;
      if (!a->json)
        std::fprintf(stderr, "step %d/%d: %.3f s\n", p.step, p.total_steps, step_s.back());
      return true;
    });
    print_warnings(r.warnings);
    const double best = *std::min_element(step_s.begin(), step_s.end());
    const double rss = double(process_peak_rss_bytes()) / (1 << 20);
    const double act = double(r.peak_activation_bytes) / (1 << 20);
    const int batch = a->guidance > 1.f ? 2 : 1;
    // Throughput per stage, and the machine's own GEMM rate measured now on the same threads,
    // so that numbers from a shared, noisy machine can be read as fractions of what it gives.
    const double unet_flops = r.flops.denoise / double(step_s.size());
    const double unet_gflops = unet_flops / best / 1e9;
    const double vae_gflops = r.times.vae_s > 0 ? r.flops.vae / r.times.vae_s / 1e9 : 0;
    const double sgemm = measure_sgemm_gflops(pipe->info().threads);
    // The pipeline's own pool when the library reports it, else the default pool's size.
    const int threads = pipe->info().threads;
    if (a->json) {
      nlohmann::json j{{"model", r.model_name},
                       {"synthetic_weights", lo.synthetic_weights},
                       {"width", a->width},
                       {"height", a->height},
                       {"unet_batch", batch},
                       {"threads", threads},
                       {"precision", a->load.precision},
                       {"attention", pipe->info().attention},
                       {"vae_tiling", a->vae_tiling},
                       {"load_s", r.times.load_s},
                       {"text_encoder_s", r.times.text_encoder_s},
                       {"unet_step_s", step_s},
                       {"unet_step_best_s", best},
                       {"vae_decode_s", r.times.vae_s},
                       {"peak_rss_mib", rss},
                       {"peak_activation_mib", act},
                       {"unet_step_gflop", unet_flops / 1e9},
                       {"vae_decode_gflop", r.flops.vae / 1e9},
                       {"unet_gflops", unet_gflops},
                       {"vae_gflops", vae_gflops},
                       {"sgemm_gflops", sgemm}};
      std::cout << j.dump(2) << "\n";
    } else {
      std::printf(
          "model %s%s, %dx%d, UNet batch %d, backend %s, %d threads, %s weights, %s attention\n",
          r.model_name.c_str(), lo.synthetic_weights ? " (synthetic weights)" : "", a->width,
          a->height, batch, r.backend.c_str(), threads, a->load.precision.c_str(),
          pipe->info().attention.c_str());
      std::printf("load %.3f s | text encoder %.3f s | UNet step best %.3f s | VAE decode %.3f s\n",
                  r.times.load_s, r.times.text_encoder_s, best, r.times.vae_s);
      std::printf("peak RSS %.0f MiB | peak activations %.0f MiB\n", rss, act);
      std::printf(
          "UNet step %.0f GFLOP at %.1f GFLOP/s (%.0f%% of sgemm) | VAE decode %.0f GFLOP at %.1f "
          "GFLOP/s (%.0f%%) | sgemm %.1f GFLOP/s\n",
          unet_flops / 1e9, unet_gflops, 100 * unet_gflops / sgemm, r.flops.vae / 1e9, vae_gflops,
          100 * vae_gflops / sgemm, sgemm);
    }
    return 0;
  };
}

}  // namespace diffuse::cli
