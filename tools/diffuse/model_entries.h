// The models `diffuse serve` and `diffuse worker` offer: the entries of a --models folder plus
// what each --model names (an entry, a file or folder, or a model `diffuse pull` cached).
#pragma once

#include <string>
#include <vector>

#include "serve/model_registry.h"

namespace diffuse::cli {

/// The name `model` is offered under, added to `entries` unless already listed: an entry name of
/// `entries`; org/name[@revision] in the Hugging Face cache (named "name"); or a file or folder
/// (named by its file stem or folder name). ConfigError naming --model (and `models_dir`, the
/// folder the entries came from, when set) when it is none of them; HubError (saying to run
/// `diffuse pull`) for a repo id not in the cache.
std::string add_model_entry(std::vector<serve::ModelEntry>& entries, const std::string& model,
                            const std::string& models_dir);

}  // namespace diffuse::cli
