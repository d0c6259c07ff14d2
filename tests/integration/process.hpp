#pragma once
// Helpers of the real-process tests: a temporary directory, and a child process
// whose stdin and stdout are pipes, to drive `possync <role> --console` line by line
// and to SIGKILL it. Every wait is bounded by a deadline.

#include <stdlib.h>  // mkdtemp

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "possync/sim/child_process.hpp"

namespace possync::test {

using steady = std::chrono::steady_clock;

/// A fresh directory under $TMPDIR (or /tmp), removed with everything in it.
class temp_dir {
public:
  explicit temp_dir(const std::string& prefix = "possync-test") {
    const char* t = std::getenv("TMPDIR");
    std::string templ = std::string(t && *t ? t : "/tmp") + "/" + prefix + "-XXXXXX";
    std::vector<char> buf(templ.begin(), templ.end());
    buf.push_back('\0');
    if (::mkdtemp(buf.data()))
      path_ = buf.data();
  }
  ~temp_dir() {
    if (!path_.empty() && !keep_) {
      std::error_code ec;
      std::filesystem::remove_all(path_, ec);
    }
  }
  temp_dir(const temp_dir&) = delete;
  temp_dir& operator=(const temp_dir&) = delete;
  const std::string& path() const { return path_; }
  std::string sub(const std::string& name) const { return path_ + "/" + name; }
  void keep() { keep_ = true; }

private:
  std::string path_;
  bool keep_ = false;
};

/// A child process (possync/sim/child_process.hpp, shared with W9).
using child_process = possync::sim::child_process;

} // namespace possync::test
