// diffuse::hub::pull against a fake Hub: the cache layout huggingface_hub uses, no second download,
// resumed and verified downloads, and the errors people meet (gated, missing, offline, unsafe).
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <set>

#include "hub/hub_cache.h"
#include "hub/hub_download.h"
#include "hub/hub_test_util.h"

namespace fs = std::filesystem;
using namespace diffuse::test;
using diffuse::hub::HubError;
using diffuse::hub::PullRequest;
using diffuse::hub::PullResult;

namespace {

const std::set<std::string> kTinyPipelineFiles = {"model_index.json",
                                                  "scheduler/scheduler_config.json",
                                                  "text_encoder/config.json",
                                                  "text_encoder/model.safetensors",
                                                  "tokenizer/merges.txt",
                                                  "tokenizer/special_tokens_map.json",
                                                  "tokenizer/tokenizer_config.json",
                                                  "tokenizer/vocab.json",
                                                  "unet/config.json",
                                                  "unet/diffusion_pytorch_model.safetensors",
                                                  "vae/config.json",
                                                  "vae/diffusion_pytorch_model.safetensors"};

std::set<std::string> names(const PullResult& r) {
  std::set<std::string> s;
  for (const auto& f : r.files) s.insert(f.name);
  return s;
}

PullRequest request(const std::string& repo, const std::string& revision = "main") {
  PullRequest r;
  r.repo_id = repo;
  r.revision = revision;
  return r;
}

std::string repo_root(const std::string& cache) {
  return cache + "/models--org--tiny";
}

}  // namespace

TEST(hub_pull, pipeline_files_land_in_huggingface_hub_cache_layout) {
  FakeHub hub;
  const FakeRepo repo = tiny_repo();
  hub.add_repo("org/tiny", repo);
  const std::string cache = fresh_dir_for_test("cache");
  const PullResult r = diffuse::hub::pull(request("org/tiny"), hub_options(hub, cache));
  EXPECT_EQ(r.commit, repo.commit);
  EXPECT_EQ(r.snapshot_dir, repo_root(cache) + "/snapshots/" + repo.commit);
  EXPECT_EQ(names(r), kTinyPipelineFiles);
  for (const auto& f : r.files) {
    const FakeFile& src = repo.files.at(f.name);
    const fs::path link = r.snapshot_dir + "/" + f.name;
    ASSERT_TRUE(fs::is_symlink(link)) << link;
    const int depth = static_cast<int>(std::count(f.name.begin(), f.name.end(), '/'));
    std::string expect = "../../";
    for (int i = 0; i < depth; ++i) expect += "../";
    EXPECT_EQ(fs::read_symlink(link).string(), expect + "blobs/" + src.etag()) << f.name;
    EXPECT_EQ(read_bytes(link.string()), src.content) << f.name;
    EXPECT_TRUE(f.downloaded);
  }
  EXPECT_EQ(read_bytes(repo_root(cache) + "/refs/main"), repo.commit);
  for (const auto& e : fs::directory_iterator(repo_root(cache) + "/blobs"))
    EXPECT_EQ(e.path().extension(), "") << "left behind: " << e.path();
  // The three weight files came through the CDN redirect; the .bin, .onnx, .ckpt never.
  EXPECT_EQ(hub.count("GET", "/cdn/"), 3u);
  EXPECT_EQ(hub.count("GET", "/api/models/org/tiny/revision/main"), 1u);
  bool safety_reported = false;
  for (const auto& c : r.choices) safety_reported |= c.rfind("safety_checker: skipped", 0) == 0;
  EXPECT_FALSE(safety_reported) << "tiny-sd1 has no safety_checker component";
}

TEST(hub_pull, second_pull_downloads_nothing) {
  FakeHub hub;
  hub.add_repo("org/tiny", tiny_repo());
  const std::string cache = fresh_dir_for_test("cache");
  diffuse::hub::pull(request("org/tiny"), hub_options(hub, cache));
  hub.clear_requests();
  const PullResult again = diffuse::hub::pull(request("org/tiny"), hub_options(hub, cache));
  EXPECT_EQ(names(again), kTinyPipelineFiles);
  for (const auto& f : again.files) EXPECT_FALSE(f.downloaded) << f.name;
  // Only the API call that resolves main to its commit: the commit's snapshot is complete.
  EXPECT_EQ(hub.requests().size(), 1u);
  EXPECT_EQ(hub.count("GET", "/api/"), 1u);
}

