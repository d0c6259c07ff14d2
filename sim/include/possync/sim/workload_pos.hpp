#pragma once
// POS load workloads with many terminals in one process (`possync sim --workload
// lanes|scale|pos|idle`): complete engine instances (node::node, the same actors and
// protocol as production) for HQ, branches and terminals on one shared runtime.
// Terminals share one RocksDB by store space (or RocksDB's in-memory environment with
// in_memory). Links are in-process, or real gRPC on 127.0.0.1, or real gRPC to an
// external HQ (`hq` = "host:port"): then only branches and terminals run here and the
// developer registers their devices at that HQ (devices_out writes them as HQ YAML).
//
// The workload generator (seeded): sales with realistic baskets (1-5 lines) and
// payments (cash with change, card, QRIS) at a rate per terminal; product and price
// edits at HQ; price overrides at branches; stocktakes (stock_movement "adjust");
// end-of-day reports (lane 3) per terminal; terminals going offline and back.
//
// - pos: the generator with every kind of traffic for `duration_ms`.
// - lanes (W6): one terminal's sale latency to HQ while idle, then again while a
//   20,000-product download and a 5 MB report upload are in flight on the same
//   terminal; loaded_p50 / idle_p50 (target <= 2).
// - scale (W7): `terminals` terminals in `branches` branches, `sales_per_terminal_s`
//   sales/s each for `duration_ms`, plus `hq_changes_per_s` product changes/s at HQ;
//   all sales at HQ exactly once, every terminal converges, RSS, p99 sale -> HQ.
// - idle (W10): `terminals` idle connected terminal sessions on one branch; memory per
//   session on the accepting side (see workload_idle in the README of this folder).

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>

#include "possync/core/error.hpp"
#include "possync/sim/report.hpp"
#include "possync/sim/workload_sync.hpp"

namespace possync::sim {

/// Parameters of the POS load workloads. 0 = the workload's default.
struct pos_options {
  std::string workload;                  ///< pos, lanes, scale, idle
  sync_transport transport = sync_transport::inproc;
  size_t stream_window_bytes =
      64u << 10; ///< gRPC flow-control window per stream (node_config) [64 KiB]; 0 = gRPC's automatic sizing
  std::string hq;                        ///< external HQ "host:port" ("" = run HQ here)
  std::string tenant = "sim";            ///< tenant of every node (an external HQ must serve it)
  std::string devices_out;               ///< write the devices an external HQ must register (YAML) and exit
  size_t terminals = 0;                  ///< scale [10,000]; pos [40]; idle [1,000]
  size_t branches = 0;                   ///< scale [100]; pos [4]
  size_t products = 0;                   ///< catalogue [200; lanes 20,000]
  double sales_per_terminal_s = 1;       ///< sale rate of each terminal
  double hq_changes_per_s = 1;           ///< product/price edits at HQ
  int64_t stock_pause_ms = -1; ///< session.stock_pause_ms of HQ and branches (-1 = node default, 1 s)
  /// Terminals download their branch's stock [true]; false: skip_collections "stock"
  /// (terminal_config.live_stock), and convergence then compares no stock at terminals.
  bool terminal_stock = true;
  double overrides_per_s = 0.2;          ///< price overrides at branches (pos)
  double stocktakes_per_s = 0.2;         ///< stocktakes (pos)
  double offline_fraction = 0.05;        ///< pos: share of terminals offline at any time
  size_t report_bytes = 0;               ///< lanes: the report uploaded during the download [5 MiB]
  int64_t duration_ms = 0;               ///< measured phase [scale 60 s, pos 30 s]
  int64_t sample_ms = 1000;              ///< series interval
  std::string report_html;               ///< also write the HTML report here
  bool in_memory = false;                ///< RocksDB in-memory environment instead of a temp dir
  uint64_t seed = 1;
  std::string dir;
  bool keep_dir = false;
  int64_t timeout_ms = 300'000;
  double max_rss_mb = 0;                 ///< stop (converged = false) once RSS exceeds this; 0 = no bound
  size_t threads = 0;
  std::string command;                   ///< the command line, for the report ("" = rebuilt from the options)
};

/// Outcome of one POS load run: TARGETS.md field names plus the series for the report.
struct pos_report {
  pos_options opts;
  double seconds = 0;
  double sales_per_s = 0;               ///< sales durable at HQ per second of the measured phase
  double p50_ms = 0, p99_ms = 0, max_ms = 0;   ///< sale -> HQ
  double change_p50_ms = 0, change_p99_ms = 0; ///< HQ change -> every terminal
  uint64_t expected = 0, seen = 0, lost = 0, duplicated = 0;
  bool converged = false;
  std::string failure;
  double peak_rss_mb = 0;
  double setup_seconds = 0;
  std::map<std::string, double> details;  ///< W6 idle_p50_ms/loaded_p50_ms/ratio, W10 bytes_per_session, ...
  run_record record;                      ///< what the HTML report shows
};

const std::vector<std::string>& pos_workload_names();
bool is_pos_workload(const std::string& name);

/// Runs one POS load workload (setup errors returned; an unfinished run is a report
/// with converged = false).
result<pos_report> run_pos(const pos_options& opts);

std::string to_json(const pos_report& r);
std::string to_text(const pos_report& r);

} // namespace possync::sim
