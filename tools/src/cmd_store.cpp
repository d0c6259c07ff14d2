// Store lifecycle for operators, on a stopped node's data directory:
//   possync backup  --dir DATA --to OUT          consistent copy (RocksDB checkpoint)
//   possync restore --from BACKUP --dir DATA [--force]
//   possync verify  DIR [--encryption-keyring FILE] [--json]
//   possync recover --dir DATA [--encryption-keyring FILE] [--node-id HEX] [--json]
// The logic lives in storage (lifecycle.hpp); these commands open, call and print.

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>

#include <nlohmann/json.hpp>

#include "commands.hpp"
#include "possync/core/ids.hpp"
#include "possync/storage/lifecycle.hpp"

namespace possync::tools {

namespace {

namespace fs = std::filesystem;

int fail(const char* cmd, const std::string& what) {
  std::fprintf(stderr, "possync %s: %s\n", cmd, what.c_str());
  return exit_failure;
}

int64_t wall_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

/// The keyring file's cipher (nullptr for ""); the environment's
/// POSSYNC_ENCRYPTION_KEYRING text when no file is given, as the node commands do.
result<std::shared_ptr<const storage::value_cipher>> load_cipher(const std::string& file) {
  std::string text;
  if (!file.empty()) {
    std::ifstream in(file);
    if (!in) return error(errc::invalid_argument, "keyring file '" + file + "' cannot be read");
    std::stringstream ss;
    ss << in.rdbuf();
    text = ss.str();
  } else if (const char* env = std::getenv("POSSYNC_ENCRYPTION_KEYRING")) {
    text = env;
  }
  if (text.empty()) return std::shared_ptr<const storage::value_cipher>();
  return storage::value_cipher::from_keyring(text);
}

result<std::shared_ptr<storage::database>> open_existing(const std::string& dir) {
  std::error_code ec;
  if (!fs::exists(fs::path(dir) / "CURRENT", ec))
    return error(errc::not_found, "no store in '" + dir + "' (no RocksDB CURRENT file)");
  storage::db_options o;
  o.path = dir;
  o.group_commit = false;
  auto db = storage::database::open(o);
  if (!db) return error(db.err().code, "cannot open the store in '" + dir + "' (is a node running on it?): " +
                                           db.err().message);
  return db;
}

nlohmann::json to_json(const storage::verify_report& r) {
  nlohmann::json spaces = nlohmann::json::array();
  for (const auto& s : r.spaces)
    spaces.push_back({{"space", s.space},
                      {"node", core::node_id_to_string(s.node)},
                      {"encrypted", s.encrypted},
                      {"values_checked", s.values_checked},
                      {"dot_floor", s.dot_floor},
                      {"records", s.records},
                      {"feed", s.feed},
                      {"outbox", s.outbox},
                      {"lane_seq", s.lane_seq},
                      {"cursors", s.cursors},
                      {"conflicts", s.conflicts},
                      {"audit", s.audit}});
  nlohmann::json problems = nlohmann::json::array();
  for (const auto& p : r.problems)
    problems.push_back({{"space", p.space}, {"where", p.where}, {"key", p.key}, {"what", p.what}});
  return {{"clean", r.clean()}, {"problems_total", r.problems_total}, {"spaces", spaces}, {"problems", problems}};
}

void print_report(const std::string& dir, const storage::verify_report& r) {
  std::printf("store %s: %s\n", dir.c_str(),
              r.clean() ? "clean" : (std::to_string(r.problems_total) + " problem(s)").c_str());
  for (const auto& s : r.spaces) {
    std::printf("  space %u  node %s%s%s\n", s.space, core::node_id_to_string(s.node).c_str(),
                s.encrypted ? "  encrypted" : "", s.values_checked ? "" : " (values NOT checked: no keyring)");
    for (const auto& [name, n] : s.records)
      std::printf("    %-16s %10llu records\n", name.c_str(), static_cast<unsigned long long>(n));
    for (size_t l = 0; l < core::lane_count; ++l)
      std::printf("    lane %zu: head %llu, feed %llu, outbox pending %llu\n", l,
                  static_cast<unsigned long long>(s.lane_seq[l]), static_cast<unsigned long long>(s.feed[l]),
                  static_cast<unsigned long long>(s.outbox[l]));
    std::printf("    cursors %llu, conflicts %llu, audit %llu\n", static_cast<unsigned long long>(s.cursors),
                static_cast<unsigned long long>(s.conflicts), static_cast<unsigned long long>(s.audit));
  }
  for (const auto& p : r.problems)
    std::printf("  PROBLEM space %u %s [%s]: %s\n", p.space, p.where.c_str(), p.key.c_str(), p.what.c_str());
  if (r.problems.size() < r.problems_total)
    std::printf("  ... and %llu more\n", static_cast<unsigned long long>(r.problems_total - r.problems.size()));
}

/// verify_store on `dir`; a store whose values could not be opened counts as not clean.
result<storage::verify_report> verify_dir(const std::string& dir, const std::string& keyring) {
  auto cipher = load_cipher(keyring);
  if (!cipher) return std::move(cipher).err();
  auto db = open_existing(dir);
  if (!db) return std::move(db).err();
  storage::verify_options vo;
  vo.cipher = *cipher;
  return storage::verify_store(**db, vo);
}

struct verify_config {
  std::string dir, keyring;
  bool json = false;
};

int run_verify(const verify_config& c) {
  auto r = verify_dir(c.dir, c.keyring);
  if (!r) return fail("verify", r.err().to_string());
  bool unchecked = false;
  for (const auto& s : r->spaces) unchecked = unchecked || !s.values_checked;
  if (c.json) std::printf("%s\n", to_json(*r).dump(2).c_str());
  else print_report(c.dir, *r);
  if (unchecked && !c.json)
    std::fprintf(stderr, "possync verify: the store is encrypted; give --encryption-keyring to check its values\n");
  return r->clean() && !unchecked ? exit_ok : exit_failure;
}

struct backup_config {
  std::string dir, to;
};

int run_backup(const backup_config& c) {
  auto db = open_existing(c.dir);
  if (!db) return fail("backup", db.err().to_string());
  if (auto e = (*db)->checkpoint(c.to)) return fail("backup", e.to_string());
  auto usage = storage::dir_usage(c.to);
  if (!usage) return fail("backup", usage.err().to_string());
  std::printf("backup of %s in %s: %llu files, %llu bytes\n", c.dir.c_str(), c.to.c_str(),
              static_cast<unsigned long long>(usage->second), static_cast<unsigned long long>(usage->first));
  return exit_ok;
}

struct restore_config {
  std::string from, dir, keyring;
  bool force = false;
};

int run_restore(const restore_config& c) {
  std::error_code ec;
  if (!fs::exists(fs::path(c.from) / "CURRENT", ec))
    return fail("restore", "'" + c.from + "' is not a backup (no RocksDB CURRENT file)");
  if (fs::exists(c.dir, ec) && !fs::is_empty(c.dir, ec)) {
    if (!c.force)
      return fail("restore", "'" + c.dir + "' is not empty; --force moves it aside to " + c.dir +
                                 ".before-restore-<time> and restores");
    std::string aside = c.dir + ".before-restore-" + storage::utc_stamp(wall_ms());
    fs::rename(c.dir, aside, ec);
    if (ec) return fail("restore", "cannot move '" + c.dir + "' aside: " + ec.message());
    std::printf("moved the old %s to %s\n", c.dir.c_str(), aside.c_str());
  }
  fs::create_directories(c.dir, ec);
  fs::copy(c.from, c.dir, fs::copy_options::recursive | fs::copy_options::overwrite_existing, ec);
  if (ec) return fail("restore", "copying '" + c.from + "' to '" + c.dir + "': " + ec.message());
  auto r = verify_dir(c.dir, c.keyring);
  if (!r) return fail("restore", "the restored store does not open: " + r.err().to_string());
  print_report(c.dir, *r);
  if (!r->clean()) return fail("restore", "the restored store has problems (listed above)");
  std::printf("restored %s into %s\n", c.from.c_str(), c.dir.c_str());
  return exit_ok;
}

struct recover_config {
  std::string dir, keyring, node_id;
  bool json = false;
};

int run_recover(const recover_config& c) {
  auto cipher = load_cipher(c.keyring);
  if (!cipher) return fail("recover", cipher.err().to_string());
  storage::recover_options o;
  o.dir = c.dir;
  o.cipher = *cipher;
  if (!c.node_id.empty()) {
    auto id = core::parse_node_id(c.node_id);
    if (!id) return fail("recover", "--node-id '" + c.node_id + "' is not 1-16 hex digits");
    o.node = *id;
  }
  auto r = storage::recover_store(o);
  if (!r) return fail("recover", r.err().to_string());
  uint64_t salvaged = 0;
  for (auto n : r->salvaged) salvaged += n;
  if (c.json) {
    nlohmann::json j = {{"node", core::node_id_to_string(r->node)},
                        {"damaged_dir", r->damaged_dir},
                        {"repaired", r->repaired},
                        {"salvaged", r->salvaged},
                        {"lost", r->lost},
                        {"dot_floor", r->floor},
                        {"problems", r->problems}};
    std::printf("%s\n", j.dump(2).c_str());
  } else {
    std::printf("recovered %s (node %s): damaged store moved to %s%s\n", c.dir.c_str(),
                core::node_id_to_string(r->node).c_str(), r->damaged_dir.c_str(),
                r->repaired ? " (RocksDB repair was needed to read it)" : "");
    std::printf("  unsent outbox entries salvaged and queued first: %llu (sales lane %llu); lost: %llu\n",
                static_cast<unsigned long long>(salvaged), static_cast<unsigned long long>(r->salvaged[0]),
                static_cast<unsigned long long>(r->lost));
    for (const auto& p : r->problems) std::printf("  skipped: %s\n", p.c_str());
    std::printf("  start the node: it downloads everything else from its upstream\n");
  }
  return exit_ok;
}

} // namespace

void add_store_commands(CLI::App& app, command_fn& run) {
  auto b = std::make_shared<backup_config>();
  auto* cb = app.add_subcommand("backup", "consistent backup of a stopped node's store (a running node: ctl backup)");
  cb->add_option("--dir", b->dir, "the node's data directory")->required();
  cb->add_option("--to", b->to, "backup directory (must not exist or be empty)")->required();
  cb->callback([b, &run] { run = [b] { return run_backup(*b); }; });

  auto r = std::make_shared<restore_config>();
  auto* cr = app.add_subcommand("restore", "restore a backup into a data directory and check it");
  cr->add_option("--from", r->from, "the backup directory")->required();
  cr->add_option("--dir", r->dir, "the node's data directory")->required();
  cr->add_flag("--force", r->force, "move a non-empty data directory aside (DATA.before-restore-<time>)");
  cr->add_option("--encryption-keyring", r->keyring, "keyring file of an encrypted store (checks its values)");
  cr->callback([r, &run] { run = [r] { return run_restore(*r); }; });

  auto v = std::make_shared<verify_config>();
  auto* cv = app.add_subcommand("verify", "check a stopped node's store: checksums, every value, counters; exit 1 if damaged");
  cv->add_option("dir", v->dir, "the node's data directory")->required();
  cv->add_option("--encryption-keyring", v->keyring, "keyring file of an encrypted store");
  cv->add_flag("--json", v->json, "print one JSON object");
  cv->callback([v, &run] { run = [v] { return run_verify(*v); }; });

  auto rc = std::make_shared<recover_config>();
  auto* cc = app.add_subcommand(
      "recover", "rebuild a damaged store: move it aside, keep its unsent writes and node id, resync the rest");
  cc->add_option("--dir", rc->dir, "the node's data directory")->required();
  cc->add_option("--encryption-keyring", rc->keyring, "keyring file of an encrypted store");
  cc->add_option("--node-id", rc->node_id, "the node id, if the damaged store's cannot be read (16 hex digits)");
  cc->add_flag("--json", rc->json, "print one JSON object");
  cc->callback([rc, &run] { run = [rc] { return run_recover(*rc); }; });
}

} // namespace possync::tools
