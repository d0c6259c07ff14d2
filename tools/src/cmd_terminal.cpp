// `possync terminal`: a cash register. By default a terminal node syncing with its
// upstream (branch or HQ), driven by the console on stdin or a --script file. With
// --sales N it works on its own instead (no node, no network): opens (or creates) a
// durable terminal store, loads the demo catalogue if the store is empty, rings up N
// sales and prints what an operator checks at the end of a shift.

#include <chrono>
#include <cstdio>
#include <limits>
#include <string>

#include "commands.hpp"
#include "config.hpp"
#include "serve.hpp"
#include "local_store.hpp"
#include "possync/core/ids.hpp"
#include "possync/sim/pos_fixture.hpp"
#include "possync/v1/pos.pb.h"

namespace possync::tools {

namespace {

/// Settings of an offline shift (`possync terminal --sales N`).
struct terminal_config {
  std::string dir = "./possync-data/terminal"; ///< store directory
  size_t sales = 25;                           ///< sales to ring up this run
  std::string tenant = "demo";
  std::string branch = "jkt-01";
  std::string terminal_id = "T1";
  uint64_t seed = 0; ///< 0: from the clock
  std::string keyring; ///< encryption at rest ("" = plaintext)
};

constexpr int64_t initial_stock = 200'000; // thousandths: 200 pieces (or kg) per product

std::string money(int64_t minor) {
  // Rupiah with thousands separators: 1234567 -> "Rp 1.234.567".
  std::string digits = std::to_string(minor < 0 ? -minor : minor);
  std::string out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out += '.';
    out += digits[i];
  }
  return std::string(minor < 0 ? "-Rp " : "Rp ") + out;
}

std::string quantity(int64_t thousandths, const std::string& unit) {
  char buf[48];
  if (thousandths % 1000 == 0)
    std::snprintf(buf, sizeof buf, "%lld %s", static_cast<long long>(thousandths / 1000), unit.c_str());
  else
    std::snprintf(buf, sizeof buf, "%.3f %s", static_cast<double>(thousandths) / 1000.0, unit.c_str());
  return buf;
}

int fail(const char* what, const error& e) {
  std::fprintf(stderr, "possync terminal: %s: %s\n", what, e.to_string().c_str());
  return exit_failure;
}

int run_terminal(const terminal_config& cfg) {
  if (!valid_name(cfg.tenant) || !valid_name(cfg.branch) || !valid_name(cfg.terminal_id)) {
    std::fprintf(stderr,
                 "possync terminal: --tenant, --branch and --terminal-id must be 1-64 characters of "
                 "[A-Za-z0-9._:-] (got '%s', '%s', '%s')\n",
                 cfg.tenant.c_str(), cfg.branch.c_str(), cfg.terminal_id.c_str());
    return exit_usage;
  }
  auto opened = open_terminal_store(cfg.dir, cfg.keyring);
  if (!opened) return fail("opening the store", opened.err());
  storage::node_store& store = *opened->store;
  const auto& catalog = sim::demo_catalog();

  auto loaded = sim::catalog_loaded(store, cfg.tenant, catalog);
  if (!loaded) return fail("reading the catalogue", loaded.err());
  bool fresh = !*loaded;
  if (fresh) {
    // One commit: a crash leaves either the whole catalogue or none of it.
    if (auto st = sim::load_catalog(store, cfg.tenant, cfg.branch, catalog, initial_stock, catalog.size()))
      return fail("loading the catalogue", st);
  }

  uint64_t seed = cfg.seed != 0
                      ? cfg.seed
                      : static_cast<uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
  sim::rng r(seed);
  auto now_ms = [] {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
  };
  auto before =
      store.sales_between(cfg.tenant, cfg.branch, 0, std::numeric_limits<int64_t>::max(), 1'000'000);
  if (!before) return fail("counting earlier sales", before.err());

  int64_t takings = 0;
  size_t by_method[3] = {0, 0, 0};
  sim::sale_context ctx;
  ctx.terminal_id = cfg.terminal_id;
  for (size_t i = 0; i < cfg.sales; ++i) {
    core::record_key key{cfg.tenant, cfg.branch, "sale", store.new_id()};
    ctx.receipt_no = before->size() + i + 1;
    ctx.time_ms = now_ms();
    auto draft = sim::make_sale(r, catalog, key.id, ctx);
    auto res = store.record_sale(key, draft.body);
    if (!res) return fail(("recording sale " + std::to_string(i + 1)).c_str(), res.err());
    takings += draft.total;
    by_method[draft.method == "cash" ? 0 : draft.method == "card" ? 1 : 2]++;
  }

  auto all_sales =
      store.sales_between(cfg.tenant, cfg.branch, 0, std::numeric_limits<int64_t>::max(), 1'000'000);
  if (!all_sales) return fail("counting sales", all_sales.err());

  std::printf("possync terminal %s  store %s\n", cfg.terminal_id.c_str(), cfg.dir.c_str());
  std::printf("  node id        %s\n", core::node_id_to_string(store.node()).c_str());
  std::printf("  tenant/branch  %s / %s\n", cfg.tenant.c_str(), cfg.branch.c_str());
  std::printf("  products       %zu%s\n", catalog.size(), fresh ? " (catalogue loaded now)" : "");
  std::printf("  sales          %zu recorded now (%s: cash %zu, card %zu, qris %zu), %zu in the store\n",
              cfg.sales, money(takings).c_str(), by_method[0], by_method[1], by_method[2], all_sales->size());

  std::printf("  stock\n");
  for (size_t i = 0; i < catalog.size() && i < 5; ++i) {
    const auto& p = catalog[i];
    auto level = store.stock_level(cfg.tenant, cfg.branch, p.id);
    if (!level) return fail("reading stock", level.err());
    std::printf("    %-28s %12s%s\n", p.name.c_str(), quantity(*level, p.unit).c_str(),
                *level < 0 ? "  OVERSOLD" : "");
  }

  auto pending = store.pending();
  std::printf("  outbox pending sales %llu, stock %llu, catalog %llu, reports %llu\n",
              static_cast<unsigned long long>(pending[core::lane_sales]),
              static_cast<unsigned long long>(pending[core::lane_stock]),
              static_cast<unsigned long long>(pending[core::lane_catalog]),
              static_cast<unsigned long long>(pending[core::lane_reports]));

  const auto& scanned = catalog[1];
  auto found = store.product_by_barcode(cfg.tenant, scanned.barcode);
  if (!found) return fail("barcode lookup", found.err());
  if (!found->has_value()) {
    std::fprintf(stderr, "possync terminal: barcode %s is not in the catalogue\n", scanned.barcode.c_str());
    return exit_failure;
  }
  auto view = store.read(sim::product_key(cfg.tenant, **found));
  if (!view) return fail("reading a product", view.err());
  v1::Product product;
  if (!view->exists || !product.ParseFromString(view->body)) {
    std::fprintf(stderr, "possync terminal: product %s is missing or unreadable\n", found->value().c_str());
    return exit_failure;
  }
  std::printf("  scan %s -> %s  %s  %s\n", scanned.barcode.c_str(), found->value().c_str(),
              product.name().c_str(), money(product.price()).c_str());

  const std::string prefix = "ind";
  auto hits = store.search_products(cfg.tenant, prefix, 50);
  if (!hits) return fail("name search", hits.err());
  std::printf("  search \"%s\" -> %zu product(s)\n", prefix.c_str(), hits->size());
  for (const auto& id : *hits) {
    auto v = store.read(sim::product_key(cfg.tenant, id));
    v1::Product p;
    if (v && v->exists && p.ParseFromString(v->body))
      std::printf("    %-8s %-28s %12s\n", id.c_str(), p.name().c_str(), money(p.price()).c_str());
  }
  return exit_ok;
}

} // namespace

