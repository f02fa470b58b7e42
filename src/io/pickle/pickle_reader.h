// A restricted pickle virtual machine: it builds plain data (None, bools, ints, floats, strings,
// tuples, lists, dicts) and nothing else. Globals, REDUCE and persistent ids are resolved by the
// caller's hooks, which decide what is allowed; an opcode outside the subset torch.save emits is a
// FileError. No Python code is ever run: a pickle that names a callable the hooks refuse is an
// error, not an execution.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/tensor.h"

namespace diffuse {

struct PyValue;
using PyRef = std::shared_ptr<PyValue>;

struct PyValue {
  enum class Kind { None, Bool, Int, Float, String, Bytes, Tuple, List, Dict, Global, Object };
  Kind kind = Kind::None;
  bool b = false;
  int64_t i = 0;
  double f = 0;
  std::string s;                                 // String, Bytes; Global: "module.name"
  std::vector<PyRef> items;                      // Tuple, List
  std::vector<std::pair<PyRef, PyRef>> entries;  // Dict (insertion order)
  /// Object: what a hook built (e.g. a tensor or a storage); `s` names its type.
  Tensor tensor;
  std::shared_ptr<void> payload;

  static PyRef make(Kind k) {
    auto v = std::make_shared<PyValue>();
    v->kind = k;
    return v;
  }
  const char* kind_name() const;
};

struct PickleHooks {
  /// Whether GLOBAL/STACK_GLOBAL may name module.name; refused names are a FileError.
  std::function<bool(const std::string& module, const std::string& name)> allow_global;
  /// REDUCE of an allowed global with its argument tuple.
  std::function<PyRef(const std::string& global, const std::vector<PyRef>& args)> reduce;
  /// BINPERSID: resolves a persistent id (torch: a storage reference).
  std::function<PyRef(const PyRef& pid)> persistent_load;
};

/// Runs the pickle in [data, data+size) and returns the object STOP leaves; `source` names the
/// file in errors (hooks may throw their own errors).
PyRef unpickle(const std::byte* data, size_t size, const std::string& source,
               const PickleHooks& hooks);

}  // namespace diffuse