TEST(hub_pull, blobs_of_another_snapshot_are_reused) {
  FakeHub hub;
  FakeRepo repo = tiny_repo();
  hub.add_repo("org/tiny", repo);
  const std::string cache = fresh_dir_for_test("cache");
  diffuse::hub::pull(request("org/tiny"), hub_options(hub, cache));
  repo.commit = std::string(40, 'b');  // a new commit with the same files
  hub.add_repo("org/tiny", repo);
  hub.clear_requests();
  const PullResult r = diffuse::hub::pull(request("org/tiny"), hub_options(hub, cache));
  EXPECT_EQ(r.commit, repo.commit);
  EXPECT_EQ(hub.count("GET", "/cdn/"), 0u);
  EXPECT_EQ(hub.count("GET", "/org/"), 0u);
  EXPECT_EQ(hub.count("HEAD", "/org/tiny/resolve/"), kTinyPipelineFiles.size());
  EXPECT_EQ(read_bytes(repo_root(cache) + "/refs/main"), repo.commit);
  EXPECT_EQ(read_bytes(r.snapshot_dir + "/unet/config.json"),
            repo.files.at("unet/config.json").content);
}

TEST(hub_pull, partial_download_is_resumed_with_a_range_request) {
  FakeHub hub;
  const FakeRepo repo = tiny_repo();
  hub.add_repo("org/tiny", repo);
  const std::string cache = fresh_dir_for_test("cache");
  const FakeFile& unet = repo.files.at("unet/diffusion_pytorch_model.safetensors");
  const size_t half = unet.content.size() / 2;
  fs::create_directories(repo_root(cache) + "/blobs");
  std::ofstream(repo_root(cache) + "/blobs/" + unet.etag() + ".incomplete", std::ios::binary)
      << unet.content.substr(0, half);
  const PullResult r = diffuse::hub::pull(request("org/tiny"), hub_options(hub, cache));
  bool ranged = false;
  for (const auto& q : hub.requests())
    ranged |= q.path == "/cdn/" + unet.etag() && q.range == "bytes=" + std::to_string(half) + "-";
  EXPECT_TRUE(ranged);
  EXPECT_EQ(read_bytes(r.snapshot_dir + "/unet/diffusion_pytorch_model.safetensors"), unet.content);
  for (const auto& f : r.files)
    EXPECT_EQ(f.resumed, f.name == "unet/diffusion_pytorch_model.safetensors") << f.name;
  EXPECT_FALSE(fs::exists(repo_root(cache) + "/blobs/" + unet.etag() + ".incomplete"));
}

TEST(hub_pull, sha256_mismatch_is_an_error_and_leaves_no_blob) {
  FakeHub hub;
  FakeRepo repo = tiny_repo();
  repo.files["unet/diffusion_pytorch_model.safetensors"].corrupt = true;
  hub.add_repo("org/tiny", repo);
  const std::string cache = fresh_dir_for_test("cache");
  const std::string etag = repo.files.at("unet/diffusion_pytorch_model.safetensors").etag();
  expect_error_mentioning<HubError>(
      [&] { diffuse::hub::pull(request("org/tiny"), hub_options(hub, cache)); },
      {"unet/diffusion_pytorch_model.safetensors", "sha256"});
  EXPECT_FALSE(fs::exists(repo_root(cache) + "/blobs/" + etag));
  EXPECT_FALSE(fs::exists(repo_root(cache) + "/blobs/" + etag + ".incomplete"));
  EXPECT_FALSE(fs::exists(repo_root(cache) + "/snapshots/" + repo.commit +
                          "/unet/diffusion_pytorch_model.safetensors"));
  EXPECT_FALSE(fs::exists(repo_root(cache) + "/refs/main")) << "a failed pull names no commit";
}

TEST(hub_pull, gated_repository_needs_the_token) {
  FakeHub hub;
  FakeRepo repo = tiny_repo();
  repo.gated = true;
  hub.add_repo("org/tiny", repo);
  const std::string cache = fresh_dir_for_test("cache");
  expect_error_mentioning<HubError>(
      [&] { diffuse::hub::pull(request("org/tiny"), hub_options(hub, cache)); },
      {"org/tiny", "401", "HF_TOKEN", "gated"});
  auto options = hub_options(hub, cache);
  options.token = "wrong";
  expect_error_mentioning<HubError>([&] { diffuse::hub::pull(request("org/tiny"), options); },
                                    {"401", "token"});
  hub.clear_requests();
  options.token = hub.token;
  const PullResult r = diffuse::hub::pull(request("org/tiny"), options);
  EXPECT_EQ(names(r), kTinyPipelineFiles);
  for (const auto& q : hub.requests()) {
    if (q.path.rfind("/cdn/", 0) == 0) continue;
    EXPECT_EQ(q.authorization, "Bearer secret-token") << q.path;
  }
}

