// libFuzzer target: the diffuse package manifest reader (diffuse.json: JSON, then every field's
// type, version, attention kernel, component and file names) on arbitrary bytes.
#include <cstddef>
#include <cstdint>

#include "fuzz/fuzz_util.h"
#include "io/package_manifest.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace diffuse;
  const std::string& path = fuzz::scratch_path("-diffuse.json");
  fuzz::write_scratch(path, data, size);
  try {
    const PackageManifest m = read_package_manifest(path);
    for (const PackageComponent& c : m.components)
      for (const PackageFile& f : c.files)
        if (f.name.find('/') != std::string::npos || f.name == ".." || f.bytes < 0)
          __builtin_trap();
  } catch (const FileError& e) {
    fuzz::check_error(e, path);
  }
  return 0;
}
