#include "io/package_manifest.h"

#include <algorithm>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "diffuse/error.hpp"
#include "io/json_config.h"

namespace diffuse {

namespace {

/// Reads fields of one JSON object, each a FileError naming the file and the field when it has
/// the wrong type.
class Fields {
 public:
  Fields(const nlohmann::json& j, std::string path, std::string where)
      : j_(j), path_(std::move(path)), where_(std::move(where)) {
    if (!j_.is_object()) fail("", "an object");
  }
  std::string string(const char* key, bool required) const {
    const auto it = j_.find(key);
    if (it == j_.end()) {
      if (required) fail(key, "present");
      return {};
    }
    if (!it->is_string()) fail(key, "a string");
    return it->get<std::string>();
  }
  int64_t integer(const char* key, bool required) const {
    const auto it = j_.find(key);
    if (it == j_.end()) {
      if (required) fail(key, "present");
      return 0;
    }
    if (!it->is_number_integer()) fail(key, "an integer");
    return it->get<int64_t>();
  }
  const nlohmann::json& value(const char* key, bool (nlohmann::json::*is)() const noexcept,
                              const char* what) const {
    const auto it = j_.find(key);
    if (it == j_.end() || !((*it).*is)()) fail(key, what);
    return *it;
  }
  [[noreturn]] void fail(const std::string& key, const char* expected) const {
    throw FileError(path_ + ": not a diffuse package manifest (" + where_ +
                    (key.empty() ? "" : (where_.empty() ? "" : ".") + key) + " must be " +
                    expected + ")");
  }

 private:
  const nlohmann::json& j_;
  std::string path_, where_;
};

bool safe_file_name(const std::string& name) {
  return !name.empty() && name.find('/') == std::string::npos &&
         name.find('\\') == std::string::npos && name != "." && name != ".." &&
         name.find('\0') == std::string::npos;
}

bool is_sha256(const std::string& s) {
  return s.size() == 64 && std::all_of(s.begin(), s.end(), [](char c) {
           return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
         });
}

PackageFile read_file_entry(const nlohmann::json& j, const std::string& path,
                            const std::string& where) {
  const Fields f(j, path, where);
  PackageFile file{f.string("name", true), f.integer("bytes", true), f.string("sha256", true)};
  if (!safe_file_name(file.name)) f.fail("name", "a plain file name");
  if (file.bytes < 0) f.fail("bytes", "a size >= 0");
  if (!is_sha256(file.sha256)) f.fail("sha256", "64 lowercase hex digits");
  return file;
}

PackageComponent read_component(const std::string& name, const nlohmann::json& j,
                                const std::string& path) {
  const std::string where = "components." + name;
  const Fields f(j, path, where);
  if (!safe_file_name(name)) f.fail("", "named as a plain folder");
  PackageComponent c{name, f.string("precision", true), f.integer("palette_group", false), {}};
  if (c.palette_group < 0) f.fail("palette_group", ">= 0");
  const nlohmann::json& files = f.value("files", &nlohmann::json::is_array, "a list");
  for (size_t i = 0; i < files.size(); ++i)
    c.files.push_back(read_file_entry(files[i], path, where + ".files[" + std::to_string(i) + "]"));
  return c;
}

}  // namespace

const PackageComponent* PackageManifest::component(const std::string& name) const {
  for (const PackageComponent& c : components)
    if (c.name == name) return &c;
  return nullptr;
}

PackageManifest read_package_manifest(const std::string& path) {
  const nlohmann::json j = load_json_object(path);
  const Fields f(j, path, "");
  if (f.string("format", true) != "diffuse-package") f.fail("format", "\"diffuse-package\"");
  PackageManifest m;
  const int64_t version = f.integer("version", true);
  if (version < 1 || version > kPackageFormatVersion)
    throw FileError(path + ": diffuse package format version " + std::to_string(version) +
                    " (this diffuse reads version " + std::to_string(kPackageFormatVersion) +
                    "; convert the model again or update diffuse)");
  m.version = static_cast<int>(version);
  m.precision = f.string("precision", false);
  const std::string attention = f.string("attention", false);
  AttentionKernel kernel{};
  if (!attention.empty()) {
    if (!parse_attention_kernel(attention, &kernel))
      throw FileError(path + ": attention \"" + attention + "\" is not one of " +
                      attention_kernel_choices());
    m.attention = kernel;
  }
  for (const auto& [name, value] :
       f.value("components", &nlohmann::json::is_object, "an object").items())
    m.components.push_back(read_component(name, value, path));
  return m;
}

std::optional<PackageManifest> package_manifest_of(const std::string& dir) {
  const std::filesystem::path p = std::filesystem::path(dir) / kPackageManifestName;
  std::error_code ec;
  if (dir.empty() || !std::filesystem::is_regular_file(p, ec)) return std::nullopt;
  return read_package_manifest(p.string());
}

}  // namespace diffuse
