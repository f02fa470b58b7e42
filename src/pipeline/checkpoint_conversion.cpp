#include "pipeline/checkpoint_conversion.h"

#include <algorithm>
#include <charconv>
#include <cstring>
#include <optional>
#include <vector>

#include "diffuse/error.hpp"

namespace diffuse {

std::optional<std::pair<int, std::string>> split_index(const std::string& s) {
  const auto dot = s.find('.');
  if (dot == std::string::npos || dot == 0) return std::nullopt;
  int v = 0;
  const auto r = std::from_chars(s.data(), s.data() + dot, v);
  if (r.ec != std::errc() || r.ptr != s.data() + dot) return std::nullopt;
  return std::make_pair(v, s.substr(dot + 1));
}

namespace {

bool starts_with(const std::string& s, const std::string& p) {
  return s.rfind(p, 0) == 0;
}

// Replaces a leading `from` of `s` by `to` for the first matching pair; nullopt when none does.
std::optional<std::string> rename_prefix(
    const std::string& s, std::initializer_list<std::pair<const char*, const char*>> table) {
  for (const auto& [from, to] : table)
    if (starts_with(s, from)) return std::string(to) + s.substr(std::string(from).size());
  return std::nullopt;
}

// LDM ResBlock (UNet) -> diffusers ResnetBlock2D.
std::optional<std::string> unet_resnet(const std::string& t) {
  return rename_prefix(t, {{"in_layers.0.", "norm1."},
                           {"in_layers.2.", "conv1."},
                           {"emb_layers.1.", "time_emb_proj."},
                           {"out_layers.0.", "norm2."},
                           {"out_layers.3.", "conv2."},
                           {"skip_connection.", "conv_shortcut."}});
}

// LDM SpatialTransformer keys already use diffusers' names (norm, proj_in, transformer_blocks.N.
// attn1.to_q, ff.net.0.proj, ..., proj_out).
std::optional<std::string> unet_attention(const std::string& t) {
  for (const char* p : {"norm.", "proj_in.", "proj_out.", "transformer_blocks."})
    if (starts_with(t, p)) return t;
  return std::nullopt;
}

[[noreturn]] void unknown_key(const std::string& path, const std::string& key) {
  throw FileError(path + ": unrecognised checkpoint key '" + key +
                  "' (not an SD 1.x/2.x/XL checkpoint, or a variant diffuse does not support)");
}

/// A contiguous [cols, rows] copy of the 2-D tensor `t`, of any dtype.
Tensor transposed(const Tensor& t) {
  const Tensor src = t.contiguous();
  const int64_t rows = src.dim(0), cols = src.dim(1);
  Tensor out = Tensor::empty({cols, rows}, src.dtype());
  const size_t size = dtype_size(src.dtype());
  const auto* from = static_cast<const unsigned char*>(src.raw());
  auto* to = static_cast<unsigned char*>(out.raw());
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c)
      std::memcpy(to + static_cast<size_t>(c * rows + r) * size,
                  from + static_cast<size_t>(r * cols + c) * size, size);
  return out;
}

}  // namespace

std::string detect_checkpoint_family(const StateDict& sd, const std::string& path) {
  bool unet = false, clip = false, openclip = false, xl_clip = false, xl_openclip = false,
       refiner_openclip = false;
  for (const auto& [k, t] : sd) {
    unet |= starts_with(k, "model.diffusion_model.");
    clip |= starts_with(k, "cond_stage_model.transformer.");
    openclip |= starts_with(k, "cond_stage_model.model.");
    xl_clip |= starts_with(k, kSdxlClipPrefix);
    xl_openclip |= starts_with(k, kSdxlOpenClipPrefix);
    refiner_openclip |= starts_with(k, kSdxlRefinerOpenClipPrefix);
  }
  if (!unet)
    throw FileError(path + ": not a Stable Diffusion checkpoint (no model.diffusion_model.* keys)");
  // As diffusers' infer_diffusers_model_type: SDXL base by its OpenCLIP ViT-bigG at embedders.1,
  // the refiner by its only embedder being OpenCLIP.
  if (xl_openclip) {
    if (!xl_clip)
      throw FileError(path + ": SDXL checkpoint without its first text encoder (" +
                      kSdxlClipPrefix + "*)");
    return "sdxl";
  }
  if (refiner_openclip) return "sdxl-refiner";
  if (xl_clip)
    throw FileError(path + ": SDXL checkpoint without its second text encoder (" +
                    kSdxlOpenClipPrefix + "*)");
  if (openclip) return "sd2";
  if (clip) return "sd1";
  throw FileError(path + ": no text encoder weights (cond_stage_model.*) in the checkpoint");
}

