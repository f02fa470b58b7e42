// How the attention op computes softmax(q k^T / sqrt(d)) v: three algorithms with the same result
// (to float32 rounding) and different memory and speed, the choice Core ML's converter offers as
// its attention variants. A model records one (a package's diffuse.json); a load may override it.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace diffuse {

enum class AttentionKernel : uint8_t {
  /// Blocks of 256 query rows: each thread holds one block's scores against every key (4 MiB at
  /// 4096 tokens). The default.
  Sliced,
  /// One (batch, head) at a time, its whole query-by-key score matrix in one buffer per thread
  /// (64 MiB at 4096 tokens): two large GEMMs per head, as the textbook formula.
  Standard,
  /// Blocks of queries against blocks of keys with a running maximum and sum (the online softmax
  /// of FlashAttention): a few hundred KB per thread at any length, never a whole row of scores.
  Flash,
};

/// "sliced", "standard", "flash"; false for anything else.
bool parse_attention_kernel(std::string_view name, AttentionKernel* out);
std::string_view attention_kernel_name(AttentionKernel k);
/// "sliced, standard or flash", for error messages.
std::string attention_kernel_choices();

}  // namespace diffuse
