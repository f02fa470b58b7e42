#include "pipeline/latent_preview.h"

#include <algorithm>

namespace diffuse {

Image latent_preview(const Tensor& latents, int64_t index) {
  // Rows: latent channel; columns: R, G, B contribution.
  static constexpr float kFactors[4][3] = {{0.298f, 0.207f, 0.208f},
                                           {0.187f, 0.286f, 0.173f},
                                           {-0.158f, 0.189f, 0.264f},
                                           {-0.184f, -0.271f, -0.473f}};
  const int64_t h = latents.dim(2), w = latents.dim(3), hw = h * w;
  const float* base = latents.f32() + index * latents.dim(1) * hw;
  Image img;
  img.width = static_cast<int>(w);
  img.height = static_cast<int>(h);
  img.rgb.resize(static_cast<size_t>(hw * 3));
  for (int64_t p = 0; p < hw; ++p)
    for (int c = 0; c < 3; ++c) {
      float v = 0;
      for (int k = 0; k < 4 && k < latents.dim(1); ++k) v += base[k * hw + p] * kFactors[k][c];
      img.rgb[static_cast<size_t>(p * 3 + c)] = std::clamp((v + 1.f) * 0.5f, 0.f, 1.f);
    }
  return img;
}

}  // namespace diffuse
