#pragma once
// The uplink supervisor: owns a node's uplink session. It dials
// upstreams[backoff.endpoint()] through the connector, spawns and monitors the uplink
// session; when the session ends it waits backoff.on_failed(now) and tries again (the
// next endpoint); a welcomed session resets the backoff (on_connected). Disabling the
// uplink stops the session and the retries; sync asks for an attempt at once. The
// snapshot carries the endpoint, the last error and the restart count for node status.

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "caf/fwd.hpp"

#include "possync/actors/backoff.hpp"
#include "possync/actors/session_actor.hpp"

namespace possync::actors {

/// Opens a link to an endpoint (not started yet); nullptr if it cannot even be made.
using connect_fn = std::function<std::unique_ptr<link>(const std::string& endpoint)>;

/// Everything the supervisor needs.
struct supervisor_setup {
  std::vector<std::string> endpoints;    ///< tried in order, rotating on failure; non-empty
  connect_fn connect;                    ///< required
  backoff_options backoff;
  uint64_t seed = 1;                     ///< jitter randomness
  session_setup session;                 ///< template of every uplink session (kind, snapshot set here)
  bool enabled = true;                   ///< start connecting at once
};

/// Spawns the supervisor; it connects at once when enabled. Stop it with (stop, why):
/// it ends the session and exits when the session is gone.
supervisor_actor spawn_supervisor(caf::actor_system& sys, supervisor_setup setup);

} // namespace possync::actors
