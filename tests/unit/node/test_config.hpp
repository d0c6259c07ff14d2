#pragma once
// Node configuration for tests: in memory, short timers so sessions come and go in
// milliseconds. Each test adds listen addresses, upstreams and devices.

#include <string>

#include "possync/node/node.hpp"

namespace possync::node::test {

/// A node of `role` in `tenant` (and `branch`, ignored for HQ) with id `id`: in-memory
/// store, 50 ms session ticks, reconnects after 20-200 ms, heartbeats every second.
inline node_config fast_config(storage::node_role role, const std::string& tenant, const std::string& branch,
                               core::node_id id) {
  node_config c;
  c.role = role;
  c.tenant = tenant;
  c.branch = role == storage::node_role::hq ? "" : branch;
  c.node_id = id;
  c.in_memory = true;
  c.tick_ms = 50;
  c.backoff.initial_ms = 20;
  c.backoff.max_ms = 200;
  c.session.heartbeat_ms = 1000;
  return c;
}

} // namespace possync::node::test
