// diffuse pull: downloads a model from the Hugging Face Hub into huggingface_hub's cache (shared
// with the Python tools), so `generate --model org/name` finds it. The only place the Hub's
// environment variables are read: everything else gets them as HubOptions.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>

#include "commands.h"
#include "hub/hub_cache.h"
#include "hub/hub_download.h"

namespace diffuse::cli {

namespace {

std::string env(const char* name) {
  const char* v = std::getenv(name);
  return v ? v : "";
}

std::string first_line_of(const std::string& path) {
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  while (!line.empty() && std::isspace(static_cast<unsigned char>(line.back()))) line.pop_back();
  return line;
}

std::string megabytes(uint64_t bytes) {
  char buf[32];
  if (bytes < 1000000)
    std::snprintf(buf, sizeof buf, "%.1f kB", static_cast<double>(bytes) / 1e3);
  else
    std::snprintf(buf, sizeof buf, "%.1f MB", static_cast<double>(bytes) / 1e6);
  return buf;
}

/// A one-line progress bar for each download, redrawn on stderr when it is a terminal.
class ProgressBar {
 public:
  ProgressBar() : tty_(isatty(STDERR_FILENO) != 0) {}
  void operator()(const hub::TransferProgress& p) {
    if (!tty_) return;
    const auto now = std::chrono::steady_clock::now();
    if (!p.finished && now - last_ < std::chrono::milliseconds(100)) return;
    last_ = now;
    const double frac = p.total ? static_cast<double>(p.done) / static_cast<double>(p.total) : 0;
    const int width = 30, filled = static_cast<int>(frac * width);
    std::cerr << "\r\033[K" << p.file << " [" << std::string(filled, '#')
              << std::string(width - filled, ' ') << "] " << static_cast<int>(frac * 100) << "% "
              << megabytes(p.done) << (p.finished ? "\n" : "") << std::flush;
  }

 private:
  bool tty_;
  std::chrono::steady_clock::time_point last_{};
};

void report(const hub::PullResult& r) {
  for (const auto& c : r.choices) std::cerr << "  " << c << "\n";
  uint64_t downloaded = 0;
  int count = 0;
  for (const auto& f : r.files) {
    if (!f.downloaded) continue;
    downloaded += f.size;
    ++count;
    std::cerr << "  downloaded " << f.name << " (" << megabytes(f.size)
              << (f.resumed ? ", resumed" : "") << ")\n";
  }
  std::cerr << "commit " << r.commit << ": " << r.files.size() << " files, " << count
            << " downloaded (" << megabytes(downloaded) << ")"
            << (static_cast<size_t>(count) < r.files.size() ? ", the rest from the cache" : "")
            << "\n";
}

}  // namespace

std::string resolve_model_argument(const std::string& model) {
  if (model.empty()) return model;
  return hub::resolve_cached_model(model, hub_options_from_environment()).value_or(model);
}

hub::HubOptions hub_options_from_environment() {
  hub::HubOptions o;
  std::string home = env("HF_HOME");
  if (home.empty()) {
    const std::string xdg = env("XDG_CACHE_HOME");
    home = (xdg.empty() ? env("HOME") + "/.cache" : xdg) + "/huggingface";
  }
  o.cache_dir = env("HF_HUB_CACHE");
  if (o.cache_dir.empty()) o.cache_dir = env("HUGGINGFACE_HUB_CACHE");
  if (o.cache_dir.empty()) o.cache_dir = home + "/hub";
  if (!env("HF_ENDPOINT").empty()) o.endpoint = env("HF_ENDPOINT");
  o.token = env("HF_TOKEN");
  if (o.token.empty()) o.token = env("HUGGING_FACE_HUB_TOKEN");
  if (o.token.empty())
    o.token = first_line_of(env("HF_TOKEN_PATH").empty() ? home + "/token" : env("HF_TOKEN_PATH"));
  std::string offline = env("HF_HUB_OFFLINE");
  for (auto& ch : offline) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
  o.offline = offline == "1" || offline == "ON" || offline == "YES" || offline == "TRUE";
  return o;
}

Command add_pull(CLI::App& app) {
  struct Args {
    std::string repo, out, variant;
    std::string revision = "main";
    std::vector<std::string> include;
  };
  auto a = std::make_shared<Args>();
  CLI::App* c = app.add_subcommand(
      "pull", "Download a model from the Hugging Face Hub into its cache (shared with Python)");
  c->add_option("repo", a->repo,
                "repository id, e.g. stable-diffusion-v1-5/stable-diffusion-v1-5 (org/name@REV "
                "names a revision too)")
      ->required();
  c->add_option("--revision", a->revision, "branch, tag or commit")->capture_default_str();
  c->add_option("--include", a->include,
                "download the files matching this glob instead of the pipeline's (repeatable)");
  c->add_option("--variant", a->variant, "weight variant to prefer, e.g. fp16");
  c->add_option("--output,-o", a->out,
                "also make a plain folder here holding the files (hard links into the cache)");
  return [a, c] {
    if (const auto ref = hub::parse_repo_reference(a->repo);
        ref && a->repo.find('@') != std::string::npos) {
      if (c->count("--revision") && a->revision != ref->revision)
        throw ConfigError("pull " + a->repo + ": --revision " + a->revision +
                          " differs from the revision in the repository id");
      a->repo = ref->repo_id;
      a->revision = ref->revision;
    }
    hub::HubOptions options = hub_options_from_environment();
    ProgressBar bar;
    options.progress = [&bar](const hub::TransferProgress& p) { bar(p); };
    if (!a->out.empty()) hub::check_materialize_target(a->out);  // before any download
    const hub::PullRequest request{a->repo, a->revision, a->include, a->variant};
    if (!options.offline)
      std::cerr << "pulling " << a->repo << " from " << options.endpoint << "\n";
    const hub::PullResult r = hub::pull(request, options);
    report(r);
    if (!a->out.empty()) hub::materialize(r, a->out);
    std::cout << (a->out.empty() ? r.snapshot_dir : a->out) << "\n";
    return 0;
  };
}

}  // namespace diffuse::cli
