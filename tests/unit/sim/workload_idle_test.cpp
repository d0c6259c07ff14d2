// W10 at a small size: 20 idle terminal sessions on one branch come online, and each
// costs some memory. No figure is asserted against the target (bench/ records it).

#include <algorithm>

#include <gtest/gtest.h>

#include "../../../sim/src/workload_idle.hpp"

namespace possync::sim {
namespace {

pos_options small(sync_transport t) {
  pos_options o;
  o.workload = "idle";
  o.transport = t;
  o.terminals = 20;
  o.products = 20;
  o.in_memory = true;
  o.sample_ms = 200;
  o.timeout_ms = 60'000;
  return o;
}

void expect_sessions_measured(const pos_report& r, bool accepting) {
  EXPECT_TRUE(r.converged) << r.failure;
  EXPECT_EQ(r.expected, 20u);
  EXPECT_EQ(r.seen, 20u);
  EXPECT_EQ(r.details.at("sessions"), 20);
  EXPECT_GT(r.details.at("bytes_per_session_both_ends"), 0);
  EXPECT_GT(r.details.at("bytes_per_session"), 0);
  EXPECT_EQ(r.details.count("bytes_per_session_accepting"), accepting ? 1u : 0u);
  if (accepting) EXPECT_GT(r.details.at("bytes_per_session_accepting"), 0);
  EXPECT_GT(r.peak_rss_mb, 0);
  // The record the HTML report shows.
  EXPECT_FALSE(r.record.title.empty());
  EXPECT_FALSE(r.record.results.empty());
  ASSERT_EQ(r.record.latencies.size(), 1u);
  EXPECT_EQ(r.record.latencies[0].ms.size(), 20u);
  ASSERT_FALSE(r.record.series.empty());
  uint32_t most_online = 0;
  for (const auto& p : r.record.series)
    most_online = std::max(most_online, p.online_terminals);
  EXPECT_EQ(most_online, 20u);
}

TEST(workload_idle, inproc_sessions_cost_memory) {
  auto r = run_idle(small(sync_transport::inproc));
  ASSERT_TRUE(r) << r.err().to_string();
  expect_sessions_measured(*r, false);
}

// Over gRPC the branch runs in a forked child, which needs a process without other
// threads yet: true when ctest runs this test alone, not after other tests.
TEST(workload_idle, grpc_accepting_side_in_a_child_process) {
  auto r = run_idle(small(sync_transport::grpc));
  if (!r && r.err().code == errc::failed_precondition) GTEST_SKIP() << r.err().message;
  ASSERT_TRUE(r) << r.err().to_string();
  expect_sessions_measured(*r, true);
}

TEST(workload_idle, refuses_an_external_hq) {
  auto o = small(sync_transport::inproc);
  o.hq = "127.0.0.1:1";
  auto r = run_idle(o);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.err().code, errc::invalid_argument);
}

} // namespace
} // namespace possync::sim
