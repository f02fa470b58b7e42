// Helpers shared by the golden tests: where the fixtures live and how errors are measured.
#pragma once

#include <string>

#include "core/tensor.h"
#include "io/safetensors.h"

namespace diffuse::test {

/// ../shared/fixtures/<rel>
std::string fixture(const std::string& rel);
/// Opens ../shared/fixtures/golden/<name>.
SafetensorsFile golden(const std::string& name);
/// A scratch directory for this test binary (created on demand).
std::string temp_dir();

/// max|a - b| / max|b| (the fixtures README's measure); throws on shape mismatch.
double rel_error(const Tensor& ours, const Tensor& ref);
/// max|a - b|
double abs_error(const Tensor& ours, const Tensor& ref);

}  // namespace diffuse::test