TEST(hub_pull, missing_repository_revision_and_file_are_named) {
  FakeHub hub;
  hub.add_repo("org/tiny", tiny_repo());
  const std::string cache = fresh_dir_for_test("cache");
  const auto options = hub_options(hub, cache);
  PullRequest bad_revision = request("org/tiny", "v9");
  expect_error_mentioning<HubError>([&] { diffuse::hub::pull(bad_revision, options); },
                                    {"revision 'v9' not found", "org/tiny", "404"});
  expect_error_mentioning<HubError>([&] { diffuse::hub::pull(request("org/missing"), options); },
                                    {"repository org/missing not found", "404"});
  expect_error_mentioning<HubError>([&] { diffuse::hub::pull(request("no-slash"), options); },
                                    {"not a Hugging Face repository id"});
}

TEST(hub_pull, file_names_climbing_out_of_the_snapshot_are_refused) {
  for (const std::string evil : {"../evil.json", "unet/../../evil.json", "/etc/evil"}) {
    FakeHub hub;
    FakeRepo repo = tiny_repo();
    repo.files[evil] = {"x", false};
    hub.add_repo("org/tiny", repo);
    const std::string cache = fresh_dir_for_test("cache");
    expect_error_mentioning<HubError>(
        [&] { diffuse::hub::pull(request("org/tiny"), hub_options(hub, cache)); },
        {"refusing", evil});
    EXPECT_EQ(hub.count("GET", "/org/") + hub.count("HEAD"), 0u) << evil;
    EXPECT_FALSE(fs::exists(cache + "/evil.json"));
  }
}

TEST(hub_pull, offline_resolves_from_the_cache_only) {
  FakeHub hub;
  hub.add_repo("org/tiny", tiny_repo());
  const std::string cache = fresh_dir_for_test("cache");
  auto options = hub_options(hub, cache);
  options.offline = true;
  expect_error_mentioning<HubError>([&] { diffuse::hub::pull(request("org/tiny"), options); },
                                    {"HF_HUB_OFFLINE", "org/tiny", "not in the cache", cache});
  options.offline = false;
  const PullResult online = diffuse::hub::pull(request("org/tiny"), options);
  hub.clear_requests();
  options.offline = true;
  const PullResult offline = diffuse::hub::pull(request("org/tiny"), options);
  EXPECT_EQ(offline.snapshot_dir, online.snapshot_dir);
  EXPECT_EQ(names(offline), kTinyPipelineFiles);
  EXPECT_EQ(hub.requests().size(), 0u);
  PullRequest by_commit = request("org/tiny", online.commit);
  EXPECT_EQ(diffuse::hub::pull(by_commit, options).snapshot_dir, online.snapshot_dir);
}

TEST(hub_pull, cached_model_resolution_for_generate) {
  FakeHub hub;
  hub.add_repo("org/tiny", tiny_repo());
  const std::string cache = fresh_dir_for_test("cache");
  const auto options = hub_options(hub, cache);
  expect_error_mentioning<HubError>(
      [&] { diffuse::hub::resolve_cached_model("org/tiny", options); },
      {"org/tiny", "diffuse pull org/tiny"});
  const PullResult r = diffuse::hub::pull(request("org/tiny"), options);
  EXPECT_EQ(diffuse::hub::resolve_cached_model("org/tiny", options), r.snapshot_dir);
  // Existing paths and names that are no repo id are the caller's to use as given.
  EXPECT_EQ(diffuse::hub::resolve_cached_model(fixture("models/tiny-sd1"), options), std::nullopt);
  EXPECT_EQ(diffuse::hub::resolve_cached_model("some/local/folder", options), std::nullopt);
  EXPECT_EQ(diffuse::hub::resolve_cached_model("", options), std::nullopt);
  // org/name@revision: a branch or a commit of the cache; one not pulled is named.
  EXPECT_EQ(diffuse::hub::resolve_cached_model("org/tiny@main", options), r.snapshot_dir);
  EXPECT_EQ(diffuse::hub::resolve_cached_model("org/tiny@" + r.commit, options), r.snapshot_dir);
  expect_error_mentioning<HubError>(
      [&] { diffuse::hub::resolve_cached_model("org/tiny@v2", options); },
      {"org/tiny@v2", "--revision v2"});
  EXPECT_EQ(diffuse::hub::resolve_cached_model("org/tiny@", options), std::nullopt);
}

