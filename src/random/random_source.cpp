#include "random/random_source.h"

#include <string>

#include "diffuse/error.hpp"
#include "random/numpy_generator.h"
#include "random/philox_generator.h"
#include "random/torch_generator.h"

namespace diffuse {

std::unique_ptr<RandomSource> make_random_source(std::string_view name, uint64_t seed) {
  if (name == "torch") return std::make_unique<TorchGenerator>(seed);
  if (name == "numpy") return std::make_unique<NumpyGenerator>(seed);
  if (name == "philox") return std::make_unique<PhiloxGenerator>(seed);
  throw ConfigError("unknown random source '" + std::string(name) +
                    "' (valid: torch, numpy, philox)");
}

}  // namespace diffuse
