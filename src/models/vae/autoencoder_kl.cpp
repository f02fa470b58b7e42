#include "models/vae/autoencoder_kl.h"

#include <optional>

#include "diffuse/error.hpp"
#include "models/vae/vae_decoder.h"
#include "models/vae/vae_encoder.h"
#include "models/vae/vae_tiling.h"

namespace diffuse {

namespace {
// diffusers' DiagonalGaussianDistribution: torch.clamp(logvar, -30.0, 20.0)
constexpr float kLogvarMin = -30.f, kLogvarMax = 20.f;
}  // namespace

struct AutoencoderKL::Impl {
  VaeConfig config;
  vae::Encoder encoder;
  vae::Decoder decoder;
  std::optional<nn::Conv2d> quant_conv, post_quant_conv;
};

AutoencoderKL AutoencoderKL::load(const std::string& dir) {
  VaeConfig config = VaeConfig::load(dir + "/config.json");
  return from_weights(std::move(config), load_component_weights(dir));
}

AutoencoderKL AutoencoderKL::from_weights(VaeConfig c, const WeightStore& w) {
  auto m = std::make_shared<Impl>();
  const int64_t z = c.latent_channels;
  m->encoder = vae::Encoder::load(w, "encoder", c);
  m->decoder = vae::Decoder::load(w, "decoder", c);
  if (c.use_quant_conv) m->quant_conv = nn::Conv2d::load(w, "quant_conv", 2 * z, 2 * z, 1, {});
  if (c.use_post_quant_conv)
    m->post_quant_conv = nn::Conv2d::load(w, "post_quant_conv", z, z, 1, {});
  m->config = std::move(c);
  AutoencoderKL vae;
  vae.impl_ = std::move(m);
  return vae;
}

const AutoencoderKL::Impl& AutoencoderKL::loaded() const {
  // A default-constructed model (e.g. a member assigned later) has no weights yet.
  if (!impl_) throw Error("AutoencoderKL used before load()");
  return *impl_;
}

const VaeConfig& AutoencoderKL::config() const {
  return loaded().config;
}

Tensor AutoencoderKL::decode(const Tensor& latents) const {
  const Impl& m = loaded();
  require_f32_contiguous(latents, "VAE latents");
  if (latents.ndim() != 4 || latents.dim(1) != m.config.latent_channels || latents.dim(2) < 1 ||
      latents.dim(3) < 1)
    throw ShapeError("VAE decode: latents must be [B, " + std::to_string(m.config.latent_channels) +
                     ", h, w], got " + latents.shape().str());
  if (m.post_quant_conv) return m.decoder((*m.post_quant_conv)(latents));
  return m.decoder(latents);
}

int AutoencoderKL::tile_size(const VaeTiling& tiling) const {
  const VaeConfig& c = loaded().config;
  const int unit = 4 * c.downsample_factor();
  if (tiling.tile_size == 0) {
    if (c.sample_size < c.downsample_factor())
      throw ConfigError(
          "VAE tiling: the VAE config has no sample_size to take the tile size "
          "from; give a tile size (a multiple of " +
          std::to_string(unit) + " pixels)");
    return c.sample_size;
  }
  if (tiling.tile_size < unit || tiling.tile_size % unit != 0)
    throw ConfigError("VAE tile size " + std::to_string(tiling.tile_size) +
                      " must be a positive multiple of " + std::to_string(unit) + " pixels");
  return tiling.tile_size;
}

Tensor AutoencoderKL::decode(const Tensor& latents, const VaeTiling& tiling) const {
  if (!tiling.enabled) return decode(latents);
  const int tile = tile_size(tiling);
  // diffusers: tile_latent_min_size = int(sample_size / 2 ** (len(block_out_channels) - 1))
  const vae::TileGrid grid{tile / config().downsample_factor(), tile, 0.25f};
  if (latents.ndim() != 4 ||
      (latents.dim(2) <= grid.tile_latent && latents.dim(3) <= grid.tile_latent))
    return decode(latents);
  return vae::tiled_decode(latents, grid, [this](const Tensor& z) { return decode(z); });
}

AutoencoderKL::LatentDist AutoencoderKL::encode(const Tensor& image) const {
  const Impl& m = loaded();
  require_f32_contiguous(image, "VAE image");
  const int64_t f = m.config.downsample_factor();
  if (image.ndim() != 4 || image.dim(1) != m.config.in_channels)
    throw ShapeError("VAE encode: image must be [B, " + std::to_string(m.config.in_channels) +
                     ", H, W], got " + image.shape().str());
  if (image.dim(2) < f || image.dim(3) < f || image.dim(2) % f || image.dim(3) % f)
    throw ShapeError("VAE encode: image size " + std::to_string(image.dim(3)) + "x" +
                     std::to_string(image.dim(2)) + " (width x height) is not a multiple of " +
                     std::to_string(f) + " pixels");
  Tensor moments = m.encoder(image);
  if (m.quant_conv) moments = (*m.quant_conv)(moments);
  const int64_t z = m.config.latent_channels;
  LatentDist d;
  d.mean = moments.narrow(1, 0, z).contiguous();
  d.logvar = moments.narrow(1, z, z).contiguous();
  moments = Tensor();
  ops::clamp_(d.logvar, kLogvarMin, kLogvarMax);
  return d;
}

}  // namespace diffuse
