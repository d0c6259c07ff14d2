#pragma once
// Every CAF atom, message payload and typed actor interface of possync, in one header.
//
// Actors of one node (DESIGN.md §5):
// - store actor: hands writes to the node store's committer (apply_remote_async,
//   ack_outbox_async) and small blocking writes to the runtime's blocking worker, so
//   no actor on the shared scheduler ever waits for a disk.
// - hub: fan-out of committed changes to the downlink sessions whose feeds they touch
//   (one announcement per session per batch), to the uplink session (its outbox may
//   have grown) and to node-level change callbacks.
// - session actor: one per link, a thin shell over uplink_machine or downlink_machine.
// - supervisor: owns the uplink session, restarts it with backoff.
//
// Payloads travel between local actors only (gRPC is the wire, CAF's middleman is
// not used), so they are allowed as unsafe message types instead of being made
// serializable. Atom names are at most 10 characters (CAF 0.17).

#include <cstdint>
#include <functional>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "caf/all.hpp"

#include "possync/actors/session_machine.hpp"
#include "possync/core/error.hpp"
#include "possync/storage/store.hpp"
#include "possync/v1/sync.pb.h"

namespace possync::actors {

/// Completion of an apply_request (node_store::apply_remote_async), sent to the session.
struct apply_done {
  uint64_t token = 0;            ///< apply_request::token
  error err;                     ///< set: the apply failed (value is empty)
  storage::apply_result value;   ///< when !err
};

/// Changes of one durable commit (from the store's commit listener).
struct committed {
  std::vector<storage::change> changes;
};

/// The feeds a downlink session serves (it wants to hear of commits on them).
struct feed_subscription {
  std::vector<feed_id> feeds;
  /// subscribe: only commits changing one of these collections announce (null: any).
  /// A register without live stock is not woken by every sale's stock change.
  std::shared_ptr<const std::set<std::string>> collections;
};

/// A small blocking store write (put_meta, clear_cursors, record_session, device
/// registration) run on the runtime's blocking worker thread. Captures what it needs
/// (a shared_ptr to the store); reports back itself (anon_send) if anyone waits.
struct io_job {
  std::function<void()> run;
};

/// Node-level change callback (node::subscribe). Runs on the hub's notifier actor.
struct change_watch {
  using fn_type = std::function<void(const std::vector<storage::change>&)>;
  uint64_t id = 0;
  fn_type fn;
};

} // namespace possync::actors

