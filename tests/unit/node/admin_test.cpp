// The operator API on running nodes: HQ <- branch <- two terminals over real gRPC on
// 127.0.0.1:0, the Admin service called through admin_client. Every wait polls with
// a deadline; nothing asserts on timing.

#include <chrono>
#include <filesystem>
#include <memory>
#include <set>
#include <string>
#include <thread>

#include <gtest/gtest.h>

#include "eventually.hpp"
#include "fast_config.hpp"

#include "possync/actors/session_actor.hpp"
#include "possync/node/admin.hpp"
#include "possync/node/node.hpp"
#include "possync/v1/pos.pb.h"

namespace possync::node {
namespace {

using namespace std::chrono_literals;
using test::eventually;

constexpr core::node_id hq_id = 0x4000000000000001ULL;
constexpr core::node_id branch_id = 0xb0000000000000b1ULL;
constexpr core::node_id t1_id = 0x7000000000000071ULL;
constexpr core::node_id t2_id = 0x7000000000000072ULL;
constexpr core::node_id stranger_id = 0x7000000000000099ULL;
const std::string tenant = "t1";
const std::string branch = "b1";

std::string price_body(int64_t price) {
  v1::Price p;
  p.set_product_id("p1");
  p.set_price(price);
  return p.SerializeAsString();
}

std::optional<int64_t> price_at(const storage::node_store& s) {
  auto r = s.read(core::record_key{tenant, branch, "price", "p1"});
  if (!r || !r->exists) return std::nullopt;
  v1::Price p;
  if (!p.ParseFromString(r->body)) return std::nullopt;
  return p.price();
}

void put_price(storage::node_store& s, int64_t price) {
  storage::put_op op;
  op.key = core::record_key{tenant, branch, "price", "p1"};
  op.body = price_body(price);
  auto r = s.write({op});
  ASSERT_TRUE(r) << r.err().to_string();
}

const node_info* find(const std::vector<node_info>& ns, core::node_id id) {
  for (const auto& n : ns)
    if (n.node == id) return &n;
  return nullptr;
}

class Admin : public ::testing::Test {
protected:
  void SetUp() override { rt_ = runtime::create(runtime::options{2, true}); }
  void TearDown() override {
    t1_.reset();
    t2_.reset();
    branch_.reset();
    hq_.reset();
    rt_.reset();
  }

  node_config base(storage::node_role role, core::node_id id) {
    auto c = test::fast_config(role, id, tenant, branch);
    c.session.heartbeat_ms = 200;
    c.presence_interval_ms = 100;
    c.listen = role == storage::node_role::terminal ? "" : "127.0.0.1:0";
    return c;
  }

  std::unique_ptr<node> start(node_config c) {
    auto n = node::start(std::move(c), rt_);
    EXPECT_TRUE(n) << n.err().to_string();
    return n ? std::move(n).value() : nullptr;
  }

  void start_all() {
    auto h = base(storage::node_role::hq, hq_id);
    h.devices.push_back(device{tenant, branch, branch_id, storage::node_role::branch, "Store b1", false});
    h.devices.push_back(device{tenant, branch, t1_id, storage::node_role::terminal, "Till 1", false});
    h.devices.push_back(device{tenant, branch, t2_id, storage::node_role::terminal, "Till 2", false});
    hq_ = start(h);
    ASSERT_TRUE(hq_);
    auto b = base(storage::node_role::branch, branch_id);
    b.upstreams = {"127.0.0.1:" + std::to_string(hq_->port())};
    branch_ = start(b);
    ASSERT_TRUE(branch_);
    // Terminals are admitted once the registry has reached the branch.
    for (auto [id, slot] : {std::pair{t1_id, &t1_}, std::pair{t2_id, &t2_}}) {
      auto t = base(storage::node_role::terminal, id);
      t.upstreams = {"127.0.0.1:" + std::to_string(branch_->port())};
      *slot = start(t);
      ASSERT_TRUE(*slot);
    }
    ASSERT_TRUE(eventually([&] { return t1_->status().online && t2_->status().online; }, 20s))
        << t1_->status().last_error << " / " << t2_->status().last_error;
  }

  admin_client hq_admin() { return admin_client("127.0.0.1:" + std::to_string(hq_->port()), {}); }

