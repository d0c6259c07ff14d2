// Whole nodes in one process: HQ <- branch <- terminal over real gRPC on 127.0.0.1:0
// and over in-process links. Every wait polls with a deadline; nothing asserts on
// timing.

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include <gtest/gtest.h>

#include "test_config.hpp"

#include "possync/node/inproc.hpp"
#include "possync/node/node.hpp"
#include "possync/v1/pos.pb.h"

namespace possync::node {
namespace {

using namespace std::chrono_literals;

constexpr core::node_id hq_id = 0x4000000000000001ULL;
constexpr core::node_id branch_id = 0xb0000000000000b1ULL;
constexpr core::node_id term_id = 0x7000000000000071ULL;
constexpr core::node_id stranger_id = 0x7000000000000099ULL;
const std::string tenant = "t1";
const std::string branch = "b1";

/// Polls `pred` until it holds or 10 s pass.
bool eventually(const std::function<bool()>& pred, std::chrono::milliseconds limit = 10s) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < deadline) {
    if (pred()) return true;
    std::this_thread::sleep_for(5ms);
  }
  return pred();
}

std::string product_body(const std::string& name, int64_t price) {
  v1::Product p;
  p.set_name(name);
  p.set_price(price);
  p.set_barcode("bc-" + name);
  p.set_active(true);
  return p.SerializeAsString();
}

void put_product(storage::node_store& s, const std::string& id, const std::string& name, int64_t price) {
  storage::put_op op;
  op.key = core::record_key{tenant, "", "product", id};
  op.body = product_body(name, price);
  auto r = s.write({op});
  ASSERT_TRUE(r) << r.err().to_string();
}

std::string sale_body(const std::string& product) {
  v1::Sale s;
  s.set_receipt_no("R");
  s.set_time_ms(1);
  auto* it = s.add_items();
  it->set_product_id(product);
  it->set_quantity(1000);
  it->set_unit_price(100);
  it->set_line_total(100);
  s.set_total(100);
  return s.SerializeAsString();
}

void sell(storage::node_store& s, int n) {
  for (int i = 0; i < n; ++i) {
    auto r = s.record_sale(core::record_key{tenant, branch, "sale", s.new_id()}, sale_body("p1"));
    ASSERT_TRUE(r) << r.err().to_string();
  }
}

/// Sales of the branch held by `s`; -1 if a sale has more than one version.
int sales(const storage::node_store& s) {
  auto f = s.read_feed(tenant, branch, core::lane_sales, 0, 1'000'000);
  if (!f) return -2;
  int n = 0;
  for (const auto& e : *f) {
    if (e.rec.key.collection != "sale") continue;
    if (e.rec.versions.size() != 1) return -1;
    ++n;
  }
  return n;
}

std::optional<int64_t> price_of(const storage::node_store& s, const std::string& id) {
  auto r = s.read(core::record_key{tenant, "", "product", id});
  if (!r || !r->exists) return std::nullopt;
  v1::Product p;
  if (!p.ParseFromString(r->body)) return std::nullopt;
  return p.price();
}

/// Nodes wired either over gRPC (listen on 127.0.0.1:0) or in-process links.
class NodeTest : public ::testing::TestWithParam<bool> {
protected:
  bool grpc() const { return GetParam(); }

  void SetUp() override { rt_ = runtime::create(runtime::options{2, true}); }

  void TearDown() override {
    term_.reset();
    branch_.reset();
    hq_.reset();
    rt_.reset();
  }

  node_config base(storage::node_role role, core::node_id id) {
    auto c = test::fast_config(role, tenant, branch, id);
    c.backoff.jitter = 0.1;
    if (grpc()) {
      c.listen = role == storage::node_role::terminal ? "" : "127.0.0.1:0";
    } else {
      c.connect = [this](const std::string& endpoint) { return dial(endpoint); };
    }
    return c;
  }

