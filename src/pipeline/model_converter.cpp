// convert_model and verify_package: diffuse packages (see ConvertOptions in diffuse.hpp).
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <set>

#include "diffuse/diffuse.hpp"
#include "diffuse/error.hpp"
#include "io/json_config.h"
#include "io/package_manifest.h"
#include "pipeline/checkpoint_loader.h"
#include "pipeline/model_folder.h"
#include "pipeline/package_writer.h"

namespace fs = std::filesystem;

namespace diffuse {

namespace {

const char* const kWeightComponents[] = {"text_encoder", "text_encoder_2", "unet", "vae"};

/// Where the components' weights and the non-weight files (configs, tokenizer, scheduler) come
/// from.
struct ConversionSource {
  fs::path template_dir;  // a diffusers folder: its JSON/text files are copied
  std::string family;
  std::map<std::string, WeightStore> weights;
  std::string tokenizer_fallback;  // vocab/merges when the template has none (checkpoints)
};

ConversionSource read_folder(const std::string& dir, const LoadOptions& load) {
  ConversionSource s;
  s.template_dir = dir;
  const nlohmann::json index =
      parse_json(read_text_file((fs::path(dir) / "model_index.json").string()),
                 (fs::path(dir) / "model_index.json").string());
  s.family = index.value("_class_name", "").rfind("StableDiffusionXL", 0) == 0 ? "sdxl" : "";
  for (const char* c : kWeightComponents)
    if (index.contains(c) && fs::exists(fs::path(dir) / c / "config.json"))
      s.weights.emplace(c, load_component_weights((fs::path(dir) / c).string(), load.variant));
  return s;
}

ConversionSource read_checkpoint(const std::string& path, const LoadOptions& load) {
  const StateDict sd = read_checkpoint_state_dict(path);
  ConversionSource s;
  s.family = detect_checkpoint_family(sd, path);
  s.template_dir = checkpoint_config_dir(s.family, path, load);
  ConvertedCheckpoint c = convert_checkpoint(sd, path, s.template_dir.string());
  if (s.family == "sdxl-refiner") s.family = "sdxl";  // the template's index tells which
  if (c.text_encoder.size() > 0) s.weights.emplace("text_encoder", std::move(c.text_encoder));
  if (c.text_encoder_2.size() > 0) s.weights.emplace("text_encoder_2", std::move(c.text_encoder_2));
  s.weights.emplace("unet", std::move(c.unet));
  s.weights.emplace("vae", std::move(c.vae));
  if (!load.assets_dir.empty())
    s.tokenizer_fallback = (fs::path(load.assets_dir) / "tokenizer").string();
  return s;
}

/// The template's small files (model_index.json, configs, tokenizer, scheduler): everything but
/// weights, in the same layout.
void copy_non_weight_files(const fs::path& from, const fs::path& to) {
  for (const auto& e :
       fs::recursive_directory_iterator(from, fs::directory_options::follow_directory_symlink)) {
    if (!e.is_regular_file()) continue;
    const std::string ext = e.path().extension().string();
    const std::string name = e.path().filename().string();
    if ((ext != ".json" && ext != ".txt") || name.find(".index") != std::string::npos) continue;
    // lexically: fs::relative would resolve symlinks (a Hub snapshot links every file to a blob).
    const fs::path target = to / e.path().lexically_relative(from);
    fs::create_directories(target.parent_path());
    fs::copy_file(e.path(), target);
  }
}

void add_tokenizer_fallback(const fs::path& out, const std::string& fallback) {
  if (fallback.empty()) return;
  for (const char* f : {"vocab.json", "merges.txt"})
    if (!fs::exists(out / "tokenizer" / f) && fs::exists(fs::path(fallback) / f)) {
      fs::create_directories(out / "tokenizer");
      fs::copy_file(fs::path(fallback) / f, out / "tokenizer" / f);
    }
}

/// A fresh hidden folder next to `output`, removed again unless release()d.
class StagingFolder {
 public:
  explicit StagingFolder(const fs::path& output) {
    const fs::path parent = output.parent_path().empty() ? fs::path(".") : output.parent_path();
    std::string tmpl = (parent / ("." + output.filename().string() + ".XXXXXX")).string();
    if (::mkdtemp(tmpl.data()) == nullptr)
      throw FileError(output.string() + ": cannot create a folder next to it");
    path_ = tmpl;
  }
  ~StagingFolder() {
    std::error_code ec;
    if (!path_.empty()) fs::remove_all(path_, ec);
  }
  StagingFolder(const StagingFolder&) = delete;
  StagingFolder& operator=(const StagingFolder&) = delete;
  const fs::path& path() const { return path_; }
  void commit(const fs::path& output) {
    fs::rename(path_, output);
    path_.clear();
  }

