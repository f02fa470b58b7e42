// diffuse: Stable Diffusion from the command line.
#include <iostream>

#include "commands.h"
#include "diffuse/diffuse.hpp"
#include "stop_signals.h"

int main(int argc, char** argv) {
  diffuse::cli::install_stop_signals();  // before any thread exists (see stop_signals.h)
  CLI::App app{"diffuse: Stable Diffusion in C++ (no Python)", "diffuse"};
  app.set_version_flag("--version", std::string("diffuse ") + diffuse::version());
  app.require_subcommand(1);
  const std::vector<diffuse::cli::Command> commands = {
      diffuse::cli::add_generate(app), diffuse::cli::add_tokenize(app),
      diffuse::cli::add_info(app),     diffuse::cli::add_synth(app),
      diffuse::cli::add_bench(app),    diffuse::cli::add_serve(app),
      diffuse::cli::add_worker(app),   diffuse::cli::add_batch(app),
      diffuse::cli::add_pull(app),     diffuse::cli::add_convert(app),
      diffuse::cli::add_verify(app)};
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // Usage errors: CLI11 prints its message; exit code 1 for errors, 0 for --help/--version.
    const int rc = app.exit(e);
    return rc == 0 ? 0 : 1;
  }
  // Subcommands were registered in the order of `commands`.
  const auto subs = app.get_subcommands([](CLI::App*) { return true; });
  for (size_t i = 0; i < subs.size() && i < commands.size(); ++i) {
    if (!subs[i]->parsed()) continue;
    const auto& run = commands[i];
    try {
      return run();
    } catch (const diffuse::Cancelled&) {
      std::cerr << "cancelled: nothing written\n";
      return 130;
    } catch (const diffuse::Error& e) {
      return diffuse::cli::report_error(e.what());
    } catch (const std::bad_alloc&) {
      return diffuse::cli::report_error("out of memory");
    } catch (const std::exception& e) {
      return diffuse::cli::report_error(std::string("internal error: ") + e.what());
    }
  }
  return 1;
}

namespace diffuse::cli {
int report_error(const std::string& message) {
  std::cerr << "error: " << message << "\n";
  return 1;
}
}  // namespace diffuse::cli
