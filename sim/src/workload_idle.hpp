#pragma once
// W10 (`possync sim --workload idle`, ../shared/TARGETS.md: <= 64 KB per session):
// memory per idle connected terminal session. Private to sim/: run_pos dispatches
// the workload "idle" here.
//
// One branch node (under an HQ) and `opts.terminals` terminal nodes, all node::node
// instances on one runtime; the terminals are store spaces of one database (a temp
// dir, or RocksDB's in-memory environment with opts.in_memory). Links are in-process
// (opts.transport inproc) or real gRPC on 127.0.0.1 (grpc). The heap (glibc
// mallinfo2 in-use bytes) and RSS are taken with every uplink disabled, then again
// once every terminal is online, caught up and idle; the difference divided by the
// number of sessions is the memory one idle session costs.

#include "possync/core/error.hpp"
#include "possync/sim/workload_pos.hpp"

namespace possync::sim {

/// Runs W10 with opts.terminals sessions [1,000] on one branch. The report's details
/// hold sessions, bytes_per_session_both_ends (terminal uplink + branch downlink +
/// link buffers), bytes_per_session_accepting (the branch side alone) and
/// rss_delta_mb; converged = every terminal came online. Setup errors are returned.
result<pos_report> run_idle(const pos_options& opts);

} // namespace possync::sim
