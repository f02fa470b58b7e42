// The diffuse executable end to end: exit codes, files written (or not), messages naming the
// culprit.
#include <gtest/gtest.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "common/command.h"
#include "common/fixtures.h"
#include "common/png_bomb.h"

namespace fs = std::filesystem;

namespace {

using diffuse::test::CommandResult;
using diffuse::test::run_shell;

/// Runs the diffuse executable with `args`, optionally prefixed by environment assignments.
CommandResult run(const std::string& args, const std::string& env = "") {
  return diffuse::test::run_diffuse(args, env);
}

std::string tiny() {
  return diffuse::test::fixture("models/tiny-sd1");
}
void expect_failure(const std::string& args, const std::string& fragment,
                    const std::string& output) {
  CommandResult r = run(args);
  EXPECT_EQ(r.code, 1) << args << "\n" << r.err;
  EXPECT_NE(r.err.find(fragment), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("error: "), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(output)) << "partial output written for " << args;
}

}  // namespace

TEST(cli, generate_writes_png_with_parameters_and_json) {
  const std::string out = diffuse::test::temp_path("gen.png");
  CommandResult r =
      run("generate --model " + tiny() +
          " --prompt 'a red fox' --negative-prompt blurry --steps 3 --seed 93 --scheduler "
          "dpmpp-2m-karras "
          "--clip-skip 1 --json -o " +
          out);
  ASSERT_EQ(r.code, 0) << r.err;
  auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["seed"], 93);
  EXPECT_EQ(j["outputs"][0], out);
  EXPECT_GT(j["peak_memory_bytes"].get<double>(), 0);
  EXPECT_TRUE(j["seconds"].contains("denoise"));
  ASSERT_TRUE(fs::exists(out));
  CommandResult info = run("info " + out);
  ASSERT_EQ(info.code, 0) << info.err;
  EXPECT_NE(info.out.find("a red fox\nNegative prompt: blurry\nSteps: 3, Sampler: DPM++ 2M Karras, "
                          "CFG scale: 7.5, Seed: 93, Size: 128x128"),
            std::string::npos)
      << info.out;
  EXPECT_NE(info.out.find("Clip skip: 2"), std::string::npos) << info.out;
}

TEST(cli, image_count_names_files_by_index) {
  const std::string out = diffuse::test::temp_path("batch.png");
  CommandResult r =
      run("generate --model " + tiny() + " -p cat --steps 2 --seed 1 --image-count 2 -o " + out);
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(fs::exists(diffuse::test::temp_dir() + "/batch-0.png"));
  EXPECT_TRUE(fs::exists(diffuse::test::temp_dir() + "/batch-1.png"));
  EXPECT_FALSE(fs::exists(out));
}

TEST(cli, random_seed_is_printed) {
  CommandResult r = run("generate --model " + tiny() + " -p cat --steps 1 -o " +
                        diffuse::test::temp_path("seeded.png"));
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.err.find("seed: "), std::string::npos) << r.err;
}

TEST(cli, img2img_from_png) {
  const std::string out = diffuse::test::temp_path("img2img.png");
  CommandResult r =
      run("generate --model " + tiny() + " -p cat --steps 4 --seed 2 --image " +
          diffuse::test::fixture("golden/img2img-init.png") + " --strength 0.5 -o " + out);
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(fs::exists(out));
}

TEST(cli, bad_input_is_a_clear_error) {
  const std::string out = diffuse::test::temp_path("never.png");
  const std::string m = "generate --model " + tiny() + " -p x -o " + out + " ";
  expect_failure(m + "--steps 0", "steps", out);
  expect_failure(m + "--width 100", "width 100", out);
  expect_failure(m + "--scheduler warp", "warp", out);
  expect_failure(m + "--rng quantum", "quantum", out);
  expect_failure(m + "--image /nonexistent/init.png", "/nonexistent/init.png", out);
  expect_failure(m + "--strength 0.5", "--strength needs --image", out);
  expect_failure(
      m + "--image " + diffuse::test::fixture("golden/img2img-init.png") + " --strength 1.5",
      "strength", out);
  expect_failure(m + "--compute-units gpu", "gpu", out);
  expect_failure(m + "--backend quantum-abacus", "quantum-abacus", out);
  expect_failure(m + "--precision fp8", "precision: unknown 'fp8'", out);
  expect_failure(m + "--vae-tiling sometimes", "VAE tiling 'sometimes'", out);
  expect_failure(m + "--vae-tiling on --vae-tile-size 100", "VAE tile size 100", out);
  expect_failure("generate --model /nonexistent/model -p x -o " + out, "/nonexistent/model", out);
  expect_failure("info /nonexistent.png", "/nonexistent.png", out);
  // Not a PNG.
  const std::string fake = diffuse::test::temp_dir() + "/fake.png";
  std::ofstream(fake) << "not a png";
  expect_failure(m + "--image " + fake, "not a PNG", out);
  // A 16000x16000 header is refused from the header, before 768 MB of pixels are allocated.
  const std::string bomb = diffuse::test::temp_dir() + "/bomb.png";
  const std::vector<uint8_t> bytes = diffuse::test::png_declaring(16000, 16000);
  std::ofstream(bomb, std::ios::binary)
      .write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size()));
  expect_failure(m + "--image " + bomb, "16000x16000", out);
}

