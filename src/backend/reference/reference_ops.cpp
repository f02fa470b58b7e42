#include "backend/reference/reference_ops.h"

#include <algorithm>
#include <cmath>
#include <vector>

namespace diffuse::ref {

Tensor linear(const Tensor& x, const Tensor& w, const Tensor* bias) {
  const int64_t k = w.dim(1), n = w.dim(0), m = x.numel() / k;
  Shape s = x.shape();
  s[-1] = n;
  Tensor out = Tensor::empty(s);
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) {
      double acc = bias ? bias->f32()[j] : 0.0;
      for (int64_t t = 0; t < k; ++t) acc += double(x.f32()[i * k + t]) * w.f32()[j * k + t];
      out.f32()[i * n + j] = static_cast<float>(acc);
    }
  return out;
}

Tensor conv2d(const Tensor& x, const Tensor& w, const Tensor* bias, const Conv2dParams& p) {
  const int64_t B = x.dim(0), C = x.dim(1), H = x.dim(2), W = x.dim(3);
  const int64_t O = w.dim(0), KH = w.dim(2), KW = w.dim(3), S = p.stride;
  const int64_t OH = (H + p.pad_top + p.pad_bottom - KH) / S + 1;
  const int64_t OW = (W + p.pad_left + p.pad_right - KW) / S + 1;
  Tensor out = Tensor::empty({B, O, OH, OW});
  for (int64_t b = 0; b < B; ++b)
    for (int64_t o = 0; o < O; ++o)
      for (int64_t oh = 0; oh < OH; ++oh)
        for (int64_t ow = 0; ow < OW; ++ow) {
          double acc = bias ? bias->f32()[o] : 0.0;
          for (int64_t c = 0; c < C; ++c)
            for (int64_t kh = 0; kh < KH; ++kh)
              for (int64_t kw = 0; kw < KW; ++kw) {
                const int64_t ih = oh * S + kh - p.pad_top, iw = ow * S + kw - p.pad_left;
                if (ih < 0 || ih >= H || iw < 0 || iw >= W) continue;
                acc += double(x.f32()[((b * C + c) * H + ih) * W + iw]) *
                       w.f32()[((o * C + c) * KH + kh) * KW + kw];
              }
          out.f32()[((b * O + o) * OH + oh) * OW + ow] = static_cast<float>(acc);
        }
  return out;
}

Tensor upsample_nearest_2x(const Tensor& x) {
  const int64_t B = x.dim(0), C = x.dim(1), H = x.dim(2), W = x.dim(3);
  Tensor out = Tensor::empty({B, C, 2 * H, 2 * W});
  for (int64_t bc = 0; bc < B * C; ++bc)
    for (int64_t h = 0; h < 2 * H; ++h)
      for (int64_t w = 0; w < 2 * W; ++w)
        out.f32()[(bc * 2 * H + h) * 2 * W + w] = x.f32()[(bc * H + h / 2) * W + w / 2];
  return out;
}

Tensor upsample_nearest(const Tensor& x, int64_t out_h, int64_t out_w) {
  const int64_t B = x.dim(0), C = x.dim(1), H = x.dim(2), W = x.dim(3);
  // torch's rule: integer halving for exact 2x, else floor(dst * float(in / out)) clamped.
  auto src = [](int64_t dst, int64_t in, int64_t out) -> int64_t {
    if (out == in) return dst;
    if (out == 2 * in) return dst / 2;
    const float scale = float(in) / float(out);
    return std::min<int64_t>(int64_t(std::floor(float(dst) * scale)), in - 1);
  };
  Tensor out = Tensor::empty({B, C, out_h, out_w});
  for (int64_t bc = 0; bc < B * C; ++bc)
    for (int64_t h = 0; h < out_h; ++h)
      for (int64_t w = 0; w < out_w; ++w)
        out.f32()[(bc * out_h + h) * out_w + w] =
            x.f32()[(bc * H + src(h, H, out_h)) * W + src(w, W, out_w)];
  return out;
}

Tensor layer_norm(const Tensor& x, const Tensor& gamma, const Tensor& beta, float eps) {
  const int64_t d = x.dim(-1), rows = x.numel() / d;
  Tensor out = Tensor::empty(x.shape());
  for (int64_t r = 0; r < rows; ++r) {
    double mean = 0, var = 0;
    for (int64_t i = 0; i < d; ++i) mean += x.f32()[r * d + i];
    mean /= double(d);
    for (int64_t i = 0; i < d; ++i) var += std::pow(x.f32()[r * d + i] - mean, 2);
    var /= double(d);
    for (int64_t i = 0; i < d; ++i)
      out.f32()[r * d + i] = static_cast<float>(
          (x.f32()[r * d + i] - mean) / std::sqrt(var + eps) * gamma.f32()[i] + beta.f32()[i]);
  }
  return out;
}

