#include "serve/prompt_loras.h"

#include <cctype>
#include <cmath>
#include <cstdlib>
#include <optional>

#include "serve/http_error.h"

namespace diffuse::serve {

namespace {

bool is_word(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || c == '_';
}

std::string trim(const std::string& s) {
  size_t a = 0, b = s.size();
  while (a < b && std::isspace(static_cast<unsigned char>(s[a]))) ++a;
  while (b > a && std::isspace(static_cast<unsigned char>(s[b - 1]))) --b;
  return s.substr(a, b - a);
}

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> parts;
  size_t start = 0;
  for (;;) {
    const size_t at = s.find(sep, start);
    parts.push_back(s.substr(start, at == std::string::npos ? std::string::npos : at - start));
    if (at == std::string::npos) return parts;
    start = at + 1;
  }
}

// Python's float(): surrounding spaces allowed, the rest must be a number.
std::optional<double> parse_number(const std::string& text) {
  const std::string t = trim(text);
  if (t.empty()) return std::nullopt;
  char* end = nullptr;
  const double v = std::strtod(t.c_str(), &end);
  if (end != t.c_str() + t.size()) return std::nullopt;
  return v;
}

// A1111's Lora: positional NAME[:TE[:UNET[:DYN]]] and named te=, unet=, dyn= items.
LoraTag lora_tag(const std::string& tag, const std::string& args, const std::string& field) {
  auto fail = [&](const std::string& why) {
    return invalid_parameter(field + ": " + tag + ": " + why);
  };
  std::vector<std::string> positional;
  std::optional<std::string> te_named, unet_named;
  for (const std::string& item : split(args, ':')) {
    const size_t eq = item.find('=');
    if (eq == std::string::npos) {
      positional.push_back(item);
      continue;
    }
    const std::string key = trim(item.substr(0, eq)), value = item.substr(eq + 1);
    if (key == "te") {
      te_named = value;
    } else if (key == "unet") {
      unet_named = value;
    } else if (key == "dyn") {
      throw fail("dyn= (dynamic LoRA dimension) is not supported");
    } else {
      throw fail("unknown argument \"" + key + "=\" (supported: <lora:NAME:WEIGHT>)");
    }
  }
  if (positional.empty() || trim(positional[0]).empty()) throw fail("the LoRA name is empty");
  if (positional.size() > 3) throw fail("dyn (dynamic LoRA dimension) is not supported");
  auto weight = [&](const std::string& text, const char* what) {
    const std::optional<double> v = parse_number(text);
    if (!v || !std::isfinite(*v))
      throw fail(std::string(what) + " \"" + trim(text) + "\" is not a number");
    return *v;
  };
  double te = 1.0;
  if (positional.size() > 1) te = weight(positional[1], "weight");
  if (te_named) te = weight(*te_named, "te weight");
  double unet = te;
  if (positional.size() > 2) unet = weight(positional[2], "UNet weight");
  if (unet_named) unet = weight(*unet_named, "unet weight");
  if (te != unet)
    throw fail("separate text-encoder and UNet weights are not supported (use one weight)");
  return {tag, trim(positional[0]), static_cast<float>(te)};
}

}  // namespace

PromptTags parse_prompt_tags(const std::string& prompt, const std::string& field) {
  // re.sub(r"<(\w+):([^>]+)>", "", prompt): scanned left to right, a failed match moves on by one
  // character.
  PromptTags out;
  size_t i = 0;
  while (i < prompt.size()) {
    if (prompt[i] != '<') {
      out.text.push_back(prompt[i++]);
      continue;
    }
    size_t type_end = i + 1;
    while (type_end < prompt.size() && is_word(prompt[type_end])) ++type_end;
    const size_t close = prompt.find('>', type_end);
    if (type_end == i + 1 || type_end >= prompt.size() || prompt[type_end] != ':' ||
        close == std::string::npos || close == type_end + 1) {
      out.text.push_back(prompt[i++]);
      continue;
    }
    const std::string type = prompt.substr(i + 1, type_end - i - 1);
    const std::string args = prompt.substr(type_end + 1, close - type_end - 1);
    const std::string tag = prompt.substr(i, close - i + 1);
    if (type == "lora" || type == "lyco") {
      out.loras.push_back(lora_tag(tag, args, field));
    } else if (type == "hypernet") {
      throw invalid_parameter(field + ": " + tag + ": hypernetworks are not supported");
    } else {
      out.skipped.push_back(tag);
    }
    i = close + 1;
  }
  return out;
}

}  // namespace diffuse::serve
