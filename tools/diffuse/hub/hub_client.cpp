#include "hub/hub_client.h"

#include <curl/curl.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <memory>

namespace diffuse::hub {

namespace {

/// curl_global_init once per process, curl_global_cleanup at exit.
struct CurlGlobal {
  CurlGlobal() { curl_global_init(CURL_GLOBAL_DEFAULT); }
  ~CurlGlobal() { curl_global_cleanup(); }
};
void ensure_curl_global() {
  static CurlGlobal global;
}

constexpr size_t kMaxErrorBody = 64 * 1024;

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}
std::string trim(const std::string& s) {
  const size_t b = s.find_first_not_of(" \t\r\n");
  if (b == std::string::npos) return "";
  return s.substr(b, s.find_last_not_of(" \t\r\n") - b + 1);
}

}  // namespace

/// One request's state, shared with curl's callbacks.
struct HttpClient::Transfer {
  HttpResponse response;
  std::FILE* out = nullptr;  // download(): the file; get(): nullptr (the body goes to memory)
  uint64_t offset = 0;       // bytes of the file held before this request
  uint64_t written = 0;      // bytes of the file held now
  uint64_t total = 0;        // the whole file's size, when the response says
  bool started = false;      // the first body byte of the last response has been handled
  bool failed_write = false;
  const ByteProgress* progress = nullptr;

  bool success() const { return response.status >= 200 && response.status < 300; }
  bool begin_body();
};

std::string HttpResponse::first(const std::string& name) const {
  if (headers.empty()) return "";
  auto it = headers.front().find(name);
  return it == headers.front().end() ? "" : it->second;
}
std::string HttpResponse::last(const std::string& name) const {
  if (headers.empty()) return "";
  auto it = headers.back().find(name);
  return it == headers.back().end() ? "" : it->second;
}

/// Before the first byte of a successful download body: position the file for a 206 (append at
/// `offset`, which Content-Range must confirm) or a 200 (rewrite from the start).
bool HttpClient::Transfer::begin_body() {
  started = true;
  const std::string length = response.last("content-length");
  if (response.status == 206) {
    const std::string range = response.last("content-range");  // bytes START-END/TOTAL
    const std::string expect = "bytes " + std::to_string(offset) + "-";
    if (range.compare(0, expect.size(), expect) != 0) return false;
    const size_t slash = range.find('/');
    if (slash != std::string::npos && range.substr(slash + 1) != "*")
      total = std::strtoull(range.c_str() + slash + 1, nullptr, 10);
    response.resumed = true;
    written = offset;
    return std::fseek(out, static_cast<long>(offset), SEEK_SET) == 0;
  }
  if (!length.empty()) total = std::strtoull(length.c_str(), nullptr, 10);
  written = 0;
  std::fflush(out);
  return ftruncate(fileno(out), 0) == 0 && std::fseek(out, 0, SEEK_SET) == 0;
}

namespace {

size_t on_header(char* data, size_t size, size_t n, void* user) {
  auto& t = *static_cast<HttpClient::Transfer*>(user);
  const std::string line(data, size * n);
  if (line.rfind("HTTP/", 0) == 0) {  // a new response (redirects and 100-continue included)
    const size_t sp = line.find(' ');
    const long status =
        sp == std::string::npos ? 0 : std::strtol(line.c_str() + sp + 1, nullptr, 10);
    t.response.statuses.push_back(status);
    t.response.headers.emplace_back();
    t.response.status = status;
    t.started = false;
    return size * n;
  }
  const size_t colon = line.find(':');
  if (colon != std::string::npos && !t.response.headers.empty())
    t.response.headers.back()[lower(trim(line.substr(0, colon)))] = trim(line.substr(colon + 1));
  return size * n;
}

size_t on_body(char* data, size_t size, size_t n, void* user) {
  auto& t = *static_cast<HttpClient::Transfer*>(user);
  const size_t bytes = size * n;
  const bool redirect = t.response.status >= 300 && t.response.status < 400;
  if (t.out == nullptr || !t.success()) {  // in memory: get(), error bodies
    if (!redirect && t.response.body.size() < kMaxErrorBody) t.response.body.append(data, bytes);
    return bytes;
  }
  if (!t.started && !t.begin_body()) {
    t.failed_write = true;
    return 0;  // aborts the transfer
  }
  if (std::fwrite(data, 1, bytes, t.out) != bytes) {
    t.failed_write = true;
    return 0;
  }
  t.written += bytes;
  if (t.progress && *t.progress) (*t.progress)(t.written, t.total);
  return bytes;
}

}  // namespace

