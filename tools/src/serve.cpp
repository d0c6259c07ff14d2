#include "serve.hpp"

#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "console.hpp"
#include "local_store.hpp"
#include <spdlog/spdlog.h>

#include "possync/core/ids.hpp"

namespace possync::tools {

signal_watch::signal_watch() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  thread_ = std::thread([this, set] {
    timespec tick{0, 100 * 1000 * 1000};
    while (!quit_.load()) {
      int sig = ::sigtimedwait(&set, nullptr, &tick);
      if (sig == SIGINT || sig == SIGTERM) {
        signal_ = sig;
        stop_ = true;
      }
    }
  });
}

signal_watch::~signal_watch() {
  quit_ = true;
  if (thread_.joinable()) thread_.join();
}

void signal_watch::wait() const {
  while (!stop_.load())
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
}

status write_port_file(const std::string& path, uint16_t port) {
  std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    if (!out) return error(errc::unavailable, "cannot write port file '" + tmp + "'");
    out << port << "\n";
    if (!out.flush()) return error(errc::unavailable, "cannot write port file '" + tmp + "'");
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) return error(errc::unavailable, "cannot rename '" + tmp + "' to '" + path + "': " + ec.message());
  return {};
}

int serve(role_settings s) {
  const char* role = storage::to_string(s.node.role);
  auto fail = [role](int code, const std::string& what) {
    std::fprintf(stderr, "possync %s: %s\n", role, what.c_str());
    return code;
  };
  if (auto e = setup_logging(s.log_level, s.log_format)) return fail(2, e.message);
  if (!valid_name(s.node.tenant) || (!s.node.branch.empty() && !valid_name(s.node.branch)))
    return fail(2, "--tenant and --branch must be 1-64 characters of [A-Za-z0-9._:-] (got '" + s.node.tenant +
                       "', '" + s.node.branch + "')");
  if (s.node.role != storage::node_role::hq && s.node.branch.empty())
    return fail(2, "a branch is required (--branch or `branch:` in the config file)");
  if (s.node.role == storage::node_role::branch && s.node.upstreams.empty())
    spdlog::warn("branch without an upstream: it serves its terminals but nothing reaches HQ");
  if (s.node.dir.empty()) return fail(2, "--dir must not be empty");
  if (auto e = load_security(s)) return fail(2, e.to_string());
  if (!s.node.tls.enabled())
    spdlog::warn("--insecure-dev: plaintext gRPC (loopback only), no certificates checked");

  signal_watch signals; // before the node starts its threads
  std::error_code ec;
  std::filesystem::create_directories(s.node.dir, ec);
  if (ec) return fail(1, "cannot create directory '" + s.node.dir + "': " + ec.message());
  auto started = node::node::start(s.node);
  if (!started) {
    const auto& e = started.err();
    return fail(e.code == errc::invalid_argument ? 2 : 1, "cannot start: " + e.to_string());
  }
  auto& n = **started;
  // What `possync inspect` needs to enumerate this store offline.
  (void)n.store().put_meta("cli.tenant", s.node.tenant);
  (void)n.store().put_meta("cli.branch", s.node.branch);
  (void)n.store().put_meta("cli.role", role);

  int code = 0;
  if (uint16_t port = n.port()) {
    // The port file first: whoever reads the line may read the file at once.
    if (!s.port_file.empty())
      if (auto e = write_port_file(s.port_file, port)) {
        n.stop();
        return fail(1, e.message);
      }
    std::string host = s.node.listen.substr(0, s.node.listen.rfind(':'));
    std::printf("listening on %s:%u\n", host.c_str(), static_cast<unsigned>(port));
    std::fflush(stdout);
  }
  spdlog::info("{} {} started (tenant {}, branch '{}', dir {})", role,
               core::node_id_to_string(n.store().node()), s.node.tenant, s.node.branch, s.node.dir);
  if (!s.script.empty()) {
    console c({{role, &n}});
    int failed = c.run_script(s.script, stdout, signals.stopping());
    if (failed < 0)
      code = fail(1, "cannot read script '" + s.script + "'");
    else if (failed > 0)
      code = 1;
  } else if (s.console) {
    console c({{role, &n}});
    c.run(STDIN_FILENO, stdout, signals.stopping());
  } else {
    signals.wait();
  }
  n.stop();
  spdlog::info("{} stopped", role);
  return code;
}

} // namespace possync::tools
