// The "torch" source against torch's own output (../shared/fixtures/golden/randn.safetensors).
// Seeds and shapes come from the file's metadata, so the fixture alone defines each case.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "common/fixtures.h"
#include "random/torch_generator.h"

using namespace diffuse;

namespace {

// The fixtures README allows 4e-6 absolute (float32 Box-Muller libm ulps); we mirror torch's
// vectorised math, so in practice the match is bit-exact.
constexpr double kNormalTolerance = 4e-6;

nlohmann::json cases() {
  auto f = test::golden("randn.safetensors");
  return nlohmann::json::parse(f.metadata().at("json")).at("cases");
}

nlohmann::json find_case(const std::string& name) {
  for (const auto& c : cases())
    if (c.at("name") == name) return c;
  ADD_FAILURE() << "no case " << name << " in randn.safetensors metadata";
  return {};
}

std::string format_error(double err) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3g", err);
  return buf;
}

Shape to_shape(const nlohmann::json& dims) {
  Shape s;
  for (const auto& d : dims) s.push_back(d.get<int64_t>());
  return s;
}

}  // namespace

TEST(random_torch, engine_matches_reference_mt19937) {
  // at::mt19937 is the reference algorithm: std::mt19937 (which the C++ standard pins down) gives
  // the same words for the same 32-bit seed.
  for (uint32_t seed : {0u, 42u, 5489u, 4294967295u}) {
    TorchGenerator g(seed);
    std::mt19937 ref(seed);
    for (int i = 0; i < 2000; ++i) ASSERT_EQ(g.random(), ref()) << "seed " << seed << " word " << i;
  }
}

TEST(random_torch, seeds_above_2_32_use_low_32_bits) {
  TorchGenerator big((uint64_t{1} << 32) + 5), small(5);
  EXPECT_EQ(big.seed(), (uint64_t{1} << 32) + 5);
  for (int i = 0; i < 100; ++i) ASSERT_EQ(big.random(), small.random());
}

TEST(randn_golden, single_draw_cases_match_torch) {
  auto f = test::golden("randn.safetensors");
  int checked = 0;
  for (const auto& c : cases()) {
    const std::string name = c.at("name");
    if (!c.contains("seed") || !c.contains("shape") || c.contains("fn")) continue;
    const Tensor ref = f.get(name);
    TorchGenerator g(c.at("seed").get<uint64_t>());
    const Tensor ours = g.randn(to_shape(c.at("shape")));
    ASSERT_EQ(ours.shape(), ref.shape()) << name;
    const double err = test::abs_error(ours, ref);
    RecordProperty(name + "_max_abs_error", format_error(err));
    EXPECT_LE(err, kNormalTolerance)
        << name << " seed " << c.at("seed") << " shape " << ours.shape().str();
    ++checked;
  }
  EXPECT_EQ(checked, 8);  // case0..case7
}

TEST(randn_golden, consecutive_draws_continue_the_stream) {
  // seq0..seq3 come from one generator: the blocked path and the scalar path (with its cached
  // second sample) interleave, so this checks the cache survives the blocked calls in between.
  const auto c = find_case("seq0..seq3");
  auto f = test::golden("randn.safetensors");
  TorchGenerator g(c.at("seed").get<uint64_t>());
  const auto& shapes = c.at("shapes");
  for (size_t i = 0; i < shapes.size(); ++i) {
    const std::string name = "seq" + std::to_string(i);
    const Tensor ours = g.randn(to_shape(shapes[i]));
    const Tensor ref = f.get(name);
    ASSERT_EQ(ours.shape(), ref.shape()) << name;
    const double err = test::abs_error(ours, ref);
    RecordProperty(name + "_max_abs_error", format_error(err));
    EXPECT_LE(err, kNormalTolerance) << name;
  }
}

TEST(randn_golden, rand_f32_matches_torch_exactly) {
  const auto c = find_case("rand_f32");
  auto f = test::golden("randn.safetensors");
  TorchGenerator g(c.at("seed").get<uint64_t>());
  const Tensor ours = g.rand(to_shape(c.at("shape")));
  EXPECT_EQ(test::abs_error(ours, f.get("rand_f32")), 0.0);  // the uniform stream is exact
}

TEST(random_torch, blocked_path_consumes_n_plus_16_words_for_ragged_sizes) {
  // n = 17: 17 uniforms, then 16 more for the recomputed tail; n = 32: exactly 32.
  for (int64_t n : {16, 17, 31, 32, 33}) {
    TorchGenerator a(11), b(11);
    std::vector<float> out(static_cast<size_t>(n));
    a.randn(out.data(), n);
    const int64_t used = n + (n % 16 ? 16 : 0);
    for (int64_t i = 0; i < used; ++i) b.random();
    EXPECT_EQ(a.random(), b.random()) << "n " << n;
  }
}

TEST(random_torch, scalar_path_caches_second_sample) {
  // Two scalar draws of one element use one Box-Muller pair (4 words), the second from the cache.
  TorchGenerator a(3), b(3);
  float x = 0, y = 0;
  a.randn(&x, 1);
  a.randn(&y, 1);
  const double first = b.normal_double();
  const double second = b.normal_double();
  EXPECT_EQ(x, static_cast<float>(first));
  EXPECT_EQ(y, static_cast<float>(second));
  TorchGenerator c(3);
  for (int i = 0; i < 4; ++i) c.random();
  EXPECT_EQ(a.random(), c.random());
}
