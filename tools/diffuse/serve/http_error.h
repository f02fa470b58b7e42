// HttpError: a request the server refuses, with the status code and one-line message the client
// gets. Route handlers throw it; the router turns it into the response.
#pragma once

#include <stdexcept>
#include <string>

namespace diffuse::serve {

class HttpError : public std::runtime_error {
 public:
  HttpError(int status, const std::string& message, int retry_after_s = 0)
      : std::runtime_error(message), status_(status), retry_after_s_(retry_after_s) {}
  int status() const { return status_; }
  /// Seconds for a Retry-After header (0 = none).
  int retry_after_s() const { return retry_after_s_; }

 private:
  int status_;
  int retry_after_s_;
};

inline HttpError bad_request(const std::string& m) {
  return HttpError(400, m);
}
inline HttpError not_found(const std::string& m) {
  return HttpError(404, m);
}
/// A well-formed request whose parameters are invalid (FastAPI, and so A1111, use 422).
inline HttpError invalid_parameter(const std::string& m) {
  return HttpError(422, m);
}

}  // namespace diffuse::serve
