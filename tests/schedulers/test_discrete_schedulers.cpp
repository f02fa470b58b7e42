// Golden rollouts of the discrete-time (alphas_cumprod) schedulers against diffusers.
#include <gtest/gtest.h>

#include "schedulers/rollout.h"

namespace diffuse::test {

TEST(pndm_scheduler, golden_rollout) {
  run_golden_rollout("pndm");
}
TEST(ddim_scheduler, golden_rollout) {
  run_golden_rollout("ddim");
}
TEST(ddim_scheduler, golden_rollout_eta1) {
  run_golden_rollout("ddim-eta1");
}
TEST(ddim_scheduler, golden_rollout_v_trailing_rescale) {
  run_golden_rollout("ddim-v-trailing-rescale");
}
TEST(ddpm_scheduler, golden_rollout) {
  run_golden_rollout("ddpm");
}
TEST(lcm_scheduler, golden_rollout) {
  run_golden_rollout("lcm");
}

}  // namespace diffuse::test