// --vae-tiling on decodes a 256x192 image of the tiny model (VAE sample_size 128) in tiles, so
// its pixels differ near the seams from the whole decode (off, and auto at this size), and the
// tiled decode itself matches diffusers (tests/models: vae.tiled_decode_matches_diffusers).
TEST(cli, vae_tiling_decodes_in_tiles_only_when_asked_or_needed) {
  const std::string m = "generate --model " + tiny() +
                        " -p fox --steps 2 --seed 3 -W 256 -H 192 --json --vae-tiling ";
  std::map<std::string, std::vector<char>> png;
  for (const std::string mode : {"on", "off", "auto"}) {
    const std::string out = diffuse::test::temp_path("tiling-" + mode + ".png");
    CommandResult r = run(m + mode + " -o " + out);
    ASSERT_EQ(r.code, 0) << r.err;
    std::ifstream f(out, std::ios::binary);
    png[mode] = std::vector<char>(std::istreambuf_iterator<char>(f), {});
  }
  EXPECT_NE(png["on"], png["off"]);
  EXPECT_EQ(png["auto"], png["off"]);
}

// `diffuse info --system` says which kernels this CPU gets; the element-wise set is one this CPU
// runs (tests/backend checks that every set computes the same bits).
TEST(cli, info_system_names_the_kernels_chosen_for_this_cpu) {
  CommandResult r = run("info --system --json");
  ASSERT_EQ(r.code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_GT(j["hardware_threads"].get<int>(), 0);
  const std::string isa = j["vector_kernels"];
  EXPECT_TRUE(isa == "avx512" || isa == "avx2" || isa == "baseline") << isa;
  const std::string bf16 = j["bf16_compute"];
  EXPECT_TRUE(bf16 == "avx512_bf16" || bf16 == "float32") << bf16;
  EXPECT_NE(j["gemm"].get<std::string>().find("oneDNN"), std::string::npos);
  const std::string conv3x3 = j["conv3x3"];
  EXPECT_TRUE(conv3x3 == "oneDNN winograd" || conv3x3.rfind("own winograd, ", 0) == 0) << conv3x3;
  EXPECT_NE(j["backends"].dump().find("cpu"), std::string::npos);
  // GPUs: the ones the CUDA backend can use, or why there are none (then also in the text).
  ASSERT_TRUE(j["gpus"].is_array());
  const std::string gpu_problem = j["gpu_problem"];
  EXPECT_EQ(j["gpus"].empty(), !gpu_problem.empty()) << j.dump();
  CommandResult text = run("info --system");
  ASSERT_EQ(text.code, 0) << text.err;
  EXPECT_NE(text.out.find("element-wise kernels: " + isa), std::string::npos) << text.out;
  EXPECT_NE(text.out.find("3x3 convolutions: " + conv3x3), std::string::npos) << text.out;
  if (!gpu_problem.empty()) {
    EXPECT_NE(text.out.find("GPUs: none (" + gpu_problem + ")"), std::string::npos) << text.out;
  } else {
    EXPECT_NE(text.out.find("GPU 0: "), std::string::npos) << text.out;
  }
  CommandResult neither = run("info");
  EXPECT_EQ(neither.code, 1);
  EXPECT_NE(neither.err.find("--system"), std::string::npos) << neither.err;
}

TEST(cli, corrupt_weights_name_the_file) {
  const std::string dir = diffuse::test::writable_model_copy("tiny-sd1", "corrupt-model");
  const std::string weights = dir + "/unet/diffusion_pytorch_model.safetensors";
  fs::resize_file(weights, fs::file_size(weights) / 2);  // truncated download
  const std::string out = diffuse::test::temp_path("corrupt.png");
  expect_failure("generate --model " + dir + " -p x -o " + out,
                 "diffusion_pytorch_model.safetensors", out);
}

TEST(cli, tokenize_json_has_77_ids_and_count) {
  CommandResult r = run("tokenize --model " + tiny() + " --json 'a photo of a cat'");
  ASSERT_EQ(r.code, 0) << r.err;
  auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["input_ids"].size(), 77u);
  EXPECT_EQ(j["tokens"], 7);
  EXPECT_EQ(j["input_ids"][0], 49406);
}

