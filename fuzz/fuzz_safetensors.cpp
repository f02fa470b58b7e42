// libFuzzer target: the safetensors reader (header length, JSON header, offsets, metadata) on
// arbitrary bytes, then every tensor it accepts is read in full.
#include <cstddef>
#include <cstdint>

#include "fuzz/fuzz_util.h"
#include "io/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace diffuse;
  const std::string& path = fuzz::scratch_path(".safetensors");
  fuzz::write_scratch(path, data, size);
  try {
    const SafetensorsFile f = SafetensorsFile::open(path);
    volatile uint8_t sink = 0;
    for (const std::string& name : f.keys()) {
      const Tensor t = f.get(name);
      const auto* p = static_cast<const uint8_t*>(t.raw());
      for (size_t i = 0; i < t.nbytes(); ++i) sink = sink ^ p[i];
    }
    for (const auto& [k, v] : f.metadata()) sink = sink ^ static_cast<uint8_t>(k.size() + v.size());
  } catch (const FileError& e) {
    fuzz::check_error(e, path);
  }
  return 0;
}
