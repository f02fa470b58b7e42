// Helpers shared by the golden tests: where the fixtures live and how errors are measured.
#pragma once

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "core/tensor.h"
#include "io/safetensors.h"

namespace diffuse::test {

/// ../shared/fixtures/<rel>
std::string fixture(const std::string& rel);
/// Opens ../shared/fixtures/golden/<name>.
SafetensorsFile golden(const std::string& name);
/// A scratch directory for this test binary (created on demand).
std::string temp_dir();
/// temp_dir()/<name>, with any file left there by an earlier run removed: an output path.
std::string temp_path(const std::string& name);
/// temp_dir()/<name> as an empty directory (whatever an earlier run left there is removed).
std::string fresh_dir(const std::string& name);
/// fresh_dir() named after the running test and `what` (ctest runs tests in parallel processes).
std::string fresh_dir_for_test(const std::string& what);
/// A float32 tensor of normal values (mean 0, `stddev`) drawn from std::mt19937(seed), in order.
Tensor random_tensor(const Shape& shape, uint32_t seed, float stddev = 1.f);
/// A writable copy of ../shared/fixtures/models/<model> at temp_dir()/<name> (replacing any older
/// copy): the fixtures are read-only, tests that corrupt a model work on a copy.
std::string writable_model_copy(const std::string& model, const std::string& name);

/// max|a - b| / max|b| (the fixtures README's measure); throws on shape mismatch.
double rel_error(const Tensor& ours, const Tensor& ref);
/// max|a - b|
double abs_error(const Tensor& ours, const Tensor& ref);
/// PSNR in dB of two 8-bit images of equal size (infinity when identical).
double psnr_db(const std::vector<uint8_t>& a, const std::vector<uint8_t>& b);

/// Runs f() and checks that it throws E whose message contains every one of `needles`.
template <typename E, typename F>
void expect_error_mentioning(F f, const std::vector<std::string>& needles) {
  try {
    f();
    ADD_FAILURE() << "no exception";
  } catch (const E& e) {
    for (const auto& n : needles)
      EXPECT_NE(std::string(e.what()).find(n), std::string::npos)
          << "message '" << e.what() << "' does not mention '" << n << "'";
  }
}

}  // namespace diffuse::test
