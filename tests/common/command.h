// Running the diffuse executable (or a shell line) from a test, capturing stdout, stderr and the
// exit code.
#pragma once

#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>

#include "common/fixtures.h"

namespace diffuse::test {

struct CommandResult {
  int code = -1;
  std::string out, err;
};

/// Runs a shell command line, capturing stdout, stderr and the exit code.
inline CommandResult run_shell(const std::string& command_line) {
  // ctest runs a binary's tests in parallel processes: keep each capture file private.
  static int counter = 0;
  const std::string err_path =
      temp_dir() + "/stderr-" + std::to_string(getpid()) + "-" + std::to_string(counter++) + ".txt";
  const std::string cmd = "(" + command_line + ") 2>" + err_path;
  CommandResult r;
  FILE* p = popen(cmd.c_str(), "r");
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) r.out.append(buf, n);
  const int status = pclose(p);
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  std::stringstream ss;
  ss << std::ifstream(err_path).rdbuf();
  r.err = ss.str();
  return r;
}

/// Runs the diffuse executable with `args`, optionally prefixed by environment assignments.
inline CommandResult run_diffuse(const std::string& args, const std::string& env = "") {
  return run_shell(env + " " + DIFFUSE_BINARY + " " + args);
}

}  // namespace diffuse::test
