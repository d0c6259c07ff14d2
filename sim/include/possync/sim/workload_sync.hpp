#pragma once
// Workloads W1-W5 and W9 (TARGETS.md): real sync sessions between nodes running in this
// process on one shared node runtime, over real gRPC on 127.0.0.1 (`grpc`, what is
// compared with the baseline) or in-process links (`inproc`). Setup (catalogue loads,
// first syncs, offline sales) is never timed; only the synced part is.
//
// - full-sync (W1): HQ holds `products` products (~250 B each); an empty durable
//   terminal (its database already open) starts, directly under HQ; time until it
//   holds every product and reports caught up. records_per_s = products / seconds.
// - incremental (W2): a terminal synced with `products`; its uplink is cut; HQ changes
//   `changes` (50) products one commit each; uplink restored; time until the terminal
//   holds all of them.
// - offline-backlog (W3): a synced terminal records `sales` (1,000) sales (3 items and
//   a payment, ~400 B) with its uplink cut; uplink restored; time until HQ has
//   committed every sale durably (HQ commit notifications). sales_per_s.
// - push (W4): HQ -> branch -> `terminals` (10) live terminals; HQ changes one product
//   `changes` (200) times, one at a time, each waited for until every terminal holds
//   it. p50_ms/p99_ms of those times (from the HQ write call).
// - many-terminals (W5): `terminals` (200) terminals sharing one database (a store
//   space each) record `sales` (50) sales each at once, directly under HQ (or through
//   one branch with via_branch); time from the first sale until HQ durably holds all.
//   sales_per_s, lost (made, never seen at HQ), duplicated (seen twice, or seen but
//   never made).
// - restart (W9): HQ holding `products` (20,000) products and `sales` (980,000) sales
//   of history, 1,000,000 records, runs as a real `possync hq` process; a terminal in
//   this process, directly under it over gRPC, sells ~200 sales/s; HQ is SIGKILLed
//   mid-traffic and started again on the same port, `restarts` (3) times. Per restart:
//   time from starting the process until it listens, and until the terminal's session
//   is welcomed again (serving: p50_ms/p99_ms, seconds = the slowest). Then the
//   traffic stops: every sale the terminal acknowledged is at HQ exactly once.
//
// p50_ms/p99_ms of W1-W3 and W5: per record, the time from the start of the measured
// phase (W5: from its record_sale call) until its durable commit at the destination.
// Every wait is bounded by `timeout_ms`: a timeout ends the run with converged = false
// and the counts as they stood.

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "possync/core/error.hpp"

namespace possync::sim {

/// How the nodes of a sync workload talk.
enum class sync_transport { grpc, inproc };

/// Parameters of W1-W5 and W9. A 0 size means the workload's default (TARGETS.md).
struct sync_options {
  std::string workload;                      ///< full-sync, incremental, offline-backlog, push, many-terminals, restart
  sync_transport transport = sync_transport::grpc;
  size_t stream_window_bytes =
      64u << 10; ///< gRPC flow-control window per stream (node_config) [64 KiB]; 0 = gRPC's automatic sizing
  size_t products = 0;   ///< catalogue at HQ [W1/W2/W9 20,000; others 200]
  size_t sales = 0;      ///< W3: backlog [1,000]; W5: sales per terminal [50]; W9: HQ's sale history [980,000]
  size_t restarts = 0;   ///< W9: SIGKILL and restart cycles [3]
  std::string exe;       ///< W9: the possync binary to run HQ with ("" = this program)
  size_t terminals = 0;  ///< W4 [10]; W5 [200]
  size_t changes = 0;    ///< W2 [50]; W4 [200]
  size_t branches = 0;   ///< W5: terminal i sells in branch i % branches [1]
  bool via_branch = false;  ///< W5: terminals under their branch's node instead of directly under HQ
  uint64_t seed = 1;
  std::string dir;       ///< parent of the temporary store directory ("" = $TMPDIR or /tmp)
  bool keep_dir = false; ///< keep the stores for inspection
  int64_t timeout_ms = 120'000;  ///< bound of every wait (setup and measured phase)
  size_t threads = 0;    ///< runtime scheduler threads (0 = the runtime's default)
};

/// Outcome of one run. Times in seconds unless named _ms.
struct sync_report {
  sync_options opts;     ///< with the defaults filled in
  double seconds = 0;    ///< the measured phase
  double records_per_s = 0;  ///< W1, W2: records applied downstream per second
  double sales_per_s = 0;    ///< W3, W5: sales durable at HQ per second
  double p50_ms = 0, p99_ms = 0, max_ms = 0;
  uint64_t expected = 0;  ///< records (W1, W2), sales (W3, W5) or updates x terminals (W4)
  uint64_t seen = 0;      ///< of those, arrived
  uint64_t lost = 0;
  uint64_t duplicated = 0;
  bool converged = false;    ///< everything arrived once, final states match, uplinks caught up
  std::string failure;       ///< why converged is false ("" otherwise)
  double setup_seconds = 0;  ///< untimed setup
  double peak_rss_mb = 0;
  std::map<std::string, double> details;  ///< workload-specific figures (record bytes, ...)
};

/// The names run_sync() accepts, in TARGETS.md order.
const std::vector<std::string>& sync_workload_names();
/// True if `name` is one of them.
bool is_sync_workload(const std::string& name);

/// Runs one of W1-W5 or W9. Errors that stop the setup (a node or store does not start,
/// an unknown workload) are returned; a measured phase that does not complete is a
/// report with converged = false.
result<sync_report> run_sync(const sync_options& opts);

/// One JSON object with the TARGETS.md field names: workload, parameters, seconds,
/// records_per_s or sales_per_s, p50_ms, p99_ms, lost, duplicated, converged,
/// peak_rss_mb; plus details.
std::string to_json(const sync_report& r);
/// A few lines for a person, with the target next to the figures.
std::string to_text(const sync_report& r);

} // namespace possync::sim
