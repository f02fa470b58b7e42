#include "core/attention_kernel.h"

#include <array>
#include <utility>

namespace diffuse {

namespace {
constexpr std::array<std::pair<std::string_view, AttentionKernel>, 3> kNames{{
    {"sliced", AttentionKernel::Sliced},
    {"standard", AttentionKernel::Standard},
    {"flash", AttentionKernel::Flash},
}};
}  // namespace

bool parse_attention_kernel(std::string_view name, AttentionKernel* out) {
  for (const auto& [n, k] : kNames)
    if (n == name) {
      *out = k;
      return true;
    }
  return false;
}

std::string_view attention_kernel_name(AttentionKernel k) {
  for (const auto& [n, kernel] : kNames)
    if (kernel == k) return n;
  return "?";
}

}  // namespace diffuse
