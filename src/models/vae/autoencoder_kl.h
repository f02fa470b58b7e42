// AutoencoderKL (diffusers models/autoencoders/autoencoder_kl.py): the Stable Diffusion VAE that
// maps images in [-1, 1] to latents and back. scaling_factor is NOT applied here (the pipeline
// multiplies latents by it after encoding and divides before decoding), as in diffusers.
#pragma once

#include <memory>
#include <string>

#include "core/tensor.h"
#include "io/weight_store.h"
#include "models/vae/vae_config.h"

namespace diffuse {

/// diffusers' AutoencoderKL.enable_tiling(): decode in overlapping tiles blended at the seams
/// (models/vae/vae_tiling.h), so that memory stays that of one tile's decode.
struct VaeTiling {
  bool enabled = false;
  /// Tile side in pixels; 0: the config's sample_size, as diffusers (tile_sample_min_size).
  /// Others must be multiples of 4 latents (32 pixels for SD), so that the tiles line up.
  int tile_size = 0;
};

class AutoencoderKL {
 public:
  /// Loads `<dir>/config.json` and the weights in `dir` (diffusers layout).
  static AutoencoderKL load(const std::string& dir);
  /// Builds the model from a parsed config and a weight store; every weight is fetched and its
  /// shape checked here, once.
  static AutoencoderKL from_weights(VaeConfig config, const WeightStore& weights);

  const VaeConfig& config() const;

  /// latents [B, latent_channels, h, w] (any h, w >= 1)  ->  image [B, out_channels, h*f, w*f],
  /// f = config().downsample_factor() (8 for SD); no scaling_factor applied.
  Tensor decode(const Tensor& latents) const;
  /// decode() in tiles when `tiling.enabled` and the latents are larger than one tile (as
  /// diffusers' _decode with use_tiling); ConfigError for a tile size that cannot be used.
  Tensor decode(const Tensor& latents, const VaeTiling& tiling) const;
  /// The tile side in pixels that `tiling` resolves to for this model (checked as decode() does).
  int tile_size(const VaeTiling& tiling) const;

  /// The diagonal Gaussian posterior: mean and log-variance, each [B, latent_channels, H/f, W/f],
  /// logvar clamped to [-30, 20] as diffusers' DiagonalGaussianDistribution does.
  struct LatentDist {
    Tensor mean, logvar;
  };
  /// image [B, in_channels, H, W] in [-1, 1], H and W multiples of f (ShapeError naming the size
  /// otherwise).
  LatentDist encode(const Tensor& image) const;

 private:
  struct Impl;
  const Impl& loaded() const;  // throws when default-constructed and never loaded
  std::shared_ptr<const Impl> impl_;
};

}  // namespace diffuse
