// Subcommands of the `diffuse` executable. Each registers its options on the shared CLI11 app and
// returns the function to run when selected; all user-visible printing happens here, in the tool.
#pragma once

#include <CLI/CLI.hpp>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "diffuse/diffuse.hpp"
#include "hub/hub_options.h"

namespace diffuse::cli {

using Command = std::function<int()>;

Command add_generate(CLI::App& app);
Command add_tokenize(CLI::App& app);
Command add_info(CLI::App& app);
Command add_synth(CLI::App& app);
Command add_bench(CLI::App& app);
Command add_serve(CLI::App& app);
Command add_worker(CLI::App& app);
Command add_batch(CLI::App& app);
Command add_pull(CLI::App& app);
Command add_convert(CLI::App& app);
Command add_verify(CLI::App& app);

/// The demo model folder, created on first use under the user's cache directory.
std::string demo_model_dir(bool announce);
/// Folder of bundled assets (tokenizer vocabulary, demo model configs).
std::string assets_dir();

/// --backend NAME and --compute-units NAME (Core ML's spelling of the same choice; both set
/// LoadOptions::backend), --threads N, --precision NAME, --variant NAME and --vae PATH: the
/// LoadOptions fields of the same names.
void add_backend_options(CLI::App& cmd, LoadOptions& load);
/// The spelling the user typed: "--compute-units" when given, else "--backend".
std::string backend_flag(const CLI::App& cmd);
/// Pipeline::load; a backend the library rejects is reported with the flag that chose it.
std::unique_ptr<Pipeline> load_pipeline(const std::string& model, const LoadOptions& options,
                                        const std::string& flag);
/// GenerationResult::warnings as "warning: ..." lines on stderr.
void print_warnings(const std::vector<std::string>& warnings);

/// The Hub's settings from the environment: HF_ENDPOINT, HF_TOKEN (or $HF_HOME/token), HF_HOME,
/// HF_HUB_CACHE, HF_HUB_OFFLINE (the Python tools' variables).
hub::HubOptions hub_options_from_environment();
/// A --model / SRC argument: an existing path as given, else "org/name" as the snapshot `diffuse
/// pull` cached (HubError saying to pull it when it is not there).
std::string resolve_model_argument(const std::string& model);

/// "error: <message>" on stderr; returns the exit code 1.
int report_error(const std::string& message);

}  // namespace diffuse::cli