TEST(cli, demo_model_runs_without_model_flag) {
  const std::string cache = diffuse::test::temp_dir() + "/cache";
  fs::remove_all(cache);
  const std::string out = diffuse::test::temp_path("demo.png");
  CommandResult r =
      run("generate -p 'a lighthouse' --steps 2 --seed 3 -o " + out, "XDG_CACHE_HOME=" + cache);
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.err.find("noise"), std::string::npos) << r.err;
  EXPECT_TRUE(fs::exists(out));
  // Second run reuses the cached model and reproduces the image bit for bit.
  const std::string out2 = diffuse::test::temp_path("demo2.png");
  ASSERT_EQ(
      run("generate -p 'a lighthouse' --steps 2 --seed 3 -o " + out2, "XDG_CACHE_HOME=" + cache)
          .code,
      0);
  std::ifstream a(out, std::ios::binary), b(out2, std::ios::binary);
  std::stringstream sa, sb;
  sa << a.rdbuf();
  sb << b.rdbuf();
  EXPECT_EQ(sa.str(), sb.str());
}

TEST(cli, bench_reports_stage_times_with_synthetic_weights) {
  CommandResult r = run("bench --config " + tiny() + " --width 128 --height 128 --steps 2 --json");
  ASSERT_EQ(r.code, 0) << r.err;
  auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["synthetic_weights"], true);
  EXPECT_EQ(j["unet_step_s"].size(), 2u);
  EXPECT_GT(j["unet_step_best_s"].get<double>(), 0.0);
  EXPECT_GT(j["vae_decode_s"].get<double>(), 0.0);
  EXPECT_GT(j["peak_rss_mib"].get<double>(), 0.0);
  EXPECT_EQ(j["precision"], "f32");
  // Throughput: counted FLOPs over time, and the machine's own GEMM rate as the yardstick.
  for (const char* key :
       {"unet_step_gflop", "vae_decode_gflop", "unet_gflops", "vae_gflops", "sgemm_gflops"})
    EXPECT_GT(j[key].get<double>(), 0.0) << key;
  CommandResult one = run("bench --config " + tiny() +
                          " --width 128 --height 128 --steps 1 --guidance-scale 1 --json");
  ASSERT_EQ(one.code, 0) << one.err;
  // Without guidance the UNet runs on batch 1: exactly half the arithmetic.
  EXPECT_DOUBLE_EQ(nlohmann::json::parse(one.out)["unet_step_gflop"].get<double>() * 2,
                   j["unet_step_gflop"].get<double>());
  CommandResult bad = run("bench --width 128");
  EXPECT_EQ(bad.code, 1);
  CommandResult int8 = run("bench --config " + tiny() +
                           " --width 128 --height 128 --steps 1 --precision int8 --json");
  ASSERT_EQ(int8.code, 0) << int8.err;
  EXPECT_EQ(nlohmann::json::parse(int8.out)["precision"], "int8");
}

