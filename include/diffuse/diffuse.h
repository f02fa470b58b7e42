/* diffuse: Stable Diffusion in C++ — the C API, for bindings from other languages.
 *
 * Handles are opaque; every function returns a diffuse_status (DIFFUSE_OK on success), and
 * diffuse_last_error() gives the message of the calling thread's last failure. Nothing here
 * prints or exits. Strings are UTF-8, images 8-bit RGB, row-major.
 */
#ifndef DIFFUSE_DIFFUSE_H
#define DIFFUSE_DIFFUSE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum diffuse_status {
  DIFFUSE_OK = 0,
  DIFFUSE_ERROR_FILE = 1,      /* missing, unreadable or corrupt file */
  DIFFUSE_ERROR_CONFIG = 2,    /* bad option or configuration value */
  DIFFUSE_ERROR_SHAPE = 3,     /* tensor shape mismatch */
  DIFFUSE_ERROR_NUMERIC = 4,   /* NaN/inf produced */
  DIFFUSE_ERROR_CANCELLED = 5, /* the progress callback asked to stop */
  DIFFUSE_ERROR_MEMORY = 6,
  DIFFUSE_ERROR_INTERNAL = 7,
  DIFFUSE_ERROR_ARGUMENT = 8 /* null handle or pointer */
} diffuse_status;

typedef struct diffuse_pipeline diffuse_pipeline;
typedef struct diffuse_options diffuse_options;
typedef struct diffuse_result diffuse_result;
typedef struct diffuse_load_options diffuse_load_options;

/* Progress: return 0 to continue, non-zero to cancel. */
typedef int (*diffuse_progress_fn)(int step, int total_steps, void* user_data);

const char* diffuse_version(void);
const char* diffuse_last_error(void);

diffuse_status diffuse_pipeline_load(const char* model_dir, diffuse_pipeline** out);
/* Load options start at the library defaults (backend "cpu", all cores). */
diffuse_status diffuse_load_options_create(diffuse_load_options** out);
void diffuse_load_options_free(diffuse_load_options* options);
/* "cpu", "reference", or a Core ML compute-unit name ("cpuOnly", "cpuAndGPU", "all"); an unknown
 * name fails at load time with DIFFUSE_ERROR_CONFIG. */
diffuse_status diffuse_load_options_set_backend(diffuse_load_options* o, const char* backend);
/* Threads of this pipeline's own pool (0 = all cores). */
diffuse_status diffuse_load_options_set_threads(diffuse_load_options* o, int threads);
/* Nonzero: least memory over speed (LoadOptions::low_memory: file-backed weights paged in per
 * layer and released after it, the VAE decoded in tiles). */
diffuse_status diffuse_load_options_set_low_memory(diffuse_load_options* o, int low_memory);
/* How layer weights are held: "f32" (default, exact; 16-bit files stay 16-bit), "f16", "bf16",
 * "int8" (LoadOptions::precision); an unknown name fails at load time with DIFFUSE_ERROR_CONFIG. */
diffuse_status diffuse_load_options_set_precision(diffuse_load_options* o, const char* precision);
/* How attention computes: "sliced", "standard" or "flash" (LoadOptions::attention); "" = the
 * package's default, else "sliced". An unknown name fails at load time with DIFFUSE_ERROR_CONFIG.
 */
diffuse_status diffuse_load_options_set_attention(diffuse_load_options* o, const char* attention);
/* diffusers' weight-file variant ("fp16": diffusion_pytorch_model.fp16.safetensors where present);
 * "" = the plain files (LoadOptions::variant). */
diffuse_status diffuse_load_options_set_variant(diffuse_load_options* o, const char* variant);
/* Replaces the model's VAE: a VAE folder, a model folder or a single file (LoadOptions::vae);
 * "" = the model's own. */
diffuse_status diffuse_load_options_set_vae(diffuse_load_options* o, const char* vae);
diffuse_status diffuse_pipeline_load_with_options(const char* model_dir,
                                                  const diffuse_load_options* options,
                                                  diffuse_pipeline** out);
void diffuse_pipeline_free(diffuse_pipeline* pipeline);

/* Options start at the library defaults (50 steps, guidance 7.5, seed 0, model's size...). */
diffuse_status diffuse_options_create(diffuse_options** out);
void diffuse_options_free(diffuse_options* options);
diffuse_status diffuse_options_set_prompt(diffuse_options* o, const char* prompt);
/* On SDXL base models, "" is encoded; never setting it conditions on zeros. */
diffuse_status diffuse_options_set_negative_prompt(diffuse_options* o, const char* negative_prompt);
diffuse_status diffuse_options_set_steps(diffuse_options* o, int steps);
diffuse_status diffuse_options_set_guidance_scale(diffuse_options* o, float guidance_scale);
diffuse_status diffuse_options_set_seed(diffuse_options* o, uint64_t seed);
diffuse_status diffuse_options_set_size(diffuse_options* o, int width, int height);
diffuse_status diffuse_options_set_scheduler(diffuse_options* o, const char* scheduler);
diffuse_status diffuse_options_set_image_count(diffuse_options* o, int count);
diffuse_status diffuse_options_set_rng(diffuse_options* o, const char* rng);
diffuse_status diffuse_options_set_clip_skip(diffuse_options* o, int clip_skip);
/* Image-to-image: rgb is width*height*3 bytes (copied). */
diffuse_status diffuse_options_set_init_image(diffuse_options* o, const uint8_t* rgb, int width,
                                              int height, float strength);
