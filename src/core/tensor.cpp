#include "core/tensor.h"

#include <cstring>

#include "core/device_memory.h"
#include "diffuse/error.hpp"

namespace diffuse {

void Tensor::set_contiguous_strides() {
  int64_t s = 1;
  for (int i = shape_.ndim() - 1; i >= 0; --i) {
    strides_[static_cast<size_t>(i)] = s;
    s *= shape_[i];
  }
}

Tensor Tensor::empty(const Shape& shape, DType dtype, Device device) {
  const size_t bytes = static_cast<size_t>(shape.numel()) * dtype_size(dtype);
  Tensor t;
  t.device_ = device;
  t.shape_ = shape;
  t.dtype_ = dtype;
  if (device.is_host()) {
    t.buffer_ = allocate_buffer(bytes);
  } else {
    const DeviceMemory* memory = device_memory(device.type);
    if (!memory)
      throw Error("no memory allocator for device " + device.name() +
                  " (its backend is not in this build or not started)");
    t.buffer_ = memory->allocate(bytes, device.index);
  }
  t.data_ = t.buffer_.get();
  t.set_contiguous_strides();
  return t;
}

Tensor Tensor::zeros(const Shape& shape, DType dtype) {
  Tensor t = empty(shape, dtype);
  std::memset(t.data_, 0, t.nbytes());
  return t;
}

Tensor Tensor::full(const Shape& shape, float value) {
  Tensor t = empty(shape, DType::F32);
  float* p = t.f32();
  for (int64_t i = 0; i < t.numel(); ++i) p[i] = value;
  return t;
}

Tensor Tensor::view_of(Buffer owner, const void* data, const Shape& shape, DType dtype) {
  Tensor t;
  t.buffer_ = std::move(owner);
  t.data_ = const_cast<void*>(data);
  t.shape_ = shape;
  t.dtype_ = dtype;
  t.set_contiguous_strides();
  return t;
}

Tensor Tensor::from_floats(const float* values, const Shape& shape) {
  Tensor t = empty(shape, DType::F32);
  std::memcpy(t.data_, values, t.nbytes());
  return t;
}

bool Tensor::is_contiguous() const {
  int64_t s = 1;
  for (int i = ndim() - 1; i >= 0; --i) {
    if (shape_[i] != 1 && strides_[static_cast<size_t>(i)] != s) return false;
    s *= shape_[i];
  }
  return true;
}

void Tensor::require_host(const char* what) const {
  if (!device_.is_host())
    throw Error(std::string(what) + ": tensor " + describe() + " is on " + device_.name() +
                ", not the host; copy it with to_host() first");
}

Tensor Tensor::on(Device device) const {
  if (device == device_) return *this;
  if (device.is_host() && device_.is_host()) {
    Tensor t = *this;
    t.device_ = device;
    return t;
  }
  if (!device_.is_host() && !is_contiguous())
    throw Error("on(" + device.name() + "): tensor " + describe() + " on " + device_.name() +
                " is not contiguous");
  if (device.is_host()) {  // device -> host
    Tensor t = empty(shape_, dtype_, device);
    device_memory(device_.type)->copy_to_host(t.data_, data_, nbytes(), device_.index);
    return t;
  }
  // From one GPU to another (the same device returned itself above): through the host.
  if (!device_.is_host()) return on(kCpu).on(device);
  Tensor t = empty(shape_, dtype_, device);  // host -> device
  const Tensor src = contiguous();
  device_memory(device.type)->copy_to_device(t.data_, src.data_, nbytes(), device.index);
  return t;
}

Tensor Tensor::device_contiguous() const {
  // A view of a contiguous tensor narrowed along one dimension: equal runs (the dense trailing
  // dimensions) at one pitch, which the device copies in one call.
  const size_t es = dtype_size(dtype_);
  int d = ndim() - 1;
  int64_t run = 1;
  for (; d >= 0 && strides_[static_cast<size_t>(d)] == run; --d) run *= shape_[d];
  int64_t rows = 1;
  const int64_t pitch = d >= 0 ? strides_[static_cast<size_t>(d)] : run;
  for (int k = d; k >= 0; --k) {
    if (k < d &&
        strides_[static_cast<size_t>(k)] != strides_[static_cast<size_t>(k + 1)] * shape_[k + 1])
      throw Error("contiguous(): tensor " + describe() + " on " + device_.name() +
                  " is strided in more than one dimension");
    rows *= shape_[k];
  }
  Tensor out = empty(shape_, dtype_, device_);
  device_memory(device_.type)
      ->copy_rows_on_device(out.data_, data_, static_cast<size_t>(pitch) * es,
                            static_cast<size_t>(run) * es, static_cast<size_t>(rows),
                            device_.index);
  return out;
}

Tensor Tensor::to_host() const {
  if (device_.is_host()) return *this;
  return on(kCpu);
}

std::vector<float> Tensor::to_vector() const {
  const Tensor host = to_host().contiguous();
  const float* p = host.f32();
  return std::vector<float>(p, p + host.numel());
}

float* Tensor::f32() {
  require_host("f32()");
  if (dtype_ != DType::F32)
    throw ShapeError("expected an F32 tensor, got " + std::string(dtype_name(dtype_)));
  return static_cast<float*>(data_);
}
const float* Tensor::f32() const {
  return const_cast<Tensor*>(this)->f32();
}

Tensor Tensor::reshape(std::initializer_list<int64_t> dims) const {
  Shape s;
  int infer = -1;
  int64_t known = 1;
  int i = 0;
  for (int64_t d : dims) {
    if (d == -1) {
      if (infer >= 0) throw ShapeError("reshape: more than one -1");
      infer = i;
      s.push_back(1);
    } else {
      s.push_back(d);
      known *= d;
    }
    ++i;
  }
  if (infer >= 0) {
    if (known == 0 || numel() % known != 0)
      throw ShapeError("reshape " + shape_.str() + ": cannot infer -1");
    s[infer] = numel() / known;
  }
  return reshape(s);
}

Tensor Tensor::reshape(const Shape& shape) const {
  if (shape.numel() != numel())
    throw ShapeError("reshape " + shape_.str() + " to " + shape.str() + ": element count differs");
  if (!is_contiguous()) return contiguous().reshape(shape);
  Tensor t = *this;
  t.shape_ = shape;
  t.set_contiguous_strides();
  return t;
}

Tensor Tensor::narrow(int dim, int64_t start, int64_t length) const {
  if (dim < 0) dim += ndim();
  if (dim < 0 || dim >= ndim() || start < 0 || length < 0 || start + length > shape_[dim])
    throw ShapeError("narrow " + shape_.str() + " dim " + std::to_string(dim) + " [" +
                     std::to_string(start) + ", +" + std::to_string(length) + ") out of range");
  Tensor t = *this;
  t.shape_[dim] = length;
  t.data_ = static_cast<std::byte*>(data_) +
            start * strides_[static_cast<size_t>(dim)] * static_cast<int64_t>(dtype_size(dtype_));
  return t;
}

Tensor Tensor::contiguous() const {
  if (is_contiguous()) return *this;
  if (!device_.is_host()) return device_contiguous();
  Tensor out = empty(shape_, dtype_, device_);
  const size_t es = dtype_size(dtype_);
  const int nd = ndim();
  // Copy the innermost dimension as a run when it is dense, otherwise element by element.
  std::array<int64_t, Shape::kMaxDims> idx{};
  const int64_t inner = nd ? shape_[nd - 1] : 1;
  const bool dense_inner = nd == 0 || strides_[static_cast<size_t>(nd - 1)] == 1;
  const int64_t outer = inner ? numel() / inner : 0;
  auto* dst = static_cast<std::byte*>(out.data_);
  for (int64_t o = 0; o < outer; ++o) {
    int64_t off = 0;
    for (int d = 0; d < nd - 1; ++d)
      off += idx[static_cast<size_t>(d)] * strides_[static_cast<size_t>(d)];
    const auto* src = static_cast<const std::byte*>(data_) + off * static_cast<int64_t>(es);
    if (dense_inner) {
      std::memcpy(dst, src, static_cast<size_t>(inner) * es);
    } else {
      const int64_t st = strides_[static_cast<size_t>(nd - 1)] * static_cast<int64_t>(es);
      for (int64_t j = 0; j < inner; ++j)
        std::memcpy(dst + j * static_cast<int64_t>(es), src + j * st, es);
    }
    dst += inner * static_cast<int64_t>(es);
    for (int d = nd - 2; d >= 0; --d) {
      if (++idx[static_cast<size_t>(d)] < shape_[d]) break;
      idx[static_cast<size_t>(d)] = 0;
    }
  }
  return out;
}

Tensor Tensor::clone() const {
  if (!is_contiguous()) return contiguous();
  require_host("clone()");
  Tensor out = empty(shape_, dtype_, device_);
  std::memcpy(out.data_, data_, nbytes());
  return out;
}

Tensor Tensor::to(DType target) const {
  if (target == dtype_) return *this;
  require_host("to(dtype)");
  Tensor src = contiguous();
  Tensor out = empty(shape_, target, device_);
  const int64_t n = numel();
  if (target == DType::F32) {
    float* d = out.f32();
    switch (dtype_) {
      case DType::F16: {
        auto* s = src.data_as<uint16_t>();
        for (int64_t i = 0; i < n; ++i) d[i] = half_to_float(s[i]);
        return out;
      }
      case DType::BF16: {
        auto* s = src.data_as<uint16_t>();
        for (int64_t i = 0; i < n; ++i) d[i] = bf16_to_float(s[i]);
        return out;
      }
      case DType::F64: {
        auto* s = src.data_as<double>();
        for (int64_t i = 0; i < n; ++i) d[i] = static_cast<float>(s[i]);
        return out;
      }
      case DType::I64: {
        auto* s = src.data_as<int64_t>();
        for (int64_t i = 0; i < n; ++i) d[i] = static_cast<float>(s[i]);
        return out;
      }
      default:
        break;
    }
  } else if (dtype_ == DType::F32 && (target == DType::F16 || target == DType::BF16)) {
    const float* s = src.f32();
    auto* d = out.data_as<uint16_t>();
    for (int64_t i = 0; i < n; ++i)
      d[i] = target == DType::F16 ? float_to_half(s[i]) : float_to_bf16(s[i]);
    return out;
  }
  throw ShapeError("unsupported conversion " + std::string(dtype_name(dtype_)) + " -> " +
                   std::string(dtype_name(target)));
}

float Tensor::item() const {
  if (numel() != 1) throw ShapeError("item() on " + describe());
  return to(DType::F32).f32()[0];
}

std::string Tensor::describe() const {
  return std::string(dtype_name(dtype_)) + shape_.str() +
         (device_ == kCpu ? "" : " on " + device_.name());
}

void require_shape(const Tensor& t, std::initializer_list<int64_t> expected, const char* what) {
  bool ok = static_cast<int>(expected.size()) == t.ndim();
  int i = 0;
  for (int64_t e : expected) {
    if (!ok) break;
    if (e >= 0 && t.dim(i) != e) ok = false;
    ++i;
  }
  if (!ok) {
    std::string exp = "[";
    i = 0;
    for (int64_t e : expected)
      exp += (i++ ? ", " : "") + (e < 0 ? std::string("*") : std::to_string(e));
    throw ShapeError(std::string(what) + ": expected shape " + exp + "], got " + t.shape().str());
  }
}

void require_f32_contiguous(const Tensor& t, const char* what) {
  if (t.dtype() != DType::F32 || !t.is_contiguous())
    throw ShapeError(std::string(what) + ": expected a contiguous F32 tensor, got " + t.describe());
}

}  // namespace diffuse