TEST(cli, ctrl_c_stops_and_writes_nothing) {
  const std::string out = diffuse::test::temp_path("interrupted.png");
  // SIGINT once the first step is reported (so the handler is installed however slow loading is
  // on a busy machine); 1000 steps take far longer, and the run must end within a step.
  const std::string log = diffuse::test::temp_path("interrupted.log");
  const std::string script = std::string(DIFFUSE_BINARY) + " generate --model " + tiny() +
                             " -p x --steps 1000 --scheduler euler -o " + out + " 2>" + log +
                             " & pid=$!; for i in $(seq 600); do grep -q 'step' " + log +
                             " && break; sleep 0.1; done; kill -INT $pid; wait $pid; echo rc=$?; "
                             "cat " +
                             log + " >&2";
  CommandResult r = run_shell(script);
  EXPECT_NE(r.out.find("rc=130"), std::string::npos) << r.out << r.err;
  EXPECT_NE(r.err.find("cancelled"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(out));
}

// A signal handler runs on the stack of the thread it interrupts, and oneDNN's JIT kernels move
// that stack into a heap block: a SIGTERM mid-step once overwrote the heap. So every thread but
// the one watcher must have SIGINT and SIGTERM blocked while a generation runs, and SIGTERM
// must cancel it as Ctrl-C does.
TEST(cli, stop_signals_reach_only_the_watcher_thread) {
  const std::string out = diffuse::test::temp_path("terminated.png");
  const std::string log = diffuse::test::temp_path("terminated.log");
  const std::string masks = diffuse::test::temp_path("terminated.masks");
  const std::string script =
      std::string(DIFFUSE_BINARY) + " generate --model " + tiny() +
      " -p x --steps 1000 --scheduler euler --threads 2 -o " + out + " 2>" + log +
      " & pid=$!; for i in $(seq 600); do grep -q 'step' " + log +
      " && break; sleep 0.1; done; for t in /proc/$pid/task/*; do awk '/^SigBlk/ {print $2}' "
      "$t/status; done > " +
      masks + "; kill -TERM $pid; wait $pid; echo rc=$?; cat " + log + " >&2";
  CommandResult r = run_shell(script);
  EXPECT_NE(r.out.find("rc=130"), std::string::npos) << r.out << r.err;
  EXPECT_NE(r.err.find("cancelled"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(out));
  std::ifstream in(masks);
  const unsigned long long stop_bits = (1ull << (SIGINT - 1)) | (1ull << (SIGTERM - 1));
  int threads = 0, taking_signals = 0;
  for (std::string hex; in >> hex; ++threads)
    if ((std::stoull(hex, nullptr, 16) & stop_bits) != stop_bits) ++taking_signals;
  EXPECT_GE(threads, 3) << "main, watcher and at least one kernel thread expected";
  EXPECT_EQ(taking_signals, 1) << threads << " threads";
}

// Needs the library side of LoadOptions::backend / threads and GenerationResult::backend.
TEST(cli, backend_and_threads_reach_the_library_and_json) {
  const std::string out = diffuse::test::temp_path("backend.png");
  CommandResult r = run("generate --model " + tiny() +
                        " -p cat --steps 2 --seed 1 --backend cpu --threads 2 --json -o " + out);
  ASSERT_EQ(r.code, 0) << r.err;
  auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["backend"], "cpu");
  ASSERT_TRUE(j["warnings"].is_array());
  // Every warning in the JSON is also on stderr.
  for (const auto& w : j["warnings"])
    EXPECT_NE(r.err.find("warning: " + w.get<std::string>()), std::string::npos) << r.err;
  // --compute-units is Core ML's spelling of the same choice.
  CommandResult cu = run("generate --model " + tiny() +
                         " -p cat --steps 1 --seed 1 --compute-units cpuOnly --json -o " + out);
  ASSERT_EQ(cu.code, 0) << cu.err;
  EXPECT_EQ(nlohmann::json::parse(cu.out)["backend"], "cpu");
  // One choice, one flag.
  EXPECT_EQ(
      run("generate --model " + tiny() + " -p cat --backend cpu --compute-units cpu -o " + out)
          .code,
      1);
  CommandResult bench = run("bench --config " + tiny() +
                            " --width 64 --height 64 --steps 1 --backend cpu --threads 1 --json");
  ASSERT_EQ(bench.code, 0) << bench.err;
  EXPECT_EQ(nlohmann::json::parse(bench.out)["threads"], 1);
}

namespace {
/// Names in `dir` other than `keep`: temporary files or folders left behind.
std::vector<std::string> leftovers(const std::string& dir, const std::set<std::string>& keep) {
  std::vector<std::string> extra;
  for (const auto& e : fs::directory_iterator(dir))
    if (!keep.count(e.path().filename().string())) extra.push_back(e.path().filename().string());
  return extra;
}
}  // namespace

TEST(cli, concurrent_runs_writing_one_output_leave_a_valid_png) {
  const std::string dir = diffuse::test::fresh_dir("concurrent-out");
  const std::string out = dir + "/same.png";
  const std::string gen =
      std::string(DIFFUSE_BINARY) + " generate --model " + tiny() + " -p cat --steps 2 --seed ";
  CommandResult r = run_shell(gen + "1 -o " + out + " & a=$!; " + gen + "2 -o " + out +
                              " & b=$!; wait $a; ra=$?; wait $b; echo rc=$ra,$?");
  EXPECT_NE(r.out.find("rc=0,0"), std::string::npos) << r.out << r.err;
  CommandResult info = run("info " + out);
  ASSERT_EQ(info.code, 0) << info.err;
  EXPECT_NE(info.out.find("Steps: 2"), std::string::npos) << info.out;
  EXPECT_TRUE(leftovers(dir, {"same.png"}).empty());
}

TEST(cli, output_write_keeps_a_users_tmp_file_and_leaves_none_on_failure) {
  const std::string dir = diffuse::test::fresh_dir("tmp-files");
  const std::string out = dir + "/x.png";
  std::ofstream(out + ".tmp") << "mine";
  ASSERT_EQ(run("generate --model " + tiny() + " -p cat --steps 1 --seed 1 -o " + out).code, 0);
  std::ifstream mine(out + ".tmp");
  std::string content;
  mine >> content;
  EXPECT_EQ(content, "mine");
  // An output path that cannot be replaced (a folder): a clear error, no temporary file left.
  const std::string blocked = dir + "/blocked.png";
  fs::create_directories(blocked + "/inside");
  CommandResult r = run("generate --model " + tiny() + " -p cat --steps 1 --seed 1 -o " + blocked);
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("error: " + blocked), std::string::npos) << r.err;
  EXPECT_TRUE(leftovers(dir, {"x.png", "x.png.tmp", "blocked.png"}).empty());
}

