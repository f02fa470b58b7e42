#include "common/fixtures.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <limits>
#include <random>

#include "diffuse/error.hpp"

namespace diffuse::test {

// Each test program's own scratch directory, defined in a source that tests/CMakeLists.txt
// generates per program (a per-program macro would keep the programs from sharing one
// precompiled header).
extern const char* const kTempDir;

std::string fixture(const std::string& rel) {
  return std::string(DIFFUSE_FIXTURES_DIR) + "/" + rel;
}

SafetensorsFile golden(const std::string& name) {
  return SafetensorsFile::open(fixture("golden/" + name));
}

std::string temp_dir() {
  std::filesystem::create_directories(kTempDir);
  return kTempDir;
}

std::string temp_path(const std::string& name) {
  const std::string p = temp_dir() + "/" + name;
  std::filesystem::remove(p);
  return p;
}

std::string fresh_dir(const std::string& name) {
  const std::string dir = temp_dir() + "/" + name;
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

std::string fresh_dir_for_test(const std::string& what) {
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  return fresh_dir(std::string(info->test_suite_name()) + "." + info->name() + "-" + what);
}

Tensor random_tensor(const Shape& shape, uint32_t seed, float stddev) {
  std::mt19937 g(seed);
  std::normal_distribution<float> d(0.f, stddev);
  Tensor t = Tensor::empty(shape);
  for (int64_t i = 0; i < t.numel(); ++i) t.f32()[i] = d(g);
  return t;
}

std::string writable_model_copy(const std::string& model, const std::string& name) {
  namespace fs = std::filesystem;
  const std::string dir = temp_dir() + "/" + name;
  fs::remove_all(dir);
  fs::copy(fixture("models/" + model), dir, fs::copy_options::recursive);
  fs::permissions(dir, fs::perms::owner_all, fs::perm_options::add);
  for (auto& e : fs::recursive_directory_iterator(dir))
    fs::permissions(e.path(), fs::perms::owner_all, fs::perm_options::add);
  return dir;
}

double psnr_db(const std::vector<uint8_t>& a, const std::vector<uint8_t>& b) {
  if (a.size() != b.size()) throw ShapeError("psnr: images of different sizes");
  double se = 0;
  for (size_t i = 0; i < a.size(); ++i) se += std::pow(double(a[i]) - double(b[i]), 2);
  return se == 0 ? INFINITY : 10 * std::log10(255.0 * 255.0 / (se / double(a.size())));
}

static void check_same(const Tensor& a, const Tensor& b) {
  if (a.numel() != b.numel())
    throw ShapeError("compare: " + a.describe() + " vs reference " + b.describe());
}

// |a - b| for one element. Equal values (infinities of the same sign included) differ by 0; a NaN
// on either side, or an infinity the other side does not share, differs by NaN / inf.
static double elementwise_diff(float a, float b) {
  if (a == b) return 0;
  return std::fabs(double(a) - double(b));
}

// The running maximum, sticky on NaN: once a NaN is seen the result stays NaN, so a later finite
// difference cannot hide it (std::max and `d > m` both drop NaN).
static double worse(double running, double d) {
  if (std::isnan(running) || std::isnan(d)) return std::numeric_limits<double>::quiet_NaN();
  return std::max(running, d);
}

double rel_error(const Tensor& ours, const Tensor& ref) {
  check_same(ours, ref);
  Tensor a = ours.to(DType::F32).contiguous(), b = ref.to(DType::F32).contiguous();
  double max_diff = 0, max_ref = 0;
  for (int64_t i = 0; i < a.numel(); ++i) {
    max_diff = worse(max_diff, elementwise_diff(a.f32()[i], b.f32()[i]));
    // The scale is the largest finite reference value: an infinity the two sides share must not
    // divide every other difference down to 0.
    if (std::isfinite(b.f32()[i])) max_ref = std::max(max_ref, std::fabs(double(b.f32()[i])));
  }
  return max_ref > 0 ? max_diff / max_ref : max_diff;
}

double abs_error(const Tensor& ours, const Tensor& ref) {
  check_same(ours, ref);
  Tensor a = ours.to(DType::F32).contiguous(), b = ref.to(DType::F32).contiguous();
  double max_diff = 0;
  for (int64_t i = 0; i < a.numel(); ++i)
    max_diff = worse(max_diff, elementwise_diff(a.f32()[i], b.f32()[i]));
  return max_diff;
}

}  // namespace diffuse::test
