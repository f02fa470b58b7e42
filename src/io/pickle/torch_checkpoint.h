// PyTorch checkpoints (torch.save's zip format: <prefix>/data.pkl + <prefix>/data/<key> storages),
// read without running any pickle code. The pickle may only name collections.OrderedDict,
// torch._utils._rebuild_tensor_v2 / _rebuild_parameter and the torch.*Storage classes; anything
// else is a FileError naming the file and the refused global.
#pragma once

#include <map>
#include <string>

#include "core/tensor.h"

namespace diffuse {

/// The checkpoint's tensors by name: the "state_dict" entry when the top-level dict has one, else
/// the top-level dict itself (nested dicts are flattened with '.'; non-tensor values are skipped).
/// Stored, aligned, contiguous tensors are zero-copy views into the mapped file; others are copies
/// honouring storage offset, size and stride. Throws FileError naming `path` on any problem.
std::map<std::string, Tensor> read_torch_checkpoint(const std::string& path);

}  // namespace diffuse
