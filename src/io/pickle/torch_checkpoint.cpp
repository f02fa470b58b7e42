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

// Training state the released CompVis/RunwayML checkpoints carry next to their state_dict (the
// globals AUTOMATIC1111's modules/safe.py accepts besides the tensor ones; numpy 2 spells
// numpy.core as numpy._core). Calling one of them yields an inert placeholder: no module is
// imported and no code runs, and the placeholder is not a tensor, so it is never loaded.
struct GlobalName {
  const char* module;
  const char* name;
};
constexpr GlobalName kInertGlobals[] = {
    {"pytorch_lightning.callbacks.model_checkpoint", "ModelCheckpoint"},
    {"pytorch_lightning.callbacks", "model_checkpoint"},
    {"numpy.core.multiarray", "scalar"},
    {"numpy.core.multiarray", "_reconstruct"},
    {"numpy._core.multiarray", "scalar"},
    {"numpy._core.multiarray", "_reconstruct"},
    {"numpy", "dtype"},
    {"numpy", "ndarray"},
    {"_codecs", "encode"},
    {"__builtin__", "set"},
    {"torch", "float32"},
    {"torch._utils", "_rebuild_device_tensor_from_numpy"},
    {"torch.nn.modules.container", "ParameterDict"},
};

bool is_inert(const std::string& qualified) {
  for (const auto& g : kInertGlobals)
    if (qualified == std::string(g.module) + "." + g.name) return true;
  return false;
}

bool allowed_global(const std::string& module, const std::string& name) {
  DType d;
  const std::string q = module + "." + name;
  return q == "collections.OrderedDict" || q == "torch._utils._rebuild_tensor_v2" ||
         q == "torch._utils._rebuild_parameter" || (module == "torch" && storage_dtype(q, &d)) ||
         is_inert(q);
}

// data.pkl of an SD checkpoint is ~100 KB (a full training checkpoint a few MB); a larger one is
// refused before it is inflated.
constexpr uint64_t kMaxPickleBytes = uint64_t{256} << 20;
// A storage's zip entry holds exactly its elements; a little slack is tolerated, not more.
constexpr uint64_t kStorageSlackBytes = 4096;
// Copies (non-contiguous or expanded tensors) may total this much beyond twice the storage bytes.
// (An expanded, stride-0, tensor may be larger than its storage, up to this size; a small file
// cannot claim gigabytes that way.)
constexpr uint64_t kCopySlackBytes = uint64_t{16} << 20;

// What BINPERSID returns: one storage, described by its persistent id; its bytes are read only
// once a tensor that is loaded uses it.
struct Storage {
  std::string key;
  DType dtype = DType::F32;
  uint64_t numel = 0;
  const ZipArchive::Entry* entry = nullptr;
  ZipArchive::Bytes bytes;
  bool read = false;
};

// What _rebuild_tensor_v2 returns: a checked view of a storage, materialised at the end.
struct PendingTensor {
  std::shared_ptr<Storage> storage;
  int64_t offset = 0;
  std::vector<int64_t> size, stride;
  uint64_t numel = 0;
  bool contiguous = true;
};

PyRef make_object(const char* type, std::shared_ptr<void> payload) {
  auto v = PyValue::make(PyValue::Kind::Object);
  v->s = type;
  v->payload = std::move(payload);
  return v;
}

bool is_object(const PyRef& v, const char* type) {
  return v->kind == PyValue::Kind::Object && v->s == type;
}

class CheckpointReader {
 public:
  explicit CheckpointReader(const std::string& path) : path_(path), zip_(ZipArchive::open(path)) {}

  std::map<std::string, Tensor> read(const TorchCheckpointCheck& check) {
    const PyRef dict = state_dict(parse());
    std::map<std::string, std::shared_ptr<PendingTensor>> pending;
    flatten(*dict, "", pending, 0);
    if (check) {
      std::map<std::string, TorchTensorInfo> infos;
      for (const auto& [name, t] : pending)
        infos[name] = {t->storage->dtype, Shape(t->size.begin(), t->size.end())};
      check(infos);
    }
    uint64_t storage_bytes = 0;
    for (const auto& [name, t] : pending)
      if (!t->storage->read) {
        storage_bytes += t->storage->entry->size;
        load(*t->storage);
      }
    uint64_t copy_budget = 2 * storage_bytes + kCopySlackBytes;
    std::map<std::string, Tensor> out;
    for (const auto& [name, t] : pending) out[name] = materialise(*t, copy_budget);
    return out;
  }

 private:
  std::string path_;
  ZipArchive zip_;
  std::string prefix_;
  std::map<std::string, std::shared_ptr<Storage>> storages_;

