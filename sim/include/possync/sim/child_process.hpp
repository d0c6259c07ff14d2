#pragma once
// A child process whose stdout (and optionally stdin) is a pipe: started with fork and
// execv, read line by line with deadlines, driven over `possync <role> --console`
// (one command line in, one "ok ..."/"err ..." line out), stopped with a signal and
// reaped on every path out. Used by W9 (`possync sim --workload restart`, which
// SIGKILLs a real HQ process) and by the real-process tests. Every wait is bounded.

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <optional>
#include <string>
#include <vector>

namespace possync::sim {

/// A child process; killed and reaped on every path out.
class child_process {
public:
  using steady = std::chrono::steady_clock;

  child_process() = default;
  child_process(const child_process&) = delete;
  child_process& operator=(const child_process&) = delete;
  ~child_process() { kill_and_reap(); }

  /// Starts argv[0] with args. with_stdin: a pipe we write to (else /dev/null).
  /// stderr is inherited (logs show in the test output) unless quiet.
  bool spawn(const std::vector<std::string>& args, bool with_stdin = false, bool quiet = false) {
    int out[2];
    int in[2] = {-1, -1};
    if (::pipe2(out, O_CLOEXEC) != 0)
      return false;
    if (with_stdin && ::pipe2(in, O_CLOEXEC) != 0) {
      ::close(out[0]);
      ::close(out[1]);
      return false;
    }
    // argv is built before fork: between fork and exec the child of a multi-threaded
    // parent may only make async-signal-safe calls (no allocation).
    std::vector<char*> argv;
    for (const auto& a : args)
      argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    pid_t pid = ::fork();
    if (pid < 0) {
      for (int fd : {out[0], out[1], in[0], in[1]})
        if (fd >= 0)
          ::close(fd);
      return false;
    }
    if (pid == 0) {
      ::dup2(out[1], STDOUT_FILENO);
      if (with_stdin) {
        ::dup2(in[0], STDIN_FILENO);
      } else {
        int devnull = ::open("/dev/null", O_RDONLY);
        if (devnull >= 0)
          ::dup2(devnull, STDIN_FILENO);
      }
      if (quiet) {
        int devnull = ::open("/dev/null", O_WRONLY);
        if (devnull >= 0)
          ::dup2(devnull, STDERR_FILENO);
      }
      ::execv(argv[0], argv.data());
      ::_exit(127);
    }
    ::close(out[1]);
    fd_ = out[0];
    if (with_stdin) {
      ::close(in[0]);
      in_ = in[1];
    }
    pid_ = pid;
    return true;
  }

  bool running() const { return pid_ > 0; }
  pid_t pid() const { return pid_; }

  /// Reads whatever arrives until `deadline`, or until `stop_on` appears in the
  /// unconsumed output, or EOF. Returns false on EOF.
  bool read_until(steady::time_point deadline, const std::string& stop_on = "") {
    while (fd_ >= 0) {
      if (!stop_on.empty() && out_.find(stop_on, consumed_) != std::string::npos)
        return true;
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - steady::now()).count();
      if (left <= 0)
        return true;
      pollfd p{fd_, POLLIN, 0};
      int n = ::poll(&p, 1, static_cast<int>(left));
      if (n < 0 && errno == EINTR)
        continue;
      if (n <= 0)
        continue;
      char buf[8192];
      ssize_t got = ::read(fd_, buf, sizeof buf);
      if (got < 0 && errno == EINTR)
        continue;
      if (got <= 0) {
        ::close(fd_);
        fd_ = -1;
        return false;
      }
      out_.append(buf, static_cast<size_t>(got));
    }
    return false;
  }

  /// The next unconsumed output line starting with `prefix` (earlier lines are
  /// skipped), or nullopt at the deadline or EOF.
  std::optional<std::string> next_line(const std::string& prefix, steady::time_point deadline) {
    for (;;) {
      size_t nl;
      while ((nl = out_.find('\n', consumed_)) != std::string::npos) {
        std::string line = out_.substr(consumed_, nl - consumed_);
        consumed_ = nl + 1;
        if (line.compare(0, prefix.size(), prefix) == 0)
          return line;
      }
      if (steady::now() >= deadline)
        return std::nullopt;
      if (!read_until(deadline, "\n") && out_.find('\n', consumed_) == std::string::npos)
        return std::nullopt;
    }
  }

  /// Console round trip: writes `line`, returns the response line ("ok ..." or
  /// "err ..."), or nullopt if none came before the timeout.
  std::optional<std::string> command(const std::string& line,
                                     std::chrono::milliseconds timeout = std::chrono::seconds(30)) {
    if (in_ < 0)
      return std::nullopt;
    std::string data = line + "\n";
    const char* p = data.data();
    size_t left = data.size();
    while (left > 0) {
      ssize_t n = ::write(in_, p, left);
      if (n < 0 && errno == EINTR)
        continue;
      if (n <= 0)
        return std::nullopt;
      p += n;
      left -= static_cast<size_t>(n);
    }
    auto deadline = steady::now() + timeout;
    for (;;) {
      auto l = next_line("", deadline);
      if (!l)
        return std::nullopt;
      if (l->rfind("ok", 0) == 0 || l->rfind("err", 0) == 0)
        return l;
    }
  }

  /// Sends `sig` and reaps; SIGKILL if it has not exited within `grace`. Returns the
  /// wait status.
  int stop(int sig, std::chrono::milliseconds grace = std::chrono::seconds(10)) {
    if (pid_ <= 0)
      return status_;
    if (in_ >= 0) {
      ::close(in_);
      in_ = -1;
    }
    ::kill(pid_, sig);
    auto deadline = steady::now() + grace;
    int status = 0;
    for (;;) {
      pid_t r = ::waitpid(pid_, &status, WNOHANG);
      if (r == pid_)
        break;
      if (r < 0 && errno != EINTR)
        break;
      if (steady::now() >= deadline) {
        ::kill(pid_, SIGKILL);
        while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
        }
        break;
      }
      read_until(steady::now() + std::chrono::milliseconds(20));
    }
    pid_ = -1;
    status_ = status;
    drain();
    return status_;
  }

  /// SIGKILL, reap, then collect what is left in the pipe (bounded in time).
  int kill_and_reap() {
    if (pid_ > 0)
      return stop(SIGKILL, std::chrono::seconds(10));
    drain();
    return status_;
  }

  const std::string& output() const { return out_; }

private:
  void drain() {
    if (fd_ >= 0)
      read_until(steady::now() + std::chrono::seconds(5));
    if (fd_ >= 0) {
      ::close(fd_);
      fd_ = -1;
    }
    if (in_ >= 0) {
      ::close(in_);
      in_ = -1;
    }
  }

  pid_t pid_ = -1;
  int fd_ = -1;
  int in_ = -1;
  int status_ = 0;
  std::string out_;
  size_t consumed_ = 0;
};

} // namespace possync::sim
