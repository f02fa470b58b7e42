// Textual-inversion embeddings (learned token vectors) as people download them, loaded as
// diffusers' load_textual_inversion does: the token is added to the tokenizer (a multi-vector
// embedding as consecutive tokens) and its vectors appended to the text encoder's token
// embedding table. SDXL files carry one set of vectors per text encoder (A1111's clip_l/clip_g),
// added to each encoder as diffusers' docs load them (one load_textual_inversion call per
// encoder, the same token).
#pragma once

#include <string>
#include <vector>

#include "core/tensor.h"
#include "io/weight_store.h"
#include "models/clip/clip_text_model.h"
#include "tokenizer/clip_tokenizer.h"

namespace diffuse {

struct TextualInversion {
  std::string path;
  std::string token;      // what the prompt writes
  Tensor vectors;         // [n, hidden]: an SD 1.x/2.x embedding (one text encoder)
  Tensor clip_l, clip_g;  // [n, hidden] each: an SDXL embedding (text_encoder, text_encoder_2)
  bool sdxl() const { return clip_l.ndim() > 0; }
};

/// Reads an embedding: .safetensors in diffusers' layout (one tensor, named by its token),
/// A1111's (`emb_params`, the token being the file's stem) or A1111's SDXL layout (`clip_l` and
/// `clip_g`, the stem again); .pt/.bin torch files through the restricted unpickler (A1111's
/// `string_to_param` dict, or diffusers' {token: tensor}). FileError naming the file otherwise.
TextualInversion read_textual_inversion(const std::string& path);

/// Which of a file's vector sets a text encoder reads.
enum class EmbeddingPart {
  single,  // SD 1.x/2.x: the file's only set
  clip_l,  // SDXL's text_encoder (CLIP ViT-L)
  clip_g,  // SDXL's text_encoder_2 (OpenCLIP ViT-bigG), also a refiner's only encoder
};

/// Adds the embeddings in `paths` (their `part`) to `tokenizer` and to the token embedding table
/// in `store` (ids from config.vocab_size on, as diffusers' load_textual_inversion), growing the
/// config. ConfigError naming the file for an embedding made for another text encoder.
void add_embeddings(const std::vector<std::string>& paths, EmbeddingPart part, WeightStore& store,
                    ClipTextConfig& config, ClipTokenizer& tokenizer);

}  // namespace diffuse
