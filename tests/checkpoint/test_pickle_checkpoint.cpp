// The torch checkpoint reader on hand-made archives: strided and offset tensors, deflated entries,
// and the ways a checkpoint can be broken or hostile (truncated, corrupt zip, forbidden globals).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <random>

#include "checkpoint/checkpoint_test_util.h"
#include "common/fixtures.h"
#include "diffuse/error.hpp"
#include "io/pickle/pickle_reader.h"
#include "io/pickle/torch_checkpoint.h"

using namespace diffuse;
namespace fs = std::filesystem;

namespace {

std::string tmp(const std::string& name) {
  return (fs::path(test::temp_dir()) / name).string();
}

// Expects read_torch_checkpoint(path) to throw a FileError whose message names the file and
// contains `needle`.
void expect_file_error(const std::string& path, const std::string& needle) {
  try {
    read_torch_checkpoint(path);
    ADD_FAILURE() << path << ": no error";
  } catch (const FileError& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find(path), std::string::npos) << msg;
    EXPECT_NE(msg.find(needle), std::string::npos) << msg;
    EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
  }
}

std::string strided_pickle() {
  test::PickleWriter p;
  p.op('}').op('(').str("global_step").integer(0).str("state_dict").op('}').op('(');
  p.str("strided").float_tensor("0", 7, 1, {2, 3}, {1, 2});  // transposed view, offset 1
  p.str("dense").float_tensor("0", 7, 4, {3}, {1});
  p.str("scalar").float_tensor("1", 1, 0, {}, {});
  p.op('u').op('u');
  return p.done();
}

}  // namespace

TEST(pickle_checkpoint, strided_offset_and_scalar_tensors) {
  for (bool deflate : {false, true}) {
    const std::string path = tmp(deflate ? "strided_deflate.ckpt" : "strided.ckpt");
    test::write_zip(path,
                    {{"archive/data.pkl", strided_pickle()},
                     {"archive/data/0", test::floats_bytes({0, 1, 2, 3, 4, 5, 6})},
                     {"archive/data/1", test::floats_bytes({42})},
                     {"archive/version", "3\n"}},
                    deflate);
    const auto sd = read_torch_checkpoint(path);
    ASSERT_EQ(sd.size(), 3u) << "global_step is not a tensor";
    const Tensor s = sd.at("strided").contiguous();
    ASSERT_EQ(s.shape(), Shape({2, 3}));
    const float want[] = {1, 3, 5, 2, 4, 6};
    for (int i = 0; i < 6; ++i) EXPECT_EQ(s.f32()[i], want[i]) << i;
    const Tensor d = sd.at("dense").contiguous();
    ASSERT_EQ(d.shape(), Shape({3}));
    EXPECT_EQ(d.f32()[0], 4);
    EXPECT_EQ(d.f32()[2], 6);
    EXPECT_EQ(sd.at("scalar").ndim(), 0);
    EXPECT_EQ(sd.at("scalar").item(), 42);
  }
}

TEST(pickle_checkpoint, forbidden_global_is_refused_not_run) {
  const std::string marker = tmp("pwned");
  fs::remove(marker);
  // os.system("touch <marker>") through GLOBAL + REDUCE, as a malicious .ckpt would.
  test::PickleWriter p;
  p.global("os", "system").str("touch " + marker).op('\x85').op('R');
  const std::string path = tmp("evil.ckpt");
  test::write_zip(path, {{"archive/data.pkl", p.done()}});
  expect_file_error(path, "os.system");
  EXPECT_FALSE(fs::exists(marker));

  // The same through STACK_GLOBAL (protocol 4), and builtins.eval inside a valid-looking dict.
  std::string s4 = std::string("\x80\x04", 2) + "\x8c\x08" + "builtins" + "\x8c\x04" + "eval" +
                   "\x93" + "X" + std::string("\x03\x00\x00\x00", 4) + "1+1" + "\x85" + "R.";
  test::write_zip(path, {{"archive/data.pkl", s4}});
  expect_file_error(path, "builtins.eval");

  // A storage class is allowed in persistent ids but cannot be called.
  test::PickleWriter q;
  q.global("torch", "FloatStorage").op(')').op('R');
  test::write_zip(path, {{"archive/data.pkl", q.done()}});
  expect_file_error(path, "torch.FloatStorage");
  // Opcodes outside the torch.save subset (INST 'i' would construct any class).
  test::write_zip(path, {{"archive/data.pkl", std::string("\x80\x02(ios\nsystem\n.", 15)}});
  expect_file_error(path, "opcode");
}

