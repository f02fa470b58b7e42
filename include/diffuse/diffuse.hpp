// diffuse: Stable Diffusion in C++ — the public C++ API.
//
//   auto pipe = diffuse::Pipeline::load("path/to/stable-diffusion-v1-5");
//   diffuse::GenerateOptions o;
//   o.prompt = "a photo of an astronaut riding a horse on mars";
//   o.seed = 93;
//   diffuse::GenerationResult r = pipe->generate(o);
//   diffuse::save_png("out.png", r.images[0], r.parameters_text(0));
//
// Everything the CLI and the server do goes through this header (and diffuse.h, its C twin).
// Errors are exceptions derived from diffuse::Error (error.hpp) with one-line messages.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "diffuse/error.hpp"
#include "diffuse/utilities.hpp"

namespace diffuse {

/// An RGB image with float channels in [0, 1], row-major HWC (diffusers' output_type="np").
struct Image {
  int width = 0, height = 0;
  std::vector<float> rgb;

  /// round(rgb * 255) as 8-bit RGB: the PNG diffusers/PIL would save.
  std::vector<uint8_t> to_rgb8() const;
  static Image from_rgb8(int width, int height, const std::vector<uint8_t>& rgb8);
};

/// Default pixel budget of load_png/decode_png: 64 megapixels (an 8192x8192 image).
constexpr uint64_t kDefaultMaxImagePixels = uint64_t{8192} * 8192;

/// Reads a PNG as an Image (FileError naming the path when unreadable). A PNG whose header
/// declares more than `max_pixels` pixels is refused before its pixels are decoded.
Image load_png(const std::string& path, uint64_t max_pixels = kDefaultMaxImagePixels);
/// Writes an 8-bit PNG with the given `parameters` text chunk (A1111 format; may be empty),
/// atomically: the file appears complete or not at all.
void save_png(const std::string& path, const Image& image, const std::string& parameters = {});
/// The `parameters` text chunk of a PNG (empty when absent).
std::string read_png_parameters(const std::string& path);

/// The PNG bytes save_png would write.
std::vector<uint8_t> encode_png(const Image& image, const std::string& parameters = {});
/// Decodes PNG bytes (any colour type; alpha dropped). `what` names the source in errors
/// (FileError); the pixel budget is checked from the header, before decoding.
Image decode_png(const uint8_t* data, size_t size, const std::string& what = "PNG data",
                 uint64_t max_pixels = kDefaultMaxImagePixels);
/// The `parameters` text chunk of PNG bytes (empty when absent); pixels are not decoded.
std::string png_parameters(const uint8_t* data, size_t size, const std::string& what = "PNG data");

/// A size as diffusers' SDXL arguments order it: (height, width).
struct SizeHW {
  int height = 0, width = 0;
};
/// Crop coordinates as diffusers' crops_coords_top_left orders them: (top, left).
struct CropTopLeft {
  int top = 0, left = 0;
};

/// A LoRA applied to a generation: a kohya/A1111 or diffusers/PEFT .safetensors file and its
/// strength (diffusers' adapter weight; A1111's <lora:name:scale>).
struct LoraSpec {
  std::string path;
  float scale = 1.f;
  // Written out: the public headers compile as C++17.
  bool operator==(const LoraSpec& o) const { return path == o.path && scale == o.scale; }
  bool operator!=(const LoraSpec& o) const { return !(*this == o); }
};

/// A ControlNet conditioning a generation (StableDiffusionControlNetPipeline; several at once are
/// diffusers' MultiControlNetModel, their residuals summed).
struct ControlNetSpec {
  /// A diffusers ControlNetModel folder, or a single file (A1111's control_*.safetensors, original
  /// or diffusers layout) whose architecture is taken from the model's UNet.
  std::string model;
  /// The control image (edges, depth, pose, ...), any size: resized to the output size with PIL's
  /// Lanczos filter. Without an explicit size the first control image sets it (rounded down to a
  /// multiple of 8), as diffusers.
  Image image;
  float scale = 1.f;  // controlnet_conditioning_scale
  /// The fraction of the model evaluations it acts on (control_guidance_start / _end).
  double start = 0, end = 1;
  /// What turns `image` into the control map first: "none" (it is one already) or "canny"
  /// (OpenCV's Canny edges with these thresholds, as diffusers' ControlNet docs and A1111's
  /// sd-webui-controlnet "canny" module make them, at the image's own size).
  std::string preprocessor = "none";
  float low_threshold = 100.f, high_threshold = 200.f;
};

/// Canny edges of `image` as `cv2.Canny(rgb, low, high)` computes them (byte for byte; white =
/// edge), the control map a canny ControlNet expects: what ControlNetSpec's "canny"
/// preprocessor runs, for previewing it. ConfigError for negative thresholds.
Image canny_edges(const Image& image, float low_threshold, float high_threshold);

/// AUTOMATIC1111's hires fix (enable_hr): generate at width x height, upscale, then refine with an
/// image-to-image pass at the larger size (same prompt, seed and sampler; the second pass draws
/// its noise from a generator seeded afresh with the seed, as a separate img2img call would).
struct HiresFix {
  float scale = 2.f;      // hr_scale: the final size is (width, height) x scale, rounded down to /8
  int steps = 0;          // hr_second_pass_steps; 0 = the first pass's steps
  float strength = 0.7f;  // denoising_strength of the second pass, (0, 1]
  /// "latent" (nearest), "latent-bilinear" (A1111's "Latent"), or "lanczos" (decode, resize the
  /// image with PIL's Lanczos filter, encode again).
  std::string upscaler = "latent";
};

struct GenerateOptions {
  std::string prompt;
  /// How prompts are read: "plain" (diffusers: the text as written, truncated to the text
  /// encoder's 77 tokens) or "a1111" (AUTOMATIC1111's web UI: "(word)", "(word:1.3)", "[word]",
  /// "\(" emphasis, BREAK, and any length as 75-token chunks; SD 1.x/2.x). With "a1111" a prompt
  /// and negative prompt of different chunk counts run the UNet on each half on its own, as
  /// A1111 does.
  std::string prompt_syntax = "plain";
  /// Unset and set-to-"" differ as in diffusers: SD encodes "" either way, but an SDXL model whose
  /// folder sets force_zeros_for_empty_prompt (SDXL base) conditions on zeros when it is unset.
  std::optional<std::string> negative_prompt;
  int steps = 50;
  float guidance_scale = 7.5f;  // <= 1 disables classifier-free guidance (one UNet batch half)
  uint64_t seed = 0;
  /// Sampler: "" = the model's own scheduler; a preset name ("dpmpp-2m-karras", "euler-a", ...)
  /// or a diffusers class name ("DPMSolverMultistepScheduler").
  std::string scheduler;
  std::optional<bool> karras_sigmas;  // override use_karras_sigmas
  std::string timestep_spacing;       // override: "linspace", "leading", "trailing"
  std::optional<double> eta;          // DDIM eta
  int width = 0, height = 0;          // 0 = the model's default size; multiples of 8
  int image_count = 1;                // one generator, one batched draw (as diffusers)
  std::string rng = "torch";          // "torch", "numpy", "philox"
  int clip_skip = 0;                  // skip the last N CLIP layers (prompt and negative)
  /// Image-to-image when set. Any size: as diffusers' VaeImageProcessor, width/height default to
  /// the image's rounded down to a multiple of 8, and the image is resized to width x height with
  /// PIL's Lanczos filter (bit-exact on 8-bit images) when its size differs.
  std::optional<Image> init_image;
  /// Fraction of the schedule re-noised, (0, 1]. Unset: 0.8 for img2img, 1.0 for inpainting (as
  /// diffusers' pipelines default).
  std::optional<float> strength;
  /// Inpainting when set (with init_image): StableDiffusionInpaintPipeline. White (grey >= 128
  /// after PIL's convert("L")) is repainted, black kept. Any size: resized to width x height with
  /// PIL's Lanczos filter, as diffusers' mask processor. As in diffusers, width and height then
  /// default to the model's size (not the image's): set them to keep the image's aspect. A
  /// 9-channel inpainting model takes the mask and the masked image as extra UNet channels; an
  /// ordinary model blends the re-noised original back outside the mask after every step.
  std::optional<Image> mask_image;
  /// Blurs the mask by this many pixels first (diffusers' mask_processor.blur: PIL GaussianBlur),
  /// which softens the seam; 0 = off.
  int mask_blur = 0;
  /// Inpaints only the region around the mask (diffusers' padding_mask_crop, A1111's "only
  /// masked" with this padding in pixels): the mask's bounding box grown by the padding and to
  /// the width:height aspect is cut out of the image and the mask, generated at width x height,
  /// resized back and laid over the original outside the mask. The result has the init image's
  /// size; the mask must have it too.
  std::optional<int> mask_crop;
  /// What the masked region starts from below strength 1 (A1111's inpainting_fill / "masked
  /// content"): "original" (the image, diffusers' behaviour), "fill" (the region painted with the
  /// colours around it, A1111's masking.fill), "latent-noise" (its latents replaced by noise drawn
  /// with the seed) or "latent-nothing" (by zeros). The latent modes have no effect at strength 1
  /// (the run starts from noise, as diffusers').
  std::string masked_content = "original";
  /// LoRAs merged into the UNet and text encoder(s) for this generation, as diffusers'
  /// load_lora_weights + set_adapters(names, scales) computes them. The pipeline keeps the base
  /// weights: the next generation with other LoRAs (or none) only rebuilds the adapted tensors.
  std::vector<LoraSpec> loras;
  /// Textual-inversion embeddings (.safetensors; diffusers' layout, the token being the tensor's
  /// name, or A1111's emb_params, the token being the file's stem), as diffusers'
  /// load_textual_inversion: write the token in the prompt (a multi-vector embedding expands to
  /// its vectors). SD 1.x/2.x.
  std::vector<std::string> embeddings;
  /// ControlNets (txt2img with SD 1.x/2.x models).
  std::vector<ControlNetSpec> controlnets;
  /// Hires fix (txt2img with SD 1.x/2.x models, without ControlNets).
  std::optional<HiresFix> hires;
  /// diffusers' guess_mode: the ControlNets see only the conditional half of the guidance batch,
  /// their residuals ramped from 0.1x (first skip) to 1x (mid block).
  bool control_guess_mode = false;
  bool preview = false;  // fill Progress::preview (cheap latent->RGB estimate)
  /// VAE decoding in overlapping tiles blended at the seams (diffusers' vae.enable_tiling()):
  /// "off"; "on" (whenever the latents are larger than one tile); "auto" (the default): images are
  /// decoded one at a time when the batch would not fit, and tiled only when decoding one image
  /// whole would need more than about 4 GiB of activations (SD 1.5 above ~1400x1400 pixels).
  /// Tiled images differ slightly from whole ones near the seams.
  std::string vae_tiling = "auto";
  int vae_tile_size = 0;  // tile side in pixels, a multiple of 32; 0 = the VAE's sample_size
  /// SDXL micro-conditioning (diffusers' original_size, target_size, crops_coords_top_left,
  /// negative_original_size; other models ignore them with a warning). Unset: original and
  /// target size (height, width) of the image generated, crop (0, 0), and the unconditional half
  /// conditioned like the prompt. negative_original_size conditions the unconditional half on that
  /// size with crop (0, 0) and target_size (diffusers' negative_target_size = target_size).
  std::optional<SizeHW> original_size;
  std::optional<SizeHW> target_size;
  std::optional<CropTopLeft> crop_coords;
  std::optional<SizeHW> negative_original_size;
  /// SDXL refiners (model_index.json's requires_aesthetics_score): the aesthetic score the prompt
  /// and the negative prompt are conditioned on; unset: diffusers' 6.0 and 2.5. Other models
  /// ignore them with a warning.
  std::optional<float> aesthetic_score, negative_aesthetic_score;
  /// SDXL's ensemble of expert denoisers: a refiner model folder that denoises the last
  /// (1 - high_noise_frac) of the schedule from this (base) model's latents and decodes them, as
  /// diffusers' base(denoising_end=f, output_type="latent") then refiner(image=latents,
  /// denoising_start=f) with one generator through both. Loaded on first use and kept, with the
  /// base's load options. Empty: no refiner.
  std::string refiner;
  float high_noise_frac = 0.8f;  // in (0, 1): where the refiner takes over
};

struct Progress {
  int step = 0;         // 1-based model evaluation just finished
  int total_steps = 0;  // model evaluations in this run
  double timestep = 0;
  double elapsed_s = 0;  // since the denoising loop started
  /// Shape of the latents after this step, [image_count, 4, h/8, w/8].
  std::vector<int64_t> latent_shape;
  /// A row-major host copy of the latents after this step (wherever the backend keeps them).
  /// Only valid during the callback; costs one copy, so call it only when needed.
  std::vector<float> latents() const {
    return read_latents ? read_latents() : std::vector<float>{};
  }
  /// Set by the library: what latents() calls.
  std::function<std::vector<float>()> read_latents;
  /// When GenerateOptions::preview: an approximate RGB image of the first latent (1/8 scale).
  std::optional<Image> preview;
};
/// Called after every step; return false to cancel (generate() then throws diffuse::Cancelled
/// without producing images).
using ProgressCallback = std::function<bool(const Progress&)>;

struct StageTimes {
  double load_s = 0, text_encoder_s = 0, denoise_s = 0, vae_s = 0, total_s = 0;
};

/// Arithmetic of each stage: 2 x the multiply-adds of its linear layers, convolutions and
/// attention (element-wise ops, norms and softmax not counted), for throughput reports.
struct StageFlops {
  double text_encoder = 0, denoise = 0, vae = 0;
};

struct GenerationResult {
  std::vector<Image> images;
  uint64_t seed = 0;
  std::string scheduler_class;  // what actually ran, e.g. "DPMSolverMultistepScheduler"
  std::string sampler_name;     // A1111's name, e.g. "DPM++ 2M Karras"
  StageTimes times;
  StageFlops flops;
  size_t peak_activation_bytes =
      0;  // activation high-water mark during this call (weights excluded)
  /// Activation blocks this call took from the system allocator rather than the pipeline's pool
  /// (the pool is emptied at the end of each stage, so every call takes its first step's blocks;
  /// the steps after it take none).
  size_t activation_system_allocations = 0;
  GenerateOptions options;  // as resolved (defaults filled in)
  std::string model_name;
  std::string backend;  // the backend that ran ("cpu", "reference", ...)
  /// Things the caller should know that did not stop the run (a fallback taken, an option that
  /// had no effect). The library never prints them; the CLI, server and app show them.
  std::vector<std::string> warnings;

