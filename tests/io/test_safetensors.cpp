#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>

#include "common/fixtures.h"
#include "diffuse/error.hpp"
#include "io/safetensors.h"
#include "io/safetensors_writer.h"

using namespace diffuse;

namespace {

std::string write_raw(const std::string& name, const std::string& header, size_t data_bytes,
                      bool lie_length = false, uint64_t claimed = 0) {
  const std::string path = test::temp_dir() + "/" + name;
  std::ofstream out(path, std::ios::binary);
  const uint64_t n = lie_length ? claimed : header.size();
  out.write(reinterpret_cast<const char*>(&n), 8);
  out << header;
  out << std::string(data_bytes, '\0');
  return path;
}

void expect_error(const std::string& path, const std::string& fragment) {
  try {
    SafetensorsFile::open(path);
    FAIL() << "no error for " << path;
  } catch (const FileError& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find(path), std::string::npos) << what;
    EXPECT_NE(what.find(fragment), std::string::npos) << what;
  }
}

}  // namespace

TEST(safetensors, roundtrip_preserves_dtype_shape_values_and_metadata) {
  Tensor a = Tensor::empty({2, 3});
  for (int i = 0; i < 6; ++i) a.f32()[i] = 0.5f * static_cast<float>(i) - 1;
  Tensor h = a.to(DType::F16);
  Tensor ids = Tensor::empty({4}, DType::I64);
  for (int i = 0; i < 4; ++i) ids.data_as<int64_t>()[i] = 1000 + i;
  const std::string path = test::temp_dir() + "/roundtrip.safetensors";
  write_safetensors(path, {{"a", a}, {"h", h}, {"ids", ids}}, {{"json", "{\"k\":1}"}});
  auto f = SafetensorsFile::open(path);
  EXPECT_EQ(f.keys(), (std::vector<std::string>{"a", "h", "ids"}));
  EXPECT_EQ(f.metadata().at("json"), "{\"k\":1}");
  Tensor a2 = f.get("a");
  EXPECT_EQ(a2.shape(), a.shape());
  EXPECT_EQ(std::memcmp(a2.raw(), a.raw(), a.nbytes()), 0);
  EXPECT_EQ(f.get("h").dtype(), DType::F16);
  EXPECT_EQ(test::abs_error(f.get("h").to(DType::F32), a), 0.0);
  EXPECT_EQ(f.get("ids").data_as<int64_t>()[3], 1003);
}

TEST(safetensors, reads_golden_fixture) {
  auto f = test::golden("randn.safetensors");
  EXPECT_TRUE(f.contains("case0"));
  EXPECT_NE(f.metadata().count("json"), 0u);
}

TEST(safetensors, rejects_truncated_file) {
  const std::string path = test::temp_dir() + "/short.safetensors";
  std::ofstream(path) << "abc";
  expect_error(path, "shorter than");
}

TEST(safetensors, rejects_absurd_header_length) {
  expect_error(write_raw("huge.safetensors", "{}", 0, true, 1ull << 40), "absurd");
}

TEST(safetensors, rejects_header_past_end) {
  expect_error(write_raw("past.safetensors", "{}", 0, true, 4096), "exceeds the file size");
}

TEST(safetensors, rejects_bad_json) {
  expect_error(write_raw("json.safetensors", "{not json", 0), "not JSON");
}

TEST(safetensors, rejects_unknown_dtype) {
  expect_error(
      write_raw("dtype.safetensors", R"({"x":{"dtype":"Q3","shape":[1],"data_offsets":[0,4]}})", 4),
      "unknown dtype");
}

TEST(safetensors, rejects_size_mismatch) {
  expect_error(write_raw("size.safetensors",
                         R"({"x":{"dtype":"F32","shape":[2,2],"data_offsets":[0,12]}})", 16),
               "needs 16 bytes");
}

TEST(safetensors, rejects_offsets_out_of_range) {
  expect_error(write_raw("range.safetensors",
                         R"({"x":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})", 8),
               "out of range");
}

TEST(safetensors, rejects_overlapping_tensors) {
  expect_error(
      write_raw(
          "overlap.safetensors",
          R"({"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"y":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
          12),
      "overlap");
}

TEST(safetensors, missing_file_names_path) {
  expect_error(test::temp_dir() + "/does-not-exist.safetensors", "cannot open");
}

