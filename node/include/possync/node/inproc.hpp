#pragma once
// In-process links: two ends of one frame stream inside one process, for the simulator
// and deterministic tests. No threads of their own: every event is delivered on the
// thread that caused it (the writer's for on_frame and on_written, the closer's for the
// peer's on_closed, the owner's own thread for frames buffered before start() or
// read_next()).
//
// Honours the contract of actors/link.hpp, and, like the gRPC links:
// - on_written(true) once the frame is queued at the peer; frames arrive in order; reads
//   are pulled (frames wait in the peer's queue until it calls read_next()).
// - close(ok) on one end: it gets on_closed(ok); the peer receives every frame already
//   queued, then on_closed(ok). close(error): both ends get on_closed(error) at once
//   (queued frames are dropped). Destroying an open end is close(cancelled) without an
//   event for the destroyed end.
// - A frame larger than max_message_bytes: the writer gets on_written(false), then both
//   ends get on_closed(resource_exhausted).
// - Writes by an end whose peer closed cleanly are acknowledged and dropped (the peer is
//   gone), as a gRPC server may write after the client half-closed.
// Every member of the links and of inproc_fault may be called from any thread.

#include <cstddef>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "possync/actors/link.hpp"
#include "possync/core/error.hpp"

namespace possync::node {

struct inproc_wire;
class inproc_fault;
using link_pair = std::pair<std::unique_ptr<actors::link>, std::unique_ptr<actors::link>>;

/// Options of an in-process pair. Defaults in brackets.
struct inproc_options {
  size_t max_message_bytes = 8u << 20; ///< largest frame either end may write [8 MiB]; 0 = no limit
  std::shared_ptr<inproc_fault> fault; ///< register the pair here for cut() [none]
};

/// Two connected ends; peer() of the first is "inproc:" + name_b (the end it talks to),
/// of the second "inproc:" + name_a.
link_pair inproc_pair(std::string name_a, std::string name_b, inproc_options opts = {});

/// Fault hook for the simulator: breaks the pairs made with it as a failed network would.
class inproc_fault {
public:
  /// Both ends of every open pair made with this fault get on_closed(why) (queued frames
  /// are dropped). Pairs made afterwards work normally.
  void cut(const error& why);
  /// Pairs made with this fault whose ends are not both closed.
  size_t open_pairs() const;

private:
  friend link_pair inproc_pair(std::string, std::string, inproc_options);
  mutable std::mutex mu_;
  std::vector<std::weak_ptr<inproc_wire>> wires_;
};

} // namespace possync::node
