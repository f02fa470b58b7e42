#include "serve/extra_models.h"

#include <algorithm>
#include <filesystem>

#include "serve/http_error.h"
#include "serve/prompt_loras.h"

namespace fs = std::filesystem;

namespace diffuse::serve {

namespace {

bool safe_name(const std::string& name) {
  return !name.empty() && name.find('/') == std::string::npos &&
         name.find('\\') == std::string::npos && name.find("..") == std::string::npos &&
         name.find('\0') == std::string::npos && name[0] != '.';
}

bool is_file(const fs::path& p) {
  std::error_code ec;
  return fs::is_regular_file(p, ec);  // follows symlinks
}

bool is_dir(const fs::path& p) {
  std::error_code ec;
  return fs::is_directory(p, ec);
}

std::vector<fs::path> entries(const std::string& dir) {
  std::vector<fs::path> out;
  if (dir.empty()) return out;
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec))
    out.push_back(it->path());
  return out;
}

}  // namespace

std::vector<std::string> lora_names(const std::string& dir) {
  std::vector<std::string> names;
  for (const fs::path& p : entries(dir))
    if (p.extension() == ".safetensors" && is_file(p) && p.filename().string()[0] != '.')
      names.push_back(p.stem().string());
  std::sort(names.begin(), names.end());
  return names;
}

std::string resolve_lora(const ServerConfig& config, const std::string& name,
                         const std::string& what) {
  if (config.lora_dir.empty())
    throw invalid_parameter(what + ": LoRAs need the server started with --lora-dir DIR");
  if (!safe_name(name))
    throw invalid_parameter(what + ": a LoRA is named by its file name in --lora-dir " +
                            config.lora_dir + ", without '/', '\\' or \"..\"");
  const fs::path path = fs::path(config.lora_dir) / (name + ".safetensors");
  if (!is_file(path))
    throw invalid_parameter(what + ": no LoRA \"" + name + "\" in --lora-dir " + config.lora_dir +
                            " (looked for " + path.filename().string() +
                            "; GET /sdapi/v1/loras lists them)");
  return path.string();
}

std::vector<std::string> controlnet_names(const std::string& dir) {
  std::vector<std::string> names;
  for (const fs::path& p : entries(dir)) {
    if (p.filename().string()[0] == '.') continue;
    if (is_dir(p) && is_file(p / "config.json"))
      names.push_back(p.filename().string());
    else if ((p.extension() == ".safetensors" || p.extension() == ".pth") && is_file(p))
      names.push_back(p.stem().string());
  }
  std::sort(names.begin(), names.end());
  names.erase(std::unique(names.begin(), names.end()), names.end());
  return names;
}

std::string resolve_controlnet(const ServerConfig& config, const std::string& requested,
                               const std::string& what) {
  if (config.controlnet_dir.empty())
    throw invalid_parameter(what +
                            ": ControlNets need the server started with --controlnet-dir "
                            "DIR");
  std::string name = requested;
  // "control_v11p_sd15_canny [d14c016b]": the extension's title, with its short hash.
  if (const size_t open = name.rfind(" ["); open != std::string::npos && name.back() == ']')
    name.erase(open);
  if (!safe_name(name))
    throw invalid_parameter(what +
                            ": a ControlNet is named by its folder or file name in "
                            "--controlnet-dir " +
                            config.controlnet_dir + ", without '/', '\\' or \"..\"");
  const fs::path dir(config.controlnet_dir);
  if (is_dir(dir / name)) return (dir / name).string();
  for (const char* ext : {".safetensors", ".pth"})
    if (is_file(dir / (name + ext))) return (dir / (name + ext)).string();
  const std::string ext = fs::path(name).extension().string();
  if ((ext == ".safetensors" || ext == ".pth") && is_file(dir / name)) return (dir / name).string();
  throw invalid_parameter(what + ": no ControlNet \"" + requested + "\" in --controlnet-dir " +
                          config.controlnet_dir +
                          " (a folder, NAME.safetensors or NAME.pth; GET /controlnet/model_list "
                          "lists them)");
}

void apply_prompt_loras(GenerateOptions& o, const ServerConfig& config, bool activate,
                        std::vector<std::string>& warnings, const std::string& prompt_field,
                        const std::string& negative_field) {
  std::vector<std::pair<std::string, LoraTag>> tags;  // field, tag
  auto strip = [&](std::string& text, const std::string& field) {
    PromptTags parsed = parse_prompt_tags(text, field);
    if (parsed.loras.empty() && parsed.skipped.empty()) return;
    text = std::move(parsed.text);
    for (auto& t : parsed.loras) tags.emplace_back(field, std::move(t));
    for (const auto& t : parsed.skipped)
      warnings.push_back(field + ": skipped " + t + " (not an extra network diffuse knows)");
  };
  strip(o.prompt, prompt_field);
  if (o.negative_prompt) strip(*o.negative_prompt, negative_field);
  if (!activate) return;
  for (const auto& [field, t] : tags)
    o.loras.push_back({resolve_lora(config, t.name, field + ": " + t.tag), t.scale});
}

void check_queue_support(const GenerateOptions& o, const ServerConfig& config) {
  if (config.queue_url.empty()) return;
  if (!o.loras.empty())
    throw invalid_parameter(
        "LoRAs are not supported by a --queue front yet (its workers cannot read this "
        "server's --lora-dir)");
  if (!o.controlnets.empty())
    throw invalid_parameter(
        "ControlNets are not supported by a --queue front yet (its workers cannot read this "
        "server's --controlnet-dir)");
  if (o.hires)
    throw invalid_parameter("enable_hr (the hires fix) is not supported by a --queue front yet");
  if (!o.refiner.empty())
    throw invalid_parameter("refiner_checkpoint is not supported by a --queue front yet");
}

}  // namespace diffuse::serve
