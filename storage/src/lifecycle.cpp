// verify_store, salvage_outbox, recover_store: reading a store as raw column families,
// without a node_store (which refuses, or trusts, what it cannot decode).

#include "possync/storage/lifecycle.hpp"

#include <chrono>
#include <ctime>
#include <filesystem>
#include <set>
#include <unordered_set>

#include <rocksdb/iterator.h>

#include "keys.hpp"
#include "node_store_impl.hpp"
#include "possync/v1/store.pb.h"

namespace possync::storage {

namespace {

namespace fs = std::filesystem;

/// One column family's keys under `prefix`, in order.
std::unique_ptr<rocksdb::Iterator> scan(database& db, cf_id cf, const std::string& lower, const std::string& upper,
                                        rocksdb::Slice& lo, rocksdb::Slice& hi, bool checksums = true) {
  rocksdb::ReadOptions ro;
  ro.verify_checksums = checksums;
  lo = rocksdb::Slice(lower);
  ro.iterate_lower_bound = &lo;
  if (!upper.empty()) {
    hi = rocksdb::Slice(upper);
    ro.iterate_upper_bound = &hi;
  }
  return std::unique_ptr<rocksdb::Iterator>(db.impl().db()->NewIterator(ro, db.impl().cf(cf)));
}

/// Spaces that have a node id in meta.
result<std::vector<uint32_t>> spaces_of(database& db) {
  std::vector<uint32_t> out;
  std::unique_ptr<rocksdb::Iterator> it(db.impl().db()->NewIterator(rocksdb::ReadOptions(), db.impl().cf(cf_meta)));
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    auto k = it->key().ToStringView();
    if (k.size() != 4 + 7 || k.substr(4) != "node_id") continue;
    uint32_t space = 0;
    for (int i = 0; i < 4; ++i) space = (space << 8) | static_cast<uint8_t>(k[static_cast<size_t>(i)]);
    out.push_back(space);
  }
  if (!it->status().ok()) return map_status(it->status(), "listing store spaces");
  return out;
}

/// meta value of `space` as u64: nullopt if absent; error text if not 8 bytes.
result<std::optional<uint64_t>> meta_u64(database& db, uint32_t space, const std::string& name) {
  std::string v;
  auto s = db.impl().db()->Get(rocksdb::ReadOptions(), db.impl().cf(cf_meta), keys::meta(space, name), &v);
  if (s.IsNotFound()) return std::optional<uint64_t>();
  if (!s.ok()) return map_status(s, "reading meta");
  if (v.size() != 8) return error(errc::data_loss, "has " + std::to_string(v.size()) + " bytes, expected 8");
  return std::optional<uint64_t>(keys::get_u64(v));
}

/// Siblings none of which another's past covers.
std::optional<std::string> sibling_problem(const core::record& r) {
  for (const auto& v : r.versions)
    for (const auto& w : r.versions)
      if (v.id != w.id && w.past.covers(v.id))
        return "version " + v.id.to_string() + " is covered by sibling " + w.id.to_string() + " (should be gone)";
  return std::nullopt;
}

class checker {
public:
  checker(database& db, const verify_options& o, verify_report& rep, const core::collection_registry& reg)
      : db_(db), opts_(o), rep_(rep), reg_(reg) {}

  void problem(uint32_t space, std::string where, std::string key, std::string what) {
    ++rep_.problems_total;
    if (rep_.problems.size() < opts_.max_problems)
      rep_.problems.push_back(verify_problem{space, std::move(where), std::move(key), std::move(what)});
  }

