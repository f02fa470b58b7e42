// Direct 2-D convolution through oneDNN's JIT convolution kernels, for large feature maps.
//
// Why: im2col copies every input value KH*KW times before the GEMM sees it. On the VAE decoder's
// big maps (128-512 channels at 64²-512²) that traffic, not the arithmetic, sets the pace: on
// this project's 2-core AVX2 machine one 3x3 128->128 conv at 256² ran at 36 GFLOP/s per core
// through im2col + sgemm and at 67 GFLOP/s through oneDNN's direct kernel (blocked nChw8c
// layouts; docs/PERFORMANCE.md, "Direct convolutions"). On small maps (the UNet's inner levels)
// the two are even, and reordering the weights per call would cost more than it saves, so
// conv2d.cpp keeps im2col there.
//
// Winograd: on maps of 128x128 and more, float32 3x3 stride-1 convolutions (the VAE's upper
// levels; the UNet's first level from 1024²) use oneDNN's Winograd F(4x4, 3x3) kernel, which
// does a quarter of the multiplications. Measured on a 2-core Zen 5 (AVX-512; bench BM_Conv3x3):
// VAE 512 channels at 128² 389 -> 224 ms, 256 at 256² 408 -> 168 ms, 128 at 512² 429 -> 175 ms.
// At 64² it does not pay: one image with 512 channels was slower (89 -> 130 ms), and the UNet's
// 320 channels at 2 x 64², though faster (73 -> 60 ms, 5% of a 512² step), raised the peak RSS
// of a 512² generation by 290 MiB. It is float32 throughout; the transforms round differently
// from a direct sum (the VAE at 512² is 2.6e-6 from diffusers instead of 1.3e-6, within the 1e-4
// goldens). oneDNN has it for AVX-512 CPUs only; elsewhere conv2d.cpp runs our own
// (winograd_conv2d.cpp) before this file is asked.
//
// The layouts stay NCHW between ops: each call reorders its input into oneDNN's blocked layout and
// the result back. To keep those copies small and the work split over our own thread pool, the
// output is cut into bands of rows: a band reorders only the input rows it reads (with the
// kernel's halo), convolves them, and writes its rows of the NCHW output. Band heights depend on
// the shapes only, never on the thread count, and each output value is reduced in the same order
// whatever band it falls in, so results are identical at any --threads.
#include "backend/cpu/conv2d_direct.h"

#include <omp.h>

#include <algorithm>
#include <oneapi/dnnl/dnnl.hpp>
#include <unordered_map>
#include <vector>

#include "backend/cpu/kernels.h"
#include "core/thread_pool.h"
#include "diffuse/error.hpp"

namespace diffuse::cpu {

namespace {

using dnnl::memory;
using Dims = memory::dims;

// Floats of input (or output) per band: a few hundred KB keeps a band's blocked copies in L2
// and gives the pool enough bands to balance two or more threads.
constexpr int64_t kBandFloats = 256 * 1024;
// Below this many output pixels per image the per-call weight reorder outweighs the gain.
constexpr int64_t kMinDirectPixels = 64 * 64;
// Winograd from this many output pixels per image (see the top of the file).
constexpr int64_t kMinWinogradPixels = 128 * 128;
// Winograd computes output tiles of 4x4: bands of a multiple of 4 rows waste none.
constexpr int64_t kWinogradTileRows = 4;

// oneDNN's default scratchpad is one buffer shared by every primitive of the process (unless the
// library was built with DNNL_ENABLE_CONCURRENT_EXEC, which Debian's is not), so primitives that
// run concurrently on our threads each get a scratchpad of their own.
dnnl::primitive_attr own_scratchpad() {
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  return attr;
}

dnnl::engine& cpu_engine() {
  thread_local dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  return engine;
}

struct Geometry {
  int64_t B, C, H, W, O, KH, KW, S, OH, OW;
  int64_t pad_top, pad_bottom, pad_left, pad_right;
  memory::data_type compute;  // of the input and weights (the output is f32): f32 or bf16
  dnnl::algorithm algorithm = dnnl::algorithm::convolution_direct;

  /// What output rows [r0, r1) read: input rows [first_row, first_row + in_rows) of the map,
  /// and the zero rows the kernel sees above and below them.
  struct Band {
    int64_t first_row, in_rows, pad_top, pad_bottom;
  };
  Band band(int64_t r0, int64_t r1) const {
    const int64_t lo = r0 * S - pad_top, hi = (r1 - 1) * S - pad_top + KH;
    const int64_t first = std::max<int64_t>(lo, 0);
    return {first, std::min(hi, H) - first, first - lo, std::max<int64_t>(0, hi - H)};
  }
};

memory::desc nchw_view(int64_t n, int64_t c, int64_t rows, int64_t cols, int64_t channel_stride,
                       int64_t image_stride) {
  return memory::desc(Dims{n, c, rows, cols}, memory::data_type::f32,
                      Dims{image_stride, channel_stride, cols, 1});
}

/// One kind of band (first, middle, last, or the whole map): its convolution in the layouts
/// oneDNN chose, and the reorders from and to the NCHW tensors.
struct BandKind {
  int64_t rows = 0, in_rows = 0, pad_top = 0, pad_bottom = 0;
  dnnl::convolution_forward::primitive_desc pd;
  dnnl::convolution_forward conv;
  dnnl::reorder::primitive_desc load_pd, store_pd;
  dnnl::reorder load, store;

