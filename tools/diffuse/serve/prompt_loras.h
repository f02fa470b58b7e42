// A1111's extra-network tags in prompts, `<lora:NAME:WEIGHT>`: found and stripped as A1111's
// extra_networks.parse_prompt does (any `<TYPE:ARGS>` is removed from the text), the LoRA ones
// kept for the caller to resolve against the server's --lora-dir.
#pragma once

#include <string>
#include <vector>

namespace diffuse::serve {

struct LoraTag {
  std::string tag;   // as written, "<lora:film:0.8>", for messages
  std::string name;  // "film"
  float scale = 1.f;
};

struct PromptTags {
  std::string text;                  // the prompt without its tags
  std::vector<LoraTag> loras;        // <lora:...> and <lyco:...> (A1111's alias), in prompt order
  std::vector<std::string> skipped;  // tags of other extra-network types, removed unused
};

/// Parses `prompt` (the field `field`, named in messages). A LoRA tag is NAME, NAME:WEIGHT, or
/// A1111's NAME:TE:UNET / te=, unet= forms when the two weights agree (the library applies one
/// scale to both); the weight defaults to 1. HttpError 422 naming the field and the tag for a
/// weight that is not a finite number, separate text-encoder/UNet weights, dyn=, an empty name,
/// and hypernetworks (<hypernet:...>, not supported).
PromptTags parse_prompt_tags(const std::string& prompt, const std::string& field);

}  // namespace diffuse::serve
