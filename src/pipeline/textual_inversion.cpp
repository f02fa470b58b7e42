#include "pipeline/textual_inversion.h"

#include <filesystem>

#include "diffuse/error.hpp"
#include "io/safetensors.h"

namespace fs = std::filesystem;

namespace diffuse {

TextualInversion read_textual_inversion(const std::string& path) {
  if (!fs::is_regular_file(path)) throw FileError(path + ": embedding file not found");
  if (fs::path(path).extension() != ".safetensors")
    throw FileError(path +
                    ": only .safetensors embeddings are read (a .pt/.bin embedding is a "
                    "pickle; convert it to safetensors)");
  const SafetensorsFile f = SafetensorsFile::open(path);
  const std::vector<std::string> keys = f.keys();
  TextualInversion ti;
  ti.path = path;
  if (keys.size() == 1 && keys[0] == "emb_params") {
    ti.token = fs::path(path).stem().string();  // A1111: the file name is the token
  } else if (keys.size() == 1) {
    ti.token = keys[0];  // diffusers: the tensor is named by its token
  } else if (f.contains("clip_l") || f.contains("clip_g")) {
    throw FileError(path + ": an SDXL embedding (clip_l/clip_g), which diffuse does not read yet");
  } else {
    throw FileError(path + ": not a textual-inversion embedding (expected one tensor: emb_params " +
                    "or the token's own name; found " + std::to_string(keys.size()) + ")");
  }
  Tensor v = f.get(keys[0]).to(DType::F32).contiguous();
  if (v.ndim() == 1) v = v.reshape({1, v.dim(0)});
  if (v.ndim() != 2 || v.dim(0) < 1)
    throw FileError(path + ": embedding '" + keys[0] + "' has shape " + v.shape().str() +
                    ", expected [vectors, width]");
  ti.vectors = v;
  return ti;
}

}  // namespace diffuse