  size_t scratch_bytes() const {
    return std::max({pd.scratchpad_desc().get_size(), load_pd.scratchpad_desc().get_size(),
                     store_pd.scratchpad_desc().get_size()});
  }
};

BandKind make_band_kind(const Geometry& g, int64_t r0, int64_t r1, bool has_bias,
                        const memory::desc* weights_layout) {
  const Geometry::Band band = g.band(r0, r1);
  BandKind k;
  k.rows = r1 - r0;
  k.pad_top = band.pad_top;
  k.pad_bottom = band.pad_bottom;
  k.in_rows = band.in_rows;
  const auto any = memory::format_tag::any;
  const memory::desc src(Dims{g.B, g.C, k.in_rows, g.W}, g.compute, any);
  const memory::desc dst(Dims{g.B, g.O, k.rows, g.OW}, memory::data_type::f32, any);
  const memory::desc weights =
      weights_layout ? *weights_layout : memory::desc(Dims{g.O, g.C, g.KH, g.KW}, g.compute, any);
  const memory::desc bias =
      has_bias ? memory::desc(Dims{g.O}, memory::data_type::f32, memory::format_tag::a)
               : memory::desc();
  const dnnl::convolution_forward::desc desc(
      dnnl::prop_kind::forward_inference, g.algorithm, src, weights, bias, dst, Dims{g.S, g.S},
      Dims{k.pad_top, g.pad_left}, Dims{k.pad_bottom, g.pad_right});
  dnnl::engine& engine = cpu_engine();
  k.pd = dnnl::convolution_forward::primitive_desc(desc, own_scratchpad(), engine);
  k.conv = dnnl::convolution_forward(k.pd);
  const memory::desc src_view = nchw_view(g.B, g.C, k.in_rows, g.W, g.H * g.W, g.C * g.H * g.W);
  const memory::desc dst_view = nchw_view(g.B, g.O, k.rows, g.OW, g.OH * g.OW, g.O * g.OH * g.OW);
  k.load_pd =
      dnnl::reorder::primitive_desc(engine, src_view, engine, k.pd.src_desc(), own_scratchpad());
  k.store_pd =
      dnnl::reorder::primitive_desc(engine, k.pd.dst_desc(), engine, dst_view, own_scratchpad());
  k.load = dnnl::reorder(k.load_pd);
  k.store = dnnl::reorder(k.store_pd);
  return k;
}

/// The buffers one worker reuses for every band it runs: allocated by the caller before the
/// work is split, so the activation pool sees the same requests at every call.
struct BandBuffers {
  Tensor src, dst, scratch;
};

using Args = std::unordered_map<int, memory>;

/// `args` plus the scratchpad `layout` asks for (none when it asks for 0 bytes) in `buffer`.
Args with_scratchpad(Args args, const memory::desc& layout, const dnnl::engine& engine,
                     Tensor& buffer) {
  if (layout.get_size() > 0)
    args.emplace(DNNL_ARG_SCRATCHPAD, memory(layout, engine, buffer.f32()));
  return args;
}

/// Runs one band, output rows [r0, r0 + k.rows) of every image.
void run_band(const Geometry& g, const BandKind& k, int64_t r0, const float* x,
              const memory& weights, const float* bias, float* out, BandBuffers& buf) {
  keep_onednn_on_this_thread();
  // The primitives were made on the calling thread's engine; they run on a stream of that engine.
  const dnnl::engine engine = k.pd.get_engine();
  dnnl::stream stream(engine);
  const int64_t first_row = g.band(r0, r0 + k.rows).first_row;
  memory src_view(k.load_pd.src_desc(), engine, const_cast<float*>(x + first_row * g.W));
  memory dst_view(k.store_pd.dst_desc(), engine, out + r0 * g.OW);
  memory src(k.pd.src_desc(), engine, buf.src.f32());
  memory dst(k.pd.dst_desc(), engine, buf.dst.f32());
  auto with_scratch = [&](const memory::desc& layout, Args args) {
    return with_scratchpad(std::move(args), layout, engine, buf.scratch);
  };
  k.load.execute(stream, with_scratch(k.load_pd.scratchpad_desc(),
                                      {{DNNL_ARG_FROM, src_view}, {DNNL_ARG_TO, src}}));
  Args args{{DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, weights}, {DNNL_ARG_DST, dst}};
  if (bias) args.emplace(DNNL_ARG_BIAS, memory(k.pd.bias_desc(), engine, const_cast<float*>(bias)));
  k.conv.execute(stream, with_scratch(k.pd.scratchpad_desc(), std::move(args)));
  k.store.execute(stream, with_scratch(k.store_pd.scratchpad_desc(),
                                       {{DNNL_ARG_FROM, dst}, {DNNL_ARG_TO, dst_view}}));
  stream.wait();
}

Tensor floats_for(size_t bytes) {
  return Tensor::empty({static_cast<int64_t>(std::max<size_t>(bytes, 4) + 3) / 4});
}

/// For its lifetime, oneDNN primitives called from this thread run on an OpenMP team of `threads`
/// (then one again, as keep_onednn_on_this_thread() leaves it). Only where our pool's workers
/// are idle meanwhile, so the cores are not oversubscribed.
class OnednnTeam {
 public:
  explicit OnednnTeam(int threads) {
    keep_onednn_on_this_thread();
    omp_set_num_threads(std::max(threads, 1));
  }
  ~OnednnTeam() { omp_set_num_threads(1); }
  OnednnTeam(const OnednnTeam&) = delete;
  OnednnTeam& operator=(const OnednnTeam&) = delete;
};

/// The weights in the layout the band kernels read, reordered once per call, before the bands
/// run, by all the pipeline's threads: the Winograd transform is the costly one (a 512-channel
/// 3x3 weight took 0.2 s on one thread, docs/PERFORMANCE.md).
Tensor pack_weights(const Tensor& w, const memory::desc& layout) {
  OnednnTeam team(num_threads());
  dnnl::engine& engine = cpu_engine();
  dnnl::stream stream(engine);
  Tensor packed = floats_for(layout.get_size());
  const auto type = w.dtype() == DType::BF16 ? memory::data_type::bf16 : memory::data_type::f32;
  memory plain(
      memory::desc(Dims{w.dim(0), w.dim(1), w.dim(2), w.dim(3)}, type, memory::format_tag::oihw),
      engine, const_cast<void*>(w.raw()));
  memory to(layout, engine, packed.f32());
  const dnnl::reorder::primitive_desc pd(engine, plain.get_desc(), engine, layout,
                                         own_scratchpad());
  Tensor scratch = floats_for(pd.scratchpad_desc().get_size());
  dnnl::reorder(pd).execute(stream, with_scratchpad({{DNNL_ARG_FROM, plain}, {DNNL_ARG_TO, to}},
                                                    pd.scratchpad_desc(), engine, scratch));
  stream.wait();
  return packed;
}

/// The distinct kinds of band for bands of `rows_per_band` output rows (kind_of[i]: band i's).
/// They differ only in padding and height: the first band (top padding), the last (bottom
/// padding, maybe shorter) and the ones between. All share the first kind's weight layout.
std::vector<BandKind> plan_band_kinds(const Geometry& g, int64_t rows_per_band, bool has_bias,
                                      std::vector<size_t>& kind_of) {
  std::vector<BandKind> kinds;
  for (size_t i = 0; i < kind_of.size(); ++i) {
    const int64_t r0 = int64_t(i) * rows_per_band, r1 = std::min(g.OH, r0 + rows_per_band);
    const Geometry::Band band = g.band(r0, r1);
    size_t found = 0;
    while (found < kinds.size() &&
           !(kinds[found].rows == r1 - r0 && kinds[found].pad_top == band.pad_top &&
             kinds[found].pad_bottom == band.pad_bottom))
      ++found;
    if (found == kinds.size()) {
      const memory::desc layout = kinds.empty() ? memory::desc() : kinds.front().pd.weights_desc();
      kinds.push_back(make_band_kind(g, r0, r1, has_bias, kinds.empty() ? nullptr : &layout));
    }
    kind_of[i] = found;
  }
  return kinds;
}

}  // namespace

bool onednn_has_winograd() {
  // A property of the CPU and the library, the same for the whole process: asked once.
  static const bool has = [] {
    const memory::desc data(Dims{1, 16, 16, 16}, memory::data_type::f32, memory::format_tag::any);
    const memory::desc weights(Dims{16, 16, 3, 3}, memory::data_type::f32, memory::format_tag::any);
    try {
      const dnnl::convolution_forward::desc desc(
          dnnl::prop_kind::forward_inference, dnnl::algorithm::convolution_winograd, data, weights,
          memory::desc(), data, Dims{1, 1}, Dims{1, 1}, Dims{1, 1});
      dnnl::convolution_forward::primitive_desc(desc, cpu_engine());
      return true;
    } catch (const dnnl::error&) {
      return false;
    }
  }();
  return has;
}

bool direct_conv2d_pays(int64_t out_h, int64_t out_w, int64_t kernel_h, int64_t kernel_w) {
  return out_h * out_w >= kMinDirectPixels && kernel_h * kernel_w > 1;
}

namespace {

bool winograd_pays(const Geometry& g) {
  return g.compute == memory::data_type::f32 && g.KH == 3 && g.KW == 3 && g.S == 1 &&
         g.OH * g.OW >= kMinWinogradPixels;
}

int64_t rows_per_band(const Geometry& g) {
  const int64_t band_floats = std::max(g.C * g.W, g.O * g.OW) * g.B;
  int64_t rows = std::clamp<int64_t>(kBandFloats / band_floats, 1, g.OH);
  if (g.algorithm == dnnl::algorithm::convolution_winograd && rows < g.OH)
    rows = std::max(kWinogradTileRows, rows / kWinogradTileRows * kWinogradTileRows);
  return rows;
}

/// Runs every band of `g` with the kinds planned for it.
void run_bands(const Geometry& g, const std::vector<BandKind>& kinds,
               const std::vector<size_t>& kind_of, int64_t rows, const Tensor& x, const Tensor& w,
               const Tensor* bias, Tensor& out) {
  const Tensor packed = pack_weights(w, kinds.front().pd.weights_desc());
  memory weights(kinds.front().pd.weights_desc(), cpu_engine(), const_cast<float*>(packed.f32()));
  size_t src_bytes = 0, dst_bytes = 0, scratch_bytes = 0;
  for (const BandKind& k : kinds) {
    src_bytes = std::max(src_bytes, k.pd.src_desc().get_size());
    dst_bytes = std::max(dst_bytes, k.pd.dst_desc().get_size());
    scratch_bytes = std::max(scratch_bytes, k.scratch_bytes());
  }
  // One set of buffers per worker slot; slot s runs bands s, s + slots, ... (the assignment
  // does not change the result: every band is computed the same way wherever it runs).
  const auto bands = static_cast<int64_t>(kind_of.size());
  const int64_t slots = std::min<int64_t>(num_threads(), bands);
  std::vector<BandBuffers> buffers(static_cast<size_t>(slots));
  for (BandBuffers& b : buffers)
    b = {floats_for(src_bytes), floats_for(dst_bytes), floats_for(scratch_bytes)};
  const float* bp = bias ? bias->f32() : nullptr;
  parallel_for(slots, [&](int64_t s0, int64_t s1) {
    for (int64_t s = s0; s < s1; ++s)
      for (int64_t i = s; i < bands; i += slots)
        run_band(g, kinds[kind_of[static_cast<size_t>(i)]], i * rows, x.f32(), weights, bp,
                 out.f32(), buffers[static_cast<size_t>(s)]);
  });
}

}  // namespace

bool direct_conv2d(const Tensor& x, const Tensor& w, const Tensor* bias, const ops::Conv2dParams& p,
                   Tensor& out) {
  Geometry g{x.dim(0),
             x.dim(1),
             x.dim(2),
             x.dim(3),
             w.dim(0),
             w.dim(2),
             w.dim(3),
             p.stride,
             out.dim(2),
             out.dim(3),
             p.pad_top,
             p.pad_bottom,
             p.pad_left,
             p.pad_right,
             w.dtype() == DType::BF16 ? memory::data_type::bf16 : memory::data_type::f32};
  std::vector<BandKind> kinds;
  std::vector<size_t> kind_of;
  int64_t rows = 0;
  // Winograd where it pays, else (or where this CPU has no Winograd kernel) the direct kernel.
  std::vector<dnnl::algorithm> choices = {dnnl::algorithm::convolution_direct};
  if (winograd_pays(g)) choices.insert(choices.begin(), dnnl::algorithm::convolution_winograd);
  for (dnnl::algorithm algorithm : choices) {
    g.algorithm = algorithm;
    rows = rows_per_band(g);
    kind_of.assign(static_cast<size_t>((g.OH + rows - 1) / rows), 0);
    try {
      kinds = plan_band_kinds(g, rows, bias != nullptr, kind_of);
      break;
    } catch (const dnnl::error&) {
      kinds.clear();  // no such kernel for this shape on this CPU: the next choice
    }
  }
  if (kinds.empty()) return false;  // the caller uses im2col
  try {
    run_bands(g, kinds, kind_of, rows, x, w, bias, out);
  } catch (const dnnl::error& e) {
    throw ShapeError(std::string("conv2d: oneDNN's direct convolution failed for input ") +
                     x.shape().str() + " and weight " + w.shape().str() + ": " + e.what() +
                     " (status " + std::to_string(static_cast<int>(e.status)) + ")");
  }
  return true;
}

}  // namespace diffuse::cpu
