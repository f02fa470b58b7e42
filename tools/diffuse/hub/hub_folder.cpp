// `diffuse pull -o DIR`: the pulled snapshot as a plain folder.
#include <stdlib.h>

#include <filesystem>
#include <system_error>

#include "hub/hub_download.h"

namespace diffuse::hub {

namespace fs = std::filesystem;

namespace {

/// `to` as a hard link to the file `from` resolves to, or a copy where linking fails (another
/// file system).
void place(const fs::path& from, const fs::path& to) {
  const fs::path real = fs::canonical(from);
  fs::create_directories(to.parent_path());
  std::error_code ec;
  fs::create_hard_link(real, to, ec);
  if (ec) fs::copy_file(real, to);
}

}  // namespace

void check_materialize_target(const std::string& dir) {
  const fs::path target = fs::absolute(dir).lexically_normal();
  std::error_code ec;
  if (fs::exists(target, ec) && !(fs::is_directory(target, ec) && fs::is_empty(target, ec)))
    throw HubError("-o " + dir + ": exists and is not an empty folder (nothing is overwritten)");
}

void materialize(const PullResult& result, const std::string& dir) {
  check_materialize_target(dir);
  const fs::path target = fs::absolute(dir).lexically_normal();
  std::error_code ec;
  const fs::path parent = target.has_filename() ? target.parent_path() : target;
  fs::create_directories(parent);
  std::string tmpl = (parent / ("." + target.filename().string() + ".XXXXXX")).string();
  if (::mkdtemp(tmpl.data()) == nullptr)
    throw HubError("cannot create a folder in " + parent.string());
  const fs::path tmp = tmpl;
  try {
    for (const auto& f : result.files) place(f.path, tmp / f.name);
    fs::rename(tmp, target);
  } catch (const std::exception& e) {
    fs::remove_all(tmp, ec);
    throw HubError("-o " + dir + ": " + e.what());
  }
}

}  // namespace diffuse::hub
