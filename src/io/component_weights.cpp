// Which weight files of a diffusers/transformers component folder to read, as from_pretrained
// chooses them: safetensors before PyTorch pickles, one file or a sharded index, and variants
// ("fp16") named as diffusers' _add_variant names them ("x.safetensors" -> "x.fp16.safetensors",
// "x.safetensors.index.json" -> "x.safetensors.index.fp16.json").
#include <algorithm>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>

#include "core/mapped_file.h"
#include "diffuse/error.hpp"
#include "io/weight_store.h"

namespace fs = std::filesystem;

namespace diffuse {

namespace {

enum class FileFormat { Safetensors, TorchPickle };

struct WeightLayout {
  fs::path path;  // the single file, or the shard index
  bool sharded = false;
  FileFormat format = FileFormat::Safetensors;
};

// diffusers models save diffusion_pytorch_model.*, transformers models model.safetensors or
// pytorch_model.bin.
const char* const kSafetensorsStems[] = {"diffusion_pytorch_model", "model"};
const char* const kPickleStems[] = {"diffusion_pytorch_model", "pytorch_model"};

/// "stem.ext" with the variant inserted before the last suffix: stem[.variant].ext.
std::string with_variant(const std::string& stem, const std::string& ext,
                         const std::string& variant) {
  return stem + (variant.empty() ? "" : "." + variant) + "." + ext;
}

/// The first layout of `variant` ("" = plain) present in `dir`, safetensors first.
std::optional<WeightLayout> find_layout(const fs::path& dir, const std::string& variant) {
  const std::pair<FileFormat, const char* const*> formats[] = {
      {FileFormat::Safetensors, kSafetensorsStems}, {FileFormat::TorchPickle, kPickleStems}};
  for (const auto& [format, stems] : formats) {
    const std::string ext = format == FileFormat::Safetensors ? "safetensors" : "bin";
    for (int i = 0; i < 2; ++i) {
      const fs::path single = dir / with_variant(stems[i], ext, variant);
      if (fs::is_regular_file(single)) return WeightLayout{single, false, format};
      const fs::path index =
          dir / with_variant(std::string(stems[i]) + "." + ext + ".index", "json", variant);
      if (fs::is_regular_file(index)) return WeightLayout{index, true, format};
    }
  }
  return std::nullopt;
}

/// "fp16-00001-of-00002": the name part of a shard, not a variant.
bool is_shard_name(const std::string& part) {
  const size_t of = part.rfind("-of-");
  const size_t dash =
      of == std::string::npos || of == 0 ? std::string::npos : part.rfind('-', of - 1);
  if (dash == std::string::npos) return false;
  const std::string index = part.substr(dash + 1, of - dash - 1), total = part.substr(of + 4);
  auto digits = [](const std::string& t) {
    return !t.empty() &&
           std::all_of(t.begin(), t.end(), [](char c) { return c >= '0' && c <= '9'; });
  };
  return digits(index) && digits(total);
}

/// The variants ("fp16", "ema", ...) the folder has a loadable layout of.
std::set<std::string> variants_in(const fs::path& dir) {
  std::set<std::string> found;
  for (const auto& entry : fs::directory_iterator(dir)) {
    const std::string name = entry.path().filename().string();
    for (const char* stem : {"diffusion_pytorch_model.", "model.", "pytorch_model."}) {
      if (name.rfind(stem, 0) != 0) continue;
      std::string rest = name.substr(std::string(stem).size());
      for (const char* prefix : {"safetensors.index.", "bin.index."})
        if (rest.rfind(prefix, 0) == 0) rest = rest.substr(std::string(prefix).size());
      const size_t dot = rest.find('.');
      if (dot == std::string::npos || dot == 0) continue;
      const std::string ext = rest.substr(dot + 1);
      const std::string variant = rest.substr(0, dot);
      // Shards ("x.fp16-00001-of-00002.bin") carry more than a variant: only complete layouts
      // count.
      if ((ext == "safetensors" || ext == "bin" || ext == "json") && !is_shard_name(variant) &&
          find_layout(dir, variant))
        found.insert(variant);
    }
  }
  return found;
}

/// The shard files an index names, each checked to stay inside the folder.
std::set<std::string> shard_names(const nlohmann::json& index, const std::string& index_path) {
  if (!index.is_object() || !index.contains("weight_map") || !index["weight_map"].is_object())
    throw FileError(index_path + ": missing 'weight_map'");
  std::set<std::string> shards;
  for (const auto& [key, file] : index["weight_map"].items()) {
    if (!file.is_string())
      throw FileError(index_path + ": weight_map." + key + " is not a file name");
    const std::string name = file.get<std::string>();
    if (name.empty() || name.find('/') != std::string::npos ||
        name.find('\\') != std::string::npos || name.find("..") != std::string::npos)
      throw FileError(index_path + ": shard name '" + name + "' escapes the folder");
    shards.insert(name);
  }
  return shards;
}

void add_weight_file(WeightStore& store, const fs::path& path, FileFormat format) {
  if (!fs::is_regular_file(path)) throw FileError(path.string() + ": missing");
  if (format == FileFormat::Safetensors)
    store.add_file(path.string());
  else
    store.add_torch_file(path.string());
}

WeightStore load_layout(const WeightLayout& layout) {
  WeightStore store;
  if (!layout.sharded) {
    add_weight_file(store, layout.path, layout.format);
    return store;
  }
  const std::string index_path = layout.path.string();
  nlohmann::json index;
  try {
    index = nlohmann::json::parse(read_text_file(index_path));
  } catch (const nlohmann::json::exception& e) {
    throw FileError(index_path + ": invalid JSON: " + e.what());
  }
  for (const auto& shard : shard_names(index, index_path))
    add_weight_file(store, layout.path.parent_path() / shard, layout.format);
  for (const auto& [key, file] : index["weight_map"].items())
    if (!store.contains(key))
      throw FileError(index_path + ": '" + key + "' is listed but missing from " +
                      file.get<std::string>());
  return store;
}

}  // namespace

WeightStore load_component_weights(const std::string& dir, const std::string& variant) {
  if (!fs::is_directory(dir)) throw FileError(dir + ": component folder not found");
  const fs::path folder(dir);
  if (!variant.empty())
    if (auto layout = find_layout(folder, variant)) return load_layout(*layout);
  if (auto layout = find_layout(folder, "")) return load_layout(*layout);
  const std::set<std::string> variants = variants_in(folder);
  if (variants.size() == 1)
    if (auto layout = find_layout(folder, *variants.begin())) return load_layout(*layout);
  if (variants.size() > 1) {
    std::string list;
    for (const auto& v : variants) list += (list.empty() ? "" : ", ") + v;
    throw FileError(dir + ": only variant weight files (" + list +
                    "); choose one with --variant (LoadOptions::variant)");
  }
  throw FileError(dir +
                  ": no weights found (expected diffusion_pytorch_model.safetensors, "
                  "model.safetensors, a sharded *.safetensors.index.json or PyTorch .bin files)");
}

}  // namespace diffuse
