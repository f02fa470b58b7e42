// Files embedded in the binary at build time (serve/web/* and serve/openapi.json), so the server
// works offline from a single executable.
#pragma once

#include <cstddef>
#include <string>

namespace diffuse::serve {

struct EmbeddedAsset {
  const char* path;  // "/app.js"
  const char* content_type;
  const unsigned char* data;
  size_t size;
};

/// The asset served at `path`, or nullptr.
const EmbeddedAsset* find_asset(const std::string& path);

}  // namespace diffuse::serve