TEST(safetensors, random_corruption_never_crashes) {
  // Every mutation of a valid file either opens (and then every tensor reads in bounds) or fails
  // with a FileError; under ASan this also proves no out-of-bounds read.
  Tensor a = Tensor::full({3, 5}, 1.5f);
  Tensor b = Tensor::full({7}, -2.f).to(DType::F16);
  const std::string good = test::temp_dir() + "/fuzz-source.safetensors";
  write_safetensors(good, {{"a", a}, {"b", b}}, {{"k", "v"}});
  std::ifstream in(good, std::ios::binary);
  const std::string bytes((std::istreambuf_iterator<char>(in)), {});
  std::mt19937 rng(1234);
  const std::string path = test::temp_dir() + "/fuzz.safetensors";
  int opened = 0, rejected = 0;
  for (int iter = 0; iter < 3000; ++iter) {
    std::string m = bytes;
    const int edits = 1 + static_cast<int>(rng() % 4);
    for (int e = 0; e < edits; ++e) {
      const size_t pos = rng() % m.size();
      switch (rng() % 3) {
        case 0:
          m[pos] = static_cast<char>(rng());
          break;  // flip a byte
        case 1:
          m.resize(pos);
          break;  // truncate
        default:
          m.insert(pos, 1, "0123456789[]{},:\""[rng() % 17]);
          break;  // insert JSON-ish
      }
      if (m.empty()) m = "x";
    }
    std::ofstream(path, std::ios::binary | std::ios::trunc) << m;
    try {
      auto f = SafetensorsFile::open(path);
      for (const auto& k : f.keys()) {
        Tensor t = f.get(k);
        volatile uint8_t sink = 0;
        const auto* p = static_cast<const uint8_t*>(t.raw());
        for (size_t i = 0; i < t.nbytes(); ++i) sink = sink ^ p[i];
      }
      ++opened;
    } catch (const FileError&) {
      ++rejected;
    }
  }
  EXPECT_GT(rejected, 0);
  EXPECT_EQ(opened + rejected, 3000);
}

namespace {
std::string file_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}
size_t entries_in(const std::string& dir) {
  size_t n = 0;
  for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator(dir)) ++n;
  return n;
}
}  // namespace

// The streaming writer (diffuse convert) makes the same file as the in-memory one, byte for byte.
TEST(safetensors, streamed_file_equals_the_in_memory_writers) {
  const std::string dir = test::temp_dir() + "/streamed";
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  Tensor a = Tensor::empty({3, 5});
  for (int64_t i = 0; i < a.numel(); ++i) a.f32()[i] = 0.25f * float(i) - 1.f;
  Tensor b = Tensor::empty({7}, DType::I8);
  for (int64_t i = 0; i < 7; ++i) b.data_as<int8_t>()[i] = static_cast<int8_t>(i * 30 - 100);
  const Tensor empty = Tensor::empty({0, 4});
  const Tensor strided = a.narrow(1, 1, 3);  // written contiguous
  const std::map<std::string, std::string> meta{{"format", "pt"}};
  write_safetensors(dir + "/whole.safetensors",
                    {{"a", a}, {"b", b}, {"empty", empty}, {"t", strided}}, meta);
  {
    SafetensorsWriter w(dir + "/streamed.safetensors", meta);
    w.add("a", a);
    w.add("b", b);
    w.add("empty", empty);
    w.add("t", strided);
    EXPECT_EQ(w.data_bytes(), a.nbytes() + b.nbytes() + strided.nbytes());
    EXPECT_THROW(w.add("b", b), FileError);  // a name written twice
    w.finish();
  }
  EXPECT_EQ(file_bytes(dir + "/streamed.safetensors"), file_bytes(dir + "/whole.safetensors"));
  const SafetensorsFile f = SafetensorsFile::open(dir + "/streamed.safetensors");
  EXPECT_EQ(f.get("t").f32()[3], a.f32()[6]);  // row 1, column 0 of the narrowed view
  EXPECT_EQ(entries_in(dir), 2u);              // no temporary file left
}

TEST(safetensors, a_streamed_file_never_finished_leaves_nothing) {
  const std::string dir = test::temp_dir() + "/unfinished";
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  {
    SafetensorsWriter w(dir + "/never.safetensors");
    w.add("x", Tensor::empty({64}));
  }
  EXPECT_EQ(entries_in(dir), 0u);
}
