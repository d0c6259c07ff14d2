// `possync crash-writer`: the child process of the crash test. Records sales until
// it is killed and prints one line per sale only after record_sale returned OK
// (i.e. after the commit is durable), so every printed sale must survive SIGKILL.

#include <chrono>
#include <cstdio>
#include <string>

#include "commands.hpp"
#include "local_store.hpp"
#include "possync/sim/pos_fixture.hpp"

namespace possync::tools {

namespace {

/// Flags of `possync crash-writer`.
struct crash_writer_config {
  std::string dir;
  uint64_t seed = 1;
  std::string tenant = "crash";
  std::string branch = "b1";
  uint64_t max_sales = 0;            ///< 0: until killed
  int64_t initial_stock = 1'000'000; ///< thousandths per product, set when the catalogue is loaded
};

int run_crash_writer(const crash_writer_config& cfg) {
  auto opened = open_terminal_store(cfg.dir);
  if (!opened) {
    std::fprintf(stderr, "possync crash-writer: %s\n", opened.err().to_string().c_str());
    return exit_failure;
  }
  storage::node_store& store = *opened->store;
  const auto& catalog = sim::demo_catalog();
  auto loaded = sim::catalog_loaded(store, cfg.tenant, catalog);
  if (!loaded) {
    std::fprintf(stderr, "possync crash-writer: %s\n", loaded.err().to_string().c_str());
    return exit_failure;
  }
  if (!*loaded) {
    if (auto st =
            sim::load_catalog(store, cfg.tenant, cfg.branch, catalog, cfg.initial_stock, catalog.size())) {
      std::fprintf(stderr, "possync crash-writer: %s\n", st.to_string().c_str());
      return exit_failure;
    }
  }
  std::printf("READY %s\n", core::node_id_to_string(store.node()).c_str());
  std::fflush(stdout);

  sim::rng r(cfg.seed);
  sim::sale_context ctx;
  ctx.terminal_id = "CW";
  for (uint64_t n = 1; cfg.max_sales == 0 || n <= cfg.max_sales; ++n) {
    core::record_key key{cfg.tenant, cfg.branch, "sale", store.new_id()};
    ctx.receipt_no = n;
    ctx.time_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                      std::chrono::system_clock::now().time_since_epoch())
                      .count();
    auto draft = sim::make_sale(r, catalog, key.id, ctx);
    auto res = store.record_sale(key, draft.body);
    if (!res) {
      std::fprintf(stderr, "possync crash-writer: sale %llu: %s\n", static_cast<unsigned long long>(n),
                   res.err().to_string().c_str());
      return exit_failure;
    }
    std::string line = "SALE " + key.id + " ";
    for (size_t i = 0; i < draft.lines.size(); ++i) {
      if (i) line += ',';
      line += draft.lines[i].product_id + ":" + std::to_string(draft.lines[i].quantity);
    }
    line += '\n';
    std::fwrite(line.data(), 1, line.size(), stdout);
    std::fflush(stdout);
  }
  return exit_ok;
}

} // namespace

void add_crash_writer_command(CLI::App& app, command_fn& run) {
  auto cfg = std::make_shared<crash_writer_config>();
  auto* cmd = app.add_subcommand("crash-writer", "record sales until killed (child of the crash test)");
  cmd->add_option("--dir", cfg->dir, "store directory")->required();
  cmd->add_option("--seed", cfg->seed, "random seed of the generated sales")->capture_default_str();
  cmd->add_option("--tenant", cfg->tenant, "tenant id")->capture_default_str();
  cmd->add_option("--branch", cfg->branch, "branch id")->capture_default_str();
  cmd->add_option("--initial-stock", cfg->initial_stock,
                  "stock per product (thousandths) when loading the catalogue")
      ->capture_default_str();
  cmd->add_option("--max-sales", cfg->max_sales, "stop after this many sales (0: run until killed)")
      ->capture_default_str();
  cmd->callback([cfg, &run] { run = [cfg] { return run_crash_writer(*cfg); }; });
}

} // namespace possync::tools
