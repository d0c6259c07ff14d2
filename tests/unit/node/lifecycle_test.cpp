// Store lifecycle of running nodes: backup, reset (unsent sales kept and sent first,
// stock right although the rebuilt terminal sells before downloading), recovery of a
// damaged store (pending sales reach HQ exactly once, salvaged before new ones), the
// recover_on_corruption option, and retention. HQ <- terminal over in-process links.

#include <atomic>
#include <fstream>
#include <map>
#include <mutex>

#include <gtest/gtest.h>

#include "../storage/raw_rocksdb.hpp"
#include "../storage/test_util.hpp"
#include "eventually.hpp"
#include "fast_config.hpp"
#include "possync/node/inproc.hpp"
#include "possync/node/node.hpp"
#include "possync/storage/lifecycle.hpp"

namespace possync::node {
namespace {

using namespace std::chrono_literals;
using storage::test::temp_dir;
using test::eventually;

constexpr core::node_id hq_id = 0x4000000000000001ULL;
constexpr core::node_id term_id = 0x7000000000000071ULL;
const std::string tenant = "t1", branch = "b1";

std::string sale(int64_t time_ms) { return storage::test::sale_body({{"p1", 1000}}, time_ms); }

core::record_key sale_key(storage::node_store& s) { return core::record_key{tenant, branch, "sale", s.new_id()}; }

/// Sales at `s` by id -> their feed seq there; -1 if one has more than one version.
std::map<std::string, uint64_t> sales_at(const storage::node_store& s) {
  std::map<std::string, uint64_t> out;
  auto f = s.read_feed(tenant, branch, core::lane_sales, 0, 1'000'000);
  if (!f) return out;
  for (const auto& e : *f)
    if (e.rec.key.collection == "sale") out[e.rec.key.id] = e.rec.versions.size() == 1 ? e.seq : UINT64_MAX;
  return out;
}

class LifecycleTest : public ::testing::Test {
protected:
  void SetUp() override { rt_ = runtime::create(runtime::options{2, true}); }
  void TearDown() override {
    term_.reset();
    hq_.reset();
    rt_.reset();
  }

  node_config base(storage::node_role role, core::node_id id) {
    auto c = test::fast_config(role, id, tenant, branch);
    c.connect = [this](const std::string&) {
      std::lock_guard<std::mutex> lk(mu_);
      auto [a, b] = inproc_pair("term", "hq");
      if (hq_) hq_->accept(std::move(b));
      else b->close(error(errc::unavailable, "hq is down"));
      return std::move(a);
    };
    return c;
  }

  void start_hq(std::shared_ptr<storage::database> db = nullptr, uint32_t retention_days = 0) {
    auto c = base(storage::node_role::hq, hq_id);
    c.devices.push_back(device{tenant, branch, term_id, storage::node_role::terminal, "till 1", false});
    c.sale_retention_days = retention_days;
    if (db) {
      c.db = std::move(db);
      c.in_memory = false;
    }
    auto n = node::start(c, rt_);
    ASSERT_TRUE(n) << n.err().to_string();
    std::lock_guard<std::mutex> lk(mu_);
    hq_ = std::move(n).value();
  }

  node_config terminal_config() {
    auto c = base(storage::node_role::terminal, term_id);
    c.upstreams = {"hq"};
    return c;
  }

  void start_terminal(node_config c) {
    auto n = node::start(std::move(c), rt_);
    ASSERT_TRUE(n) << n.err().to_string();
    term_ = std::move(n).value();
  }

