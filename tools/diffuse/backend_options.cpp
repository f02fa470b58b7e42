// Options shared by the commands that load models: where the math runs, with how many threads,
// and how the weights are held.
#include <iostream>

#include "commands.h"

namespace diffuse::cli {

void add_backend_options(CLI::App& cmd, std::string& backend, int& threads,
                         std::string& precision) {
  auto* b = cmd.add_option("--backend", backend,
                           "where the math runs: cpu (optimised kernels), reference (plain loops, "
                           "slow; for checking), or a Core ML compute-unit name (see "
                           "--compute-units)")
                ->capture_default_str();
  auto* cu = cmd.add_option("--compute-units", backend,
                            "Core ML's spelling of --backend: cpuOnly (= cpu), cpuAndGPU or cuda "
                            "(the GPU backend), all (the GPU backend where usable, else cpu); "
                            "plain backend names work too");
  b->excludes(cu);
  cmd.add_option("--threads", threads, "CPU threads for this pipeline (default: all cores)");
  cmd.add_option("--precision", precision,
                 "how layer weights are held: f32 (as stored, exact; an fp16 model stays 16-bit "
                 "in memory), f16 or bf16 (half the memory of f32), int8 (a quarter; per-channel "
                 "scales)")
      ->capture_default_str();
}

std::string backend_flag(const CLI::App& cmd) {
  return cmd.count("--compute-units") ? "--compute-units" : "--backend";
}

std::unique_ptr<Pipeline> load_pipeline(const std::string& model, const LoadOptions& options,
                                        const std::string& flag) {
  try {
    return Pipeline::load(model, options);
  } catch (const ConfigError& e) {
    // The library names the backend it rejects; name the flag the user typed as well.
    const std::string msg = e.what();
    if (msg.find("backend") != std::string::npos && msg.find(flag) == std::string::npos)
      throw ConfigError(flag + " " + options.backend + ": " + msg);
    throw;
  }
}

void print_warnings(const std::vector<std::string>& warnings) {
  for (const auto& w : warnings) std::cerr << "warning: " << w << "\n";
}

}  // namespace diffuse::cli
