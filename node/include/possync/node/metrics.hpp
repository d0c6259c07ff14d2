#pragma once
// What a node shows to monitoring: the Prometheus text format (version 0.0.4) for
// GET /metrics and the answer of GET /healthz, served over HTTP by node::start when
// node_config.http_listen is set (cpp-httplib, private to node/src).

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>

#include "possync/node/node.hpp"

namespace possync::node {

/// Figures beyond node_status that /metrics reports.
struct metrics_extra {
  uint64_t commits = 0;             ///< requests made durable by the store's database
  uint64_t commit_groups = 0;       ///< RocksDB writes they took (group commit)
  uint64_t conflicts_unresolved = 0;
  std::string version;              ///< possync version
  storage::database::latency_histogram commit_latency;
  uint64_t records_in = 0, records_out = 0;   ///< records received / sent in sync sessions
  uint64_t bytes_in = 0, bytes_out = 0;       ///< their frame bytes
  /// Sync sessions ended, by possync errc code (index; 0 = clean end).
  std::array<uint64_t, 17> sessions_ended{};
  uint64_t nodes_online = 0, nodes_known = 0; ///< downstream nodes (node::nodes())
};

/// A lane's name in /metrics labels and /api/status: "sales", "stock", "catalog",
/// "reports" (core::lane order); "?" beyond core::lane_count.
const char* lane_name(size_t lane) noexcept;

/// The Prometheus text exposition of a node's status: possync_up, possync_node_info,
/// possync_online, possync_caught_up, possync_downstream_sessions, possync_pending{lane},
/// possync_lag_records, possync_last_sync_timestamp_seconds, possync_clock_skew_seconds,
/// possync_uplink_restarts_total, possync_records_rejected_total, possync_commits_total,
/// possync_commit_groups_total, possync_conflicts_unresolved,
/// possync_commit_latency_seconds (histogram), possync_sync_records_total{direction},
/// possync_sync_bytes_total{direction}, possync_sessions_ended_total{code},
/// possync_nodes{state}. Each with HELP and TYPE.
std::string render_metrics(const node_status& s, const metrics_extra& extra);

} // namespace possync::node
