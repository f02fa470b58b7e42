#include "model_entries.h"

#include <filesystem>

#include "commands.h"
#include "diffuse/error.hpp"
#include "hub/hub_cache.h"

namespace fs = std::filesystem;

namespace diffuse::cli {

namespace {
bool listed(const std::vector<serve::ModelEntry>& entries, const std::string& name) {
  for (const auto& e : entries)
    if (e.name == name) return true;
  return false;
}
}  // namespace

std::string add_model_entry(std::vector<serve::ModelEntry>& entries, const std::string& model,
                            const std::string& models_dir) {
  // An entry of the folder wins over a path or repo of the same spelling, as for generate.
  if (listed(entries, model)) return model;
  std::string path = model, name;
  if (auto cached = hub::resolve_cached_model(model, hub_options_from_environment())) {
    name = hub::parse_repo_reference(model)->name();
    path = *cached;
  }
  if (path.empty() || !fs::exists(path))
    throw ConfigError("--model " + model + ": no such file, folder or entry of --models" +
                      (models_dir.empty() ? "" : " " + models_dir));
  const fs::path p = fs::absolute(path);
  const bool file = fs::is_regular_file(p);
  if (name.empty()) name = file ? p.stem().string() : p.filename().string();
  if (!listed(entries, name)) entries.insert(entries.begin(), {name, p.string(), file});
  return name;
}

}  // namespace diffuse::cli
