// A1111's <lora:NAME:WEIGHT> prompt tags (serve/prompt_loras.h): found and stripped as
// extra_networks.parse_prompt does, weights read as A1111's Lora extension reads them.
#include <gtest/gtest.h>

#include "serve/http_error.h"
#include "serve/prompt_loras.h"

namespace {

using diffuse::serve::HttpError;
using diffuse::serve::parse_prompt_tags;

// The 422 message for `prompt`, or "" when it parses.
std::string refusal(const std::string& prompt) {
  try {
    parse_prompt_tags(prompt, "prompt");
  } catch (const HttpError& e) {
    EXPECT_EQ(e.status(), 422);
    return e.what();
  }
  return "";
}

TEST(prompt_loras, tags_are_stripped_and_read_in_order) {
  const auto p = parse_prompt_tags("a cat <lora:film:0.8>, in a hat<lora:sketch>", "prompt");
  EXPECT_EQ(p.text, "a cat , in a hat");
  ASSERT_EQ(p.loras.size(), 2u);
  EXPECT_EQ(p.loras[0].name, "film");
  EXPECT_FLOAT_EQ(p.loras[0].scale, 0.8f);
  EXPECT_EQ(p.loras[0].tag, "<lora:film:0.8>");
  EXPECT_EQ(p.loras[1].name, "sketch");
  EXPECT_FLOAT_EQ(p.loras[1].scale, 1.f);  // the default weight
  EXPECT_TRUE(p.skipped.empty());
}

TEST(prompt_loras, weights_as_a1111_reads_them) {
  auto one = [](const std::string& prompt) {
    const auto p = parse_prompt_tags(prompt, "prompt");
    EXPECT_EQ(p.loras.size(), 1u) << prompt;
    return p.loras.empty() ? diffuse::serve::LoraTag{} : p.loras[0];
  };
  EXPECT_FLOAT_EQ(one("<lora:x:-0.5>").scale, -0.5f);
  EXPECT_FLOAT_EQ(one("<lora:x: 1.5 >").scale, 1.5f);  // float() allows spaces
  EXPECT_FLOAT_EQ(one("<lora:x:.25>").scale, 0.25f);
  EXPECT_FLOAT_EQ(one("<lora:x:0.7:0.7>").scale, 0.7f);  // TE and UNet weights that agree
  EXPECT_FLOAT_EQ(one("<lora:x:te=0.6:unet=0.6>").scale, 0.6f);
  EXPECT_FLOAT_EQ(one("<lora:x:unet=1>").scale, 1.f);
  EXPECT_EQ(one("<lora: my lora :1>").name, "my lora");
  EXPECT_EQ(one("<lyco:x:0.3>").name, "x");  // A1111's alias of lora
}

TEST(prompt_loras, text_that_is_not_a_tag_is_kept) {
  for (const std::string text :
       {"a < b > c", "<lora:>", "<:x>", "<lora:x", "<lora x:1>", "plain", "", "<>", "<<lora"}) {
    const auto p = parse_prompt_tags(text, "prompt");
    EXPECT_EQ(p.text, text);
    EXPECT_TRUE(p.loras.empty()) << text;
  }
  // [^>]+ runs to the first '>': the second '<' belongs to the first tag's arguments.
  const auto nested = parse_prompt_tags("<lora:a<b>c", "prompt");
  ASSERT_EQ(nested.loras.size(), 1u);
  EXPECT_EQ(nested.loras[0].name, "a<b");
  EXPECT_EQ(nested.text, "c");
}

TEST(prompt_loras, other_extra_networks_are_removed_and_reported) {
  const auto p = parse_prompt_tags("x <embedding_thing:a:1> y", "prompt");
  EXPECT_EQ(p.text, "x  y");
  EXPECT_EQ(p.skipped, std::vector<std::string>{"<embedding_thing:a:1>"});
}

TEST(prompt_loras, unsupported_tags_are_refused_naming_field_and_tag) {
  const std::string bad_weight = refusal("a <lora:film:lots>");
  EXPECT_NE(bad_weight.find("prompt: <lora:film:lots>"), std::string::npos) << bad_weight;
  EXPECT_NE(bad_weight.find("not a number"), std::string::npos) << bad_weight;
  EXPECT_NE(refusal("<lora:x:nan>").find("not a number"), std::string::npos);
  EXPECT_NE(refusal("<lora:x:inf>").find("not a number"), std::string::npos);
  EXPECT_NE(refusal("<lora:x:0.5:1>").find("separate text-encoder and UNet"), std::string::npos);
  EXPECT_NE(refusal("<lora:x:te=1:unet=0>").find("separate"), std::string::npos);
  EXPECT_NE(refusal("<lora:x:1:1:8>").find("dyn"), std::string::npos);
  EXPECT_NE(refusal("<lora:x:dyn=8>").find("dyn"), std::string::npos);
  EXPECT_NE(refusal("<lora:x:alpha=8>").find("alpha="), std::string::npos);
  EXPECT_NE(refusal("<lora: :1>").find("name is empty"), std::string::npos);
  EXPECT_NE(refusal("<hypernet:h:1>").find("hypernetworks"), std::string::npos);
  EXPECT_EQ(refusal("fine <lora:x:1>"), "");
}

}  // namespace
