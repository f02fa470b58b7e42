// PyTorch checkpoints (torch.save's zip format: <prefix>/data.pkl + <prefix>/data/<key> storages),
// read without running any pickle code. The pickle may name collections.OrderedDict,
// torch._utils._rebuild_tensor_v2 / _rebuild_parameter and the torch.*Storage classes, plus the
// training state the original CompVis/RunwayML .ckpt files carry (pytorch_lightning's
// ModelCheckpoint, numpy scalars/arrays/dtypes, _codecs.encode, set: the list AUTOMATIC1111's
// restricted unpickler accepts), which become inert placeholders: nothing is imported or run.
// Any other global is a FileError naming the file and the refused global.
//
// The reader checks before it inflates: data.pkl is parsed with storages as placeholders, each
// storage's declared element count is checked against its zip entry's declared size, every tensor
// against its storage, and only the storages the chosen tensors use are read (a deflated entry
// never inflates past its declared size).
#pragma once

#include <functional>
#include <map>
#include <string>

#include "core/tensor.h"

namespace diffuse {

/// A tensor's description, known before any storage bytes are read.
struct TorchTensorInfo {
  DType dtype = DType::F32;
  Shape shape;
};

/// Called with every tensor's name, dtype and shape once data.pkl is parsed and checked, before
/// any storage is read or inflated; it may throw (e.g. on keys that are not a model's).
using TorchCheckpointCheck = std::function<void(const std::map<std::string, TorchTensorInfo>&)>;

/// The checkpoint's tensors by name: the "state_dict" entry when the top-level dict has one, else
/// the top-level dict itself (nested dicts are flattened with '.'; non-tensor values are skipped).
/// Stored, aligned, contiguous tensors are zero-copy views into the mapped file; others are copies
/// honouring storage offset, size and stride. Throws FileError naming `path` on any problem.
std::map<std::string, Tensor> read_torch_checkpoint(const std::string& path,
                                                    const TorchCheckpointCheck& check = {});

}  // namespace diffuse
