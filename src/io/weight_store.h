// Named weights from one or more safetensors files (a component folder, possibly sharded).
// Tensors stay memory-mapped; get() converts f16/bf16 to f32 on request and keeps the result, so
// a model rebuilt from the same store (another LoRA) shares its tensors instead of converting
// again. Copies are cheap and share the files and tensors (LoRA patches a copy).
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/attention_kernel.h"
#include "core/weight.h"
#include "io/safetensors.h"

namespace diffuse {

class WeightStore {
 public:
  /// Adds every tensor of a safetensors file (later files do not override earlier keys: a
  /// duplicate key is an error naming both files).
  void add_file(const std::string& path);
  /// Adds every tensor of a PyTorch pickle (.bin / .ckpt, torch.save's zip format), read without
  /// running pickle code; a duplicate key is an error as in add_file().
  void add_torch_file(const std::string& path);
  /// Adds an in-memory tensor (converted checkpoints, synthetic weights), replacing any weight
  /// of that name.
  void add(const std::string& name, Tensor t);

  /// Weights defined by a rule instead of a file (benchmarks, the demo model): when set, get() of a
  /// name not stored returns synthesize(name, expected) and remembers it. Models always pass the
  /// expected shape, so any architecture can be instantiated from its config alone.
  using Synthesizer = std::function<Tensor(const std::string& name, const Shape& shape)>;
  void set_synthesizer(Synthesizer s) { synthesize_ = std::move(s); }

  bool contains(const std::string& name) const { return entries_.count(name) != 0; }
  /// The tensor as F32 contiguous; throws FileError naming the key and source when absent or when
  /// `expected` (if non-empty) does not match its shape.
  Tensor get(const std::string& name, const Shape& expected = {}) const;
  /// The tensor as stored when it is F32, F16 or BF16 (a view of the file: only the pages read
  /// become resident), else as get(); shape checked as get(). For lookup tables (token
  /// embeddings), of which a call reads a few rows.
  Tensor get_as_stored(const std::string& name, const Shape& expected = {}) const;
  /// A layer matrix (Linear/Conv2d weight) held at precision(): see WeightPrecision. The default
  /// (F32) converts nothing: F32 and 16-bit tensors stay memory-mapped as stored. Other
  /// precisions convert once and keep the result, as get() does; shape checked as get().
  Weight get_weight(const std::string& name, const Shape& expected = {}) const;
  /// How get_weight() holds matrices; set before a model is built from this store.
  void set_precision(WeightPrecision p) { precision_ = p; }
  WeightPrecision precision() const { return precision_; }
  /// How the attention layers of a model built from this store compute (set before building it,
  /// as the precision): LoadOptions::attention.
  void set_attention_kernel(AttentionKernel k) { attention_kernel_ = k; }
  AttentionKernel attention_kernel() const { return attention_kernel_; }
  /// When set, get_weight() marks matrices that view a file's mapping as Weight::streamed (their
  /// pages are released after each use: LoadOptions::low_memory).
  void set_streaming(bool on) { streaming_ = on; }
  /// Stored dtype/shape without conversion.
  Tensor raw(const std::string& name) const;
  /// The tensor as F32, as get() gives it, but kept nowhere: for reading each weight once (the
  /// converter), with release_pages() after use, so a whole model never sits in memory.
  Tensor read_once(const std::string& name) const;
  /// Drops the resident file pages of tensor `name` (nothing for in-memory tensors).
  void release_pages(const std::string& name) const;
  /// Drops the resident pages of every safetensors file behind this store: views of them read
  /// the same bytes again (from the page cache) when next touched. Between uses of a component.
  void release_file_pages() const {
    for (const auto& f : files_) f->release_all();
  }
  /// Weight names (without the companion tensors of compressed weights: "<name>:scales", ...).
  std::vector<std::string> keys() const;
  /// Where the weights came from, for error messages.
  std::string source() const;
  /// The files read (safetensors and pickles), in the order added.
  std::vector<std::string> paths() const;
  /// Names the origin of in-memory weights (e.g. the checkpoint they were converted from).
  void set_source(std::string source) { source_ = std::move(source); }
  size_t size() const { return entries_.size(); }

 private:
  struct Entry {
    const SafetensorsFile* file = nullptr;  // null for in-memory tensors
    Tensor tensor;                          // set for in-memory tensors
    Tensor converted;                       // get()'s F32 result, once asked for
    Weight matrix;                          // get_weight()'s result, once asked for
    WeightPrecision matrix_precision = WeightPrecision::F32;
  };
  std::vector<std::shared_ptr<const SafetensorsFile>> files_;
  std::vector<std::string> pickle_paths_;  // add_torch_file()'s, for source()
  mutable std::map<std::string, Entry> entries_;
  Synthesizer synthesize_;
  std::string source_;
  WeightPrecision precision_ = WeightPrecision::F32;
  bool streaming_ = false;
  AttentionKernel attention_kernel_ = AttentionKernel::Sliced;

  /// Drops the resident file pages of `name` when `result` (the conversion of `stored`, its
  /// tensor as raw() gave it) is a copy.
  void release_if_copied(const Entry& e, const std::string& name, const Tensor& stored,
                         const void* result) const;
  /// raw(), with a palettized tensor expanded to float16 (once; the expansion replaces it).
  Tensor decoded(const std::string& name) const;
  /// An I8 tensor with its per-output-channel scales (FileError when they are missing).
  Weight int8_weight(const std::string& name, const Tensor& q) const;
  /// `stored` (tensor `name` as decoded()) as F32 contiguous: int8 dequantized with its scales.
  Tensor as_f32(const std::string& name, const Tensor& stored) const;
  /// get()'s lookup, synthesis and shape check, without conversion.
  Tensor checked(const std::string& name, const Shape& expected) const;
};

/// Loads a diffusers/transformers component's weights from `dir` (component_weights.cpp), as
/// from_pretrained picks them: `<stem>[.<variant>].safetensors`, or a sharded
/// `<stem>.safetensors.index[.<variant>].json`, else the same as PyTorch `.bin` pickles, for the
/// stems diffusion_pytorch_model, model and pytorch_model. A requested `variant` ("fp16") falls
/// back to the plain files for a component that has none (as diffusers does); without one, a
/// component whose only weights are one variant's loads those. FileError naming the folder
/// otherwise (and listing the variants when several would fit).
WeightStore load_component_weights(const std::string& dir, const std::string& variant = {});

}  // namespace diffuse
