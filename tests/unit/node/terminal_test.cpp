// The embedding API (include/possync/terminal.hpp): a terminal opened in memory,
// syncing over gRPC on 127.0.0.1 with a branch node and an HQ node in this process.
// Every wait polls with a deadline; nothing asserts on timing.

#include <algorithm>
#include <atomic>
#include <chrono>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

#include <gtest/gtest.h>

#include "../storage/test_util.hpp"
#include "possync/node/node.hpp"
#include "possync/terminal.hpp"
#include "possync/v1/pos.pb.h"

namespace possync {
namespace {

using namespace std::chrono_literals;

constexpr core::node_id hq_id = 0x4000000000000001ULL;
constexpr core::node_id branch_id = 0xb0000000000000b1ULL;
constexpr uint64_t till_id = 0x7000000000000071ULL;

bool eventually(const std::function<bool()>& pred, std::chrono::milliseconds limit = 10s) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < deadline) {
    if (pred()) return true;
    std::this_thread::sleep_for(5ms);
  }
  return pred();
}

class TerminalTest : public ::testing::Test {
protected:
  void SetUp() override {
    rt_ = node::runtime::create(node::runtime::options{2, true});
    node::node_config h;
    h.role = storage::node_role::hq;
    h.tenant = "acme";
    h.node_id = hq_id;
    h.in_memory = true;
    h.listen = "127.0.0.1:0";
    h.tick_ms = 50;
    h.devices.push_back(node::device{"acme", "jkt-01", branch_id, storage::node_role::branch, "store", false});
    h.devices.push_back(node::device{"acme", "jkt-01", till_id, storage::node_role::terminal, "till 1", false});
    auto hq = node::node::start(h, rt_);
    ASSERT_TRUE(hq) << hq.err().to_string();
    hq_ = std::move(hq).value();

    node::node_config b = downstream_config(storage::node_role::branch, branch_id, *hq_);
    b.listen = "127.0.0.1:0";
    auto br = node::node::start(b, rt_);
    ASSERT_TRUE(br) << br.err().to_string();
    branch_ = std::move(br).value();

    put_product("p1", "Kopi Susu", "8991234567890", "SKU-1", 18000);
    put_product("p2", "Kopi Hitam", "8991234567891", "SKU-2", 15000);
    put_product("p3", "Teh Manis", "8991234567892", "SKU-3", 8000);
  }

  void TearDown() override {
    till_.reset();
    branch_.reset();
    hq_.reset();
  }

  void put_product(const std::string& id, const std::string& name, const std::string& barcode,
                   const std::string& sku, int64_t price) {
    v1::Product p;
    p.set_name(name);
    p.set_barcode(barcode);
    p.set_sku(sku);
    p.set_price(price);
    p.set_active(true);
    storage::put_op op;
    op.key = core::record_key{"acme", "", "product", id};
    op.body = p.SerializeAsString();
    auto r = hq_->store().write({op});
    ASSERT_TRUE(r) << r.err().to_string();
  }

  /// An in-memory node of jkt-01 dialing `up`, with short timers and reconnect delays.
  node::node_config downstream_config(storage::node_role role, core::node_id id, node::node& up) const {
    node::node_config c;
    c.role = role;
    c.tenant = "acme";
    c.branch = "jkt-01";
    c.node_id = id;
    c.in_memory = true;
    c.tick_ms = 50;
    c.backoff.initial_ms = 20;
    c.backoff.max_ms = 200;
    c.upstreams = {"127.0.0.1:" + std::to_string(up.port())};
    return c;
  }

  /// Adds `delta` thousandths to the branch's stock of `product`.
  void restock(const std::string& product, int64_t delta) {
    storage::counter_op op;
    op.key = core::record_key{"acme", "jkt-01", "stock", product};
    op.delta = delta;
    auto r = branch_->store().write({op});
    ASSERT_TRUE(r) << r.err().to_string();
  }

  terminal_config till_config() const {
    terminal_config c;
    c.tenant = "acme";
    c.branch = "jkt-01";
    c.node_id = till_id;
    c.upstreams = {"127.0.0.1:" + std::to_string(branch_->port())};
    c.retry_initial_ms = 20;
    c.retry_max_ms = 200;
    c.in_memory = true;
    return c;
  }

  void open_till() {
    auto t = terminal::open("", till_config());
    ASSERT_TRUE(t) << t.error_message;
    till_ = std::move(*t.value);
    ASSERT_TRUE(eventually([&] { return till_->product("p3").ok(); })) << till_->status().last_error;
  }

  std::shared_ptr<node::runtime> rt_;
  std::unique_ptr<node::node> hq_, branch_;
  std::unique_ptr<terminal> till_;
};