  std::shared_ptr<runtime> rt_;
  std::unique_ptr<node> hq_, branch_, t1_, t2_;
};

TEST_F(Admin, HqSeesItsBranchAndTheTerminalsTheBranchReports) {
  ASSERT_NO_FATAL_FAILURE(start_all());
  // HQ: the branch first-hand, the terminals through the branch's presence reports.
  ASSERT_TRUE(eventually([&] {
    auto ns = hq_->nodes();
    if (!ns) return false;
    auto* b = find(*ns, branch_id);
    auto* a = find(*ns, t1_id);
    auto* c = find(*ns, t2_id);
    return b && b->online && a && a->online && a->via == branch_id && c && c->online && c->via == branch_id;
  })) << "HQ does not see the branch and both terminals online";
  auto ns = hq_admin().nodes();
  ASSERT_TRUE(ns) << ns.err().to_string();
  ASSERT_EQ(ns->size(), 3u);  // not itself
  auto* b = find(*ns, branch_id);
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(b->role, storage::node_role::branch);
  EXPECT_EQ(b->name, "Store b1");
  EXPECT_EQ(b->via, 0u);
  EXPECT_FALSE(b->software.empty());
  EXPECT_GT(b->last_seen_ms, 0);
  EXPECT_GT(b->connected_ms, 0);
  auto* t = find(*ns, t1_id);
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(t->name, "Till 1");
  EXPECT_EQ(t->branch, branch);
  EXPECT_EQ(t->software, b->software);
  // Filtered by branch.
  auto none = hq_admin().nodes("elsewhere");
  ASSERT_TRUE(none);
  EXPECT_TRUE(none->empty());

  // The branch sees its terminals first-hand.
  auto bn = branch_->nodes();
  ASSERT_TRUE(bn);
  ASSERT_NE(find(*bn, t1_id), nullptr);
  EXPECT_EQ(find(*bn, t1_id)->via, 0u);
  EXPECT_EQ(find(*bn, branch_id), nullptr);

  // Till 1 sells while cut off: offline at the branch and at HQ, its sales pending
  // once it is back, then drained.
  t1_->set_uplink_enabled(false);
  ASSERT_TRUE(eventually([&] {
    auto ns = hq_->nodes();
    return ns && find(*ns, t1_id) && !find(*ns, t1_id)->online;
  })) << "HQ still shows till 1 online";
  auto off = hq_->nodes();
  EXPECT_GT(find(*off, t1_id)->last_seen_ms, 0);
  EXPECT_EQ(find(*off, t1_id)->connected_ms, 0);
  EXPECT_TRUE(find(*off, t2_id)->online);
  t1_->set_uplink_enabled(true);
  EXPECT_TRUE(eventually([&] {
    auto ns = hq_->nodes();
    return ns && find(*ns, t1_id) && find(*ns, t1_id)->online;
  }));

  // A branch that is gone takes its terminals' online state with it.
  branch_.reset();
  EXPECT_TRUE(eventually([&] {
    auto ns = hq_->nodes();
    if (!ns || !find(*ns, branch_id) || !find(*ns, t1_id)) return false;
    return !find(*ns, branch_id)->online && !find(*ns, t1_id)->online && !find(*ns, t2_id)->online;
  }));
}

TEST_F(Admin, ABranchRestartingReportsItsLastRunsTerminalsOffline) {
  char tmpl[] = "/tmp/possync-admin-XXXXXX";
  ASSERT_NE(::mkdtemp(tmpl), nullptr);
  const std::string dir = tmpl;
  auto h = base(storage::node_role::hq, hq_id);
  h.devices.push_back(device{tenant, branch, branch_id, storage::node_role::branch, "Store b1", false});
  h.devices.push_back(device{tenant, branch, t1_id, storage::node_role::terminal, "Till 1", false});
  hq_ = start(h);
  ASSERT_TRUE(hq_);
  auto b = base(storage::node_role::branch, branch_id);
  b.in_memory = false;
  b.dir = dir + "/branch";
  b.upstreams = {"127.0.0.1:" + std::to_string(hq_->port())};
  branch_ = start(b);
  ASSERT_TRUE(branch_);
  auto t = base(storage::node_role::terminal, t1_id);
  t.upstreams = {"127.0.0.1:" + std::to_string(branch_->port())};
  t1_ = start(t);
  ASSERT_TRUE(t1_);
  auto t1_state = [&](bool online) {
    auto ns = hq_->nodes();
    return ns && find(*ns, t1_id) && find(*ns, t1_id)->online == online && find(*ns, t1_id)->via == branch_id;
  };
  ASSERT_TRUE(eventually([&] { return t1_state(true); }));
  // The branch goes down with the till's report still "online"; the till goes too.
  b.listen = "127.0.0.1:" + std::to_string(branch_->port());
  branch_.reset();
  t1_.reset();
  // Back up on the same store: HQ must not show the till online through it.
  branch_ = start(b);
  ASSERT_TRUE(branch_);
  ASSERT_TRUE(eventually([&] {
    auto ns = hq_->nodes();
    return ns && find(*ns, branch_id) && find(*ns, branch_id)->online;
  }));
  EXPECT_TRUE(eventually([&] { return t1_state(false); })) << "HQ shows a till online that is gone";
  branch_.reset();
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
}

TEST_F(Admin, StatusTimeAndAuditLogOverGrpc) {
  ASSERT_NO_FATAL_FAILURE(start_all());
  auto c = hq_admin();
  auto st = c.status();
  ASSERT_TRUE(st) << st.err().to_string();
  EXPECT_EQ(st->node, hq_id);
  EXPECT_EQ(st->role, storage::node_role::hq);
  EXPECT_EQ(st->tenant, tenant);
  EXPECT_EQ(st->sessions, 1u);
  EXPECT_FALSE(st->software.empty());
  const auto before = actors::system_now_ms();
  auto t = c.time();
  ASSERT_TRUE(t) << t.err().to_string();
  EXPECT_GE(t->wall_ms, before - 1000);
  EXPECT_LE(t->wall_ms, actors::system_now_ms() + 1000);
  EXPECT_GT(t->hlc.wall_ms, 0u);

  // Sessions that ended are in the branch's audit log, with their counts.
  put_price(hq_->store(), 100);
  ASSERT_TRUE(eventually([&] { return price_at(t2_->store()) == 100; }));
  t2_.reset();
  admin_client bc("127.0.0.1:" + std::to_string(branch_->port()), {});
  ASSERT_TRUE(eventually([&] {
    auto log = bc.audit_log(50, t2_id);
    return log && !log->empty() && log->front().kind == "session";
  }));
  auto log = bc.audit_log(50, t2_id);
  EXPECT_EQ(log->front().peer, t2_id);
  EXPECT_EQ(log->front().peer_role, "terminal");
  EXPECT_GT(log->front().ended_ms, 0);
  EXPECT_GT(log->front().records_down, 0u);  // the price it downloaded

  // Operator actions are audited with who did them.
  ASSERT_TRUE(c.order(t1_id, command_kind::full_resync, "cursor check"));
  auto hq_log = c.audit_log(10);
  ASSERT_TRUE(hq_log) << hq_log.err().to_string();
  ASSERT_FALSE(hq_log->empty());
  EXPECT_EQ(hq_log->front().kind, "operator");
  EXPECT_EQ(hq_log->front().action, "resync");
  EXPECT_EQ(hq_log->front().actor, "local");
  EXPECT_EQ(hq_log->front().peer, t1_id);
  EXPECT_NE(hq_log->front().detail.find("cursor check"), std::string::npos) << hq_log->front().detail;

  // Unreachable node: a clear error, not a hang.
  grpc_client_options quick;
  quick.connect_timeout_ms = 500;
  auto dead = admin_client("127.0.0.1:1", quick).status();
  ASSERT_FALSE(dead);
  EXPECT_TRUE(dead.err().code == errc::unavailable || dead.err().code == errc::deadline_exceeded)
      << dead.err().to_string();
}

TEST_F(Admin, ConflictsAreShownWithBothVersionsAndResolutionsPropagate) {
  ASSERT_NO_FATAL_FAILURE(start_all());
  put_price(hq_->store(), 100);
  ASSERT_TRUE(eventually([&] { return price_at(branch_->store()) == 100; }));
  // HQ and the (cut off) branch change the same price.
  branch_->set_uplink_enabled(false);
  ASSERT_TRUE(eventually([&] { return !branch_->status().online; }));
  put_price(hq_->store(), 200);
  put_price(branch_->store(), 150);
  branch_->set_uplink_enabled(true);
  auto c = hq_admin();
  std::vector<conflict_info> open;
  ASSERT_TRUE(eventually([&] {
    auto cs = c.conflicts(true, 100);
    if (!cs) return false;
    open = *cs;
    return !open.empty();
  })) << "no conflict at HQ";
  ASSERT_EQ(open.size(), 1u);
  const auto id = open[0].id;
  EXPECT_EQ(open[0].key.collection, "price");
  EXPECT_EQ(open[0].policy, "hq_wins");
  auto shown = c.conflict(id);
  ASSERT_TRUE(shown) << shown.err().to_string();
  ASSERT_EQ(shown->versions.size(), 2u);
  std::set<std::string> roles;
  for (const auto& v : shown->versions) roles.insert(v.writer_role);
  EXPECT_EQ(roles, (std::set<std::string>{"hq", "branch"}));
  for (const auto& v : shown->versions)
    EXPECT_NE(v.body_json.find(v.writer_role == "hq" ? "\"200\"" : "\"150\""), std::string::npos) << v.body_json;
  EXPECT_NE(shown->current_json.find("\"200\""), std::string::npos) << shown->current_json;  // hq_wins reads HQ's
  EXPECT_EQ(c.conflict(id + 1000).err().code, errc::not_found);

  // The operator sides with the branch: its price everywhere, the conflict closed.
  auto dot = c.resolve_conflict(id, resolution_mode::client_wins, "", "store manager was right");
  ASSERT_TRUE(dot) << dot.err().to_string();
  EXPECT_FALSE(dot->empty());
  EXPECT_EQ(price_at(hq_->store()), 150);
  EXPECT_TRUE(eventually([&] { return price_at(branch_->store()) == 150; }));
  auto after = c.conflicts(true, 100);
  ASSERT_TRUE(after);
  EXPECT_TRUE(after->empty());
  auto closed = c.conflict(id);
  EXPECT_TRUE(closed->resolved);
  EXPECT_EQ(closed->resolution, "client_wins");
  EXPECT_EQ(closed->resolved_by, "local");
  EXPECT_EQ(c.resolve_conflict(id, resolution_mode::server_wins).err().code, errc::failed_precondition);
  // At the branch, the version that reached it superseded its copy of the conflict.
  EXPECT_TRUE(eventually([&] {
    auto bc = branch_->conflicts(true, 100);
    return bc && bc->empty();
  }));
  auto audit = c.audit_log(10);
  ASSERT_TRUE(audit);
  EXPECT_EQ(audit->front().action, "resolve");
  EXPECT_NE(audit->front().detail.find("store manager was right"), std::string::npos);

  // A second conflict, settled with a body the operator wrote.
  branch_->set_uplink_enabled(false);
  ASSERT_TRUE(eventually([&] { return !branch_->status().online; }));
  put_price(hq_->store(), 300);
  put_price(branch_->store(), 250);
  branch_->set_uplink_enabled(true);
  uint64_t second = 0;
  ASSERT_TRUE(eventually([&] {
    auto cs = c.conflicts(true, 100);
    if (!cs || cs->empty()) return false;
    second = cs->front().id;
    return true;
  }));
  auto bad = c.resolve_conflict(second, resolution_mode::merged, "{\"price\": \"lots\"}");
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.err().code, errc::invalid_argument) << bad.err().to_string();
  EXPECT_EQ(c.resolve_conflict(second, resolution_mode::merged, "{\"no_such_field\": 1}").err().code,
            errc::invalid_argument);
  ASSERT_TRUE(c.resolve_conflict(second, resolution_mode::merged, "{\"product_id\": \"p1\", \"price\": 275}"));
  EXPECT_TRUE(eventually([&] { return price_at(branch_->store()) == 275; }));
  EXPECT_EQ(price_at(hq_->store()), 275);

