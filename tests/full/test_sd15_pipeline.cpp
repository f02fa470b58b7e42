// The whole SD 1.5 pipeline at 512x512 against diffusers, with the full-size architecture and the
// fixtures' rule weights: 4 DPM-Solver++ steps with guidance, then the VAE (about a minute here).
#include <gtest/gtest.h>

#include "common/fixtures.h"
#include "common/pipeline_check.h"
#include "diffuse/diffuse.hpp"

using namespace diffuse;

TEST(sd15_full, pipeline_dpmpp_512_matches_diffusers) {
  LoadOptions lo;
  lo.synthetic_weights = true;
  // ../shared/configs/sd15/tokenizer holds only tokenizer_config.json; the CLIP vocabulary is the
  // same file every SD 1.x model ships.
  lo.tokenizer_fallback_dir = test::fixture("models/tiny-sd1/tokenizer");
  auto pipe = Pipeline::load(std::string(DIFFUSE_CONFIGS_DIR) + "/sd15", lo);
  test::check_golden_pipeline(
      *pipe, test::fixture("golden-full/pipe-sd15-rule-dpmpp-512.safetensors"),
      test::fixture("golden-full/sd15-rule-dpmpp-512-0.png"), "sd15-rule-dpmpp-512");
}
