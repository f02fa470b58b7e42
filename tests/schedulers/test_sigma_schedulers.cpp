// Golden rollouts of the sigma-space (k-diffusion style) schedulers against diffusers.
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

TEST(euler_scheduler, golden_rollout) {
  golden("euler");
}
TEST(euler_scheduler, golden_rollout_trailing) {
  golden("euler-trailing");
}
TEST(euler_scheduler, golden_rollout_v_prediction) {
  golden("euler-v");
}
TEST(euler_ancestral_scheduler, golden_rollout) {
  golden("euler-a");
}
TEST(lms_scheduler, golden_rollout) {
  golden("lms");
}
TEST(heun_scheduler, golden_rollout) {
  golden("heun");
}

}  // namespace diffuse::test
