#include "pipeline/a1111_prompt_encoding.h"

#include <algorithm>

#include "backend/ops.h"
#include "diffuse/error.hpp"
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

namespace {

/// A chunk's ids as the text encoder gets them: after the chunk's first end-of-text token the
/// tokenizer's pad token where it differs (SD 2.x's and SDXL's OpenCLIP pad with "!").
Tensor chunk_input(const ClipTokenizer& tokenizer, const a1111::PromptChunk& chunk, Device device) {
  std::vector<int64_t> ids = chunk.tokens;
  const int64_t eos = tokenizer.eos_id(), pad = tokenizer.pad_id();
  if (pad != eos) {
    const auto first_end = std::find(ids.begin(), ids.end(), eos);
    if (first_end != ids.end()) std::fill(first_end + 1, ids.end(), pad);
  }
  Tensor input = Tensor::empty({1, static_cast<int64_t>(ids.size())}, DType::I64);
  std::copy(ids.begin(), ids.end(), input.data_as<int64_t>());
  return input.on(device);
}

}  // namespace

Tensor encode_prompt_a1111(const StableDiffusionModel& model, const std::string& prompt,
                           int clip_skip, Device device) {
  const a1111::ParsedPrompt parsed = a1111::parse_prompt_attention(prompt);
  Tensor context;
  for (const a1111::PromptChunk& chunk : a1111::tokenize_chunks(model.tokenizer, parsed)) {
    const Tensor z = apply_emphasis(
        model.text_encoder.encode(chunk_input(model.tokenizer, chunk, device), clip_skip),
        chunk.multipliers);
    context = context.ndim() == 0 ? z : ops::concat(context, z, 1);
  }
  return context;
}

XLPromptEmbeds encode_prompt_xl_a1111(const StableDiffusionModel* first,
                                      const ClipTokenizer& tokenizer_2,
                                      const ClipTextModel& text_encoder_2,
                                      const std::string& prompt, Device device) {
  const a1111::ParsedPrompt parsed = a1111::parse_prompt_attention(prompt);
  const std::vector<a1111::PromptChunk> chunks_2 = a1111::tokenize_chunks(tokenizer_2, parsed);
  std::vector<a1111::PromptChunk> chunks_1;
  if (first) {
    chunks_1 = a1111::tokenize_chunks(first->tokenizer, parsed);
    if (chunks_1.size() != chunks_2.size())
      throw ConfigError("the prompt splits into " + std::to_string(chunks_1.size()) +
                        " chunks for the first text encoder and " +
                        std::to_string(chunks_2.size()) +
                        " for the second (their tokenizers differ); shorten the prompt");
  }
  XLPromptEmbeds out;
  for (size_t k = 0; k < chunks_2.size(); ++k) {
    // Each encoder's penultimate layer with its own emphasis; the pooled output of the first
    // chunk (sd_hijack_clip's forward returns zs[0].pooled).
    const ClipTextOutput out_2 =
        text_encoder_2.forward(chunk_input(tokenizer_2, chunks_2[k], device), true);
    Tensor z = apply_emphasis(out_2.hidden_states[out_2.hidden_states.size() - 2],
                              chunks_2[k].multipliers);
    if (k == 0) out.pooled_prompt_embeds = out_2.text_embeds;
    if (first) {
      const Tensor z_1 = apply_emphasis(first->text_encoder.hidden_state_from_end(
                                            chunk_input(first->tokenizer, chunks_1[k], device), 2),
                                        chunks_1[k].multipliers);
      z = ops::concat(z_1, z, 2);
    }
    out.prompt_embeds = k == 0 ? z : ops::concat(out.prompt_embeds, z, 1);
  }
  return out;
}

}  // namespace diffuse::stages
