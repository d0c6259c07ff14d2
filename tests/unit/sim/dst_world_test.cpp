// The simulated world of one seed (sim/src/dst_world.cpp): it runs, it is
// deterministic, and different seeds differ. The invariants are dst_test's business.

#include <chrono>
#include <cstdio>
#include <cstdlib>

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

namespace possync::sim::dst {
namespace {

// Figures per seed at the default options (run with --gtest_also_run_disabled_tests;
// POSSYNC_DST_FIRST / POSSYNC_DST_COUNT pick the seeds). Prints, asserts nothing.
TEST(DstWorld, DISABLED_Measure) {
  uint64_t first = std::getenv("POSSYNC_DST_FIRST") ? std::strtoull(std::getenv("POSSYNC_DST_FIRST"), nullptr, 10) : 1;
  uint64_t count = std::getenv("POSSYNC_DST_COUNT") ? std::strtoull(std::getenv("POSSYNC_DST_COUNT"), nullptr, 10) : 5;
  for (uint64_t s = first; s < first + count; ++s) {
    options o;
    o.seed = s;
    auto t0 = std::chrono::steady_clock::now();
    auto w = world::create(o);
    ASSERT_TRUE(w);
    auto t1 = std::chrono::steady_clock::now();
    (*w)->run();
    auto t2 = std::chrono::steady_clock::now();
    const auto& h = (*w)->hist();
    auto violations = check_invariants(**w);
    std::printf("seed %llu: setup %.0f ms run %.0f ms events %llu faults %llu sales %zu pushes %zu quiet %lld (after %lld) "
                "concurrent %zu lost %zu violations %zu\n",
                static_cast<unsigned long long>(s), std::chrono::duration<double, std::milli>(t1 - t0).count(),
                std::chrono::duration<double, std::milli>(t2 - t1).count(), static_cast<unsigned long long>(h.events),
                static_cast<unsigned long long>(h.faults_injected), h.sales.size(), h.pushes.size(),
                static_cast<long long>(h.quiet_ms), static_cast<long long>(h.quiet_ms - h.last_fault_ms),
                h.concurrent_edits.size(), h.lost.size(), violations.size());
    for (size_t i = 0; i < violations.size() && i < 8; ++i)
      std::printf("  %s\n", violations[i].c_str());
  }
}

} // namespace
} // namespace possync::sim::dst
