#pragma once
// The hub: fan-out of a node's committed changes.
// - Downlink sessions subscribe with the feeds they serve; a commit touching a feed
//   (key.tenant, key.scope, lane) announces (feed) to each such session, coalesced: one
//   announcement per session for everything committed since the last flush. A session
//   that subscribed with collections hears only of commits changing one of them.
// - The uplink session registers itself (uplink); it hears (outbox) after commits, as
//   local writes and relayed pushes grow the outbox.
// - Node-level change callbacks (watch/unwatch) run on a notifier actor of their own,
//   so a slow callback never delays announcements and never runs on the committer.
// Sessions are monitored: a session that exits is forgotten.

#include <string>

#include "caf/fwd.hpp"

#include "possync/actors/messages.hpp"

namespace possync::actors {

/// Spawns a hub (and its notifier, which exits with it); `label` names it in logs.
hub_actor spawn_hub(caf::actor_system& sys, std::string label = "hub");

} // namespace possync::actors
