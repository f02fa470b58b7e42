// make_random_source: the names the CLI and config accept, and the error for anything else.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "diffuse/error.hpp"
#include "random/numpy_generator.h"
#include "random/philox_generator.h"
#include "random/random_source.h"
#include "random/torch_generator.h"

using namespace diffuse;

TEST(random_source, makes_each_named_source_with_the_seed) {
  for (const char* name : {"torch", "numpy", "philox"}) {
    auto src = make_random_source(name, 1234);
    ASSERT_NE(src, nullptr);
    EXPECT_EQ(src->name(), name);
  }
  // Same stream as constructing the generator directly.
  std::vector<float> a(20), b(20);
  make_random_source("torch", 77)->randn(a.data(), 20);
  TorchGenerator(77).randn(b.data(), 20);
  EXPECT_EQ(a, b);
  make_random_source("numpy", 77)->randn(a.data(), 20);
  NumpyGenerator(77).randn(b.data(), 20);
  EXPECT_EQ(a, b);
  make_random_source("philox", 77)->randn(a.data(), 20);
  PhiloxGenerator(77).randn(b.data(), 20);
  EXPECT_EQ(a, b);
}

TEST(random_source, tensor_overloads_fill_the_shape) {
  auto src = make_random_source("torch", 0);
  Tensor t = src->randn(Shape{1, 4, 8, 8});
  EXPECT_EQ(t.shape(), (Shape{1, 4, 8, 8}));
  std::vector<float> ref(256);
  TorchGenerator(0).randn(ref.data(), 256);
  for (int i = 0; i < 256; ++i) ASSERT_EQ(t.f32()[i], ref[static_cast<size_t>(i)]);
  Tensor u = src->rand(Shape{3, 5});
  for (int i = 0; i < 15; ++i) {
    EXPECT_GE(u.f32()[i], 0.0f);
    EXPECT_LT(u.f32()[i], 1.0f);
  }
}

TEST(random_source, unknown_name_is_a_config_error_naming_value_and_choices) {
  for (const char* bad : {"cuda", "", "Torch"}) {
    try {
      make_random_source(bad, 0);
      FAIL() << "no error for '" << bad << "'";
    } catch (const ConfigError& e) {
      const std::string what = e.what();
      EXPECT_NE(what.find("'" + std::string(bad) + "'"), std::string::npos) << what;
      for (const char* valid : {"torch", "numpy", "philox"})
        EXPECT_NE(what.find(valid), std::string::npos) << what;
    }
  }
}
