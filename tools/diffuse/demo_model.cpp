// The built-in demo model: a tiny SD 1.x architecture with rule-generated weights, written once to
// the user's cache so `diffuse generate` works on a fresh machine.
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>

#include "commands.h"
#include "diffuse/diffuse.hpp"

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
  // A folder without the marker is an older, interrupted copy: replaced. synthesize_model builds
  // the new one under a temporary name and renames it into place when complete.
  fs::remove_all(dir);
  try {
    synthesize_model((fs::path(assets_dir()) / "demo-model").string(),
                     (fs::path(assets_dir()) / "tokenizer").string(), dir.string());
  } catch (const FileError&) {
    // Another diffuse process created it meanwhile: use theirs.
    if (!fs::exists(dir / "model_index.json")) throw;
  }
  std::ofstream(dir / "complete") << "ok\n";
  return dir.string();
}

}  // namespace diffuse::cli
