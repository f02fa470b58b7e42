#include "pipeline/a1111_prompt_encoding.h"

#include <algorithm>

#include "backend/ops.h"
#include "tokenizer/a1111_prompt.h"

namespace diffuse::stages {

namespace {

/// EmphasisOriginal.after_transformers: z * multipliers (per token), rescaled so that its mean is
/// the unweighted z's.
Tensor apply_emphasis(const Tensor& z, const std::vector<float>& multipliers) {
  std::vector<float> values = z.to_vector();
  const size_t width = values.size() / multipliers.size();
  double original_sum = 0, weighted_sum = 0;
  for (float v : values) original_sum += v;
  for (size_t i = 0; i < values.size(); ++i) {
    values[i] *= multipliers[i / width];
    weighted_sum += values[i];
  }
  // Means over the same count: their ratio is the ratio of the sums.
  const auto scale = static_cast<float>(static_cast<float>(original_sum / double(values.size())) /
                                        static_cast<float>(weighted_sum / double(values.size())));
  for (float& v : values) v *= scale;
  return Tensor::from_floats(values.data(), z.shape()).on(z.device());
}

}  // namespace

Tensor encode_prompt_a1111(const StableDiffusionModel& model, const std::string& prompt,
                           int clip_skip, Device device) {
  const a1111::ParsedPrompt parsed = a1111::parse_prompt_attention(prompt);
  const std::vector<a1111::PromptChunk> chunks = a1111::tokenize_chunks(model.tokenizer, parsed);
  const int64_t eos = model.tokenizer.eos_id(), pad = model.tokenizer.pad_id();
  Tensor context;
  bool first = true;
  for (const a1111::PromptChunk& chunk : chunks) {
    std::vector<int64_t> ids = chunk.tokens;
    if (pad != eos) {
      const auto first_end = std::find(ids.begin(), ids.end(), eos);
      if (first_end != ids.end()) std::fill(first_end + 1, ids.end(), pad);
    }
    Tensor input = Tensor::empty({1, static_cast<int64_t>(ids.size())}, DType::I64);
    std::copy(ids.begin(), ids.end(), input.data_as<int64_t>());
    const Tensor z =
        apply_emphasis(model.text_encoder.encode(input.on(device), clip_skip), chunk.multipliers);
    context = first ? z : ops::concat(context, z, 1);
    first = false;
  }
  return context;
}

}  // namespace diffuse::stages
