// Golden rollouts of the discrete-time (alphas_cumprod) schedulers against diffusers.
#include <gtest/gtest.h>

#include <cstdio>
#include <string>

#include "schedulers/rollout.h"

namespace diffuse::test {
namespace {
// Runs a golden case and reports its worst relative error (model inputs and trajectory).
void golden(const std::string& case_name) {
  const double err = check_golden_rollout(case_name);
  std::printf("  %s: max relative error %.3g\n", case_name.c_str(), err);
}
}  // namespace

TEST(pndm_scheduler, golden_rollout) {
  golden("pndm");
}
TEST(ddim_scheduler, golden_rollout) {
  golden("ddim");
}
TEST(ddim_scheduler, golden_rollout_eta1) {
  golden("ddim-eta1");
}
TEST(ddim_scheduler, golden_rollout_v_trailing_rescale) {
  golden("ddim-v-trailing-rescale");
}
TEST(ddpm_scheduler, golden_rollout) {
  golden("ddpm");
}
TEST(lcm_scheduler, golden_rollout) {
  golden("lcm");
}

}  // namespace diffuse::test
