// Reading request bodies: JSON parsing (400 when malformed) and typed fields with one-line 422
// messages naming the field, so every route validates the same way.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>

namespace diffuse::serve {

/// Parses a request body as a JSON object (HttpError 400 for malformed JSON or a non-object).
nlohmann::json parse_json_object(const std::string& body);

/// Typed access to the fields of one JSON object; every key read is remembered, so the caller can
/// refuse the keys nobody asked for.
class JsonFields {
 public:
  /// `where` prefixes field names in messages ("" for the top level, "override_settings." ...).
  explicit JsonFields(const nlohmann::json& object, std::string where = {});

  bool has(const std::string& key);  // present and not null
  const nlohmann::json* raw(const std::string& key);
  std::string string(const std::string& key, const std::string& fallback);
  int64_t integer(const std::string& key, int64_t fallback, int64_t min, int64_t max);
  double number(const std::string& key, double fallback, double min, double max);
  bool boolean(const std::string& key, bool fallback);
  std::optional<std::string> optional_string(const std::string& key);
  std::optional<int64_t> optional_integer(const std::string& key, int64_t min, int64_t max);
  std::optional<double> optional_number(const std::string& key, double min, double max);

  /// Marks a key as understood without reading it.
  void accept(const std::string& key) { seen_.insert(key); }
  /// HttpError 422 naming the first key that was not read or accepted.
  void refuse_unknown(const std::string& hint = {}) const;
  std::string name(const std::string& key) const { return where_ + key; }

 private:
  const nlohmann::json& object_;
  std::string where_;
  std::set<std::string> seen_;
};

}  // namespace diffuse::serve
