// Core building blocks: tensors (views, layout, dtype conversion), the activation pool, the thread
// pool, and memory-mapped files.
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cmath>
#include <fstream>
#include <stdexcept>
#include <vector>

#include "common/fixtures.h"
#include "core/allocator.h"
#include "core/mapped_file.h"
#include "core/tensor.h"
#include "core/thread_pool.h"
#include "diffuse/error.hpp"

using namespace diffuse;

namespace {
Tensor iota(const Shape& s) {
  Tensor t = Tensor::empty(s);
  for (int64_t i = 0; i < t.numel(); ++i) t.f32()[i] = static_cast<float>(i);
  return t;
}
}  // namespace

TEST(core_tensor, reshape_infers_and_rejects) {
  Tensor t = iota({2, 3, 4});
  EXPECT_EQ(t.reshape({4, -1}).shape(), Shape({4, 6}));
  EXPECT_EQ(t.reshape({4, -1}).f32(), t.f32());  // a view, not a copy
  EXPECT_THROW(t.reshape({5, -1}), ShapeError);
  EXPECT_THROW(t.reshape({-1, -1}), ShapeError);
  EXPECT_THROW(t.reshape({7}), ShapeError);
}

TEST(core_tensor, narrow_views_and_contiguous_copies) {
  Tensor t = iota({2, 3, 4});
  Tensor row = t.narrow(0, 1, 1);
  EXPECT_TRUE(row.is_contiguous());
  EXPECT_EQ(row.f32()[0], 12.f);
  Tensor cols = t.narrow(2, 1, 2);  // strided view
  EXPECT_FALSE(cols.is_contiguous());
  Tensor c = cols.contiguous();
  ASSERT_EQ(c.shape(), Shape({2, 3, 2}));
  for (int64_t b = 0; b < 2; ++b)
    for (int64_t r = 0; r < 3; ++r)
      for (int64_t k = 0; k < 2; ++k)
        EXPECT_EQ(c.f32()[(b * 3 + r) * 2 + k], float(b * 12 + r * 4 + k + 1));
  EXPECT_THROW(t.narrow(1, 2, 2), ShapeError);
  EXPECT_THROW(t.narrow(3, 0, 1), ShapeError);
}

TEST(core_tensor, dtype_round_trips) {
  Tensor t = Tensor::empty({6});
  const float v[] = {0.f, 1.f, -2.5f, 65504.f, 1e-7f, 3.14159f};
  for (int i = 0; i < 6; ++i) t.f32()[i] = v[i];
  Tensor h = t.to(DType::F16).to(DType::F32);
  Tensor b = t.to(DType::BF16).to(DType::F32);
  for (int i = 0; i < 6; ++i) {
    EXPECT_NEAR(h.f32()[i], v[i], std::fabs(v[i]) * 1e-3 + 1e-7) << v[i];
    EXPECT_NEAR(b.f32()[i], v[i], std::fabs(v[i]) * 8e-3 + 1e-9) << v[i];
  }
  EXPECT_EQ(half_to_float(float_to_half(INFINITY)), INFINITY);
  EXPECT_TRUE(std::isnan(half_to_float(float_to_half(NAN))));
  EXPECT_EQ(half_to_float(0x0001), std::ldexp(1.f, -24));  // smallest subnormal
  EXPECT_THROW(Tensor::zeros({2}, DType::U8).to(DType::F16), ShapeError);
}

TEST(core_tensor, require_helpers_name_the_operand) {
  Tensor t = iota({2, 3});
  EXPECT_NO_THROW(require_shape(t, {2, -1}, "x"));
  try {
    require_shape(t, {3, 3}, "conv weight");
    FAIL();
  } catch (const ShapeError& e) {
    EXPECT_NE(std::string(e.what()).find("conv weight"), std::string::npos);
  }
  EXPECT_THROW(require_f32_contiguous(t.narrow(1, 0, 2), "x"), ShapeError);
}

TEST(core_allocator, released_blocks_are_reused) {
  { Tensor warm = Tensor::empty({1234567}); }
  const size_t before = memory_stats().system_allocations;
  for (int i = 0; i < 10; ++i) {
    Tensor t = Tensor::empty({1234567});
    EXPECT_EQ(reinterpret_cast<uintptr_t>(t.raw()) % kTensorAlignment, 0u);
  }
  EXPECT_EQ(memory_stats().system_allocations, before);
  reset_peak_memory();
  const size_t live = memory_stats().live_bytes;
  {
    Tensor a = Tensor::empty({1000});
    EXPECT_EQ(memory_stats().live_bytes, live + 4000);
  }
  EXPECT_EQ(memory_stats().live_bytes, live);
  EXPECT_GE(memory_stats().peak_bytes, live + 4000);
}

TEST(core_thread_pool, covers_range_once_and_nests_inline) {
  std::vector<std::atomic<int>> hits(1000);
  parallel_for(1000, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      hits[static_cast<size_t>(i)]++;
      // A nested region runs inline on this worker.
      parallel_for(3, [&](int64_t, int64_t) {});
    }
  });
  for (auto& h : hits) EXPECT_EQ(h.load(), 1);
}

