// Scenarios from the dotted-version-vector literature (Preguiça et al., "Dotted Version
// Vectors: Logical Clocks for Optimistic Replication", 2010; Almeida et al., "Scalable and
// Accurate Causality Tracking for Eventually Consistent Stores", 2014), written against
// record.hpp only: what a reader sees, what a write replaces, and that every order of
// applying states converges.

#include "possync/core/record.hpp"

#include <algorithm>
#include <random>
#include <set>
#include <sstream>

#include <gtest/gtest.h>

#include "possync/core/proto_convert.hpp"

namespace possync::core {
namespace {

constexpr node_id S = 0x5E, A = 0xA, B = 0xB;

write_spec put(node_id writer, std::string body, std::optional<version_vector> ctx = std::nullopt) {
  write_spec s;
  s.writer = writer;
  s.hlc = hlc_timestamp{1000, 0, writer};
  s.context = std::move(ctx);
  s.body = std::move(body);
  return s;
}

write_spec del(node_id writer, std::optional<version_vector> ctx = std::nullopt) {
  write_spec s = put(writer, "", std::move(ctx));
  s.tombstone = true;
  return s;
}

std::multiset<std::string> bodies(const record& r) {
  std::multiset<std::string> out;
  for (const auto& v : r.versions)
    out.insert(v.tombstone ? "<deleted>" : v.body);
  return out;
}

// (1) A write based on a stale read is never silently dropped: it becomes a sibling,
// locally and after replication.
TEST(dvv_scenarios, stale_write_becomes_sibling) {
  record node;
  apply_local_write(node, put(S, "v1"));
  version_vector read_by_bob = node.context();         // Bob reads v1
  apply_local_write(node, put(S, "v2"));               // Alice reads v1 and writes v2
  apply_local_write(node, put(S, "bob", read_by_bob)); // Bob writes from his stale read
  EXPECT_EQ(bodies(node), (std::multiset<std::string>{"v2", "bob"}));

  // Same across nodes: the stale write is made on another replica and shipped back.
  record a, b;
  apply_local_write(a, put(A, "v1"));
  merge_into(b, a);                       // b reads v1
  apply_local_write(a, put(A, "v2"));     // a overwrites
  apply_local_write(b, put(B, "b-edit")); // b edits what it saw (v1)
  record a2 = a, b2 = b;
  merge_into(a2, b);
  merge_into(b2, a);
  EXPECT_EQ(bodies(a2), (std::multiset<std::string>{"v2", "b-edit"}));
  EXPECT_EQ(encode_record(a2), encode_record(b2));
}

// The naive scheme: a plain per-node version vector. The node keeps one vector per record
// and increments its own entry on every write; a version carries only that vector, and a
// per-node vector cannot tell which of the versions written through this node a client has
// seen, so every stored version carries the node's current vector (Riak before DVV). A
// version is kept unless its vector is dominated by (or equal to) the write context.
struct naive_node {
  node_id id;
  version_vector clock;
  struct naive_version {
    version_vector vv;
    std::string body;
  };
  std::vector<naive_version> siblings;

