// LoRA adapters (low-rank weight updates) as people download them, applied the way diffusers'
// load_lora_weights + set_adapters does: each adapted layer gains
// scale * alpha / rank * up(down(x)). Here the update is merged into a copy of the layer's weight
// (W + scale * alpha / rank * up @ down), which costs nothing per step; the base weights stay
// untouched in the model's WeightStore, so switching LoRAs rebuilds only the adapted tensors.
//
// Formats: kohya / A1111 (`lora_unet_*`, `lora_te_*`, `lora_te1_*`/`lora_te2_*` for SDXL, with
// `.lora_down.weight`, `.lora_up.weight`, optional `.alpha`; Linear, conv (LoCon) and 1x1-conv
// layers) in diffusers module naming, and diffusers/PEFT (`unet.<module>.lora_A.weight` /
// `.lora_B.weight`, `text_encoder.` / `text_encoder_2.`, optional `.alpha`). Other adapter kinds
// (LoHa, LoKr, DoRA) and kohya files in the original LDM module naming are refused by name.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "io/weight_store.h"

namespace diffuse {

/// One adapted layer of a LoRA file.
struct LoraModule {
  std::string component;  // "unet", "text_encoder" or "text_encoder_2"
  std::string flat_name;  // the module path with '.' and '_' alike (kohya spelling), for matching
  std::string key;        // the file's key prefix, for messages
  Tensor down, up;        // [r, in(, kh, kw)], [out, r(, 1, 1)]
  float alpha = 0;        // alpha / rank scales the update (alpha = rank when the file has none)
};

/// A parsed LoRA file.
struct LoraFile {
  std::string path;
  std::vector<LoraModule> modules;
};

/// Reads a .safetensors LoRA. FileError naming the file for an unreadable file, an unknown
/// format or adapter kind, or a module with missing or mis-shaped halves.
LoraFile read_lora_file(const std::string& path);

/// A LoRA and the strength it is applied with.
struct LoraApplication {
  std::shared_ptr<const LoraFile> file;
  float scale = 1.f;
};

/// A copy of `base` (the weights of `component`) with every module of `loras` that belongs to it
/// merged into its weight. `matched` counts, per LoRA, the modules found in this component.
WeightStore apply_loras(const WeightStore& base, const std::string& component,
                        const std::vector<LoraApplication>& loras, std::vector<size_t>& matched);

}  // namespace diffuse