TEST(pickle_checkpoint, truncated_checkpoint_is_a_file_error) {
  std::ifstream in(test::fixture("models/tiny-sd1.ckpt"), std::ios::binary);
  const std::string all((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  ASSERT_GT(all.size(), 100000u);
  const std::string path = tmp("truncated.ckpt");
  for (size_t keep :
       {size_t{0}, size_t{3}, size_t{30}, size_t{5000}, all.size() / 2, all.size() - 30}) {
    std::ofstream(path, std::ios::binary).write(all.data(), static_cast<std::streamsize>(keep));
    expect_file_error(path, "");
  }
}

TEST(pickle_checkpoint, corrupt_zip_is_a_file_error) {
  std::ifstream in(test::fixture("models/tiny-sd1.ckpt"), std::ios::binary);
  const std::string all((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const std::string path = tmp("corrupt.ckpt");
  const size_t eocd = all.rfind(std::string("PK\x05\x06", 4));
  ASSERT_NE(eocd, std::string::npos);
  // Central directory offset pointing past the end; entry count too large; local header offsets
  // of the first entry scrambled; data.pkl bytes garbled.
  auto write_with = [&](size_t at, const std::string& bytes) {
    std::string c = all;
    c.replace(at, bytes.size(), bytes);
    std::ofstream(path, std::ios::binary).write(c.data(), static_cast<std::streamsize>(c.size()));
  };
  write_with(eocd + 16, "\xff\xff\xff\x7f");
  expect_file_error(path, "zip");
  write_with(eocd + 10, "\xff\x7f");
  expect_file_error(path, "corrupt zip");
  const size_t cd = all.find(std::string("PK\x01\x02", 4));
  write_with(cd + 42, "\x10\x00\x00\x00");
  expect_file_error(path, "corrupt zip");
  const size_t pkl = all.find("\x80\x02}", all.find("data.pkl")) + 2;  // pickle bytes after PROTO
  write_with(pkl, std::string(64, '\xfe'));
  expect_file_error(path, "pickle");
  // Not a zip at all.
  std::ofstream(path, std::ios::binary) << "this is not a checkpoint";
  expect_file_error(path, "not a zip");
  // A zip without data.pkl.
  test::write_zip(path, {{"hello.txt", "hi"}});
  expect_file_error(path, "data.pkl");
  // A tensor that reaches past its storage.
  test::PickleWriter p;
  p.op('}').op('(').str("w").float_tensor("0", 4, 2, {2, 2}, {2, 1}).op('u');
  test::write_zip(
      path, {{"archive/data.pkl", p.done()}, {"archive/data/0", test::floats_bytes({1, 2, 3, 4})}});
  expect_file_error(path, "past its storage");
  // A storage missing from the archive.
  test::write_zip(path, {{"archive/data.pkl", p.done()}});
  expect_file_error(path, "missing");
}

TEST(pickle_checkpoint, fixture_ckpt_reads_as_zero_copy_views) {
  const auto sd = read_torch_checkpoint(test::fixture("models/tiny-sd1.ckpt"));
  EXPECT_EQ(sd.size(), 980u);
  const Tensor& w = sd.at("model.diffusion_model.input_blocks.0.0.weight");
  EXPECT_EQ(w.shape(), Shape({32, 4, 3, 3}));
  EXPECT_TRUE(w.is_contiguous());
}

TEST(pickle_checkpoint, random_corruption_never_crashes) {
  // Mutate a small valid checkpoint byte by byte: every outcome is a load or a FileError.
  const std::string good = tmp("fuzz_base.ckpt"), path = tmp("fuzz.ckpt");
  test::write_zip(good, {{"archive/data.pkl", strided_pickle()},
                         {"archive/data/0", test::floats_bytes({0, 1, 2, 3, 4, 5, 6})},
                         {"archive/data/1", test::floats_bytes({42})}});
  std::ifstream in(good, std::ios::binary);
  const std::string base((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::mt19937 rng(1234);
  int loaded = 0, refused = 0;
  for (int iter = 0; iter < 3000; ++iter) {
    std::string c = base;
    const int flips = 1 + static_cast<int>(rng() % 4);
    for (int k = 0; k < flips; ++k) c[rng() % c.size()] = static_cast<char>(rng() & 0xFF);
    if (iter % 10 == 0) c.resize(rng() % c.size());
    std::ofstream(path, std::ios::binary).write(c.data(), static_cast<std::streamsize>(c.size()));
    try {
      read_torch_checkpoint(path);
      ++loaded;
    } catch (const FileError&) {
      ++refused;
    }
  }
  EXPECT_EQ(loaded + refused, 3000);
  EXPECT_GT(refused, 0);
}
