// libFuzzer target: the PyTorch checkpoint reader (zip archive, restricted unpickler, tensor
// rebuilding). The first byte picks what the rest is:
//   even: a whole .ckpt file (zip structure, central directory, deflate);
//   odd:  data.pkl alone, put into a well-formed archive with two storages (stored, or deflated
//         when bit 1 is set), so that mutations reach the pickle machine and its hooks directly.
// Every tensor the reader returns is read in full.
#include <cstddef>
#include <cstdint>

#include "checkpoint/checkpoint_test_util.h"
#include "fuzz/fuzz_util.h"
#include "io/pickle/torch_checkpoint.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace diffuse;
  if (size == 0) return 0;
  const std::string& path = fuzz::scratch_path(".ckpt");
  const uint8_t mode = data[0];
  if (mode & 1) {
    const std::string pkl(reinterpret_cast<const char*>(data + 1), size - 1);
    const std::string zip = test::zip_bytes({{"archive/data.pkl", pkl},
                                             {"archive/data/0", std::string(64, '\x3f')},
                                             {"archive/data/1", std::string(16, '\x01')}},
                                            (mode & 2) != 0);
    fuzz::write_scratch(path, reinterpret_cast<const uint8_t*>(zip.data()), zip.size());
  } else {
    fuzz::write_scratch(path, data + 1, size - 1);
  }
  try {
    volatile uint8_t sink = 0;
    for (const auto& [name, t] : read_torch_checkpoint(path)) {
      const Tensor c = t.contiguous();
      const auto* p = static_cast<const uint8_t*>(c.raw());
      for (size_t i = 0; i < c.nbytes(); ++i) sink = sink ^ p[i];
    }
  } catch (const FileError& e) {
    fuzz::check_error(e, path);
  }
  return 0;
}
