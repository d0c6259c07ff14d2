// /metrics and /healthz of a running HQ and terminal pair over real HTTP on 127.0.0.1:
// the Prometheus text carries the figures of node::status() and reacts to traffic.

#include <chrono>
#include <functional>
#include <string>
#include <thread>

#include <httplib.h>
#include <gtest/gtest.h>

#include "eventually.hpp"

#include "possync/node/metrics.hpp"
#include "possync/node/node.hpp"
#include "possync/v1/pos.pb.h"

namespace possync::node {
namespace {

using namespace std::chrono_literals;

using test::eventually;

TEST(metrics, text_format_names_every_figure_with_help_and_type) {
  node_status s;
  s.node = 0x71;
  s.role = storage::node_role::terminal;
  s.tenant = "demo";
  s.branch = "jkt \"01\"";
  s.online = true;
  s.pending = {3, 2, 1, 0};
  s.skew_ms = -1500;
  metrics_extra x;
  x.commits = 10;
  x.commit_groups = 4;
  x.commit_latency.counts[2] = 3;  // <= 1 ms
  x.commit_latency.counts[4] = 1;  // <= 5 ms
  x.commit_latency.count = 4;
  x.commit_latency.sum_ms = 7.5;
  x.records_in = 12;
  x.sessions_ended[0] = 2;
  x.sessions_ended[14] = 1;
  auto t = render_metrics(s, x);
  for (const char* want :
       {"# TYPE possync_pending gauge", "possync_pending{lane=\"sales\"} 3", "possync_pending{lane=\"reports\"} 0",
        "possync_online 1", "possync_clock_skew_seconds -1.5", "possync_commits_total 10",
        "possync_commit_groups_total 4", "branch=\"jkt \\\"01\\\"\"", "# HELP possync_up ",
        "# TYPE possync_commit_latency_seconds histogram", "possync_commit_latency_seconds_bucket{le=\"0.0005\"} 0",
        "possync_commit_latency_seconds_bucket{le=\"0.001\"} 3", "possync_commit_latency_seconds_bucket{le=\"0.005\"} 4",
        "possync_commit_latency_seconds_bucket{le=\"+Inf\"} 4", "possync_commit_latency_seconds_sum 0.0075",
        "possync_commit_latency_seconds_count 4", "possync_sync_records_total{direction=\"in\"} 12",
        "possync_sessions_ended_total{code=\"ok\"} 2", "possync_sessions_ended_total{code=\"unavailable\"} 1"})
    EXPECT_NE(t.find(want), std::string::npos) << want << "\n" << t;
  // Every sample line belongs to a metric announced by a TYPE line.
  size_t types = 0, pos = 0;
  while ((pos = t.find("# TYPE ", pos)) != std::string::npos) {
    ++types;
    ++pos;
  }
  EXPECT_EQ(types, 19u);
  EXPECT_EQ(t.find("code=\"cancelled\""), std::string::npos);  // codes never seen are left out
}

TEST(metrics, served_over_http_and_following_traffic) {
  auto rt = runtime::create(runtime::options{2, true});
  node_config hc;
  hc.role = storage::node_role::hq;
  hc.tenant = "t1";
  hc.node_id = 0x4000000000000001ULL;
  hc.in_memory = true;
  hc.listen = "127.0.0.1:0";
  hc.http_listen = "127.0.0.1:0";
  hc.devices.push_back(device{"t1", "b1", 0x71, storage::node_role::terminal, "till", false});
  auto hq = node::start(hc, rt);
  ASSERT_TRUE(hq) << hq.err().to_string();
  ASSERT_NE((*hq)->http_port(), 0);
  node_config tc;
  tc.role = storage::node_role::terminal;
  tc.tenant = "t1";
  tc.branch = "b1";
  tc.node_id = 0x71;
  tc.in_memory = true;
  tc.http_listen = "127.0.0.1:0";
  tc.upstreams = {"127.0.0.1:" + std::to_string((*hq)->port())};
  auto term = node::start(tc, rt);
  ASSERT_TRUE(term) << term.err().to_string();
  ASSERT_TRUE(eventually([&] { return (*term)->status().online; }));

  httplib::Client hq_http("127.0.0.1", (*hq)->http_port());
  httplib::Client t_http("127.0.0.1", (*term)->http_port());
  auto health = hq_http.Get("/healthz");
  ASSERT_TRUE(health);
  EXPECT_EQ(health->status, 200);
  EXPECT_NE(health->body.find("\"status\":\"ok\""), std::string::npos) << health->body;
  EXPECT_TRUE(eventually([&] {
    auto m = hq_http.Get("/metrics");
    return m && m->status == 200 && m->body.find("possync_downstream_sessions 1") != std::string::npos;
  }));
  // Offline sales show up as pending in lane sales, then drain.
  (*term)->set_uplink_enabled(false);
  ASSERT_TRUE(eventually([&] { return !(*term)->status().online; }));
  v1::Sale sale;
  sale.set_receipt_no("R");
  auto* it = sale.add_items();
  it->set_product_id("p1");
  it->set_quantity(1000);
  for (int i = 0; i < 3; ++i)
    ASSERT_TRUE((*term)->store().record_sale(core::record_key{"t1", "b1", "sale", (*term)->store().new_id()},
                                             sale.SerializeAsString()));
  auto m = t_http.Get("/metrics");
  ASSERT_TRUE(m);
  EXPECT_NE(m->body.find("possync_pending{lane=\"sales\"} 3"), std::string::npos) << m->body;
  EXPECT_NE(m->body.find("possync_online 0"), std::string::npos);
  (*term)->set_uplink_enabled(true);
  EXPECT_TRUE(eventually([&] {
    auto r = t_http.Get("/metrics");
    return r && r->body.find("possync_pending{lane=\"sales\"} 0") != std::string::npos &&
           r->body.find("possync_online 1") != std::string::npos;
  }));
  // HQ received the three sales and committed them.
  EXPECT_TRUE(eventually([&] {
    auto r = hq_http.Get("/metrics");
    return r && r->body.find("possync_sync_records_total{direction=\"in\"} 0") == std::string::npos &&
           r->body.find("possync_commit_latency_seconds_count 0") == std::string::npos;
  }));
  EXPECT_NE(hq_http.Get("/metrics")->body.find("possync_nodes{state=\"online\"} 1"), std::string::npos);
  EXPECT_EQ(t_http.Get("/nothing-here")->status, 404);
  term->reset();
  hq->reset();
}

TEST(metrics, a_bad_http_address_fails_the_start) {
  auto rt = runtime::create(runtime::options{2, true});
  node_config c;
  c.role = storage::node_role::hq;
  c.tenant = "t1";
  c.in_memory = true;
  c.http_listen = "no-port";
  auto n = node::start(c, rt);
  ASSERT_FALSE(n);
  EXPECT_EQ(n.err().code, errc::invalid_argument);
}

} // namespace
} // namespace possync::node
