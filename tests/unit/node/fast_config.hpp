#pragma once
// A node configuration for tests: in memory, short ticks and backoff, so sessions come
// and go in milliseconds.

#include <string>

#include "possync/node/node.hpp"

namespace possync::node::test {

/// `role` node `id` of (tenant, branch; "" for HQ), in memory, tick 50 ms, backoff
/// 20..200 ms, heartbeat 1 s.
inline node_config fast_config(storage::node_role role, core::node_id id, const std::string& tenant,
                               const std::string& branch) {
  node_config c;
  c.role = role;
  c.tenant = tenant;
  c.branch = role == storage::node_role::hq ? "" : branch;
  c.node_id = id;
  c.in_memory = true;
  c.tick_ms = 50;
  c.backoff.initial_ms = 20;
  c.backoff.max_ms = 200;
  c.backoff.jitter = 0.1;
  c.session.heartbeat_ms = 1000;
  return c;
}

} // namespace possync::node::test
