#pragma once
// The flags of `possync sim`, shared by its three front ends: the benchmark workloads
// W1-W5 and W8 (cmd_sim.cpp), the POS load workloads (cmd_sim_pos.cpp) and the
// deterministic fault simulation (cmd_sim_dst.cpp). cmd_sim.cpp registers every flag
// and dispatches.

#include <string>

#include <CLI/CLI.hpp>

#include "possync/sim/dst.hpp"
#include "possync/sim/workload_local.hpp"
#include "possync/sim/workload_pos.hpp"
#include "possync/sim/workload_sync.hpp"

namespace possync::tools {

/// Flags of `possync sim`.
struct sim_config {
  std::string workload;
  sim::local_options local;
  sim::sync_options sync;  ///< W1-W5; products, sales, seed, dir, keep are taken from `local`
  sim::pos_options pos;    ///< pos/lanes/scale/idle; terminals, branches, seed, dir ... taken from the shared flags
  std::string transport = "grpc";
  size_t stream_window = 64u << 10; ///< --stream-window BYTES (sync and pos workloads)
  std::string report_html; ///< --report FILE.html
  // Deterministic simulation.
  uint64_t seeds = 0;      ///< --seeds N: run N seeds from --seed
  std::string faults;      ///< --faults all|none|list
  bool trace = false;      ///< --trace: print the event trace of --seed
  size_t dst_threads = 0;  ///< --sim-threads for --seeds
  std::string sabotage;    ///< --sabotage NAME: a planted bug the simulation must catch
  CLI::Option* products = nullptr;  ///< to tell a given --products from the W8 default
  CLI::Option* sales = nullptr;
  CLI::Option* seed = nullptr;
  CLI::Option* duration = nullptr;
  CLI::Option* transport_opt = nullptr;  ///< to tell a given --transport from its default
  int64_t duration_s = 0;  ///< --duration-s
  bool json = false;
  bool list = false;
};

/// `possync sim --seeds N` / `--seed S --faults F [--trace]`.
int run_dst_cli(const sim_config& cfg);
/// `possync sim --workload pos|lanes|scale|idle`.
int run_pos_cli(const sim_config& cfg);

} // namespace possync::tools