Tensor group_norm(const Tensor& x, int groups, const Tensor& gamma, const Tensor& beta, float eps,
                  bool fuse_silu) {
  const int64_t B = x.dim(0), C = x.dim(1), S = x.numel() / (B * C), cpg = C / groups;
  Tensor out = Tensor::empty(x.shape());
  for (int64_t b = 0; b < B; ++b)
    for (int64_t g = 0; g < groups; ++g) {
      const float* src = x.f32() + (b * C + g * cpg) * S;
      double mean = 0, var = 0;
      for (int64_t i = 0; i < cpg * S; ++i) mean += src[i];
      mean /= double(cpg * S);
      for (int64_t i = 0; i < cpg * S; ++i) var += std::pow(src[i] - mean, 2);
      var /= double(cpg * S);
      for (int64_t c = 0; c < cpg; ++c)
        for (int64_t i = 0; i < S; ++i) {
          const int64_t ch = g * cpg + c;
          double y =
              (src[c * S + i] - mean) / std::sqrt(var + eps) * gamma.f32()[ch] + beta.f32()[ch];
          if (fuse_silu) y = y / (1 + std::exp(-y));
          out.f32()[(b * C + ch) * S + i] = static_cast<float>(y);
        }
    }
  return out;
}

namespace {
template <typename F>
Tensor map(const Tensor& x, F f) {
  Tensor out = Tensor::empty(x.shape());
  for (int64_t i = 0; i < x.numel(); ++i) out.f32()[i] = static_cast<float>(f(double(x.f32()[i])));
  return out;
}
double gelu_d(double v) {
  return 0.5 * v * (1 + std::erf(v / std::sqrt(2.0)));
}
}  // namespace

Tensor silu(const Tensor& x) {
  return map(x, [](double v) { return v / (1 + std::exp(-v)); });
}
Tensor gelu(const Tensor& x) {
  return map(x, gelu_d);
}
Tensor quick_gelu(const Tensor& x) {
  return map(x, [](double v) { return v / (1 + std::exp(-1.702 * v)); });
}

Tensor geglu(const Tensor& x) {
  const int64_t d2 = x.dim(-1), d = d2 / 2, rows = x.numel() / d2;
  Shape s = x.shape();
  s[-1] = d;
  Tensor out = Tensor::empty(s);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t i = 0; i < d; ++i)
      out.f32()[r * d + i] =
          static_cast<float>(x.f32()[r * d2 + i] * gelu_d(x.f32()[r * d2 + d + i]));
  return out;
}

Tensor clamp(const Tensor& x, float lo, float hi) {
  return map(x, [lo, hi](double v) { return v < lo ? double(lo) : (v > hi ? double(hi) : v); });
}

Tensor softmax(const Tensor& x) {
  const int64_t d = x.dim(-1), rows = x.numel() / d;
  Tensor out = Tensor::empty(x.shape());
  for (int64_t r = 0; r < rows; ++r) {
    double m = -INFINITY, sum = 0;
    for (int64_t i = 0; i < d; ++i) m = std::fmax(m, x.f32()[r * d + i]);
    for (int64_t i = 0; i < d; ++i) sum += std::exp(x.f32()[r * d + i] - m);
    for (int64_t i = 0; i < d; ++i)
      out.f32()[r * d + i] = static_cast<float>(std::exp(x.f32()[r * d + i] - m) / sum);
  }
  return out;
}

Tensor nchw_to_nlc(const Tensor& x) {
  const int64_t B = x.dim(0), C = x.dim(1), L = x.dim(2) * x.dim(3);
  Tensor out = Tensor::empty({B, L, C});
  for (int64_t b = 0; b < B; ++b)
    for (int64_t c = 0; c < C; ++c)
      for (int64_t l = 0; l < L; ++l) out.f32()[(b * L + l) * C + c] = x.f32()[(b * C + c) * L + l];
  return out;
}

Tensor attention(const Tensor& q, const Tensor& k, const Tensor& v, int heads, bool causal) {
  const int64_t B = q.dim(0), Lq = q.dim(1), C = q.dim(2), Lk = k.dim(1), D = C / heads;
  Tensor out = Tensor::empty({B, Lq, C});
  std::vector<double> s(static_cast<size_t>(Lk));
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < heads; ++h)
      for (int64_t i = 0; i < Lq; ++i) {
        double m = -INFINITY, sum = 0;
        for (int64_t j = 0; j < Lk; ++j) {
          double dot = 0;
          for (int64_t t = 0; t < D; ++t)
            dot += double(q.f32()[(b * Lq + i) * C + h * D + t]) *
                   k.f32()[(b * Lk + j) * C + h * D + t];
          s[size_t(j)] = (causal && j > i) ? -INFINITY : dot / std::sqrt(double(D));
          m = std::fmax(m, s[size_t(j)]);
        }
        for (int64_t j = 0; j < Lk; ++j) sum += (s[size_t(j)] = std::exp(s[size_t(j)] - m));
        for (int64_t t = 0; t < D; ++t) {
          double acc = 0;
          for (int64_t j = 0; j < Lk; ++j)
            acc += s[size_t(j)] / sum * v.f32()[(b * Lk + j) * C + h * D + t];
          out.f32()[(b * Lq + i) * C + h * D + t] = static_cast<float>(acc);
        }
      }
  return out;
}

}  // namespace diffuse::ref