  /// In-process dialing: "hq" / "branch" are the nodes of this fixture.
  std::unique_ptr<actors::link> dial(const std::string& endpoint) {
    std::lock_guard<std::mutex> lk(mu_);
    auto i = targets_.find(endpoint);
    auto [a, b] = inproc_pair(endpoint + "-client", endpoint);
    if (i == targets_.end() || !i->second) {
      b->close(error(errc::unavailable, endpoint + " is down"));
      return std::move(a);
    }
    i->second->accept(std::move(b));
    return std::move(a);
  }

  void publish(const std::string& name, node* n) {
    std::lock_guard<std::mutex> lk(mu_);
    targets_[name] = n;
  }

  std::string endpoint_of(const std::string& name, const std::unique_ptr<node>& n) const {
    return grpc() ? "127.0.0.1:" + std::to_string(n->port()) : name;
  }

  node_config hq_config(std::shared_ptr<storage::database> db = nullptr) {
    auto c = base(storage::node_role::hq, hq_id);
    c.devices.push_back(device{tenant, branch, branch_id, storage::node_role::branch, "branch b1", false});
    c.devices.push_back(device{tenant, branch, term_id, storage::node_role::terminal, "till 1", false});
    if (db) {
      c.db = std::move(db);
      c.in_memory = false;
    }
    return c;
  }

  void start_hq(const std::string& listen = "127.0.0.1:0", std::shared_ptr<storage::database> db = nullptr) {
    auto c = hq_config(std::move(db));
    if (grpc()) c.listen = listen;
    auto n = node::start(c, rt_);
    ASSERT_TRUE(n) << n.err().to_string();
    hq_ = std::move(n).value();
    publish("hq", hq_.get());
  }

  void start_branch() {
    auto c = base(storage::node_role::branch, branch_id);
    c.upstreams = {endpoint_of("hq", hq_)};
    auto n = node::start(c, rt_);
    ASSERT_TRUE(n) << n.err().to_string();
    branch_ = std::move(n).value();
    publish("branch", branch_.get());
  }

  std::unique_ptr<node> start_terminal(core::node_id id) {
    auto c = base(storage::node_role::terminal, id);
    c.upstreams = {endpoint_of("branch", branch_)};
    auto n = node::start(c, rt_);
    EXPECT_TRUE(n) << n.err().to_string();
    return n ? std::move(n).value() : nullptr;
  }

  void start_all() {
    start_hq();
    start_branch();
    term_ = start_terminal(term_id);
    ASSERT_TRUE(term_);
  }

  std::shared_ptr<runtime> rt_;
  std::mutex mu_;
  std::map<std::string, node*> targets_;
  std::unique_ptr<node> hq_, branch_, term_;
};

TEST_P(NodeTest, TerminalSaleReachesHqExactlyOnce) {
  ASSERT_NO_FATAL_FAILURE(start_all());
  ASSERT_TRUE(eventually([&] { return term_->status().online; })) << term_->status().last_error;
  sell(term_->store(), 5);
  ASSERT_TRUE(eventually([&] { return sales(hq_->store()) == 5; })) << sales(hq_->store());
  EXPECT_TRUE(eventually([&] {
    auto p = term_->status().pending;
    return p[core::lane_sales] == 0 && branch_->status().pending[core::lane_sales] == 0;
  }));
  // Nothing more arrives and nothing is duplicated after the outboxes drain.
  std::this_thread::sleep_for(100ms);
  EXPECT_EQ(sales(hq_->store()), 5);
  EXPECT_EQ(sales(branch_->store()), 5);
  EXPECT_EQ(branch_->status().downstream_sessions, 1u);
  EXPECT_EQ(hq_->status().downstream_sessions, 1u);
}

