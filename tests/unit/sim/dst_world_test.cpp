// The simulated world of one seed (sim/src/dst_world.cpp): it runs, it is
// deterministic, and different seeds differ. The invariants are dst_test's business.

#include <gtest/gtest.h>

#include "../../../sim/src/dst_world.hpp"

namespace possync::sim::dst {
namespace {

options small(uint64_t seed, uint32_t faults) {
  options o;
  o.seed = seed;
  o.faults = faults;
  o.chaos_ms = 2 * 3600'000;
  return o;
}

struct run_out {
  uint64_t hash = 0;
  uint64_t events = 0;
  size_t sales = 0;
  int64_t quiet_ms = -1;
  uint64_t faults = 0;
};

run_out run(const options& o) {
  auto w = world::create(o);
  EXPECT_TRUE(w) << (w ? "" : w.err().to_string());
  if (!w) return {};
  (*w)->run();
  run_out r;
  r.hash = (*w)->trace_hash();
  r.events = (*w)->hist().events;
  r.sales = (*w)->hist().sales.size();
  r.quiet_ms = (*w)->hist().quiet_ms;
  r.faults = (*w)->hist().faults_injected;
  return r;
}

TEST(DstWorld, RunsTrafficWithoutFaultsAndGoesQuiet) {
  auto r = run(small(1, 0));
  EXPECT_GT(r.events, 100u);
  EXPECT_GT(r.sales, 10u);
  EXPECT_EQ(r.faults, 0u);
  EXPECT_GE(r.quiet_ms, 2 * 3600'000);
}

TEST(DstWorld, SameSeedSameTraceDifferentSeedDifferentTrace) {
  auto a = run(small(7, fault_all));
  auto b = run(small(7, fault_all));
  auto c = run(small(8, fault_all));
  EXPECT_EQ(a.hash, b.hash);
  EXPECT_EQ(a.events, b.events);
  EXPECT_NE(a.hash, c.hash);
  EXPECT_GT(a.faults, 0u);
}

TEST(DstWorld, KeepsTheTraceTextOnlyWhenAsked) {
  auto o = small(3, fault_all);
  o.chaos_ms = 600'000;
  auto w = world::create(o);
  ASSERT_TRUE(w);
  (*w)->run();
  EXPECT_TRUE((*w)->trace().empty());
  o.trace = true;
  auto w2 = world::create(o);
  ASSERT_TRUE(w2);
  (*w2)->run();
  EXPECT_FALSE((*w2)->trace().empty());
  EXPECT_EQ((*w)->trace_hash(), (*w2)->trace_hash());
}

} // namespace
} // namespace possync::sim::dst