  void space(uint32_t sp) {
    space_summary sum;
    sum.space = sp;
    const value_cipher* cipher = nullptr;
    auto u64 = [&](const std::string& name) -> uint64_t {
      auto v = meta_u64(db_, sp, name);
      if (!v) {
        problem(sp, "meta", name, v.err().message);
        return 0;
      }
      return v->value_or(0);
    };
    sum.node = u64("node_id");
    if (sum.node == 0) problem(sp, "meta", "node_id", "node id is 0");
    sum.encrypted = u64("encrypted") != 0;
    if (sum.encrypted) {
      cipher = opts_.cipher.get();
      sum.values_checked = cipher != nullptr;
    }
    sum.dot_floor = u64("dot_floor");
    for (uint8_t l = 0; l < core::lane_count; ++l) sum.lane_seq[l] = u64("lane_seq/" + std::to_string(l));
    const uint64_t conflict_seq = u64("conflict_seq"), audit_seq = u64("audit_seq");
    {
      std::string v;
      auto s = db_.impl().db()->Get(rocksdb::ReadOptions(), db_.impl().cf(cf_meta), keys::meta(sp, "hlc"), &v);
      v1::Hlc h;
      if (s.ok() && !h.ParseFromString(v)) problem(sp, "meta", "hlc", "does not parse");
      else if (!s.ok() && !s.IsNotFound()) problem(sp, "meta", "hlc", s.ToString());
    }

    const std::string prefix = keys::space_prefix(sp), end = keys::prefix_end(prefix);
    const bool open_values = !sum.encrypted || cipher;
    // records: key tenant\0scope\0collection\0id
    std::set<std::string> expected_feed;  // feed keys the records name
    walk(sp, cf_records, "records", prefix, end, [&](std::string_view k, std::string_view v) {
      auto key = keys::parse_record(k.substr(4));
      if (!key) return problem(sp, "records", printable(k.substr(4)), "malformed key");
      const auto* info = reg_.find(key->collection);
      if (!info) return problem(sp, "records", key->to_string(), "unknown collection");
      ++sum.records[key->collection];
      if (!open_values) return;
      auto plain = open_sealed(cipher, 'r', k, v);
      if (!plain) return problem(sp, "records", key->to_string(), plain.err().message);
      auto d = decode_stored(*plain, *key);
      if (!d) return problem(sp, "records", key->to_string(), d.err().message);
      check_state(sp, "records", key->to_string(), d->rec);
      if (d->feed_seq == 0) return problem(sp, "records", key->to_string(), "no feed sequence number");
      if (d->feed_seq > sum.lane_seq[info->lane])
        problem(sp, "records", key->to_string(),
                "feed seq " + std::to_string(d->feed_seq) + " is above lane " + std::to_string(info->lane) +
                    "'s head " + std::to_string(sum.lane_seq[info->lane]) + " (it would be reused)");
      expected_feed.insert(keys::feed(sp, key->tenant, key->scope, info->lane, d->feed_seq));
    });
    // feed: key tenant\0scope\0 lane seq; value collection\0id
    walk(sp, cf_feed, "feed", prefix, end, [&](std::string_view k, std::string_view v) {
      auto t_end = k.find('\0', 4);
      auto s_end = t_end == std::string_view::npos ? t_end : k.find('\0', t_end + 1);
      if (s_end == std::string_view::npos || k.size() != s_end + 10)
        return problem(sp, "feed", printable(k.substr(4)), "malformed key");
      const uint8_t lane = static_cast<uint8_t>(k[s_end + 1]);
      const uint64_t seq = keys::get_u64(k, s_end + 2);
      const std::string where = "lane " + std::to_string(lane) + " seq " + std::to_string(seq);
      if (lane >= core::lane_count) return problem(sp, "feed", where, "lane out of range");
      ++sum.feed[lane];
      if (seq > sum.lane_seq[lane])
        problem(sp, "feed", where, "above the lane head " + std::to_string(sum.lane_seq[lane]));
      if (v.find('\0') == std::string_view::npos) return problem(sp, "feed", where, "malformed value");
      if (open_values && expected_feed.erase(std::string(k)) == 0)
        problem(sp, "feed", where, "names " + printable(v) + ", which does not point back to this entry");
    });
    for (const auto& k : expected_feed)
      problem(sp, "records", printable(std::string_view(k).substr(4)), "its feed entry is missing");
    // outbox: key 0 lane seq
    std::set<std::string> queued;
    walk(sp, cf_outbox, "outbox", prefix, end, [&](std::string_view k, std::string_view v) {
      if (k.size() != 4 + 2 + 8 || k[4] != '\0' || static_cast<uint8_t>(k[5]) >= core::lane_count)
        return problem(sp, "outbox", printable(k.substr(4)), "malformed key");
      const uint8_t lane = static_cast<uint8_t>(k[5]);
      const uint64_t seq = keys::get_u64(k, 6);
      const std::string where = "lane " + std::to_string(lane) + " seq " + std::to_string(seq);
      ++sum.outbox[lane];
      if (seq > sum.lane_seq[lane])
        problem(sp, "outbox", where, "above the lane head " + std::to_string(sum.lane_seq[lane]));
      if (!open_values) return;
      auto plain = open_sealed(cipher, 'o', k, v);
      if (!plain) return problem(sp, "outbox", where, plain.err().message);
      auto rec = decode_outbox(*plain);
      if (!rec) return problem(sp, "outbox", where, "entry does not parse");
      if (!check_state(sp, "outbox", where + " (" + rec->key.to_string() + ")", *rec)) return;
      if (reg_.find(rec->key.collection)->lane != lane)
        problem(sp, "outbox", where, rec->key.to_string() + " belongs to another lane");
      if (!queued.insert(rec->key.to_string()).second)
        problem(sp, "outbox", where, rec->key.to_string() + " is queued twice");
    });
    walk(sp, cf_cursors, "cursors", prefix, end, [&](std::string_view k, std::string_view v) {
      ++sum.cursors;
      if (v.size() != 8) problem(sp, "cursors", printable(k.substr(4)), "value is not 8 bytes");
    });
    walk(sp, cf_conflicts, "conflicts", prefix, end, [&](std::string_view k, std::string_view v) {
      ++sum.conflicts;
      const std::string where = "id " + std::to_string(keys::get_u64(k, 4));
      if (k.size() != 12) return problem(sp, "conflicts", printable(k.substr(4)), "malformed key");
      if (keys::get_u64(k, 4) > conflict_seq) problem(sp, "conflicts", where, "above conflict_seq");
      if (!open_values) return;
      auto plain = open_sealed(cipher, 'c', k, v);
      v1::ConflictEntry e;
      if (!plain) return problem(sp, "conflicts", where, plain.err().message);
      if (!e.ParseFromString(*plain)) problem(sp, "conflicts", where, "entry does not parse");
    });
    walk(sp, cf_audit, "audit", prefix, end, [&](std::string_view k, std::string_view v) {
      ++sum.audit;
      const std::string where = "id " + std::to_string(keys::get_u64(k, 4));
      if (k.size() != 12) return problem(sp, "audit", printable(k.substr(4)), "malformed key");
      if (keys::get_u64(k, 4) > audit_seq) problem(sp, "audit", where, "above audit_seq");
      v1::SessionAudit a;
      if (!a.ParseFromArray(v.data(), static_cast<int>(v.size()))) problem(sp, "audit", where, "entry does not parse");
    });
    rep_.spaces.push_back(std::move(sum));
  }

private:
  template <class Fn>
  void walk(uint32_t sp, cf_id cf, const char* name, const std::string& lower, const std::string& upper, Fn&& fn) {
    rocksdb::Slice lo, hi;
    auto it = scan(db_, cf, lower, upper, lo, hi);
    for (it->SeekToFirst(); it->Valid(); it->Next()) fn(it->key().ToStringView(), it->value().ToStringView());
    if (!it->status().ok()) problem(sp, name, "", "scan stopped: " + it->status().ToString());
  }