LdmEncoderNames::LdmEncoderNames(const UNetConfig& c) {
  const int levels = static_cast<int>(c.levels());
  slots_.push_back({-1, 0, false});  // input_blocks.0 is conv_in
  for (int l = 0; l < levels; ++l) {
    for (int j = 0; j < c.layers_per_block[static_cast<size_t>(l)]; ++j)
      slots_.push_back({l, j, false});
    if (l + 1 < levels) slots_.push_back({l, 0, true});
  }
}

std::optional<std::string> LdmEncoderNames::operator()(const std::string& k) const {
  if (auto name = rename_prefix(k, {{"time_embed.0.", "time_embedding.linear_1."},
                                    {"time_embed.2.", "time_embedding.linear_2."},
                                    {"input_blocks.0.0.", "conv_in."}}))
    return name;
  if (starts_with(k, "input_blocks.")) {
    const auto bi = split_index(k.substr(13));
    const auto sub = bi ? split_index(bi->second) : std::nullopt;
    if (!bi || !sub || bi->first <= 0 || static_cast<size_t>(bi->first) >= slots_.size())
      return std::nullopt;
    const Slot s = slots_[static_cast<size_t>(bi->first)];
    const std::string blk = "down_blocks." + std::to_string(s.level) + ".";
    if (s.sampler && sub->first == 0 && starts_with(sub->second, "op."))
      return blk + "downsamplers.0.conv." + sub->second.substr(3);
    if (!s.sampler && sub->first == 0)
      if (auto r = unet_resnet(sub->second))
        return blk + "resnets." + std::to_string(s.j) + "." + *r;
    if (!s.sampler && sub->first == 1)
      if (auto r = unet_attention(sub->second))
        return blk + "attentions." + std::to_string(s.j) + "." + *r;
  } else if (starts_with(k, "middle_block.")) {
    const auto sub = split_index(k.substr(13));
    if (sub && (sub->first == 0 || sub->first == 2))
      if (auto r = unet_resnet(sub->second))
        return "mid_block.resnets." + std::to_string(sub->first / 2) + "." + *r;
    if (sub && sub->first == 1)
      if (auto r = unet_attention(sub->second)) return "mid_block.attentions.0." + *r;
  }
  return std::nullopt;
}

WeightStore convert_ldm_unet(const StateDict& sd, const UNetConfig& c, const std::string& path) {
  const std::string prefix = "model.diffusion_model.";
  const int levels = static_cast<int>(c.levels());
  const LdmEncoderNames encoder(c);
  struct Slot {
    int level, j;
    bool sampler;
  };
  std::vector<Slot> out_slots;  // output_blocks.<i> -> (up level, layer j)
  for (int u = 0; u < levels; ++u) {
    const int lpb = c.layers_per_block[static_cast<size_t>(levels - 1 - u)];
    for (int j = 0; j <= lpb; ++j) out_slots.push_back({u, j, j == lpb && u + 1 < levels});
  }

  WeightStore w;
  w.set_source(path);
  for (const auto& [key, t] : sd) {
    if (!starts_with(key, prefix)) continue;
    const std::string k = key.substr(prefix.size());
    std::optional<std::string> name =
        rename_prefix(k, {{"out.0.", "conv_norm_out."},
                          {"out.2.", "conv_out."},
                          // SDXL's added (text_time) embedding.
                          {"label_emb.0.0.", "add_embedding.linear_1."},
                          {"label_emb.0.2.", "add_embedding.linear_2."}});
    if (!name) name = encoder(k);
    if (!name && starts_with(k, "output_blocks.")) {
      const auto bi = split_index(k.substr(14));
      const auto sub = bi ? split_index(bi->second) : std::nullopt;
      if (bi && sub && bi->first >= 0 && static_cast<size_t>(bi->first) < out_slots.size()) {
        const Slot s = out_slots[static_cast<size_t>(bi->first)];
        const std::string blk = "up_blocks." + std::to_string(s.level) + ".";
        if (sub->first == 0) {
          if (auto r = unet_resnet(sub->second))
            name = blk + "resnets." + std::to_string(s.j) + "." + *r;
        } else if (s.sampler && starts_with(sub->second, "conv.")) {
          name = blk + "upsamplers.0." + sub->second;  // output_blocks.i.{1|2}.conv
        } else if (sub->first == 1) {
          if (auto r = unet_attention(sub->second))
            name = blk + "attentions." + std::to_string(s.j) + "." + *r;
        }
      }
    }
    if (!name) unknown_key(path, key);
    w.add(*name, t);
  }
  if (w.size() == 0) throw FileError(path + ": no UNet weights (model.diffusion_model.*)");
  return w;
}

