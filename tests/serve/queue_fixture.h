// What the scale-out tests start from: a real redis-server on a free loopback port with its own
// temporary folder, `diffuse worker`/`diffuse batch` child processes with their output in log
// files, and a Redis client for looking inside.
#pragma once

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "common/fixtures.h"
#include "serve/redis_client.h"

namespace diffuse::test {

inline constexpr const char* kRedisServer = "/usr/bin/redis-server";

inline int free_loopback_port() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  close(fd);
  return ntohs(a.sin_port);
}

/// A child process with stdout and stderr in `log`.
class Child {
 public:
  Child(std::vector<std::string> argv, const std::string& log) : log_(log) {
    pid_ = fork();
    if (pid_ == 0) {
      if (!freopen(log.c_str(), "w", stdout)) _exit(127);
      dup2(fileno(stdout), STDERR_FILENO);
      std::vector<char*> args;
      for (auto& a : argv) args.push_back(a.data());
      args.push_back(nullptr);
      execv(args[0], args.data());
      _exit(127);
    }
  }
  ~Child() {
    if (running()) kill(SIGKILL);
    wait();
  }
  bool running() {
    if (exited_) return false;
    int status = 0;
    if (waitpid(pid_, &status, WNOHANG) == pid_) record(status);
    return !exited_;
  }
  void kill(int sig) {
    if (!exited_) ::kill(pid_, sig);
  }
  /// Waits for the exit; the exit code, or -1 on a timeout (the child is then killed).
  int wait(std::chrono::seconds timeout = std::chrono::seconds(120)) {
    const auto until = std::chrono::steady_clock::now() + timeout;
    while (running() && std::chrono::steady_clock::now() < until)
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    if (running()) {
      kill(SIGKILL);
      int status = 0;
      waitpid(pid_, &status, 0);
      record(status);
      return -1;
    }
    return code_;
  }
  std::string output() const {
    std::ifstream in(log_);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
  }

 private:
  void record(int status) {
    exited_ = true;
    code_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }
  std::string log_;
  pid_t pid_ = -1;
  bool exited_ = false;
  int code_ = -1;
};

/// Polls `ready` every 20 ms until it holds or `timeout` passes.
inline bool eventually(const std::function<bool()>& ready,
                       std::chrono::milliseconds timeout = std::chrono::seconds(60)) {
  const auto until = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < until) {
    if (ready()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return false;
}

class QueueTest : public ::testing::Test {
 public:
  void SetUp() override {
    if (!std::filesystem::exists(kRedisServer))
      GTEST_SKIP() << kRedisServer << " is absent (scripts/bootstrap.sh installs redis-server)";
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = std::filesystem::path(test::temp_dir()) / ("queue-" + std::string(info->name()));
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_ / "models");
    std::filesystem::create_directory_symlink(fixture("models/tiny-sd1"),
                                              dir_ / "models" / "tiny-sd1");
    port_ = free_loopback_port();
  }
  void TearDown() override {
    workers_.clear();
    redis_.reset();
  }

  std::string url() const { return "redis://127.0.0.1:" + std::to_string(port_) + "/0"; }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }

  /// Starts redis-server (append-only file fsynced on every write when `aof`).
  void start_redis(bool aof = false) {
    std::vector<std::string> argv = {kRedisServer,  "--port",    std::to_string(port_),
                                     "--bind",      "127.0.0.1", "--dir",
                                     dir_.string(), "--save",    ""};
    if (aof) argv.insert(argv.end(), {"--appendonly", "yes", "--appendfsync", "always"});
    redis_ = std::make_unique<Child>(argv, path("redis.log"));
    ASSERT_TRUE(eventually([&] {
      try {
        serve::RedisClient c(serve::parse_redis_url(url(), "test"));
        return c.command({"PING"}).str == "PONG";
      } catch (const serve::RedisConnectionError&) {
        return false;
      } catch (const serve::RedisReplyError&) {
        return false;  // LOADING: still reading its append-only file
      }
    })) << "redis-server did not start";
  }
  serve::RedisValue redis(const std::vector<std::string>& command) {
    serve::RedisClient c(serve::parse_redis_url(url(), "test"));
    return c.command(command);
  }

  Child& start_worker(const std::string& name, std::vector<std::string> extra = {}) {
    std::vector<std::string> argv = {DIFFUSE_BINARY, "worker", "--queue", url(),       "--models",
                                     path("models"), "--name", name,      "--threads", "1"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    workers_.push_back(std::make_unique<Child>(argv, path(name + ".log")));
    return *workers_.back();
  }
  /// Writes a jobs file and starts `diffuse batch` on it.
  std::unique_ptr<Child> start_batch(const std::string& name, const std::vector<std::string>& lines,
                                     const std::string& out) {
    std::ofstream f(path(name + ".jsonl"));
    for (const auto& l : lines) f << l << "\n";
    f.close();
    return std::make_unique<Child>(
        std::vector<std::string>{DIFFUSE_BINARY, "batch", "--queue", url(), path(name + ".jsonl"),
                                 "-o", path(out), "--timeout", "240"},
        path(name + "-batch.log"));
  }

  std::filesystem::path dir_;
  int port_ = 0;
  std::unique_ptr<Child> redis_;
  std::vector<std::unique_ptr<Child>> workers_;
};

}  // namespace diffuse::test
