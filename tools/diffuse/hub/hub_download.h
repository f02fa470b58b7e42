// `diffuse pull`: resolves a revision to a commit through the Hub's API, picks the files (a
// pipeline's, or --include matches), and downloads each into the cache as huggingface_hub does:
// HEAD for its ETag and size, GET (following the redirect to the CDN) into blobs/<etag>.incomplete,
// resumed with a Range request when a partial file is there, verified (size, and sha256 where the
// Hub gives one), renamed to blobs/<etag>, then linked from snapshots/<commit>/<file>.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "hub/hub_options.h"

namespace diffuse::hub {

struct PullRequest {
  std::string repo_id;
  std::string revision = "main";
  std::vector<std::string> include;  // glob patterns; empty: what the pipeline needs
  std::string variant;               // e.g. "fp16"; empty: the plain weights
};

struct PulledFile {
  std::string name;  // path inside the repository
  std::string path;  // snapshots/<commit>/<name> in the cache
  uint64_t size = 0;
  bool downloaded = false;  // false: it was in the cache already
  bool resumed = false;     // a partial download was continued
};

struct PullResult {
  std::string commit;
  std::string snapshot_dir;
  std::vector<PulledFile> files;
  std::vector<std::string> choices;  // per component, which weights were taken (pipelines)
};

/// Downloads what `request` asks for into options.cache_dir (offline: resolves from it only).
/// HubError on any failure; files already complete stay in the cache.
PullResult pull(const PullRequest& request, const HubOptions& options);

/// A plain folder `dir` holding the pulled files (hard links to the cache's blobs where the file
/// system allows, copies otherwise), built under a hidden name next to it and renamed into place.
/// An existing non-empty `dir` is an error.
void materialize(const PullResult& result, const std::string& dir);
/// HubError when materialize() would refuse `dir` (checked before downloading).
void check_materialize_target(const std::string& dir);

}  // namespace diffuse::hub
