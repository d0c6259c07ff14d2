// The POS load workloads (pos, lanes = W6, scale = W7) at small sizes: nothing lost,
// nothing duplicated, every terminal converged, the series and the report filled; and
// a run aimed at an external HQ (a node listening on 127.0.0.1:0 that registered the
// devices --devices-out wrote). No timings are asserted (bench/ does).

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <random>
#include <regex>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "possync/node/node.hpp"
#include "possync/sim/workload_pos.hpp"

namespace possync::sim {
namespace {

std::string temp_path(const std::string& name) {
  std::random_device rd;
  return (std::filesystem::temp_directory_path() / ("possync-pos-test-" + std::to_string(rd()) + "-" + name)).string();
}

pos_options small(const std::string& workload) {
  pos_options o;
  o.workload = workload;
  o.transport = sync_transport::inproc;
  o.terminals = 6;
  o.branches = 2;
  o.products = 100;
  o.duration_ms = 2'000;
  o.sample_ms = 250;
  o.sales_per_terminal_s = 5;
  o.hq_changes_per_s = 2;
  o.overrides_per_s = 2;
  o.stocktakes_per_s = 2;
  o.offline_fraction = 0.2;
  o.in_memory = true;
  o.seed = 11;
  o.timeout_ms = 60'000;
  return o;
}

void expect_clean(const pos_report& r) {
  EXPECT_TRUE(r.converged) << r.opts.workload << ": " << r.failure;
  EXPECT_EQ(r.lost, 0u);
  EXPECT_EQ(r.duplicated, 0u);
  EXPECT_EQ(r.seen, r.expected);
  EXPECT_GT(r.expected, 0u);
  const std::string j = to_json(r);
  for (const char* field : {"workload", "seconds", "p50_ms", "p99_ms", "lost", "duplicated", "converged", "peak_rss_mb"})
    EXPECT_NE(j.find(std::string("\"") + field + "\":"), std::string::npos) << "lacks " << field << ": " << j;
  EXPECT_FALSE(to_text(r).empty());
}

TEST(pos_workloads, names) {
  EXPECT_TRUE(is_pos_workload("pos"));
  EXPECT_TRUE(is_pos_workload("lanes"));
  EXPECT_TRUE(is_pos_workload("scale"));
  EXPECT_TRUE(is_pos_workload("idle"));
  EXPECT_FALSE(is_pos_workload("push"));
  auto o = small("nope");
  EXPECT_FALSE(run_pos(o));
  o = small("pos");
  o.branches = 7; // more branches than terminals
  EXPECT_FALSE(run_pos(o));
}

TEST(pos_workloads, pos_with_every_kind_of_traffic_converges) {
  auto o = small("pos");
  o.report_html = temp_path("pos.html");
  auto r = run_pos(o);
  ASSERT_TRUE(r) << r.err().to_string();
  expect_clean(*r);
  EXPECT_FALSE(r->record.series.empty());
  EXPECT_FALSE(r->record.latencies.empty());
  EXPECT_FALSE(r->record.latencies.front().ms.empty());
  EXPECT_FALSE(r->record.parameters.empty());
  EXPECT_FALSE(r->record.results.empty());
  EXPECT_GT(r->details.at("hq_changes"), 0);
  EXPECT_GT(r->details.at("reports"), 0);
  EXPECT_EQ(r->details.at("reports_at_hq"), r->details.at("reports"));
  EXPECT_EQ(r->details.at("stock_mismatches"), 0);
  EXPECT_GT(r->change_p50_ms, 0);
  std::ifstream html(o.report_html);
  EXPECT_TRUE(html.good()) << o.report_html;
  std::string page((std::istreambuf_iterator<char>(html)), std::istreambuf_iterator<char>());
  EXPECT_NE(page.find("<svg"), std::string::npos);
  std::filesystem::remove(o.report_html);
}

TEST(pos_workloads, pos_over_grpc_on_disk) {
  auto o = small("pos");
  o.transport = sync_transport::grpc;
  o.in_memory = false;
  o.terminals = 4;
  auto r = run_pos(o);
  ASSERT_TRUE(r) << r.err().to_string();
  expect_clean(*r);
}

TEST(pos_workloads, lanes_small_computes_the_ratio) {
  auto o = small("lanes");
  o.products = 2'000;
  o.report_bytes = 512 * 1024;
  auto r = run_pos(o);
  ASSERT_TRUE(r) << r.err().to_string();
  expect_clean(*r);
  EXPECT_GT(r->details.at("idle_p50_ms"), 0);
  EXPECT_GT(r->details.at("loaded_samples"), 0);
  EXPECT_GT(r->details.at("ratio"), 0);
  EXPECT_EQ(r->p50_ms, r->details.at("loaded_p50_ms"));
  EXPECT_NE(to_json(*r).find("\"ratio\":"), std::string::npos);
}

TEST(pos_workloads, scale_small) {
  auto o = small("scale");
  o.terminals = 50;
  o.branches = 5;
  o.sales_per_terminal_s = 1;
  o.hq_changes_per_s = 1;
  auto r = run_pos(o);
  ASSERT_TRUE(r) << r.err().to_string();
  expect_clean(*r);
  EXPECT_GT(r->sales_per_s, 0);
  EXPECT_GT(r->peak_rss_mb, 0);
  EXPECT_FALSE(r->record.series.empty());
}

// Stock paced longer than the whole load (session.stock_pause_ms of HQ and branches):
// the last round still comes, and every terminal ends with its branch's stock levels
// (the convergence check compares them).
TEST(pos_workloads, scale_with_a_long_stock_pause_converges) {
  auto o = small("scale");
  o.terminals = 20;
  o.branches = 2;
  o.sales_per_terminal_s = 2;
  o.stock_pause_ms = 3'000;
  auto r = run_pos(o);
  ASSERT_TRUE(r) << r.err().to_string();
  expect_clean(*r);
  EXPECT_EQ(r->details.at("stale_nodes"), 0);
  EXPECT_NE(to_json(*r).find("\"stock_pause_ms\":3000"), std::string::npos) << to_json(*r);
}

// Terminals without live stock (--terminal-stock off): sales still reach HQ exactly
// once, stock still converges between branches and HQ, and every terminal still ends
// with its branch's catalogue; a terminal's own counters are not its branch's.
TEST(pos_workloads, scale_without_terminal_stock_converges) {
  auto o = small("scale");
  o.terminals = 20;
  o.branches = 2;
  o.sales_per_terminal_s = 2;
  o.terminal_stock = false;
  auto r = run_pos(o);
  ASSERT_TRUE(r) << r.err().to_string();
  expect_clean(*r);
  EXPECT_EQ(r->details.at("stale_nodes"), 0);
  EXPECT_EQ(r->details.at("stock_mismatches"), 0);
  EXPECT_NE(to_json(*r).find("\"terminal_stock\":\"off\""), std::string::npos) << to_json(*r);
  EXPECT_NE(r->record.command.find("--terminal-stock off"), std::string::npos) << r->record.command;
}

// The devices file, as `possync hq` reads it: node_id, role and branch of each entry.
std::vector<node::device> read_devices(const std::string& path, const std::string& tenant) {
  std::ifstream in(path);
  std::vector<node::device> out;
  std::regex entry(R"re(- \{tenant: (\S+), branch: (\S+), node_id: "([0-9a-f]{16})", role: (\w+), name: "([^"]*)"\})re");
  std::string line;
  while (std::getline(in, line)) {
    std::smatch m;
    if (!std::regex_search(line, m, entry)) continue;
    node::device d;
    d.tenant = m[1];
    EXPECT_EQ(d.tenant, tenant);
    d.branch = m[2];
    d.node = std::stoull(m[3].str(), nullptr, 16);
    d.role = m[4] == "branch" ? storage::node_role::branch : storage::node_role::terminal;
    d.name = m[5];
    out.push_back(d);
  }
  return out;
}

TEST(pos_workloads, external_hq_over_grpc) {
  auto o = small("pos");
  o.terminals = 4;
  o.branches = 2;
  o.devices_out = temp_path("devices.yaml");
  auto wrote = run_pos(o);
  ASSERT_TRUE(wrote) << wrote.err().to_string();
  EXPECT_TRUE(wrote->converged);
  auto devices = read_devices(o.devices_out, o.tenant);
  std::filesystem::remove(o.devices_out);
  ASSERT_EQ(devices.size(), 6u);

  node::node_config hc;
  hc.role = storage::node_role::hq;
  hc.tenant = o.tenant;
  hc.in_memory = true;
  hc.listen = "127.0.0.1:0";
  hc.devices = devices;
  auto hq = node::node::start(hc);
  ASSERT_TRUE(hq) << hq.err().to_string();
  std::mutex mu;
  std::map<std::string, int> sales;
  auto sub = (*hq)->subscribe([&](const std::vector<storage::change>& cs) {
    std::lock_guard<std::mutex> g(mu);
    for (const auto& c : cs)
      if (c.key.collection == "sale") ++sales[c.key.id];
  });

  o.devices_out.clear();
  o.hq = "127.0.0.1:" + std::to_string((*hq)->port());
  auto r = run_pos(o);
  ASSERT_TRUE(r) << r.err().to_string();
  expect_clean(*r);
  (*hq)->unsubscribe(sub);
  (*hq)->stop();
  // Every sale the run made is at this HQ exactly once.
  std::lock_guard<std::mutex> g(mu);
  EXPECT_EQ(sales.size(), r->expected);
  for (const auto& [id, n] : sales)
    EXPECT_EQ(n, 1) << id;
}

} // namespace
} // namespace possync::sim
