// Builders for hand-made torch checkpoints: a minimal ZIP writer and pickle opcode helpers, so the
// tests can craft exactly the bytes a (possibly malicious or broken) checkpoint would hold.
#pragma once

#include <zlib.h>

#include <cstdint>
#include <fstream>
#include <string>
#include <utility>
#include <vector>

namespace diffuse::test {

inline void put_le(std::string& s, uint64_t v, int n) {
  for (int i = 0; i < n; ++i) s.push_back(static_cast<char>((v >> (8 * i)) & 0xFF));
}

inline std::string raw_deflate(const std::string& in) {
  z_stream zs{};
  deflateInit2(&zs, Z_BEST_COMPRESSION, Z_DEFLATED, -MAX_WBITS, 8, Z_DEFAULT_STRATEGY);
  std::string out(deflateBound(&zs, static_cast<uLong>(in.size())), '\0');
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  zs.avail_in = static_cast<uInt>(in.size());
  zs.next_out = reinterpret_cast<Bytef*>(out.data());
  zs.avail_out = static_cast<uInt>(out.size());
  deflate(&zs, Z_FINISH);
  out.resize(zs.total_out);
  deflateEnd(&zs);
  return out;
}

/// The bytes of a ZIP with the given (name, bytes) entries, stored or deflated.
inline std::string zip_bytes(const std::vector<std::pair<std::string, std::string>>& entries,
                             bool deflate = false) {
  std::string out, central;
  for (const auto& [name, data] : entries) {
    const std::string body = deflate ? raw_deflate(data) : data;
    const uint32_t crc = static_cast<uint32_t>(
        crc32(0, reinterpret_cast<const Bytef*>(data.data()), static_cast<uInt>(data.size())));
    const uint64_t offset = out.size();
    put_le(out, 0x04034b50, 4);
    put_le(out, 20, 2);
    put_le(out, 0, 2);
    put_le(out, deflate ? 8 : 0, 2);
    put_le(out, 0, 4);  // time, date
    put_le(out, crc, 4);
    put_le(out, body.size(), 4);
    put_le(out, data.size(), 4);
    put_le(out, name.size(), 2);
    put_le(out, 0, 2);
    out += name + body;
    put_le(central, 0x02014b50, 4);
    put_le(central, 20, 2);
    put_le(central, 20, 2);
    put_le(central, 0, 2);
    put_le(central, deflate ? 8 : 0, 2);
    put_le(central, 0, 4);
    put_le(central, crc, 4);
    put_le(central, body.size(), 4);
    put_le(central, data.size(), 4);
    put_le(central, name.size(), 2);
    put_le(central, 0, 2);
    put_le(central, 0, 2);
    put_le(central, 0, 2);
    put_le(central, 0, 2);
    put_le(central, 0, 4);
    put_le(central, offset, 4);
    central += name;
  }
  const uint64_t cd_offset = out.size();
  out += central;
  put_le(out, 0x06054b50, 4);
  put_le(out, 0, 4);
  put_le(out, entries.size(), 2);
  put_le(out, entries.size(), 2);
  put_le(out, central.size(), 4);
  put_le(out, cd_offset, 4);
  put_le(out, 0, 2);
  return out;
}

inline void write_file(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary)
      .write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

/// Writes a ZIP with the given (name, bytes) entries, stored or deflated.
inline void write_zip(const std::string& path,
                      const std::vector<std::pair<std::string, std::string>>& entries,
                      bool deflate = false) {
  write_file(path, zip_bytes(entries, deflate));
}

// Central directory fields (offsets within an entry's central header).
constexpr size_t kCentralCompressedSize = 20, kCentralSize = 24, kCentralLocalOffset = 42;

/// Overwrites the 4-byte little-endian field at `field` of `name`'s central directory entry
/// (e.g. to make it lie about its sizes).
inline void patch_central(std::string& zip, const std::string& name, size_t field, uint32_t value) {
  for (size_t p = zip.find("PK\x01\x02"); p != std::string::npos;
       p = zip.find("PK\x01\x02", p + 4)) {
    if (zip.compare(p + 46, name.size(), name) != 0) continue;
    std::string v;
    put_le(v, value, 4);
    zip.replace(p + field, 4, v);
    return;
  }
}

// Pickle opcodes, protocol 2.
struct PickleWriter {
  std::string s = std::string("\x80\x02", 2);
  PickleWriter& op(char c) {
    s.push_back(c);
    return *this;
  }
  PickleWriter& str(const std::string& v) {  // BINUNICODE
    s.push_back('X');
    put_le(s, v.size(), 4);
    s += v;
    return *this;
  }
  PickleWriter& integer(int v) {  // BININT
    s.push_back('J');
    put_le(s, static_cast<uint32_t>(v), 4);
    return *this;
  }
  PickleWriter& put(uint32_t memo) {  // LONG_BINPUT
    s.push_back('r');
    put_le(s, memo, 4);
    return *this;
  }
  PickleWriter& get(uint32_t memo) {  // LONG_BINGET
    s.push_back('j');
    put_le(s, memo, 4);
    return *this;
  }
  PickleWriter& global(const std::string& module, const std::string& name) {
    s += "c" + module + "\n" + name + "\n";
    return *this;
  }
  PickleWriter& int_tuple(const std::vector<int>& v) {
    op('(');
    for (int x : v) integer(x);
    return op('t');
  }
  /// _rebuild_tensor_v2(storage `key` of `numel` floats, offset, size, stride, False,
  /// OrderedDict())
  PickleWriter& float_tensor(const std::string& key, int numel, int offset,
                             const std::vector<int>& size, const std::vector<int>& stride) {
    global("torch._utils", "_rebuild_tensor_v2").op('(');
    op('(').str("storage").global("torch", "FloatStorage").str(key).str("cpu").integer(numel);
    op('t').op('Q');
    integer(offset).int_tuple(size).int_tuple(stride).op('\x89');
    global("collections", "OrderedDict").op(')').op('R');
    return op('t').op('R');
  }
  std::string done() { return s + "."; }
};

inline std::string floats_bytes(const std::vector<float>& v) {
  return std::string(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(float));
}

}  // namespace diffuse::test
