#pragma once
// Private to sim/: what the load workloads (W1-W5 in workload_sync.cpp, pos/lanes/scale
// in workload_pos.cpp) share to run many node::node instances on one runtime and watch
// their commits: steady-clock helpers, bounded polling, a commit watcher per
// collection, and the fleet that starts nodes, links them (gRPC on 127.0.0.1 or
// in-process) and stops them downstream first.

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include "possync/node/inproc.hpp"
#include "possync/node/node.hpp"
#include "possync/sim/workload_sync.hpp"
#include "possync/storage/store.hpp"

namespace possync::sim::fleet_detail {

using clock_type = std::chrono::steady_clock;
using time_point = clock_type::time_point;

inline double ms_between(time_point a, time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}
inline double secs_between(time_point a, time_point b) {
  return std::chrono::duration<double>(b - a).count();
}
/// Milliseconds since the epoch (system clock), for record bodies.
inline int64_t wall_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

/// Polls `pred` every `poll` until it holds (true) or `deadline` passes (false).
template <class Pred>
bool poll_until(time_point deadline, Pred pred, std::chrono::microseconds poll = std::chrono::microseconds(100)) {
  for (;;) {
    if (pred()) return true;
    if (clock_type::now() >= deadline) return false;
    std::this_thread::sleep_for(poll);
  }
}

/// Records the commits of one node that touch one collection of one tenant: per record
/// id, how many commits changed it and when (steady clock). Fed from the node's commit
/// thread; every member is thread-safe.
class watcher {
public:
  watcher(std::string tenant, std::string collection)
      : tenant_(std::move(tenant)), collection_(std::move(collection)) {}

  void on_changes(const std::vector<storage::change>& changes) {
    auto now = clock_type::now();
    bool any = false;
    {
      std::lock_guard<std::mutex> g(mu_);
      for (const auto& c : changes) {
        if (c.key.collection != collection_ || c.key.tenant != tenant_) continue;
        auto& times = seen_[c.key.id];
        if (times.empty()) ++distinct_;
        else ++repeats_;
        times.push_back(now);
        any = true;
      }
    }
    if (any) cv_.notify_all();
  }

  /// Waits until `n` distinct ids were seen; false on timeout.
  bool wait_distinct(size_t n, time_point deadline) {
    std::unique_lock<std::mutex> l(mu_);
    return cv_.wait_until(l, deadline, [&] { return distinct_ >= n; });
  }
  /// Waits until `id` changed at least `n` times; false on timeout.
  bool wait_changes(const std::string& id, size_t n, time_point deadline) {
    std::unique_lock<std::mutex> l(mu_);
    return cv_.wait_until(l, deadline, [&] {
      auto it = seen_.find(id);
      return it != seen_.end() && it->second.size() >= n;
    });
  }
  size_t distinct() const {
    std::lock_guard<std::mutex> g(mu_);
    return distinct_;
  }
  size_t repeats() const {
    std::lock_guard<std::mutex> g(mu_);
    return repeats_;
  }
  /// Time of the `n`-th (0-based) change of `id`, if seen.
  std::optional<time_point> change_time(const std::string& id, size_t n) const {
    std::lock_guard<std::mutex> g(mu_);
    auto it = seen_.find(id);
    if (it == seen_.end() || it->second.size() <= n) return std::nullopt;
    return it->second[n];
  }
  /// Every id seen, with the time of its first change and its change count.
  std::unordered_map<std::string, std::pair<time_point, size_t>> snapshot() const {
    std::lock_guard<std::mutex> g(mu_);
    std::unordered_map<std::string, std::pair<time_point, size_t>> out;
    out.reserve(seen_.size());
    for (const auto& [id, times] : seen_)
      out.emplace(id, std::make_pair(times.front(), times.size()));
    return out;
  }

private:
  std::string tenant_;
  std::string collection_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::unordered_map<std::string, std::vector<time_point>> seen_;
  size_t distinct_ = 0;
  size_t repeats_ = 0;
};

/// Subscribes a watcher to a node for as long as it lives (unsubscribes first).
class subscription {
public:
  subscription(node::node& n, std::string tenant, std::string collection)
      : node_(&n), watch_(std::make_shared<watcher>(std::move(tenant), std::move(collection))) {
    auto w = watch_;
    id_ = n.subscribe([w](const std::vector<storage::change>& c) { w->on_changes(c); });
  }
  subscription(const subscription&) = delete;
  subscription& operator=(const subscription&) = delete;
  ~subscription() { node_->unsubscribe(id_); }
  watcher& operator*() const { return *watch_; }
  watcher* operator->() const { return watch_.get(); }

private:
  node::node* node_;
  std::shared_ptr<watcher> watch_;
  uint64_t id_ = 0;
};

/// The nodes of one run, on one runtime; stopped in reverse start order (downstream
/// before upstream). start() may be called from several threads at once.
class fleet {
public:
  fleet(std::shared_ptr<node::runtime> rt, sync_transport t, std::string tenant, size_t stream_window_bytes)
      : rt_(std::move(rt)), transport_(t), tenant_(std::move(tenant)), stream_window_(stream_window_bytes) {}
  fleet(const fleet&) = delete;
  fleet& operator=(const fleet&) = delete;
  ~fleet() { stop_all(); }

