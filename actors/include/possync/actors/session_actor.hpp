#pragma once
// The session actor: one per link, a thin shell over uplink_machine (the node dialed)
// or downlink_machine (the node accepted). It
// - forwards the link's events into its own mailbox (a link_events adapter that only
//   anon_sends; it holds a weak reference, so a link outliving the actor is harmless);
// - feeds the machine and carries out take_output() in order: frames to the link one
//   write at a time, applies and outbox acks to the store actor, the downlink's feed
//   subscription to the hub, clear_cursors/upstream_welcomed as blocking-worker jobs;
// - pulls the next frame only when the machine wants one (backpressure);
// - ticks every tick_ms with the time of the injected clock;
// - on exit: closes the link, audits the session (node_store::record_session, on the
//   blocking worker), tells the supervisor (uplink) and lets the hub forget it.
// Writes the session waits for (clear_cursors, sync.upstream) finish before it exits,
// so the next session of the same node reads what they wrote.

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>

#include "caf/fwd.hpp"

#include "possync/actors/link.hpp"
#include "possync/actors/messages.hpp"
#include "possync/actors/peer_table.hpp"
#include "possync/actors/session_machine.hpp"

namespace possync::actors {

/// What a node reads about its uplink, written by the uplink session and supervisor.
/// Thread-safe (a mutex); reading never waits for an actor.
class uplink_snapshot {
public:
  /// Everything at once.
  struct view {
    bool session = false;        ///< an uplink session actor exists
    bool online = false;         ///< welcomed and not ended
    std::string endpoint;        ///< endpoint of the current or last attempt
    uplink_status status;        ///< of the current or last session
    std::string last_error;      ///< why the last session (or attempt) ended; "" none
    uint32_t restarts = 0;       ///< sessions started after a failure
    uint32_t sessions = 0;       ///< sessions started in total
  };
  view get() const {
    std::lock_guard<std::mutex> lk(mu_);
    return v_;
  }
  /// Applies `f` to the view under the lock.
  template <class F>
  void update(F&& f) {
    std::lock_guard<std::mutex> lk(mu_);
    f(v_);
  }

private:
  mutable std::mutex mu_;
  view v_;
};

/// Milliseconds since the epoch (injected: tests and the simulator pass their own).
using clock_fn = std::function<int64_t()>;

/// Everything a session actor needs besides its link.
struct session_setup {
  enum class kind : uint8_t { uplink, downlink };
  kind k = kind::downlink;
  local_identity me;
  session_options opts;
  std::shared_ptr<storage::node_store> store;
  store_actor store_h;
  hub_actor hub;
  /// Sends the session its ticks (ticker.hpp): one timer for every session of the
  /// actor system. Null: each session schedules its own with CAF's delayed_send.
  ticker_actor ticker;
  admit_fn admit;                        ///< downlink: admission of the Hello
  /// uplink: called before each session (by the supervisor) for the device token of
  /// its Hello, so a renewed token is picked up on reconnect; empty = me.token
  std::function<std::string()> token_source;
  supervisor_actor supervisor;           ///< uplink: receives (welcome) and (ended, why); may be null
  std::shared_ptr<uplink_snapshot> snapshot;  ///< uplink: kept up to date; may be null
  /// downlink: where the admitted peer's status is published (admission, at most
  /// every second while frames arrive, end); may be null
  std::shared_ptr<peer_table> peers;
  /// Where the session adds its traffic and outcome (both kinds); may be null.
  std::shared_ptr<traffic_counters> traffic;
  clock_fn clock;                        ///< default: system clock
  int64_t tick_ms = 200;                 ///< timer period [200 ms]
  /// Run on a thread of its own instead of the scheduler's workers, so that a sale's
  /// Push does not wait for the workers to finish other actors' work (a terminal's
  /// uplink while it applies a catalogue download). One thread per session: not for
  /// thousands of nodes in one process.
  bool own_thread = false;
};

/// Spawns a session actor that owns `l` and starts it at once.
session_actor spawn_session(caf::actor_system& sys, session_setup setup, std::unique_ptr<link> l);

/// Milliseconds since the epoch from the system clock.
int64_t system_now_ms();

} // namespace possync::actors