 private:
  fs::path path_;
};

std::set<std::string> selected_components(const ConvertOptions& o) {
  std::set<std::string> known(std::begin(kWeightComponents), std::end(kWeightComponents));
  for (const auto& [c, p] : o.component_precision)
    if (!known.count(c)) throw ConfigError("component precision: unknown component '" + c + "'");
  if (o.components.empty()) return known;
  std::set<std::string> chosen;
  for (const auto& c : o.components) {
    if (!known.count(c))
      throw ConfigError("components: unknown '" + c +
                        "' (choose from text_encoder, text_encoder_2, unet, vae)");
    chosen.insert(c);
  }
  return chosen;
}

}  // namespace

ConvertReport convert_model(const std::string& source, const std::string& output,
                            const ConvertOptions& options,
                            const ConvertProgressCallback& progress) {
  const StoragePrecision default_precision =
      parse_storage_precision(options.precision, "precision");
  for (const auto& [c, p] : options.component_precision)
    parse_storage_precision(p, c + " precision");
  const std::set<std::string> chosen = selected_components(options);
  if (options.chunk_mib < 0) throw ConfigError("chunk: must be >= 0 MiB");
  if (options.palette_group < 0)
    throw ConfigError("palette group: must be >= 0 output channels (0 = one table per tensor)");
  if (!options.attention.empty()) attention_kernel_option(options.attention);  // checked first
  weight_variant(options.load);
  std::error_code ec;
  if (fs::exists(output, ec)) throw FileError(output + ": already exists (choose a new folder)");
  if (!fs::exists(source, ec)) throw FileError(source + ": not found");
  const bool single_file = is_single_file_checkpoint(source);
  ConversionSource src =
      single_file ? read_checkpoint(source, options.load) : read_folder(source, options.load);

  StagingFolder staging{fs::path(output)};
  copy_non_weight_files(src.template_dir, staging.path());
  add_tokenizer_fallback(staging.path(), src.tokenizer_fallback);
  ConvertReport report;
  report.path = output;
  nlohmann::json components = nlohmann::json::object();
  bool palettized = false;
  for (const auto& [name, store] : src.weights) {
    if (!chosen.count(name)) continue;
    const auto override_it = options.component_precision.find(name);
    StoragePrecision p = override_it == options.component_precision.end()
                             ? default_precision
                             : parse_storage_precision(override_it->second, name + " precision");
    if (p.kind == StoragePrecision::Palette) {
      p.group_channels = options.palette_group;
      palettized = true;
    }
    const fs::path dir = staging.path() / name;
    fs::create_directories(dir);
    const std::string stem =
        name.rfind("text_encoder", 0) == 0 ? "model" : "diffusion_pytorch_model";
    const WrittenComponent w =
        write_package_component(store, dir.string(), stem, p, options.chunk_mib * 1024 * 1024,
                                [&, &component = name](int done, int total) {
                                  return !progress || progress(component, done, total);
                                });
    components[name] = {{"precision", p.name()},
                        {"palette_group", p.group_channels},
                        {"parameters", w.parameters},
                        {"disk_bytes", w.disk_bytes},
                        {"memory_bytes", w.memory_bytes},
                        {"relative_error", w.relative_error},
                        {"files", w.files},
                        {"tensors", w.tensors}};
    report.components.push_back({name, p.name(), w.parameters, w.disk_bytes, w.memory_bytes,
                                 static_cast<int>(w.files.size()), w.relative_error});
  }
  if (options.palette_group > 0 && !palettized)
    throw ConfigError("palette group: no component is palettized (use --precision paletteN)");
  nlohmann::json manifest = {{"format", "diffuse-package"},
                             {"version", kPackageFormatVersion},
                             {"source", source},
                             {"family", src.family},
                             {"precision", default_precision.name()},
                             {"chunk_mib", options.chunk_mib},
                             {"variant", options.load.variant},
                             {"components", components}};
  if (!options.attention.empty()) manifest["attention"] = options.attention;
  std::ofstream(staging.path() / kPackageManifestName) << manifest.dump(1) << "\n";
  staging.commit(output);
  return report;
}

std::vector<std::string> verify_package(const std::string& path) {
  const std::optional<PackageManifest> m = package_manifest_of(path);
  if (!m) throw FileError(path + ": not a diffuse package (no " + kPackageManifestName + ")");
  std::vector<std::string> problems;
  for (const PackageComponent& c : m->components)
    for (const PackageFile& f : c.files) {
      const fs::path p = fs::path(path) / c.name / f.name;
      std::error_code ec;
      const auto size = fs::file_size(p, ec);
      if (ec) {
        problems.push_back(p.string() + ": missing");
      } else if (static_cast<int64_t>(size) != f.bytes) {
        problems.push_back(p.string() + ": " + std::to_string(size) + " bytes, expected " +
                           std::to_string(f.bytes));
      } else if (sha256_file(p.string()) != f.sha256) {
        problems.push_back(p.string() + ": SHA-256 differs from " + kPackageManifestName);
      }
    }
  return problems;
}

}  // namespace diffuse
