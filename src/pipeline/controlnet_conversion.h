// Single-file ControlNet checkpoints. The original layout (lllyasviel's ControlNet and the
// AUTOMATIC1111 extension's control_*.safetensors / .pth: control_model.input_blocks.*,
// zero_convs.N.0.*, input_hint_block.*, middle_block_out.0.*, time_embed.*, middle_block.*, or the
// same keys without the control_model. prefix) is converted to diffusers' ControlNetModel keys as
// diffusers' convert_controlnet_checkpoint does; a file already in diffusers' layout (how SDXL
// ControlNets are distributed) is used as it is.
#pragma once

#include <string>

#include "io/weight_store.h"
#include "models/controlnet/controlnet_model.h"
#include "pipeline/checkpoint_conversion.h"

namespace diffuse {

/// Original-layout ControlNet weights -> ControlNetModel keys, for the block layout of `config`.
/// With control_model.* keys present only those are converted (a bundled SD model's other keys
/// are ignored, as diffusers does); an unrecognised key of the control model is a FileError
/// naming `path` and the key.
WeightStore convert_ldm_controlnet(const StateDict& sd, const ControlNetConfig& config,
                                   const std::string& path);

/// A single-file ControlNet (.safetensors, or a torch .pth/.ckpt read without running pickle
/// code) in the original or diffusers layout, with the architecture of `config`: as diffusers'
/// ControlNetModel.from_single_file(path, config=...).
ControlNetModel load_controlnet_checkpoint(const std::string& path, const ControlNetConfig& config,
                                           AttentionKernel attention = AttentionKernel::Sliced);
/// The same with the config read from `config_path`: a config.json, or a folder holding one.
ControlNetModel load_controlnet_checkpoint(const std::string& path, const std::string& config_path);

}  // namespace diffuse
