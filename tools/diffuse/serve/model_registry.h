// The models a server offers: the entries of --models DIR (diffusers folders and single-file
// checkpoints) plus --model, each named by its entry name. Pipelines are loaded on first use and
// at most `max_loaded` stay in memory (least recently used first out), as A1111 keeps one.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "diffuse/diffuse.hpp"

namespace diffuse::serve {

struct ModelEntry {
  std::string name;  // entry name: folder name, or file name without its extension
  std::string path;
  bool single_file = false;
};

/// The model entries in a folder: sub-folders with a model_index.json, and .safetensors/.ckpt
/// files. Sorted by name; FileError when the folder cannot be read.
std::vector<ModelEntry> scan_model_folder(const std::string& dir);

class ModelRegistry {
 public:
  ModelRegistry(std::vector<ModelEntry> entries, LoadOptions load_options, std::string current,
                size_t max_loaded = 1);

  const std::vector<ModelEntry>& entries() const { return entries_; }
  /// The entry named `name_or_title` ("name" or A1111's "name [hash]"), or nullptr.
  const ModelEntry* find(const std::string& name_or_title) const;
  std::string current() const;
  /// Makes `name` the default for requests that name no model (HttpError 422 if unknown).
  void set_current(const std::string& name_or_title);

  /// The loaded pipeline for `name`, loading it (and unloading the least recently used one) if
  /// needed. Thread-safe; throws diffuse::Error from loading.
  std::shared_ptr<Pipeline> acquire(const std::string& name);
  /// ModelInfo when the model is loaded.
  std::optional<ModelInfo> loaded_info(const std::string& name) const;

  /// A1111's short hash: the first 10 hex digits of the SHA-256 of the checkpoint file (for a
  /// folder: of its UNet weights file). Computed once, on first use.
  std::string short_hash(const std::string& name);
  std::string full_hash(const std::string& name);
  /// "name [hash]", A1111's checkpoint title.
  std::string title(const std::string& name) { return name + " [" + short_hash(name) + "]"; }

 private:
  std::vector<ModelEntry> entries_;
  LoadOptions load_options_;
  mutable std::mutex mutex_;
  std::string current_;
  size_t max_loaded_;
  struct Loaded {
    std::shared_ptr<Pipeline> pipeline;
    uint64_t last_used = 0;
  };
  std::map<std::string, Loaded> loaded_;
  uint64_t clock_ = 0;
  std::mutex load_mutex_;  // one load at a time
  std::map<std::string, std::string> hashes_;
};

}  // namespace diffuse::serve
