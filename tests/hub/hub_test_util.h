// Shared by the hub tests: reading files back and HubOptions pointing at a FakeHub.
#pragma once

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "common/fixtures.h"
#include "hub/fake_hub.h"
#include "hub/hub_options.h"

namespace diffuse::test {

inline std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

inline hub::HubOptions hub_options(const FakeHub& hub, const std::string& cache) {
  hub::HubOptions o;
  o.endpoint = hub.endpoint();
  o.cache_dir = cache;
  o.connect_timeout_s = 5;
  return o;
}

/// The tiny SD 1.x fixture as a repository, plus files a pipeline pull must leave alone.
inline FakeRepo tiny_repo() {
  FakeRepo r = repo_from_folder(fixture("models/tiny-sd1"));
  r.commit = "0123456789abcdef0123456789abcdef01234567";
  r.files["README.md"] = {"# tiny\n", false};
  r.files["v1-5-pruned-emaonly.ckpt"] = {"not a checkpoint", true};
  r.files["unet/diffusion_pytorch_model.bin"] = {"pickled weights", true};
  r.files["unet/diffusion_pytorch_model.onnx"] = {"onnx", true};
  r.files["safety_checker/config.json"] = {"{}", false};
  r.files["safety_checker/model.safetensors"] = {"weights", true};
  return r;
}

}  // namespace diffuse::test
