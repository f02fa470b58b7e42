#include "pipeline/latent_preview.h"

#include <vector>

#include "backend/ops.h"

namespace diffuse {

Image latent_preview(const Tensor& latents, int64_t index) {
  // Rows: R, G, B; columns: the contribution of latent channels 0..3 (further channels: none).
  static constexpr float kFactors[3][4] = {{0.298f, 0.187f, -0.158f, -0.184f},
                                           {0.207f, 0.286f, 0.189f, -0.271f},
                                           {0.208f, 0.173f, 0.264f, -0.473f}};
  const int64_t channels = latents.dim(1), h = latents.dim(2), w = latents.dim(3);
  std::vector<float> weights(static_cast<size_t>(3 * channels), 0.f);
  for (int64_t c = 0; c < 3; ++c)
    for (int64_t k = 0; k < channels && k < 4; ++k)
      weights[static_cast<size_t>(c * channels + k)] = kFactors[c][k];
  const Tensor projection = Tensor::from_floats(weights.data(), {3, channels, 1, 1});
  const Tensor rgb = ops::conv2d(latents.narrow(0, index, 1), projection, nullptr, {});
  using ops::expr::in;
  const Tensor unit = ops::evaluate(clamp((in(0) + 1.f) * 0.5f, 0.f, 1.f), {rgb});
  Image img;
  img.width = static_cast<int>(w);
  img.height = static_cast<int>(h);
  img.rgb = ops::nchw_to_nlc(unit).to_vector();  // HWC
  return img;
}

}  // namespace diffuse
