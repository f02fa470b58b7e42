// Golden rollouts of the sigma-space (k-diffusion style) schedulers against diffusers.
#include <gtest/gtest.h>

#include "schedulers/rollout.h"

namespace diffuse::test {

TEST(euler_scheduler, golden_rollout) {
  run_golden_rollout("euler");
}
TEST(euler_scheduler, golden_rollout_trailing) {
  run_golden_rollout("euler-trailing");
}
TEST(euler_scheduler, golden_rollout_v_prediction) {
  run_golden_rollout("euler-v");
}
TEST(euler_ancestral_scheduler, golden_rollout) {
  run_golden_rollout("euler-a");
}
TEST(lms_scheduler, golden_rollout) {
  run_golden_rollout("lms");
}
TEST(heun_scheduler, golden_rollout) {
  run_golden_rollout("heun");
}

}  // namespace diffuse::test
