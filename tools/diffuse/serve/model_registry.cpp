#include "serve/model_registry.h"

#include <algorithm>
#include <filesystem>

#include "diffuse/utilities.hpp"
#include "serve/codec.h"
#include "serve/http_error.h"

namespace fs = std::filesystem;

namespace diffuse::serve {

std::vector<ModelEntry> scan_model_folder(const std::string& dir) {
  std::error_code ec;
  fs::directory_iterator it(dir, ec);
  if (ec) throw FileError(dir + ": cannot read the models folder: " + ec.message());
  std::vector<ModelEntry> out;
  for (const auto& e : it) {
    const fs::path p = e.path();
    const std::string ext = p.extension().string();
    if (e.is_directory() && fs::exists(p / "model_index.json")) {
      out.push_back({p.filename().string(), p.string(), false});
    } else if (e.is_regular_file() && (ext == ".safetensors" || ext == ".ckpt")) {
      out.push_back({p.stem().string(), p.string(), true});
    }
  }
  std::sort(out.begin(), out.end(),
            [](const ModelEntry& a, const ModelEntry& b) { return a.name < b.name; });
  return out;
}

ModelRegistry::ModelRegistry(std::vector<ModelEntry> entries, LoadOptions load_options,
                             std::string current, size_t max_loaded)
    : entries_(std::move(entries)),
      load_options_(std::move(load_options)),
      current_(std::move(current)),
      max_loaded_(std::max<size_t>(1, max_loaded)) {}

const ModelEntry* ModelRegistry::find(const std::string& name_or_title) const {
  std::string name = name_or_title;
  // "name [0123456789]": A1111 clients send titles back.
  if (const size_t bracket = name.rfind(" ["); bracket != std::string::npos && name.back() == ']')
    name = name.substr(0, bracket);
  for (const auto& e : entries_)
    if (e.name == name || e.name == name_or_title) return &e;
  return nullptr;
}

std::string ModelRegistry::current() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return current_;
}

void ModelRegistry::set_current(const std::string& name_or_title) {
  const ModelEntry* e = find(name_or_title);
  if (!e) throw invalid_parameter("unknown model \"" + name_or_title + "\"");
  std::lock_guard<std::mutex> lock(mutex_);
  current_ = e->name;
}

std::shared_ptr<Pipeline> ModelRegistry::acquire(const std::string& name) {
  const ModelEntry* e = find(name);
  if (!e) throw invalid_parameter("unknown model \"" + name + "\"");
  std::lock_guard<std::mutex> load_lock(load_mutex_);
  {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = loaded_.find(e->name);
    if (it != loaded_.end()) {
      it->second.last_used = ++clock_;
      return it->second.pipeline;
    }
    // Make room first, so two models are never resident at once for max_loaded = 1.
    while (loaded_.size() >= max_loaded_) {
      auto oldest = std::min_element(loaded_.begin(), loaded_.end(), [](auto& a, auto& b) {
        return a.second.last_used < b.second.last_used;
      });
      loaded_.erase(oldest);
    }
  }
  std::shared_ptr<Pipeline> pipeline = Pipeline::load(e->path, load_options_);
  std::lock_guard<std::mutex> lock(mutex_);
  loaded_[e->name] = Loaded{pipeline, ++clock_};
  return pipeline;
}

std::optional<ModelInfo> ModelRegistry::loaded_info(const std::string& name) const {
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = loaded_.find(name);
  if (it == loaded_.end()) return std::nullopt;
  return it->second.pipeline->info();
}

namespace {

// The file whose hash names a model: the checkpoint itself, or a folder's UNet weights.
std::string hashed_file(const ModelEntry& e) {
  if (e.single_file) return e.path;
  for (const char* f :
       {"unet/diffusion_pytorch_model.safetensors", "unet/diffusion_pytorch_model.fp16.safetensors",
        "unet/diffusion_pytorch_model.bin", "model_index.json"})
    if (fs::exists(fs::path(e.path) / f)) return (fs::path(e.path) / f).string();
  return (fs::path(e.path) / "model_index.json").string();
}

}  // namespace

std::string ModelRegistry::full_hash(const std::string& name) {
  const ModelEntry* e = find(name);
  if (!e) throw invalid_parameter("unknown model \"" + name + "\"");
  {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = hashes_.find(e->name);
    if (it != hashes_.end()) return it->second;
  }
  std::string hash;
  try {
    hash = sha256_file(hashed_file(*e));
  } catch (const FileError&) {
    hash = std::string(64, '0');  // unreadable: loading it will report the real error
  }
  std::lock_guard<std::mutex> lock(mutex_);
  hashes_[e->name] = hash;
  return hash;
}

std::string ModelRegistry::short_hash(const std::string& name) {
  return full_hash(name).substr(0, 10);
}

}  // namespace diffuse::serve