WeightStore convert_ldm_vae(const StateDict& sd, const VaeConfig& c, const std::string& path) {
  const std::string prefix = "first_stage_model.";
  const int levels = static_cast<int>(c.levels());
  auto resnet = [](const std::string& t) {
    return starts_with(t, "nin_shortcut.") ? "conv_shortcut." + t.substr(13) : t;
  };
  WeightStore w;
  w.set_source(path);
  for (const auto& [key, t] : sd) {
    if (!starts_with(key, prefix) || starts_with(key, prefix + "loss.")) continue;
    const std::string k = key.substr(prefix.size());
    std::optional<std::string> name;
    Tensor value = t;
    if (starts_with(k, "quant_conv.") || starts_with(k, "post_quant_conv.")) name = k;
    for (const char* part : {"encoder.", "decoder."}) {
      if (name || !starts_with(k, part)) continue;
      const std::string p = part, r = k.substr(p.size());
      if (starts_with(r, "conv_in.") || starts_with(r, "conv_out.")) {
        name = k;
      } else if (starts_with(r, "norm_out.")) {
        name = p + "conv_norm_out." + r.substr(9);
      } else if (starts_with(r, "mid.block_1.") || starts_with(r, "mid.block_2.")) {
        name = p + "mid_block.resnets." + (r[10] == '1' ? "0." : "1.") + resnet(r.substr(12));
      } else if (starts_with(r, "mid.attn_1.")) {
        if (auto a = rename_prefix(r.substr(11), {{"norm.", "group_norm."},
                                                  {"q.", "to_q."},
                                                  {"k.", "to_k."},
                                                  {"v.", "to_v."},
                                                  {"proj_out.", "to_out.0."}})) {
          name = p + "mid_block.attentions.0." + *a;
          // 1x1 convolutions in LDM, linear layers in diffusers.
          if (!starts_with(*a, "group_norm.") && t.ndim() == 4 && t.dim(2) == 1 && t.dim(3) == 1)
            value = t.contiguous().reshape({t.dim(0), t.dim(1)});
        }
      } else if (starts_with(r, "down.") || starts_with(r, "up.")) {
        const bool down = r[0] == 'd';
        const auto li = split_index(r.substr(down ? 5 : 3));
        if (li && li->first >= 0 && li->first < levels && down == (p == "encoder.")) {
          const int level = down ? li->first : levels - 1 - li->first;
          const std::string blk =
              p + (down ? "down_blocks." : "up_blocks.") + std::to_string(level) + ".";
          if (starts_with(li->second, "block.")) {
            if (const auto bj = split_index(li->second.substr(6)))
              name = blk + "resnets." + std::to_string(bj->first) + "." + resnet(bj->second);
          } else if (down && starts_with(li->second, "downsample.conv.")) {
            name = blk + "downsamplers.0.conv." + li->second.substr(16);
          } else if (!down && starts_with(li->second, "upsample.conv.")) {
            name = blk + "upsamplers.0.conv." + li->second.substr(14);
          }
        }
      }
    }
    if (!name) unknown_key(path, key);
    w.add(*name, value);
  }
  if (w.size() == 0) throw FileError(path + ": no VAE weights (first_stage_model.*)");
  return w;
}

