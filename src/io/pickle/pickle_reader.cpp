#include "io/pickle/pickle_reader.h"

#include <cstdio>
#include <cstring>
#include <unordered_map>

#include "diffuse/error.hpp"

namespace diffuse {

std::string printable(const std::string& s) {
  constexpr size_t kMaxChars = 200;
  std::string out;
  for (const char ch : s) {
    if (out.size() >= kMaxChars) return out + "...";
    const auto c = static_cast<unsigned char>(ch);
    if (c >= 0x20 && c < 0x7f) {
      out.push_back(ch);
    } else {
      char hex[8];
      std::snprintf(hex, sizeof hex, "\\x%02x", c);
      out += hex;
    }
  }
  return out;
}

PyValue::~PyValue() {
  if (items.empty() && entries.empty()) return;
  // Children whose last owner is this value are emptied before they die, so each destructor
  // runs with nothing left to release: no recursion however deep the nesting.
  std::vector<PyRef> pending;
  auto take = [&pending](PyValue& v) {
    for (auto& x : v.items) pending.push_back(std::move(x));
    for (auto& [k, x] : v.entries) {
      pending.push_back(std::move(k));
      pending.push_back(std::move(x));
    }
    v.items.clear();
    v.entries.clear();
  };
  take(*this);
  while (!pending.empty()) {
    PyRef v = std::move(pending.back());
    pending.pop_back();
    if (v && v.use_count() == 1) take(*v);
  }
}

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

// The opcodes of pickle protocols 2-4 that torch.save and plain containers use.
namespace op {
constexpr uint8_t PROTO = 0x80, FRAME = 0x95, STOP = '.';
constexpr uint8_t EMPTY_DICT = '}', EMPTY_LIST = ']', EMPTY_TUPLE = ')', MARK = '(';
constexpr uint8_t BINUNICODE = 'X', SHORT_BINUNICODE = 0x8c, BINUNICODE8 = 0x8d;
constexpr uint8_t BINSTRING = 'T', SHORT_BINSTRING = 'U';
constexpr uint8_t BINBYTES = 'B', SHORT_BINBYTES = 'C', BINBYTES8 = 0x8e;
constexpr uint8_t BININT = 'J', BININT1 = 'K', BININT2 = 'M', LONG1 = 0x8a, LONG4 = 0x8b;
constexpr uint8_t BINFLOAT = 'G', NEWTRUE = 0x88, NEWFALSE = 0x89, NONE = 'N';
constexpr uint8_t TUPLE1 = 0x85, TUPLE2 = 0x86, TUPLE3 = 0x87, TUPLE = 't', LIST = 'l', DICT = 'd';
constexpr uint8_t SETITEM = 's', SETITEMS = 'u', APPEND = 'a', APPENDS = 'e';
constexpr uint8_t BINGET = 'h', LONG_BINGET = 'j', BINPUT = 'q', LONG_BINPUT = 'r', MEMOIZE = 0x94;
constexpr uint8_t GLOBAL = 'c', STACK_GLOBAL = 0x93, REDUCE = 'R', NEWOBJ = 0x81;
constexpr uint8_t BINPERSID = 'Q', BUILD = 'b', POP = '0', POP_MARK = '1', DUP = '2';
}  // namespace op

using Kind = PyValue::Kind;

bool is_container(const PyValue& v) {
  return v.kind == Kind::Tuple || v.kind == Kind::List || v.kind == Kind::Dict;
}

class Machine {
 public:
  Machine(const std::byte* data, size_t size, const std::string& source, const PickleHooks& hooks)
      : data_(reinterpret_cast<const uint8_t*>(data)),
        size_(size),
        source_(source),
        hooks_(hooks) {}
  Machine(const Machine&) = delete;
  Machine& operator=(const Machine&) = delete;
  // Whatever happened, containers let go of their children: a cycle a failed (or refused) pickle
  // built is broken here instead of leaking.
  ~Machine() {
    if (!succeeded_)
      for (const PyRef& c : containers_) {
        c->items.clear();
        c->entries.clear();
      }
  }