TEST_F(TerminalTest, OpenValidatesConfig) {
  terminal_config c;
  c.in_memory = true;
  c.branch = "jkt-01";
  auto t = terminal::open("", c);
  EXPECT_EQ(t.code, 3);
  EXPECT_FALSE(t.value);
  c.tenant = "acme";
  c.branch.clear();
  EXPECT_EQ(terminal::open("", c).code, 3);
  c.branch = "jkt-01";
  c.in_memory = false;
  EXPECT_EQ(terminal::open("", c).code, 3);
}

TEST_F(TerminalTest, CatalogueArrivesAndLooksUpWork) {
  ASSERT_NO_FATAL_FAILURE(open_till());
  EXPECT_EQ(till_->node_id(), till_id);
  ASSERT_TRUE(eventually([&] { return till_->product("p1").ok() && till_->product("p2").ok(); }));
  auto p = till_->product("p1");
  ASSERT_TRUE(p) << p.error_message;
  EXPECT_EQ(p.value->name, "Kopi Susu");
  EXPECT_EQ(p.value->sku, "SKU-1");
  EXPECT_EQ(p.value->price, 18000);
  EXPECT_EQ(till_->product("nope").code, 5);
  auto b = till_->product_by_barcode("8991234567891");
  ASSERT_TRUE(b) << b.error_message;
  EXPECT_EQ(b.value->id, "p2");
  EXPECT_EQ(till_->product_by_barcode("000").code, 5);
  auto s = till_->search("kopi");
  ASSERT_TRUE(s) << s.error_message;
  ASSERT_EQ(s.value->size(), 2u);
  EXPECT_EQ((*s.value)[0].id, "p2"); // by name: "Kopi Hitam" < "Kopi Susu"
  EXPECT_EQ((*s.value)[1].id, "p1");
}

TEST_F(TerminalTest, SaleIsDurableDecrementsStockAndReachesHq) {
  ASSERT_NO_FATAL_FAILURE(open_till());
  sale_input in;
  in.lines = {{"p1", 2000, 18000, 1000}, {"p3", 1000, 8000, 0}};
  in.payments = {{"cash", 43000, 7000, ""}};
  in.cashier_id = "c1";
  auto r = till_->record_sale(in);
  ASSERT_TRUE(r) << r.error_message;
  EXPECT_EQ(r.value->total, 2 * 18000 - 1000 + 8000);
  EXPECT_FALSE(r.value->sale_id.empty());
  auto stock = till_->stock("p1");
  ASSERT_TRUE(stock);
  EXPECT_EQ(*stock.value, -2000);
  EXPECT_EQ(till_->product("p1").value->stock_milli, -2000);

  core::record_key key{"acme", "jkt-01", "sale", r.value->sale_id};
  ASSERT_TRUE(eventually([&] {
    auto v = hq_->store().read(key);
    return v && v->exists;
  })) << till_->status().last_error;
  auto v = hq_->store().read(key);
  v1::Sale sale;
  ASSERT_TRUE(sale.ParseFromString(v->body));
  ASSERT_EQ(sale.items_size(), 2);
  EXPECT_EQ(sale.items(0).name(), "Kopi Susu");
  EXPECT_EQ(sale.items(0).sku(), "SKU-1");
  EXPECT_EQ(sale.items(0).line_total(), 35000);
  EXPECT_EQ(sale.total(), 43000);
  EXPECT_EQ(sale.cashier_id(), "c1");
  ASSERT_EQ(sale.payments_size(), 1);
  EXPECT_EQ(sale.payments(0).tendered(), 50000);
  EXPECT_TRUE(eventually([&] { return till_->status().pending_total == 0; }));
  ASSERT_TRUE(eventually([&] {
    auto s = hq_->store().stock_level("acme", "jkt-01", "p1");
    return s && *s == -2000;
  }));
}

