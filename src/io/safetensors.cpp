#include "io/safetensors.h"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <nlohmann/json.hpp>

#include "diffuse/error.hpp"
#include "io/atomic_file.h"
#include "io/safetensors_writer.h"

namespace diffuse {

namespace {
// A real header is a few hundred KB at most (SDXL: ~200 KB); anything beyond this is corrupt.
constexpr uint64_t kMaxHeaderBytes = 100ull << 20;
}  // namespace

SafetensorsFile SafetensorsFile::open(const std::string& path) {
  SafetensorsFile f;
  f.file_ = MappedFile::open(path);
  const size_t size = f.file_.size();
  auto fail = [&](const std::string& why) -> FileError {
    return FileError(path + ": not a valid safetensors file: " + why);
  };
  if (size < 8)
    throw fail("file is " + std::to_string(size) + " bytes, shorter than the 8-byte header length");
  uint64_t n = 0;
  std::memcpy(&n, f.file_.data(), 8);  // little-endian on every platform we target
  if (n > kMaxHeaderBytes) throw fail("header length " + std::to_string(n) + " bytes is absurd");
  if (8 + n > size)
    throw fail("header length " + std::to_string(n) + " exceeds the file size " +
               std::to_string(size));
  nlohmann::json header;
  try {
    header = nlohmann::json::parse(reinterpret_cast<const char*>(f.file_.data()) + 8,
                                   reinterpret_cast<const char*>(f.file_.data()) + 8 + n);
  } catch (const nlohmann::json::exception& e) {
    throw fail(std::string("header is not JSON (") + e.what() + ")");
  }
  if (!header.is_object()) throw fail("header is not a JSON object");
  f.data_ = f.file_.data() + 8 + n;
  const size_t data_size = size - 8 - n;

  std::vector<std::pair<size_t, size_t>> ranges;
  for (auto it = header.begin(); it != header.end(); ++it) {
    const std::string& name = it.key();
    const auto& v = it.value();
    if (name == "__metadata__") {
      if (!v.is_object()) throw fail("__metadata__ is not an object");
      for (auto m = v.begin(); m != v.end(); ++m) {
        if (!m.value().is_string()) throw fail("__metadata__." + m.key() + " is not a string");
        f.metadata_[m.key()] = m.value().get<std::string>();
      }
      continue;
    }
    if (!v.is_object() || !v.contains("dtype") || !v.contains("shape") ||
        !v.contains("data_offsets"))
      throw fail("tensor '" + name + "' lacks dtype, shape or data_offsets");
    TensorInfo info;
    if (!v["dtype"].is_string() || !dtype_from_name(v["dtype"].get<std::string>(), &info.dtype))
      throw fail("tensor '" + name + "' has unknown dtype " + v["dtype"].dump());
    if (!v["shape"].is_array()) throw fail("tensor '" + name + "' shape is not an array");
    if (v["shape"].size() > static_cast<size_t>(Shape::kMaxDims))
      throw fail("tensor '" + name + "' has rank " + std::to_string(v["shape"].size()));
    uint64_t numel = 1;
    for (const auto& d : v["shape"]) {
      if (!d.is_number_unsigned())
        throw fail("tensor '" + name + "' has a non-integer or negative dimension");
      const uint64_t dim = d.get<uint64_t>();
      if (dim != 0 && numel > (1ull << 48) / dim)
        throw fail("tensor '" + name + "' is absurdly large");
      numel *= dim;
      info.shape.push_back(static_cast<int64_t>(dim));
    }
    const auto& off = v["data_offsets"];
    if (!off.is_array() || off.size() != 2 || !off[0].is_number_unsigned() ||
        !off[1].is_number_unsigned())
      throw fail("tensor '" + name + "' data_offsets must be two non-negative integers");
    const uint64_t b = off[0].get<uint64_t>(), e = off[1].get<uint64_t>();
    if (b > e || e > data_size)
      throw fail("tensor '" + name + "' data_offsets [" + std::to_string(b) + ", " +
                 std::to_string(e) + "] out of range (data section is " +
                 std::to_string(data_size) + " bytes)");
    if (e - b != numel * dtype_size(info.dtype))
      throw fail("tensor '" + name + "' shape " + info.shape.str() + " x " +
                 std::string(dtype_name(info.dtype)) + " needs " +
                 std::to_string(numel * dtype_size(info.dtype)) + " bytes but data_offsets span " +
                 std::to_string(e - b));
    info.begin = b;
    info.end = e;
    if (e > b) ranges.emplace_back(b, e);
    f.infos_.emplace(name, info);
  }
  std::sort(ranges.begin(), ranges.end());
  for (size_t i = 1; i < ranges.size(); ++i)
    if (ranges[i].first < ranges[i - 1].second)
      throw fail("tensor data ranges overlap at byte " + std::to_string(ranges[i].first));
  return f;
}

std::vector<std::string> SafetensorsFile::keys() const {
  std::vector<std::string> k;
  k.reserve(infos_.size());
  for (const auto& [name, info] : infos_) k.push_back(name);
  return k;
}

const TensorInfo& SafetensorsFile::info(const std::string& name) const {
  auto it = infos_.find(name);
  if (it == infos_.end()) throw FileError(path() + ": no tensor named '" + name + "'");
  return it->second;
}

Tensor SafetensorsFile::get(const std::string& name) const {
  const TensorInfo& i = info(name);
  const std::byte* p = data_ + i.begin;
  if (reinterpret_cast<uintptr_t>(p) % dtype_size(i.dtype) != 0) {
    Tensor t = Tensor::empty(i.shape, i.dtype);
    std::memcpy(t.raw(), p, i.end - i.begin);
    return t;
  }
  return Tensor::view_of(file_.buffer(), p, i.shape, i.dtype);
}

void SafetensorsFile::release(const std::string& name) const {
  const TensorInfo& i = info(name);
  file_.release_pages(data_ + i.begin, i.end - i.begin);
}

void write_safetensors(const std::string& path,
                       const std::vector<std::pair<std::string, Tensor>>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  nlohmann::json header = nlohmann::json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  size_t offset = 0;
  std::vector<Tensor> dense;
  for (const auto& [name, t] : tensors) {
    dense.push_back(t.contiguous());
    offset = add_safetensors_entry(header, name, dense.back(), offset);
  }
  const std::string prefix = safetensors_prefix(header);
  AtomicFile file(path);
  FILE* out = file.get();
  bool ok = std::fwrite(prefix.data(), 1, prefix.size(), out) == prefix.size();
  for (const Tensor& t : dense)
    ok = ok && (t.nbytes() == 0 || std::fwrite(t.raw(), 1, t.nbytes(), out) == t.nbytes());
  file.commit(ok, ok ? "" : std::strerror(errno));
}

}  // namespace diffuse
