// HTTP for the Hub, through libcurl: requests in memory (the API, HEAD metadata) and downloads into
// a file that resume with a Range request. Every response's headers are kept (names lower-cased),
// because the Hub puts a file's metadata (X-Repo-Commit, X-Linked-Etag, X-Linked-Size) on the first
// response of a redirect chain, and the content on the last.
#pragma once

#include <cstdint>
#include <cstdio>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "hub/hub_options.h"

namespace diffuse::hub {

using Headers = std::map<std::string, std::string>;

struct HttpResponse {
  long status = 0;               // the last response's status
  std::vector<long> statuses;    // every response's status, in order (redirects first)
  std::vector<Headers> headers;  // every response's headers, in the same order
  std::string body;              // get(): the body; download(): the body of an error response
  std::string url;               // the last URL requested (after redirects)
  bool resumed = false;          // download(): the server answered the Range with 206

  /// The first response's header `name` (lower case), or "".
  std::string first(const std::string& name) const;
  /// The last response's header `name` (lower case), or "".
  std::string last(const std::string& name) const;
};

/// Called with the bytes of the file held so far and its total size (0 when unknown).
using ByteProgress = std::function<void(uint64_t done, uint64_t total)>;

class HttpClient {
 public:
  explicit HttpClient(const HubOptions& options);
  ~HttpClient();
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  /// GET into memory, following redirects.
  HttpResponse get(const std::string& url);
  /// HEAD, not following redirects (the caller decides which ones to follow).
  HttpResponse head(const std::string& url);
  /// GET into `out` (opened for update), following redirects. With `offset` > 0 it asks for the
  /// rest (Range: bytes=offset-): a 206 appends at `offset`, a 200 rewrites the file from the
  /// start. A non-2xx response leaves `out` as it was and its body in `body`.
  HttpResponse download(const std::string& url, std::FILE* out, uint64_t offset,
                        const ByteProgress& progress);

  struct Transfer;  // one request's state (for libcurl's callbacks)

 private:
  HttpResponse perform(const std::string& url, Transfer& t, bool nobody, bool follow);
  void* curl_ = nullptr;
  std::string token_, user_agent_;
  long connect_timeout_s_;
};

/// Percent-encodes `s` for one URL path segment (as huggingface_hub's quote(s, safe="")).
std::string url_escape(const std::string& s);

}  // namespace diffuse::hub