  PyRef run() {
    for (;;) {
      op_pos_ = pos_;
      if (++ops_ > kMaxPickleOps)
        fail("more than " + std::to_string(kMaxPickleOps) + " opcodes (refusing to build more)");
      const uint8_t code = u8();
      if (code == op::STOP) {
        PyRef r = pop();
        check_acyclic();
        succeeded_ = true;
        return r;
      }
      if (!step_data(code) && !step_container(code) && !step_call(code)) {
        char hex[8];
        std::snprintf(hex, sizeof hex, "0x%02x", code);
        fail(std::string("unsupported opcode ") + hex);
      }
    }
  }

 private:
  const uint8_t* data_;
  size_t size_;
  size_t pos_ = 0, op_pos_ = 0;
  uint64_t ops_ = 0;
  bool succeeded_ = false;
  const std::string& source_;
  const PickleHooks& hooks_;
  std::vector<PyRef> stack_;
  std::vector<size_t> marks_;
  std::unordered_map<uint64_t, PyRef> memo_;
  std::vector<PyRef> containers_;  // every container built, for the cycle check and cleanup

  // Scalars, strings, stack and memo opcodes; false when `code` is none of them.
  bool step_data(uint8_t code) {
    switch (code) {
      case op::PROTO:
        u8();
        return true;
      case op::FRAME:
        bytes(8);  // a length hint only
        return true;
      case op::BINUNICODE:
      case op::BINSTRING:
        push_string(Kind::String, uint_le(4));
        return true;
      case op::SHORT_BINUNICODE:
      case op::SHORT_BINSTRING:
        push_string(Kind::String, uint_le(1));
        return true;
      case op::BINUNICODE8:
        push_string(Kind::String, uint_le(8));
        return true;
      case op::BINBYTES:
        push_string(Kind::Bytes, uint_le(4));
        return true;
      case op::SHORT_BINBYTES:
        push_string(Kind::Bytes, uint_le(1));
        return true;
      case op::BINBYTES8:
        push_string(Kind::Bytes, uint_le(8));
        return true;
      case op::BININT:
        push_int(static_cast<int32_t>(uint_le(4)));
        return true;
      case op::BININT1:
        push_int(static_cast<int64_t>(uint_le(1)));
        return true;
      case op::BININT2:
        push_int(static_cast<int64_t>(uint_le(2)));
        return true;
      case op::LONG1:
        push_long(uint_le(1));
        return true;
      case op::LONG4:
        push_long(uint_le(4));
        return true;
      case op::BINFLOAT:
        push_float();
        return true;
      case op::NEWTRUE:
      case op::NEWFALSE:
        push_bool(code == op::NEWTRUE);
        return true;
      case op::NONE:
        push(PyValue::make(Kind::None));
        return true;
      default:
        return step_stack(code);
    }
  }

  bool step_stack(uint8_t code) {
    switch (code) {
      case op::MARK:
        marks_.push_back(stack_.size());
        return true;
      case op::BINGET:
        memo_get(uint_le(1));
        return true;
      case op::LONG_BINGET:
        memo_get(uint_le(4));
        return true;
      case op::BINPUT:
        memo_[uint_le(1)] = top();
        return true;
      case op::LONG_BINPUT:
        memo_[uint_le(4)] = top();
        return true;
      case op::MEMOIZE:
        memo_[memo_.size()] = top();
        return true;
      case op::POP:
        pop();
        return true;
      case op::POP_MARK:
        pop_to_mark();
        return true;
      case op::DUP:
        push(top());
        return true;
      default:
        return false;
    }
  }

