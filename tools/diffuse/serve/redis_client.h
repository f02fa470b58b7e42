// A small synchronous Redis client over hiredis (Debian's libhiredis-dev): one connection,
// binary-safe commands given as argument vectors, replies copied into plain values so callers
// never hold hiredis memory. Used by `diffuse worker`, `diffuse batch` and `serve --queue`.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

struct redisContext;

namespace diffuse::serve {

/// The connection failed or was lost: the caller reconnects (with backoff) and retries.
class RedisConnectionError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// Redis answered with an error reply ("WRONGTYPE ...", "BUSYGROUP ...").
class RedisReplyError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// redis://HOST:PORT/DB (PORT defaults to 6379, DB to 0).
struct RedisUrl {
  std::string host = "127.0.0.1";
  int port = 6379;
  int db = 0;
  std::string text() const;
};
/// Parses a queue URL; std::invalid_argument naming `option` when malformed.
RedisUrl parse_redis_url(const std::string& url, const std::string& option);

struct RedisValue {
  enum class Type { Nil, Integer, String, Status, Array };
  Type type = Type::Nil;
  int64_t integer = 0;
  std::string str;
  std::vector<RedisValue> elements;

  bool nil() const { return type == Type::Nil; }
  bool is_array() const { return type == Type::Array; }
  size_t size() const { return elements.size(); }
  const RedisValue& operator[](size_t i) const { return elements.at(i); }
};

class RedisClient {
 public:
  /// Connects and selects the URL's database; RedisConnectionError when it cannot.
  explicit RedisClient(const RedisUrl& url,
                       std::chrono::milliseconds timeout = std::chrono::seconds(5));
  ~RedisClient();
  RedisClient(const RedisClient&) = delete;
  RedisClient& operator=(const RedisClient&) = delete;

  /// Runs one command. RedisConnectionError when the connection is lost or Redis is not ready
  /// to serve (LOADING after a restart): this client is then unusable. RedisReplyError for any
  /// other error reply.
  RedisValue command(const std::vector<std::string>& args);
  /// Runs the commands in one MULTI/EXEC transaction; the replies of EXEC.
  RedisValue transaction(const std::vector<std::vector<std::string>>& commands);

  const RedisUrl& url() const { return url_; }

 private:
  RedisUrl url_;
  redisContext* context_ = nullptr;
};

/// A field of a flat [field, value, field, value, ...] reply (HGETALL, stream entries); empty
/// when absent.
std::string field_of(const RedisValue& flat, const std::string& name, bool* found = nullptr);

}  // namespace diffuse::serve