WeightStore convert_clip_text_encoder(const StateDict& sd, const std::string& prefix,
                                      const std::string& path) {
  WeightStore w;
  w.set_source(path);
  for (const auto& [key, t] : sd) {
    if (!starts_with(key, prefix)) continue;
    std::string k = key.substr(prefix.size());
    if (!starts_with(k, "text_model.")) k = "text_model." + k;  // older transformers layout
    if (k.size() >= 13 && k.compare(k.size() - 13, 13, ".position_ids") == 0) continue;  // a buffer
    w.add(k, t);
  }
  if (w.size() == 0) throw FileError(path + ": no text encoder weights (" + prefix + "*)");
  return w;
}

WeightStore convert_open_clip_text_encoder(const StateDict& sd, const std::string& prefix,
                                           bool with_projection, const std::string& path) {
  const std::string blocks = "transformer.resblocks.";
  int last_block = -1;
  for (const auto& [key, t] : sd)
    if (starts_with(key, prefix + blocks))
      if (const auto bi = split_index(key.substr(prefix.size() + blocks.size())))
        last_block = std::max(last_block, bi->first);
  if (last_block < 1)
    throw FileError(path + ": OpenCLIP text encoder (" + prefix +
                    "*) has fewer than two resblocks");
  WeightStore w;
  w.set_source(path);
  for (const auto& [key, t] : sd) {
    if (!starts_with(key, prefix)) continue;
    const std::string k = key.substr(prefix.size());
    if (k == "logit_scale") continue;  // contrastive training only
    if (k == "text_projection") {
      // x @ P in OpenCLIP, a Linear (weight P^T) in transformers.
      if (with_projection) w.add("text_projection.weight", transposed(t));
      continue;
    }
    if (auto r = rename_prefix(k, {{"token_embedding.", "text_model.embeddings.token_embedding."},
                                   {"ln_final.", "text_model.final_layer_norm."}})) {
      w.add(*r, t);
      continue;
    }
    if (k == "positional_embedding") {
      w.add("text_model.embeddings.position_embedding.weight", t);
      continue;
    }
    const auto bi = starts_with(k, blocks) ? split_index(k.substr(blocks.size())) : std::nullopt;
    if (!bi) unknown_key(path, key);
    // SD 2.x conditions on the penultimate layer, which its diffusers text encoder stores as the
    // last; SDXL keeps every layer (and takes hidden_states[-2]).
    if (!with_projection && bi->first == last_block) continue;
    const std::string layer = "text_model.encoder.layers." + std::to_string(bi->first) + ".";
    const std::string& r = bi->second;
    if (r == "attn.in_proj_weight" || r == "attn.in_proj_bias") {
      const int64_t h = t.dim(0) / 3;
      if (t.dim(0) != 3 * h)
        throw FileError(path + ": '" + key + "' is not three stacked projections");
      const std::string suffix = r == "attn.in_proj_weight" ? "weight" : "bias";
      const Tensor dense = t.contiguous();
      const char* parts[] = {"q_proj.", "k_proj.", "v_proj."};
      for (int i = 0; i < 3; ++i)
        w.add(layer + "self_attn." + parts[i] + suffix, dense.narrow(0, i * h, h));
      continue;
    }
    auto n = rename_prefix(r, {{"ln_1.", "layer_norm1."},
                               {"ln_2.", "layer_norm2."},
                               {"mlp.c_fc.", "mlp.fc1."},
                               {"mlp.c_proj.", "mlp.fc2."},
                               {"attn.out_proj.", "self_attn.out_proj."}});
    if (!n) unknown_key(path, key);
    w.add(layer + *n, t);
  }
  if (with_projection && !w.contains("text_projection.weight"))
    throw FileError(path + ": no " + prefix + "text_projection in the checkpoint");
  return w;
}

WeightStore convert_ldm_text_encoder(const StateDict& sd, const std::string& family,
                                     const std::string& path) {
  if (family == "sd1") return convert_clip_text_encoder(sd, "cond_stage_model.transformer.", path);
  return convert_open_clip_text_encoder(sd, "cond_stage_model.model.", /*with_projection=*/false,
                                        path);
}

}  // namespace diffuse
