// RedisClient against a one-connection fake server that answers each command with a scripted
// reply: how error replies map to the two exception types the retry loops rely on.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>
#include <thread>
#include <vector>

#include "serve/redis_client.h"

namespace {

using diffuse::serve::RedisClient;
using diffuse::serve::RedisConnectionError;
using diffuse::serve::RedisReplyError;
using diffuse::serve::RedisUrl;

// Listens on an ephemeral port of 127.0.0.1, accepts one client and sends it `replies` in order,
// one per command received (any bytes read count as one command: the client sends one at a time).
class ScriptedRedis {
 public:
  explicit ScriptedRedis(std::vector<std::string> replies) : replies_(std::move(replies)) {
    listener_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t length = sizeof addr;
    if (listener_ < 0 || bind(listener_, reinterpret_cast<sockaddr*>(&addr), length) != 0 ||
        listen(listener_, 1) != 0 ||
        getsockname(listener_, reinterpret_cast<sockaddr*>(&addr), &length) != 0)
      throw std::runtime_error("cannot listen on 127.0.0.1");
    port_ = ntohs(addr.sin_port);
    thread_ = std::thread([this] { serve(); });
  }
  ~ScriptedRedis() {
    shutdown(listener_, SHUT_RDWR);
    close(listener_);
    thread_.join();
  }
  RedisUrl url() const {
    RedisUrl url;
    url.port = port_;
    return url;
  }

 private:
  void serve() {
    const int client = accept(listener_, nullptr, nullptr);
    if (client < 0) return;
    char buffer[4096];
    for (const std::string& reply : replies_) {
      if (read(client, buffer, sizeof buffer) <= 0) break;
      if (write(client, reply.data(), reply.size()) != static_cast<ssize_t>(reply.size())) break;
    }
    close(client);
  }

  std::vector<std::string> replies_;
  int listener_ = -1;
  int port_ = 0;
  std::thread thread_;
};

TEST(redis_client, a_loading_redis_counts_as_not_connected_so_callers_retry) {
  ScriptedRedis redis({"-LOADING Redis is loading the dataset in memory\r\n"});
  RedisClient client(redis.url());
  try {
    client.command({"HMGET", "diffuse:job:x", "status"});
    FAIL() << "a LOADING reply must throw";
  } catch (const RedisConnectionError& e) {
    EXPECT_NE(std::string(e.what()).find("is not ready: LOADING"), std::string::npos) << e.what();
  }
  EXPECT_THROW(client.command({"PING"}), RedisConnectionError) << "the client stays unusable";
}

TEST(redis_client, busy_and_masterdown_replies_are_not_ready_too) {
  for (const char* reply :
       {"-BUSY Redis is busy running a script\r\n", "-MASTERDOWN Link with MASTER is down\r\n"}) {
    ScriptedRedis redis({reply});
    RedisClient client(redis.url());
    EXPECT_THROW(client.command({"GET", "k"}), RedisConnectionError) << reply;
  }
}

TEST(redis_client, other_error_replies_name_the_command_and_keep_the_connection) {
  ScriptedRedis redis(
      {"-WRONGTYPE Operation against a key holding the wrong kind of value\r\n", "+PONG\r\n"});
  RedisClient client(redis.url());
  try {
    client.command({"HGET", "k", "f"});
    FAIL() << "an error reply must throw";
  } catch (const RedisReplyError& e) {
    EXPECT_EQ(std::string(e.what()).rfind("HGET: WRONGTYPE", 0), 0u) << e.what();
  }
  EXPECT_EQ(client.command({"PING"}).str, "PONG");
}

}  // namespace
