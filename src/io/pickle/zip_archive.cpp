#include "io/pickle/zip_archive.h"

#include <zlib.h>

#include <cstring>
#include <fstream>
#include <limits>

#include "diffuse/error.hpp"
#include "io/pickle/pickle_reader.h"

namespace diffuse {

namespace {

constexpr uint32_t kLocalHeaderSig = 0x04034b50;
constexpr uint32_t kCentralSig = 0x02014b50;
constexpr uint32_t kEndSig = 0x06054b50;
constexpr uint32_t kEnd64LocatorSig = 0x07064b50;
constexpr uint32_t kEnd64Sig = 0x06064b50;

// Little-endian reads with bounds checks against the whole file.
class Reader {
 public:
  Reader(const std::byte* data, size_t size, const std::string& path)
      : data_(data), size_(size), path_(path) {}
  void need(uint64_t offset, uint64_t n, const char* what) const {
    if (offset > size_ || n > size_ - offset)
      throw FileError(path_ + ": corrupt or truncated zip (" + what + " at byte " +
                      std::to_string(offset) + " runs past the end of the file)");
  }
  uint64_t le(uint64_t offset, int n, const char* what) const {
    need(offset, static_cast<uint64_t>(n), what);
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; --i)
      v = (v << 8) | static_cast<uint8_t>(data_[offset + static_cast<uint64_t>(i)]);
    return v;
  }
  uint16_t u16(uint64_t o, const char* w) const { return static_cast<uint16_t>(le(o, 2, w)); }
  uint32_t u32(uint64_t o, const char* w) const { return static_cast<uint32_t>(le(o, 4, w)); }
  uint64_t u64(uint64_t o, const char* w) const { return le(o, 8, w); }
  size_t size() const { return size_; }
  const std::byte* data() const { return data_; }

 private:
  const std::byte* data_;
  size_t size_;
  const std::string& path_;
};

// A member name that would leave the folder it were extracted into: absolute ("/x", "\\x",
// "C:x"), or with a ".." component. torch.save never writes one; such an archive is refused.
bool unsafe_member_name(const std::string& name) {
  if (name.empty() || name[0] == '/' || name[0] == '\\') return true;
  if (name.size() >= 2 && name[1] == ':') return true;
  if (name.find('\0') != std::string::npos) return true;
  size_t start = 0;
  for (;;) {
    const size_t end = name.find_first_of("/\\", start);
    const std::string part = name.substr(start, end == std::string::npos ? end : end - start);
    if (part == "..") return true;
    if (end == std::string::npos) return false;
    start = end + 1;
  }
}

}  // namespace

bool ZipArchive::looks_like_zip(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  char magic[4] = {};
  if (!in.read(magic, 4)) return false;
  return magic[0] == 'P' && magic[1] == 'K' && magic[2] == 3 && magic[3] == 4;
}