  std::shared_ptr<runtime> rt_;
  std::mutex mu_;
  std::unique_ptr<node> hq_, term_;
};

TEST_F(LifecycleTest, BackupOfARunningNodeIsConsistentAndRefusesAFullTarget) {
  temp_dir data, backups;
  ASSERT_NO_FATAL_FAILURE(start_hq());
  auto c = terminal_config();
  c.in_memory = false;
  c.dir = data.str();
  ASSERT_NO_FATAL_FAILURE(start_terminal(c));
  std::vector<std::string> before;
  for (int i = 0; i < 20; ++i) {
    auto k = sale_key(term_->store());
    ASSERT_TRUE(term_->store().record_sale(k, sale(i)));
    before.push_back(k.id);
  }
  std::atomic<bool> stop{false};
  std::thread writer([&] {
    for (int i = 0; !stop; ++i) ASSERT_TRUE(term_->store().record_sale(sale_key(term_->store()), sale(100 + i)));
  });
  const std::string target = (backups.path / "b").string();
  auto b = term_->backup(target);
  stop = true;
  writer.join();
  ASSERT_TRUE(b) << b.err().to_string();
  EXPECT_EQ(b->dir, target);
  EXPECT_EQ(b->node, term_id);
  EXPECT_GT(b->bytes, 0u);
  EXPECT_GT(b->files, 0u);
  EXPECT_GT(b->taken_ms, 0);
  EXPECT_EQ(term_->backup(target).err().code, errc::already_exists);

  auto db = storage::test::open_db(target);
  auto rep = storage::verify_store(*db, {});
  ASSERT_TRUE(rep);
  EXPECT_TRUE(rep->clean()) << rep->problems.size();
  auto s = storage::test::open_store(db);
  for (const auto& id : before) EXPECT_TRUE(s->get(core::record_key{tenant, branch, "sale", id})->has_value());

  ASSERT_NO_FATAL_FAILURE(start_terminal([&] {
    auto m = terminal_config();
    m.node_id = 0x7000000000000072ULL;
    return m;
  }()));
  EXPECT_EQ(term_->backup((backups.path / "m").string()).err().code, errc::failed_precondition);
}

TEST_F(LifecycleTest, ResetKeepsUnsentSalesSendsThemFirstAndKeepsStockRight) {
  ASSERT_NO_FATAL_FAILURE(start_hq());
  ASSERT_NO_FATAL_FAILURE(start_terminal(terminal_config()));
  auto& ts = term_->store();
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(ts.record_sale(sale_key(ts), sale(i)));
  ASSERT_TRUE(eventually([&] { return sales_at(hq_->store()).size() == 3 && ts.pending()[0] == 0; }));
  ASSERT_TRUE(eventually([&] { return ts.pending()[core::lane_stock] == 0; }));
  term_->set_uplink_enabled(false);
  ASSERT_TRUE(eventually([&] { return !term_->status().online; }));
  std::vector<std::string> unsent;
  for (int i = 0; i < 4; ++i) {
    auto k = sale_key(ts);
    unsent.push_back(k.id);
    ASSERT_TRUE(ts.record_sale(k, storage::test::sale_body({{"p2", 1000}}, 10 + i)));
  }

  ASSERT_FALSE(term_->reset("test"));
  EXPECT_EQ(ts.node(), term_id);
  EXPECT_EQ(ts.pending()[core::lane_sales], 4u);
  EXPECT_GT(ts.dot_floor(), 0u);
  // p1's stock record was acknowledged, so it is gone locally: the next sale writes it
  // without having seen HQ's state (its dot and counter entry must not collide with
  // what HQ holds). p2's, unsent, was queued again.
  EXPECT_TRUE(ts.get(core::record_key{tenant, branch, "stock", "p2"})->has_value());
  EXPECT_FALSE(ts.get(core::record_key{tenant, branch, "stock", "p1"})->has_value());
  auto fresh = sale_key(ts);
  ASSERT_TRUE(ts.record_sale(fresh, sale(99)));
  term_->set_uplink_enabled(true);

  ASSERT_TRUE(eventually([&] { return sales_at(hq_->store()).size() == 8; })) << sales_at(hq_->store()).size();
  auto at_hq = sales_at(hq_->store());
  for (const auto& [id, seq] : at_hq) EXPECT_NE(seq, UINT64_MAX) << id << " has siblings";
  for (const auto& id : unsent) EXPECT_LT(at_hq.at(id), at_hq.at(fresh.id)) << "salvaged sale after the new one";
  ASSERT_TRUE(eventually([&] { return *hq_->store().stock_level(tenant, branch, "p1") == -4000; }))
      << *hq_->store().stock_level(tenant, branch, "p1");
  EXPECT_EQ(*hq_->store().stock_level(tenant, branch, "p2"), -4000);
  // The terminal downloads everything again and agrees.
  EXPECT_TRUE(eventually([&] { return *ts.stock_level(tenant, branch, "p1") == -4000; }))
      << *ts.stock_level(tenant, branch, "p1");
  EXPECT_TRUE(eventually([&] { return *ts.stock_level(tenant, branch, "p2") == -4000; }));
  std::this_thread::sleep_for(100ms);
  EXPECT_EQ(sales_at(hq_->store()).size(), 8u);

  auto hq_reset = hq_->reset("no");
  EXPECT_EQ(hq_reset.code, errc::failed_precondition);
}

/// A terminal store in `dir` holding `n` unsent sales (no upstream); returns their ids.
std::vector<std::string> pending_store(const std::string& dir, int n) {
  std::vector<std::string> ids;
  auto db = storage::test::open_db(dir);
  storage::store_options o;
  o.node = term_id;
  auto s = storage::node_store::open(db, o);
  EXPECT_TRUE(s);
  if (!s) return ids;
  EXPECT_FALSE((*s)->put_meta("cli.role", "terminal"));
  for (int i = 0; i < n; ++i) {
    auto k = sale_key(**s);
    EXPECT_TRUE((*s)->record_sale(k, sale(i)));
    ids.push_back(k.id);
  }
  EXPECT_FALSE(db->flush());
  return ids;
}

TEST_F(LifecycleTest, RecoveredStoreSendsEveryPendingSaleExactlyOnceAndFirst) {
  temp_dir parent;
  const std::string dir = (parent.path / "data").string();
  auto pending = pending_store(dir, 25);
  ASSERT_EQ(pending.size(), 25u);
  // Damage: every record value overwritten with garbage.
  storage::test::rewrite(dir, "records", [](auto& values) {
    for (auto& kv : values) kv.second = "\x01garbage";
  });
  {
    auto db = storage::test::open_db(dir);
    auto rep = storage::verify_store(*db, {});
    ASSERT_TRUE(rep);
    EXPECT_GE(rep->problems_total, 25u);
  }
  storage::recover_options ro;
  ro.dir = dir;
  auto rec = storage::recover_store(ro);
  ASSERT_TRUE(rec) << rec.err().to_string();
  EXPECT_EQ(rec->node, term_id);
  EXPECT_EQ(rec->salvaged[core::lane_sales], 25u);
  EXPECT_EQ(rec->lost, 0u);

  ASSERT_NO_FATAL_FAILURE(start_hq());
  auto c = terminal_config();
  c.in_memory = false;
  c.dir = dir;
  c.node_id = 0;  // the id kept in the rebuilt store
  c.upstreams.clear();  // sell first, then connect
  ASSERT_NO_FATAL_FAILURE(start_terminal(c));
  EXPECT_EQ(term_->store().node(), term_id);
  std::vector<std::string> fresh;
  for (int i = 0; i < 3; ++i) {
    auto k = sale_key(term_->store());
    ASSERT_TRUE(term_->store().record_sale(k, sale(100 + i)));
    fresh.push_back(k.id);
  }
  term_.reset();
  c.upstreams = {"hq"};
  ASSERT_NO_FATAL_FAILURE(start_terminal(c));
  ASSERT_TRUE(eventually([&] { return sales_at(hq_->store()).size() == 28; })) << sales_at(hq_->store()).size();
  EXPECT_TRUE(eventually([&] { return term_->status().pending[core::lane_sales] == 0; }));
  std::this_thread::sleep_for(100ms);
  auto at_hq = sales_at(hq_->store());
  EXPECT_EQ(at_hq.size(), 28u);
  uint64_t last_salvaged = 0;
  for (const auto& id : pending) {
    ASSERT_TRUE(at_hq.count(id)) << id;
    EXPECT_NE(at_hq[id], UINT64_MAX);
    last_salvaged = std::max(last_salvaged, at_hq[id]);
  }
  for (const auto& id : fresh) EXPECT_GT(at_hq.at(id), last_salvaged) << "a new sale went up before a salvaged one";
  EXPECT_EQ(*hq_->store().stock_level(tenant, branch, "p1"), -28000);
}

TEST_F(LifecycleTest, RecoverOnCorruptionRebuildsAStoreThatDoesNotOpen) {
  temp_dir parent;
  const std::string dir = (parent.path / "data").string();
  auto pending = pending_store(dir, 5);
  // CURRENT names the manifest; garbage there and RocksDB refuses to open.
  {
    std::ofstream f(dir + "/CURRENT", std::ios::trunc);
    f << "garbage";
  }
  ASSERT_NO_FATAL_FAILURE(start_hq());
  auto c = terminal_config();
  c.in_memory = false;
  c.dir = dir;
  auto refused = node::start(c, rt_);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.err().code, errc::data_loss) << refused.err().to_string();