  // A third, overtaken by a later edit before anyone resolved it: it no longer counts,
  // and resolving it (which would bring back an old body) is refused.
  branch_->set_uplink_enabled(false);
  ASSERT_TRUE(eventually([&] { return !branch_->status().online; }));
  put_price(hq_->store(), 400);
  put_price(branch_->store(), 350);
  branch_->set_uplink_enabled(true);
  uint64_t third = 0;
  ASSERT_TRUE(eventually([&] {
    auto cs = c.conflicts(true, 100);
    if (!cs || cs->empty()) return false;
    third = cs->front().id;
    return true;
  }));
  put_price(hq_->store(), 500);  // reads every sibling: supersedes them
  EXPECT_TRUE(eventually([&] {
    auto cs = c.conflicts(true, 100);
    return cs && cs->empty();
  }));
  EXPECT_EQ(c.status()->conflicts_unresolved, 0u);
  auto late = c.resolve_conflict(third, resolution_mode::client_wins);
  ASSERT_FALSE(late);
  EXPECT_EQ(late.err().code, errc::failed_precondition) << late.err().to_string();
  EXPECT_EQ(price_at(hq_->store()), 500);

  // Two different sales under one id (immutable): versions are kept, the operator
  // closes the conflict without writing.
  branch_->set_uplink_enabled(false);
  ASSERT_TRUE(eventually([&] { return !branch_->status().online; }));
  const std::string sale_id = hq_->store().new_id();
  for (auto* n : {hq_.get(), branch_.get()}) {
    v1::Sale sale;
    sale.set_receipt_no(n == hq_.get() ? "HQ-1" : "B-1");
    storage::put_op op;
    op.key = core::record_key{tenant, branch, "sale", sale_id};
    op.body = sale.SerializeAsString();
    auto w = n->store().write({op});
    ASSERT_TRUE(w) << w.err().to_string();
  }
  branch_->set_uplink_enabled(true);
  uint64_t dup = 0;
  ASSERT_TRUE(eventually([&] {
    auto cs = c.conflicts(true, 100);
    if (!cs || cs->empty()) return false;
    dup = cs->front().id;
    return cs->front().key.collection == "sale";
  }));
  EXPECT_EQ(c.resolve_conflict(dup, resolution_mode::client_wins).err().code, errc::failed_precondition);
  auto ack = c.resolve_conflict(dup, resolution_mode::acknowledged, "", "two tills, one receipt id");
  ASSERT_TRUE(ack) << ack.err().to_string();
  EXPECT_TRUE(ack->empty());
  EXPECT_TRUE(c.conflicts(true, 100)->empty());
  EXPECT_EQ(c.conflict(dup)->resolution, "acknowledged");
}

TEST_F(Admin, ResyncOrdersReachTerminalsThroughTheBranchAndRunOnce) {
  ASSERT_NO_FATAL_FAILURE(start_all());
  ASSERT_TRUE(eventually([&] { return t1_->status().caught_up; }));
  auto c = hq_admin();
  auto r = c.order(t1_id, command_kind::full_resync, "test");
  ASSERT_TRUE(r) << r.err().to_string();
  EXPECT_EQ(r->seq, 1u);
  EXPECT_TRUE(eventually([&] { return t1_->orders_done() == 1; })) << "till 1 did not carry out the order";
  // Carried out: recorded at the terminal, with the outcome.
  auto log = t1_->store().sessions(50);
  ASSERT_TRUE(log);
  bool audited = false;
  for (const auto& a : *log) audited = audited || (a.kind == "operator" && a.action == "resync" && a.result == "ok");
  EXPECT_TRUE(audited);
  EXPECT_TRUE(eventually([&] { return t1_->status().online && t1_->status().caught_up; }));
  std::this_thread::sleep_for(500ms);
  EXPECT_EQ(t1_->orders_done(), 1u);  // once, not again after the resync downloaded it again
  EXPECT_EQ(t2_->orders_done(), 0u);

  // Ordered while offline: carried out once it is back.
  t2_->set_uplink_enabled(false);
  ASSERT_TRUE(eventually([&] { return !t2_->status().online; }));
  ASSERT_TRUE(c.order(t2_id, command_kind::full_resync, "offline"));
  std::this_thread::sleep_for(300ms);
  EXPECT_EQ(t2_->orders_done(), 0u);
  t2_->set_uplink_enabled(true);
  EXPECT_TRUE(eventually([&] { return t2_->orders_done() == 1; }));

  // Errors: an unregistered node, and orders given anywhere but HQ.
  EXPECT_EQ(c.order(stranger_id, command_kind::full_resync, "").err().code, errc::not_found);
  EXPECT_EQ(branch_->order(t1_id, command_kind::full_resync, "").err().code, errc::failed_precondition);
}

int sales_at(const storage::node_store& s) {
  auto f = s.read_feed(tenant, branch, core::lane_sales, 0, 1'000'000);
  if (!f) return -2;
  int n = 0;
  for (const auto& e : *f) {
    if (e.rec.key.collection != "sale") continue;
    if (e.rec.versions.size() != 1) return -1;  // a duplicate would show as a second version
    ++n;
  }
  return n;
}

void sell(storage::node_store& s, int n) {
  v1::Sale sale;
  sale.set_receipt_no("R");
  auto* it = sale.add_items();
  it->set_product_id("p1");
  it->set_quantity(1000);
  for (int i = 0; i < n; ++i) {
    auto r = s.record_sale(core::record_key{tenant, branch, "sale", s.new_id()}, sale.SerializeAsString());
    ASSERT_TRUE(r) << r.err().to_string();
  }
}

TEST_F(Admin, ResetOrderRebuildsTheTerminalAndKeepsItsUnsentSales) {
  ASSERT_NO_FATAL_FAILURE(start_all());
  put_price(hq_->store(), 120);
  ASSERT_TRUE(eventually([&] { return price_at(t1_->store()) == 120; }));
  ASSERT_NO_FATAL_FAILURE(sell(t1_->store(), 3));
  ASSERT_TRUE(eventually([&] { return sales_at(hq_->store()) == 3; }));
  // Cut off, it sells five more; HQ orders a reset meanwhile.
  t1_->set_uplink_enabled(false);
  ASSERT_TRUE(eventually([&] { return !t1_->status().online; }));
  ASSERT_NO_FATAL_FAILURE(sell(t1_->store(), 5));
  auto r = hq_admin().order(t1_id, command_kind::reset, "till replaced its disk");
  ASSERT_TRUE(r) << r.err().to_string();
  t1_->set_uplink_enabled(true);
  ASSERT_TRUE(eventually([&] { return t1_->orders_done() == 1; })) << "the reset did not run";
  // Every sale at HQ exactly once; the terminal downloaded its data again and sells on.
  EXPECT_TRUE(eventually([&] { return sales_at(hq_->store()) == 8; })) << sales_at(hq_->store());
  EXPECT_TRUE(eventually([&] { return price_at(t1_->store()) == 120; }));
  ASSERT_NO_FATAL_FAILURE(sell(t1_->store(), 1));
  EXPECT_TRUE(eventually([&] { return sales_at(hq_->store()) == 9; })) << sales_at(hq_->store());
  auto log = t1_->store().sessions(100);
  ASSERT_TRUE(log);
  bool audited = false;
  for (const auto& a : *log) audited = audited || (a.kind == "operator" && a.action == "reset" && a.result == "ok");
  EXPECT_TRUE(audited) << "no successful reset in the terminal's audit log";
  std::this_thread::sleep_for(300ms);
  EXPECT_EQ(t1_->orders_done(), 1u);  // once, though the store was emptied and the order downloaded again
  auto done = t1_->store().get_meta("command.done");
  ASSERT_TRUE(done && done->has_value());
  EXPECT_EQ(**done, "1");

  // A resync ordered within a day of a reset stays a reset (it might replace the reset
  // before the node got it); the second reset loses nothing either.
  auto again = hq_admin().order(t1_id, command_kind::full_resync, "after the reset");
  ASSERT_TRUE(again) << again.err().to_string();
  EXPECT_EQ(again->seq, 2u);
  auto hq_log = hq_admin().audit_log(1);
  ASSERT_TRUE(hq_log && !hq_log->empty());
  EXPECT_EQ(hq_log->front().action, "reset");
  EXPECT_TRUE(eventually([&] { return t1_->orders_done() == 2; }));
  EXPECT_TRUE(eventually([&] { return t1_->status().caught_up && price_at(t1_->store()) == 120; }));
  EXPECT_EQ(sales_at(hq_->store()), 9);
}

// After a reset the branch writes under a new id (node_store::counter_node); HQ still
// sees its terminals online through it: the presence reports name the branch node.
TEST_F(Admin, HqSeesTheTerminalsOfAResetBranch) {
  ASSERT_NO_FATAL_FAILURE(start_all());
  auto through_branch = [&] {
    auto ns = hq_->nodes();
    if (!ns) return false;
    auto* a = find(*ns, t1_id);
    auto* c = find(*ns, t2_id);
    return a && a->online && a->via == branch_id && c && c->online && c->via == branch_id;
  };
  ASSERT_TRUE(eventually(through_branch)) << "HQ does not see both terminals through the branch";
  const auto before = branch_->store().counter_node();
  ASSERT_FALSE(branch_->reset("test"));
  ASSERT_NE(branch_->store().counter_node(), before);
  ASSERT_NO_FATAL_FAILURE(sell(t1_->store(), 1)); // a fresh presence report follows the sync
  EXPECT_TRUE(eventually([&] {
    if (!through_branch()) return false;
    auto r =
        hq_->store().get(core::record_key{tenant, branch, "node_presence", core::node_id_to_string(t1_id)});
    // The report HQ reads was written after the reset.
    return r && r->has_value() &&
           std::any_of((*r)->versions.begin(), (*r)->versions.end(),
                       [&](const core::version& v) { return v.id.node == branch_->store().counter_node(); });
  })) << "HQ lost sight of the terminals behind the reset branch";
}

// A reset keeps the device registry (actors::admission_collections): a branch cut off
// from HQ admits its terminals again at once, and takes their sales.
TEST_F(Admin, AResetBranchCutOffFromHqStillAdmitsItsTerminals) {
  ASSERT_NO_FATAL_FAILURE(start_all());
  branch_->set_uplink_enabled(false);
  ASSERT_TRUE(eventually([&] { return !branch_->status().online; }));
  ASSERT_FALSE(branch_->reset("test"));
  EXPECT_TRUE(
      branch_->store().read(core::record_key{tenant, "", "device", core::node_id_to_string(t1_id)})->exists);
  ASSERT_TRUE(eventually([&] { return t1_->status().online && t2_->status().online; }, 20s))
      << "terminals refused by the reset branch: " << t1_->status().last_error;
  ASSERT_NO_FATAL_FAILURE(sell(t1_->store(), 2));
  EXPECT_TRUE(eventually([&] { return t1_->status().pending[core::lane_sales] == 0; }))
      << "the reset branch did not take the terminal's sales";
  // HQ still gets them once the branch is back.
  branch_->set_uplink_enabled(true);
  EXPECT_TRUE(eventually(
      [&] { return branch_->status().online && branch_->status().pending[core::lane_sales] == 0; }));
}

TEST_F(Admin, BackupOverGrpcIsAuditedAndRefusesAUsedDirectory) {
  auto h = base(storage::node_role::hq, hq_id);
  char tmpl[] = "/tmp/possync-admin-XXXXXX";
  ASSERT_NE(::mkdtemp(tmpl), nullptr);
  const std::string dir = tmpl;
  h.in_memory = false;
  h.dir = dir + "/hq";
  hq_ = start(h);
  ASSERT_TRUE(hq_);
  put_price(hq_->store(), 99);
  auto c = hq_admin();
  auto b = c.backup(dir + "/backup-1");
  ASSERT_TRUE(b) << b.err().to_string();
  EXPECT_EQ(b->node, hq_id);
  EXPECT_GT(b->files, 0u);
  EXPECT_GT(b->bytes, 0u);
  auto again = c.backup(dir + "/backup-1");
  ASSERT_FALSE(again);
  EXPECT_EQ(again.err().code, errc::already_exists) << again.err().to_string();
  auto log = c.audit_log(5);
  ASSERT_TRUE(log);
  ASSERT_GE(log->size(), 2u);
  EXPECT_EQ((*log)[0].action, "backup");
  EXPECT_NE((*log)[0].result, "ok");
  EXPECT_EQ((*log)[1].action, "backup");
  EXPECT_EQ((*log)[1].result, "ok");
  hq_.reset();
  // The backup opens as a store holding what was written before it.
  auto db = storage::database::open(storage::db_options{dir + "/backup-1"});
  ASSERT_TRUE(db) << db.err().to_string();
  storage::store_options so;
  so.role = storage::node_role::hq;
  so.outbox = false;
  auto st = storage::node_store::open(*db, so);
  ASSERT_TRUE(st) << st.err().to_string();
  EXPECT_EQ(price_at(**st), 99);
  st->reset();
  db->reset();
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
}

} // namespace
} // namespace possync::node