  /// Validation of a decoded state; false (and a problem) if it fails.
  bool check_state(uint32_t sp, const char* where, const std::string& what, const core::record& r) {
    if (auto e = core::validate_record(r, reg_, core::record_limits())) {
      problem(sp, where, what, e.message);
      return false;
    }
    if (auto p = sibling_problem(r)) {
      problem(sp, where, what, *p);
      return false;
    }
    return true;
  }

  static std::string printable(std::string_view s) {
    std::string out;
    for (char c : s) out.push_back(c == '\0' ? '/' : (c >= 0x20 && c < 0x7f ? c : '?'));
    return out;
  }

  database& db_;
  const verify_options& opts_;
  verify_report& rep_;
  const core::collection_registry& reg_;
};

std::shared_ptr<const core::collection_registry> registry_or_pos(std::shared_ptr<const core::collection_registry> r) {
  return r ? r : std::make_shared<const core::collection_registry>(core::collection_registry::pos());
}

uint64_t system_ms() {
  return static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
          .count());
}

} // namespace

result<verify_report> verify_store(database& db, const verify_options& opts) {
  verify_report rep;
  auto reg = registry_or_pos(opts.registry);
  checker c(db, opts, rep, *reg);
  auto s = db.impl().db()->VerifyChecksum();
  if (!s.ok()) c.problem(0, "checksums", "sst files", s.ToString());
  auto spaces = spaces_of(db);
  if (!spaces) return std::move(spaces).err();
  if (spaces->empty()) c.problem(0, "meta", "node_id", "no store space in this database (no node id)");
  for (uint32_t sp : *spaces) c.space(sp);
  return rep;
}