  [[noreturn]] void fail(const std::string& why) const { throw FileError(path_ + ": " + why); }

  PyRef parse() {
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
    if (!pkl) fail("not a PyTorch checkpoint (zip without <name>/data.pkl)");
    if (pkl->size > kMaxPickleBytes)
      fail(printable(pkl->name) + " declares " + std::to_string(pkl->size) + " bytes (over the " +
           std::to_string(kMaxPickleBytes >> 20) + " MiB a checkpoint's pickle may have)");
    const ZipArchive::Bytes b = zip_.read(*pkl);
    PickleHooks hooks;
    hooks.allow_global = allowed_global;
    hooks.reduce = [this](const std::string& g, const std::vector<PyRef>& args) {
      return reduce(g, args);
    };
    hooks.persistent_load = [this](const PyRef& pid) { return persistent_load(pid); };
    return unpickle(b.data, b.size, path_ + " (" + printable(pkl->name) + ")", hooks);
  }

  PyRef state_dict(const PyRef& root) const {
    if (root->kind != PyValue::Kind::Dict)
      fail("checkpoint holds a " + std::string(root->kind_name()) + ", not a dict of tensors");
    for (const auto& [k, v] : root->entries)
      if (k->kind == PyValue::Kind::String && k->s == "state_dict" &&
          v->kind == PyValue::Kind::Dict)
        return v;
    return root;
  }

  static int64_t as_int(const PyRef& v, const std::string& what, const std::string& path) {
    if (v->kind == PyValue::Kind::Int) return v->i;
    if (v->kind == PyValue::Kind::Bool) return v->b;
    throw FileError(path + ": " + what + " is a " + v->kind_name() + ", expected int");
  }

  // ('storage', <storage class>, key, location, numel): checked against the zip entry's declared
  // size here, read only later.
  PyRef persistent_load(const PyRef& pid) {
    if (pid->kind != PyValue::Kind::Tuple || pid->items.size() != 5 ||
        pid->items[0]->kind != PyValue::Kind::String || pid->items[0]->s != "storage" ||
        pid->items[1]->kind != PyValue::Kind::Global ||
        pid->items[2]->kind != PyValue::Kind::String)
      fail("unexpected persistent id in data.pkl (not a torch storage reference)");
    const std::string& key = pid->items[2]->s;
    if (auto it = storages_.find(key); it != storages_.end())
      return make_object("storage", it->second);
    auto st = std::make_shared<Storage>();
    st->key = key;
    if (!storage_dtype(pid->items[1]->s, &st->dtype))
      fail("unsupported storage type " + printable(pid->items[1]->s));
    st->entry = zip_.find(prefix_ + "data/" + key);
    if (!st->entry) fail("storage '" + printable(key) + "' missing from the archive (truncated?)");
    const int64_t numel = as_int(pid->items[4], "storage size", path_);
    const uint64_t es = dtype_size(st->dtype), declared = st->entry->size;
    if (numel < 0 || static_cast<uint64_t>(numel) > declared / es)
      fail("storage '" + printable(key) + "' holds " + std::to_string(declared) +
           " bytes, fewer than " + std::to_string(numel) + " elements");
    if (declared - static_cast<uint64_t>(numel) * es > kStorageSlackBytes)
      fail("storage '" + printable(key) + "' declares " + std::to_string(declared) +
           " bytes, far more than its " + std::to_string(numel) + " elements need");
    st->numel = static_cast<uint64_t>(numel);
    storages_.emplace(key, st);
    return make_object("storage", st);
  }

  void load(Storage& st) {
    st.bytes = zip_.read(*st.entry);
    st.read = true;
  }