TEST(core_thread_pool, exceptions_propagate_to_the_caller) {
  EXPECT_THROW(parallel_for(100,
                            [](int64_t b, int64_t) {
                              if (b > 0) throw std::runtime_error("boom");
                            }),
               std::runtime_error);
  // The pool still works afterwards.
  std::atomic<int64_t> sum{0};
  parallel_for(100, [&](int64_t b, int64_t e) { sum += e - b; });
  EXPECT_EQ(sum.load(), 100);
}

TEST(core_thread_pool, resizes) {
  const int n = num_threads();
  set_num_threads(1);
  EXPECT_EQ(num_threads(), 1);
  std::atomic<int64_t> sum{0};
  parallel_for(50, [&](int64_t b, int64_t e) { sum += e - b; });
  EXPECT_EQ(sum.load(), 50);
  set_num_threads(n);
  EXPECT_EQ(num_threads(), n);
}

TEST(core_allocator, a_pool_without_caching_returns_every_block) {
  const auto pool = MemoryPool::create(/*caching=*/false);
  MemoryPoolScope scope(*pool);
  { Tensor warm = Tensor::empty({1234567}); }
  EXPECT_EQ(memory_stats().cached_bytes, 0u);
  const size_t before = memory_stats().system_allocations;
  { Tensor again = Tensor::empty({1234567}); }
  EXPECT_EQ(memory_stats().system_allocations, before + 1);
  EXPECT_EQ(memory_stats().live_bytes, 0u);
}

// The scratch block for transient copies: reused while idle, grown on demand, never handed out
// twice at once, and gone after release_cached() (the end of a pipeline stage).
TEST(core_allocator, scratch_is_reused_grown_and_released) {
  const auto pool = MemoryPool::create();
  const std::byte* first = nullptr;
  {
    const Buffer a = pool->scratch(1000);
    first = a.get();
  }
  EXPECT_EQ(pool->scratch(800).get(), first);
  {
    const Buffer held = pool->scratch(1000);
    const Buffer other = pool->scratch(1000);
    EXPECT_NE(held.get(), other.get());
  }
  // A large block has pages of its own (LargeBlocks::Mapped), which leave when it is freed.
  constexpr size_t kLarge = size_t{8} << 20;
  uintptr_t inside = 0;
  {
    const Buffer larger = pool->scratch(kLarge);
    std::fill(larger.get(), larger.get() + kLarge, std::byte{1});
    inside = (reinterpret_cast<uintptr_t>(larger.get()) + kLarge / 2) &
             ~(static_cast<uintptr_t>(sysconf(_SC_PAGESIZE)) - 1);
    pool->release_cached();                   // in use: kept
    EXPECT_EQ(pool->stats().live_bytes, 0u);  // not counted as activations
  }
  unsigned char resident = 0;
  EXPECT_EQ(mincore(reinterpret_cast<void*>(inside), 1, &resident), 0) << "freed while in use";
  pool->release_cached();  // idle: freed
  errno = 0;
  EXPECT_EQ(mincore(reinterpret_cast<void*>(inside), 1, &resident), -1);
  EXPECT_EQ(errno, ENOMEM) << "the scratch block is still mapped";
}

// A released block of a few MB leaves the process at once (its pages are unmapped), even after a
// larger block has raised glibc's mmap threshold, above which malloc would have kept it in the
// heap: a converter's tensors, each of another size, grew the process by hundreds of MB that way.
TEST(core_allocator, released_large_blocks_leave_the_process) {
  const auto pool = MemoryPool::create(/*caching=*/false);
  MemoryPoolScope scope(*pool);
  { Tensor raise_threshold = Tensor::empty({int64_t{30} << 18}); }  // 30 MB
  const auto page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
  uintptr_t inside = 0;
  {
    Tensor t = Tensor::empty({int64_t{1} << 20});  // 4 MB
    std::fill(t.f32(), t.f32() + t.numel(), 1.f);
    inside = (reinterpret_cast<uintptr_t>(t.f32()) + (size_t{2} << 20)) & ~(page - 1);
  }
  unsigned char resident = 0;
  errno = 0;
  EXPECT_EQ(mincore(reinterpret_cast<void*>(inside), page, &resident), -1);
  EXPECT_EQ(errno, ENOMEM) << "the block's pages are still mapped";
}

TEST(core_mapped_file, released_pages_read_back_the_same_bytes) {
  const std::string path = test::temp_dir() + "/released.bin";
  std::string bytes(3 << 20, '\0');
  for (size_t i = 0; i < bytes.size(); ++i) bytes[i] = static_cast<char>(i * 131 % 251);
  std::ofstream(path, std::ios::binary) << bytes;
  MappedFile f = MappedFile::open(path);
  ASSERT_EQ(std::string(reinterpret_cast<const char*>(f.data()), f.size()), bytes);
  release_mapped_pages(f.data() + 1000, f.size() - 2000);  // partial pages at either end kept
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(f.data()), f.size()), bytes);
}

TEST(core_mapped_file, maps_and_names_missing_files) {
  const std::string path = test::temp_dir() + "/mapped.bin";
  std::ofstream(path, std::ios::binary) << "hello";
  MappedFile f = MappedFile::open(path);
  ASSERT_EQ(f.size(), 5u);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(f.data()), 5), "hello");
  try {
    MappedFile::open(path + ".missing");
    FAIL();
  } catch (const FileError& e) {
    EXPECT_NE(std::string(e.what()).find("mapped.bin.missing"), std::string::npos);
  }
  EXPECT_THROW(MappedFile::open(test::temp_dir()), FileError);  // a directory
}
