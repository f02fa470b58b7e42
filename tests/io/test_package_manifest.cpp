// diffuse.json as read_package_manifest reads it: what `diffuse convert` writes loads; anything
// else is a one-line FileError naming the file and the field at fault.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "common/fixtures.h"
#include "diffuse/error.hpp"
#include "io/package_manifest.h"

using namespace diffuse;

namespace {

nlohmann::json valid() {
  return {{"format", "diffuse-package"},
          {"version", 1},
          {"precision", "palette4"},
          {"attention", "flash"},
          {"components",
           {{"vae", {{"precision", "f32"}, {"files", nlohmann::json::array()}}},
            {"unet",
             {{"precision", "palette4"},
              {"palette_group", 16},
              {"parameters", 7},
              {"files",
               {{{"name", "diffusion_pytorch_model.safetensors"},
                 {"bytes", 12},
                 {"sha256", std::string(64, 'a')}}}}}}}}};
}

std::string written(const std::string& name, const std::string& text) {
  const std::string path = test::temp_dir() + "/" + name + "-diffuse.json";
  std::ofstream(path) << text;
  return path;
}

}  // namespace

TEST(package_manifest, reads_what_convert_writes) {
  const PackageManifest m = read_package_manifest(written("valid", valid().dump()));
  EXPECT_EQ(m.version, 1);
  EXPECT_EQ(m.precision, "palette4");
  EXPECT_EQ(m.attention, AttentionKernel::Flash);
  ASSERT_EQ(m.components.size(), 2u);
  const PackageComponent* unet = m.component("unet");
  ASSERT_NE(unet, nullptr);
  EXPECT_EQ(unet->palette_group, 16);
  ASSERT_EQ(unet->files.size(), 1u);
  EXPECT_EQ(unet->files[0].bytes, 12);
  EXPECT_EQ(m.component("text_encoder"), nullptr);
  EXPECT_FALSE(package_manifest_of(test::temp_dir() + "/no-such-package").has_value());
}

TEST(package_manifest, anything_else_is_a_one_line_error_naming_the_file_and_field) {
  struct Case {
    const char* name;
    std::string text;
    const char* mentions;
  };
  auto with = [](const nlohmann::json::json_pointer& at, const nlohmann::json& v) {
    nlohmann::json j = valid();
    j[at] = v;
    return j.dump();
  };
  const std::vector<Case> cases = {
      {"not-json", "{\"format\": ", "diffuse.json"},
      {"array", "[1, 2]", "JSON object"},
      {"format", with("/format"_json_pointer, "other"), "format"},
      {"newer", with("/version"_json_pointer, 2), "version 2"},
      {"version-type", with("/version"_json_pointer, "1"), "version"},
      {"attention", with("/attention"_json_pointer, "ring"), "ring"},
      {"components", with("/components"_json_pointer, 3), "components"},
      {"traversal", with("/components/unet/files/0/name"_json_pointer, "../../etc/passwd"),
       "components.unet.files[0].name"},
      {"folder", with("/components/..~1x"_json_pointer, valid()["components"]["vae"]),
       "components."},
      {"sha", with("/components/unet/files/0/sha256"_json_pointer, "abc"), "sha256"},
      {"bytes", with("/components/unet/files/0/bytes"_json_pointer, -1), "bytes"},
      {"precision", with("/components/vae/precision"_json_pointer, 16), "precision"},
      {"files", with("/components/vae/files"_json_pointer, "x"), "files"},
  };
  for (const Case& c : cases) {
    const std::string path = written(c.name, c.text);
    test::expect_error_mentioning<FileError>([&] { read_package_manifest(path); },
                                             {path, c.mentions});
    try {
      read_package_manifest(path);
    } catch (const FileError& e) {
      EXPECT_EQ(std::string(e.what()).find('\n'), std::string::npos) << c.name;
    }
  }
}
