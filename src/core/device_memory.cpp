#include "core/device_memory.h"

#include <array>
#include <atomic>

namespace diffuse {

namespace {
// One slot per device type: written once by the backend that owns the type (before any tensor of
// it exists), read by every Tensor::empty/on of it.
std::array<std::atomic<const DeviceMemory*>, 3> g_memory{};
std::array<DeviceMemory, 3> g_tables{};
}  // namespace

void register_device_memory(DeviceType type, const DeviceMemory& memory) {
  const auto i = static_cast<size_t>(type);
  g_tables.at(i) = memory;
  g_memory.at(i).store(&g_tables[i], std::memory_order_release);
}

const DeviceMemory* device_memory(DeviceType type) {
  return g_memory.at(static_cast<size_t>(type)).load(std::memory_order_acquire);
}

}  // namespace diffuse
