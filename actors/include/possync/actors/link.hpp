#pragma once
// A link: one bidirectional stream of possync.v1.Frame to one peer. Session actors
// talk to their peer only through this interface, so the same actors run over real
// gRPC streams (node/grpc_transport.hpp) and over in-process links (node/inproc.hpp,
// used by the simulator and deterministic tests).
//
// Contract (both implementations honour it; tests in tests/unit/node check it):
// - A link is owned by exactly one session actor (std::unique_ptr). Only the owner
//   calls its members, from the owner's own thread of control (actor handlers).
// - start() is called once, with the sink that receives the link's events. No event
//   is delivered before start().
// - Reads are pulled: after start() the link delivers at most one frame, then waits
//   for read_next() before delivering another. This bounds what sits in a mailbox
//   and, over gRPC, pushes back on the peer through HTTP/2 flow control.
// - Writes: at most one write outstanding. write() again only after on_written().
//   The frame passed to write() is owned by the link until on_written().
// - on_closed() is delivered exactly once: when the peer ends the stream, the
//   transport fails, or after close(). No event follows it.
// - close(why) ends the stream: over gRPC the server finishes the RPC with `why` as its
//   status and the client cancels (or half-closes when why is ok). Destroying an open
//   link closes it with `cancelled`.
// - Event callbacks run on transport threads (gRPC's, or the peer actor's thread for
//   in-process links): implementations of link_events only forward (anon_send) and
//   never block.

#include <memory>
#include <string>

#include "possync/core/error.hpp"

namespace possync::v1 {
class Frame;
}

namespace possync::actors {

/// Receives a link's events. Called from transport threads; must only forward.
class link_events {
public:
  virtual ~link_events() = default;
  /// One frame arrived (the link waits for read_next() before the next one).
  virtual void on_frame(v1::Frame frame) = 0;
  /// The outstanding write completed; ok == false: the stream is broken (on_closed follows).
  virtual void on_written(bool ok) = 0;
  /// The stream ended; `why` is ok for a clean end by the peer, otherwise the reason
  /// (unavailable: peer unreachable or gone; cancelled; the peer's error status).
  virtual void on_closed(error why) = 0;
};

/// One bidirectional frame stream; see the file comment for the contract.
class link {
public:
  virtual ~link() = default;
  /// Begin: events go to `events` from now on, and the first read is issued.
  virtual void start(std::shared_ptr<link_events> events) = 0;
  /// The owner has handled the last frame: deliver the next one when it arrives.
  virtual void read_next() = 0;
  /// Send one frame; only when no write is outstanding.
  virtual void write(v1::Frame frame) = 0;
  /// End the stream (idempotent). on_closed follows (if it has not been delivered).
  virtual void close(const error& why) = 0;
  /// Human-readable peer address for logs ("ipv4:127.0.0.1:43125", "inproc:hq").
  virtual std::string peer() const = 0;
  /// Who the peer proved to be: the common name of its verified TLS client
  /// certificate (a node id in hex, see deploy/make-certs.sh); "" without TLS.
  virtual std::string peer_identity() const { return {}; }
};

} // namespace possync::actors