CAF_BEGIN_TYPE_ID_BLOCK(possync, caf::first_custom_type_id)
  CAF_ADD_ATOM(possync, possync::actors::atom, frame, "frame")
  CAF_ADD_ATOM(possync, possync::actors::atom, written, "written")
  CAF_ADD_ATOM(possync, possync::actors::atom, closed, "closed")
  CAF_ADD_ATOM(possync, possync::actors::atom, apply, "apply")
  CAF_ADD_ATOM(possync, possync::actors::atom, applied, "applied")
  CAF_ADD_ATOM(possync, possync::actors::atom, ack, "ack")
  CAF_ADD_ATOM(possync, possync::actors::atom, io, "io")
  CAF_ADD_ATOM(possync, possync::actors::atom, io_done, "io_done")
  CAF_ADD_ATOM(possync, possync::actors::atom, subscribe, "subscribe")
  CAF_ADD_ATOM(possync, possync::actors::atom, feed, "feed")
  CAF_ADD_ATOM(possync, possync::actors::atom, outbox, "outbox")
  CAF_ADD_ATOM(possync, possync::actors::atom, uplink, "uplink")
  CAF_ADD_ATOM(possync, possync::actors::atom, tick, "tick")
  CAF_ADD_ATOM(possync, possync::actors::atom, stop, "stop")
  CAF_ADD_ATOM(possync, possync::actors::atom, watch, "watch")
  CAF_ADD_ATOM(possync, possync::actors::atom, unwatch, "unwatch")
  CAF_ADD_ATOM(possync, possync::actors::atom, committed, "committed")
  CAF_ADD_ATOM(possync, possync::actors::atom, flush, "flush")
  CAF_ADD_ATOM(possync, possync::actors::atom, welcome, "welcome")
  CAF_ADD_ATOM(possync, possync::actors::atom, ended, "ended")
  CAF_ADD_ATOM(possync, possync::actors::atom, connect, "connect")
  CAF_ADD_ATOM(possync, possync::actors::atom, enable, "enable")
  CAF_ADD_ATOM(possync, possync::actors::atom, sync, "sync")
  CAF_ADD_ATOM(possync, possync::actors::atom, wake, "wake")
  CAF_END_TYPE_ID_BLOCK(possync)

  CAF_ALLOW_UNSAFE_MESSAGE_TYPE(possync::v1::Frame)
  CAF_ALLOW_UNSAFE_MESSAGE_TYPE(possync::error)
  CAF_ALLOW_UNSAFE_MESSAGE_TYPE(possync::actors::apply_request)
  CAF_ALLOW_UNSAFE_MESSAGE_TYPE(possync::actors::apply_done)
  CAF_ALLOW_UNSAFE_MESSAGE_TYPE(possync::actors::committed)
  CAF_ALLOW_UNSAFE_MESSAGE_TYPE(possync::actors::feed_subscription)
  CAF_ALLOW_UNSAFE_MESSAGE_TYPE(possync::actors::io_job)
  CAF_ALLOW_UNSAFE_MESSAGE_TYPE(possync::actors::change_watch)

  namespace possync::actors {

  /// One sync session over one link (uplink or downlink machine inside).
  using session_actor = caf::typed_actor<
      /// The link delivered a frame (the link waits for read_next before the next).
      caf::reacts_to<atom::frame, v1::Frame>,
      /// The outstanding write completed (false: the stream broke; closed follows).
      caf::reacts_to<atom::written, bool>,
      /// The link ended (exactly once).
      caf::reacts_to<atom::closed, error>,
      /// An apply handed to the store actor is durable (or failed).
      caf::reacts_to<atom::applied, apply_done>,
      /// Uplink: an outbox ack handed to the store actor failed (lane, seq, why).
      caf::reacts_to<atom::ack, uint8_t, uint64_t, error>,
      /// A blocking store write the session waits for has finished.
      caf::reacts_to<atom::io_done>,
      /// Downlink: commits landed on these of its subscribed feeds.
      caf::reacts_to<atom::feed, feed_subscription>,
      /// Uplink: local commits may have queued outbox entries (or: push now).
      caf::reacts_to<atom::outbox>,
      /// Timer (every tick_ms): heartbeats, timeouts.
      caf::reacts_to<atom::tick>,
      /// A one-off timer the machine asked for (machine_output::wake_at_ms).
      caf::reacts_to<atom::tick, int64_t>,
      /// End the session now: close the link with the error and exit.
      caf::reacts_to<atom::stop, error>>;

  /// Runs small blocking store writes on a thread of its own (detached).
  using blocking_worker_actor = caf::typed_actor<
      /// Run the job.
      caf::reacts_to<atom::io, io_job>>;

  /// Runs node-level change callbacks for a hub.
  using notifier_actor = caf::typed_actor<
      /// Add a callback.
      caf::reacts_to<atom::watch, change_watch>,
      /// Remove a callback by id.
      caf::reacts_to<atom::unwatch, uint64_t>,
      /// Call every callback with these changes.
      caf::reacts_to<atom::committed, committed>>;

  /// The store actor of one node.
  using store_actor = caf::typed_actor<
      /// Apply remote records (and cursor) durably; the result goes to the session as
      /// (applied, apply_done), in request order.
      caf::reacts_to<atom::apply, session_actor, apply_request>,
      /// Drop outbox entries of a lane up to seq (the upstream holds them durably); a
      /// failure goes back to the session as (ack, lane, seq, error).
      caf::reacts_to<atom::ack, session_actor, uint8_t, uint64_t>,
      /// Run a small blocking write off the scheduler.
      caf::reacts_to<atom::io, io_job>>;

  /// The hub of one node.
  using hub_actor = caf::typed_actor<
      /// A durable commit of the node store (from the commit listener).
      caf::reacts_to<atom::committed, committed>,
      /// A downlink session serves these feeds (replaces its earlier subscription).
      caf::reacts_to<atom::subscribe, session_actor, feed_subscription>,
      /// This session is the node's uplink: tell it when commits may have grown the outbox.
      caf::reacts_to<atom::uplink, session_actor>,
      /// Add a node-level change callback.
      caf::reacts_to<atom::watch, change_watch>,
      /// Remove a node-level change callback by id.
      caf::reacts_to<atom::unwatch, uint64_t>,
      /// Internal: announce what accumulated since the last flush.
      caf::reacts_to<atom::flush>>;

  /// The timer of the sessions of one actor system (ticker.hpp).
  using ticker_actor = caf::typed_actor<
      /// Send the session (tick) in delay_ms, or (tick, at) if at != 0.
      caf::reacts_to<atom::wake, session_actor, int64_t, int64_t>,
      /// Internal: its own timer; sends what is due.
      caf::reacts_to<atom::tick>>;

  /// The uplink supervisor of one node.
  using supervisor_actor = caf::typed_actor<
      /// Internal: try to connect now (the generation guards stale timers).
      caf::reacts_to<atom::connect, uint64_t>,
      /// The uplink session was welcomed by its upstream.
      caf::reacts_to<atom::welcome>,
      /// The uplink session ends with this reason (sent just before it exits).
      caf::reacts_to<atom::ended, error>,
      /// Cut (false) or restore (true) the uplink.
      caf::reacts_to<atom::enable, bool>,
      /// Connect now if down (skip the backoff wait), push now if up.
      caf::reacts_to<atom::sync>,
      /// Stop the session, stop retrying and exit once the session is gone.
      caf::reacts_to<atom::stop, error>>;

} // namespace possync::actors
