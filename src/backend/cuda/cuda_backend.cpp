// The CUDA backend's registration: which GPUs there are (or why none), its device memory for
// core's tensors, its shared context, and the table of its ops (cuda_ops.cpp).
#include <cuda_runtime.h>

#include <map>
#include <mutex>
#include <vector>

#include "backend/backend.h"
#include "backend/cuda/cuda_context.h"
#include "core/device_memory.h"
#include "diffuse/error.hpp"

namespace diffuse::cuda {

void check_cuda(int status, const char* what) {
  if (status != cudaSuccess)
    throw Error(std::string("CUDA backend: ") + what + ": " +
                cudaGetErrorString(static_cast<cudaError_t>(status)));
}

void check_launch(const char* what) {
  check_cuda(cudaGetLastError(), what);
}

namespace {

Availability probe() {
  Availability a;
  int count = 0;
  const cudaError_t status = cudaGetDeviceCount(&count);
  if (status == cudaErrorInsufficientDriver) {
    a.problem =
        "CUDA: no usable NVIDIA driver (libcuda.so.1 is missing or older than this CUDA "
        "runtime needs)";
  } else if (status == cudaErrorNoDevice || (status == cudaSuccess && count == 0)) {
    a.problem = "CUDA: no NVIDIA GPU found";
  } else if (status != cudaSuccess) {
    a.problem = std::string("CUDA: ") + cudaGetErrorString(status);
  }
  if (!a.problem.empty()) {
    cudaGetLastError();  // clear the sticky error of the failed query
    return a;
  }
  for (int i = 0; i < count; ++i) {
    cudaDeviceProp p{};
    if (cudaGetDeviceProperties(&p, i) != cudaSuccess) continue;
    a.gpus.push_back({i, p.name, static_cast<int64_t>(p.totalGlobalMem), p.major * 10 + p.minor});
  }
  if (a.gpus.empty()) a.problem = "CUDA: no GPU answered cudaGetDeviceProperties";
  return a;
}

/// Device blocks by rounded size, kept when their tensors go and handed out again: cudaFree waits
/// for the whole device, and a denoising step frees and allocates the same sizes every time (as
/// the CPU's MemoryPool). Blocks are never returned to the driver while the process runs.
class BlockCache {
 public:
  static BlockCache& get() {
    static BlockCache* cache = new BlockCache;  // outlives every Buffer (never destroyed)
    return *cache;
  }
  Buffer allocate(size_t bytes, int index) {
    if (bytes == 0) return Buffer();
    const size_t size = rounded(bytes);
    void* p = nullptr;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      auto& list = free_[{index, size}];
      if (!list.empty()) {
        p = list.back();
        list.pop_back();
      }
    }
    if (!p) {
      check_cuda(cudaSetDevice(index), "cudaSetDevice");
      cudaError_t status = cudaMalloc(&p, size);
      if (status == cudaErrorMemoryAllocation) {  // give the cached blocks back and try again
        cudaGetLastError();
        release(index);
        status = cudaMalloc(&p, size);
      }
      check_cuda(status, "cudaMalloc");
    }
    return Buffer(static_cast<std::byte*>(p), [this, index, size](std::byte* q) {
      std::lock_guard<std::mutex> lock(mutex_);
      free_[{index, size}].push_back(q);
    });
  }

 private:
  // 512-byte steps up to 1 MiB, then 2 MiB steps: few distinct sizes, little waste.
  static size_t rounded(size_t bytes) {
    const size_t step = bytes < (size_t{1} << 20) ? 512 : (size_t{2} << 20);
    return (bytes + step - 1) / step * step;
  }
  void release(int index) {
    std::lock_guard<std::mutex> lock(mutex_);
    cudaSetDevice(index);
    for (auto& [key, list] : free_) {
      if (key.first != index) continue;
      for (void* p : list) cudaFree(p);
      list.clear();
    }
  }
  std::mutex mutex_;
  std::map<std::pair<int, size_t>, std::vector<void*>> free_;
};

Buffer allocate(size_t bytes, int index) {
  return BlockCache::get().allocate(bytes, index);
}
void copy_to_device(void* dst, const void* src, size_t bytes, int) {
  check_cuda(cudaMemcpy(dst, src, bytes, cudaMemcpyHostToDevice), "copy to the GPU");
}
void copy_to_host(void* dst, const void* src, size_t bytes, int) {
  check_cuda(cudaMemcpy(dst, src, bytes, cudaMemcpyDeviceToHost), "copy from the GPU");
}
void copy_rows_on_device(void* dst, const void* src, size_t pitch, size_t run, size_t rows, int) {
  check_cuda(cudaMemcpy2D(dst, run, src, pitch, run, rows, cudaMemcpyDeviceToDevice),
             "strided copy on the GPU");
}

}  // namespace

const Availability& availability() {
  static const Availability a = probe();
  return a;
}

Context::Context() {
  if (!availability().problem.empty()) throw Error("CUDA backend: " + availability().problem);
  register_device_memory(DeviceType::Cuda,
                         {allocate, copy_to_device, copy_to_host, copy_rows_on_device});
  cublas_ = std::make_unique<Cublas>();
}

Context& Context::get() {
  static Context context;
  return context;
}

Tensor Context::on_device(const Tensor& t, Device device) {
  if (t.device() == device) return t;
  if (!t.device().is_host()) return t.on(device);
  const auto key = std::make_tuple(t.raw(), t.nbytes(), static_cast<int>(t.dtype()));
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = uploads_.find(key);
  if (it == uploads_.end()) it = uploads_.emplace(key, std::make_pair(t, t.on(device))).first;
  return it->second.second;
}

Tensor Context::weight_on_device(const Weight& w, Device device) {
  if (w.dtype() == DType::F32 && !w.quantized()) return on_device(w.values, device);
  const auto key = std::make_tuple(w.values.raw(), w.values.nbytes(), -1);
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (auto it = uploads_.find(key); it != uploads_.end()) return it->second.second;
  }
  const Tensor device_copy = w.to_f32().on(device);
  std::lock_guard<std::mutex> lock(mutex_);
  return uploads_.emplace(key, std::make_pair(w.values, device_copy)).first->second.second;
}

}  // namespace diffuse::cuda
