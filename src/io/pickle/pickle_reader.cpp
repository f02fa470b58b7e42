#include "io/pickle/pickle_reader.h"

#include <cstring>
#include <unordered_map>

#include "diffuse/error.hpp"

namespace diffuse {

const char* PyValue::kind_name() const {
  switch (kind) {
    case Kind::None:
      return "None";
    case Kind::Bool:
      return "bool";
    case Kind::Int:
      return "int";
    case Kind::Float:
      return "float";
    case Kind::String:
      return "str";
    case Kind::Bytes:
      return "bytes";
    case Kind::Tuple:
      return "tuple";
    case Kind::List:
      return "list";
    case Kind::Dict:
      return "dict";
    case Kind::Global:
      return "global";
    case Kind::Object:
      return "object";
  }
  return "?";
}

namespace {

class Machine {
 public:
  Machine(const std::byte* data, size_t size, const std::string& source, const PickleHooks& hooks)
      : data_(reinterpret_cast<const uint8_t*>(data)),
        size_(size),
        source_(source),
        hooks_(hooks) {}

  PyRef run() {
    for (;;) {
      op_pos_ = pos_;
      const uint8_t op = u8();
      switch (op) {
        case 0x80:
          u8();
          break;  // PROTO
        case 0x95:
          bytes(8);
          break;  // FRAME: a length hint only
        case '}':
          push(PyValue::make(PyValue::Kind::Dict));
          break;
        case ']':
          push(PyValue::make(PyValue::Kind::List));
          break;
        case ')':
          push(PyValue::make(PyValue::Kind::Tuple));
          break;
        case '(':
          marks_.push_back(stack_.size());
          break;
        case 'X':
          push_string(PyValue::Kind::String, uint_le(4));
          break;  // BINUNICODE
        case 0x8c:
          push_string(PyValue::Kind::String, uint_le(1));
          break;  // SHORT_BINUNICODE
        case 0x8d:
          push_string(PyValue::Kind::String, uint_le(8));
          break;  // BINUNICODE8
        case 'T':
          push_string(PyValue::Kind::String, uint_le(4));
          break;  // BINSTRING
        case 'U':
          push_string(PyValue::Kind::String, uint_le(1));
          break;  // SHORT_BINSTRING
        case 'B':
          push_string(PyValue::Kind::Bytes, uint_le(4));
          break;  // BINBYTES
        case 'C':
          push_string(PyValue::Kind::Bytes, uint_le(1));
          break;  // SHORT_BINBYTES
        case 0x8e:
          push_string(PyValue::Kind::Bytes, uint_le(8));
          break;  // BINBYTES8
        case 'J':
          push_int(static_cast<int32_t>(uint_le(4)));
          break;  // BININT
        case 'K':
          push_int(static_cast<int64_t>(uint_le(1)));
          break;  // BININT1
        case 'M':
          push_int(static_cast<int64_t>(uint_le(2)));
          break;  // BININT2
        case 0x8a:
          push_long(uint_le(1));
          break;  // LONG1
        case 0x8b:
          push_long(uint_le(4));
          break;     // LONG4
        case 'G': {  // BINFLOAT
          const uint8_t* p = bytes(8);
          uint64_t u = 0;
          for (int k = 0; k < 8; ++k) u = (u << 8) | p[k];
          auto v = PyValue::make(PyValue::Kind::Float);
          std::memcpy(&v->f, &u, 8);
          push(v);
          break;
        }
        case 0x88:
          push_bool(true);
          break;  // NEWTRUE
        case 0x89:
          push_bool(false);
          break;  // NEWFALSE
        case 'N':
          push(PyValue::make(PyValue::Kind::None));
          break;
        case 0x85:
          push_tuple(1);
          break;
        case 0x86:
          push_tuple(2);
          break;
        case 0x87:
          push_tuple(3);
          break;
        case 't': {  // TUPLE
          auto v = PyValue::make(PyValue::Kind::Tuple);
          v->items = pop_to_mark();
          push(v);
          break;
        }
        case 'l': {  // LIST
          auto v = PyValue::make(PyValue::Kind::List);
          v->items = pop_to_mark();
          push(v);
          break;
        }
        case 'd': {  // DICT
          auto v = PyValue::make(PyValue::Kind::Dict);
          auto items = pop_to_mark();
          if (items.size() % 2) fail("DICT with an odd number of items");
          for (size_t k = 0; k < items.size(); k += 2)
            v->entries.emplace_back(items[k], items[k + 1]);
          push(v);
          break;
        }
        case 's': {  // SETITEM
          PyRef value = pop(), key = pop();
          expect(top(), PyValue::Kind::Dict, "SETITEM")->entries.emplace_back(key, value);
          break;
        }
        case 'u': {  // SETITEMS
          auto items = pop_to_mark();
          if (items.size() % 2) fail("SETITEMS with an odd number of items");
          PyRef d = expect(top(), PyValue::Kind::Dict, "SETITEMS");
          for (size_t k = 0; k < items.size(); k += 2)
            d->entries.emplace_back(items[k], items[k + 1]);
          break;
        }
        case 'a': {  // APPEND
          PyRef value = pop();
          expect(top(), PyValue::Kind::List, "APPEND")->items.push_back(value);
          break;
        }
        case 'e': {  // APPENDS
          auto items = pop_to_mark();
          PyRef l = expect(top(), PyValue::Kind::List, "APPENDS");
          l->items.insert(l->items.end(), items.begin(), items.end());
          break;
        }
        case 'h':
          memo_get(uint_le(1));
          break;  // BINGET
        case 'j':
          memo_get(uint_le(4));
          break;  // LONG_BINGET
        case 'q':
          memo_[uint_le(1)] = top();
          break;  // BINPUT
        case 'r':
          memo_[uint_le(4)] = top();
          break;  // LONG_BINPUT
        case 0x94:
          memo_[memo_.size()] = top();
          break;     // MEMOIZE
        case 'c': {  // GLOBAL
          const std::string module = line(), name = line();
          push_global(module, name);
          break;
        }
        case 0x93: {  // STACK_GLOBAL
          PyRef name = pop(), module = pop();
          if (name->kind != PyValue::Kind::String || module->kind != PyValue::Kind::String)
            fail("STACK_GLOBAL needs two strings");
          push_global(module->s, name->s);
          break;
        }
        case 'R': {  // REDUCE
          PyRef args = pop(), callable = pop();
          if (callable->kind != PyValue::Kind::Global) fail("REDUCE of a non-global");
          expect(args, PyValue::Kind::Tuple, "REDUCE arguments");
          if (!hooks_.reduce) fail("REDUCE is not allowed here");
          PyRef r = hooks_.reduce(callable->s, args->items);
          if (!r) fail("cannot call " + callable->s);
          push(r);
          break;
        }
        case 'Q': {  // BINPERSID
          PyRef pid = pop();
          if (!hooks_.persistent_load) fail("persistent ids are not allowed here");
          push(hooks_.persistent_load(pid));
          break;
        }
        case 'b': {  // BUILD: state for dict subclasses (OrderedDict._metadata) is dropped
          pop();
          const PyValue::Kind k = top()->kind;
          if (k != PyValue::Kind::Dict && k != PyValue::Kind::Object)
            fail(std::string("BUILD on a ") + top()->kind_name());
          break;
        }
        case '0':
          pop();
          break;  // POP
        case '1':
          pop_to_mark();
          break;  // POP_MARK
        case '2':
          push(top());
          break;     // DUP
        case '.': {  // STOP
          PyRef r = pop();
          return r;
        }
        default: {
          char hex[8];
          std::snprintf(hex, sizeof hex, "0x%02x", op);
          fail(std::string("unsupported opcode ") + hex);
        }
      }
    }
  }