  std::vector<int64_t> int_tuple(const PyRef& v, const char* what) const {
    if (v->kind != PyValue::Kind::Tuple && v->kind != PyValue::Kind::List)
      fail(std::string("tensor ") + what + " is a " + v->kind_name() + ", expected a tuple");
    if (v->items.size() > static_cast<size_t>(Shape::kMaxDims))
      fail(std::string("tensor ") + what + " has too many dimensions");
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
      if (args.empty() || !is_object(args[0], "tensor"))
        fail("_rebuild_parameter without a tensor");
      return args[0];
    }
    if (g == "torch._utils._rebuild_tensor_v2") return rebuild_tensor(args);
    if (is_inert(g)) return make_object("inert", nullptr);
    fail("cannot call " + printable(g));  // a storage class is only valid inside a persistent id
  }

  // (storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata]): checked
  // against the storage's declared element count; no bytes are touched.
  PyRef rebuild_tensor(const std::vector<PyRef>& args) {
    if (args.size() < 4 || !is_object(args[0], "storage"))
      fail("malformed _rebuild_tensor_v2 call");
    auto t = std::make_shared<PendingTensor>();
    t->storage = std::static_pointer_cast<Storage>(args[0]->payload);
    t->offset = as_int(args[1], "storage offset", path_);
    t->size = int_tuple(args[2], "size");
    t->stride = int_tuple(args[3], "stride");
    if (t->size.size() != t->stride.size()) fail("tensor size/stride rank mismatch");
    const uint64_t capacity = t->storage->numel;
    if (t->offset < 0 || static_cast<uint64_t>(t->offset) > capacity)
      fail("tensor storage offset out of range");
    // Element count and highest element index touched, saturating instead of overflowing.
    constexpr uint64_t kMax = ~uint64_t{0};
    auto mul = [&](uint64_t a, uint64_t b) { return b != 0 && a > kMax / b ? kMax : a * b; };
    uint64_t numel = 1, last = static_cast<uint64_t>(t->offset);
    for (size_t d = 0; d < t->size.size(); ++d) {
      if (t->size[d] < 0 || t->stride[d] < 0) fail("negative tensor size or stride");
      numel = mul(numel, static_cast<uint64_t>(t->size[d]));
      if (t->size[d] > 0) {
        const uint64_t reach =
            mul(static_cast<uint64_t>(t->size[d] - 1), static_cast<uint64_t>(t->stride[d]));
        last = reach > kMax - last ? kMax : last + reach;
      }
    }
    const Shape shape(t->size.begin(), t->size.end());
    if (numel > 0 && last >= capacity)
      fail("tensor of shape " + shape.str() + " reaches past its storage (" +
           std::to_string(capacity) + " elements)");
    // Expanded (stride-0) tensors may hold more elements than their storage; bound the copy.
    const uint64_t es = dtype_size(t->storage->dtype);
    if (numel > capacity && mul(numel, es) > kCopySlackBytes)
      fail("tensor of shape " + shape.str() + " expands its storage too far");
    t->numel = numel;
    int64_t expect = 1;
    for (size_t d = t->size.size(); d-- > 0;) {
      if (t->size[d] != 1 && t->stride[d] != expect) t->contiguous = false;
      expect *= t->size[d];
    }
    return make_object("tensor", t);
  }

  // A view into the storage when contiguous and aligned, else a strided copy (within budget).
  Tensor materialise(const PendingTensor& t, uint64_t& copy_budget) const {
    const Storage& st = *t.storage;
    const size_t es = dtype_size(st.dtype);
    const Shape shape(t.size.begin(), t.size.end());
    const std::byte* base = st.bytes.data + static_cast<size_t>(t.offset) * es;
    if (t.contiguous && reinterpret_cast<uintptr_t>(base) % es == 0)
      return Tensor::view_of(st.bytes.owner, base, shape, st.dtype);
    if (t.numel * es > copy_budget)
      fail("tensor copies of shape " + shape.str() + " exceed the checkpoint's size");
    copy_budget -= t.numel * es;
    Tensor out = Tensor::empty(shape, st.dtype);
    auto* dst = static_cast<std::byte*>(out.raw());
    std::vector<int64_t> idx(t.size.size(), 0);
    for (uint64_t k = 0; k < t.numel; ++k) {
      int64_t src = 0;
      for (size_t d = 0; d < t.size.size(); ++d) src += idx[d] * t.stride[d];
      std::memcpy(dst + k * es, base + static_cast<size_t>(src) * es, es);
      for (size_t d = t.size.size(); d-- > 0;) {
        if (++idx[d] < t.size[d]) break;
        idx[d] = 0;
      }
    }
    return out;
  }

  void flatten(const PyValue& dict, const std::string& prefix,
               std::map<std::string, std::shared_ptr<PendingTensor>>& out, int depth) const {
    if (depth > 16) fail("dicts nested too deeply");
    for (const auto& [k, v] : dict.entries) {
      if (k->kind != PyValue::Kind::String) continue;
      if (is_object(v, "tensor"))
        out[prefix + k->s] = std::static_pointer_cast<PendingTensor>(v->payload);
      else if (v->kind == PyValue::Kind::Dict)
        flatten(*v, prefix + k->s + ".", out, depth + 1);
    }
  }
};

}  // namespace

std::map<std::string, Tensor> read_torch_checkpoint(const std::string& path,
                                                    const TorchCheckpointCheck& check) {
  if (!ZipArchive::looks_like_zip(path)) {
    MappedFile::open(path);  // a missing or unreadable file reads as such
    throw FileError(path +
                    ": not a zip-format PyTorch checkpoint (legacy pre-1.6 torch.save files are "
                    "not supported)");
  }
  return CheckpointReader(path).read(check);
}

}  // namespace diffuse
