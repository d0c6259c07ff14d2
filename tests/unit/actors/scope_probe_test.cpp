// Tenant and branch isolation, probed: well over 1,000 attempts to write or read what
// a terminal or branch does not own — other tenants, other branches, tenant-wide
// collections only HQ writes, the registry and the revocation list — each refused
// with permission_denied, while allowed traffic in the same pushes and sessions goes
// through, and nothing refused reaches the store.

#include <gtest/gtest.h>

#include "session_harness.hpp"

namespace possync::actors::test {
namespace {

constexpr core::node_id hq_node = 0x4400000000000044ULL;

local_identity hq_identity() {
  return local_identity{hq_node, storage::node_role::hq, "t1", ""};
}

class ScopeProbe : public ::testing::Test {
protected:
  void SetUp() override {
    db = mem_db();
    ASSERT_TRUE(db);
    hq = open_store(db, 1, storage::node_role::hq, hq_node, time);
    ids = open_store(db, 2, storage::node_role::terminal, term_node, time);
    ASSERT_TRUE(hq && ids);
    register_device(*hq, term_node, storage::node_role::terminal, "b1");
    register_device(*hq, branch_node, storage::node_role::branch, "b1");
  }

  /// A record as a peer would push it: one version by `writer`.
  v1::Record forged(core::node_id writer, const std::string& tenant, const std::string& scope,
                    const std::string& collection, const std::string& id, std::string body) {
    core::record r;
    r.key = core::record_key{tenant, scope, collection, id};
    core::version v;
    v.id = core::dot{writer, ++counter};
    v.hlc = core::hlc_timestamp{static_cast<uint64_t>(epoch_ms), 0, writer};
    v.body = std::move(body);
    r.versions.push_back(std::move(v));
    v1::Record out;
    core::to_proto(r, &out);
    return out;
  }

  /// Admits `hello` at HQ on a fresh downlink machine; the machine (live) or the
  /// admission error.
  std::unique_ptr<downlink_machine> open_session(const v1::Hello& hello, std::optional<error>* refused) {
    auto d = std::make_unique<downlink_machine>(hq_identity(), test_options(), *hq, [this](const v1::Hello& h) {
      return admit(h, hq_identity(), *hq);
    });
    d->start(epoch_ms);
    v1::Frame f;
    *f.mutable_hello() = hello;
    d->on_frame(std::move(f), epoch_ms);
    auto out = written(*d);
    if (out.close) *refused = out.close;
    return d;
  }

  /// The machine's output, its frames written as a transport would report them (a
  /// downlink stops reading a peer whose frames pile up unwritten).
  static machine_output written(downlink_machine& d) {
    auto out = d.take_output();
    for (size_t i = 0; i < out.frames.size(); ++i)
      d.on_written(epoch_ms);
    return out;
  }

  /// Pushes `records` on a live session, runs its applies, and returns the Ack.
  v1::Ack push(downlink_machine& d, const std::vector<v1::Record>& records, uint64_t seq) {
    v1::Frame f;
    auto* p = f.mutable_push();
    p->set_lane(0);
    p->set_first_seq(seq);
    p->set_last_seq(seq);
    for (const auto& r : records)
      *p->add_records() = r;
    d.on_frame(std::move(f), epoch_ms);
    for (int round = 0; round < 10; ++round) {
      auto out = written(d);
      for (const auto& fr : out.frames)
        if (fr.has_ack()) return fr.ack();
      EXPECT_FALSE(out.close) << out.close->to_string();
      for (auto& a : out.applies)
        d.on_applied(a.token, run_apply(*hq, a), epoch_ms);
    }
    ADD_FAILURE() << "no Ack";
    return {};
  }

  bool at_hq(const std::string& tenant, const std::string& scope, const std::string& collection,
             const std::string& id) {
    auto r = hq->read(core::record_key{tenant, scope, collection, id});
    return r && r->exists;
  }

