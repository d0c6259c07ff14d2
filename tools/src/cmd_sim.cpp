// `possync sim --workload NAME`: run one benchmark workload and print its report.

#include <cstdio>
#include <string>

#include "commands.hpp"
#include "sim_cli.hpp"
#include "possync/sim/workload_local.hpp"
#include "possync/sim/workload_sync.hpp"
#include "possync/sim/workloads.hpp"

namespace possync::tools {

namespace {

int run_sync_workload(const sim_config& cfg) {
  sim::sync_options o = cfg.sync;
  o.workload = cfg.workload;
  o.stream_window_bytes = cfg.stream_window;
  if (cfg.transport == "grpc") o.transport = sim::sync_transport::grpc;
  else if (cfg.transport == "inproc") o.transport = sim::sync_transport::inproc;
  else {
    std::fprintf(stderr, "possync sim: --transport must be grpc or inproc, not '%s'\n", cfg.transport.c_str());
    return exit_usage;
  }
  if (cfg.products && cfg.products->count() > 0) o.products = cfg.local.products;
  if (cfg.sales && cfg.sales->count() > 0) o.sales = cfg.local.sales;
  o.seed = cfg.local.seed;
  o.dir = cfg.local.dir;
  o.keep_dir = cfg.local.keep_dir;
  auto rep = sim::run_sync(o);
  if (!rep) {
    std::fprintf(stderr, "possync sim: workload %s failed: %s\n", o.workload.c_str(),
                 rep.err().to_string().c_str());
    return exit_failure;
  }
  std::printf("%s\n", cfg.json ? sim::to_json(*rep).c_str() : sim::to_text(*rep).c_str());
  return rep->converged ? exit_ok : exit_failure;
}

int run_sim(const sim_config& cfg) {
  if (cfg.list) {
    for (const auto& w : sim::known_workloads())
      std::printf("%s\t%s\n", w.name.c_str(), w.description.c_str());
    return exit_ok;
  }
  if (cfg.seeds > 0 || !cfg.faults.empty() || cfg.trace || !cfg.sabotage.empty()) return run_dst_cli(cfg);
  if (sim::is_pos_workload(cfg.workload)) return run_pos_cli(cfg);
  if (cfg.workload.empty()) {
    std::fprintf(stderr, "possync sim: --workload NAME is required (--list shows the names)\n");
    return exit_usage;
  }
  if (sim::is_sync_workload(cfg.workload)) return run_sync_workload(cfg);
  if (cfg.workload == "local") {
    auto rep = sim::run_local(cfg.local);
    if (!rep) {
      std::fprintf(stderr, "possync sim: workload local failed: %s\n", rep.err().to_string().c_str());
      return exit_failure;
    }
    std::printf("%s\n", cfg.json ? sim::to_json(*rep).c_str() : sim::to_text(*rep).c_str());
    return rep->converged ? exit_ok : exit_failure;
  }
  std::string names;
  for (const auto& w : sim::known_workloads())
    names += "\n  " + w.name + "  " + w.description;
  std::fprintf(stderr, "possync sim: unknown workload '%s'; this build knows:%s\n", cfg.workload.c_str(),
               names.c_str());
  return exit_usage;
}

} // namespace

void add_sim_command(CLI::App& app, command_fn& run) {
  auto cfg = std::make_shared<sim_config>();
  auto* cmd = app.add_subcommand("sim", "run a benchmark workload (see TARGETS.md) and report figures");
  cmd->add_option("--workload", cfg->workload, "workload name (local = W8; --list shows all)");
  cmd->add_flag("--list", cfg->list, "list the workloads this build knows and exit");
  cfg->products = cmd->add_option("--products", cfg->local.products,
                                  "catalogue size (W1/W2/W9 default 20000, W3-W5 200)")
                      ->capture_default_str();
  cfg->sales = cmd->add_option("--sales", cfg->local.sales,
                               "W8: single-writer sale commits; W3: offline backlog [1000]; W5: per terminal [50]; W9: HQ's sale history [980000]")
                   ->capture_default_str();
  cfg->transport_opt = cmd->add_option("--transport", cfg->transport,
                                       "W1-W6, pos, idle: grpc (127.0.0.1) or inproc (scale: default inproc)")
                           ->capture_default_str();
  cmd->add_option("--stream-window", cfg->stream_window,
                  "W1-W7 over gRPC: flow-control window per stream, bytes (0 = gRPC's automatic sizing)")
      ->capture_default_str();
  cmd->add_option("--terminals", cfg->sync.terminals, "W4: live terminals [10]; W5: selling terminals [200]; pos [40]; scale [10000]; idle [1000]");
  cmd->add_option("--changes", cfg->sync.changes, "W2: products changed offline [50]; W4: updates pushed [200]");
  cmd->add_option("--restarts", cfg->sync.restarts, "W9: SIGKILL and restart cycles of the HQ process [3]");
  cmd->add_option("--branches", cfg->sync.branches, "W5: branches the terminals sell in [1]; pos [4]; scale [100]");
  cmd->add_flag("--via-branch", cfg->sync.via_branch, "W5: terminals under their branch's node instead of directly under HQ");
  cmd->add_option("--timeout-ms", cfg->sync.timeout_ms, "W1-W7: bound of every wait")->capture_default_str();
  cmd->add_option("--threads", cfg->sync.threads, "W1-W7: runtime scheduler threads (0 = default)");
  cmd->add_option("--writers", cfg->local.writers, "concurrent writer threads")->capture_default_str();
  cmd->add_option("--concurrent-sales", cfg->local.concurrent_sales,
                  "sale commits shared by the concurrent writers")
      ->capture_default_str();
  cmd->add_option("--in-flight", cfg->local.in_flight,
                  "pipelined phase: sales each writer keeps in flight (0 skips the phase)")
      ->capture_default_str();
  cmd->add_option("--pipelined-sales", cfg->local.pipelined_sales,
                  "pipelined phase: sale commits shared by the writers")
      ->capture_default_str();
  cmd->add_option("--lookups", cfg->local.lookups, "product lookups by id and by barcode (each)")
      ->capture_default_str();
  cmd->add_option("--searches", cfg->local.searches, "name-prefix searches")->capture_default_str();
  cfg->seed = cmd->add_option("--seed", cfg->local.seed, "random seed (deterministic simulation: the (first) seed)")
                  ->capture_default_str();
  cmd->add_option("--dir", cfg->local.dir,
                  "parent directory of the temporary store (default $TMPDIR or /tmp)");
  cmd->add_flag("--keep", cfg->local.keep_dir, "keep the store directory afterwards");
  cmd->add_option("--hq", cfg->pos.hq, "pos/lanes/scale/idle: external HQ host:port (branches and terminals run here)");
  cmd->add_option("--tenant", cfg->pos.tenant, "pos/scale: tenant of the simulated nodes (an external HQ must serve it)")
      ->capture_default_str();
  cmd->add_option("--devices-out", cfg->pos.devices_out,
                  "with --hq: write the devices that HQ must register (YAML) and exit");
  cmd->add_option("--report-bytes", cfg->pos.report_bytes, "lanes: size of the report uploaded during the download [5 MiB]");
  cmd->add_option("--rate", cfg->pos.sales_per_terminal_s, "pos/scale: sales per second per terminal")
      ->capture_default_str();
  cmd->add_option(
         "--stock-pause-ms", cfg->pos.stock_pause_ms,
         "pos/lanes/scale: session.stock_pause_ms of HQ and branches, how often live stock goes to each "
         "downstream (-1 = node default, 1000)")
      ->check(CLI::Range(int64_t{-1}, int64_t{3'600'000}));
  cmd->add_option_function<std::string>(
         "--terminal-stock", [cfg](const std::string& v) { cfg->pos.terminal_stock = v == "live"; },
         "pos/lanes/scale: live (terminals download their branch's stock) or off (skip_collections "
         "stock: each sale's stock change no longer goes to every register of the branch) [live]")
      ->check(CLI::IsMember({"live", "off"}));
  cmd->add_option("--hq-changes", cfg->pos.hq_changes_per_s, "pos/scale: product changes per second at HQ")
      ->capture_default_str();
  cfg->duration = cmd->add_option("--duration-s", cfg->duration_s, "pos/scale: measured phase in seconds");
  cmd->add_option("--max-rss-mb", cfg->pos.max_rss_mb, "pos/scale: stop (not converged) once RSS exceeds this [scale 12000]");
  cmd->add_flag("--in-memory", cfg->pos.in_memory, "pos/scale/idle: RocksDB in-memory environment");
  cmd->add_option("--report", cfg->report_html, "pos/lanes/scale/idle: also write a self-contained HTML report");
  cmd->add_option("--seeds", cfg->seeds, "deterministic simulation: run N seeds starting at --seed");
  cmd->add_option("--faults", cfg->faults,
                  "deterministic simulation: all, none or a list of "
                  "partition,cut,delay,duplicate,crash,clock,disk,disk-loss,reset");
  cmd->add_flag("--trace", cfg->trace, "deterministic simulation: print the event trace of --seed");
  cmd->add_option("--sim-threads", cfg->dst_threads, "deterministic simulation: seeds run in parallel (0 = cores)");
  cmd->add_option(
      "--sabotage", cfg->sabotage,
      "deterministic simulation: plant a bug the invariants must catch (ack-before-apply, ack-whole-lane, "
      "cursor-before-records)");
  cmd->add_flag("--json", cfg->json, "print one JSON object instead of a summary");
  cmd->callback([cfg, &run] { run = [cfg] { return run_sim(*cfg); }; });
}

} // namespace possync::tools