HttpClient::HttpClient(const HubOptions& options)
    : token_(options.token), user_agent_("diffuse"), connect_timeout_s_(options.connect_timeout_s) {
  ensure_curl_global();
  curl_ = curl_easy_init();
  if (curl_ == nullptr) throw HubError("cannot initialise libcurl");
}

HttpClient::~HttpClient() {
  curl_easy_cleanup(static_cast<CURL*>(curl_));
}

HttpResponse HttpClient::perform(const std::string& url, Transfer& t, bool nobody, bool follow) {
  CURL* c = static_cast<CURL*>(curl_);
  curl_easy_reset(c);
  char error[CURL_ERROR_SIZE] = {0};
  curl_easy_setopt(c, CURLOPT_URL, url.c_str());
  curl_easy_setopt(c, CURLOPT_ERRORBUFFER, error);
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, follow ? 1L : 0L);
  curl_easy_setopt(c, CURLOPT_MAXREDIRS, 10L);
  curl_easy_setopt(c, CURLOPT_NOBODY, nobody ? 1L : 0L);
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, connect_timeout_s_);
  curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);  // give up on a connection stalled a minute
  curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, 60L);
  curl_easy_setopt(c, CURLOPT_USERAGENT, user_agent_.c_str());
  curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(c, CURLOPT_HEADERDATA, &t);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &t);
  const std::string range = std::to_string(t.offset) + "-";
  if (t.offset > 0) curl_easy_setopt(c, CURLOPT_RANGE, range.c_str());
  // Sent to the endpoint's host only: libcurl drops a custom Authorization header when a redirect
  // leaves the host (the Hub's CDN URLs are signed).
  curl_slist* list = curl_slist_append(nullptr, "Accept-Encoding: identity");
  if (!token_.empty()) list = curl_slist_append(list, ("Authorization: Bearer " + token_).c_str());
  std::unique_ptr<curl_slist, void (*)(curl_slist*)> headers(list, curl_slist_free_all);
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers.get());
  const CURLcode rc = curl_easy_perform(c);
  curl_easy_setopt(c, CURLOPT_ERRORBUFFER, nullptr);  // `error` ends with this call
  char* effective = nullptr;
  curl_easy_getinfo(c, CURLINFO_EFFECTIVE_URL, &effective);
  t.response.url = effective ? effective : url;
  if (t.failed_write) throw HubError("cannot write the download of " + url + " to disk");
  if (rc != CURLE_OK)
    throw HubError("cannot reach " + t.response.url + ": " +
                   (error[0] ? std::string(error) : curl_easy_strerror(rc)));
  return std::move(t.response);
}

HttpResponse HttpClient::get(const std::string& url) {
  Transfer t;
  return perform(url, t, false, true);
}

HttpResponse HttpClient::head(const std::string& url) {
  Transfer t;
  return perform(url, t, true, false);
}

HttpResponse HttpClient::download(const std::string& url, std::FILE* out, uint64_t offset,
                                  const ByteProgress& progress) {
  Transfer t;
  t.out = out;
  t.offset = offset;
  t.progress = &progress;
  HttpResponse r = perform(url, t, false, true);
  if (std::fflush(out) != 0) throw HubError("cannot write the download of " + url + " to disk");
  return r;
}

std::string url_escape(const std::string& s) {
  std::string out;
  static const char* hex = "0123456789ABCDEF";
  for (unsigned char ch : s) {
    if (std::isalnum(ch) || ch == '-' || ch == '_' || ch == '.' || ch == '~') {
      out += static_cast<char>(ch);
    } else {
      out += '%';
      out += hex[ch >> 4];
      out += hex[ch & 15];
    }
  }
  return out;
}

}  // namespace diffuse::hub
