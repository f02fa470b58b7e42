// A restricted pickle virtual machine: it builds plain data (None, bools, ints, floats, strings,
// tuples, lists, dicts) and nothing else. Globals, REDUCE/NEWOBJ and persistent ids are resolved by
// the caller's hooks, which decide what is allowed; an opcode outside the subset torch.save emits
// is a FileError. No Python code is ever run: a pickle that names a callable the hooks refuse is an
// error, not an execution.
//
// Hostile input is bounded: nesting deeper than kMaxPickleDepth, more than kMaxPickleOps opcodes
// and reference cycles are FileErrors; values are destroyed without recursion.
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

/// Containers may nest this deep (torch checkpoints nest a handful of levels).
constexpr uint32_t kMaxPickleDepth = 1000;
/// Opcodes one pickle may run (a full SD training checkpoint runs well under a million); bounds
/// the memory a small, highly compressible pickle can claim.
constexpr uint64_t kMaxPickleOps = uint64_t{1} << 23;

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
  /// Containers: a lower bound of the nesting below this value (1 for a leaf).
  uint32_t depth = 1;

  PyValue() = default;
  PyValue(const PyValue&) = delete;
  PyValue& operator=(const PyValue&) = delete;
  /// Releases nested values with an explicit worklist: a deep chain of lists must not recurse.
  ~PyValue();

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
  /// REDUCE (and NEWOBJ, cls.__new__(cls, *args), treated alike) of an allowed global with its
  /// argument tuple.
  std::function<PyRef(const std::string& global, const std::vector<PyRef>& args)> reduce;
  /// BINPERSID: resolves a persistent id (torch: a storage reference).
  std::function<PyRef(const PyRef& pid)> persistent_load;
};

/// `s` fit for a one-line error message: control and non-ASCII bytes as \xNN, at most 200
/// characters (names in a hostile file may hold anything).
std::string printable(const std::string& s);

/// Runs the pickle in [data, data+size) and returns the object STOP leaves; `source` names the
/// file in errors (hooks may throw their own errors).
PyRef unpickle(const std::byte* data, size_t size, const std::string& source,
               const PickleHooks& hooks);

}  // namespace diffuse
