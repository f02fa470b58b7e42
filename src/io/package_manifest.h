// diffuse.json, the manifest of a diffuse package (`diffuse convert`, docs/FORMATS.md): read
// strictly, since a package is trusted to be what it says (its checksums are checked only by
// `diffuse verify`). Anything diffuse does not write is a FileError naming the file.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/attention_kernel.h"

namespace diffuse {

constexpr const char* kPackageManifestName = "diffuse.json";
constexpr int kPackageFormatVersion = 1;

struct PackageFile {
  std::string name;  // in the component's folder: no '/', no ".."
  int64_t bytes = 0;
  std::string sha256;  // 64 lowercase hex digits
};

struct PackageComponent {
  std::string name;       // "unet", "vae", "text_encoder", "text_encoder_2"
  std::string precision;  // "f16", "int8", "palette4", ...
  int64_t palette_group = 0;
  std::vector<PackageFile> files;
};

struct PackageManifest {
  int version = kPackageFormatVersion;
  std::string precision;                     // the default precision it was converted with
  std::optional<AttentionKernel> attention;  // the kernel it loads with, when recorded
  std::vector<PackageComponent> components;  // sorted by name

  const PackageComponent* component(const std::string& name) const;
};

/// Reads a diffuse.json: FileError naming `path` when it is not JSON, not a diffuse package
/// manifest, of a newer format version, or has a field of the wrong type or an unsafe file name.
PackageManifest read_package_manifest(const std::string& path);
/// `dir`'s manifest when `dir` holds a diffuse.json, else nullopt.
std::optional<PackageManifest> package_manifest_of(const std::string& dir);

}  // namespace diffuse