result<salvaged_outbox> salvage_outbox(database& db, uint32_t space, std::shared_ptr<const value_cipher> cipher,
                                       std::shared_ptr<const core::collection_registry> registry) {
  auto reg = registry_or_pos(std::move(registry));
  salvaged_outbox out;
  auto node = meta_u64(db, space, "node_id");
  if (node) out.node = node->value_or(0);
  else out.problems.push_back("meta node_id: " + node.err().message);
  std::vector<std::string> numbers{"dot_floor"};
  for (uint8_t l = 0; l < core::lane_count; ++l)
    numbers.push_back("lane_seq/" + std::to_string(l));
  for (const auto& name : numbers) {
    auto v = meta_u64(db, space, name);
    if (v)
      out.seq_high = std::max(out.seq_high, v->value_or(0));
    else
      out.problems.push_back("meta " + name + ": " + v.err().message);
  }
  auto enc = meta_u64(db, space, "encrypted");
  out.encrypted = enc && enc->value_or(0) != 0;
  if (out.encrypted && !cipher)
    return error(errc::failed_precondition, "this store is encrypted: give its keyring to salvage its outbox");
  if (!out.encrypted) cipher = nullptr;

  for (uint8_t l = 0; l < core::lane_count; ++l) {
    const std::string prefix = keys::outbox_prefix(space, l), end = keys::prefix_end(prefix);
    std::string resume = prefix;
    // First with checksums; a stretch that fails is read again without them, and its
    // entries count only if they decode and validate.
    for (bool checksums : {true, false}) {
      rocksdb::Slice lo, hi;
      auto it = scan(db, cf_outbox, resume, end, lo, hi, checksums);
      std::string last;
      for (it->SeekToFirst(); it->Valid(); it->Next()) {
        auto k = it->key().ToStringView();
        last.assign(k.data(), k.size());
        const std::string where = "outbox lane " + std::to_string(l) + " seq " +
                                  std::to_string(keys::get_u64(k, prefix.size()));
        auto plain = open_sealed(cipher.get(), 'o', k, it->value().ToStringView());
        auto rec = plain ? decode_outbox(*plain) : std::nullopt;
        if (!rec) {
          ++out.lost;
          out.problems.push_back(where + ": " + (plain ? std::string("does not parse") : plain.err().message));
          continue;
        }
        if (auto e = core::validate_record(*rec, *reg, core::record_limits())) {
          ++out.lost;
          out.problems.push_back(where + ": " + e.message);
          continue;
        }
        out.entries[l].push_back(std::move(*rec));
      }
      if (it->status().ok()) break;
      out.problems.push_back("outbox lane " + std::to_string(l) + ": unreadable after '" +
                             (last.empty() ? std::string("start") : std::to_string(keys::get_u64(last, prefix.size()))) +
                             "'" + (checksums ? ", reading again without checksums" : "") + ": " +
                             it->status().ToString());
      if (!checksums) ++out.lost;  // at least one entry in the stretch that stayed unreadable
      if (!last.empty()) resume = last + '\0';
    }
  }
  // Upper layers' settings (cli.*), not the store's own nor session state.
  std::unique_ptr<rocksdb::Iterator> it(db.impl().db()->NewIterator(rocksdb::ReadOptions(), db.impl().cf(cf_meta)));
  const std::string mp = keys::space_prefix(space);
  for (it->Seek(mp); it->Valid() && it->key().starts_with(mp); it->Next()) {
    auto name = it->key().ToStringView().substr(4);
    if (name.empty() || reserved_meta(name) || name.substr(0, 5) == "sync.") continue;
    out.meta.emplace_back(std::string(name), it->value().ToString());
  }
  if (!it->status().ok()) out.problems.push_back("meta: " + it->status().ToString());
  return out;
}

