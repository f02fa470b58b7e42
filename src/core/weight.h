// A layer's weight matrix as it is held in memory (Linear [out, in], Conv2d [out, in, kh, kw]):
//   - F32 values, used as they are;
//   - F16 or BF16 values (a 16-bit model file kept as stored, or --precision f16/bf16), widened to
//     float32 where an op uses them: widening is exact, so an F16 file computes exactly as if it
//     had been upcast at load, in half the memory;
//   - I8 values with one F32 scale per output channel (--precision int8, weight-only symmetric
//     quantization): value = q * scale[out].
// Independently of the form, `compute` says how ops multiply with it: in float32 (exact: the
// result is that of the float32 widening), or in bfloat16 (--precision bf16 and int8: the
// activations and the widened weight rounded to bfloat16, their products summed in float32, as
// PyTorch's bf16 autocast; AVX512_BF16's vdpbf16ps does twice the float32 rate).
// Ops take a Weight wherever a layer's matrix goes in (ops::linear, ops::conv2d); a plain Tensor
// converts implicitly, so activations and computed matrices pass as before.
#pragma once

#include <string>
#include <string_view>

#include "core/tensor.h"

namespace diffuse {

/// How a model's layer matrices are held (LoadOptions::precision).
enum class WeightPrecision : uint8_t {
  F32,   // as stored: F32 files mmapped, F16/BF16 files kept 16-bit (exact either way)
  F16,   // F32 matrices rounded to half (16-bit files kept as stored)
  BF16,  // F32 matrices rounded to bfloat16 (16-bit files kept as stored)
  Int8,  // every matrix quantized to int8 per output channel
};

/// How ops multiply with a layer matrix (Weight::compute).
enum class WeightCompute : uint8_t {
  F32,   // the matrix widened exactly to float32, float32 arithmetic
  BF16,  // activations and matrix rounded to bfloat16 (nearest even), products summed in float32
};

/// "f32", "f16", "bf16", "int8"; false for anything else.
bool parse_weight_precision(std::string_view name, WeightPrecision* out);
std::string_view weight_precision_name(WeightPrecision p);
/// "f32, f16, bf16 or int8", for error messages.
std::string weight_precision_choices();

struct Weight {
  Tensor values;  // F32, F16, BF16 or I8, contiguous, [out, ...]
  Tensor scales;  // F32 [out] for I8 values; undefined otherwise
  WeightCompute compute = WeightCompute::F32;
  /// `values` view a read-only file mapping whose pages go back to the file after each use
  /// (LoadOptions::low_memory: the ops release them, so only the layer running stays resident).
  bool streamed = false;

  Weight() = default;
  Weight(Tensor v) : values(std::move(v)) {}  // NOLINT(google-explicit-constructor): as a Tensor
  Weight(Tensor q, Tensor per_channel_scales);

  bool defined() const { return values.defined(); }
  bool quantized() const { return scales.defined(); }
  const Shape& shape() const { return values.shape(); }
  int ndim() const { return values.ndim(); }
  int64_t dim(int i) const { return values.dim(i); }
  DType dtype() const { return values.dtype(); }
  Device device() const { return values.device(); }
  /// Same data viewed with another shape of the same leading (output) dimension.
  Weight reshape(std::initializer_list<int64_t> dims) const;
  /// Elements per output channel.
  int64_t row_size() const { return values.numel() / values.dim(0); }
  /// Releases the values' resident file pages when `streamed` (release_mapped_pages); else nothing.
  void release_pages() const noexcept;
  /// Bytes held (values and scales).
  size_t nbytes() const;

  /// Rows [r0, r1) as float32 into `dst` (row-major, (r1 - r0) * row_size() floats): exact for
  /// F32/F16/BF16, q * scale for I8. Host tensors only.
  void widen_rows(int64_t r0, int64_t r1, float* dst) const;
  /// Rows [r0, r1) as bfloat16 into `dst`: bf16(the widen_rows values), nearest even; a copy
  /// for BF16 values. Converted in L1-sized pieces, never through a whole float32 row set.
  void rows_to_bf16(int64_t r0, int64_t r1, uint16_t* dst) const;
  /// The whole matrix as a contiguous F32 tensor on the values' device.
  Tensor to_f32() const;

  /// `w` (any float dtype) held at `precision`: F32 keeps w as it is (16-bit stays 16-bit) and
  /// F16 rounds F32 values to half, both computing in float32; BF16 rounds F32 and F16 values to
  /// bfloat16 and Int8 takes scale = max|row| / 127 per output channel and q =
  /// round-half-even(w / scale), both computing in bfloat16 (WeightCompute::BF16).
  static Weight from_tensor(const Tensor& w, WeightPrecision precision);
};

}  // namespace diffuse
