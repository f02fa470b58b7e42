// Memory of devices other than the host (GPUs), as their backend provides it: core allocates and
// copies tensors through this table without depending on any GPU library. A backend registers
// its table once, when it is first used; until then Tensor::empty on that device is an error.
#pragma once

#include <cstddef>

#include "core/allocator.h"
#include "core/device.h"

namespace diffuse {

struct DeviceMemory {
  /// `bytes` of uninitialised memory on device `index`, freed when the last Buffer copy goes.
  Buffer (*allocate)(size_t bytes, int index) = nullptr;
  /// Copies `bytes` between host and device memory, waiting until done.
  void (*copy_to_device)(void* dst, const void* host_src, size_t bytes, int index) = nullptr;
  void (*copy_to_host)(void* host_dst, const void* src, size_t bytes, int index) = nullptr;
  /// `rows` runs of `run_bytes` on the device, `src_pitch` bytes apart, packed into dst (a
  /// narrowed view made contiguous).
  void (*copy_rows_on_device)(void* dst, const void* src, size_t src_pitch, size_t run_bytes,
                              size_t rows, int index) = nullptr;
};

/// Registers the memory functions of `type` (a non-host device); a later call replaces them.
void register_device_memory(DeviceType type, const DeviceMemory& memory);
/// Those of `type`; nullptr when no backend of this build registered any.
const DeviceMemory* device_memory(DeviceType type);

}  // namespace diffuse
