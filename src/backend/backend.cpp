#include "backend/backend.h"

#include "diffuse/error.hpp"

namespace diffuse {

const Backend& backend_for(Device device) {
  switch (device.type) {
    case DeviceType::Cpu:
      return cpu::backend();
    case DeviceType::Reference:
      return ref::backend();
    case DeviceType::Cuda:
      break;
  }
  throw Error("no backend for device " + device.name() + " in this build");
}

std::vector<std::string> backend_names() {
  return {cpu::backend().name, ref::backend().name};
}

DeviceChoice resolve_device(const std::string& name) {
  if (name == "cpu" || name == "cpuOnly") return {kCpu, {}};
  if (name == "reference") return {kReference, {}};
  if (name == "cuda" || name == "cpuAndGPU")
    throw ConfigError("backend '" + name +
                      "' needs the CUDA backend, which this build of diffuse does not include; "
                      "use --backend cpu");
  if (name == "all")
    return {kCpu, "compute units 'all': no GPU backend in this build, running on the CPU"};
  std::string known;
  for (const auto& n : backend_names()) known += n + ", ";
  throw ConfigError("unknown backend '" + name + "' (choose one of: " + known +
                    "or a compute-unit name cpuOnly, cpuAndGPU, all)");
}

}  // namespace diffuse
