// `diffuse pull` and `generate --model org/name` end to end: the executable against a fake Hub,
// with HF_HOME in a scratch folder.
#include <gtest/gtest.h>

#include <filesystem>

#include "common/command.h"
#include "hub/hub_test_util.h"

namespace fs = std::filesystem;
using namespace diffuse::test;

namespace {

/// The environment for one run: HF_HOME in `home`, the fake Hub as endpoint, no inherited token.
std::string env_for(const FakeHub& hub, const std::string& home, const std::string& extra = "") {
  return "env -u HF_TOKEN -u HUGGING_FACE_HUB_TOKEN -u HF_HUB_CACHE -u HF_HUB_OFFLINE -u "
         "HF_TOKEN_PATH HF_HOME=" +
         home + " HF_ENDPOINT=" + hub.endpoint() + " " + extra;
}

int lines(const std::string& s) {
  return static_cast<int>(std::count(s.begin(), s.end(), '\n'));
}

}  // namespace

TEST(hub_cli, pull_then_generate_by_repo_id_matches_the_local_folder) {
  FakeHub hub;
  hub.add_repo("org/tiny-sd1", tiny_repo());  // named as the fixture: the PNGs name the model
  const std::string home = fresh_dir_for_test("home"), out = fresh_dir_for_test("out");
  CommandResult pull = run_diffuse("pull org/tiny-sd1", env_for(hub, home));
  ASSERT_EQ(pull.code, 0) << pull.err;
  const std::string snapshot = home + "/hub/models--org--tiny-sd1/snapshots/" + tiny_repo().commit;
  EXPECT_EQ(pull.out, snapshot + "\n");
  EXPECT_NE(pull.err.find("unet: diffusion_pytorch_model.safetensors"), std::string::npos)
      << pull.err;
  const std::string args = " --prompt 'a red fox' --steps 2 --seed 7 -o ";
  CommandResult cached = run_diffuse("generate --model org/tiny-sd1" + args + out + "/hub.png",
                                     env_for(hub, home, "HF_HUB_OFFLINE=1"));
  ASSERT_EQ(cached.code, 0) << cached.err;
  CommandResult local =
      run_diffuse("generate --model " + fixture("models/tiny-sd1") + args + out + "/local.png",
                  env_for(hub, home));
  ASSERT_EQ(local.code, 0) << local.err;
  const std::string a = read_bytes(out + "/hub.png"), b = read_bytes(out + "/local.png");
  EXPECT_FALSE(a.empty());
  EXPECT_TRUE(a == b) << "the image from the pulled model differs from the fixture folder's";

  // info, bench and convert take the repo id too.
  const std::string offline = env_for(hub, home, "HF_HUB_OFFLINE=1");
  CommandResult info = run_diffuse("info org/tiny-sd1", offline);
  ASSERT_EQ(info.code, 0) << info.err;
  EXPECT_NE(info.out.find(snapshot + ": diffusers folder"), std::string::npos) << info.out;
  CommandResult bench = run_diffuse("bench -m org/tiny-sd1 -W 64 -H 64 --steps 1 --json", offline);
  EXPECT_EQ(bench.code, 0) << bench.err;
  // A worker serves a cached repo under its name (the stream diffuse:jobs:tiny-sd1); with no
  // Redis at that port it loads the model and then waits for one, until stopped.
  CommandResult worker = run_diffuse(
      "worker --queue redis://127.0.0.1:9/0 --threads 1 --model org/tiny-sd1 & pid=$!; "
      "sleep 5; kill -TERM $pid; wait $pid",
      offline);
  EXPECT_NE(worker.err.find("loading tiny-sd1"), std::string::npos) << worker.err;
  CommandResult convert =
      run_diffuse("convert org/tiny-sd1 --precision int8 -o " + out + "/pkg", offline);
  ASSERT_EQ(convert.code, 0) << convert.err;
  EXPECT_TRUE(fs::exists(out + "/pkg/diffuse.json"));

  // org/name@revision: pull and generate name a revision (here the commit and the branch).
  CommandResult by_commit =
      run_diffuse("pull org/tiny-sd1@" + tiny_repo().commit, env_for(hub, home));
  ASSERT_EQ(by_commit.code, 0) << by_commit.err;
  EXPECT_EQ(by_commit.out, snapshot + "\n");
  CommandResult at_main =
      run_diffuse("generate --model org/tiny-sd1@main" + args + out + "/at-main.png", offline);
  ASSERT_EQ(at_main.code, 0) << at_main.err;
  EXPECT_TRUE(read_bytes(out + "/at-main.png") == b);
  CommandResult clash = run_diffuse("pull org/tiny-sd1@main --revision v2", env_for(hub, home));
  EXPECT_EQ(clash.code, 1);
  EXPECT_NE(clash.err.find("--revision v2"), std::string::npos) << clash.err;
}