  /// Stops every node, downstream first, and destroys them.
  void stop_all() {
    std::vector<std::unique_ptr<node::node>> nodes;
    {
      std::lock_guard<std::mutex> g(mu_);
      nodes.swap(nodes_);
    }
    for (auto it = nodes.rbegin(); it != nodes.rend(); ++it)
      (*it)->stop();
    while (!nodes.empty())
      nodes.pop_back();
  }

  /// session.stock_pause_ms of every node started from config() (-1: the node default).
  void set_stock_pause_ms(int64_t ms) { stock_pause_ms_ = ms; }
  /// Whether terminals started from config() download stock (node_config.skip_collections).
  void set_terminal_stock(bool on) { terminal_stock_ = on; }

  const std::string& tenant() const { return tenant_; }
  sync_transport transport() const { return transport_; }

  /// A config for a node of this run: short reconnect backoff (setup: a terminal
  /// refused before its branch holds the registry retries soon); upstream roles listen
  /// on 127.0.0.1:0 over gRPC.
  node::node_config config(storage::node_role role, core::node_id id, const std::string& br) const {
    node::node_config c;
    c.role = role;
    c.tenant = tenant_;
    c.branch = role == storage::node_role::hq ? "" : br;
    c.node_id = id;
    c.backoff.initial_ms = 20;
    c.backoff.max_ms = 500;
    c.stream_window_bytes = stream_window_;
    if (stock_pause_ms_ >= 0) c.session.live_pause_ms[core::lane_stock] = stock_pause_ms_;
    if (role == storage::node_role::terminal && !terminal_stock_) c.skip_collections = {"stock"};
    if (role != storage::node_role::terminal && transport_ == sync_transport::grpc) c.listen = "127.0.0.1:0";
    return c;
  }

  /// Makes `c` dial `up` over this run's transport.
  void attach(node::node_config& c, node::node& up, const std::string& name) const {
    if (transport_ == sync_transport::grpc) {
      c.upstreams = {"127.0.0.1:" + std::to_string(up.port())};
      return;
    }
    c.upstreams = {"inproc:" + core::node_id_to_string(up.status().node)};
    node::node* target = &up;
    c.connect = [target, name](const std::string&) -> std::unique_ptr<actors::link> {
      auto pair = node::inproc_pair(name, "upstream");
      target->accept(std::move(pair.second));
      return std::move(pair.first);
    };
  }

  result<node::node*> start(node::node_config c) {
    std::string what = std::string(storage::to_string(c.role)) + " " + core::node_id_to_string(c.node_id);
    auto n = node::node::start(std::move(c), rt_);
    if (!n) {
      auto e = std::move(n).err();
      e.message = "starting " + what + ": " + e.message;
      return e;
    }
    std::lock_guard<std::mutex> g(mu_);
    nodes_.push_back(std::move(n).value());
    return nodes_.back().get();
  }

private:
  std::shared_ptr<node::runtime> rt_;
  sync_transport transport_;
  std::string tenant_;
  size_t stream_window_;
  int64_t stock_pause_ms_ = -1;
  bool terminal_stock_ = true;
  std::mutex mu_;
  std::vector<std::unique_ptr<node::node>> nodes_;
};

/// A device entry of HQ's registry.
inline node::device device_of(const std::string& tenant, core::node_id id, storage::node_role role,
                              const std::string& name, const std::string& br) {
  node::device d;
  d.tenant = tenant;
  d.branch = br;
  d.node = id;
  d.role = role;
  d.name = name;
  return d;
}

inline bool caught_up(node::node& n) {
  auto s = n.status();
  return s.online && s.caught_up;
}

inline uint64_t pending_total(node::node& n) {
  uint64_t sum = 0;
  for (auto v : n.store().pending())
    sum += v;
  return sum;
}
inline bool drained(node::node& n) { return pending_total(n) == 0; }

} // namespace possync::sim::fleet_detail