/* Inpainting (with an init image): the mask as width*height*3 RGB bytes (copied; white =
   repaint; any size, resized), blurred by `blur` pixels first (0 = off). */
diffuse_status diffuse_options_set_mask(diffuse_options* o, const uint8_t* rgb, int width,
                                        int height, int blur);
/* Inpainting only the region around the mask, with `padding` pixels of context (diffusers'
   padding_mask_crop, A1111's "only masked"); -1 turns it off (the default). The mask must have
   the init image's size; the result has it too. */
diffuse_status diffuse_options_set_mask_crop(diffuse_options* o, int padding);
/* What the masked region starts from below strength 1 (A1111's masked content): "original"
   (default), "fill", "latent-noise" or "latent-nothing". */
diffuse_status diffuse_options_set_masked_content(diffuse_options* o, const char* mode);
/* VAE decoding in overlapping tiles: mode "auto" (default; only when an image would need more
   than ~4 GiB to decode whole), "on" or "off"; tile_size in pixels (a multiple of 32), 0 = the
   VAE's sample_size. */
diffuse_status diffuse_options_set_vae_tiling(diffuse_options* o, const char* mode, int tile_size);
/* Adds a LoRA (.safetensors, kohya/A1111 or diffusers layout) applied with `scale`. */
diffuse_status diffuse_options_add_lora(diffuse_options* o, const char* path, float scale);
/* Adds a textual-inversion embedding (.safetensors); write its token in the prompt. */
diffuse_status diffuse_options_add_embedding(diffuse_options* o, const char* path);
/* Adds a ControlNet (folder or single file) with its control image (width*height*3 RGB bytes,
   copied), conditioning scale and guidance window [start, end] (fractions of the steps). */
diffuse_status diffuse_options_add_controlnet(diffuse_options* o, const char* model,
                                              const uint8_t* rgb, int width, int height,
                                              float scale, double start, double end);
/* Hires fix: upscale by `scale` ("latent", "latent-bilinear" or "lanczos") and refine with
   `steps` (0 = the first pass's) img2img steps at `strength`. */
diffuse_status diffuse_options_set_hires(diffuse_options* o, float scale, int steps, float strength,
                                         const char* upscaler);

/* SDXL micro-conditioning (diffusers' original_size, target_size, crops_coords_top_left,
   negative_original_size; here sizes are width, height). Unset: the generated size, crop 0,0.
   Other models ignore them with a warning. */
diffuse_status diffuse_options_set_original_size(diffuse_options* o, int width, int height);
diffuse_status diffuse_options_set_target_size(diffuse_options* o, int width, int height);
diffuse_status diffuse_options_set_crop_coords(diffuse_options* o, int top, int left);
diffuse_status diffuse_options_set_negative_original_size(diffuse_options* o, int width,
                                                          int height);
/* SDXL refiners: the aesthetic scores of the prompt and the negative prompt (diffusers' defaults
   6.0 and 2.5). */
diffuse_status diffuse_options_set_aesthetic_scores(diffuse_options* o, float score,
                                                    float negative_score);
/* SDXL ensemble of experts: the refiner folder that denoises the rest of the schedule after the
   base model's first `high_noise_frac` (in (0, 1), e.g. 0.8), and decodes; "" = none. */
diffuse_status diffuse_options_set_refiner(diffuse_options* o, const char* refiner_dir,
                                           float high_noise_frac);

diffuse_status diffuse_generate(diffuse_pipeline* p, const diffuse_options* o,
                                diffuse_progress_fn progress, void* user_data,
                                diffuse_result** out);
size_t diffuse_result_image_count(const diffuse_result* r);
/* Pointer valid until diffuse_result_free; width*height*3 bytes. */
diffuse_status diffuse_result_image(const diffuse_result* r, size_t index, const uint8_t** rgb,
                                    int* width, int* height);
uint64_t diffuse_result_seed(const diffuse_result* r);
/* Warnings of the run (e.g. a backend fallback); strings valid until diffuse_result_free. */
size_t diffuse_result_warning_count(const diffuse_result* r);
const char* diffuse_result_warning(const diffuse_result* r, size_t index);
/* Writes image `index` as a PNG with A1111 `parameters` metadata. */
diffuse_status diffuse_result_save_png(const diffuse_result* r, size_t index, const char* path);
void diffuse_result_free(diffuse_result* r);

#ifdef __cplusplus
}
#endif

#endif /* DIFFUSE_DIFFUSE_H */
