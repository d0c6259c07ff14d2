#pragma once
// What a node knows about the downstream nodes it serves: one entry per peer node,
// published by its downlink session actors (on admission, at most once a second
// while frames arrive, and at the end) and read by operators (node::nodes(), the
// Admin service, the status page). Entries of ended sessions stay (offline, with
// their last-seen time) until the node restarts.
//
// Thread-safe (one mutex); publishing never waits for an actor. `on_change` runs on
// the publishing thread, outside the lock, and must not block.

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "possync/core/ids.hpp"
#include "possync/storage/store.hpp"

namespace possync::actors {

struct peer_view {
  core::node_id node = 0;
  storage::node_role role = storage::node_role::terminal;
  std::string tenant, branch, software;
  bool online = false;
  uint64_t session = 0;            ///< the session that published it (peer_table::next_session)
  int64_t connected_ms = 0;        ///< start of the current or last session
  int64_t last_seen_ms = 0;        ///< last frame received from it
  int64_t skew_ms = 0;             ///< our clock minus its, at Hello
  std::array<uint64_t, core::lane_count> pending{};  ///< its outbox per lane (last heartbeat)
  uint64_t lag_records = 0;        ///< what it still has to download, as it reported
  int64_t last_sync_ms = 0;        ///< its last complete sync, as it reported
  bool caught_up = false;
  uint64_t records_up = 0, records_down = 0;  ///< of the current or last session
};

/// A node's sync traffic and session outcomes, summed over all its sessions (uplink
/// and downlink); for /metrics. Sessions add what they did at most once a second and
/// when they end. "in" = received by this node, "out" = sent by it.
struct traffic_counters {
  std::atomic<uint64_t> records_in{0}, records_out{0}, bytes_in{0}, bytes_out{0};
  std::atomic<uint64_t> rejected{0};  ///< records an upstream refused to this node's uplink
  /// Sessions ended, by possync errc code (0 = clean end; 16 unauthenticated).
  std::array<std::atomic<uint64_t>, 17> ended{};
};

class peer_table {
public:
  /// A new session id (for peer_view::session).
  uint64_t next_session() {
    std::lock_guard<std::mutex> lk(mu_);
    return ++sessions_;
  }
  /// Stores `v` as the peer's entry. An offline report of a session that is no longer
  /// the peer's latest (it reconnected meanwhile) is ignored.
  void publish(const peer_view& v) {
    std::function<void(const peer_view&)> hook;
    {
      std::lock_guard<std::mutex> lk(mu_);
      auto it = peers_.find(v.node);
      if (it != peers_.end() && !v.online && it->second.session > v.session) return;
      peers_[v.node] = v;
      hook = on_change_;
    }
    if (hook) hook(v);
  }
  std::vector<peer_view> all() const {
    std::lock_guard<std::mutex> lk(mu_);
    std::vector<peer_view> out;
    out.reserve(peers_.size());
    for (const auto& [n, v] : peers_) out.push_back(v);
    return out;
  }
  /// Called after every publish (e.g. a branch turning terminal reports into records).
  void set_on_change(std::function<void(const peer_view&)> f) {
    std::lock_guard<std::mutex> lk(mu_);
    on_change_ = std::move(f);
  }

private:
  mutable std::mutex mu_;
  uint64_t sessions_ = 0;
  std::map<core::node_id, peer_view> peers_;
  std::function<void(const peer_view&)> on_change_;
};

} // namespace possync::actors
