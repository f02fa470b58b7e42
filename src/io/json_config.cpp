#include "io/json_config.h"

#include "core/mapped_file.h"
#include "diffuse/error.hpp"

namespace diffuse {

nlohmann::json parse_json(const std::string& text, const std::string& source) {
  std::string fixed;
  fixed.reserve(text.size());
  bool in_string = false;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      fixed += c;
      if (c == '\\' && i + 1 < text.size()) {
        fixed += text[++i];
      } else if (c == '"') {
        in_string = false;
      }
      continue;
    }
    if (c == '"') {
      in_string = true;
    } else if (text.compare(i, 8, "Infinity") == 0) {
      fixed += "1.7976931348623157e308";
      i += 7;
      continue;
    } else if (text.compare(i, 3, "NaN") == 0) {
      fixed += "null";
      i += 2;
      continue;
    }
    fixed += c;
  }
  try {
    return nlohmann::json::parse(fixed);
  } catch (const nlohmann::json::exception& e) {
    throw FileError(source + ": invalid JSON: " + e.what());
  }
}

nlohmann::json load_json_object(const std::string& path) {
  nlohmann::json j = parse_json(read_text_file(path), path);
  if (!j.is_object()) throw FileError(path + ": expected a JSON object");
  return j;
}

JsonConfig JsonConfig::load(const std::string& path) {
  return JsonConfig(load_json_object(path), path);
}

JsonConfig::JsonConfig(nlohmann::json j, std::string source)
    : j_(std::move(j)), source_(std::move(source)) {}

void JsonConfig::fail(const std::string& key, const std::string& why) const {
  throw ConfigError(source_ + ": '" + key + "' " + why);
}

const nlohmann::json* JsonConfig::get(const std::string& key) {
  used_.insert(key);
  auto it = j_.find(key);
  if (it == j_.end() || it->is_null()) return nullptr;
  return &*it;
}

bool JsonConfig::has(const std::string& key) const {
  auto it = j_.find(key);
  return it != j_.end() && !it->is_null();
}

int JsonConfig::integer(const std::string& key, int fallback) {
  const auto* v = get(key);
  if (!v) return fallback;
  if (!v->is_number_integer()) fail(key, "must be an integer, got " + v->dump());
  return v->get<int>();
}

int JsonConfig::required_integer(const std::string& key) {
  if (!has(key)) fail(key, "is required but missing");
  return integer(key, 0);
}

double JsonConfig::number(const std::string& key, double fallback) {
  const auto* v = get(key);
  if (!v) return fallback;
  if (!v->is_number()) fail(key, "must be a number, got " + v->dump());
  return v->get<double>();
}

bool JsonConfig::boolean(const std::string& key, bool fallback) {
  const auto* v = get(key);
  if (!v) return fallback;
  if (!v->is_boolean()) fail(key, "must be true or false, got " + v->dump());
  return v->get<bool>();
}

std::string JsonConfig::string(const std::string& key, const std::string& fallback) {
  const auto* v = get(key);
  if (!v) return fallback;
  if (!v->is_string()) fail(key, "must be a string, got " + v->dump());
  return v->get<std::string>();
}

std::string JsonConfig::choice(const std::string& key, const std::string& fallback,
                               std::initializer_list<const char*> allowed) {
  const std::string s = string(key, fallback);
  std::string list;
  for (const char* a : allowed) {
    if (s == a) return s;
    list += (list.empty() ? "" : ", ") + std::string(a);
  }
  fail(key, "value \"" + s + "\" is not supported (supported: " + list + ")");
}

std::vector<int> JsonConfig::int_list(const std::string& key, size_t n, int fallback) {
  const auto* v = get(key);
  if (!v) return std::vector<int>(n, fallback);
  if (v->is_number_integer()) return std::vector<int>(n, v->get<int>());
  if (!v->is_array()) fail(key, "must be an integer or a list of integers, got " + v->dump());
  std::vector<int> out;
  for (const auto& e : *v) {
    if (!e.is_number_integer()) fail(key, "must contain integers, got " + v->dump());
    out.push_back(e.get<int>());
  }
  if (out.size() != n)
    fail(key, "has " + std::to_string(out.size()) + " entries, expected " + std::to_string(n));
  return out;
}

std::vector<int> JsonConfig::required_int_list(const std::string& key) {
  const auto* v = get(key);
  if (!v) fail(key, "is required but missing");
  if (!v->is_array() || v->empty()) fail(key, "must be a non-empty list of integers");
  std::vector<int> out;
  for (const auto& e : *v) {
    if (!e.is_number_integer()) fail(key, "must contain integers, got " + v->dump());
    out.push_back(e.get<int>());
  }
  return out;
}

std::vector<std::string> JsonConfig::string_list(const std::string& key) {
  const auto* v = get(key);
  if (!v) fail(key, "is required but missing");
  if (!v->is_array()) fail(key, "must be a list of strings");
  std::vector<std::string> out;
  for (const auto& e : *v) {
    if (!e.is_string()) fail(key, "must contain strings, got " + v->dump());
    out.push_back(e.get<std::string>());
  }
  return out;
}

void JsonConfig::expect(const std::string& key, const nlohmann::json& value) {
  const auto* v = get(key);
  if (!v || *v == value) return;
  // Numbers compare by value (1 == 1.0).
  if (v->is_number() && value.is_number() && v->get<double>() == value.get<double>()) return;
  fail(key, "= " + v->dump() + " is not supported yet (only " + value.dump() + ")");
}

void JsonConfig::ignore(std::initializer_list<const char*> keys) {
  for (const char* k : keys) used_.insert(k);
}

void JsonConfig::finish() const {
  for (auto it = j_.begin(); it != j_.end(); ++it) {
    const std::string& k = it.key();
    if (!k.empty() && k[0] == '_') continue;
    if (!used_.count(k)) fail(k, "is not a known configuration key");
  }
}

}  // namespace diffuse