  // Returns the context handed back to the client.
  version_vector put(const version_vector& ctx, std::string body) {
    siblings.erase(std::remove_if(siblings.begin(), siblings.end(),
                                  [&](const naive_version& v) {
                                    auto o = v.vv.compare(ctx);
                                    return o == ordering::dominated || o == ordering::equal;
                                  }),
                   siblings.end());
    clock.merge(ctx);
    clock.raise(id, clock.get(id) + 1);
    for (auto& v : siblings)
      v.vv = clock;
    siblings.push_back({clock, std::move(body)});
    return clock;
  }
};

// (2) Two clients alternate read-modify-write through one node, each writing with the
// context returned by its own previous write (no re-read). With dots the siblings stay
// bounded; with a plain per-node vector they pile up.
TEST(dvv_scenarios, alternating_clients_through_one_node_stay_bounded) {
  constexpr int rounds = 100;
  record node;
  version_vector ctx1, ctx2;
  size_t max_siblings = 0;
  for (int i = 0; i < rounds; ++i) {
    ctx1 = apply_local_write(node, put(S, "c1-" + std::to_string(i), ctx1)).history();
    max_siblings = std::max(max_siblings, node.versions.size());
    ctx2 = apply_local_write(node, put(S, "c2-" + std::to_string(i), ctx2)).history();
    max_siblings = std::max(max_siblings, node.versions.size());
  }
  EXPECT_LE(max_siblings, 2u);
  EXPECT_EQ(bodies(node), (std::multiset<std::string>{"c1-99", "c2-99"}));

  naive_node naive{S, {}, {}};
  version_vector n1, n2;
  for (int i = 0; i < rounds; ++i) {
    n1 = naive.put(n1, "c1-" + std::to_string(i));
    n2 = naive.put(n2, "c2-" + std::to_string(i));
  }
  EXPECT_GT(naive.siblings.size(), 50u) << "plain per-node vectors should pile up siblings";
}

// (3) A write whose context covers all siblings replaces them.
TEST(dvv_scenarios, covering_write_replaces_all_siblings) {
  record r;
  apply_local_write(r, put(A, "a", version_vector()));
  apply_local_write(r, put(B, "b", version_vector()));
  apply_local_write(r, put(S, "s", version_vector()));
  ASSERT_EQ(r.versions.size(), 3u);
  const version& v = apply_local_write(r, put(A, "resolved", r.context()));
  ASSERT_EQ(r.versions.size(), 1u);
  EXPECT_EQ(r.versions[0].body, "resolved");
  EXPECT_EQ(v.past, version_vector({{A, 1}, {B, 1}, {S, 1}}));
  // The same happens on a replica that still holds the three siblings.
  record other;
  record three;
  apply_local_write(three, put(A, "a", version_vector()));
  apply_local_write(three, put(B, "b", version_vector()));
  apply_local_write(three, put(S, "s", version_vector()));
  merge_into(other, three);
  auto out = merge_into(other, r);
  EXPECT_EQ(out.obsoleted, 3u);
  EXPECT_EQ(encode_record(other), encode_record(r));
}

// (4) Delete then re-create: the stale tombstone state, applied again later, is a no-op.
TEST(dvv_scenarios, stale_tombstone_does_not_kill_recreated_record) {
  record r;
  apply_local_write(r, put(A, "v1"));
  apply_local_write(r, del(A));
  ASSERT_EQ(r.versions.size(), 1u);
  ASSERT_TRUE(r.versions[0].tombstone);
  record tombstone_state = r;
  apply_local_write(r, put(B, "again")); // re-created after reading the tombstone
  ASSERT_EQ(r.versions.size(), 1u);
  EXPECT_FALSE(r.versions[0].tombstone);

  auto out = merge_into(r, tombstone_state);
  EXPECT_FALSE(out.changed);
  ASSERT_EQ(r.versions.size(), 1u);
  EXPECT_FALSE(r.versions[0].tombstone);
  EXPECT_EQ(r.versions[0].body, "again");

  // A replica that still holds the tombstone learns of the re-creation.
  record late = tombstone_state;
  out = merge_into(late, r);
  EXPECT_TRUE(out.changed);
  EXPECT_EQ(encode_record(late), encode_record(r));
}

// (5) A node that lost its disk must take a new id: with the old id its fresh store would
// mint dots that already exist, and merge would treat its new writes as duplicates.
TEST(dvv_scenarios, node_that_lost_its_disk_needs_a_new_id) {
  seeded_random rng(2024);
  const node_id old_id = new_node_id(rng);
  record peer;
  {
    record disk;
    apply_local_write(disk, put(old_id, "w1"));
    merge_into(peer, disk); // peer holds old_id:1
    apply_local_write(disk, put(old_id, "w2"));
    apply_local_write(disk, put(old_id, "w3"));
    ASSERT_EQ(disk.versions[0].id, (dot{old_id, 3}));
  } // disk lost; the peer saw only w1

  std::set<dot> earlier = {dot{old_id, 1}, dot{old_id, 2}, dot{old_id, 3}};

  // Correct: a new id. Its dots are fresh and its write survives next to w1.
  const node_id new_id = new_node_id(rng);
  ASSERT_NE(new_id, old_id);
  record fresh;
  const version& v = apply_local_write(fresh, put(new_id, "after-restore"));
  EXPECT_EQ(earlier.count(v.id), 0u);
  record p1 = peer;
  auto out = merge_into(p1, fresh);
  EXPECT_TRUE(out.changed);
  EXPECT_FALSE(out.divergent_duplicate);
  EXPECT_EQ(bodies(p1), (std::multiset<std::string>{"w1", "after-restore"}));

  // Wrong: reusing the old id with an empty store mints old_id:1 again. Merge sees the
  // same dot with different content: one of the two writes disappears.
  record reused;
  const version& r = apply_local_write(reused, put(old_id, "after-restore"));
  EXPECT_EQ(r.id, (dot{old_id, 1}));
  EXPECT_EQ(earlier.count(r.id), 1u);
  record p2 = peer;
  out = merge_into(p2, reused);
  EXPECT_TRUE(out.divergent_duplicate);
  EXPECT_EQ(p2.versions.size(), 1u) << "two different writes collapsed into one";

  // And a peer that saw old_id:3 (whose past covers old_id:1) drops the new write outright.
  record p3;
  version w3;
  w3.id = dot{old_id, 3};
  w3.past = version_vector({{old_id, 2}});
  w3.body = "w3";
  p3.versions = {w3};
  out = merge_into(p3, reused);
  EXPECT_FALSE(out.changed) << "the reused-id write was silently treated as already seen";
  EXPECT_EQ(bodies(p3), (std::multiset<std::string>{"w3"}));
}

// (6) Property: random histories of 3-5 replicas writing with fresh or stale contexts and
// exchanging states; every state ever produced, applied to fresh replicas in random order
// with duplicates, gives byte-identical records, and merge is idempotent.
struct sim_replica {
  node_id id;
  record state;
  std::vector<version_vector> seen_contexts; // contexts this replica has read, for stale writes
};

std::string describe(const record& r) {
  std::ostringstream out;
  for (const auto& v : r.versions)
    out << v.id.to_string() << " past " << v.past.to_string() << "; ";
  return out.str();
}

// Returns "" on success, else what went wrong.
std::string run_case(uint64_t seed) {
  std::mt19937_64 gen(seed);
  seeded_random ids(seed);
  auto pick = [&](size_t n) { return static_cast<size_t>(gen() % n); };

  std::vector<sim_replica> replicas(3 + pick(3));
  for (auto& r : replicas) {
    r.id = new_node_id(ids);
    r.seen_contexts.push_back(version_vector());
  }
  std::vector<record> produced;
  std::vector<version> written;
  const size_t steps = 4 + pick(12);
  for (size_t step = 0; step < steps; ++step) {
    auto& self = replicas[pick(replicas.size())];
    if (gen() % 3 == 0) {
      const auto& from = replicas[pick(replicas.size())];
      merge_into(self.state, from.state);
    } else {
      write_spec s = put(self.id, "b" + std::to_string(step));
      s.hlc = hlc_timestamp{step, 0, self.id};
      if (gen() % 3 == 0) s.context = self.seen_contexts[pick(self.seen_contexts.size())];
      s.tombstone = gen() % 6 == 0;
      const version& v = apply_local_write(self.state, s);
      if (v.past.covers(v.id)) return "new version's past covers its own dot";
      written.push_back(v);
    }
    self.seen_contexts.push_back(self.state.context());
    produced.push_back(self.state);
  }

  std::string expected;
  for (int fresh = 0; fresh < 3; ++fresh) {
    std::vector<const record*> order;
    for (const auto& p : produced) {
      order.push_back(&p);
      if (gen() % 4 == 0) order.push_back(&p);
    }
    std::shuffle(order.begin(), order.end(), gen);
    record target;
    for (const record* p : order) {
      auto out = merge_into(target, *p);
      if (out.divergent_duplicate) return "unexpected divergent duplicate";
    }
    std::string enc = encode_record(target);
    if (fresh == 0) {
      expected = enc;
      for (const auto& p : produced)
        if (merge_into(target, p).changed) return "re-applying a contained state changed the record";
      if (merge_into(target, record(target)).changed) return "merging a record into itself changed it";
      if (encode_record(target) != expected) return "idempotence check altered the record";
      // Nothing vanished without a write that saw it.
      for (const auto& w : written) {
        bool present = std::any_of(target.versions.begin(), target.versions.end(),
                                   [&](const version& v) { return v == w; });
        bool superseded = std::any_of(written.begin(), written.end(),
                                      [&](const version& o) { return o.id != w.id && o.past.covers(w.id); });
        if (!present && !superseded) return "write " + w.id.to_string() + " vanished";
      }
    } else if (enc != expected) {
      auto a = decode_record(expected);
      return "replicas diverge: " + describe(*a) + " vs " + describe(target);
    }
  }
  // The replicas of the simulation, once they exchange everything, agree too.
  record all;
  for (const auto& r : replicas)
    merge_into(all, r.state);
  for (auto& r : replicas) {
    merge_into(r.state, all);
    if (encode_record(r.state) != encode_record(all)) return "simulated replicas diverge";
  }
  return "";
}

TEST(dvv_scenarios, random_histories_converge_in_any_order) {
  constexpr uint64_t base_seed = 0x5EED0000;
  constexpr int cases = 10'000;
  for (int i = 0; i < cases; ++i) {
    const uint64_t seed = base_seed + static_cast<uint64_t>(i);
    std::string failure = run_case(seed);
    ASSERT_EQ(failure, "") << "seed " << seed;
  }
}

} // namespace
} // namespace possync::core
