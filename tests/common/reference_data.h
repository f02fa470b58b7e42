// Where the diffusers references this project generates live (tests/data/reference, written by
// tools/reference/*.py), and how their metadata names input files.
#pragma once

#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>

#include "common/fixtures.h"
#include "io/json_config.h"
#include "io/safetensors.h"

namespace diffuse::test {

/// tests/data/reference/<rel>
inline std::string reference(const std::string& rel) {
  return (std::filesystem::path(__FILE__).parent_path().parent_path() / "data" / "reference" / rel)
      .string();
}

/// The `json` metadata of tests/data/reference/pipe-<name>.safetensors.
inline nlohmann::json reference_metadata(const std::string& name) {
  const std::string path = reference("pipe-" + name + ".safetensors");
  return parse_json(SafetensorsFile::open(path).metadata().at("json"), path);
}

/// A file the reference script names by a path and a root: "fixtures" (../shared/fixtures) or
/// "reference" (tests/data/reference).
inline std::string reference_input(const std::string& path, const std::string& root) {
  return root == "fixtures" ? fixture(path) : reference(path);
}

/// The input file under metadata key `key`, rooted by `<key>_root`.
inline std::string reference_input(const nlohmann::json& meta, const std::string& key) {
  return reference_input(meta.at(key).get<std::string>(),
                         meta.at(key + "_root").get<std::string>());
}

/// The tiny SDXL refiner of make_sdxl_refiner_references.py assembled as that script assembles it:
/// model_index.json and unet/ from tests/data/reference/tiny-sdxl-refiner, the other components
/// the fixture tiny-sdxl's (linked). Made afresh as `dir` (one per test: tests run as parallel
/// processes).
inline std::string assemble_tiny_sdxl_refiner(const std::filesystem::path& dir) {
  namespace fs = std::filesystem;
  fs::remove_all(dir);
  fs::create_directories(dir.parent_path());
  fs::copy(reference("tiny-sdxl-refiner"), dir, fs::copy_options::recursive);
  for (const char* component : {"text_encoder_2", "tokenizer_2", "vae", "scheduler"})
    fs::create_directory_symlink(
        fs::absolute(fixture(std::string("models/tiny-sdxl/") + component)), dir / component);
  return dir.string();
}

}  // namespace diffuse::test
