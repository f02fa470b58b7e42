#include "io/pickle/torch_checkpoint.h"

#include <cstring>
#include <memory>

#include "core/mapped_file.h"
#include "diffuse/error.hpp"
#include "io/pickle/pickle_reader.h"
#include "io/pickle/zip_archive.h"

namespace diffuse {

namespace {

struct StorageClass {
  const char* name;
  DType dtype;
};
constexpr StorageClass kStorages[] = {
    {"FloatStorage", DType::F32},  {"HalfStorage", DType::F16}, {"BFloat16Storage", DType::BF16},
    {"DoubleStorage", DType::F64}, {"LongStorage", DType::I64}, {"IntStorage", DType::I32},
    {"ShortStorage", DType::I16},  {"CharStorage", DType::I8},  {"ByteStorage", DType::U8},
    {"BoolStorage", DType::Bool},
};

bool storage_dtype(const std::string& global, DType* out) {
  for (const auto& s : kStorages)
    if (global == std::string("torch.") + s.name) {
      *out = s.dtype;
      return true;
    }
  return false;
}

// What BINPERSID returns: the bytes of one storage (shared by every tensor viewing it).
struct Storage {
  ZipArchive::Bytes bytes;
  DType dtype = DType::F32;
};

class CheckpointReader {
 public:
  explicit CheckpointReader(const std::string& path) : path_(path), zip_(ZipArchive::open(path)) {}

  std::map<std::string, Tensor> read() {
    const ZipArchive::Entry* pkl = nullptr;
    for (const auto& e : zip_.entries()) {
      const auto slash = e.name.find('/');
      if (slash != std::string::npos &&
          e.name.compare(slash, std::string::npos, "/data.pkl") == 0) {
        pkl = &e;
        prefix_ = e.name.substr(0, slash + 1);
        break;
      }
    }
    if (!pkl) throw FileError(path_ + ": not a PyTorch checkpoint (zip without <name>/data.pkl)");
    const ZipArchive::Bytes b = zip_.read(*pkl);
    PickleHooks hooks;
    hooks.allow_global = [](const std::string& module, const std::string& name) {
      DType d;
      if (module == "collections" && name == "OrderedDict") return true;
      if (module == "torch._utils" &&
          (name == "_rebuild_tensor_v2" || name == "_rebuild_parameter"))
        return true;
      return module == "torch" && storage_dtype(module + "." + name, &d);
    };
    hooks.reduce = [this](const std::string& g, const std::vector<PyRef>& args) {
      return reduce(g, args);
    };
    hooks.persistent_load = [this](const PyRef& pid) { return persistent_load(pid); };
    const PyRef root = unpickle(b.data, b.size, path_ + " (" + pkl->name + ")", hooks);
    if (root->kind != PyValue::Kind::Dict)
      throw FileError(path_ + ": checkpoint holds a " + std::string(root->kind_name()) +
                      ", not a dict of tensors");
    PyRef dict = root;
    for (const auto& [k, v] : root->entries)
      if (k->kind == PyValue::Kind::String && k->s == "state_dict" &&
          v->kind == PyValue::Kind::Dict)
        dict = v;
    std::map<std::string, Tensor> out;
    flatten(*dict, "", out, 0);
    return out;
  }

 private:
  std::string path_;
  ZipArchive zip_;
  std::string prefix_;
  std::map<std::string, PyRef> storages_;

  [[noreturn]] void fail(const std::string& why) const { throw FileError(path_ + ": " + why); }

  static int64_t as_int(const PyRef& v, const std::string& what, const std::string& path) {
    if (v->kind == PyValue::Kind::Int) return v->i;
    if (v->kind == PyValue::Kind::Bool) return v->b;
    throw FileError(path + ": " + what + " is a " + v->kind_name() + ", expected int");
  }

  PyRef persistent_load(const PyRef& pid) {
    // ('storage', <storage class>, key, location, numel)
    if (pid->kind != PyValue::Kind::Tuple || pid->items.size() != 5 ||
        pid->items[0]->kind != PyValue::Kind::String || pid->items[0]->s != "storage" ||
        pid->items[1]->kind != PyValue::Kind::Global ||
        pid->items[2]->kind != PyValue::Kind::String)
      fail("unexpected persistent id in data.pkl (not a torch storage reference)");
    const std::string& key = pid->items[2]->s;
    if (auto it = storages_.find(key); it != storages_.end()) return it->second;
    auto st = std::make_shared<Storage>();
    if (!storage_dtype(pid->items[1]->s, &st->dtype))
      fail("unsupported storage type " + pid->items[1]->s);
    const ZipArchive::Entry* e = zip_.find(prefix_ + "data/" + key);
    if (!e) fail("storage '" + key + "' missing from the archive (truncated?)");
    st->bytes = zip_.read(*e);
    const int64_t numel = as_int(pid->items[4], "storage size", path_);
    if (numel < 0 || static_cast<uint64_t>(numel) > st->bytes.size / dtype_size(st->dtype))
      fail("storage '" + key + "' holds " + std::to_string(st->bytes.size) + " bytes, fewer than " +
           std::to_string(numel) + " elements");
    auto v = PyValue::make(PyValue::Kind::Object);
    v->s = "storage";
    v->payload = st;
    storages_.emplace(key, v);
    return v;
  }