TEST_P(NodeTest, HqProductEditReachesTerminal) {
  ASSERT_NO_FATAL_FAILURE(start_all());
  put_product(hq_->store(), "p1", "coffee", 100);
  ASSERT_TRUE(eventually([&] { return price_of(term_->store(), "p1") == 100; }));
  put_product(hq_->store(), "p1", "coffee", 250);
  ASSERT_TRUE(eventually([&] { return price_of(term_->store(), "p1") == 250; }));
  EXPECT_TRUE(eventually([&] { return term_->status().caught_up; }));
}

TEST_P(NodeTest, CutUplinkSellThenHealDeliversEverything) {
  ASSERT_NO_FATAL_FAILURE(start_all());
  ASSERT_TRUE(eventually([&] { return term_->status().online; })) << term_->status().last_error;
  term_->set_uplink_enabled(false);
  ASSERT_TRUE(eventually([&] { return !term_->status().online; }));
  sell(term_->store(), 100);
  EXPECT_EQ(term_->status().pending[core::lane_sales], 100u);
  std::this_thread::sleep_for(50ms);
  EXPECT_EQ(sales(hq_->store()), 0);
  term_->set_uplink_enabled(true);
  ASSERT_TRUE(eventually([&] { return sales(hq_->store()) == 100; })) << sales(hq_->store());
  EXPECT_TRUE(eventually([&] { return term_->status().pending[core::lane_sales] == 0; }));
}

TEST_P(NodeTest, UnknownNodeIsRefused) {
  ASSERT_NO_FATAL_FAILURE(start_all());
  ASSERT_TRUE(eventually([&] { return term_->status().online; })) << term_->status().last_error;
  auto stranger = start_terminal(stranger_id);
  ASSERT_TRUE(stranger);
  ASSERT_TRUE(eventually([&] {
    auto s = stranger->status();
    return s.last_error.find(core::node_id_to_string(stranger_id)) != std::string::npos;
  })) << stranger->status().last_error;
  auto s = stranger->status();
  EXPECT_FALSE(s.online);
  EXPECT_NE(s.last_error.find("permission_denied"), std::string::npos) << s.last_error;
  sell(stranger->store(), 1);
  std::this_thread::sleep_for(100ms);
  EXPECT_EQ(sales(hq_->store()), 0);
  EXPECT_EQ(sales(branch_->store()), 0);
  stranger.reset();
}

TEST_P(NodeTest, SupervisorReconnectsAfterHqRestart) {
  storage::db_options o;
  o.in_memory = true;
  auto db = storage::database::open(o);
  ASSERT_TRUE(db);
  ASSERT_NO_FATAL_FAILURE(start_hq("127.0.0.1:0", *db));
  start_branch();
  ASSERT_TRUE(eventually([&] { return branch_->status().online; })) << branch_->status().last_error;
  const auto port = hq_->port();
  publish("hq", nullptr);
  hq_.reset();
  ASSERT_TRUE(eventually([&] { return !branch_->status().online; }));
  sell(branch_->store(), 3);
  const auto restarts = branch_->status().uplink_restarts;
  std::this_thread::sleep_for(100ms); // a few failed attempts while HQ is down
  ASSERT_NO_FATAL_FAILURE(start_hq("127.0.0.1:" + std::to_string(port), *db));
  ASSERT_TRUE(eventually([&] { return branch_->status().online; })) << branch_->status().last_error;
  EXPECT_GT(branch_->status().uplink_restarts, restarts);
  EXPECT_TRUE(eventually([&] { return sales(hq_->store()) == 3; })) << sales(hq_->store());
}

TEST_P(NodeTest, RepeatedStartStopIsClean) {
  for (int i = 0; i < 3; ++i) {
    ASSERT_NO_FATAL_FAILURE(start_all());
    ASSERT_TRUE(eventually([&] { return term_->status().online; })) << term_->status().last_error;
    publish("hq", nullptr);
    publish("branch", nullptr);
    term_->stop();
    branch_->stop();
    hq_->stop();
    term_.reset();
    branch_.reset();
    hq_.reset();
  }
}

