// The error measures every golden test relies on (tests/common/fixtures.h): a NaN or an infinity
// anywhere in the compared tensors must make the comparison fail, wherever it sits.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <vector>

#include "common/fixtures.h"
#include "core/tensor.h"

using namespace diffuse;

namespace {

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
constexpr float kInf = std::numeric_limits<float>::infinity();

// A 2x3x4 tensor with values near 1, and a copy that differs by a small finite amount everywhere.
std::vector<float> reference_values() {
  std::vector<float> v(24);
  for (size_t i = 0; i < v.size(); ++i) v[i] = 1.0f + 0.01f * static_cast<float>(i);
  return v;
}

Tensor make(const std::vector<float>& v) {
  return Tensor::from_floats(v.data(), {2, 3, 4});
}

// Both measures, ours vs ref, must report something a `< tol` / `<= tol` check rejects.
void expect_fails(const std::vector<float>& ours, const std::vector<float>& ref) {
  const double rel = test::rel_error(make(ours), make(ref));
  const double abs = test::abs_error(make(ours), make(ref));
  EXPECT_FALSE(rel < 1e-3) << "rel_error " << rel;
  EXPECT_FALSE(rel <= 1e30) << "rel_error " << rel;
  EXPECT_FALSE(abs < 2e-3) << "abs_error " << abs;
  EXPECT_FALSE(abs <= 1e30) << "abs_error " << abs;
}

}  // namespace

TEST(error_measures, identical_tensors_measure_zero) {
  const auto ref = reference_values();
  EXPECT_EQ(test::rel_error(make(ref), make(ref)), 0.0);
  EXPECT_EQ(test::abs_error(make(ref), make(ref)), 0.0);
}

TEST(error_measures, finite_difference_is_measured) {
  const auto ref = reference_values();
  auto ours = ref;
  ours[5] += 0.5f;
  EXPECT_NEAR(test::abs_error(make(ours), make(ref)), 0.5, 1e-6);
  EXPECT_NEAR(test::rel_error(make(ours), make(ref)), 0.5 / ref.back(), 1e-6);
}

TEST(error_measures, nan_in_the_middle_fails_even_with_larger_finite_differences_after_it) {
  const auto ref = reference_values();
  auto ours = ref;
  ours[10] = kNaN;
  for (size_t i = 11; i < ours.size(); ++i) ours[i] += 0.1f;  // later finite differences
  expect_fails(ours, ref);
}

TEST(error_measures, nan_at_the_start_fails) {
  const auto ref = reference_values();
  auto ours = ref;
  ours[0] = kNaN;
  ours[3] += 0.2f;
  expect_fails(ours, ref);
}

TEST(error_measures, nan_in_the_reference_fails) {
  const auto ours = reference_values();
  auto ref = ours;
  ref[7] = kNaN;
  expect_fails(ours, ref);
}

TEST(error_measures, nan_everywhere_fails) {
  const std::vector<float> ours(24, kNaN);
  expect_fails(ours, reference_values());
}

TEST(error_measures, infinity_where_the_reference_is_finite_fails) {
  const auto ref = reference_values();
  auto ours = ref;
  ours[12] = kInf;
  expect_fails(ours, ref);
  ours[12] = -kInf;
  expect_fails(ours, ref);
}

TEST(error_measures, infinity_of_the_other_sign_fails) {
  auto ref = reference_values();
  ref[4] = kInf;
  auto ours = ref;
  ours[4] = -kInf;
  expect_fails(ours, ref);
}

TEST(error_measures, shared_infinity_does_not_hide_other_differences) {
  auto ref = reference_values();
  ref[2] = kInf;
  auto ours = ref;
  ours[20] += 0.5f;
  EXPECT_NEAR(test::abs_error(make(ours), make(ref)), 0.5, 1e-6);
  // Scaled by the largest finite reference value, not by the infinity.
  EXPECT_NEAR(test::rel_error(make(ours), make(ref)), 0.5 / ref.back(), 1e-6);
}
