// Tiled VAE decoding (diffusers' AutoencoderKL.enable_tiling / tiled_decode): the latents are cut
// into overlapping square tiles, each decoded on its own, and neighbouring tiles are cross-faded
// over the overlap so no seam shows. Peak memory is then that of one tile's decode, whatever the
// image size, at the cost of decoding the overlaps twice.
#pragma once

#include <functional>

#include "core/tensor.h"

namespace diffuse::vae {

struct TileGrid {
  int64_t tile_latent = 0;  // tile side in latents (diffusers' tile_latent_min_size)
  int64_t tile_sample = 0;  // tile side in pixels (tile_sample_min_size)
  float overlap = 0.25f;    // tile_overlap_factor
};

/// Decodes latents [B, C, h, w] tile by tile with `decode_tile` (latents -> image, factor
/// tile_sample / tile_latent) and blends the tiles as diffusers' tiled_decode does: tiles start
/// every int(tile_latent * (1 - overlap)) latents, each is faded into the one above and the one to
/// its left over int(tile_sample * overlap) pixels, and the top-left
/// tile_sample - int(tile_sample * overlap) pixels of each are kept. Only the previous row of
/// decoded tiles is held at a time.
Tensor tiled_decode(const Tensor& latents, const TileGrid& grid,
                    const std::function<Tensor(const Tensor&)>& decode_tile);

}  // namespace diffuse::vae