 private:
  const uint8_t* data_;
  size_t size_;
  size_t pos_ = 0, op_pos_ = 0;
  const std::string& source_;
  const PickleHooks& hooks_;
  std::vector<PyRef> stack_;
  std::vector<size_t> marks_;
  std::unordered_map<uint64_t, PyRef> memo_;

  [[noreturn]] void fail(const std::string& why) const {
    throw FileError(source_ + ": bad pickle at byte " + std::to_string(op_pos_) + ": " + why);
  }
  const uint8_t* bytes(uint64_t n) {
    if (n > size_ - pos_) fail("truncated (needs " + std::to_string(n) + " more bytes)");
    const uint8_t* p = data_ + pos_;
    pos_ += static_cast<size_t>(n);
    return p;
  }
  uint8_t u8() { return *bytes(1); }
  uint64_t uint_le(int n) {
    const uint8_t* p = bytes(static_cast<uint64_t>(n));
    uint64_t v = 0;
    for (int k = n - 1; k >= 0; --k) v = (v << 8) | p[k];
    return v;
  }
  std::string line() {
    const size_t start = pos_;
    while (pos_ < size_ && data_[pos_] != '\n') ++pos_;
    if (pos_ >= size_) fail("truncated GLOBAL");
    std::string s(reinterpret_cast<const char*>(data_ + start), pos_ - start);
    ++pos_;
    return s;
  }
  void push(PyRef v) { stack_.push_back(std::move(v)); }
  PyRef pop() {
    if (stack_.empty() || (!marks_.empty() && stack_.size() <= marks_.back()))
      fail("stack underflow");
    PyRef v = std::move(stack_.back());
    stack_.pop_back();
    return v;
  }
  const PyRef& top() {
    if (stack_.empty() || (!marks_.empty() && stack_.size() <= marks_.back()))
      fail("stack underflow");
    return stack_.back();
  }
  std::vector<PyRef> pop_to_mark() {
    if (marks_.empty()) fail("no MARK");
    const size_t m = marks_.back();
    marks_.pop_back();
    std::vector<PyRef> items(stack_.begin() + static_cast<std::ptrdiff_t>(m), stack_.end());
    stack_.resize(m);
    return items;
  }
  PyRef expect(const PyRef& v, PyValue::Kind k, const char* what) {
    if (v->kind != k) fail(std::string(what) + " on a " + v->kind_name());
    return v;
  }
  void push_string(PyValue::Kind k, uint64_t n) {
    const uint8_t* p = bytes(n);
    auto v = PyValue::make(k);
    v->s.assign(reinterpret_cast<const char*>(p), static_cast<size_t>(n));
    push(v);
  }
  void push_int(int64_t i) {
    auto v = PyValue::make(PyValue::Kind::Int);
    v->i = i;
    push(v);
  }
  void push_long(uint64_t n) {
    if (n > 8) fail("integer wider than 64 bits");
    const uint8_t* p = bytes(n);
    uint64_t u = 0;
    for (uint64_t k = n; k-- > 0;) u = (u << 8) | p[k];
    if (n > 0 && n < 8 && (p[n - 1] & 0x80)) u |= ~uint64_t{0} << (8 * n);  // sign-extend
    push_int(static_cast<int64_t>(u));
  }
  void push_bool(bool b) {
    auto v = PyValue::make(PyValue::Kind::Bool);
    v->b = b;
    push(v);
  }
  void push_tuple(size_t n) {
    auto v = PyValue::make(PyValue::Kind::Tuple);
    v->items.resize(n);
    for (size_t k = n; k-- > 0;) v->items[k] = pop();
    push(v);
  }
  void memo_get(uint64_t idx) {
    auto it = memo_.find(idx);
    if (it == memo_.end()) fail("memo entry " + std::to_string(idx) + " not set");
    push(it->second);
  }
  void push_global(const std::string& module, const std::string& name) {
    if (!hooks_.allow_global || !hooks_.allow_global(module, name))
      throw FileError(source_ + ": refused pickle global '" + module + "." + name +
                      "' (only tensors and plain containers are loaded; no code is run)");
    auto v = PyValue::make(PyValue::Kind::Global);
    v->s = module + "." + name;
    push(v);
  }
};

}  // namespace

PyRef unpickle(const std::byte* data, size_t size, const std::string& source,
               const PickleHooks& hooks) {
  return Machine(data, size, source, hooks).run();
}

}  // namespace diffuse
