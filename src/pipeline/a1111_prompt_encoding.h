// The text conditioning AUTOMATIC1111's web UI computes for a prompt (SD 1.x/2.x, SDXL): each
// 75-token chunk of tokenizer/a1111_prompt.h encoded on its own, its hidden states multiplied by
// the emphasis weights and scaled back to their original mean (A1111's "Original" emphasis,
// modules/sd_emphasis.py), the chunks side by side.
#pragma once

#include <string>

#include "core/tensor.h"
#include "pipeline/model_folder.h"
#include "pipeline/stages.h"

namespace diffuse::stages {

/// [1, 77 x chunks, H], as modules/sd_hijack_clip.py's forward: tokens after a chunk's first
/// end-of-text token become the tokenizer's pad token where it differs (SD 2.x pads with "!");
/// `clip_skip` skips the last layers as for plain prompts.
Tensor encode_prompt_a1111(const StableDiffusionModel& model, const std::string& prompt,
                           int clip_skip, Device device);

/// SDXL as A1111 conditions it (sd_models_xl with both embedders hijacked): the prompt chunked
/// per tokenizer, each chunk through both encoders' penultimate layers with the emphasis applied
/// to each on its own, the two side by side ([1, 77 x chunks, H1 + H2]); the pooled output of
/// text_encoder_2 on the first chunk. A1111 applies no clip skip to SDXL. `first` null: a
/// refiner's text_encoder_2 alone.
XLPromptEmbeds encode_prompt_xl_a1111(const StableDiffusionModel* first,
                                      const ClipTokenizer& tokenizer_2,
                                      const ClipTextModel& text_encoder_2,
                                      const std::string& prompt, Device device);

}  // namespace diffuse::stages