std::string utc_stamp(int64_t ms) {
  std::time_t t = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y%m%dT%H%M%SZ", &tm);
  return buf;
}

result<std::pair<uint64_t, uint64_t>> dir_usage(const std::string& dir) {
  std::error_code ec;
  uint64_t bytes = 0, files = 0;
  for (fs::recursive_directory_iterator it(dir, ec), e; !ec && it != e; it.increment(ec)) {
    if (!it->is_regular_file(ec)) continue;
    bytes += it->file_size(ec);
    ++files;
  }
  if (ec) return error(errc::unavailable, "reading '" + dir + "': " + ec.message());
  return std::make_pair(bytes, files);
}

result<recover_report> recover_store(const recover_options& o) {
  if (o.dir.empty()) return error(errc::invalid_argument, "recover: no directory");
  std::error_code ec;
  if (!fs::is_directory(o.dir, ec)) return error(errc::not_found, "recover: '" + o.dir + "' is not a directory");
  const uint64_t now = o.clock ? o.clock() : system_ms();
  recover_report rep;
  rep.damaged_dir = o.dir + ".damaged-" + utc_stamp(static_cast<int64_t>(now));
  for (int n = 2; fs::exists(rep.damaged_dir, ec); ++n)
    rep.damaged_dir = o.dir + ".damaged-" + utc_stamp(static_cast<int64_t>(now)) + "-" + std::to_string(n);
  fs::rename(o.dir, rep.damaged_dir, ec);
  if (ec) return error(errc::unavailable, "recover: cannot move '" + o.dir + "' aside: " + ec.message());
  auto give_back = [&](error e) -> error {
    std::error_code ec2;
    fs::rename(rep.damaged_dir, o.dir, ec2);
    if (ec2) e.message += " (and moving it back failed: " + ec2.message() + "; it is in " + rep.damaged_dir + ")";
    return e;
  };

  salvaged_outbox salvage;
  {
    db_options dbo;
    dbo.path = rep.damaged_dir;
    dbo.group_commit = false;
    auto damaged = database::open(dbo);
    if (!damaged) {
      if (auto s = database_impl::repair(rep.damaged_dir))
        return give_back(error(s.code, "recover: the store does not open (" + damaged.err().message +
                                           ") and RocksDB's repair failed: " + s.message));
      rep.repaired = true;
      damaged = database::open(dbo);
      if (!damaged)
        return give_back(error(damaged.err().code, "recover: the store does not open even after repair: " +
                                                       damaged.err().message));
    }
    auto s = salvage_outbox(**damaged, o.space, o.cipher, o.registry);
    if (!s) return give_back(s.err());
    salvage = std::move(s).value();
  }
  rep.node = salvage.node != 0 ? salvage.node : o.node;
  if (rep.node == 0)
    return give_back(error(errc::data_loss, "recover: the store's node id cannot be read; give it (--node-id)"));
  rep.lost = salvage.lost;
  rep.problems = std::move(salvage.problems);

  db_options dbo;
  dbo.path = o.dir;
  auto fresh = database::open(dbo);
  if (!fresh) return error(fresh.err().code, "recover: creating the new store in '" + o.dir + "': " + fresh.err().message);
  store_options so;
  so.space = o.space;
  so.role = o.role;
  so.node = rep.node;
  so.outbox = o.role != node_role::hq;
  so.clock = o.clock;
  so.registry = o.registry;
  so.cipher = salvage.encrypted ? o.cipher : nullptr;
  auto store = node_store::open(*fresh, so);
  if (!store) return error(store.err().code, "recover: opening the new store: " + store.err().message);
  for (auto& [name, value] : salvage.meta)
    if (auto s = (*store)->put_meta(name, value)) return error(s.code, "recover: meta " + name + ": " + s.message);
  start_over_options so2;
  // Above the damaged store's numbers too, should the clock have gone back since.
  so2.floor = std::max(now << 16, salvage.seq_high + dot_span);
  so2.requeue = std::move(salvage.entries);
  auto done = (*store)->start_over(std::move(so2));
  if (!done) return error(done.err().code, "recover: queueing the salvaged entries: " + done.err().message);
  rep.salvaged = done->requeued;
  rep.lost += done->invalid;
  rep.floor = done->floor;
  return rep;
}

} // namespace possync::storage
