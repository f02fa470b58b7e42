// diffuse convert: a model written once as a diffuse package at a chosen precision (f16, int8,
// palettized, ...), and diffuse verify: a package's files checked against their checksums.
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "commands.h"
#include "diffuse/diffuse.hpp"
#include "stop_signals.h"

namespace diffuse::cli {

namespace {

struct ConvertArgs {
  std::string source, output, components, config_dir;
  std::map<std::string, std::string> per_component;  // component -> precision
  ConvertOptions options;
  bool json = false;
};

std::vector<std::string> split_commas(const std::string& list) {
  std::vector<std::string> items;
  std::stringstream in(list);
  for (std::string item; std::getline(in, item, ',');)
    if (!item.empty()) items.push_back(item);
  return items;
}

double mib(int64_t bytes) {
  return static_cast<double>(bytes) / (1024.0 * 1024.0);
}

std::atomic<bool> g_interrupted{false};

/// "unet      [##########          ]  343/686" on one stderr line, redrawn in place on a terminal.
/// Returns false after Ctrl-C: the library then stops and removes what it had written.
bool draw_progress(const std::string& component, int done, int total) {
  if (g_interrupted) return false;
  static const bool tty = ::isatty(STDERR_FILENO) != 0;
  if (!tty && done != total) return true;
  const int width = 30, filled = total > 0 ? width * done / total : width;
  std::fprintf(stderr, "\r%-15s [%s%s] %5d/%d", component.c_str(),
               std::string(static_cast<size_t>(filled), '#').c_str(),
               std::string(static_cast<size_t>(width - filled), ' ').c_str(), done, total);
  if (done == total) std::fputc('\n', stderr);
  return true;
}

void print_report(const ConvertReport& r) {
  std::printf("%s\n  %-15s %-9s %11s %12s %12s %10s\n", r.path.c_str(), "component", "precision",
              "parameters", "on disk", "in memory", "rel. error");
  int64_t disk = 0, memory = 0;
  for (const auto& c : r.components) {
    std::printf("  %-15s %-9s %11lld %9.1f MiB %9.1f MiB %10.2e\n", c.name.c_str(),
                c.precision.c_str(), static_cast<long long>(c.parameters), mib(c.disk_bytes),
                mib(c.memory_bytes), c.relative_error);
    disk += c.disk_bytes;
    memory += c.memory_bytes;
  }
  std::printf("  %-15s %-9s %11s %9.1f MiB %9.1f MiB\n", "total", "", "", mib(disk), mib(memory));
}

nlohmann::json report_json(const ConvertReport& r) {
  nlohmann::json components = nlohmann::json::array();
  for (const auto& c : r.components)
    components.push_back({{"name", c.name},
                          {"precision", c.precision},
                          {"parameters", c.parameters},
                          {"disk_bytes", c.disk_bytes},
                          {"memory_bytes", c.memory_bytes},
                          {"relative_error", c.relative_error},
                          {"files", c.files}});
  return {{"path", r.path}, {"components", components}};
}

}  // namespace

Command add_convert(CLI::App& app) {
  auto a = std::make_shared<ConvertArgs>();
  CLI::App* c = app.add_subcommand(
      "convert", "Write a model as a diffuse package (f16, bf16, int8 or palettized weights)");
  c->add_option("source", a->source,
                "diffusers model folder, single-file checkpoint, or org/name pulled with `diffuse "
                "pull`")
      ->required();
  c->add_option("--output,-o", a->output, "package folder to create (must not exist)")->required();
  c->add_option("--precision", a->options.precision,
                "how layer matrices are stored: f32, f16, bf16, int8 (per-channel scales), "
                "palette1..palette8 (2^N-entry lookup table per tensor, or per channel group "
                "with --palette-group)")
      ->capture_default_str();
  for (const char* component : {"text-encoder", "text-encoder-2", "unet", "vae"}) {
    std::string name = component;
    for (char& ch : name)
      if (ch == '-') ch = '_';
    c->add_option(std::string("--") + component + "-precision", a->per_component[name],
                  "precision for the " + name + " (default: --precision)");
  }
  c->add_option("--components", a->components,
                "comma-separated components to write: text_encoder, text_encoder_2, unet, vae "
                "(default: all)");
  c->add_option(
      "--chunk", a->options.chunk_mib,
      "largest weight file in MiB; bigger components are sharded (default: 0 = one file)");
  c->add_option("--palette-group", a->options.palette_group,
                "paletteN: output channels per lookup table (Core ML's per-grouped-channel "
                "palettization); default 0 = one table per tensor");
  c->add_option("--attention", a->options.attention,
                "attention kernel recorded as the package's default: sliced, standard or flash "
                "(generate --attention overrides it; default: none recorded = sliced)");
  c->add_option("--variant", a->options.load.variant, "source weight-file variant to read (fp16)");
  c->add_option("--config-dir", a->config_dir,
                "for a single-file checkpoint: diffusers folder whose configs describe it");
  c->add_flag("--json", a->json, "print the report as JSON on stdout");
  return [a] {
    ConvertOptions o = a->options;
    for (const auto& [component, precision] : a->per_component)
      if (!precision.empty()) o.component_precision[component] = precision;
    o.components = split_commas(a->components);
    o.load.config_dir = a->config_dir;
    o.load.assets_dir = assets_dir();
    ConvertReport r;
    {
      // Ctrl-C (or SIGTERM) stops the convert, which removes what it wrote; a second one kills.
      StopScope stop_on_signal([](int) { g_interrupted = true; });
      r = convert_model(resolve_model_argument(a->source), a->output, o, draw_progress);
    }
    if (a->json)
      std::cout << report_json(r).dump(2) << "\n";
    else
      print_report(r);
    return 0;
  };
}

Command add_verify(CLI::App& app) {
  auto path = std::make_shared<std::string>();
  CLI::App* c =
      app.add_subcommand("verify", "Check a diffuse package's files against their checksums");
  c->add_option("package", *path, "package folder written by diffuse convert")->required();
  return [path] {
    const std::vector<std::string> problems = verify_package(*path);
    for (const auto& p : problems) std::cerr << "error: " << p << "\n";
    if (!problems.empty()) return 1;
    std::cout << *path << ": every file matches diffuse.json\n";
    return 0;
  };
}

}  // namespace diffuse::cli
