#include "tokenizer/bpe.h"

#include <algorithm>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <queue>

#include "core/mapped_file.h"
#include "diffuse/error.hpp"
#include "tokenizer/byte_level.h"

namespace diffuse {

namespace {

// nlohmann's messages are one line already, but a caller's "error: <what>" must stay one line
// whatever the input held.
std::string one_line(std::string s) {
  std::replace(s.begin(), s.end(), '\n', ' ');
  std::replace(s.begin(), s.end(), '\r', ' ');
  return s;
}

// Accepts exactly one flat object whose values are non-negative integers.
template <typename Map>
class VocabReader : public nlohmann::json_sax<nlohmann::json> {
 public:
  explicit VocabReader(Map& map) : map_(map) { map_.reserve(65536); }

  std::string error;
  int64_t max_id = -1;

  bool start_object(std::size_t) override {
    if (++depth_ == 1) return true;
    return fail("token '" + key_ + "' has no valid id (expected a non-negative integer)");
  }
  bool end_object() override {
    --depth_;
    return true;
  }
  bool key(string_t& k) override {
    key_ = std::move(k);
    return true;
  }
  bool number_integer(number_integer_t v) override { return id(v); }
  bool number_unsigned(number_unsigned_t v) override {
    return id(v > uint64_t(INT64_MAX) ? -1 : int64_t(v));
  }
  bool null() override { return not_an_id(); }
  bool boolean(bool) override { return not_an_id(); }
  bool number_float(number_float_t, const string_t&) override { return not_an_id(); }
  bool string(string_t&) override { return not_an_id(); }
  bool binary(binary_t&) override { return not_an_id(); }
  bool start_array(std::size_t) override { return not_an_id(); }
  bool end_array() override { return true; }
  bool parse_error(std::size_t, const std::string&, const nlohmann::json::exception& e) override {
    return fail(std::string("invalid JSON: ") + e.what());
  }

 private:
  bool fail(std::string why) {
    if (error.empty()) error = std::move(why);
    return false;
  }
  bool not_an_id() {
    if (depth_ == 0) return fail("expected a JSON object {token: id}");
    return fail("token '" + key_ + "' has no valid id (expected a non-negative integer)");
  }
  bool id(int64_t v) {
    if (depth_ != 1 || v < 0 || v > INT32_MAX) return not_an_id();
    map_.insert_or_assign(key_, static_cast<int32_t>(v));
    max_id = std::max(max_id, v);
    return true;
  }