// live_stock = false: the register downloads the catalogue but never its branch's stock
// (Hello.collections without "stock"), refuses to show stock, and its sales still
// decrement stock at the branch and HQ.
TEST_F(TerminalTest, WithoutLiveStockTheRegisterSellsButDownloadsNoStock) {
  ASSERT_NO_FATAL_FAILURE(restock("p1", 10000));
  auto c = till_config();
  c.live_stock = false;
  auto t = terminal::open("", c);
  ASSERT_TRUE(t) << t.error_message;
  till_ = std::move(*t.value);
  ASSERT_TRUE(eventually([&] { return till_->product("p3").ok() && till_->status().caught_up; }))
      << till_->status().last_error;

  auto p = till_->product("p1");
  ASSERT_TRUE(p) << p.error_message;
  EXPECT_FALSE(p.value->stock_known);
  EXPECT_EQ(p.value->stock_milli, 0);
  auto refused = till_->stock("p1");
  EXPECT_EQ(refused.code, 9);
  EXPECT_NE(refused.error_message.find("live_stock"), std::string::npos) << refused.error_message;

  sale_input in;
  in.lines = {{"p1", 2000, 18000, 0}};
  in.payments = {{"cash", 36000, 0, ""}};
  ASSERT_TRUE(till_->record_sale(in));
  ASSERT_TRUE(eventually([&] {
    auto s = hq_->store().stock_level("acme", "jkt-01", "p1");
    return s && *s == 8000;
  }));
  auto at_branch = branch_->store().stock_level("acme", "jkt-01", "p1");
  ASSERT_TRUE(at_branch);
  EXPECT_EQ(*at_branch, 8000);
}

// The node underneath: skip_collections {"stock"} keeps the branch's stock out of the
// register's store while everything else still arrives; unknown names are refused.
TEST_F(TerminalTest, SkippedCollectionsAreNeverDownloaded) {
  ASSERT_NO_FATAL_FAILURE(restock("p1", 10000));
  node::node_config c = downstream_config(storage::node_role::terminal, till_id, *branch_);
  c.skip_collections = {"stok"};
  auto bad = node::node::start(c, rt_);
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.err().code, errc::invalid_argument);
  EXPECT_NE(bad.err().message.find("'stok'"), std::string::npos) << bad.err().message;

  c.skip_collections = {"stock"};
  c.role = storage::node_role::branch;
  auto branch_skipping = node::node::start(c, rt_);
  ASSERT_FALSE(branch_skipping);
  EXPECT_EQ(branch_skipping.err().code, errc::invalid_argument);
  EXPECT_NE(branch_skipping.err().message.find("for terminals"), std::string::npos)
      << branch_skipping.err().message;
  c.role = storage::node_role::terminal;
  auto n = node::node::start(c, rt_);
  ASSERT_TRUE(n) << n.err().to_string();
  auto& till = **n;
  ASSERT_TRUE(eventually([&] {
    auto v = till.store().read(core::record_key{"acme", "", "product", "p3"});
    return v && v->exists;
  }));
  // Written at the branch after the register caught up: still never downloaded, while
  // the product change written after it arrives.
  ASSERT_NO_FATAL_FAILURE(restock("p1", 10000));
  put_product("p2", "Kopi Hitam", "8991234567891", "SKU-2", 16000);
  ASSERT_TRUE(eventually([&] {
    auto v = till.store().read(core::record_key{"acme", "", "product", "p2"});
    v1::Product p;
    return v && v->exists && p.ParseFromString(v->body) && p.price() == 16000;
  }));
  auto own = till.store().read(core::record_key{"acme", "jkt-01", "stock", "p1"});
  ASSERT_TRUE(own);
  EXPECT_FALSE(own->exists);
  auto level = branch_->store().stock_level("acme", "jkt-01", "p1");
  ASSERT_TRUE(level);
  EXPECT_EQ(*level, 20000);
}

// Turning live stock back on: the register's cursors moved past every stock change while
// it skipped them, so it downloads its upstream's feeds again from the start and ends
// with the branch's levels, also of products nobody sold since.
TEST_F(TerminalTest, LiveStockTurnedBackOnDownloadsWhatWasSkipped) {
  storage::test::temp_dir dir;
  ASSERT_NO_FATAL_FAILURE(restock("p2", 7000));
  auto c = till_config();
  c.in_memory = false;
  c.live_stock = false;
  {
    auto t = terminal::open(dir.str(), c);
    ASSERT_TRUE(t) << t.error_message;
    auto& till = *t.value;
    ASSERT_TRUE(eventually([&] { return till->product("p3").ok() && till->status().caught_up; }))
        << till->status().last_error;
    // A stock change, then a stock movement (which the register does take) in the same
    // feed: its cursor moves past the stock change.
    ASSERT_NO_FATAL_FAILURE(restock("p2", 1000));
    v1::StockMovement m;
    m.set_product_id("p2");
    m.set_delta(1000);
    m.set_kind("receive");
    storage::put_op movement;
    const std::string movement_id = "01HK1568NS3153VKRZ0NTC9JVG";
    movement.key = core::record_key{"acme", "jkt-01", "stock_movement", movement_id};
    movement.body = m.SerializeAsString();
    auto arrived = std::make_shared<std::atomic<bool>>(false);
    till->subscribe([arrived, movement_id](const std::vector<terminal_change>& changes) {
      for (const auto& ch : changes)
        if (ch.collection == "stock_movement" && ch.id == movement_id) *arrived = true;
    });
    auto wrote = branch_->store().write({movement});
    ASSERT_TRUE(wrote) << wrote.err().to_string();
    ASSERT_TRUE(eventually([&] { return arrived->load(); }));
    EXPECT_EQ(till->stock("p2").code, 9);
  }
  c.live_stock = true;
  auto t = terminal::open(dir.str(), c);
  ASSERT_TRUE(t) << t.error_message;
  till_ = std::move(*t.value);
  auto at_branch = branch_->store().stock_level("acme", "jkt-01", "p2");
  ASSERT_TRUE(at_branch);
  EXPECT_EQ(*at_branch, 9000); // 7000 + 1000, and the received movement's 1000
  ASSERT_TRUE(eventually([&] {
    auto s = till_->stock("p2");
    return s && *s.value == *at_branch;
  })) << till_->status().last_error
      << ", stock " << till_->stock("p2").value.value_or(-1);
  EXPECT_TRUE(till_->product("p2").value->stock_known);
}