TEST(cli, synth_writes_a_complete_folder_or_nothing) {
  const std::string dir = diffuse::test::fresh_dir("synth");
  const std::string out = dir + "/model";
  CommandResult r = run("synth --config " + tiny() + " --out " + out);
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(fs::exists(out + "/unet/diffusion_pytorch_model.safetensors"));
  EXPECT_TRUE(fs::exists(out + "/tokenizer/vocab.json"));
  ASSERT_EQ(run("generate --model " + out + " -p cat --steps 1 -o " + dir + "/s.png").code, 0);
  // An existing destination is an error, and is left as it was.
  const auto before = fs::last_write_time(out + "/unet/diffusion_pytorch_model.safetensors");
  CommandResult again = run("synth --config " + tiny() + " --out " + out);
  EXPECT_EQ(again.code, 1);
  EXPECT_NE(again.err.find("already exists"), std::string::npos) << again.err;
  EXPECT_EQ(fs::last_write_time(out + "/unet/diffusion_pytorch_model.safetensors"), before);
  // A synth that fails half way (no VAE config) leaves neither the folder nor a temporary one.
  const std::string config = diffuse::test::writable_model_copy("tiny-sd1", "synth-config-no-vae");
  fs::remove(config + "/vae/config.json");
  CommandResult broken = run("synth --config " + config + " --out " + dir + "/half");
  EXPECT_EQ(broken.code, 1);
  EXPECT_NE(broken.err.find("vae"), std::string::npos) << broken.err;
  EXPECT_TRUE(leftovers(dir, {"model", "s.png"}).empty());
}

TEST(cli, synth_writes_16_bit_weight_files_that_generate) {
  const std::string dir = diffuse::test::fresh_dir("synth-f16");
  ASSERT_EQ(run("synth --config " + tiny() + " --dtype f16 --out " + dir + "/model").code, 0);
  const diffuse::SafetensorsFile f =
      diffuse::SafetensorsFile::open(dir + "/model/unet/diffusion_pytorch_model.safetensors");
  EXPECT_EQ(f.info(f.keys().front()).dtype, diffuse::DType::F16);
  CommandResult g = run("generate --model " + dir + "/model -p cat --steps 1 -o " + dir + "/s.png");
  EXPECT_EQ(g.code, 0) << g.err;
  CommandResult bad = run("synth --config " + tiny() + " --dtype int4 --out " + dir + "/x");
  EXPECT_EQ(bad.code, 1);
  EXPECT_NE(bad.err.find("int4"), std::string::npos) << bad.err;
}