  std::shared_ptr<fake_time> time = std::make_shared<fake_time>();
  std::shared_ptr<storage::database> db;
  std::unique_ptr<storage::node_store> hq, ids;
  uint64_t counter = 0;
};

TEST_F(ScopeProbe, PushesOutsideTheTerminalsScopeAreRefusedRecordByRecord) {
  std::optional<error> refused;
  auto d = open_session(hello_of(term_node, v1::ROLE_TERMINAL, "b1"), &refused);
  ASSERT_FALSE(refused) << refused->to_string();
  size_t probes = 0, allowed = 0;
  std::vector<core::record_key> forbidden;
  for (int i = 0; i < 100; ++i) {
    const std::string n = std::to_string(i);
    std::vector<v1::Record> recs;
    std::vector<std::string> allowed_ids;
    // Allowed: a sale, a stock movement and a report of its own branch.
    allowed_ids.push_back(ids->new_id());
    recs.push_back(forged(term_node, "t1", "b1", "sale", allowed_ids.back(), sale_body("p0", 1000, epoch_ms)));
    // Probes.
    const struct {
      std::string tenant, scope, collection, id, body;
    } bad[] = {
        {"t2", "b1", "sale", ids->new_id(), sale_body("p0", 1000, epoch_ms)},          // another tenant
        {"t1", "b2", "sale", ids->new_id(), sale_body("p0", 1000, epoch_ms)},          // another branch
        {"t1", "b" + n + "x", "payment", ids->new_id(), ""},                           // another branch
        {"t1", "", "product", "p" + n, product_body("hijack" + n, 1)},                 // tenant-wide catalogue
        {"t1", "", "category", "c" + n, ""},                                           // HQ only
        {"t1", "b1", "price", "p" + n, ""},                                            // branch overrides only
        {"t1", "", "device", core::node_id_to_string(0x7100000000000000ULL + i), ""},  // the registry
        {"t1", "", "revocation", "tok" + n, ""},                                       // the revocation list
        {"t1", "b1", "setting", "s" + n, ""},                                          // branch settings
        {"other", "", "customer", "c" + n, ""},                                        // another tenant
    };
    for (const auto& b : bad) {
      recs.push_back(forged(term_node, b.tenant, b.scope, b.collection, b.id, b.body));
      forbidden.push_back(core::record_key{b.tenant, b.scope, b.collection, b.id});
    }
    auto ack = push(*d, recs, static_cast<uint64_t>(i + 1));
    ASSERT_EQ(ack.rejected_size(), static_cast<int>(std::size(bad))) << "push " << i;
    for (const auto& rej : ack.rejected()) {
      EXPECT_EQ(rej.code(), static_cast<uint32_t>(errc::permission_denied)) << rej.reason();
      EXPECT_NE(rej.reason().find("refused"), std::string::npos) << rej.reason();
      ++probes;
    }
    for (const auto& id : allowed_ids) {
      EXPECT_TRUE(at_hq("t1", "b1", "sale", id)) << id;
      ++allowed;
    }
  }
  for (const auto& k : forbidden)
    EXPECT_FALSE(at_hq(k.tenant, k.scope, k.collection, k.id)) << k.to_string();
  EXPECT_EQ(probes, 1000u);
  EXPECT_EQ(allowed, 100u);
  EXPECT_TRUE(d->wants_frame()) << "refusals end no session";
}

// Within its own branch, a register pushes states only a forger could make: another
// register's sale deleted or rewritten, its stock decrement dropped. Each is refused in
// the Ack (invalid_argument) and HQ keeps what it had; the session goes on.
TEST_F(ScopeProbe, ForgedStatesOfTheOwnBranchAreRefusedInTheAck) {
  std::optional<error> refused;
  auto d = open_session(hello_of(term_node, v1::ROLE_TERMINAL, "b1"), &refused);
  ASSERT_FALSE(refused) << refused->to_string();
  const core::node_id other = 0x7100000000000099ULL; // another register of b1
  const std::string sale_id = ids->new_id();
  v1::Record theirs = forged(other, "t1", "b1", "sale", sale_id, sale_body("p0", 1000, epoch_ms));
  ASSERT_EQ(push(*d, {theirs}, 1).rejected_size(), 0);
  ASSERT_TRUE(at_hq("t1", "b1", "sale", sale_id));
  // A delete and a rewrite, each by a version whose past covers the other register's.
  auto over = [&](bool tombstone, std::string body) {
    auto r = core::from_proto(theirs);
    EXPECT_TRUE(r);
    core::write_spec w;
    w.writer = term_node;
    w.hlc = core::hlc_timestamp{static_cast<uint64_t>(epoch_ms) + 1, 0, term_node};
    w.tombstone = tombstone;
    w.body = std::move(body);
    core::apply_local_write(*r, w);
    v1::Record out;
    core::to_proto(*r, &out);
    return out;
  };
  auto ack = push(*d, {over(true, ""), over(false, sale_body("p0", 1, epoch_ms))}, 2);
  ASSERT_EQ(ack.rejected_size(), 2);
  for (const auto& rej : ack.rejected()) {
    EXPECT_EQ(rej.code(), static_cast<uint32_t>(errc::invalid_argument)) << rej.reason();
    EXPECT_NE(rej.reason().find("from downstream refused"), std::string::npos) << rej.reason();
  }
  auto held = hq->get(core::record_key{"t1", "b1", "sale", sale_id});
  ASSERT_TRUE(held && held->has_value());
  ASSERT_EQ((*held)->versions.size(), 1u);
  EXPECT_EQ((*held)->versions[0].id.node, other);
  EXPECT_FALSE((*held)->versions[0].tombstone);
  EXPECT_TRUE(d->wants_frame()) << "refusals end no session";
}

TEST_F(ScopeProbe, PushesOutsideTheBranchsScopeAreRefused) {
  std::optional<error> refused;
  auto d = open_session(hello_of(branch_node, v1::ROLE_BRANCH, "b1"), &refused);
  ASSERT_FALSE(refused) << refused->to_string();
  size_t probes = 0;
  for (int i = 0; i < 50; ++i) {
    const std::string n = std::to_string(i);
    std::vector<v1::Record> recs;
    const std::string sale_id = ids->new_id();
    recs.push_back(forged(branch_node, "t1", "b1", "sale", sale_id, sale_body("p0", 1000, epoch_ms)));
    recs.push_back(forged(branch_node, "t1", "b1", "price", "p" + n, ""));                 // its override: allowed
    recs.push_back(forged(branch_node, "t1", "", "product", "p" + n, product_body("label" + n, 5)));  // allowed
    recs.push_back(forged(branch_node, "t2", "b1", "sale", ids->new_id(), sale_body("p0", 1, epoch_ms)));
    recs.push_back(forged(branch_node, "t1", "b2", "price", "p" + n, ""));
    recs.push_back(forged(branch_node, "t1", "b2", "stock_movement", ids->new_id(), ""));
    recs.push_back(forged(branch_node, "t1", "", "category", "c" + n, ""));
    recs.push_back(forged(branch_node, "t1", "", "device", core::node_id_to_string(0x7200000000000000ULL + i), ""));
    recs.push_back(forged(branch_node, "t1", "", "revocation", "tok" + n, ""));
    auto ack = push(*d, recs, static_cast<uint64_t>(i + 1));
    ASSERT_EQ(ack.rejected_size(), 6) << "push " << i;
    for (const auto& rej : ack.rejected()) {
      EXPECT_EQ(rej.code(), static_cast<uint32_t>(errc::permission_denied)) << rej.reason();
      ++probes;
    }
    EXPECT_TRUE(at_hq("t1", "b1", "sale", sale_id));
    EXPECT_TRUE(at_hq("t1", "b1", "price", "p" + n));
    EXPECT_TRUE(at_hq("t1", "", "product", "p" + n));
    EXPECT_FALSE(at_hq("t1", "b2", "price", "p" + n));
    EXPECT_FALSE(at_hq("t1", "", "category", "c" + n));
    EXPECT_FALSE(at_hq("t1", "", "revocation", "tok" + n));
  }
  EXPECT_EQ(probes, 300u);
}

TEST_F(ScopeProbe, FeedRequestsForOtherBranchesAndTenantsAreRefusedAtHello) {
  size_t probes = 0;
  auto expect_refused = [&](const v1::Hello& h, errc code, const std::string& what) {
    std::optional<error> refused;
    auto d = open_session(h, &refused);
    ASSERT_TRUE(refused) << what << " was admitted";
    EXPECT_EQ(refused->code, code) << what << ": " << refused->to_string();
    ++probes;
  };
  for (int i = 0; i < 60; ++i) {
    const std::string other = "b" + std::to_string(i + 2);
    for (auto [node, role] : {std::pair{term_node, v1::ROLE_TERMINAL}, std::pair{branch_node, v1::ROLE_BRANCH}}) {
      auto h = hello_of(node, role, "b1");
      h.add_scopes(other);
      expect_refused(h, errc::permission_denied, "scope " + other);

      h = hello_of(node, role, "b1");
      h.add_scopes("b1");
      h.add_scopes(other);
      expect_refused(h, errc::permission_denied, "scopes b1 + " + other);

      h = hello_of(node, role, "b1");
      h.set_upstream(hq_node);
      auto* c = h.add_cursors();
      c->set_tenant("t1");
      c->set_scope(other);
      c->set_lane(1);
      expect_refused(h, errc::permission_denied, "cursor of " + other);

      h = hello_of(node, role, "b1");
      h.set_upstream(hq_node);
      c = h.add_cursors();
      c->set_tenant("t" + std::to_string(i + 2));
      c->set_scope("");
      c->set_lane(2);
      expect_refused(h, errc::permission_denied, "cursor of another tenant");

      h = hello_of(node, role, "b1");
      h.set_tenant("t" + std::to_string(i + 2));
      expect_refused(h, errc::permission_denied, "another tenant's Hello");

      h = hello_of(node, role, other);  // registered in b1, claims another branch
      expect_refused(h, errc::permission_denied, "branch " + other);
    }
    auto h = hello_of(term_node, v1::ROLE_TERMINAL, "b1");
    h.add_collections(i % 2 ? "device" : "revocation");
    expect_refused(h, errc::permission_denied, "a terminal asking for the registry");
  }
  EXPECT_EQ(probes, 780u);
  // Allowed requests in the same test are admitted.
  for (auto [node, role] : {std::pair{term_node, v1::ROLE_TERMINAL}, std::pair{branch_node, v1::ROLE_BRANCH}}) {
    auto h = hello_of(node, role, "b1");
    h.add_scopes("");
    h.add_scopes("b1");
    h.set_upstream(hq_node);
    auto* c = h.add_cursors();
    c->set_tenant("t1");
    c->set_scope("b1");
    c->set_lane(1);
    std::optional<error> refused;
    auto d = open_session(h, &refused);
    EXPECT_FALSE(refused) << refused->to_string();
  }
}

TEST_F(ScopeProbe, FeedsServeOnlyTheTenantsSharedDataAndTheOwnBranch) {
  // HQ holds data of b1, b2, tenant t2 and the registry; a terminal of b1 downloads.
  auto term = open_store(db, 3, storage::node_role::terminal, term_node, time);
  ASSERT_TRUE(term);
  put_products(*hq, 0, 20);
  for (const auto& [tenant, scope] : {std::pair<std::string, std::string>{"t1", "b1"}, {"t1", "b2"}, {"t2", "b1"},
                                      {"t2", ""}}) {
    storage::put_op op;
    op.key = core::record_key{tenant, scope, scope.empty() ? "product" : "price", "p1"};
    op.body = "";
    if (scope.empty()) op.body = product_body("other tenant", 9);
    auto w = hq->write({op});
    ASSERT_TRUE(w) << w.err().to_string();
  }
  auto s = std::make_unique<session>(time, *term, *hq, terminal_id(), hq_identity());
  s->start();
  s->run();
  ASSERT_FALSE(s->closed());
  ASSERT_FALSE(s->changes_keys.empty());
  size_t b1_prices = 0;
  for (const auto& k : s->changes_keys) {
    EXPECT_EQ(k.rfind("t1/", 0), 0u) << k;
    EXPECT_EQ(k.find("/b2/"), std::string::npos) << k;
    EXPECT_EQ(k.find("/device/"), std::string::npos) << k;
    b1_prices += k == "t1/b1/price/p1";
  }
  EXPECT_EQ(b1_prices, 1u);
}

TEST_F(ScopeProbe, OversizedPushesAndTooManySiblingsAreRefusedWithResourceExhausted) {
  std::optional<error> refused;
  auto d = open_session(hello_of(term_node, v1::ROLE_TERMINAL, "b1"), &refused);
  ASSERT_FALSE(refused);
  // 65 siblings of one sale (the limit is 64): refused in the Ack, the session goes on.
  v1::Record many = forged(term_node, "t1", "b1", "sale", ids->new_id(), sale_body("p0", 1000, epoch_ms));
  for (int i = 0; i < 64; ++i) {
    auto* v = many.add_versions();
    *v = many.versions(0);
    v->mutable_dot()->set_counter(1000 + static_cast<uint64_t>(i));
  }
  const std::string ok_id = ids->new_id();
  auto ack = push(*d, {many, forged(term_node, "t1", "b1", "sale", ok_id, sale_body("p0", 1000, epoch_ms))}, 1);
  ASSERT_EQ(ack.rejected_size(), 1);
  EXPECT_EQ(ack.rejected(0).code(), static_cast<uint32_t>(errc::resource_exhausted)) << ack.rejected(0).reason();
  EXPECT_TRUE(at_hq("t1", "b1", "sale", ok_id));
  EXPECT_FALSE(at_hq("t1", "b1", "sale", many.key().id()));
  // A Push over max_push_records ends the session; nothing of it is applied.
  v1::Frame f;
  auto* p = f.mutable_push();
  p->set_lane(0);
  p->set_first_seq(2);
  p->set_last_seq(2);
  std::vector<std::string> big_ids;
  for (uint32_t i = 0; i <= test_options().max_push_records; ++i) {
    big_ids.push_back(ids->new_id());
    *p->add_records() = forged(term_node, "t1", "b1", "sale", big_ids.back(), sale_body("p0", 1000, epoch_ms));
  }
  d->on_frame(std::move(f), epoch_ms);
  auto out = d->take_output();
  ASSERT_TRUE(out.close);
  EXPECT_EQ(out.close->code, errc::resource_exhausted) << out.close->to_string();
  EXPECT_TRUE(out.applies.empty());
  EXPECT_FALSE(at_hq("t1", "b1", "sale", big_ids.front()));
}

} // namespace
} // namespace possync::actors::test
