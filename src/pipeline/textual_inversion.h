// Textual-inversion embeddings (learned token vectors) as people download them, loaded as
// diffusers' load_textual_inversion does: the token is added to the tokenizer (a multi-vector
// embedding as consecutive tokens) and its vectors appended to the text encoder's token
// embedding table.
#pragma once

#include <string>

#include "core/tensor.h"

namespace diffuse {

struct TextualInversion {
  std::string path;
  std::string token;  // what the prompt writes
  Tensor vectors;     // [n, hidden]
};

/// Reads a .safetensors embedding: diffusers' layout (one tensor, named by its token) or
/// A1111's (`emb_params`, the token being the file's stem). FileError naming the file for other
/// layouts (SDXL's clip_l/clip_g pairs included) and other formats (.pt: convert to safetensors).
TextualInversion read_textual_inversion(const std::string& path);

}  // namespace diffuse
