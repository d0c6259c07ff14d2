// `possync sim --workload pos|lanes|scale|idle`: POS load with many terminals in one
// process (sim/include/possync/sim/workload_pos.hpp).
#include <cstdio>

#include "commands.hpp"
#include "sim_cli.hpp"

namespace possync::tools {

int run_pos_cli(const sim_config& cfg) {
  sim::pos_options o = cfg.pos;
  o.stream_window_bytes = cfg.stream_window;
  o.workload = cfg.workload;
  // scale defaults to in-process links (10,000 terminals in one process); the others
  // to the --transport default (gRPC on 127.0.0.1). An explicit --transport wins.
  const bool explicit_transport = cfg.transport_opt && cfg.transport_opt->count() > 0;
  std::string transport = cfg.transport;
  if (!explicit_transport && o.workload == "scale") transport = "inproc";
  if (transport == "grpc") o.transport = sim::sync_transport::grpc;
  else if (transport == "inproc") o.transport = sim::sync_transport::inproc;
  else {
    std::fprintf(stderr, "possync sim: --transport must be grpc or inproc, not '%s'\n", transport.c_str());
    return exit_usage;
  }
  o.terminals = cfg.sync.terminals;
  o.branches = cfg.sync.branches;
  if (cfg.products && cfg.products->count() > 0) o.products = cfg.local.products;
  if (cfg.duration && cfg.duration->count() > 0) {
    if (cfg.duration_s <= 0) {
      std::fprintf(stderr, "possync sim: --duration-s must be positive\n");
      return exit_usage;
    }
    o.duration_ms = cfg.duration_s * 1000;
  }
  o.seed = cfg.local.seed;
  o.dir = cfg.local.dir;
  o.keep_dir = cfg.local.keep_dir;
  o.timeout_ms = cfg.sync.timeout_ms;
  o.threads = cfg.sync.threads;
  o.report_html = cfg.report_html;
  auto rep = sim::run_pos(o);
  if (!rep) {
    std::fprintf(stderr, "possync sim: workload %s failed: %s\n", o.workload.c_str(), rep.err().to_string().c_str());
    return exit_failure;
  }
  std::printf("%s\n", cfg.json ? sim::to_json(*rep).c_str() : sim::to_text(*rep).c_str());
  return rep->converged ? exit_ok : exit_failure;
}

} // namespace possync::tools
