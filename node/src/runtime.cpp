// The shared actor system.

#include <algorithm>
#include <thread>

#include "runtime_impl.hpp"

namespace possync::node {

runtime::impl::impl(const runtime::options& opts) {
  size_t threads = opts.threads;
  if (threads == 0) threads = std::max<size_t>(2, std::thread::hardware_concurrency());
  cfg.set("scheduler.max-threads", threads);
  if (opts.low_latency) {
    // CAF's work-stealing workers sleep between polls when idle (≈100 µs per hop on
    // this stack); the sharing policy wakes a worker on every enqueue instead.
    cfg.set("scheduler.policy", caf::atom("sharing"));
  }
  cfg.set("logger.file-verbosity", caf::atom("quiet"));
  cfg.set("logger.console-verbosity", caf::atom("quiet"));
  sys = std::make_unique<caf::actor_system>(cfg);
  worker = actors::spawn_blocking_worker(*sys);
  ticker = actors::spawn_ticker(*sys);
}

runtime::impl::~impl() {
  caf::anon_send_exit(worker, caf::exit_reason::user_shutdown);
  worker = nullptr;
  caf::anon_send_exit(ticker, caf::exit_reason::user_shutdown);
  ticker = nullptr;
  // The actor system's destructor waits for every actor to terminate.
  sys.reset();
}

std::shared_ptr<runtime> runtime::create(options opts) {
  return std::shared_ptr<runtime>(new runtime(std::make_unique<impl>(opts)));
}

runtime::runtime(std::unique_ptr<impl> i) : impl_(std::move(i)) {}

runtime::~runtime() = default;

} // namespace possync::node
