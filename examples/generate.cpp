// Minimal use of the C++ API: load a model folder, generate one image, save it with metadata.
//   example_generate <model_dir> "<prompt>" out.png
#include <cstdio>

#include "diffuse/diffuse.hpp"

int main(int argc, char** argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: %s <model_dir> <prompt> <out.png>\n", argv[0]);
    return 2;
  }
  try {
    auto pipe = diffuse::Pipeline::load(argv[1]);
    diffuse::GenerateOptions o;
    o.prompt = argv[2];
    o.steps = 20;
    o.scheduler = "dpmpp-2m-karras";
    o.seed = 42;
    auto result = pipe->generate(o, [](const diffuse::Progress& p) {
      std::fprintf(stderr, "step %d/%d\n", p.step, p.total_steps);
      return true;  // false cancels
    });
    diffuse::save_png(argv[3], result.images[0], result.parameters_text(0));
  } catch (const diffuse::Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