TEST(hub_cli, output_folder_is_a_plain_copy_of_the_snapshot) {
  FakeHub hub;
  const FakeRepo repo = tiny_repo();
  hub.add_repo("org/tiny", repo);
  const std::string home = fresh_dir_for_test("home"), dir = fresh_dir_for_test("out") + "/tiny";
  CommandResult r = run_diffuse("pull org/tiny -o " + dir, env_for(hub, home));
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, dir + "\n");
  EXPECT_FALSE(fs::is_symlink(dir + "/unet/diffusion_pytorch_model.safetensors"));
  EXPECT_EQ(read_bytes(dir + "/unet/diffusion_pytorch_model.safetensors"),
            repo.files.at("unet/diffusion_pytorch_model.safetensors").content);
  EXPECT_FALSE(fs::exists(dir + "/unet/diffusion_pytorch_model.bin"));
  r = run_diffuse("pull org/tiny -o " + dir, env_for(hub, home));
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("nothing is overwritten"), std::string::npos) << r.err;
}

TEST(hub_cli, generate_with_an_uncached_repo_id_says_to_pull) {
  FakeHub hub;
  const std::string home = fresh_dir_for_test("home");
  CommandResult r =
      run_diffuse("generate --model org/absent --prompt x --steps 1", env_for(hub, home));
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(lines(r.err), 1) << r.err;
  EXPECT_NE(r.err.find("error: "), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("diffuse pull org/absent"), std::string::npos) << r.err;
  EXPECT_EQ(hub.requests().size(), 0u) << "generate never goes to the network";
  r = run_diffuse("serve --model org/absent --port 0", env_for(hub, home));
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("diffuse pull org/absent"), std::string::npos) << r.err;
  r = run_diffuse("worker --queue redis://127.0.0.1:9/0 --model org/absent", env_for(hub, home));
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("diffuse pull org/absent"), std::string::npos) << r.err;
  r = run_diffuse("worker --queue redis://127.0.0.1:9/0", env_for(hub, home));
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("--models FOLDER or --model MODEL"), std::string::npos) << r.err;
}

TEST(hub_cli, gated_repo_message_and_token_sources) {
  FakeHub hub;
  FakeRepo repo = tiny_repo();
  repo.gated = true;
  hub.add_repo("org/tiny", repo);
  const std::string home = fresh_dir_for_test("home");
  CommandResult r = run_diffuse("pull org/tiny", env_for(hub, home));
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("HF_TOKEN"), std::string::npos) << r.err;
  r = run_diffuse("pull org/tiny", env_for(hub, home, "HF_TOKEN=" + hub.token));
  EXPECT_EQ(r.code, 0) << r.err;
  fs::remove_all(home + "/hub");
  std::ofstream(home + "/token") << hub.token << "\n";
  hub.clear_requests();
  r = run_diffuse("pull org/tiny", env_for(hub, home));
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(hub.requests().at(0).authorization, "Bearer " + hub.token);
}

TEST(hub_cli, offline_and_unreachable_errors_are_one_line) {
  const std::string endpoint = "http://127.0.0.1:1";  // nothing listens on port 1 (tcpmux)
  const std::string home = fresh_dir_for_test("home");
  const std::string env = "env -u HF_TOKEN -u HF_HUB_CACHE -u HF_HUB_OFFLINE HF_HOME=" + home +
                          " HF_ENDPOINT=" + endpoint;
  CommandResult r = run_diffuse("pull org/tiny", env);
  EXPECT_EQ(r.code, 1);
  const size_t at = r.err.find("error: cannot reach " + endpoint + "/api/models/org/tiny/");
  ASSERT_NE(at, std::string::npos) << r.err;
  EXPECT_EQ(r.err.find('\n', at), r.err.size() - 1) << r.err;
  r = run_diffuse("pull org/tiny", env + " HF_HUB_OFFLINE=1");
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(lines(r.err), 1) << r.err;
  EXPECT_NE(r.err.find("HF_HUB_OFFLINE"), std::string::npos) << r.err;
}
