#include "possync/core/hlc.hpp"

#include <limits>

#include <gtest/gtest.h>

namespace possync::core {
namespace {

constexpr node_id self = 0xA;
constexpr node_id peer = 0xB;

struct fake_time {
  uint64_t now = 1000;
  physical_clock clock() {
    return [this] { return now; };
  }
};

TEST(hlc_test, ordering_and_to_string) {
  hlc_timestamp a{10, 0, 2}, b{10, 1, 1}, c{11, 0, 0}, d{10, 0, 3};
  EXPECT_LT(a, b);
  EXPECT_LT(b, c);
  EXPECT_LT(a, d);
  EXPECT_GT(c, a);
  EXPECT_LE(a, a);
  EXPECT_NE(a, d);
  EXPECT_EQ((hlc_timestamp{1700000000123, 4, 0xab}.to_string()), "1700000000123.4@00000000000000ab");
}

TEST(hlc_test, follows_physical_time) {
  fake_time t;
  hlc_clock c(self, t.clock());
  auto a = c.now();
  EXPECT_EQ(a.wall_ms, 1000u);
  EXPECT_EQ(a.logical, 0u);
  EXPECT_EQ(a.node, self);
  t.now = 1005;
  auto b = c.now();
  EXPECT_EQ(b.wall_ms, 1005u);
  EXPECT_EQ(b.logical, 0u);
  EXPECT_EQ(c.last(), b);
  EXPECT_EQ(c.self(), self);
}

TEST(hlc_test, same_ms_increments_logical) {
  fake_time t;
  hlc_clock c(self, t.clock());
  auto a = c.now();
  auto b = c.now();
  auto d = c.now();
  EXPECT_EQ(b.wall_ms, 1000u);
  EXPECT_EQ(b.logical, 1u);
  EXPECT_EQ(d.logical, 2u);
  EXPECT_LT(a, b);
  EXPECT_LT(b, d);
}

TEST(hlc_test, backward_jump_keeps_wall_and_stays_monotonic) {
  fake_time t;
  t.now = 5000;
  hlc_clock c(self, t.clock());
  auto a = c.now();
  t.now = 1000; // clock stepped back by NTP
  auto b = c.now();
  EXPECT_EQ(b.wall_ms, 5000u);
  EXPECT_EQ(b.logical, 1u);
  EXPECT_LT(a, b);
  t.now = 6000;
  auto d = c.now();
  EXPECT_EQ(d.wall_ms, 6000u);
  EXPECT_EQ(d.logical, 0u);
}

TEST(hlc_test, logical_overflow_bumps_wall) {
  fake_time t;
  hlc_clock c(self, t.clock());
  c.restore(hlc_timestamp{1000, std::numeric_limits<uint32_t>::max() - 1, self});
  auto a = c.now();
  EXPECT_EQ(a.wall_ms, 1000u);
  EXPECT_EQ(a.logical, std::numeric_limits<uint32_t>::max());
  auto b = c.now();
  EXPECT_EQ(b.wall_ms, 1001u);
  EXPECT_EQ(b.logical, 0u);
  EXPECT_LT(a, b);
}

TEST(hlc_test, update_adopts_remote_ahead) {
  fake_time t;
  hlc_clock c(self, t.clock());
  c.now();
  hlc_timestamp remote{2000, 7, peer};
  auto r = c.update(remote);
  EXPECT_EQ(r.wall_ms, 2000u);
  EXPECT_EQ(r.logical, 8u);
  EXPECT_EQ(r.node, self);
  EXPECT_GT(r, remote);
  EXPECT_EQ(c.last_skew_ms(), 1000);
  EXPECT_EQ(c.skew_events(), 0u);
  auto n = c.now(); // physical still 1000
  EXPECT_GT(n, r);
}

TEST(hlc_test, update_with_remote_behind_uses_physical_or_local) {
  fake_time t;
  t.now = 3000;
  hlc_clock c(self, t.clock());
  auto r = c.update(hlc_timestamp{100, 50, peer});
  EXPECT_EQ(r.wall_ms, 3000u);
  EXPECT_EQ(r.logical, 0u);
  EXPECT_EQ(c.last_skew_ms(), -2900);
  auto r2 = c.update(hlc_timestamp{100, 50, peer}); // same physical ms: logical advances
  EXPECT_EQ(r2.wall_ms, 3000u);
  EXPECT_EQ(r2.logical, 1u);
}

TEST(hlc_test, update_same_wall_takes_max_logical) {
  fake_time t;
  hlc_clock c(self, t.clock());
  c.now();
  c.now(); // 1000.1
  auto r = c.update(hlc_timestamp{1000, 5, peer});
  EXPECT_EQ(r.wall_ms, 1000u);
  EXPECT_EQ(r.logical, 6u);
  auto r2 = c.update(hlc_timestamp{1000, 2, peer});
  EXPECT_EQ(r2.logical, 7u);
}

TEST(hlc_test, update_remote_at_logical_max_moves_wall) {
  fake_time t;
  hlc_clock c(self, t.clock());
  hlc_timestamp remote{1500, std::numeric_limits<uint32_t>::max(), peer};
  auto r = c.update(remote);
  EXPECT_GT(r, remote);
  EXPECT_EQ(r.wall_ms, 1501u);
}

TEST(hlc_test, far_future_remote_is_adopted_and_counted) {
  fake_time t;
  hlc_clock c(self, t.clock(), 60'000);
  hlc_timestamp remote{1000 + 3'600'000, 0, peer}; // one hour ahead
  auto r = c.update(remote);
  EXPECT_GT(r, remote);
  EXPECT_EQ(c.skew_events(), 1u);
  EXPECT_EQ(c.last_skew_ms(), 3'600'000);
  c.update(hlc_timestamp{1000 + 60'000, 0, peer}); // exactly at the limit: not counted
  EXPECT_EQ(c.skew_events(), 1u);
  c.update(hlc_timestamp{1000 + 60'001, 0, peer});
  EXPECT_EQ(c.skew_events(), 2u);
  EXPECT_GT(c.now(), r);
}

// A peer's clock years ahead (broken, or hostile) is counted but not adopted: this
// node's clock stays on physical time instead of jumping ahead for good.
TEST(hlc_test, remote_beyond_max_adopt_is_not_adopted) {
  fake_time t;
  hlc_clock c(self, t.clock(), 60'000, 3'600'000);
  auto r = c.update(hlc_timestamp{1000 + 3'600'001, 0, peer});
  EXPECT_EQ(r.wall_ms, 1000u);
  EXPECT_EQ(c.refused_events(), 1u);
  EXPECT_EQ(c.skew_events(), 1u);
  EXPECT_EQ(c.last_skew_ms(), 3'600'001);
  c.update(hlc_timestamp{UINT64_MAX, UINT32_MAX, peer});
  EXPECT_EQ(c.refused_events(), 2u);
  EXPECT_EQ(c.last_skew_ms(), INT64_MAX);
  EXPECT_EQ(c.now().wall_ms, 1000u);
  // At the bound it is adopted as before.
  auto a = c.update(hlc_timestamp{1000 + 3'600'000, 0, peer});
  EXPECT_EQ(a.wall_ms, 1000u + 3'600'000);
  EXPECT_EQ(c.refused_events(), 2u);
  EXPECT_EQ(hlc_clock::default_max_adopt_ms, 7ull * 24 * 3600 * 1000);
  EXPECT_EQ(ms_ahead(1500, 1000), 500);
  EXPECT_EQ(ms_ahead(1000, 1500), -500);
  EXPECT_EQ(ms_ahead(0, UINT64_MAX), -INT64_MAX);
}

TEST(hlc_test, default_max_forward_is_five_minutes) {
  fake_time t;
  hlc_clock c(self, t.clock());
  c.update(hlc_timestamp{1000 + 300'000, 0, peer});
  EXPECT_EQ(c.skew_events(), 0u);
  c.update(hlc_timestamp{1000 + 300'001, 0, peer});
  EXPECT_EQ(c.skew_events(), 1u);
}

TEST(hlc_test, restore_never_goes_back) {
  fake_time t;
  hlc_clock c(self, t.clock());
  c.restore(hlc_timestamp{9000, 3, self});
  auto a = c.now();
  EXPECT_GT(a, (hlc_timestamp{9000, 3, self}));
  EXPECT_EQ(a.wall_ms, 9000u);
  EXPECT_EQ(a.logical, 4u);
  c.restore(hlc_timestamp{10, 0, self}); // older: ignored
  EXPECT_EQ(c.last(), a);
}

TEST(hlc_test, monotonic_under_random_clock_and_messages) {
  seeded_random rng(123);
  fake_time t;
  hlc_clock c(self, t.clock());
  hlc_timestamp prev = c.now();
  for (int i = 0; i < 5000; ++i) {
    t.now = 1000 + rng.next_u64() % 500; // jitters back and forth
    hlc_timestamp next;
    if (rng.next_u64() % 3 == 0) {
      hlc_timestamp remote{1000 + rng.next_u64() % 800, static_cast<uint32_t>(rng.next_u64() % 10), peer};
      next = c.update(remote);
      ASSERT_GT(next, remote);
    } else {
      next = c.now();
    }
    ASSERT_GT(next, prev) << "step " << i;
    prev = next;
  }
}

} // namespace
} // namespace possync::core
