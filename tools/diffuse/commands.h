// Subcommands of the `diffuse` executable. Each registers its options on the shared CLI11 app and
// returns the function to run when selected; all user-visible printing happens here, in the tool.
#pragma once

#include <CLI/CLI.hpp>
#include <functional>
#include <string>

namespace diffuse::cli {

using Command = std::function<int()>;

Command add_generate(CLI::App& app);
Command add_tokenize(CLI::App& app);
Command add_info(CLI::App& app);
Command add_synth(CLI::App& app);
Command add_bench(CLI::App& app);

/// The demo model folder, created on first use under the user's cache directory.
std::string demo_model_dir(bool announce);
/// Folder of bundled assets (tokenizer vocabulary, demo model configs).
std::string assets_dir();

/// "error: <message>" on stderr; returns the exit code 1.
int report_error(const std::string& message);

}  // namespace diffuse::cli
