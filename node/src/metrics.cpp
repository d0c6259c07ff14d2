// Prometheus text for /metrics.

#include "possync/node/metrics.hpp"

#include <sstream>

namespace possync::node {

namespace {

/// A label value with \, " and newline escaped (exposition format 0.0.4).
std::string label(const std::string& v) {
  std::string out;
  for (char c : v) {
    if (c == '\\' || c == '"') out += '\\';
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out += c;
  }
  return out;
}

void metric(std::ostringstream& o, const char* name, const char* type, const char* help) {
  o << "# HELP " << name << ' ' << help << "\n# TYPE " << name << ' ' << type << '\n';
}

} // namespace

const char* lane_name(size_t lane) noexcept {
  static const char* const names[] = {"sales", "stock", "catalog", "reports"};
  static_assert(sizeof(names) / sizeof(names[0]) == core::lane_count);
  return lane < core::lane_count ? names[lane] : "?";
}

std::string render_metrics(const node_status& s, const metrics_extra& x) {
  std::ostringstream o;
  metric(o, "possync_up", "gauge", "1 while the node runs.");
  o << "possync_up 1\n";
  metric(o, "possync_node_info", "gauge", "Identity of this node (value always 1).");
  o << "possync_node_info{node=\"" << core::node_id_to_string(s.node) << "\",role=\""
    << storage::to_string(s.role) << "\",tenant=\"" << label(s.tenant) << "\",branch=\"" << label(s.branch)
    << "\",version=\"" << label(x.version) << "\"} 1\n";
  metric(o, "possync_online", "gauge", "1 while the uplink session to the upstream is welcomed.");
  o << "possync_online " << (s.online ? 1 : 0) << '\n';
  metric(o, "possync_caught_up", "gauge", "1 when every download feed has been served to its end.");
  o << "possync_caught_up " << (s.caught_up ? 1 : 0) << '\n';
  metric(o, "possync_downstream_sessions", "gauge", "Sessions of downstream nodes served now.");
  o << "possync_downstream_sessions " << s.downstream_sessions << '\n';
  metric(o, "possync_pending", "gauge", "Outbox entries waiting to go upstream, per lane.");
  for (size_t l = 0; l < s.pending.size(); ++l)
    o << "possync_pending{lane=\"" << lane_name(l) << "\"} " << s.pending[l] << '\n';
  metric(o, "possync_lag_records", "gauge", "Records the upstream still has to send (estimate).");
  o << "possync_lag_records " << s.lag_records << '\n';
  metric(o, "possync_last_sync_timestamp_seconds", "gauge",
         "When the outbox was last empty with every feed caught up (0 = never).");
  o << "possync_last_sync_timestamp_seconds " << static_cast<double>(s.last_sync_ms) / 1000.0 << '\n';
  metric(o, "possync_clock_skew_seconds", "gauge", "Upstream clock minus this node's.");
  o << "possync_clock_skew_seconds " << static_cast<double>(s.skew_ms) / 1000.0 << '\n';
  metric(o, "possync_uplink_restarts_total", "counter", "Uplink sessions the supervisor restarted.");
  o << "possync_uplink_restarts_total " << s.uplink_restarts << '\n';
  metric(o, "possync_records_rejected_total", "counter",
         "Records the upstream refused in the current or last session.");
  o << "possync_records_rejected_total " << s.rejected << '\n';
  metric(o, "possync_commits_total", "counter", "Requests made durable by the store (local writes, applies, acks).");
  o << "possync_commits_total " << x.commits << '\n';
  metric(o, "possync_commit_groups_total", "counter", "Synced RocksDB writes those commits took (group commit).");
  o << "possync_commit_groups_total " << x.commit_groups << '\n';
  metric(o, "possync_conflicts_unresolved", "gauge", "Conflicts waiting for an operator (capped at 100000).");
  o << "possync_conflicts_unresolved " << x.conflicts_unresolved << '\n';
  metric(o, "possync_commit_latency_seconds", "histogram",
         "Store commits from request to durable answer (group commit wait, write, fsync).");
  uint64_t cumulative = 0;
  const auto& bounds = storage::database::latency_histogram::bounds_ms;
  for (size_t i = 0; i < bounds.size(); ++i) {
    cumulative += x.commit_latency.counts[i];
    o << "possync_commit_latency_seconds_bucket{le=\"" << bounds[i] / 1000.0 << "\"} " << cumulative << '\n';
  }
  o << "possync_commit_latency_seconds_bucket{le=\"+Inf\"} " << x.commit_latency.count << '\n';
  o << "possync_commit_latency_seconds_sum " << x.commit_latency.sum_ms / 1000.0 << '\n';
  o << "possync_commit_latency_seconds_count " << x.commit_latency.count << '\n';
  metric(o, "possync_sync_records_total", "counter", "Records received (in) and sent (out) in sync sessions.");
  o << "possync_sync_records_total{direction=\"in\"} " << x.records_in << '\n';
  o << "possync_sync_records_total{direction=\"out\"} " << x.records_out << '\n';
  metric(o, "possync_sync_bytes_total", "counter", "Frame bytes of those records, received (in) and sent (out).");
  o << "possync_sync_bytes_total{direction=\"in\"} " << x.bytes_in << '\n';
  o << "possync_sync_bytes_total{direction=\"out\"} " << x.bytes_out << '\n';
  metric(o, "possync_sessions_ended_total", "counter",
         "Sync sessions ended, by code (ok = clean end; others name the error).");
  for (size_t c = 0; c < x.sessions_ended.size(); ++c)
    if (x.sessions_ended[c] != 0 || c == 0)
      o << "possync_sessions_ended_total{code=\"" << to_string(static_cast<errc>(c)) << "\"} " << x.sessions_ended[c]
        << '\n';
  metric(o, "possync_nodes", "gauge", "Downstream nodes this node knows, online and all (node::nodes()).");
  o << "possync_nodes{state=\"online\"} " << x.nodes_online << '\n';
  o << "possync_nodes{state=\"known\"} " << x.nodes_known << '\n';
  return o.str();
}

} // namespace possync::node
