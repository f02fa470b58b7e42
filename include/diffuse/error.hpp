// Errors the library reports. The library never prints or exits: every failure is an exception
// derived from diffuse::Error whose message names the file, key or parameter at fault.
#pragma once

#include <stdexcept>
#include <string>

namespace diffuse {

/// Base of every error diffuse throws; what() is one line, suitable for "error: <what>".
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// A file is missing, unreadable or malformed (message names the file).
class FileError : public Error {
 public:
  using Error::Error;
};

/// A configuration value or user parameter is unknown, missing or out of range.
class ConfigError : public Error {
 public:
  using Error::Error;
};

/// A tensor has the wrong shape or dtype for the operation.
class ShapeError : public Error {
 public:
  using Error::Error;
};

/// The numbers went bad (NaN/inf in latents or pixels).
class NumericError : public Error {
 public:
  using Error::Error;
};

/// The user cancelled through the progress callback.
class Cancelled : public Error {
 public:
  Cancelled() : Error("cancelled") {}
};

}  // namespace diffuse