void add_terminal_command(CLI::App& app, command_fn& run) {
  struct shift_flags {
    size_t sales = 0;
    std::string terminal_id = "T1";
    uint64_t seed = 0;
  };
  auto* cmd = app.add_subcommand(
      "terminal",
      "run a register: console on stdin (or --script) syncing with --upstream; --sales N: offline shift");
  auto flags = std::make_shared<node_flags>(cmd, storage::node_role::terminal);
  auto shift = std::make_shared<shift_flags>();
  auto* sales = cmd->add_option("--sales", shift->sales,
                                "offline shift: ring up N sales without a node, print the status and exit");
  cmd->add_option("--terminal-id", shift->terminal_id, "offline shift: terminal id printed on receipts")
      ->capture_default_str();
  cmd->add_option("--seed", shift->seed, "offline shift: random seed of the sales (0: from the clock)");
  cmd->callback([flags, shift, sales, &run] {
    bool offline = sales->count() > 0;
    run = [flags, shift, offline] {
      auto s = flags->resolve();
      if (!s) {
        std::fprintf(stderr, "possync terminal: %s\n", s.err().message.c_str());
        return int{exit_usage};
      }
      if (!offline) return serve(*s);
      if (auto e = load_security(*s)) {
        std::fprintf(stderr, "possync terminal: %s\n", e.to_string().c_str());
        return int{exit_usage};
      }
      terminal_config cfg;
      cfg.dir = s->node.dir;
      cfg.keyring = s->node.encryption_keyring;
      cfg.tenant = s->node.tenant;
      if (!s->node.branch.empty()) cfg.branch = s->node.branch;
      cfg.sales = shift->sales;
      cfg.terminal_id = shift->terminal_id;
      cfg.seed = shift->seed;
      return run_terminal(cfg);
    };
  });
}

} // namespace possync::tools