  /// The A1111 `parameters` text for image i (prompt, Negative prompt line, settings line).
  std::string parameters_text(size_t i) const;
};

struct ModelInfo {
  std::string name;             // folder name
  std::string family;           // "sd1", "sd2" or "sdxl"
  std::string prediction_type;  // "epsilon" or "v_prediction"
  std::string scheduler_class;  // default scheduler
  int default_width = 512, default_height = 512;
  int text_max_length = 77;
  std::string backend;    // the backend this pipeline runs on ("cpu", "reference", ...)
  std::string attention;  // its attention kernel: "sliced", "standard" or "flash"
  int threads = 0;        // threads its kernels use
};

struct LoadOptions {
  /// Ignore weight files and synthesize every weight by a deterministic rule (crc32-seeded torch
  /// randn, as ../shared/fixtures' golden-full). Runs any architecture config without downloads,
  /// for benchmarks; the images are noise.
  bool synthetic_weights = false;
  /// Folder with vocab.json + merges.txt, used when the model's tokenizer/ folder lacks them.
  std::string tokenizer_fallback_dir;
  /// Single-file checkpoints (.safetensors / .ckpt in the original LDM layout): a diffusers folder
  /// whose model_index.json, component config.json files, tokenizer and scheduler describe the
  /// architecture (its weights are not read), as diffusers' from_single_file(config=...).
  std::string config_dir;
  /// diffuse's bundled assets (configs/sd15, configs/sd21-768v, tokenizer/): when config_dir is
  /// empty, a single-file checkpoint uses the full-size config of the family its keys show (SD 2.x
  /// defaults to the 768-v, v-prediction config: v-prediction cannot be detected from weights).
  std::string assets_dir;
  /// Where the math runs: "cpu" (optimised kernels, the default) or "reference" (plain loop nests,
  /// slow; for checking). Core ML's compute-unit spellings are accepted too: "cpuOnly" -> cpu;
  /// "cuda"/"cpuAndGPU" -> the GPU backend (an error while none is built); "all" -> the GPU
  /// backend where one is usable, else cpu. An unknown name is a ConfigError.
  std::string backend = "cpu";
  /// The GPU a GPU backend runs on (`--device N`; the same as backend "cuda:N"). Ignored by the
  /// CPU backends; a GPU that is not there is a ConfigError.
  int device = 0;
  /// How the models' layer matrices (Linear and Conv2d weights, ~98% of the parameters) are held
  /// and computed from:
  ///   "f32"  (default, exact): as the files store them; float32 files are memory-mapped, and
  ///          float16/bfloat16 files stay 16-bit in memory (widened exactly where used), so an
  ///          fp16 download gives diffusers' fp32-upcast results in half the memory;
  ///   "f16": float32 matrices rounded to half at load (half the memory), float32 compute;
  ///   "bf16": matrices rounded to bfloat16 (half the memory), and the layers and their attention
  ///          computed in bfloat16 with float32 sums (AVX512_BF16; elsewhere the same products
  ///          through float32, slower, with a GenerationResult warning);
  ///   "int8": every matrix quantized to int8 with one scale per output channel (a quarter),
  ///          computed in bfloat16 as "bf16".
  /// Norms, biases, embeddings and element-wise math stay float32. Anything else is a ConfigError.
  std::string precision = "f32";
  /// How attention layers compute softmax(QK^T/sqrt(d))V; all three give the same images to
  /// float32 rounding (the Core ML converter's attention variants):
  ///   "sliced":   256 query rows at a time against every key (4 MiB of scores per thread at
  ///               4096 tokens);
  ///   "standard": a whole head's score matrix at once (64 MiB per thread at 4096 tokens);
  ///   "flash":    blocks of queries and keys with a running softmax (FlashAttention's online
  ///               softmax): a few hundred KB per thread at any length.
  /// Empty (default): what a diffuse package records (ConvertOptions::attention), else "sliced".
  /// docs/PERFORMANCE.md compares their speed. Anything else is a ConfigError.
  std::string attention;
  /// diffusers' weight-file variant: "fp16" loads `diffusion_pytorch_model.fp16.safetensors` (and
  /// the like) where a component has it and its plain files where it has not, as diffusers'
  /// from_pretrained(variant=...). Empty (default): the plain files, or a component's only
  /// variant when it has no plain ones. Letters, digits, '_' and '-' only (a ConfigError
  /// otherwise). A variant names files, never a precision (see `precision`).
  std::string variant;
  /// Replaces the model's VAE: a diffusers AutoencoderKL folder (config.json + weights), a model
  /// folder (its vae/), or one file (.safetensors, .ckpt, .pt, .bin) in diffusers' or the original
  /// LDM layout (e.g. A1111's vae-ft-mse-840000-ema-pruned.safetensors), read with the model's
  /// own VAE config. Empty (default): the model's VAE.
  std::string vae;
  /// Least memory over speed: layer matrices read from memory-mapped files (precision "f32", as
  /// stored: a float32 or fp16 folder) give their pages back after each use, so only the layer
  /// running stays resident; the VAE decodes in 256-pixel tiles (unless vae_tiling is "off");
  /// converted weights (other precisions, checkpoints) stay in memory. Each step reads the
  /// weights from the page cache again (docs/PERFORMANCE.md measures the cost).
  bool low_memory = false;
  /// Threads this pipeline's kernels use (0 = all cores). Each pipeline has its own pool, so two
  /// pipelines in one process run side by side without sharing or serialising threads.
  int threads = 0;
};

class Pipeline {
 public:
  /// Loads a diffusers-layout Stable Diffusion folder (model_index.json, text_encoder/, tokenizer/,
  /// unet/, vae/, scheduler/; SDXL's StableDiffusionXLPipeline folders also text_encoder_2/ and
  /// tokenizer_2/), or a single-file SD 1.x/2.x checkpoint (.safetensors or .ckpt, original LDM
  /// layout; see LoadOptions::config_dir). Throws FileError/ConfigError naming the file or key at
  /// fault.
  static std::unique_ptr<Pipeline> load(const std::string& model_dir,
                                        const LoadOptions& options = {});
  virtual ~Pipeline() = default;

