#include "io/weight_store.h"

#include <filesystem>

#include "core/mapped_file.h"
#include "core/palette.h"
#include "diffuse/error.hpp"
#include "io/pickle/torch_checkpoint.h"

namespace fs = std::filesystem;

namespace diffuse {

namespace {
// Companion tensors of compressed weights (diffuse convert): "<weight>:scales" (int8), and
// "<weight>:palette" + "<weight>:shape" (palettized). Model weight names never hold a ':'.
constexpr char kCompanionMark = ':';
constexpr const char* kScalesSuffix = ":scales";
constexpr const char* kPaletteSuffix = ":palette";
constexpr const char* kShapeSuffix = ":shape";
}  // namespace

void WeightStore::add_file(const std::string& path) {
  files_.push_back(std::make_shared<const SafetensorsFile>(SafetensorsFile::open(path)));
  const SafetensorsFile* f = files_.back().get();
  for (const auto& k : f->keys()) {
    auto [it, inserted] = entries_.emplace(k, Entry{f, {}, {}, {}, {}});
    if (!inserted)
      throw FileError(path + ": tensor '" + k + "' also present in " +
                      (it->second.file ? it->second.file->path() : std::string("memory")));
  }
}

void WeightStore::add_torch_file(const std::string& path) {
  // Tensors read from a pickle are views of the file's mapping (or copies): either way in memory.
  for (auto& [name, tensor] : read_torch_checkpoint(path)) {
    auto [it, inserted] = entries_.emplace(name, Entry{nullptr, std::move(tensor), {}, {}, {}});
    if (!inserted)
      throw FileError(path + ": tensor '" + name + "' also present in " +
                      (it->second.file ? it->second.file->path() : std::string("another file")));
  }
  pickle_paths_.push_back(path);
}

void WeightStore::add(const std::string& name, Tensor t) {
  entries_[name] = Entry{nullptr, std::move(t), {}, {}, {}};
}

Tensor WeightStore::raw(const std::string& name) const {
  auto it = entries_.find(name);
  if (it == entries_.end()) throw FileError(source() + ": missing weight '" + name + "'");
  return it->second.file ? it->second.file->get(name) : it->second.tensor;
}

Tensor WeightStore::decoded(const std::string& name) const {
  const Tensor t = raw(name);
  const std::string palette_key = name + kPaletteSuffix;
  if (t.dtype() != DType::U8 || !contains(palette_key)) return t;
  // A palettized tensor (diffuse convert --precision paletteN): expanded to float16 once.
  const Tensor palette = raw(palette_key).contiguous(),
               shape = raw(name + kShapeSuffix).contiguous();
  // One table [2^bits], or one per group of output channels [groups, 2^bits].
  const int64_t groups = palette.ndim() == 2 ? palette.dim(0) : 1;
  const int64_t entries = palette.ndim() == 2 ? palette.dim(1) : palette.numel();
  int bits = 0;
  while (bits < 9 && (int64_t{1} << bits) < entries) ++bits;
  if (palette.dtype() != DType::F16 || palette.ndim() < 1 || palette.ndim() > 2 ||
      shape.dtype() != DType::I64 || shape.ndim() != 1 || (int64_t{1} << bits) != entries)
    throw FileError(source() + ": palettized weight '" + name +
                    "' needs an F16 palette of 2^bits entries (per table) and an I64 shape");
  const int64_t* dims = shape.data_as<int64_t>();
  Tensor expanded;
  try {
    expanded = expand_palette(palette.data_as<uint16_t>(), entries, groups,
                              t.contiguous().data_as<uint8_t>(), t.nbytes(), bits,
                              Shape(dims, dims + shape.numel()));
  } catch (const Error& err) {
    throw FileError(source() + ": weight '" + name + "': " + err.what());
  }
  Entry& e = entries_.at(name);
  if (e.file) e.file->release(name);
  e = Entry{nullptr, expanded, {}, {}, {}};
  return expanded;
}

Tensor WeightStore::checked(const std::string& name, const Shape& expected) const {
  if (synthesize_ && !contains(name)) {
    if (expected.ndim() == 0)
      throw FileError("synthetic weights: no shape given for '" + name + "'");
    entries_[name] = Entry{nullptr, synthesize_(name, expected), {}, {}, {}};
  }
  Tensor t = decoded(name);
  if (expected.ndim() > 0 && t.shape() != expected)
    throw FileError(source() + ": weight '" + name + "' has shape " + t.shape().str() +
                    ", expected " + expected.str() + " (config and weights disagree)");
  return t;
}

void WeightStore::release_if_copied(const Entry& e, const std::string& name, const Tensor& stored,
                                    const void* result) const {
  // A converted copy no longer needs the file's pages: without this, converting a float32 file to
  // int8 would keep both the copy and every page it was read from resident.
  if (e.file && result != stored.raw()) e.file->release(name);
}

Tensor WeightStore::get(const std::string& name, const Shape& expected) const {
  const Tensor t = checked(name, expected);
  Entry& e = entries_.at(name);
  if (!e.converted.defined()) {
    e.converted = as_f32(name, t);
    release_if_copied(e, name, t, e.converted.raw());
  }
  return e.converted;
}

Tensor WeightStore::read_once(const std::string& name) const {
  const Tensor t = checked(name, {});
  const Entry& e = entries_.at(name);
  return e.converted.defined() ? e.converted : as_f32(name, t);
}

Tensor WeightStore::as_f32(const std::string& name, const Tensor& stored) const {
  return stored.dtype() == DType::I8 ? int8_weight(name, stored).to_f32()
                                     : stored.to(DType::F32).contiguous();
}

void WeightStore::release_pages(const std::string& name) const {
  auto it = entries_.find(name);
  if (it != entries_.end() && it->second.file) it->second.file->release(name);
}

Tensor WeightStore::get_as_stored(const std::string& name, const Shape& expected) const {
  const Tensor t = checked(name, expected);
  if ((t.dtype() == DType::F32 || t.dtype() == DType::F16 || t.dtype() == DType::BF16) &&
      t.is_contiguous())
    return t;
  return get(name, expected);
}

Weight WeightStore::get_weight(const std::string& name, const Shape& expected) const {
  const Tensor t = checked(name, expected);
  Entry& e = entries_.at(name);
  if (!e.matrix.defined() || e.matrix_precision != precision_) {
    try {
      if (t.dtype() != DType::I8)
        e.matrix = Weight::from_tensor(t, precision_);
      else if (precision_ == WeightPrecision::F32 || precision_ == WeightPrecision::Int8) {
        e.matrix = int8_weight(name, t);  // int8 as stored
        if (precision_ == WeightPrecision::Int8) e.matrix.compute = WeightCompute::BF16;
      } else
        e.matrix = Weight::from_tensor(int8_weight(name, t).to_f32(), precision_);
    } catch (const Error& err) {
      throw FileError(source() + ": weight '" + name + "': " + err.what());
    }
    e.matrix_precision = precision_;
    release_if_copied(e, name, t, e.matrix.values.raw());
  }
  Weight w = e.matrix;
  // Only a view of the mapping may be streamed: released pages of converted (anonymous) memory
  // would be lost.
  w.streamed = streaming_ && e.file != nullptr && w.values.raw() == t.raw();
  return w;
}

Weight WeightStore::int8_weight(const std::string& name, const Tensor& q) const {
  if (!contains(name + kScalesSuffix))
    throw FileError(source() + ": int8 weight '" + name + "' has no '" + name + kScalesSuffix +
                    "' tensor");
  return Weight(q.contiguous(), raw(name + kScalesSuffix).to(DType::F32).contiguous());
}

std::vector<std::string> WeightStore::keys() const {
  std::vector<std::string> k;
  for (const auto& [name, e] : entries_)
    if (name.find(kCompanionMark) == std::string::npos) k.push_back(name);
  return k;
}

std::vector<std::string> WeightStore::paths() const {
  std::vector<std::string> paths;
  for (const auto& f : files_) paths.push_back(f->path());
  paths.insert(paths.end(), pickle_paths_.begin(), pickle_paths_.end());
  return paths;
}

std::string WeightStore::source() const {
  if (!source_.empty()) return source_;
  const std::vector<std::string> paths = this->paths();
  if (paths.empty()) return "weights";
  if (paths.size() == 1) return paths[0];
  return fs::path(paths[0]).parent_path().string() + " (" + std::to_string(paths.size()) +
         " shards)";
}

}  // namespace diffuse
