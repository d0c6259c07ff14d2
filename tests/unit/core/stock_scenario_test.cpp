// Stock levels as PN-counters (DESIGN.md §3, policy `counter`): offline sales on two
// terminals never lose a decrement, whatever path the states take.

#include <gtest/gtest.h>

#include "possync/core/policy.hpp"
#include "possync/core/schema.hpp"

namespace possync::core {
namespace {

constexpr node_id hq_node = 0xa0, till1 = 0xb1, till2 = 0xb2;

struct node {
  node_id id;
  bool hq;
  record stock;
  uint64_t wall = 1'700'000'000'000;

  explicit node(node_id n, bool is_hq = false) : id(n), hq(is_hq) {
    stock.key = {"acme", "b1", "stock", "sku-tea"};
  }
  /// A local stock change (sale: negative), as the node's store would commit it.
  void add(int64_t delta) {
    write_spec spec;
    spec.writer = id;
    spec.hq = hq;
    spec.hlc = {++wall, 0, id};
    spec.body = *counter_add_body(stock, id, delta);
    (void)apply_local_write(stock, spec);
  }
  void receive(const node& from) { (void)merge_into(stock, from.stock); }
  int64_t level() const {
    auto v = resolve(stock, policy::counter);
    auto c = decode_counter(v.body);
    EXPECT_TRUE(c);
    return c ? c->value() : 0;
  }
};

constexpr int64_t initial = 10'000;  // 10 pieces, in thousandths

struct two_tills : ::testing::Test {
  node hq{hq_node, true}, t1{till1}, t2{till2};
  void SetUp() override {
    hq.add(initial);
    t1.receive(hq);
    t2.receive(hq);
    // Offline: each till sells from the shared initial level.
    t1.add(-2'000);
    t2.add(-3'000);
  }
};

TEST_F(two_tills, each_till_sees_its_own_sale_offline) {
  EXPECT_EQ(t1.level(), 8'000);
  EXPECT_EQ(t2.level(), 7'000);
  EXPECT_EQ(hq.level(), initial);
}

TEST_F(two_tills, direct_exchange_in_both_orders) {
  node a = t1, b = t2;
  a.receive(t2);
  b.receive(t1);
  EXPECT_EQ(a.level(), 5'000);
  EXPECT_EQ(b.level(), 5'000);
  EXPECT_EQ(a.stock.versions, b.stock.versions);
  EXPECT_FALSE(resolve(a.stock, policy::counter).conflicted);
  EXPECT_FALSE(detect_conflict(a.stock, policy::counter));
}

TEST_F(two_tills, via_hq_in_both_orders) {
  node h1 = hq, h2 = hq;
  h1.receive(t1);
  h1.receive(t2);
  h2.receive(t2);
  h2.receive(t1);
  EXPECT_EQ(h1.level(), 5'000);
  EXPECT_EQ(h2.level(), 5'000);
  EXPECT_EQ(h1.stock.versions, h2.stock.versions);
  // HQ forwards what it holds back to the tills.
  t1.receive(h1);
  t2.receive(h2);
  EXPECT_EQ(t1.level(), 5'000);
  EXPECT_EQ(t2.level(), 5'000);
  // Duplicates and re-deliveries change nothing.
  t1.receive(t2);
  t1.receive(h2);
  t1.receive(hq);
  EXPECT_EQ(t1.level(), 5'000);
}

TEST_F(two_tills, more_sales_after_sync_keep_counting) {
  t1.receive(t2);
  t1.add(-1'000);
  t2.add(-500);
  hq.receive(t2);
  hq.receive(t1);
  EXPECT_EQ(hq.level(), initial - 2'000 - 3'000 - 1'000 - 500);
  EXPECT_EQ(hq.stock.versions.size(), 2u);  // t2's second sale is concurrent with t1's
}

TEST_F(two_tills, stocktake_is_an_adjustment_delta) {
  t1.receive(t2);
  ASSERT_EQ(t1.level(), 5'000);
  // Counted 4.5 pieces on the shelf: write the difference, not the level.
  const int64_t counted = 4'500;
  t1.add(counted - t1.level());
  // Meanwhile till 2 sells one more piece it had not synced yet.
  t2.add(-1'000);
  node h = hq;
  h.receive(t1);
  h.receive(t2);
  // The stocktake corrected what t1 knew; the concurrent sale still counts.
  EXPECT_EQ(h.level(), counted - 1'000);
  t2.receive(h);
  EXPECT_EQ(t2.level(), counted - 1'000);
}

TEST(stock, negative_stock_is_allowed) {
  node hq(hq_node, true), t1(till1), t2(till2);
  hq.add(10'000);
  t1.receive(hq);
  t2.receive(hq);
  t1.add(-8'000);
  t2.add(-7'000);
  t1.receive(t2);
  t2.receive(t1);
  EXPECT_EQ(t1.level(), -5'000);  // oversold, reported not refused
  EXPECT_EQ(t2.level(), -5'000);
  auto v = resolve(t1.stock, policy::counter);
  EXPECT_TRUE(v.exists);
  auto reg = collection_registry::pos();
  EXPECT_FALSE(validate_record(t1.stock, reg));
}

TEST(stock, receiving_stock_before_any_count) {
  node t1(till1);
  t1.add(-1'000);  // sold before the first delivery was recorded
  EXPECT_EQ(t1.level(), -1'000);
  t1.add(24'000);  // delivery received
  EXPECT_EQ(t1.level(), 23'000);
  auto c = counter_of(t1.stock);
  EXPECT_EQ(c.entries.at(till1), (std::pair<int64_t, int64_t>{24'000, 1'000}));
}

} // namespace
} // namespace possync::core
