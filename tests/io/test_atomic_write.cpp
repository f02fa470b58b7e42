// Output files are written under a unique temporary name and renamed into place: concurrent
// writers of one path leave one complete file, a user's own "<name>.tmp" is never touched, and a
// failed write leaves no temporary file behind.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "common/fixtures.h"
#include "core/tensor.h"
#include "diffuse/error.hpp"
#include "io/atomic_file.h"
#include "io/png_image.h"
#include "io/safetensors.h"

namespace fs = std::filesystem;
using namespace diffuse;

namespace {

/// A fresh, empty folder for one test (ctest runs the tests of this binary in parallel).
std::vector<std::string> entries(const std::string& dir) {
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(dir)) names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

std::string slurp(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

Rgb8Image solid(int size, uint8_t value) {
  return Rgb8Image{size, size, std::vector<uint8_t>(static_cast<size_t>(size * size * 3), value)};
}

}  // namespace

TEST(atomic_write, concurrent_png_writes_to_one_path_leave_one_complete_file) {
  const std::string dir = test::fresh_dir("atomic-concurrent-png");
  const std::string path = dir + "/x.png";
  // Large enough that the writes overlap; each thread writes its own colour many times.
  constexpr int kThreads = 4, kRounds = 10;
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      const Rgb8Image img = solid(256, static_cast<uint8_t>(40 * t + 1));
      for (int r = 0; r < kRounds; ++r) {
        try {
          write_png(path, img, {{"parameters", "writer " + std::to_string(t)}});
        } catch (const Error&) {
          ++failures;
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(failures, 0);
  std::map<std::string, std::string> text;
  const Rgb8Image back = read_png(path, &text);
  const int writer = std::stoi(text.at("parameters").substr(7));
  EXPECT_EQ(back.pixels, solid(256, static_cast<uint8_t>(40 * writer + 1)).pixels)
      << "pixels of one writer, text of another";
  EXPECT_EQ(entries(dir), std::vector<std::string>{"x.png"}) << "temporary files left behind";
}

TEST(atomic_write, concurrent_safetensors_writes_to_one_path_leave_one_complete_file) {
  const std::string dir = test::fresh_dir("atomic-concurrent-st");
  const std::string path = dir + "/w.safetensors";
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      std::vector<float> v(1 << 16, static_cast<float>(t));
      for (int r = 0; r < 5; ++r)
        write_safetensors(path, {{"w", Tensor::from_floats(v.data(), Shape{1 << 16})}});
    });
  }
  for (auto& th : threads) th.join();
  SafetensorsFile f = SafetensorsFile::open(path);
  const Tensor w = f.get("w");
  const float first = w.f32()[0];
  for (int64_t i = 0; i < w.numel(); ++i) ASSERT_EQ(w.f32()[i], first) << "mixed writers at " << i;
  EXPECT_EQ(entries(dir), std::vector<std::string>{"w.safetensors"});
}

TEST(atomic_write, a_users_own_tmp_file_is_untouched) {
  const std::string dir = test::fresh_dir("atomic-user-tmp");
  const std::string path = dir + "/x.png";
  std::ofstream(path + ".tmp") << "my notes";
  write_png(path, solid(8, 7));
  EXPECT_EQ(slurp(path + ".tmp"), "my notes");
  EXPECT_EQ(read_png(path).pixels, solid(8, 7).pixels);
  std::ofstream(dir + "/w.safetensors.tmp") << "mine too";
  std::vector<float> v(4, 1.f);
  write_safetensors(dir + "/w.safetensors", {{"w", Tensor::from_floats(v.data(), Shape{4})}});
  EXPECT_EQ(slurp(dir + "/w.safetensors.tmp"), "mine too");
}

TEST(atomic_write, a_failed_write_leaves_no_temporary_file) {
  const std::string dir = test::fresh_dir("atomic-failure");
  // The destination is a folder: everything is written, then the rename fails.
  const std::string blocked = dir + "/out.png";
  fs::create_directories(blocked + "/inside");
  test::expect_error_mentioning<FileError>([&] { write_png(blocked, solid(8, 1)); }, {blocked});
  std::vector<float> v(4, 1.f);
  const std::string blocked_st = dir + "/out.safetensors";
  fs::create_directories(blocked_st + "/inside");
  test::expect_error_mentioning<FileError>(
      [&] {
        write_safetensors(blocked_st, {{"w", Tensor::from_floats(v.data(), Shape{4})}});
      },
      {blocked_st});
  EXPECT_EQ(entries(dir), (std::vector<std::string>{"out.png", "out.safetensors"}));
  // An AtomicFile that is never committed (an exception while writing) removes its file too.
  {
    AtomicFile f(dir + "/never.bin");
    std::fputs("partial", f.get());
  }
  EXPECT_EQ(entries(dir), (std::vector<std::string>{"out.png", "out.safetensors"}));
}

TEST(atomic_write, files_get_the_permissions_of_a_plain_create) {
  const std::string dir = test::fresh_dir("atomic-mode");
  std::ofstream(dir + "/plain") << "x";
  write_png(dir + "/x.png", solid(4, 3));
  struct stat plain {
  }, written{};
  ASSERT_EQ(stat((dir + "/plain").c_str(), &plain), 0);
  ASSERT_EQ(stat((dir + "/x.png").c_str(), &written), 0);
  EXPECT_EQ(written.st_mode & 0777, plain.st_mode & 0777);
}
