#pragma once
// Private to sim/: the temporary store directory of a benchmark workload.

#include <stdlib.h>

#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "possync/core/error.hpp"

namespace possync::sim {

/// A fresh directory for a workload's stores, removed on scope exit unless kept.
class temp_dir {
public:
  /// Under `parent` (default $TMPDIR or /tmp), named `prefix`-XXXXXX.
  static result<temp_dir> make(const std::string& parent, const std::string& prefix) {
    std::string base = parent;
    if (base.empty()) {
      const char* t = std::getenv("TMPDIR");
      base = t && *t ? t : "/tmp";
    }
    std::error_code ec;
    std::filesystem::create_directories(base, ec);
    std::string templ = base + "/" + prefix + "-XXXXXX";
    std::vector<char> buf(templ.begin(), templ.end());
    buf.push_back('\0');
    if (!::mkdtemp(buf.data()))
      return error(errc::unavailable, "cannot create a temporary directory under '" + base + "'");
    return temp_dir(buf.data());
  }
  temp_dir(temp_dir&& o) noexcept : path_(std::move(o.path_)), keep_(o.keep_) { o.path_.clear(); }
  ~temp_dir() {
    if (!path_.empty() && !keep_) {
      std::error_code ec;
      std::filesystem::remove_all(path_, ec);
    }
  }
  const std::string& path() const { return path_; }
  void keep() { keep_ = true; }

private:
  explicit temp_dir(std::string p) : path_(std::move(p)) {}
  std::string path_;
  bool keep_ = false;
};

} // namespace possync::sim