  // Tuples, lists and dicts.
  bool step_container(uint8_t code) {
    switch (code) {
      case op::EMPTY_DICT:
        push(container(Kind::Dict));
        return true;
      case op::EMPTY_LIST:
        push(container(Kind::List));
        return true;
      case op::EMPTY_TUPLE:
        push(container(Kind::Tuple));
        return true;
      case op::TUPLE1:
      case op::TUPLE2:
      case op::TUPLE3:
        push_tuple(static_cast<size_t>(code - op::TUPLE1) + 1);
        return true;
      case op::TUPLE:
      case op::LIST: {
        PyRef v = container(code == op::TUPLE ? Kind::Tuple : Kind::List);
        add_items(*v, pop_to_mark());
        push(std::move(v));
        return true;
      }
      case op::DICT: {
        PyRef v = container(Kind::Dict);
        add_entries(*v, pop_to_mark(), "DICT");
        push(std::move(v));
        return true;
      }
      case op::SETITEM: {
        PyRef value = pop(), key = pop();
        add_entries(*expect(top(), Kind::Dict, "SETITEM"), {key, value}, "SETITEM");
        return true;
      }
      case op::SETITEMS: {
        auto items = pop_to_mark();
        add_entries(*expect(top(), Kind::Dict, "SETITEMS"), std::move(items), "SETITEMS");
        return true;
      }
      case op::APPEND: {
        PyRef value = pop();
        add_items(*expect(top(), Kind::List, "APPEND"), {value});
        return true;
      }
      case op::APPENDS: {
        auto items = pop_to_mark();
        add_items(*expect(top(), Kind::List, "APPENDS"), std::move(items));
        return true;
      }
      default:
        return false;
    }
  }

  // Globals and what the hooks may do with them.
  bool step_call(uint8_t code) {
    switch (code) {
      case op::GLOBAL: {
        const std::string module = line(), name = line();
        push_global(module, name);
        return true;
      }
      case op::STACK_GLOBAL: {
        PyRef name = pop(), module = pop();
        if (name->kind != Kind::String || module->kind != Kind::String)
          fail("STACK_GLOBAL needs two strings");
        push_global(module->s, name->s);
        return true;
      }
      case op::REDUCE:
      case op::NEWOBJ: {
        PyRef args = pop(), callable = pop();
        const char* what = code == op::REDUCE ? "REDUCE" : "NEWOBJ";
        if (callable->kind != Kind::Global) fail(std::string(what) + " of a non-global");
        expect(args, Kind::Tuple, what);
        if (!hooks_.reduce) fail(std::string(what) + " is not allowed here");
        PyRef r = hooks_.reduce(callable->s, args->items);
        if (!r) fail("cannot call " + printable(callable->s));
        if (is_container(*r)) containers_.push_back(r);  // e.g. OrderedDict(): may join a cycle
        push(std::move(r));
        return true;
      }
      case op::BINPERSID: {
        PyRef pid = pop();
        if (!hooks_.persistent_load) fail("persistent ids are not allowed here");
        PyRef r = hooks_.persistent_load(pid);
        if (is_container(*r)) containers_.push_back(r);
        push(std::move(r));
        return true;
      }
      case op::BUILD: {  // state for dict subclasses (OrderedDict._metadata) and objects: dropped
        pop();
        const Kind k = top()->kind;
        if (k != Kind::Dict && k != Kind::Object)
          fail(std::string("BUILD on a ") + top()->kind_name());
        return true;
      }
      default:
        return false;
    }
  }

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
    std::vector<PyRef> items(
        std::make_move_iterator(stack_.begin() + static_cast<std::ptrdiff_t>(m)),
        std::make_move_iterator(stack_.end()));
    stack_.resize(m);
    return items;
  }
  const PyRef& expect(const PyRef& v, Kind k, const char* what) {
    if (v->kind != k) fail(std::string(what) + " on a " + v->kind_name());
    return v;
  }
  PyRef container(Kind k) {
    PyRef v = PyValue::make(k);
    containers_.push_back(v);
    return v;
  }
  // Nesting: a container is one deeper than its deepest child. The depth stored is a lower bound
  // (a container already inside others does not update them), which is what a pickle built
  // bottom-up, as pickle.dump writes it, reaches; anything deeper is refused.
  void deepen(PyValue& parent, const PyValue& child) {
    if (child.depth + 1 > parent.depth) parent.depth = child.depth + 1;
    if (parent.depth > kMaxPickleDepth)
      fail("pickle nests deeper than " + std::to_string(kMaxPickleDepth));
  }
  void add_items(PyValue& c, std::vector<PyRef> items) {
    for (const PyRef& x : items) deepen(c, *x);
    c.items.insert(c.items.end(), std::make_move_iterator(items.begin()),
                   std::make_move_iterator(items.end()));
  }
  void add_entries(PyValue& d, std::vector<PyRef> items, const char* what) {
    if (items.size() % 2) fail(std::string(what) + " with an odd number of items");
    for (size_t k = 0; k < items.size(); k += 2) {
      deepen(d, *items[k]);
      deepen(d, *items[k + 1]);
      d.entries.emplace_back(std::move(items[k]), std::move(items[k + 1]));
    }
  }
  void push_string(Kind k, uint64_t n) {
    const uint8_t* p = bytes(n);
    auto v = PyValue::make(k);
    v->s.assign(reinterpret_cast<const char*>(p), static_cast<size_t>(n));
    push(std::move(v));
  }
  void push_int(int64_t i) {
    auto v = PyValue::make(Kind::Int);
    v->i = i;
    push(std::move(v));
  }
  void push_long(uint64_t n) {
    if (n > 8) fail("integer wider than 64 bits");
    const uint8_t* p = bytes(n);
    uint64_t u = 0;
    for (uint64_t k = n; k-- > 0;) u = (u << 8) | p[k];
    if (n > 0 && n < 8 && (p[n - 1] & 0x80)) u |= ~uint64_t{0} << (8 * n);  // sign-extend
    push_int(static_cast<int64_t>(u));
  }
  void push_float() {  // big-endian IEEE double
    const uint8_t* p = bytes(8);
    uint64_t u = 0;
    for (int k = 0; k < 8; ++k) u = (u << 8) | p[k];
    auto v = PyValue::make(Kind::Float);
    std::memcpy(&v->f, &u, 8);
    push(std::move(v));
  }
  void push_bool(bool b) {
    auto v = PyValue::make(Kind::Bool);
    v->b = b;
    push(std::move(v));
  }
  void push_tuple(size_t n) {
    PyRef v = container(Kind::Tuple);
    std::vector<PyRef> items(n);
    for (size_t k = n; k-- > 0;) items[k] = pop();
    add_items(*v, std::move(items));
    push(std::move(v));
  }
  void memo_get(uint64_t idx) {
    auto it = memo_.find(idx);
    if (it == memo_.end()) fail("memo entry " + std::to_string(idx) + " not set");
    push(it->second);
  }
  void push_global(const std::string& module, const std::string& name) {
    if (!hooks_.allow_global || !hooks_.allow_global(module, name))
      throw FileError(source_ + ": refused pickle global '" + printable(module + "." + name) +
                      "' (only tensors and plain containers are loaded; no code is run)");
    auto v = PyValue::make(Kind::Global);
    v->s = module + "." + name;
    push(std::move(v));
  }