  Map& map_;
  std::string key_;
  int depth_ = 0;
};

std::string read_required(const std::string& path) {
  if (!std::filesystem::is_regular_file(path)) throw FileError(path + ": file not found");
  return read_text_file(path);
}

}  // namespace

BpeModel BpeModel::load(const std::string& vocab_path, const std::string& merges_path) {
  BpeModel m;

  // vocab.json: {token: id}. Read with a SAX handler straight into the map: building the DOM
  // first would double the load time.
  {
    const std::string text = read_required(vocab_path);
    VocabReader<decltype(m.vocab_)> reader(m.vocab_);
    if (!nlohmann::json::sax_parse(text, &reader) || m.vocab_.empty())
      throw FileError(vocab_path + ": " +
                      one_line(reader.error.empty() ? "expected a non-empty JSON object {token: id}"
                                                    : reader.error));
    // A vocabulary's ids are dense in practice; refuse absurd gaps rather than allocating them.
    if (reader.max_id >= static_cast<int64_t>(m.vocab_.size()) * 4 + 1024)
      throw FileError(vocab_path + ": ids are not dense (largest " + std::to_string(reader.max_id) +
                      " for " + std::to_string(m.vocab_.size()) + " tokens)");
    m.id_to_token_.resize(static_cast<size_t>(reader.max_id + 1));
    for (const auto& [token, id] : m.vocab_) m.id_to_token_[id] = token;
  }

  // Every byte must be spellable both inside and at the end of a word, or some input would have
  // no tokens at all.
  for (int b = 0; b < 256; ++b) {
    const std::string t = byte_level::byte_token(static_cast<uint8_t>(b));
    const auto inner = m.vocab_.find(t);
    const auto last = m.vocab_.find(t + std::string(kEndOfWord));
    if (inner == m.vocab_.end() || last == m.vocab_.end())
      throw FileError(vocab_path + ": not a byte-level BPE vocabulary (no token for byte " +
                      std::to_string(b) + ")");
    m.byte_id_[b] = inner->second;
    m.byte_eow_id_[b] = last->second;
  }

  // merges.txt: rank = order of appearance. Only a leading "#version" line is a comment: real
  // merges may start with '#' ("# #</w>").
  {
    const std::string text = read_required(merges_path);
    m.merges_.reserve(text.size() / 8);
    size_t pos = 0, line_no = 0;
    int32_t rank = 0;
    std::string merged;
    while (pos < text.size()) {
      size_t end = text.find('\n', pos);
      if (end == std::string::npos) end = text.size();
      std::string_view line(text.data() + pos, end - pos);
      pos = end + 1;
      ++line_no;
      if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
      if (line.empty() || (line_no == 1 && line.starts_with("#version"))) continue;
      auto fail = [&](const std::string& why) {
        return FileError(merges_path + ":" + std::to_string(line_no) + ": " + why);
      };
      const size_t space = line.find(' ');
      if (space == std::string_view::npos || space == 0 || space + 1 == line.size() ||
          line.find(' ', space + 1) != std::string_view::npos)
        throw fail("expected two tokens separated by one space");
      const std::string_view left = line.substr(0, space), right = line.substr(space + 1);
      merged.assign(left).append(right);
      const auto l = m.vocab_.find(left), r = m.vocab_.find(right), t = m.vocab_.find(merged);
      if (l == m.vocab_.end() || r == m.vocab_.end() || t == m.vocab_.end())
        throw fail("merge '" + std::string(line) + "' uses a token missing from vocab.json");
      // A repeated pair keeps its last rank, as a map built from the list in order would.
      m.merges_[pair_key(l->second, r->second)] = Merge{rank++, t->second};
    }
    if (m.merges_.empty()) throw FileError(merges_path + ": no merges");
  }
  return m;
}

const BpeModel::Merge* BpeModel::find_merge(int32_t left, int32_t right) const {
  const auto it = merges_.find(pair_key(left, right));
  return it == merges_.end() ? nullptr : &it->second;
}

void BpeModel::encode_word(std::string_view word, std::vector<int64_t>& out) const {
  const size_t n = word.size();
  if (n == 0) return;
  if (n == 1) {
    out.push_back(byte_eow_id_[static_cast<uint8_t>(word[0])]);
    return;
  }
  // Symbols form a doubly linked list over the initial byte positions; a merge folds the right
  // symbol into the left one.
  struct Symbol {
    int32_t id;
    int32_t prev, next;  // -1 at the ends
    bool alive;
  };
  std::vector<Symbol> sym(n);
  for (size_t i = 0; i < n; ++i) {
    const auto b = static_cast<uint8_t>(word[i]);
    sym[i] = Symbol{i + 1 == n ? byte_eow_id_[b] : byte_id_[b], static_cast<int32_t>(i) - 1,
                    i + 1 == n ? -1 : static_cast<int32_t>(i) + 1, true};
  }

  // Candidate merges ordered by (rank, position): lowest rank first, leftmost on ties. Entries
  // go stale when a neighbour merges; they are checked when popped instead of being removed.
  struct Candidate {
    int32_t rank, pos, id;
    bool operator>(const Candidate& o) const {
      return rank != o.rank ? rank > o.rank : pos > o.pos;
    }
  };
  std::priority_queue<Candidate, std::vector<Candidate>, std::greater<Candidate>> queue;
  auto push = [&](int32_t pos) {
    const int32_t next = sym[pos].next;
    if (next < 0) return;
    if (const Merge* mg = find_merge(sym[pos].id, sym[next].id))
      queue.push(Candidate{mg->rank, pos, mg->id});
  };
  for (size_t i = 0; i + 1 < n; ++i) push(static_cast<int32_t>(i));

  while (!queue.empty()) {
    const Candidate top = queue.top();
    queue.pop();
    Symbol& left = sym[top.pos];
    if (!left.alive || left.next < 0) continue;
    // Still valid only if the pair now at this position produces the same token (the reference
    // implementation applies the same test).
    const Merge* mg = find_merge(left.id, sym[left.next].id);
    if (!mg || mg->id != top.id) continue;
    Symbol& right = sym[left.next];
    left.id = top.id;
    right.alive = false;
    left.next = right.next;
    if (right.next >= 0) sym[right.next].prev = top.pos;
    if (left.prev >= 0) push(left.prev);
    push(top.pos);
  }
  for (int32_t i = 0; i >= 0; i = sym[i].next) out.push_back(sym[i].id);
}

std::optional<int64_t> BpeModel::token_id(std::string_view token) const {
  const auto it = vocab_.find(token);
  if (it == vocab_.end()) return std::nullopt;
  return it->second;
}

const std::string& BpeModel::token(int64_t id) const {
  static const std::string empty;
  if (id < 0 || id >= vocab_size()) return empty;
  return id_to_token_[static_cast<size_t>(id)];
}

}  // namespace diffuse
