#include "backend/backend.h"

#include <charconv>

#include "diffuse/error.hpp"

namespace diffuse {

const Backend& backend_for(Device device) {
  switch (device.type) {
    case DeviceType::Cpu:
      return cpu::backend();
    case DeviceType::Reference:
      return ref::backend();
    case DeviceType::Cuda:
      return cuda::backend();
  }
  throw Error("no backend for device " + device.name() + " in this build");
}

std::vector<std::string> backend_names() {
  std::vector<std::string> names{cpu::backend().name, ref::backend().name};
  if (cuda::availability().problem.empty()) names.emplace_back("cuda");
  return names;
}

namespace {

/// "cuda" -> GPU 0, "cuda:N" -> GPU N (also for "cpuAndGPU"); ConfigError when the CUDA backend
/// cannot run, naming what is missing.
Device cuda_device(const std::string& name, const std::string& index_text) {
  const cuda::Availability& a = cuda::availability();
  if (!a.problem.empty())
    throw ConfigError("backend '" + name + "': " + a.problem + "; use --backend cpu");
  int index = 0;
  if (!index_text.empty()) {
    const auto [end, ec] =
        std::from_chars(index_text.data(), index_text.data() + index_text.size(), index);
    if (ec != std::errc() || end != index_text.data() + index_text.size() || index < 0)
      throw ConfigError("backend '" + name + "': '" + index_text + "' is not a GPU number");
  }
  if (index >= static_cast<int>(a.gpus.size()))
    throw ConfigError("backend '" + name + "': no GPU " + std::to_string(index) + " (" +
                      std::to_string(a.gpus.size()) + " found)");
  return Device{DeviceType::Cuda, index};
}

}  // namespace

DeviceChoice resolve_device(const std::string& name) {
  if (name == "cpu" || name == "cpuOnly") return {kCpu, {}};
  if (name == "reference") return {kReference, {}};
  const size_t colon = name.find(':');
  const std::string base = name.substr(0, colon);
  const std::string index = colon == std::string::npos ? "" : name.substr(colon + 1);
  if (base == "cuda" || base == "cpuAndGPU") return {cuda_device(name, index), {}};
  if (name == "all") {
    const cuda::Availability& a = cuda::availability();
    if (a.problem.empty()) return {Device{DeviceType::Cuda, 0}, {}};
    return {kCpu, "compute units 'all': no usable GPU (" + a.problem + "), running on the CPU"};
  }
  std::string known;
  for (const auto& n : backend_names()) known += n + ", ";
  throw ConfigError("unknown backend '" + name + "' (choose one of: " + known +
                    "or a compute-unit name cpuOnly, cpuAndGPU, all)");
}

}  // namespace diffuse