TEST(hub_pull, include_patterns_take_just_the_matches) {
  FakeHub hub;
  FakeRepo repo;
  repo.files["sd_xl_base.safetensors"] = {"weights", true};
  repo.files["README.md"] = {"readme", false};
  repo.files["lora/a.safetensors"] = {"lora", true};
  hub.add_repo("org/single", repo);
  const std::string cache = fresh_dir_for_test("cache");
  const auto options = hub_options(hub, cache);
  expect_error_mentioning<HubError>([&] { diffuse::hub::pull(request("org/single"), options); },
                                    {"no model_index.json", "--include"});
  PullRequest req = request("org/single");
  req.include = {"*.safetensors"};
  PullResult r = diffuse::hub::pull(req, options);
  EXPECT_EQ(names(r), (std::set<std::string>{"lora/a.safetensors", "sd_xl_base.safetensors"}));
  req.include = {"lora/"};
  r = diffuse::hub::pull(req, options);
  EXPECT_EQ(names(r), (std::set<std::string>{"lora/a.safetensors"}));
  req.include = {"*.ckpt"};
  expect_error_mentioning<HubError>([&] { diffuse::hub::pull(req, options); },
                                    {"no file of org/single matches"});
}

TEST(hub_pull, variant_weights_per_component) {
  FakeHub hub;
  FakeRepo repo;
  repo.files["model_index.json"] = {R"({"_class_name": "StableDiffusionPipeline",
      "unet": ["diffusers", "UNet2DConditionModel"], "text_encoder": ["transformers", "CLIPTextModel"],
      "vae": ["diffusers", "AutoencoderKL"], "safety_checker": ["stable_diffusion", "SafetyChecker"],
      "feature_extractor": ["transformers", "CLIPImageProcessor"], "scheduler": ["diffusers", "PNDMScheduler"]})",
                                    false};
  for (const std::string f :
       {"unet/diffusion_pytorch_model.safetensors", "unet/diffusion_pytorch_model.fp16.safetensors",
        "unet/diffusion_pytorch_model.bin", "unet/diffusion_pytorch_model.fp16.bin",
        "unet/diffusion_pytorch_model.msgpack", "text_encoder/model.safetensors",
        "text_encoder/pytorch_model.fp16.bin", "vae/diffusion_pytorch_model.bin",
        "safety_checker/model.safetensors", "v1-5-pruned.ckpt", "v1-5-pruned.safetensors"})
    repo.files[f] = {f, true};
  for (const std::string f : {"unet/config.json", "text_encoder/config.json", "vae/config.json",
                              "safety_checker/config.json", "scheduler/scheduler_config.json",
                              "feature_extractor/preprocessor_config.json"})
    repo.files[f] = {"{}", false};
  hub.add_repo("org/variants", repo);
  const std::string cache = fresh_dir_for_test("cache");
  PullRequest req = request("org/variants");
  req.variant = "fp16";
  const PullResult fp16 = diffuse::hub::pull(req, hub_options(hub, cache));
  const std::set<std::string> common = {"model_index.json",
                                        "unet/config.json",
                                        "text_encoder/config.json",
                                        "text_encoder/model.safetensors",
                                        "vae/config.json",
                                        "vae/diffusion_pytorch_model.bin",
                                        "scheduler/scheduler_config.json",
                                        "feature_extractor/preprocessor_config.json"};
  std::set<std::string> expect = common;
  expect.insert("unet/diffusion_pytorch_model.fp16.safetensors");
  EXPECT_EQ(names(fp16), expect);
  bool safety_reported = false;
  for (const auto& c : fp16.choices) safety_reported |= c.rfind("safety_checker: skipped", 0) == 0;
  EXPECT_TRUE(safety_reported);
  const PullResult plain = diffuse::hub::pull(request("org/variants"), hub_options(hub, cache));
  expect = common;
  expect.insert("unet/diffusion_pytorch_model.safetensors");
  EXPECT_EQ(names(plain), expect);
}

TEST(hub_pull, unreachable_endpoint_names_the_url) {
  diffuse::hub::HubOptions options;
  options.cache_dir = fresh_dir_for_test("cache");
  options.endpoint = "http://127.0.0.1:1";  // nothing listens on port 1 (tcpmux)
  expect_error_mentioning<HubError>(
      [&] { diffuse::hub::pull(request("org/tiny"), options); },
      {"cannot reach " + options.endpoint + "/api/models/org/tiny/revision/main"});
}
