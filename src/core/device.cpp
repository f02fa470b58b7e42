#include "core/device.h"

namespace diffuse {

std::string Device::name() const {
  switch (type) {
    case DeviceType::Cpu:
      return "cpu";
    case DeviceType::Reference:
      return "reference";
    case DeviceType::Cuda:
      return "cuda:" + std::to_string(index);
  }
  return "unknown";
}

}  // namespace diffuse
