// diffuse info: the generation parameters stored in a PNG (A1111 `parameters` chunk).
#include <iostream>

#include "commands.h"
#include "diffuse/diffuse.hpp"

namespace diffuse::cli {

Command add_info(CLI::App& app) {
  auto path = std::make_shared<std::string>();
  CLI::App* c = app.add_subcommand("info", "Print the generation parameters stored in a PNG");
  c->add_option("image", *path, "PNG file")->required();
  return [path] {
    const std::string p = read_png_parameters(*path);
    if (p.empty()) {
      std::cerr << *path << ": no generation parameters stored\n";
      return 1;
    }
    std::cout << p << "\n";
    return 0;
  };
}

}  // namespace diffuse::cli
