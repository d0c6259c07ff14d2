// `possync inspect`: open a node's store while no process holds it and print what it
// holds: identity, records per collection and scope, stock levels, outbox, digests,
// conflicts and the last sync sessions.

#include <cstdio>
#include <filesystem>
#include <memory>

#include <nlohmann/json.hpp>

#include "commands.hpp"
#include "possync/core/ids.hpp"
#include "possync/core/policy.hpp"
#include "store_view.hpp"

namespace possync::tools {

namespace {

struct inspect_config {
  std::string dir;
  std::string tenant; ///< "" = the one the node ran with (kept in the store), else demo
  std::string branch; ///< "" = the one the node ran with
  bool json = false;
  size_t stock_rows = 10; ///< stock lines printed per branch (text)
};

std::string meta_or(const storage::node_store& store, const char* name, const std::string& fallback) {
  auto v = store.get_meta(name);
  if (v && v->has_value()) return **v;
  return fallback;
}

int run_inspect(const inspect_config& cfg) {
  auto fail = [](const std::string& what) {
    std::fprintf(stderr, "possync inspect: %s\n", what.c_str());
    return int{exit_failure};
  };
  std::error_code ec;
  if (!std::filesystem::is_directory(cfg.dir, ec))
    return fail("no store in '" + cfg.dir + "' (not a directory)");
  storage::db_options dbo;
  dbo.path = cfg.dir;
  auto db = storage::database::open(dbo);
  if (!db)
    return fail("cannot open the store in '" + cfg.dir +
                "' (is a node running on it?): " + db.err().to_string());
  storage::store_options so;
  auto opened = storage::node_store::open(*db, so);
  if (!opened) return fail("cannot open the node store: " + opened.err().to_string());
  auto& store = **opened;
  std::string tenant = cfg.tenant.empty() ? meta_or(store, "cli.tenant", "demo") : cfg.tenant;
  std::string branch = cfg.branch.empty() ? meta_or(store, "cli.branch", "") : cfg.branch;
  std::string role = meta_or(store, "cli.role", "unknown");

  auto scopes = known_scopes(store, tenant, branch);
  if (!scopes) return fail(scopes.err().to_string());
  auto d = digest(store, *scopes);
  if (!d) return fail(d.err().to_string());

  nlohmann::json stock = nlohmann::json::object();
  for (const auto& s : *scopes) {
    if (s.scope.empty()) continue;
    nlohmann::json levels = nlohmann::json::object();
    auto st = for_each_record(store, s, "stock",
                              [&](const core::record& r) { levels[r.key.id] = core::counter_of(r).value(); });
    if (st) return fail(st.to_string());
    if (!levels.empty()) stock[s.name()] = levels;
  }
  auto pending = store.pending();
  auto conflicts = store.conflicts(true, 100000);
  if (!conflicts) return fail(conflicts.err().to_string());
  auto sessions = store.sessions(5);
  if (!sessions) return fail(sessions.err().to_string());

  if (cfg.json) {
    nlohmann::json sess = nlohmann::json::array();
    for (const auto& a : *sessions)
      sess.push_back({{"peer", core::node_id_to_string(a.peer)},
                      {"peer_role", a.peer_role},
                      {"started_ms", a.started_ms},
                      {"ended_ms", a.ended_ms},
                      {"records_up", a.records_up},
                      {"records_down", a.records_down},
                      {"result", a.result}});
    nlohmann::json out = {{"dir", cfg.dir},
                          {"node", core::node_id_to_string(store.node())},
                          {"role", role},
                          {"tenant", tenant},
                          {"branch", branch},
                          {"scopes", digest_json(*d)},
                          {"stock_milli", stock},
                          {"pending", pending},
                          {"unresolved_conflicts", conflicts->size()},
                          {"sessions", sess}};
    std::printf("%s\n", out.dump(2).c_str());
    return exit_ok;
  }
  std::printf("store %s\n", cfg.dir.c_str());
  std::printf("  node %s  role %s  tenant %s  branch %s\n", core::node_id_to_string(store.node()).c_str(),
              role.c_str(), tenant.c_str(), branch.empty() ? "-" : branch.c_str());
  for (const auto& s : *d) {
    std::printf("  scope %-20s %8llu records  digest %s\n", s.id.name().c_str(),
                static_cast<unsigned long long>(s.all.records), hex64(s.all.hash).c_str());
    for (const auto& [name, part] : s.collections)
      std::printf("    %-16s %8llu  %s\n", name.c_str(), static_cast<unsigned long long>(part.records),
                  hex64(part.hash).c_str());
  }
  for (const auto& [scope, levels] : stock.items()) {
    std::printf("  stock %s (%zu products)\n", scope.c_str(), levels.size());
    size_t shown = 0;
    for (const auto& [id, level] : levels.items()) {
      if (shown++ == cfg.stock_rows) {
        std::printf("    ... (--stock-rows N or --json for all)\n");
        break;
      }
      int64_t v = level.get<int64_t>();
      std::printf("    %-12s %12.3f\n", id.c_str(), static_cast<double>(v) / 1000.0);
    }
  }
  std::printf("  outbox pending: sales %llu, stock %llu, catalog %llu, reports %llu\n",
              static_cast<unsigned long long>(pending[0]), static_cast<unsigned long long>(pending[1]),
              static_cast<unsigned long long>(pending[2]), static_cast<unsigned long long>(pending[3]));
  std::printf("  unresolved conflicts: %zu\n", conflicts->size());
  for (const auto& a : *sessions)
    std::printf("  session with %s (%s): up %llu, down %llu records, %s\n",
                core::node_id_to_string(a.peer).c_str(), a.peer_role.c_str(),
                static_cast<unsigned long long>(a.records_up),
                static_cast<unsigned long long>(a.records_down), a.result.c_str());
  return exit_ok;
}

} // namespace

void add_inspect_command(CLI::App& app, command_fn& run) {
  auto cfg = std::make_shared<inspect_config>();
  auto* cmd =
      app.add_subcommand("inspect", "print what a stopped node's store holds (counts, stock, digests)");
  cmd->add_option("--dir", cfg->dir, "the node's data directory")->required();
  cmd->add_option("--tenant", cfg->tenant, "tenant to read [the node's, else demo]");
  cmd->add_option("--branch", cfg->branch, "branch to read [the node's]");
  cmd->add_option("--stock-rows", cfg->stock_rows, "stock lines printed per branch")->capture_default_str();
  cmd->add_flag("--json", cfg->json, "print one JSON object");
  cmd->callback([cfg, &run] { run = [cfg] { return run_inspect(*cfg); }; });
}

} // namespace possync::tools