TEST_F(TerminalTest, InvalidSalesAreRefused) {
  ASSERT_NO_FATAL_FAILURE(open_till());
  EXPECT_EQ(till_->record_sale({}).code, 3);
  sale_input bad;
  bad.lines = {{"p1", 0, 100, 0}};
  EXPECT_EQ(till_->record_sale(bad).code, 3);
  bad.lines = {{"", 1000, 100, 0}};
  EXPECT_EQ(till_->record_sale(bad).code, 3);
  EXPECT_EQ(till_->status().pending_total, 0u);
}

TEST_F(TerminalTest, BranchPriceOverrideWins) {
  ASSERT_NO_FATAL_FAILURE(open_till());
  v1::Price price;
  price.set_product_id("p1");
  price.set_price(17000);
  storage::put_op op;
  op.key = core::record_key{"acme", "jkt-01", "price", "p1"};
  op.body = price.SerializeAsString();
  ASSERT_TRUE(hq_->store().write({op}));
  EXPECT_TRUE(eventually([&] {
    auto p = till_->product("p1");
    return p && p.value->price == 17000;
  }));
}

TEST_F(TerminalTest, SubscribeAndStatus) {
  ASSERT_NO_FATAL_FAILURE(open_till());
  std::mutex mu;
  std::vector<terminal_change> seen;
  auto id = till_->subscribe([&](const std::vector<terminal_change>& ch) {
    std::lock_guard<std::mutex> lk(mu);
    seen.insert(seen.end(), ch.begin(), ch.end());
  });
  put_product("p9", "Roti", "8991234567899", "SKU-9", 12000);
  EXPECT_TRUE(eventually([&] {
    std::lock_guard<std::mutex> lk(mu);
    return std::any_of(seen.begin(), seen.end(),
                       [](const terminal_change& c) { return c.collection == "product" && c.id == "p9"; });
  }));
  till_->unsubscribe(id);
  ASSERT_TRUE(eventually([&] {
    auto s = till_->status();
    return s.online && s.caught_up && s.last_sync_ms > 0;
  }));
  auto s = till_->status();
  EXPECT_EQ(s.upstream, "127.0.0.1:" + std::to_string(branch_->port()));
  EXPECT_FALSE(s.stale);
  EXPECT_GE(s.since_last_sync_ms, 0);
  EXPECT_TRUE(s.last_error.empty()) << s.last_error;
  till_->sync_now();
  auto r = till_->full_resync();
  EXPECT_TRUE(r.ok()) << r.message;
  EXPECT_TRUE(eventually([&] { return till_->status().online; }));
}

TEST_F(TerminalTest, OfflineTerminalKeepsSelling) {
  auto c = till_config();
  c.upstreams = {"127.0.0.1:1"}; // nothing listens there
  auto t = terminal::open("", c);
  ASSERT_TRUE(t) << t.error_message;
  auto& till = *t.value;
  sale_input in;
  in.lines = {{"p1", 1000, 18000, 0}};
  for (int i = 0; i < 10; ++i)
    ASSERT_TRUE(till->record_sale(in));
  auto s = till->status();
  EXPECT_FALSE(s.online);
  EXPECT_EQ(s.pending[0], 10u);
  EXPECT_EQ(s.pending_total, 10u + s.pending[1] + s.pending[2] + s.pending[3]);
  EXPECT_EQ(s.last_sync_ms, 0);
  EXPECT_EQ(s.since_last_sync_ms, -1);
  EXPECT_TRUE(eventually([&] { return !till->status().last_error.empty(); }));
}

} // namespace
} // namespace possync
