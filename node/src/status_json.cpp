// GET /api/status: a node's status and the nodes it knows as JSON (nlohmann-json,
// kept out of every header).

#include <nlohmann/json.hpp>

#include "possync/core/ids.hpp"
#include "possync/node/metrics.hpp"
#include "possync/node/status_page.hpp"

namespace possync::node {

namespace {

using json = nlohmann::json;

std::string hex_or_empty(core::node_id n) {
  return n == 0 ? std::string() : core::node_id_to_string(n);
}

} // namespace

bool is_stale(const node_info& n, int64_t now_ms, int64_t stale_after_ms) {
  if (n.revoked) return false; // shut out on purpose: nothing to chase
  if (n.online) return n.lag_ms > stale_after_ms;
  if (n.last_seen_ms == 0) return true;
  return now_ms - n.last_seen_ms > stale_after_ms;
}

std::string render_status_json(const status_report& r) {
  json lanes = json::array();
  for (size_t l = 0; l < core::lane_count; ++l)
    lanes.push_back(lane_name(l));
  const auto& s = r.self;
  json self = {{"node", core::node_id_to_string(s.node)},
               {"role", storage::to_string(s.role)},
               {"tenant", s.tenant},
               {"branch", s.branch},
               {"software", r.software},
               {"online", s.online},
               {"upstream", s.upstream},
               {"caught_up", s.caught_up},
               {"pending", s.pending},
               {"last_sync_ms", s.last_sync_ms},
               {"lag_records", s.lag_records},
               {"skew_ms", s.skew_ms},
               {"sessions", s.downstream_sessions}};
  json nodes = json::array();
  for (const auto& n : r.nodes) {
    nodes.push_back({{"node", core::node_id_to_string(n.node)},
                     {"role", storage::to_string(n.role)},
                     {"tenant", n.tenant},
                     {"branch", n.branch},
                     {"name", n.name},
                     {"software", n.software},
                     {"registered", n.registered},
                     {"revoked", n.revoked},
                     {"online", n.online},
                     {"via", hex_or_empty(n.via)},
                     {"last_seen_ms", n.last_seen_ms},
                     {"connected_ms", n.connected_ms},
                     {"pending", n.pending},
                     {"lag_records", n.lag_records},
                     {"lag_ms", n.lag_ms},
                     {"skew_ms", n.skew_ms},
                     {"last_sync_ms", n.last_sync_ms},
                     {"caught_up", n.caught_up},
                     {"stale", is_stale(n, r.now_ms, r.stale_after_ms)}});
  }
  json j = {{"now_ms", r.now_ms},
            {"stale_after_ms", r.stale_after_ms},
            {"lanes", std::move(lanes)},
            {"self", std::move(self)},
            {"conflicts_unresolved", r.conflicts_unresolved},
            {"nodes", std::move(nodes)}};
  // Names come from the registry and versions from peers: never let invalid UTF-8
  // make the whole answer fail.
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

std::string render_error_json(const error& e) {
  return json{{"error", to_string(e.code)}, {"message", e.message}}.dump(-1, ' ', false,
                                                                         json::error_handler_t::replace);
}

} // namespace possync::node
