// `possync demo`: the whole system in one process, on embedded defaults. HQ, one
// branch and three terminals talk real gRPC on 127.0.0.1 (ports chosen by the OS).
// HQ loads a catalogue with stock for the branch; the terminals sell; the branch is
// cut off from HQ and the terminals keep selling while HQ and the branch edit the
// same product concurrently; the link heals; then the demo verifies that every sale
// reached HQ exactly once, stock is right on every node and every node holds the same
// records, and prints each node's status as a POS operator reads it.
// Exit 0 iff the verification holds.

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "commands.hpp"
#include "config.hpp"
#include "console.hpp"
#include "local_store.hpp"
#include "possync/core/ids.hpp"
#include "possync/core/schema.hpp"
#include "possync/node/node.hpp"
#include "serve.hpp"
#include "store_view.hpp"

namespace possync::tools {

namespace {

using steady = std::chrono::steady_clock;

struct demo_config {
  std::string dir;           ///< "" = a temporary directory, removed at the end
  bool keep_running = false; ///< after the verification, keep the nodes up with a console
  std::string tenant = "demo";
  std::string branch = "jkt-01";
  size_t products = 200;
  int64_t stock = 100;      ///< initial units of every product at the branch
  size_t sales_online = 40; ///< sales per terminal while everything is connected
  size_t sales_cut = 40;    ///< sales per terminal while the branch is cut off from HQ
  double timeout_s = 60;    ///< bound on each wait for sync
  uint64_t seed = 7;
  std::string log_level = "warn";
};

struct member {
  std::string name; ///< hq, branch, t1, t2, t3
  std::unique_ptr<node::node> n;
  std::vector<sale_made> made; ///< sales rung up here
};

double since(steady::time_point t) {
  return std::chrono::duration<double>(steady::now() - t).count();
}

template <class Pred> bool wait_until(Pred pred, double seconds) {
  auto deadline = steady::now() + std::chrono::milliseconds(static_cast<int64_t>(seconds * 1000));
  for (;;) {
    if (pred()) return true;
    if (steady::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

bool synced(node::node& n) {
  auto s = n.status();
  for (auto p : s.pending)
    if (p) return false;
  auto empty = outbox_empty(n.store());
  if (!empty || !*empty) return false;
  return n.config().upstreams.empty() || (s.online && s.caught_up);
}

uint64_t outbox_count(node::node& n, uint8_t lane) {
  auto w = n.store().outbox_window(lane, 0, 1000000);
  return w ? w->size() : 0;
}

uint64_t count_of(node::node& n, const std::vector<scope_id>& scopes, const std::string& collection) {
  auto c = count_records(n.store(), scopes, collection);
  return c ? *c : 0;
}

// Collections a node of `role` receives from upstream, hence must hold exactly as HQ
// does: terminals get lanes 1-2 without the device registry; branches everything.
std::set<std::string> downstream_collections(storage::node_role role, const core::collection_registry& reg) {
  std::set<std::string> out;
  for (const auto* c : reg.list()) {
    if (role == storage::node_role::terminal &&
        (c->lane == core::lane_sales || c->lane == core::lane_reports || c->name == "device"))
      continue;
    out.insert(c->name);
  }
  return out;
}

result<std::map<std::string, digest_part>> digests_of(node::node& n, const std::vector<scope_id>& scopes,
                                                      const std::set<std::string>& only) {
  auto d = digest(n.store(), scopes, only);
  if (!d) return std::move(d).err();
  std::map<std::string, digest_part> out;
  for (const auto& s : *d)
    out[s.id.name()] = s.all;
  return out;
}

std::string ago(int64_t ms) {
  if (ms <= 0) return "never";
  int64_t now = std::chrono::duration_cast<std::chrono::milliseconds>(
                    std::chrono::system_clock::now().time_since_epoch())
                    .count();
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f s ago", static_cast<double>(now - ms) / 1000.0);
  return buf;
}

void print_status_table(std::vector<member>& nodes) {
  std::printf("\nstatus (as the POS back-office screen shows it)\n");
  std::printf("  %-7s %-16s %-8s %-7s %-9s %-24s %-12s %6s %7s %8s %8s\n", "node", "id", "role", "online",
              "caught-up", "pending sale/stk/cat/rep", "last sync", "lag", "skew", "sessions", "restarts");
  for (auto& m : nodes) {
    auto s = m.n->status();
    char pending[64];
    std::snprintf(
        pending, sizeof pending, "%llu/%llu/%llu/%llu", static_cast<unsigned long long>(s.pending[0]),
        static_cast<unsigned long long>(s.pending[1]), static_cast<unsigned long long>(s.pending[2]),
        static_cast<unsigned long long>(s.pending[3]));
    bool has_up = !m.n->config().upstreams.empty();
    char skew[32];
    std::snprintf(skew, sizeof skew, "%lld ms", static_cast<long long>(s.skew_ms));
    std::printf("  %-7s %-16s %-8s %-7s %-9s %-24s %-12s %6llu %7s %8u %8u\n", m.name.c_str(),
                core::node_id_to_string(s.node).c_str(), storage::to_string(s.role),
                has_up ? (s.online ? "yes" : "NO") : "-", has_up ? (s.caught_up ? "yes" : "no") : "-",
                pending, has_up ? ago(s.last_sync_ms).c_str() : "-",
                static_cast<unsigned long long>(s.lag_records), has_up ? skew : "-", s.downstream_sessions,
                s.uplink_restarts);
    if (!s.last_error.empty()) std::printf("          last error: %s\n", s.last_error.c_str());
  }
}

int run_demo(const demo_config& cfg) {
  auto fail = [](const std::string& what) {
    std::fprintf(stderr, "possync demo: %s\n", what.c_str());
    return int{exit_failure};
  };
  if (auto e = setup_logging(cfg.log_level)) {
    std::fprintf(stderr, "possync demo: %s\n", e.message.c_str());
    return exit_usage;
  }
  if (!valid_name(cfg.tenant) || !valid_name(cfg.branch)) {
    std::fprintf(stderr, "possync demo: --tenant and --branch must be 1-64 characters of [A-Za-z0-9._:-]\n");
    return exit_usage;
  }
  if (cfg.products < 1 || cfg.products > 100000) {
    std::fprintf(stderr, "possync demo: --products must be 1..100000\n");
    return exit_usage;
  }

  // Data directory: a temporary one unless given.
  std::string dir = cfg.dir;
  bool remove_dir = false;
  if (dir.empty()) {
    const char* t = std::getenv("TMPDIR");
    std::string templ = std::string(t && *t ? t : "/tmp") + "/possync-demo-XXXXXX";
    std::vector<char> buf(templ.begin(), templ.end());
    buf.push_back('\0');
    if (!::mkdtemp(buf.data())) return fail("cannot create a temporary directory under " + templ);
    dir = buf.data();
    remove_dir = true;
  }
  struct cleanup {
    std::string dir;
    bool remove;
    ~cleanup() {
      std::error_code ec;
      if (remove) std::filesystem::remove_all(dir, ec);
    }
  } cleanup_dir{dir, remove_dir};

  signal_watch signals; // before any node thread starts
  auto rt = node::runtime::create();

  const core::node_id hq_id = 0xa1, branch_id = 0xb1;
  const core::node_id till_ids[3] = {0x71, 0x72, 0x73};
  auto base = [&](storage::node_role role, const std::string& name, core::node_id id) {
    node::node_config c;
    c.role = role;
    c.tenant = cfg.tenant;
    c.branch = role == storage::node_role::hq ? "" : cfg.branch;
    c.node_id = id;
    c.dir = dir + "/" + name;
    c.backoff.initial_ms = 200;
    c.backoff.max_ms = 2000;
    c.backoff.healthy_ms = 10000;
    c.session.heartbeat_ms = 1000;
    c.session.idle_timeout_ms = 10000;
    return c;
  };

  std::vector<member> nodes;
  auto start = [&](const std::string& name, node::node_config c) -> status {
    std::error_code ec;
    std::filesystem::create_directories(c.dir, ec);
    auto n = node::node::start(std::move(c), rt);
    if (!n) return error(n.err().code, name + ": " + n.err().message);
    nodes.push_back(member{name, std::move(*n), {}});
    return {};
  };
  // Stop terminals first, HQ last, whatever path we leave by.
  struct stopper {
    std::vector<member>& nodes;
    ~stopper() {
      for (auto it = nodes.rbegin(); it != nodes.rend(); ++it)
        it->n->stop();
      nodes.clear();
    }
  } stop_all{nodes};

  std::printf("possync demo: HQ, branch %s and 3 terminals over gRPC on 127.0.0.1 (data in %s%s)\n",
              cfg.branch.c_str(), dir.c_str(), remove_dir ? ", removed at the end" : "");

  auto hq_cfg = base(storage::node_role::hq, "hq", hq_id);
  hq_cfg.listen = "127.0.0.1:0";
  hq_cfg.devices.push_back(
      {cfg.tenant, cfg.branch, branch_id, storage::node_role::branch, "store PC", false});
  for (int i = 0; i < 3; ++i)
    hq_cfg.devices.push_back({cfg.tenant, cfg.branch, till_ids[i], storage::node_role::terminal,
                              "Till " + std::to_string(i + 1), false});
  if (auto e = start("hq", hq_cfg)) return fail("starting " + e.to_string());
  node::node& hq = *nodes[0].n;

  // 1. HQ loads the catalogue and the branch's opening stock, in one commit per 500.
  auto t0 = steady::now();
  auto catalog = numbered_catalog(cfg.products, cfg.seed);
  if (auto e = sim::load_catalog(hq.store(), cfg.tenant, cfg.branch, catalog, cfg.stock * 1000, 500))
    return fail("loading the catalogue at HQ: " + e.to_string());
  std::printf("  1. HQ (127.0.0.1:%u) loaded %zu products and %lld units of each for %s\n", hq.port(),
              catalog.size(), static_cast<long long>(cfg.stock), cfg.branch.c_str());

  auto br_cfg = base(storage::node_role::branch, "branch", branch_id);
  br_cfg.listen = "127.0.0.1:0";
  br_cfg.upstreams = {"127.0.0.1:" + std::to_string(hq.port())};
  if (auto e = start("branch", br_cfg)) return fail("starting " + e.to_string());
  node::node& br = *nodes[1].n;
  // The branch admits terminals from its copy of HQ's device registry: let it arrive
  // first, so the registers' first session is not refused.
  if (!wait_until([&] { return synced(br) && count_of(br, {{cfg.tenant, ""}}, "device") >= 4; }, cfg.timeout_s))
    return fail("the branch did not sync with HQ within " + std::to_string(cfg.timeout_s) + " s");
  for (int i = 0; i < 3; ++i) {
    auto tc = base(storage::node_role::terminal, "t" + std::to_string(i + 1), till_ids[i]);
    tc.upstreams = {"127.0.0.1:" + std::to_string(br.port())};
    if (auto e = start("t" + std::to_string(i + 1), tc)) return fail("starting " + e.to_string());
  }
  std::vector<scope_id> scopes = {{cfg.tenant, ""}, {cfg.tenant, cfg.branch}};
  const std::string first = catalog.front().id;

  // 2. The catalogue and stock reach every register through the branch.
  bool ok = wait_until(
      [&] {
        for (size_t i = 2; i < nodes.size(); ++i) {
          auto& n = *nodes[i].n;
          if (!synced(n) || count_of(n, scopes, "product") != catalog.size()) return false;
          auto level = n.store().stock_level(cfg.tenant, cfg.branch, catalog.back().id);
          if (!level || *level != cfg.stock * 1000) return false;
        }
        return true;
      },
      cfg.timeout_s);
  if (!ok) {
    print_status_table(nodes);
    return fail("the terminals did not receive the catalogue within " + std::to_string(cfg.timeout_s) + " s");
  }
  std::printf("  2. branch (127.0.0.1:%u) and terminals t1-t3 received the catalogue in %.2f s\n", br.port(),
              since(t0));

  // 3. Everyone online: each terminal sells.
  auto sell_round = [&](size_t per_terminal, uint64_t round) -> status {
    for (size_t i = 2; i < nodes.size(); ++i) {
      auto& m = nodes[i];
      sim::rng r(cfg.seed * 1000 + round * 10 + i);
      if (auto e =
              sell_random(m.n->store(), cfg.tenant, cfg.branch, m.name, catalog, r, per_terminal, m.made))
        return error(e.code, m.name + ": " + e.message);
    }
    return {};
  };
  auto total_made = [&] {
    size_t n = 0;
    for (auto& m : nodes)
      n += m.made.size();
    return n;
  };
  t0 = steady::now();
  if (auto e = sell_round(cfg.sales_online, 1)) return fail("selling: " + e.to_string());
  ok = wait_until([&] { return count_of(hq, scopes, "sale") >= total_made(); }, cfg.timeout_s);
  std::printf("  3. t1-t3 sold %zu sales online; HQ holds %llu sales after %.2f s\n", total_made(),
              static_cast<unsigned long long>(count_of(hq, scopes, "sale")), since(t0));

  // 4. The branch loses HQ; the registers keep selling; HQ and the branch edit the
  //    same product (price at HQ, name at the branch).
  br.set_uplink_enabled(false);
  wait_until([&] { return !br.status().online; }, 10);
  if (auto e = sell_round(cfg.sales_cut, 2)) return fail("selling while cut off: " + e.to_string());
  auto original = catalog.front();
  const int64_t new_price = original.price + 1000;
  const std::string new_name = original.name + " (promo)";
  if (auto e = edit_product(hq.store(), cfg.tenant, first, "price", std::to_string(new_price)))
    return fail("HQ price edit: " + e.to_string());
  if (auto e = edit_product(br.store(), cfg.tenant, first, "name", new_name))
    return fail("branch name edit: " + e.to_string());
  wait_until(
      [&] {
        for (size_t i = 2; i < nodes.size(); ++i)
          if (!synced(*nodes[i].n)) return false;
        return true;
      },
      cfg.timeout_s);
  std::printf(
      "  4. branch cut off from HQ; t1-t3 sold %zu more; HQ set %s's price to %lld, the branch renamed it\n"
      "     while cut: branch holds %llu sales, HQ %llu; branch outbox holds %llu sales\n",
      cfg.sales_cut * 3, first.c_str(), static_cast<long long>(new_price),
      static_cast<unsigned long long>(count_of(br, scopes, "sale")),
      static_cast<unsigned long long>(count_of(hq, scopes, "sale")),
      static_cast<unsigned long long>(outbox_count(br, core::lane_sales)));

  // 5. Heal and wait (bounded) until everything is everywhere.
  t0 = steady::now();
  br.set_uplink_enabled(true);
  br.sync_now();
  const auto& reg = hq.store().registry();
  auto converged = [&] {
    for (auto& m : nodes)
      if (!synced(*m.n)) return false;
    if (count_of(hq, scopes, "sale") < total_made()) return false;
    auto want_branch = digests_of(hq, scopes, downstream_collections(storage::node_role::branch, reg));
    auto want_till = digests_of(hq, scopes, downstream_collections(storage::node_role::terminal, reg));
    if (!want_branch || !want_till) return false;
    for (size_t i = 1; i < nodes.size(); ++i) {
      auto role = nodes[i].n->config().role;
      auto d = digests_of(*nodes[i].n, scopes, downstream_collections(role, reg));
      if (!d) return false;
      const auto& want = role == storage::node_role::terminal ? *want_till : *want_branch;
      for (const auto& [scope, part] : want) {
        auto it = d->find(scope);
        if (it == d->end() || it->second.hash != part.hash || it->second.records != part.records)
          return false;
      }
    }
    return true;
  };
  bool healed = wait_until(converged, cfg.timeout_s);
  std::printf("  5. link healed; %s after %.2f s\n", healed ? "every node converged" : "NOT converged",
              since(t0));

  // Verification.
  std::printf("\nverification\n");
  bool all_ok = healed;
  auto check = [&](bool good, const std::string& what) {
    std::printf("  [%s] %s\n", good ? " ok " : "FAIL", what.c_str());
    all_ok = all_ok && good;
  };
  std::set<std::string> made_ids;
  std::map<std::string, int64_t> sold;
  size_t made_count = 0;
  for (auto& m : nodes)
    for (const auto& s : m.made) {
      made_ids.insert(cfg.branch + "/" + s.id);
      ++made_count;
      for (const auto& l : s.lines)
        sold[l.product_id] += l.quantity;
    }
  for (auto* holder : {&hq, &br}) {
    auto ids = record_ids(holder->store(), scopes, "sale");
    if (!ids) return fail("reading sales: " + ids.err().to_string());
    size_t missing = 0, unknown = 0;
    for (const auto& id : made_ids)
      missing += ids->count(id) ? 0 : 1;
    for (const auto& id : *ids)
      unknown += made_ids.count(id) ? 0 : 1;
    char line[256];
    std::snprintf(line, sizeof line, "%s holds %zu sales of %zu made on t1-t3 (missing %zu, duplicates %zu)",
                  holder == &hq ? "HQ" : "branch", ids->size(), made_count, missing, unknown);
    check(missing == 0 && unknown == 0 && ids->size() == made_count, line);
  }
  for (auto& m : nodes) {
    size_t wrong = 0;
    int64_t sample = 0;
    for (const auto& p : catalog) {
      auto level = m.n->store().stock_level(cfg.tenant, cfg.branch, p.id);
      int64_t want = cfg.stock * 1000 - (sold.count(p.id) ? sold[p.id] : 0);
      if (!level || *level != want) ++wrong;
      if (p.id == first && level) sample = *level;
    }
    char line[256];
    std::snprintf(line, sizeof line, "%-6s stock = initial - sold for %zu/%zu products (%s: %.3f)",
                  m.name.c_str(), catalog.size() - wrong, catalog.size(), first.c_str(),
                  static_cast<double>(sample) / 1000.0);
    check(wrong == 0, line);
  }
  auto hq_all = digest(hq.store(), scopes);
  if (!hq_all) return fail("digest at HQ: " + hq_all.err().to_string());
  for (size_t i = 1; i < nodes.size(); ++i) {
    auto role = nodes[i].n->config().role;
    auto only = downstream_collections(role, reg);
    auto want = digests_of(hq, scopes, only);
    auto have = digests_of(*nodes[i].n, scopes, only);
    if (!want || !have) return fail("digest failed");
    bool same = [&] {
      if (want->size() != have->size()) return false;
      for (const auto& [k, v] : *want) {
        auto it = have->find(k);
        if (it == have->end() || it->second.hash != v.hash || it->second.records != v.records) return false;
      }
      return true;
    }();
    std::string line = nodes[i].name + " holds the same records as HQ (" +
                       (role == storage::node_role::terminal ? "catalogue and stock" : "everything") + "):";
    for (const auto& [k, v] : *have)
      line += " " + k + " " + std::to_string(v.records) + " #" + hex64(v.hash).substr(0, 8);
    check(same, line);
  }
  size_t edits_ok = 0;
  for (auto& m : nodes) {
    auto p = product_json(m.n->store(), cfg.tenant, first);
    if (p && p->has_value() && (**p)["price"] == new_price && (**p)["name"] == new_name) ++edits_ok;
  }
  check(edits_ok == nodes.size(),
        "concurrent edit of " + first + ": price from HQ and name from the branch on " +
            std::to_string(edits_ok) + "/" + std::to_string(nodes.size()) + " nodes");
  print_status_table(nodes);
  std::printf("\n%s\n",
              all_ok ? "PASS: every sale at HQ exactly once, stock right everywhere, all nodes converged"
                     : "FAIL: see the lines marked FAIL above");
  std::fflush(stdout);

  if (cfg.keep_running && !signals.stopping().load()) {
    std::printf("\nkept running: HQ 127.0.0.1:%u, branch 127.0.0.1:%u. Console on stdin (`help`, `use "
                "hq|branch|t1|t2|t3`);"
                " Ctrl-C (or `quit`) stops.\n",
                hq.port(), br.port());
    std::fflush(stdout);
    std::vector<console::target> targets;
    for (auto& m : nodes)
      targets.push_back({m.name, m.n.get()});
    console c(targets);
    c.run(STDIN_FILENO, stdout, signals.stopping());
    if (!c.done()) signals.wait();
  }
  return all_ok ? exit_ok : exit_failure;
}

} // namespace

void add_demo_command(CLI::App& app, command_fn& run) {
  auto cfg = std::make_shared<demo_config>();
  auto* cmd = app.add_subcommand("demo", "HQ + branch + 3 terminals in one process: sell, cut, heal, verify");
  cmd->add_option("--dir", cfg->dir, "data directory, kept [a temporary directory, removed at the end]");
  cmd->add_flag("--keep-running", cfg->keep_running,
                "after the verification keep the nodes up with a console");
  cmd->add_option("--tenant", cfg->tenant, "tenant")->capture_default_str();
  cmd->add_option("--branch", cfg->branch, "branch id")->capture_default_str();
  cmd->add_option("--products", cfg->products, "products in the catalogue")->capture_default_str();
  cmd->add_option("--stock", cfg->stock, "initial units of each product at the branch")
      ->capture_default_str();
  cmd->add_option("--sales-online", cfg->sales_online, "sales per terminal while connected")
      ->capture_default_str();
  cmd->add_option("--sales-cut", cfg->sales_cut, "sales per terminal while the branch is cut off")
      ->capture_default_str();
  cmd->add_option("--timeout", cfg->timeout_s, "seconds each wait for sync may take")->capture_default_str();
  cmd->add_option("--seed", cfg->seed, "seed of the catalogue and sales")->capture_default_str();
  cmd->add_option("--log-level", cfg->log_level, "trace, debug, info, warn, error, off (stderr)")
      ->capture_default_str();
  cmd->callback([cfg, &run] { run = [cfg] { return run_demo(*cfg); }; });
}

} // namespace possync::tools
