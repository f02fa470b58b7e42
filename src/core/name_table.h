// Enums that options and files spell by name (precisions, attention kernels): one table of
// (name, value) pairs per enum, looked up both ways, and the list of names for error messages.
#pragma once

#include <array>
#include <cstddef>
#include <string>
#include <string_view>
#include <utility>

namespace diffuse {

template <typename T, size_t N>
using NameTable = std::array<std::pair<std::string_view, T>, N>;

/// The value named `name`; false (and *out untouched) when the table has no such name.
template <typename T, size_t N>
bool value_named(const NameTable<T, N>& table, std::string_view name, T* out) {
  for (const auto& [n, v] : table)
    if (n == name) {
      *out = v;
      return true;
    }
  return false;
}

/// The name of `value`; "?" for a value outside the table.
template <typename T, size_t N>
std::string_view name_of(const NameTable<T, N>& table, T value) {
  for (const auto& [n, v] : table)
    if (v == value) return n;
  return "?";
}

/// "a, b or c": the names, for "choose ..." in error messages.
template <typename T, size_t N>
std::string names_listed(const NameTable<T, N>& table) {
  std::string s;
  for (size_t i = 0; i < N; ++i)
    s += std::string(i == 0 ? "" : i + 1 == N ? " or " : ", ") + std::string(table[i].first);
  return s;
}

}  // namespace diffuse