ZipArchive ZipArchive::open(const std::string& path) {
  ZipArchive z;
  z.file_ = MappedFile::open(path);
  const Reader r(z.file_.data(), z.file_.size(), path);
  auto fail = [&](const std::string& why) { return FileError(path + ": corrupt zip: " + why); };

  // End of central directory: the last 22+ bytes (a comment of up to 65535 bytes may follow).
  if (r.size() < 22)
    throw fail("file too small for a zip (" + std::to_string(r.size()) + " bytes)");
  uint64_t eocd = std::numeric_limits<uint64_t>::max();
  const uint64_t lowest = r.size() > 22 + 65535 ? r.size() - 22 - 65535 : 0;
  for (uint64_t o = r.size() - 22;; --o) {
    if (r.u32(o, "end record") == kEndSig) {
      eocd = o;
      break;
    }
    if (o == lowest) break;
  }
  if (eocd == std::numeric_limits<uint64_t>::max())
    throw fail("no end-of-central-directory record (truncated?)");
  if (r.u16(eocd + 4, "end record") != 0 || r.u16(eocd + 6, "end record") != 0)
    throw fail("multi-disk archives are not supported");
  uint64_t count = r.u16(eocd + 10, "end record");
  uint64_t cd_size = r.u32(eocd + 12, "end record");
  uint64_t cd_offset = r.u32(eocd + 16, "end record");
  if (count == 0xFFFF || cd_size == 0xFFFFFFFF || cd_offset == 0xFFFFFFFF) {
    if (eocd < 20 || r.u32(eocd - 20, "zip64 locator") != kEnd64LocatorSig)
      throw fail("zip64 end-of-central-directory locator missing");
    const uint64_t e64 = r.u64(eocd - 20 + 8, "zip64 locator");
    if (r.u32(e64, "zip64 end record") != kEnd64Sig) throw fail("bad zip64 end record");
    count = r.u64(e64 + 32, "zip64 end record");
    cd_size = r.u64(e64 + 40, "zip64 end record");
    cd_offset = r.u64(e64 + 48, "zip64 end record");
  }
  r.need(cd_offset, cd_size, "central directory");
  if (count > cd_size / 46) throw fail("entry count " + std::to_string(count) + " too large");

  uint64_t p = cd_offset;
  z.entries_.reserve(static_cast<size_t>(count));
  for (uint64_t i = 0; i < count; ++i) {
    if (r.u32(p, "central directory") != kCentralSig)
      throw fail("bad central directory entry " + std::to_string(i));
    Entry e;
    const uint16_t flags = r.u16(p + 8, "central directory");
    e.method = r.u16(p + 10, "central directory");
    e.compressed_size = r.u32(p + 20, "central directory");
    e.size = r.u32(p + 24, "central directory");
    const uint16_t name_len = r.u16(p + 28, "central directory");
    const uint16_t extra_len = r.u16(p + 30, "central directory");
    const uint16_t comment_len = r.u16(p + 32, "central directory");
    uint64_t local = r.u32(p + 42, "central directory");
    r.need(p + 46, uint64_t{name_len} + extra_len + comment_len, "central directory entry");
    e.name.assign(reinterpret_cast<const char*>(r.data() + p + 46), name_len);
    if (unsafe_member_name(e.name))
      throw fail("entry '" + printable(e.name) + "' has an unsafe path (absolute or with '..')");
    if (flags & 1) throw fail("entry '" + printable(e.name) + "' is encrypted");
    // ZIP64 extra field: the 64-bit values of the fields saturated above, in this order.
    for (uint64_t x = p + 46 + name_len; x + 4 <= p + 46 + name_len + extra_len;) {
      const uint16_t id = r.u16(x, "extra field"), len = r.u16(x + 2, "extra field");
      if (x + 4 + len > p + 46 + name_len + extra_len) throw fail("bad extra field");
      if (id == 0x0001) {
        uint64_t q = x + 4;
        auto take = [&](uint64_t& field) {
          if (q + 8 > x + 4 + len)
            throw fail("short zip64 extra field for '" + printable(e.name) + "'");
          field = r.u64(q, "zip64 extra field");
          q += 8;
        };
        if (e.size == 0xFFFFFFFF) take(e.size);
        if (e.compressed_size == 0xFFFFFFFF) take(e.compressed_size);
        if (local == 0xFFFFFFFF) take(local);
      }
      x += 4 + uint64_t{len};
    }
    if (e.method != 0 && e.method != 8)
      throw fail("entry '" + printable(e.name) + "' uses compression method " +
                 std::to_string(e.method) + " (only stored and deflate are supported)");
    if (e.method == 0 && e.size != e.compressed_size)
      throw fail("stored entry '" + printable(e.name) + "' has different sizes");
    if (r.u32(local, "local header") != kLocalHeaderSig)
      throw fail("bad local header for '" + printable(e.name) + "'");
    e.data_offset =
        local + 30 + r.u16(local + 26, "local header") + r.u16(local + 28, "local header");
    r.need(e.data_offset, e.compressed_size, ("data of '" + printable(e.name) + "'").c_str());
    z.index_.emplace(e.name, z.entries_.size());
    z.entries_.push_back(std::move(e));
    p += 46 + uint64_t{name_len} + extra_len + comment_len;
  }
  return z;
}

const ZipArchive::Entry* ZipArchive::find(const std::string& name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : &entries_[it->second];
}

ZipArchive::Bytes ZipArchive::read(const Entry& e) const {
  const std::byte* src = file_.data() + e.data_offset;
  if (e.method == 0) return {file_.buffer(), src, static_cast<size_t>(e.size)};
  // Deflate can expand at most ~1032:1; a larger claim is corrupt (and would exhaust memory).
  if (e.size / 1100 > e.compressed_size + 1)
    throw FileError(path() + ": corrupt zip: entry '" + printable(e.name) +
                    "' claims an impossible size");
  Buffer out = allocate_buffer(static_cast<size_t>(e.size) + 1);
  z_stream zs{};
  if (inflateInit2(&zs, -MAX_WBITS) != Z_OK)
    throw FileError(path() + ": cannot inflate '" + printable(e.name) + "'");
  uint64_t in_left = e.compressed_size, out_done = 0;
  const Bytef* in = reinterpret_cast<const Bytef*>(src);
  int rc = Z_OK;
  while (rc == Z_OK) {
    const uInt in_chunk = static_cast<uInt>(std::min<uint64_t>(in_left, 1u << 30));
    const uInt out_chunk = static_cast<uInt>(std::min<uint64_t>(e.size + 1 - out_done, 1u << 30));
    zs.next_in = const_cast<Bytef*>(in);
    zs.avail_in = in_chunk;
    zs.next_out = reinterpret_cast<Bytef*>(out.get() + out_done);
    zs.avail_out = out_chunk;
    rc = inflate(&zs, Z_NO_FLUSH);
    in += in_chunk - zs.avail_in;
    in_left -= in_chunk - zs.avail_in;
    out_done += out_chunk - zs.avail_out;
    if (rc == Z_OK && zs.avail_in == in_chunk && zs.avail_out == out_chunk) break;  // no progress
  }
  inflateEnd(&zs);
  if (rc != Z_STREAM_END || out_done != e.size)
    throw FileError(path() + ": corrupt zip: entry '" + printable(e.name) +
                    "' does not inflate to " + std::to_string(e.size) + " bytes");
  return {out, out.get(), static_cast<size_t>(e.size)};
}

}  // namespace diffuse