  virtual const ModelInfo& info() const = 0;
  /// Text-to-image, or image-to-image when options.init_image is set.
  virtual GenerationResult generate(const GenerateOptions& options,
                                    const ProgressCallback& progress = {}) = 0;
  /// Token ids (padded to the model's max length) and the untruncated token count for a prompt.
  virtual std::vector<int64_t> tokenize(const std::string& text, size_t* token_count) const = 0;
};

/// One component's weights as stored (ModelDescription).
struct ComponentDescription {
  std::string name;        // "unet", "text_encoder", "text_encoder_2", "vae"
  std::string class_name;  // "UNet2DConditionModel", ... (model_index.json; inferred for files)
  std::string source;      // the weight file(s) read
  int64_t parameters = 0;  // elements of every stored tensor
  int64_t bytes = 0;       // their stored size
  /// Parameters per stored dtype name ("F32", "F16", "BF16", ...).
  std::map<std::string, int64_t> parameters_by_dtype;
};

/// What a model path holds, read from its configs and tensor headers without building the model
/// (weights stay memory-mapped; nothing is converted).
struct ModelDescription {
  std::string path;
  std::string kind;      // "diffusers folder" or "single-file checkpoint"
  std::string pipeline;  // model_index.json's _class_name (a checkpoint: the pipeline it loads as)
  std::string family;    // "sd1", "sd2" or "sdxl"
  /// "epsilon", "v_prediction" or "sample" from the scheduler config; for an SD 2.x checkpoint,
  /// which the weights cannot tell, "v_prediction (assumed: 768-v)".
  std::string prediction_type;
  bool inpainting = false;  // a 9-channel UNet
  int default_size = 0;     // pixels, from the UNet's sample_size (0 when unknown)
  std::vector<ComponentDescription> components;
  /// Tensors a single-file checkpoint holds outside the components (EMA copies, training state).
  int64_t other_parameters = 0;
  int64_t file_bytes = 0;  // size on disk of every file read
};

/// Inspects a diffusers folder (SD 1.x/2.x/XL, any layout LoadOptions::variant reads) or a
/// single-file checkpoint. FileError/ConfigError naming the file when it is neither.
ModelDescription inspect_model(const std::string& path, const LoadOptions& options = {});

/// diffuse convert: a model re-written as a diffuse package (a diffusers-layout folder whose
/// weights are stored at a chosen precision, plus diffuse.json: format version, source, family,
/// per component its precision, files with sizes and SHA-256 checksums, and per tensor its
/// encoding). Packages load with Pipeline::load like any folder, by mmap; compressed matrices stay
/// compressed (int8) or expand to float16 at load (palettized).
struct ConvertOptions {
  /// How layer matrices are stored: "f32", "f16" (default), "bf16", "int8" (per-output-channel
  /// scales), or "paletteN", N = 1..8 (a 2^N-entry float16 lookup table per tensor, or per group
  /// of output channels with palette_group, found by 1-D k-means over the weighted histogram of
  /// its values; packed N-bit indices). Norms, biases and
  /// embeddings stay float32.
  std::string precision = "f16";
  /// Palettized precisions: output channels per lookup table (Core ML's per_grouped_channel
  /// palettization, its group_size): each group of at most this many output channels of a matrix
  /// gets its own 2^N-entry table, which follows channels of different scales more closely for
  /// 2^N float16 values per group on disk. 0 (default): one table per tensor.
  int64_t palette_group = 0;
  /// The attention kernel recorded as the package's default ("sliced", "standard", "flash"; see
  /// LoadOptions::attention, which overrides it at load). Empty: none recorded ("sliced").
  std::string attention;
  /// Per-component precision overriding `precision` ("vae" -> "f32").
  std::map<std::string, std::string> component_precision;
  /// Components to write (text_encoder, text_encoder_2, unet, vae); empty = all of them.
  std::vector<std::string> components;
  /// Largest weight file in MiB: components above it are split into shards with an index
  /// (diffusers' sharded layout); 0 = one file per component.
  int64_t chunk_mib = 0;
  /// How the source is read: variant for folders; config_dir/assets_dir for single files.
  LoadOptions load;
};

struct ConvertedComponent {
  std::string name, precision;
  int64_t parameters = 0;
  int64_t disk_bytes = 0;    // its weight files
  int64_t memory_bytes = 0;  // its tensors once loaded (palettized: expanded to float16)
  int files = 0;
  /// ||loaded - source|| / ||source|| over the component's float tensors (0 for f32).
  double relative_error = 0;
};

struct ConvertReport {
  std::string path;
  std::vector<ConvertedComponent> components;
};

/// Per component: (component name, tensors done, tensors in it); return false to cancel (the
/// conversion then throws Cancelled and leaves nothing behind).
using ConvertProgressCallback = std::function<bool(const std::string&, int, int)>;

/// Converts `source` (a diffusers folder or a single-file checkpoint) into a package at `output`,
/// which must not exist. Written under a temporary name next to it and renamed when complete: a
/// failure leaves nothing behind. ConfigError for unknown precisions or components.
ConvertReport convert_model(const std::string& source, const std::string& output,
                            const ConvertOptions& options = {},
                            const ConvertProgressCallback& progress = {});

/// Checks every file a package's diffuse.json lists against its size and SHA-256; returns one
/// line per problem (empty: intact). FileError when `path` has no readable diffuse.json.
std::vector<std::string> verify_package(const std::string& path);

/// Names accepted by GenerateOptions::scheduler (presets), for help texts.
std::vector<std::string> scheduler_names();

/// Backend names LoadOptions::backend accepts that are built into this library ("cpu",
/// "reference", ...).
std::vector<std::string> backend_names();

const char* version();

}  // namespace diffuse
