// The built-in demo model: a tiny SD 1.x architecture with rule-generated weights, written once to
// the user's cache so `diffuse generate` works on a fresh machine.
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>

#include "commands.h"
#include "diffuse/error.hpp"
#include "pipeline/synthetic_weights.h"

namespace fs = std::filesystem;

namespace diffuse::cli {

std::string assets_dir() {
  // Next to an installed binary first (<prefix>/share/diffuse), then the source tree it was built
  // from.
  std::error_code ec;
  const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    const fs::path installed = exe.parent_path().parent_path() / "share" / "diffuse";
    if (fs::exists(installed / "tokenizer" / "vocab.json")) return installed.string();
  }
  return DIFFUSE_ASSETS_DIR;
}

std::string demo_model_dir(bool announce) {
  fs::path cache;
  if (const char* x = std::getenv("XDG_CACHE_HOME"); x && *x) {
    cache = x;
  } else if (const char* h = std::getenv("HOME"); h && *h) {
    cache = fs::path(h) / ".cache";
  } else {
    cache = fs::temp_directory_path();
  }
  const fs::path dir = cache / "diffuse" / "demo-tiny-sd1-v1";
  if (fs::exists(dir / "complete")) return dir.string();
  if (announce)
    std::cerr << "Creating the built-in demo model in " << dir.string()
              << " (tiny SD 1.x, random weights: its images are noise).\n";
  const fs::path tmp = dir.string() + ".partial";
  fs::remove_all(tmp);
  write_synthetic_model((fs::path(assets_dir()) / "demo-model").string(),
                        (fs::path(assets_dir()) / "tokenizer").string(), tmp.string());
  fs::remove_all(dir);
  fs::rename(tmp, dir);
  std::ofstream(dir / "complete") << "ok\n";
  return dir.string();
}

}  // namespace diffuse::cli