  // A reference cycle (a list appended to itself through the memo) is refused: nothing torch
  // writes has one, and shared_ptr values would never free it. Iterative three-colour search.
  void check_acyclic() {
    enum Colour : uint8_t { kOpen = 1, kDone = 2 };
    std::unordered_map<const PyValue*, uint8_t> colour;
    std::vector<std::pair<const PyValue*, size_t>> path;  // node, next child index
    auto child = [](const PyValue& v, size_t k) -> const PyValue* {
      if (k < v.items.size()) return v.items[k].get();
      k -= v.items.size();
      if (k / 2 < v.entries.size())
        return (k % 2 ? v.entries[k / 2].second : v.entries[k / 2].first).get();
      return nullptr;
    };
    auto n_children = [](const PyValue& v) { return v.items.size() + 2 * v.entries.size(); };
    for (const PyRef& root : containers_) {
      if (colour.count(root.get())) continue;
      colour[root.get()] = kOpen;
      path.emplace_back(root.get(), 0);
      while (!path.empty()) {
        auto& [node, next] = path.back();
        if (next == n_children(*node)) {
          colour[node] = kDone;
          path.pop_back();
          continue;
        }
        const PyValue* c = child(*node, next++);
        if (!is_container(*c)) continue;
        auto [it, fresh] = colour.emplace(c, kOpen);
        if (fresh)
          path.emplace_back(c, 0);
        else if (it->second == kOpen)
          fail("pickle holds a reference cycle (not supported)");
      }
    }
  }
};

}  // namespace

PyRef unpickle(const std::byte* data, size_t size, const std::string& source,
               const PickleHooks& hooks) {
  return Machine(data, size, source, hooks).run();
}

}  // namespace diffuse
