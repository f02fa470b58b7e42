// diffuse info PATH: what PATH is, told by itself. A PNG: the generation parameters it stores
// (A1111 `parameters` chunk); a diffusers folder or a single-file checkpoint: family, pipeline,
// prediction type, components with parameter counts, dtypes and sizes. --json for all of them.
#include <cstdio>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>

#include "commands.h"
#include "diffuse/diffuse.hpp"

namespace diffuse::cli {

namespace {

struct InfoArgs {
  std::string path, variant;
  bool json = false, system = false;
};

bool is_png(const std::string& path) {
  static const char kSignature[8] = {'\x89', 'P', 'N', 'G', '\r', '\n', '\x1a', '\n'};
  std::ifstream in(path, std::ios::binary);
  char head[8] = {};
  return in.read(head, 8) && std::equal(head, head + 8, kSignature);
}

int show_png(const InfoArgs& a) {
  const std::string p = read_png_parameters(a.path);
  if (a.json) {
    std::cout << nlohmann::json{{"kind", "png"}, {"path", a.path}, {"parameters", p}}.dump(2)
              << "\n";
    return 0;
  }
  if (p.empty()) return report_error(a.path + ": no generation parameters stored");
  std::cout << p << "\n";
  return 0;
}

std::string human(double v, const char* const units[], int count, double step) {
  int u = 0;
  while (v >= step && u + 1 < count) v /= step, ++u;
  char buf[32];
  std::snprintf(buf, sizeof buf, u == 0 ? "%.0f%s" : "%.1f%s", v, units[u]);
  return buf;
}
std::string count_text(int64_t n) {
  static const char* const units[] = {"", " K", " M", " G"};
  return human(static_cast<double>(n), units, 4, 1000);
}
std::string bytes_text(int64_t n) {
  static const char* const units[] = {" B", " KiB", " MiB", " GiB"};
  return human(static_cast<double>(n), units, 4, 1024);
}

std::string dtypes_text(const ComponentDescription& c) {
  std::string s;
  for (const auto& [dtype, n] : c.parameters_by_dtype) {
    if (!s.empty()) s.append(", ");
    s.append(dtype);
    if (c.parameters_by_dtype.size() > 1) s.append(" ").append(count_text(n));
  }
  return s;
}

nlohmann::json model_json(const ModelDescription& m) {
  nlohmann::json components = nlohmann::json::array();
  for (const auto& c : m.components)
    components.push_back({{"name", c.name},
                          {"class", c.class_name},
                          {"source", c.source},
                          {"parameters", c.parameters},
                          {"bytes", c.bytes},
                          {"parameters_by_dtype", c.parameters_by_dtype}});
  return {{"kind", m.kind},
          {"path", m.path},
          {"pipeline", m.pipeline},
          {"family", m.family},
          {"prediction_type", m.prediction_type},
          {"inpainting", m.inpainting},
          {"default_size", m.default_size},
          {"components", components},
          {"other_parameters", m.other_parameters},
          {"file_bytes", m.file_bytes}};
}

void print_model(const ModelDescription& m) {
  if (m.pipeline.empty())
    std::printf("%s: %s\n", m.path.c_str(), m.kind.c_str());
  else
    std::printf("%s: %s, %s (%s), %s prediction%s, %dx%d by default\n", m.path.c_str(),
                m.kind.c_str(), m.pipeline.c_str(), m.family.c_str(), m.prediction_type.c_str(),
                m.inpainting ? ", inpainting UNet" : "", m.default_size, m.default_size);
  std::printf("  %-15s %-28s %11s %11s  %s\n", "component", "class", "parameters", "size",
              "dtypes");
  int64_t total = 0;
  for (const auto& c : m.components) {
    std::printf("  %-15s %-28s %11s %11s  %s\n", c.name.c_str(), c.class_name.c_str(),
                count_text(c.parameters).c_str(), bytes_text(c.bytes).c_str(),
                dtypes_text(c).c_str());
    total += c.parameters;
  }
  if (m.other_parameters > 0)
    std::printf("  other tensors (EMA, training state): %s parameters\n",
                count_text(m.other_parameters).c_str());
  std::printf("  total %s parameters, %s on disk\n", count_text(total).c_str(),
              bytes_text(m.file_bytes).c_str());
}

int show_system(const InfoArgs& a) {
  const SystemInfo s = system_info();
  nlohmann::json gpus = nlohmann::json::array();
  for (const auto& g : s.gpus)
    gpus.push_back({{"index", g.index},
                    {"name", g.name},
                    {"memory_bytes", g.memory_bytes},
                    {"compute_capability", g.compute_capability}});
  if (a.json) {
    std::cout << nlohmann::json{{"cpu", s.cpu},
                                {"hardware_threads", s.hardware_threads},
                                {"cpu_features", s.cpu_features},
                                {"vector_kernels", s.vector_kernels},
                                {"gemm", s.gemm},
                                {"conv3x3", s.conv3x3},
                                {"bf16_compute", s.bf16_compute},
                                {"backends", s.backends},
                                {"gpus", gpus},
                                {"gpu_problem", s.gpu_problem}}
                     .dump(2)
              << "\n";
    return 0;
  }
  std::string features, backends;
  for (const auto& f : s.cpu_features) features += (features.empty() ? "" : " ") + f;
  for (const auto& b : s.backends) backends += (backends.empty() ? "" : ", ") + b;
  std::printf("CPU: %s, %d threads\n", s.cpu.empty() ? "unknown" : s.cpu.c_str(),
              s.hardware_threads);
  std::printf("  features: %s\n", features.empty() ? "(baseline only)" : features.c_str());
  std::printf("  element-wise kernels: %s\n", s.vector_kernels.c_str());
  std::printf("  GEMM and convolutions: %s\n", s.gemm.c_str());
  std::printf("  3x3 convolutions: %s\n", s.conv3x3.c_str());
  std::printf("  bf16/int8 precision computes: %s\n",
              s.bf16_compute == "avx512_bf16"
                  ? "in bfloat16 (AVX512_BF16)"
                  : "the bfloat16 products through float32 (no AVX512_BF16: slower than f32)");
  std::printf("backends: %s\n", backends.c_str());
  if (s.gpus.empty()) std::printf("GPUs: none (%s)\n", s.gpu_problem.c_str());
  for (const auto& g : s.gpus)
    std::printf("GPU %d: %s, %.1f GiB, compute capability %d.%d (--backend cuda:%d)\n", g.index,
                g.name.c_str(), static_cast<double>(g.memory_bytes) / (1 << 30),
                g.compute_capability / 10, g.compute_capability % 10, g.index);
  return 0;
}

}  // namespace

Command add_info(CLI::App& app) {
  auto a = std::make_shared<InfoArgs>();
  CLI::App* c = app.add_subcommand(
      "info",
      "Describe a PNG (its generation parameters), a model folder or a single-file checkpoint");
  c->add_option("path", a->path, "PNG file, diffusers model folder or .safetensors/.ckpt file");
  c->add_flag("--system", a->system,
              "describe this machine instead: CPU, its features and the kernels chosen for it");
  c->add_option("--variant", a->variant, "for a model folder: the weight-file variant (fp16)");
  c->add_flag("--json", a->json, "print JSON on stdout");
  return [a] {
    if (a->system) return show_system(*a);
    if (a->path.empty())
      throw ConfigError("info: give a PATH (PNG, model folder or file) or --system");
    if (is_png(a->path)) return show_png(*a);
    LoadOptions o;
    o.variant = a->variant;
    const ModelDescription m = inspect_model(resolve_model_argument(a->path), o);
    if (a->json)
      std::cout << model_json(m).dump(2) << "\n";
    else
      print_model(m);
    return 0;
  };
}

}  // namespace diffuse::cli
