#include "serve/redis_client.h"

#include <hiredis/hiredis.h>

#include <charconv>

namespace diffuse::serve {

std::string RedisUrl::text() const {
  return "redis://" + host + ":" + std::to_string(port) + "/" + std::to_string(db);
}

namespace {

int parse_int(std::string_view s, const std::string& what, const std::string& option) {
  int value = -1;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), value);
  if (ec != std::errc() || end != s.data() + s.size() || value < 0)
    throw std::invalid_argument(option + ": bad " + what + " \"" + std::string(s) + "\"");
  return value;
}

RedisValue convert(const redisReply* r) {
  RedisValue v;
  switch (r->type) {
    case REDIS_REPLY_INTEGER:
      v.type = RedisValue::Type::Integer;
      v.integer = r->integer;
      break;
    case REDIS_REPLY_STRING:
      v.type = RedisValue::Type::String;
      v.str.assign(r->str, r->len);
      break;
    case REDIS_REPLY_STATUS:
      v.type = RedisValue::Type::Status;
      v.str.assign(r->str, r->len);
      break;
    case REDIS_REPLY_ARRAY:
      v.type = RedisValue::Type::Array;
      for (size_t i = 0; i < r->elements; ++i) v.elements.push_back(convert(r->element[i]));
      break;
    default:  // REDIS_REPLY_NIL (errors are handled by the caller)
      break;
  }
  return v;
}

// Error replies of a Redis that is up but cannot serve yet: it is loading its dataset after a
// restart (LOADING), a script blocks it (BUSY), or a replica lost its master (MASTERDOWN). Callers
// treat them like a lost connection: back off, reconnect and retry.
bool is_not_ready_reply(const std::string& message) {
  for (const char* prefix : {"LOADING ", "BUSY ", "MASTERDOWN ", "TRYAGAIN "})
    if (message.rfind(prefix, 0) == 0) return true;
  return false;
}

}  // namespace

RedisUrl parse_redis_url(const std::string& url, const std::string& option) {
  const std::string scheme = "redis://";
  if (url.rfind(scheme, 0) != 0)
    throw std::invalid_argument(option + ": expected redis://HOST:PORT/DB, got \"" + url + "\"");
  std::string_view rest = std::string_view(url).substr(scheme.size());
  RedisUrl out;
  if (const size_t slash = rest.find('/'); slash != std::string_view::npos) {
    if (slash + 1 < rest.size()) out.db = parse_int(rest.substr(slash + 1), "database", option);
    rest = rest.substr(0, slash);
  }
  if (const size_t colon = rest.rfind(':'); colon != std::string_view::npos) {
    out.port = parse_int(rest.substr(colon + 1), "port", option);
    rest = rest.substr(0, colon);
  }
  if (!rest.empty()) out.host = std::string(rest);
  if (out.port == 0 || out.port > 65535)
    throw std::invalid_argument(option + ": port out of range in \"" + url + "\"");
  return out;
}

RedisClient::RedisClient(const RedisUrl& url, std::chrono::milliseconds timeout) : url_(url) {
  timeval tv{static_cast<time_t>(timeout.count() / 1000),
             static_cast<suseconds_t>((timeout.count() % 1000) * 1000)};
  context_ = redisConnectWithTimeout(url.host.c_str(), url.port, tv);
  if (!context_) throw RedisConnectionError("cannot allocate a Redis connection");
  if (context_->err) {
    const std::string message = context_->errstr;
    redisFree(context_);
    context_ = nullptr;
    throw RedisConnectionError("cannot connect to Redis at " + url.text() + ": " + message);
  }
  // Commands never wait longer than this; XREADGROUP's BLOCK stays well below it.
  redisSetTimeout(context_, {static_cast<time_t>(timeout.count() / 1000 + 10), 0});
  if (url.db != 0) command({"SELECT", std::to_string(url.db)});
}

RedisClient::~RedisClient() {
  if (context_) redisFree(context_);
}

RedisValue RedisClient::command(const std::vector<std::string>& args) {
  if (!context_ || context_->err)
    throw RedisConnectionError("the connection to Redis at " + url_.text() + " was lost");
  std::vector<const char*> argv;
  std::vector<size_t> lengths;
  for (const auto& a : args) {
    argv.push_back(a.data());
    lengths.push_back(a.size());
  }
  auto* reply = static_cast<redisReply*>(
      redisCommandArgv(context_, static_cast<int>(args.size()), argv.data(), lengths.data()));
  if (!reply)
    throw RedisConnectionError("lost the connection to Redis at " + url_.text() + ": " +
                               (context_->errstr[0] ? context_->errstr : "no reply"));
  std::unique_ptr<redisReply, void (*)(void*)> owned(reply, freeReplyObject);
  if (reply->type == REDIS_REPLY_ERROR) {
    const std::string message(reply->str, reply->len);
    if (is_not_ready_reply(message))
      throw RedisConnectionError("Redis at " + url_.text() + " is not ready: " + message);
    throw RedisReplyError(args.front() + ": " + message);
  }
  return convert(reply);
}

RedisValue RedisClient::transaction(const std::vector<std::vector<std::string>>& commands) {
  command({"MULTI"});
  try {
    for (const auto& c : commands) command(c);
  } catch (const RedisReplyError&) {
    command({"DISCARD"});
    throw;
  }
  return command({"EXEC"});
}

std::string field_of(const RedisValue& flat, const std::string& name, bool* found) {
  for (size_t i = 0; i + 1 < flat.size(); i += 2)
    if (flat[i].str == name) {
      if (found) *found = true;
      return flat[i + 1].str;
    }
  if (found) *found = false;
  return {};
}

}  // namespace diffuse::serve
