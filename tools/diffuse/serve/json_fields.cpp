#include "serve/json_fields.h"

#include <cmath>

#include "serve/http_error.h"

namespace diffuse::serve {

nlohmann::json parse_json_object(const std::string& body) {
  nlohmann::json j = nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) throw bad_request("request body is not valid JSON");
  if (!j.is_object()) throw bad_request("request body must be a JSON object");
  return j;
}

JsonFields::JsonFields(const nlohmann::json& object, std::string where)
    : object_(object), where_(std::move(where)) {}

const nlohmann::json* JsonFields::raw(const std::string& key) {
  seen_.insert(key);
  auto it = object_.find(key);
  if (it == object_.end() || it->is_null()) return nullptr;
  return &*it;
}

bool JsonFields::has(const std::string& key) {
  return raw(key) != nullptr;
}

std::optional<std::string> JsonFields::optional_string(const std::string& key) {
  const nlohmann::json* v = raw(key);
  if (!v) return std::nullopt;
  if (!v->is_string()) throw invalid_parameter(name(key) + " must be a string");
  return v->get<std::string>();
}

std::string JsonFields::string(const std::string& key, const std::string& fallback) {
  return optional_string(key).value_or(fallback);
}

std::optional<int64_t> JsonFields::optional_integer(const std::string& key, int64_t min,
                                                    int64_t max) {
  const nlohmann::json* v = raw(key);
  if (!v) return std::nullopt;
  int64_t value = 0;
  if (v->is_number_integer()) {
    // Unsigned values above INT64_MAX come back negative here and fail the range check below.
    value = v->is_number_unsigned() && v->get<uint64_t>() > uint64_t(INT64_MAX) ? INT64_MIN
                                                                                : v->get<int64_t>();
  } else if (v->is_number_float() && std::nearbyint(v->get<double>()) == v->get<double>() &&
             std::fabs(v->get<double>()) < 9e15) {
    value = static_cast<int64_t>(v->get<double>());  // 20.0 from clients that send floats
  } else {
    throw invalid_parameter(name(key) + " must be an integer");
  }
  if (value < min || value > max)
    throw invalid_parameter(name(key) + " must be between " + std::to_string(min) + " and " +
                            std::to_string(max) + ", got " + v->dump());
  return value;
}

int64_t JsonFields::integer(const std::string& key, int64_t fallback, int64_t min, int64_t max) {
  return optional_integer(key, min, max).value_or(fallback);
}

std::optional<double> JsonFields::optional_number(const std::string& key, double min, double max) {
  const nlohmann::json* v = raw(key);
  if (!v) return std::nullopt;
  if (!v->is_number()) throw invalid_parameter(name(key) + " must be a number");
  const double value = v->get<double>();
  if (!std::isfinite(value) || value < min || value > max) {
    char range[96];
    std::snprintf(range, sizeof range, " must be between %g and %g, got ", min, max);
    throw invalid_parameter(name(key) + range + v->dump());
  }
  return value;
}

double JsonFields::number(const std::string& key, double fallback, double min, double max) {
  return optional_number(key, min, max).value_or(fallback);
}

bool JsonFields::boolean(const std::string& key, bool fallback) {
  const nlohmann::json* v = raw(key);
  if (!v) return fallback;
  if (!v->is_boolean()) throw invalid_parameter(name(key) + " must be true or false");
  return v->get<bool>();
}

void JsonFields::refuse_unknown(const std::string& hint) const {
  for (const auto& [key, value] : object_.items())
    if (!seen_.count(key))
      throw invalid_parameter("unknown field " + name(key) +
                              (hint.empty() ? "" : " (" + hint + ")"));
}

}  // namespace diffuse::serve
