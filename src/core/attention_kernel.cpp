#include "core/attention_kernel.h"

#include "core/name_table.h"

namespace diffuse {

namespace {
constexpr NameTable<AttentionKernel, 3> kNames{{
    {"sliced", AttentionKernel::Sliced},
    {"standard", AttentionKernel::Standard},
    {"flash", AttentionKernel::Flash},
}};
}  // namespace

bool parse_attention_kernel(std::string_view name, AttentionKernel* out) {
  return value_named(kNames, name, out);
}

std::string_view attention_kernel_name(AttentionKernel k) {
  return name_of(kNames, k);
}

std::string attention_kernel_choices() {
  return names_listed(kNames);
}

}  // namespace diffuse
