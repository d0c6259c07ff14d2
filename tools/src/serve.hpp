#pragma once
// Running a node subcommand until it is told to stop: SIGINT/SIGTERM handling, the
// "listening on" line and port file, the console on stdin or a script.

#include <atomic>
#include <string>
#include <thread>

#include "config.hpp"

namespace possync::tools {

/// Blocks SIGINT and SIGTERM in this thread (and every thread started after it) and
/// waits for them on a thread of its own. Construct before any other thread starts.
class signal_watch {
public:
  signal_watch();
  ~signal_watch();
  signal_watch(const signal_watch&) = delete;
  signal_watch& operator=(const signal_watch&) = delete;
  /// Turns true on SIGINT/SIGTERM (or request_stop()).
  const std::atomic<bool>& stopping() const { return stop_; }
  void request_stop() { stop_ = true; }
  /// Sleeps until stopping() (checked every 50 ms).
  void wait() const;
  /// The signal received, 0 if none.
  int signal() const { return signal_; }

private:
  std::atomic<bool> stop_{false};
  std::atomic<bool> quit_{false};
  std::atomic<int> signal_{0};
  std::thread thread_;
};

/// Starts a node with `s`, prints "listening on HOST:PORT" (if it listens) and writes
/// the port file, then runs the console (s.console), the script (s.script) or waits
/// for a signal; stops the node gracefully. Returns the exit code: 0 on a clean stop,
/// 1 if the node could not start or a script command failed, 2 for bad settings.
int serve(role_settings s);

/// Writes `port` to `path` atomically (temp file + rename).
status write_port_file(const std::string& path, uint16_t port);

} // namespace possync::tools
