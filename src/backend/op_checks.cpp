#include "backend/op_checks.h"

#include <string>

#include "diffuse/error.hpp"

namespace diffuse::op_checks {

void linear(const Tensor& x, const Tensor& w, const Tensor* bias) {
  if (w.ndim() != 2 || x.ndim() < 1 || x.dim(-1) != w.dim(1) || (bias && bias->numel() != w.dim(0)))
    throw ShapeError("linear: input " + x.shape().str() + " does not match weight " +
                     w.shape().str());
}

int64_t conv_output_size(int64_t in, int64_t kernel, int stride, int pad_before, int pad_after) {
  return (in + pad_before + pad_after - kernel) / stride + 1;
}

void conv2d(const Tensor& x, const Tensor& w, const Tensor* bias, const ops::Conv2dParams& p,
            int64_t* out_h, int64_t* out_w) {
  if (x.ndim() != 4 || w.ndim() != 4 || x.dim(1) != w.dim(1) || p.stride < 1)
    throw ShapeError("conv2d: input " + x.shape().str() + " does not match weight " +
                     w.shape().str());
  if (bias) require_shape(*bias, {w.dim(0)}, "conv2d bias");
  *out_h = conv_output_size(x.dim(2), w.dim(2), p.stride, p.pad_top, p.pad_bottom);
  *out_w = conv_output_size(x.dim(3), w.dim(3), p.stride, p.pad_left, p.pad_right);
  if (*out_h <= 0 || *out_w <= 0)
    throw ShapeError("conv2d: input " + x.shape().str() + " too small for kernel");
}

void broadcast_rows(const Tensor& x, const Tensor& rows) {
  const int64_t n = rows.numel();
  bool ok = rows.ndim() <= x.ndim() && n > 0 && x.numel() % n == 0;
  for (int i = 1; ok && i <= rows.ndim(); ++i) ok = rows.dim(-i) == x.dim(-i);
  if (!ok)
    throw ShapeError("add_broadcast: " + rows.shape().str() + " is not the trailing shape of " +
                     x.shape().str());
}

Shape concat(const Tensor& a, const Tensor& b, int dim) {
  bool ok = a.ndim() == b.ndim() && dim >= 0 && dim < a.ndim();
  for (int i = 0; ok && i < a.ndim(); ++i) ok = i == dim || a.dim(i) == b.dim(i);
  if (!ok)
    throw ShapeError("concat along " + std::to_string(dim) + ": " + a.shape().str() + " and " +
                     b.shape().str());
  Shape s = a.shape();
  s[dim] += b.dim(dim);
  return s;
}

void select_tokens(const Tensor& x, const Tensor& positions) {
  if (x.ndim() != 3 || positions.dtype() != DType::I64 || positions.numel() != x.dim(0))
    throw ShapeError("select_tokens: " + x.describe() + " at positions " + positions.describe());
}

void index_in_range(const char* what, int64_t index, const char* limit_name, int64_t limit) {
  if (index < 0 || index >= limit)
    throw ShapeError(std::string(what) + " " + std::to_string(index) + " outside " + limit_name +
                     " " + std::to_string(limit));
}

void evaluate(const ops::Expr& e, const std::vector<Tensor>& inputs) {
  if (inputs.empty() || static_cast<int>(inputs.size()) < e.arity())
    throw ShapeError("evaluate: expression [" + e.str() + "] needs " + std::to_string(e.arity()) +
                     " inputs, got " + std::to_string(inputs.size()));
  for (const Tensor& t : inputs)
    if (t.shape() != inputs[0].shape())
      throw ShapeError("evaluate: input shapes " + inputs[0].shape().str() + " and " +
                       t.shape().str() + " differ");
}

}  // namespace diffuse::op_checks
