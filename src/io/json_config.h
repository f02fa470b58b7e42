// Strict reading of a component's config.json: every key must be understood. Values are read with
// defaults as diffusers/transformers define them; a key we do not know, or a value we cannot
// honour, is a ConfigError naming the file and the key, never a silently wrong model.
#pragma once

#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

namespace diffuse {

/// Parses JSON as Python's json module writes it: diffusers saves configs with bare `Infinity`,
/// `-Infinity` and `NaN` (e.g. DPMSolverMultistepScheduler's lambda_min_clipped), which strict JSON
/// rejects; they become +/-DBL_MAX and NaN-as-null. Throws FileError naming `source`.
nlohmann::json parse_json(const std::string& text, const std::string& source);

/// Reads `path` with parse_json and requires a JSON object (FileError naming the path otherwise).
nlohmann::json load_json_object(const std::string& path);

class JsonConfig {
 public:
  /// Parses `path`; FileError naming it when missing or not a JSON object.
  static JsonConfig load(const std::string& path);
  JsonConfig(nlohmann::json j, std::string source);

  bool has(const std::string& key) const;  // present and not null
  int integer(const std::string& key, int fallback);
  int required_integer(const std::string& key);
  double number(const std::string& key, double fallback);
  bool boolean(const std::string& key, bool fallback);
  std::string string(const std::string& key, const std::string& fallback);
  /// A string that must be one of `allowed`.
  std::string choice(const std::string& key, const std::string& fallback,
                     std::initializer_list<const char*> allowed);
  /// An int or a list of ints; an int is repeated `n` times.
  std::vector<int> int_list(const std::string& key, size_t n, int fallback);
  std::vector<int> required_int_list(const std::string& key);
  std::vector<std::string> string_list(const std::string& key);
  /// A key we accept only at its default (absent, null, or equal to `value`): features we do not
  /// implement yet fail loudly instead of being ignored.
  void expect(const std::string& key, const nlohmann::json& value);
  /// Keys that carry no meaning for inference (training hints, provenance).
  void ignore(std::initializer_list<const char*> keys);
  /// Throws ConfigError for the first key never read (keys starting with "_" are metadata).
  void finish() const;

  const std::string& source() const { return source_; }
  [[noreturn]] void fail(const std::string& key, const std::string& why) const;

 private:
  const nlohmann::json* get(const std::string& key);
  nlohmann::json j_;
  std::string source_;
  std::set<std::string> used_;
};

}  // namespace diffuse
