#include "io/weight_store.h"

#include <filesystem>
#include <nlohmann/json.hpp>
#include <set>

#include "core/mapped_file.h"
#include "diffuse/error.hpp"

namespace fs = std::filesystem;

namespace diffuse {

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

void WeightStore::add(const std::string& name, Tensor t) {
  entries_[name] = Entry{nullptr, std::move(t), {}, {}, {}};
}

Tensor WeightStore::raw(const std::string& name) const {
  auto it = entries_.find(name);
  if (it == entries_.end()) throw FileError(source() + ": missing weight '" + name + "'");
  return it->second.file ? it->second.file->get(name) : it->second.tensor;
}

Tensor WeightStore::checked(const std::string& name, const Shape& expected) const {
  if (synthesize_ && !contains(name)) {
    if (expected.ndim() == 0)
      throw FileError("synthetic weights: no shape given for '" + name + "'");
    entries_[name] = Entry{nullptr, synthesize_(name, expected), {}, {}, {}};
  }
  Tensor t = raw(name);
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
    e.converted = t.to(DType::F32).contiguous();
    release_if_copied(e, name, t, e.converted.raw());
  }
  return e.converted;
}

Weight WeightStore::get_weight(const std::string& name, const Shape& expected) const {
  const Tensor t = checked(name, expected);
  Entry& e = entries_.at(name);
  if (!e.matrix.defined() || e.matrix_precision != precision_) {
    try {
      e.matrix = Weight::from_tensor(t, precision_);
    } catch (const Error& err) {
      throw FileError(source() + ": weight '" + name + "': " + err.what());
    }
    e.matrix_precision = precision_;
    release_if_copied(e, name, t, e.matrix.values.raw());
  }
  return e.matrix;
}

std::vector<std::string> WeightStore::keys() const {
  std::vector<std::string> k;
  for (const auto& [name, e] : entries_) k.push_back(name);
  return k;
}

std::string WeightStore::source() const {
  if (!source_.empty()) return source_;
  if (files_.empty()) return "weights";
  if (files_.size() == 1) return files_[0]->path();
  return fs::path(files_[0]->path()).parent_path().string() + " (" + std::to_string(files_.size()) +
         " shards)";
}

WeightStore load_component_weights(const std::string& dir) {
  if (!fs::is_directory(dir)) throw FileError(dir + ": component folder not found");
  WeightStore store;
  for (const char* stem : {"diffusion_pytorch_model", "model"}) {
    const fs::path single = fs::path(dir) / (std::string(stem) + ".safetensors");
    const fs::path index = fs::path(dir) / (std::string(stem) + ".safetensors.index.json");
    if (fs::exists(single)) {
      store.add_file(single.string());
      return store;
    }
    if (fs::exists(index)) {
      nlohmann::json j;
      try {
        j = nlohmann::json::parse(read_text_file(index.string()));
      } catch (const nlohmann::json::exception& e) {
        throw FileError(index.string() + ": invalid JSON: " + e.what());
      }
      if (!j.contains("weight_map") || !j["weight_map"].is_object())
        throw FileError(index.string() + ": missing 'weight_map'");
      std::set<std::string> shards;
      for (auto& [key, file] : j["weight_map"].items()) {
        if (!file.is_string())
          throw FileError(index.string() + ": weight_map." + key + " is not a file name");
        const std::string name = file.get<std::string>();
        if (name.find('/') != std::string::npos || name.find("..") != std::string::npos)
          throw FileError(index.string() + ": shard name '" + name + "' escapes the folder");
        shards.insert(name);
      }
      for (const auto& s : shards) store.add_file((fs::path(dir) / s).string());
      for (auto& [key, file] : j["weight_map"].items())
        if (!store.contains(key))
          throw FileError(index.string() + ": '" + key + "' is listed but missing from " +
                          file.get<std::string>());
      return store;
    }
  }
  for (const auto& e : fs::directory_iterator(dir))
    if (e.path().extension() == ".bin")
      throw FileError(
          dir + ": only PyTorch .bin weights found; diffuse reads .safetensors (convert first)");
  throw FileError(
      dir +
      ": no diffusion_pytorch_model.safetensors or model.safetensors (or sharded index) found");
}

}  // namespace diffuse