  std::vector<int64_t> int_tuple(const PyRef& v, const char* what) const {
    if (v->kind != PyValue::Kind::Tuple && v->kind != PyValue::Kind::List)
      fail(std::string("tensor ") + what + " is a " + v->kind_name() + ", expected a tuple");
    std::vector<int64_t> out;
    for (const auto& x : v->items) out.push_back(as_int(x, std::string("tensor ") + what, path_));
    return out;
  }

  PyRef reduce(const std::string& g, const std::vector<PyRef>& args) {
    if (g == "collections.OrderedDict") {
      if (!args.empty()) fail("OrderedDict with arguments is not supported");
      return PyValue::make(PyValue::Kind::Dict);
    }
    if (g == "torch._utils._rebuild_parameter") {
      if (args.empty() || args[0]->kind != PyValue::Kind::Object || args[0]->s != "tensor")
        fail("_rebuild_parameter without a tensor");
      return args[0];
    }
    if (g == "torch._utils._rebuild_tensor_v2") return rebuild_tensor(args);
    fail("cannot call " + g);  // a storage class is only valid inside a persistent id
  }

  PyRef rebuild_tensor(const std::vector<PyRef>& args) {
    // (storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata])
    if (args.size() < 4 || args[0]->kind != PyValue::Kind::Object || args[0]->s != "storage")
      fail("malformed _rebuild_tensor_v2 call");
    const auto& st = *std::static_pointer_cast<Storage>(args[0]->payload);
    const int64_t offset = as_int(args[1], "storage offset", path_);
    const std::vector<int64_t> size = int_tuple(args[2], "size"),
                               stride = int_tuple(args[3], "stride");
    if (size.size() != stride.size() || size.size() > static_cast<size_t>(Shape::kMaxDims))
      fail("tensor size/stride rank mismatch or too many dimensions");
    const size_t es = dtype_size(st.dtype);
    const uint64_t capacity = st.bytes.size / es;
    if (offset < 0 || static_cast<uint64_t>(offset) > capacity)
      fail("tensor storage offset out of range");
    // Element count and highest element index touched, saturating instead of overflowing.
    constexpr uint64_t kMax = ~uint64_t{0};
    auto mul = [&](uint64_t a, uint64_t b) { return b != 0 && a > kMax / b ? kMax : a * b; };
    uint64_t numel = 1, last = static_cast<uint64_t>(offset);
    for (size_t d = 0; d < size.size(); ++d) {
      if (size[d] < 0 || stride[d] < 0) fail("negative tensor size or stride");
      numel = mul(numel, static_cast<uint64_t>(size[d]));
      if (size[d] > 0) {
        const uint64_t reach =
            mul(static_cast<uint64_t>(size[d] - 1), static_cast<uint64_t>(stride[d]));
        last = reach > kMax - last ? kMax : last + reach;
      }
    }
    const Shape shape(size.begin(), size.end());
    if (numel > 0 && last >= capacity)
      fail("tensor of shape " + shape.str() + " reaches past its storage (" +
           std::to_string(capacity) + " elements)");
    // Expanded (stride-0) tensors may hold more elements than their storage; bound the copy.
    if (numel > capacity && mul(numel, es) > (uint64_t{1} << 28))
      fail("tensor of shape " + shape.str() + " expands its storage too far");
    const std::byte* base = st.bytes.data + static_cast<size_t>(offset) * es;
    bool contiguous = true;
    int64_t expect = 1;
    for (size_t d = size.size(); d-- > 0;) {
      if (size[d] != 1 && stride[d] != expect) contiguous = false;
      expect *= size[d];
    }
    auto v = PyValue::make(PyValue::Kind::Object);
    v->s = "tensor";
    if (contiguous && reinterpret_cast<uintptr_t>(base) % es == 0) {
      v->tensor = Tensor::view_of(st.bytes.owner, base, shape, st.dtype);
      return v;
    }
    Tensor t = Tensor::empty(shape, st.dtype);
    auto* dst = static_cast<std::byte*>(t.raw());
    const int64_t n = static_cast<int64_t>(numel);
    std::vector<int64_t> idx(size.size(), 0);
    for (int64_t k = 0; k < n; ++k) {
      int64_t src = 0;
      for (size_t d = 0; d < size.size(); ++d) src += idx[d] * stride[d];
      std::memcpy(dst + static_cast<size_t>(k) * es, base + static_cast<size_t>(src) * es, es);
      for (size_t d = size.size(); d-- > 0;) {
        if (++idx[d] < size[d]) break;
        idx[d] = 0;
      }
    }
    v->tensor = t;
    return v;
  }

  void flatten(const PyValue& dict, const std::string& prefix, std::map<std::string, Tensor>& out,
               int depth) const {
    if (depth > 16) fail("dicts nested too deeply");
    for (const auto& [k, v] : dict.entries) {
      if (k->kind != PyValue::Kind::String) continue;
      if (v->kind == PyValue::Kind::Object && v->s == "tensor")
        out[prefix + k->s] = v->tensor;
      else if (v->kind == PyValue::Kind::Dict)
        flatten(*v, prefix + k->s + ".", out, depth + 1);
    }
  }
};

}  // namespace

std::map<std::string, Tensor> read_torch_checkpoint(const std::string& path) {
  if (!ZipArchive::looks_like_zip(path)) {
    MappedFile::open(path);  // a missing or unreadable file reads as such
    throw FileError(path +
                    ": not a zip-format PyTorch checkpoint (legacy pre-1.6 torch.save files are "
                    "not supported)");
  }
  return CheckpointReader(path).read();
}

}  // namespace diffuse
