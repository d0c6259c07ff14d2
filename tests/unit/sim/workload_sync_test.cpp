// W1-W5 at small sizes: every run completes with nothing lost, nothing duplicated and
// every node converged, over both transports. No timings are asserted (bench/ does).

#include <string>

#include <gtest/gtest.h>

#include "possync/sim/workload_sync.hpp"

namespace possync::sim {
namespace {

sync_options small(const std::string& workload, sync_transport t) {
  sync_options o;
  o.workload = workload;
  o.transport = t;
  o.products = 100;
  o.sales = 40;
  o.terminals = 3;
  o.changes = 10;
  o.seed = 7;
  o.timeout_ms = 30'000;
  return o;
}

void expect_clean(const sync_options& o) {
  auto rep = run_sync(o);
  ASSERT_TRUE(rep) << rep.err().to_string();
  EXPECT_TRUE(rep->converged) << o.workload << ": " << rep->failure;
  EXPECT_EQ(rep->lost, 0u) << o.workload;
  EXPECT_EQ(rep->duplicated, 0u) << o.workload;
  EXPECT_EQ(rep->seen, rep->expected) << o.workload;
  EXPECT_GT(rep->expected, 0u) << o.workload;

  const std::string j = to_json(*rep);
  EXPECT_NE(j.find("\"workload\":\"" + o.workload + "\""), std::string::npos) << j;
  for (const char* field : {"seconds", "p50_ms", "p99_ms", "lost", "duplicated", "converged", "peak_rss_mb"})
    EXPECT_NE(j.find(std::string("\"") + field + "\":"), std::string::npos) << o.workload << " lacks " << field;
  const bool rate = j.find("\"records_per_s\":") != std::string::npos || j.find("\"sales_per_s\":") != std::string::npos;
  EXPECT_TRUE(rate || o.workload == "push") << j;
}

class sync_workloads : public ::testing::TestWithParam<sync_transport> {};

TEST_P(sync_workloads, full_sync) { expect_clean(small("full-sync", GetParam())); }
TEST_P(sync_workloads, incremental) { expect_clean(small("incremental", GetParam())); }
TEST_P(sync_workloads, offline_backlog) { expect_clean(small("offline-backlog", GetParam())); }
TEST_P(sync_workloads, push_through_branch) { expect_clean(small("push", GetParam())); }
TEST_P(sync_workloads, many_terminals) {
  auto o = small("many-terminals", GetParam());
  o.terminals = 6;
  o.sales = 15;
  expect_clean(o);
}
TEST_P(sync_workloads, many_terminals_via_branch) {
  auto o = small("many-terminals", GetParam());
  o.terminals = 4;
  o.sales = 10;
  o.branches = 2;
  o.via_branch = true;
  expect_clean(o);
}

INSTANTIATE_TEST_SUITE_P(transports, sync_workloads,
                         ::testing::Values(sync_transport::inproc, sync_transport::grpc),
                         [](const auto& info) {
                           return info.param == sync_transport::grpc ? std::string("grpc") : std::string("inproc");
                         });

TEST(sync_workload_names, unknown_is_an_error) {
  sync_options o;
  o.workload = "no-such-workload";
  auto rep = run_sync(o);
  ASSERT_FALSE(rep);
  EXPECT_EQ(rep.err().code, errc::invalid_argument);
  EXPECT_TRUE(is_sync_workload("full-sync"));
  EXPECT_FALSE(is_sync_workload("local"));
}

} // namespace
} // namespace possync::sim