  c.recover_on_corruption = true;
  ASSERT_NO_FATAL_FAILURE(start_terminal(c));
  ASSERT_TRUE(term_->recovery().has_value());
  EXPECT_TRUE(term_->recovery()->repaired);
  EXPECT_EQ(term_->recovery()->salvaged[core::lane_sales], 5u);
  EXPECT_TRUE(std::filesystem::is_directory(term_->recovery()->damaged_dir));
  ASSERT_TRUE(eventually([&] { return sales_at(hq_->store()).size() == 5; })) << sales_at(hq_->store()).size();
  for (const auto& id : pending) EXPECT_TRUE(sales_at(hq_->store()).count(id));
}

TEST_F(LifecycleTest, RetentionPurgesOldAckedSalesOnTerminalsNeverOnHqAndSendsNothing) {
  const int64_t day = 86'400'000;
  const int64_t now = std::chrono::duration_cast<std::chrono::milliseconds>(
                          std::chrono::system_clock::now().time_since_epoch())
                          .count();
  const uint64_t long_ago = static_cast<uint64_t>(now - 40 * day);
  auto tdb = storage::test::open_mem_db();
  auto hdb = storage::test::open_mem_db();
  std::vector<core::record_key> acked, unacked;
  {
    storage::store_options o;
    o.node = term_id;
    o.clock = [long_ago] { return long_ago; };
    auto s = std::move(storage::node_store::open(tdb, o)).value();
    for (int i = 0; i < 3; ++i) {
      acked.push_back(sale_key(*s));
      ASSERT_TRUE(s->record_sale(acked.back(), sale(static_cast<int64_t>(long_ago))));
    }
    ASSERT_FALSE(s->ack_outbox(core::lane_sales, s->lane_head(core::lane_sales)));
    ASSERT_FALSE(s->ack_outbox(core::lane_stock, s->lane_head(core::lane_stock)));
    for (int i = 0; i < 2; ++i) {
      unacked.push_back(sale_key(*s));
      ASSERT_TRUE(s->record_sale(unacked.back(), sale(static_cast<int64_t>(long_ago))));
    }
    storage::store_options h;
    h.node = hq_id;
    h.role = storage::node_role::hq;
    h.outbox = false;
    h.clock = o.clock;
    auto hs = std::move(storage::node_store::open(hdb, h)).value();
    for (int i = 0; i < 4; ++i) ASSERT_TRUE(hs->record_sale(sale_key(*hs), sale(static_cast<int64_t>(long_ago))));
  }
  ASSERT_NO_FATAL_FAILURE(start_hq(hdb, 30));
  auto c = terminal_config();
  c.db = tdb;
  c.in_memory = false;
  c.sale_retention_days = 30;
  c.retention_interval_ms = 50;
  ASSERT_NO_FATAL_FAILURE(start_terminal(c));
  ASSERT_TRUE(eventually([&] { return term_->sales_purged() >= 3; })) << term_->sales_purged();
  for (const auto& k : acked) EXPECT_FALSE(term_->store().get(k)->has_value());
  // The unacked old sales go up normally (and are purged once acked); nothing else
  // reaches HQ: no tombstones, no deletions, HQ keeps all its own.
  ASSERT_TRUE(eventually([&] { return sales_at(hq_->store()).size() == 4 + 2; }));
  ASSERT_TRUE(eventually([&] { return term_->status().pending[core::lane_sales] == 0; }));
  std::this_thread::sleep_for(200ms);
  auto at_hq = sales_at(hq_->store());
  EXPECT_EQ(at_hq.size(), 6u);
  for (const auto& k : acked) EXPECT_EQ(at_hq.count(k.id), 0u);
  for (const auto& k : unacked) EXPECT_EQ(at_hq.count(k.id), 1u);
  for (const auto& [id, seq] : at_hq) EXPECT_NE(seq, UINT64_MAX) << id << ": a second version (tombstone?)";
  EXPECT_EQ(hq_->sales_purged(), 0u);
  EXPECT_TRUE(eventually([&] {
    for (const auto& k : unacked)
      if (term_->store().get(k)->has_value()) return false;
    return true;
  })) << "acknowledged old sales are purged at a later run";
  // Each sale is counted once: the 3 acked at start, the 2 acked later; none twice.
  EXPECT_TRUE(eventually([&] { return term_->sales_purged() == 5; })) << term_->sales_purged();
  std::this_thread::sleep_for(200ms);
  EXPECT_EQ(term_->sales_purged(), 5u);
}

} // namespace
} // namespace possync::node