TEST_P(NodeTest, SubscribersHearCommits) {
  ASSERT_NO_FATAL_FAILURE(start_all());
  std::mutex mu;
  std::vector<std::string> seen;
  auto id = term_->subscribe([&](const std::vector<storage::change>& ch) {
    std::lock_guard<std::mutex> lk(mu);
    for (const auto& c : ch)
      seen.push_back(c.key.collection + "/" + c.key.id);
  });
  put_product(hq_->store(), "p7", "tea", 90);
  ASSERT_TRUE(eventually([&] {
    std::lock_guard<std::mutex> lk(mu);
    return std::find(seen.begin(), seen.end(), "product/p7") != seen.end();
  }));
  term_->unsubscribe(id);
}

TEST_P(NodeTest, FullResyncDownloadsAgain) {
  ASSERT_NO_FATAL_FAILURE(start_all());
  put_product(hq_->store(), "p1", "coffee", 100);
  ASSERT_TRUE(eventually([&] { return price_of(term_->store(), "p1") == 100; }));
  ASSERT_TRUE(eventually([&] { return term_->status().online; }));
  auto s = term_->full_resync();
  EXPECT_FALSE(s) << s.to_string();
  EXPECT_TRUE(eventually([&] { return term_->status().online && term_->status().caught_up; }));
}

// Frames larger than session.fragment_bytes cross in pieces (Fragment frames) both
// ways: a 1 MB report up (one Push), products with large bodies down (Changes over
// 64 KiB); sales made meanwhile arrive too, and every body arrives byte for byte.
TEST_P(NodeTest, LargeFramesCrossInPiecesBothWays) {
  ASSERT_NO_FATAL_FAILURE(start_all());
  ASSERT_TRUE(eventually([&] { return term_->status().online; })) << term_->status().last_error;
  const std::string long_name(2000, 'n');
  for (int i = 0; i < 100; ++i)
    put_product(hq_->store(), "big" + std::to_string(i), long_name + std::to_string(i), 100 + i);
  v1::Report rep;
  rep.set_kind("end_of_day");
  rep.set_terminal_id("T1");
  std::string payload(1u << 20, '\0');
  for (size_t i = 0; i < payload.size(); ++i)
    payload[i] = static_cast<char>((i * 2654435761u) >> 13);
  rep.set_payload(payload);
  storage::put_op put;
  put.key = core::record_key{tenant, branch, "report", term_->store().new_id()};
  put.body = rep.SerializeAsString();
  auto w = term_->store().write({put});
  ASSERT_TRUE(w) << w.err().to_string();
  sell(term_->store(), 20);
  ASSERT_TRUE(eventually([&] { return sales(hq_->store()) == 20; })) << sales(hq_->store());
  ASSERT_TRUE(eventually([&] {
    auto r = hq_->store().read(put.key);
    return r && r->exists;
  }));
  auto at_hq = hq_->store().read(put.key);
  ASSERT_TRUE(at_hq && at_hq->exists);
  EXPECT_EQ(at_hq->body, put.body);
  ASSERT_TRUE(eventually([&] { return price_of(term_->store(), "big99") == 199; }));
  for (int i = 0; i < 100; ++i) {
    auto r = term_->store().read(core::record_key{tenant, "", "product", "big" + std::to_string(i)});
    ASSERT_TRUE(r && r->exists) << i;
    EXPECT_EQ(r->body, product_body(long_name + std::to_string(i), 100 + i)) << i;
  }
  EXPECT_TRUE(eventually([&] { return term_->status().pending[core::lane_reports] == 0; }));
  EXPECT_TRUE(term_->status().online) << term_->status().last_error;
}

INSTANTIATE_TEST_SUITE_P(Transports, NodeTest, ::testing::Values(true, false),
                         [](const ::testing::TestParamInfo<bool>& i) { return i.param ? "grpc" : "inproc"; });

} // namespace
} // namespace possync::node
