// Where a tensor's memory lives and which backend's kernels run the ops on it.
//
// `cpu` and `reference` are both host memory: their tensors can be read with Tensor::f32() and
// relabelled from one to the other without a copy (Tensor::on). They differ in the kernels ops::
// dispatches to: optimised ones, or the plain loop nests of src/backend/reference. A GPU device
// keeps its memory off the host: reading it takes an explicit copy (Tensor::to_host).
#pragma once

#include <string>

namespace diffuse {

enum class DeviceType : unsigned char { Cpu, Reference, Cuda };

struct Device {
  DeviceType type = DeviceType::Cpu;
  int index = 0;

  bool is_host() const { return type == DeviceType::Cpu || type == DeviceType::Reference; }
  std::string name() const;  // "cpu", "reference", "cuda:0"
  friend bool operator==(const Device&, const Device&) = default;
};

inline constexpr Device kCpu{DeviceType::Cpu, 0};
inline constexpr Device kReference{DeviceType::Reference, 0};

}  // namespace diffuse
