// The argument contracts of ops (ops.h), checked the same way by every backend: a bad shape is
// a ShapeError naming the op, whichever backend runs it.
#pragma once

#include <cstdint>
#include <vector>

#include "backend/expr.h"
#include "backend/ops.h"
#include "core/tensor.h"

namespace diffuse::op_checks {

/// x[..., K], w[N, K], bias[N].
void linear(const Tensor& x, const Tensor& w, const Tensor* bias);
/// x[B, C, H, W], w[O, C, kh, kw], bias[O], stride >= 1; returns the output's [OH, OW] through
/// out_h/out_w (ShapeError when the input is too small for the kernel).
void conv2d(const Tensor& x, const Tensor& w, const Tensor* bias, const ops::Conv2dParams& p,
            int64_t* out_h, int64_t* out_w);
/// Output length of a convolution along one axis (torch.nn.Conv2d's formula); may be <= 0 for an
/// input too small for the kernel, which conv2d() reports.
int64_t conv_output_size(int64_t in, int64_t kernel, int stride, int pad_before, int pad_after);
/// rows' shape is the trailing shape of x (and not empty).
void broadcast_rows(const Tensor& x, const Tensor& rows);
/// a and b agree except along `dim`; returns the concatenated shape.
Shape concat(const Tensor& a, const Tensor& b, int dim);
/// x[B, L, D] and I64 positions[B] (each position is then checked with index_in_range).
void select_tokens(const Tensor& x, const Tensor& positions);
/// 0 <= index < limit, else ShapeError "<what> <index> outside <limit_name> <limit>".
void index_in_range(const char* what, int64_t index, const char* limit_name, int64_t limit);
/// Enough inputs for the expression, all of one shape.
void evaluate(const ops::Expr& e, const std::vector<Tensor>& inputs);

}  // namespace diffuse::op_checks
