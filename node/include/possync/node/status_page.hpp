#pragma once
// The status page a node serves over HTTP when node_config.http_listen is set:
// GET /api/status answers render_status_json() (for the page and for scripts), GET /
// and GET /status answer status_page_html(), one self-contained page (inline CSS and
// JS, no external resources) that fetches /api/status every 2 s and draws this node,
// its unresolved conflicts and every node it knows, grouped by branch. At HQ that is
// every branch and the terminals the branches report; at a branch, its terminals.
// Plain HTTP: nothing here is a secret (no tokens, keys or record bodies).

#include <cstdint>
#include <string>
#include <vector>

#include "possync/node/admin.hpp"
#include "possync/node/node.hpp"

namespace possync::node {

/// Everything GET /api/status reports.
struct status_report {
  node_status self;     ///< node::status() of the serving node
  std::string software; ///< its possync version
  uint64_t conflicts_unresolved = 0;
  int64_t now_ms = 0; ///< the serving node's wall clock (Unix ms)
  /// A node is flagged `stale` when it has been out of sync (lag_ms), or offline
  /// (since last_seen_ms), for longer than this (node_config.status_stale_after_ms).
  int64_t stale_after_ms = 300'000;
  std::vector<node_info> nodes; ///< node::nodes()
};

/// True when `n` needs an operator's eye at `now_ms`: out of sync for longer than
/// `stale_after_ms`, or offline and not seen for longer than that (or never seen).
bool is_stale(const node_info& n, int64_t now_ms, int64_t stale_after_ms);

/// The JSON of GET /api/status, one object:
///   {"now_ms", "stale_after_ms", "lanes":["sales","stock","catalog","reports"],
///    "self":{"node" (16 hex digits), "role", "tenant", "branch", "software", "online",
///            "upstream", "caught_up", "pending":[4], "last_sync_ms", "lag_records",
///            "skew_ms", "sessions"},
///    "conflicts_unresolved",
///    "nodes":[{"node", "role", "tenant", "branch", "name", "software", "registered",
///              "revoked", "online", "via" (node hex, "" = served here), "last_seen_ms",
///              "connected_ms", "pending":[4], "lag_records", "lag_ms", "skew_ms",
///              "last_sync_ms", "caught_up", "stale"}]}
/// Times are Unix ms (0 = never).
std::string render_status_json(const status_report& r);

/// The JSON of a failed GET /api/status: {"error": errc name, "message"}.
std::string render_error_json(const error& e);

/// The HTML page of GET / and GET /status.
const std::string& status_page_html();

} // namespace possync::node
