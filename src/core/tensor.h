// Tensor: a typed, shaped, strided view onto shared memory on one device.
//
// Memory is owned by a Buffer (pooled activation memory, or a memory-mapped file kept alive by the
// views into it). Copying a Tensor copies the view, not the data. Layout follows PyTorch
// (row-major, NCHW for images) so weights map onto kernels without transposition at load time;
// kernels that want another layout repack weights once, at load. The device says where the memory
// is and which backend ops:: runs on it; f32() is a host pointer and checks the device (raw() and
// data_as() are the address on the tensor's own device, for that backend's kernels);
// anything else is read through an explicit copy (to_host, to_vector).
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "core/allocator.h"
#include "core/device.h"
#include "core/dtype.h"
#include "core/shape.h"

namespace diffuse {

class Tensor {
 public:
  Tensor() = default;

  /// Uninitialised contiguous tensor from the calling thread's activation pool.
  static Tensor empty(const Shape& shape, DType dtype = DType::F32, Device device = kCpu);
  static Tensor zeros(const Shape& shape, DType dtype = DType::F32);
  static Tensor full(const Shape& shape, float value);
  /// A contiguous view onto memory owned by `owner` (e.g. an mmap'd file); no copy.
  static Tensor view_of(Buffer owner, const void* data, const Shape& shape, DType dtype);
  /// Copies `n` floats into a new tensor of `shape` (n must equal shape.numel()).
  static Tensor from_floats(const float* values, const Shape& shape);

  bool defined() const { return data_ != nullptr || shape_.numel() == 0; }
  const Shape& shape() const { return shape_; }
  int ndim() const { return shape_.ndim(); }
  int64_t dim(int i) const { return shape_[i]; }
  int64_t numel() const { return shape_.numel(); }
  DType dtype() const { return dtype_; }
  Device device() const { return device_; }
  size_t nbytes() const { return static_cast<size_t>(numel()) * dtype_size(dtype_); }
  int64_t stride(int i) const { return strides_[static_cast<size_t>(i < 0 ? i + ndim() : i)]; }
  bool is_contiguous() const;

  /// Typed pointer to the first element; throws unless dtype matches. Kernels assume contiguity,
  /// which they check with require_contiguous().
  float* f32();
  const float* f32() const;
  template <typename T>
  T* data_as() {
    return static_cast<T*>(data_);
  }
  template <typename T>
  const T* data_as() const {
    return static_cast<const T*>(data_);
  }
  void* raw() { return data_; }
  const void* raw() const { return data_; }

  /// Same data, new shape (contiguous tensors only; one dimension may be -1).
  Tensor reshape(std::initializer_list<int64_t> dims) const;
  Tensor reshape(const Shape& shape) const;
  /// View of [start, start+length) along `dim`.
  Tensor narrow(int dim, int64_t start, int64_t length) const;
  /// A contiguous copy (or this tensor when already contiguous).
  Tensor contiguous() const;
  Tensor clone() const;
  /// Converted copy (f16/bf16/f64 -> f32 and back); returns *this when dtype already matches.
  Tensor to(DType dtype) const;

  /// The same tensor on `device`: a relabelled view between host devices (cpu, reference), a copy
  /// otherwise.
  Tensor on(Device device) const;
  /// This tensor readable on the host (itself for host devices, a copy otherwise).
  Tensor to_host() const;
  /// A row-major host copy of an F32 tensor's elements (any device, any strides).
  std::vector<float> to_vector() const;

  float item() const;            // single-element tensors, any float dtype
  std::string describe() const;  // "F32[2, 4, 8, 8]"

 private:
  Buffer buffer_;
  void* data_ = nullptr;
  Shape shape_;
  std::array<int64_t, Shape::kMaxDims> strides_{};
  DType dtype_ = DType::F32;
  Device device_ = kCpu;

  void require_host(const char* what) const;
  Tensor device_contiguous() const;  // contiguous() of a GPU tensor
  void set_contiguous_strides();
};

/// Throws ShapeError naming `what` unless t has exactly `expected` (use -1 for "any").
void require_shape(const Tensor& t, std::initializer_list<int64_t> expected, const char* what);
void require_f32_contiguous(const Tensor& t, const char* what);

}  // namespace diffuse
