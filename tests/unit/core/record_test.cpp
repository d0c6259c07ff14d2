#include "possync/core/record.hpp"

#include <gtest/gtest.h>

#include "possync/core/proto_convert.hpp"

namespace possync::core {
namespace {

constexpr node_id A = 0xA, B = 0xB, C = 0xC;

write_spec spec(node_id writer, std::string body, std::optional<version_vector> ctx = std::nullopt) {
  write_spec s;
  s.writer = writer;
  s.hlc = hlc_timestamp{1000, 0, writer};
  s.context = std::move(ctx);
  s.body = std::move(body);
  return s;
}

version make(dot id, version_vector past, std::string body = "x") {
  version v;
  v.id = id;
  v.past = std::move(past);
  v.hlc = hlc_timestamp{100, 0, id.node};
  v.body = std::move(body);
  return v;
}

TEST(record_test, key_order_and_to_string) {
  record_key a{"t", "", "product", "1"};
  record_key b{"t", "", "product", "2"};
  record_key c{"t", "b1", "product", "0"};
  record_key d{"u", "", "a", "0"};
  EXPECT_LT(a, b);
  EXPECT_LT(b, c);
  EXPECT_LT(c, d);
  EXPECT_FALSE(a < a);
  EXPECT_LT((record_key{"t", "", "a", "9"}), (record_key{"t", "", "b", "0"}));
  EXPECT_EQ(c.to_string(), "t/b1/product/0");
  EXPECT_EQ(a.to_string(), "t//product/1");
  EXPECT_EQ(a, (record_key{"t", "", "product", "1"}));
  EXPECT_NE(a, b);
}

TEST(record_test, history_and_context) {
  version v = make({A, 3}, version_vector({{B, 2}}));
  EXPECT_EQ(v.history(), version_vector({{A, 3}, {B, 2}}));
  record r;
  EXPECT_TRUE(r.empty());
  EXPECT_TRUE(r.context().empty());
  r.versions = {v, make({C, 1}, version_vector({{A, 1}, {B, 5}}))};
  EXPECT_EQ(r.context(), version_vector({{A, 3}, {B, 5}, {C, 1}}));
}

TEST(record_test, version_equality_covers_every_field) {
  version a = make({A, 1}, {});
  version b = a;
  EXPECT_EQ(a, b);
  b.tombstone = true;
  EXPECT_NE(a, b);
  b = a;
  b.hq = true;
  EXPECT_NE(a, b);
  b = a;
  b.hlc.logical = 9;
  EXPECT_NE(a, b);
  b = a;
  b.fields[3] = field_stamp{{A, 1}, {}, false};
  EXPECT_NE(a, b);
  b = a;
  b.past.raise(B, 1);
  EXPECT_NE(a, b);
}

TEST(record_test, local_write_on_empty_record) {
  record r;
  const version& v = apply_local_write(r, spec(A, "hello"));
  EXPECT_EQ(v.id, (dot{A, 1}));
  EXPECT_TRUE(v.past.empty());
  EXPECT_EQ(v.body, "hello");
  EXPECT_EQ(v.hlc, (hlc_timestamp{1000, 0, A}));
  ASSERT_EQ(r.versions.size(), 1u);
  EXPECT_EQ(&v, &r.versions[0]);
}

TEST(record_test, local_write_with_full_context_replaces) {
  record r;
  apply_local_write(r, spec(A, "1"));
  const version& v = apply_local_write(r, spec(A, "2"));
  EXPECT_EQ(v.id, (dot{A, 2}));
  EXPECT_EQ(v.past, version_vector({{A, 1}}));
  ASSERT_EQ(r.versions.size(), 1u);
  EXPECT_EQ(r.versions[0].body, "2");
}

TEST(record_test, local_write_with_stale_context_keeps_siblings) {
  record r;
  apply_local_write(r, spec(A, "1"));
  version_vector stale = r.context(); // {A:1}
  apply_local_write(r, spec(A, "2"));
  const version& v = apply_local_write(r, spec(B, "b", stale));
  EXPECT_EQ(v.id, (dot{B, 1}));
  EXPECT_EQ(v.past, stale);
  ASSERT_EQ(r.versions.size(), 2u);
  EXPECT_EQ(r.versions[0].id, (dot{A, 2}));
  EXPECT_EQ(r.versions[1].id, (dot{B, 1}));
}

TEST(record_test, local_write_counter_considers_pasts) {
  // A's own version A:4 was replaced by B's version that had seen it: A's next dot is A:5.
  record r;
  r.versions = {make({B, 1}, version_vector({{A, 4}}))};
  const version& v = apply_local_write(r, spec(A, "z"));
  EXPECT_EQ(v.id, (dot{A, 5}));
  // An explicit context mentioning a higher counter of the writer still yields a fresh dot.
  record r2;
  const version& w = apply_local_write(r2, spec(A, "z", version_vector({{A, 7}})));
  EXPECT_EQ(w.id, (dot{A, 8}));
  EXPECT_FALSE(w.past.covers(w.id));
}

TEST(record_test, counter_floor_keeps_a_rebuilt_writer_off_its_old_dots) {
  // Upstream holds A's 5th write; A, rebuilt empty with a floor, writes the same record
  // without having downloaded it: its dot must be new to the upstream.
  record upstream;
  upstream.versions.push_back(make(dot{A, 5}, version_vector({{A, 4}})));
  record rebuilt;
  auto s = spec(A, "again");
  s.counter_floor = 1000;
  const version v = apply_local_write(rebuilt, s);
  EXPECT_EQ(v.id, (dot{A, 1001}));
  auto out = merge_into(upstream, rebuilt);
  EXPECT_TRUE(out.changed);
  EXPECT_EQ(upstream.versions.size(), 2u);  // concurrent siblings: nothing dropped
  // Below the state's own counters the floor changes nothing.
  s.counter_floor = 3;
  EXPECT_EQ(apply_local_write(upstream, s).id, (dot{A, 1002}));
}

TEST(record_test, tombstone_clears_body_and_flags_copied) {
  record r;
  apply_local_write(r, spec(A, "1"));
  write_spec s = spec(B, "ignored");
  s.tombstone = true;
  s.hq = true;
  s.hlc = hlc_timestamp{7, 1, B};
  const version& v = apply_local_write(r, s);
  EXPECT_TRUE(v.tombstone);
  EXPECT_TRUE(v.hq);
  EXPECT_TRUE(v.body.empty());
  EXPECT_EQ(v.hlc, (hlc_timestamp{7, 1, B}));
  ASSERT_EQ(r.versions.size(), 1u);
}

TEST(record_test, local_write_result_reference_and_sorted) {
  record r;
  r.versions = {make({A, 1}, {}), make({C, 1}, {})};
  const version& v = apply_local_write(r, spec(B, "b", version_vector()));
  ASSERT_EQ(r.versions.size(), 3u);
  EXPECT_EQ(&v, &r.versions[1]);
  EXPECT_EQ(v.id, (dot{B, 1}));
}

TEST(record_test, merge_adds_concurrent_versions) {
  record a, b;
  apply_local_write(a, spec(A, "a"));
  apply_local_write(b, spec(B, "b"));
  auto out = merge_into(a, b);
  EXPECT_TRUE(out.changed);
  EXPECT_EQ(out.added, 1u);
  EXPECT_EQ(out.obsoleted, 0u);
  EXPECT_FALSE(out.divergent_duplicate);
  ASSERT_EQ(a.versions.size(), 2u);
  EXPECT_EQ(a.versions[0].id, (dot{A, 1}));
  EXPECT_EQ(a.versions[1].id, (dot{B, 1}));
}

TEST(record_test, merge_obsoletes_covered_versions) {
  record a;
  apply_local_write(a, spec(A, "a"));
  record b = a;
  apply_local_write(b, spec(B, "b")); // saw A:1
  record target = a;
  auto out = merge_into(target, b);
  EXPECT_TRUE(out.changed);
  EXPECT_EQ(out.added, 1u);
  EXPECT_EQ(out.obsoleted, 1u);
  ASSERT_EQ(target.versions.size(), 1u);
  EXPECT_EQ(target.versions[0].id, (dot{B, 1}));
  // The other direction: the old version does not come back.
  auto back = merge_into(target, a);
  EXPECT_FALSE(back.changed);
  EXPECT_EQ(back.added, 0u);
  EXPECT_EQ(target.versions, b.versions);
}

TEST(record_test, merge_is_idempotent_and_noop_for_contained_state) {
  record a, b;
  apply_local_write(a, spec(A, "a"));
  apply_local_write(b, spec(B, "b"));
  merge_into(a, b);
  record before = a;
  auto out = merge_into(a, a);
  EXPECT_FALSE(out.changed);
  EXPECT_EQ(a.versions, before.versions);
  out = merge_into(a, b);
  EXPECT_FALSE(out.changed);
  out = merge_into(a, record{});
  EXPECT_FALSE(out.changed);
  record empty;
  out = merge_into(empty, a);
  EXPECT_TRUE(out.changed);
  EXPECT_EQ(out.added, 2u);
  EXPECT_EQ(empty.versions, a.versions);
}

TEST(record_test, merge_uses_exact_past_not_sibling_join) {
  // X = A:1 (past {}), Y = B:1 (past {A:1}), Z = C:1 (past {}). Y covers X. Z survives even
  // though nothing covers it. A version W whose dot is only covered by the join of
  // two siblings' histories but by no single past survives.
  version x = make({A, 1}, {});
  version y = make({B, 1}, version_vector({{A, 1}}));
  version z = make({C, 1}, {});
  record r;
  r.versions = {x, z};
  record in;
  in.versions = {y};
  merge_into(r, in);
  ASSERT_EQ(r.versions.size(), 2u);
  EXPECT_EQ(r.versions[0].id, (dot{B, 1}));
  EXPECT_EQ(r.versions[1].id, (dot{C, 1}));
}

TEST(record_test, merge_commutes_and_associates) {
  version x = make({A, 1}, {});
  version y = make({B, 1}, version_vector({{A, 1}}));
  version z = make({C, 1}, {});
  version w = make({A, 2}, version_vector({{A, 1}, {C, 1}}));
  std::vector<record> states(4);
  states[0].versions = {x};
  states[1].versions = {y};
  states[2].versions = {z};
  states[3].versions = {w};
  std::vector<int> order = {0, 1, 2, 3};
  std::string expected;
  do {
    record acc;
    for (int i : order)
      merge_into(acc, states[static_cast<size_t>(i)]);
    std::string enc = encode_record(acc);
    if (expected.empty()) expected = enc;
    EXPECT_EQ(enc, expected);
  } while (std::next_permutation(order.begin(), order.end()));
  // Associativity: (s0 + s1) + (s2 + s3) == s0 + (s1 + (s2 + s3)).
  record l = states[0], r23 = states[2];
  merge_into(l, states[1]);
  merge_into(r23, states[3]);
  merge_into(l, r23);
  EXPECT_EQ(encode_record(l), expected);
  ASSERT_EQ(l.versions.size(), 2u);
  EXPECT_EQ(l.versions[0].id, (dot{A, 2}));
  EXPECT_EQ(l.versions[1].id, (dot{B, 1}));
}

TEST(record_test, divergent_duplicate_is_deterministic) {
  version p = make({A, 1}, {}, "first");
  version q = make({A, 1}, {}, "second");
  record r1, r2, sp, sq;
  sp.versions = {p};
  sq.versions = {q};
  r1 = sp;
  auto o1 = merge_into(r1, sq);
  r2 = sq;
  auto o2 = merge_into(r2, sp);
  EXPECT_TRUE(o1.divergent_duplicate);
  EXPECT_TRUE(o2.divergent_duplicate);
  EXPECT_EQ(r1.versions, r2.versions);
  ASSERT_EQ(r1.versions.size(), 1u);
  // "second" encodes larger than "first" (body bytes compare 's' > 'f').
  EXPECT_EQ(r1.versions[0].body, "second");
  EXPECT_TRUE(o1.changed);
  EXPECT_FALSE(o2.changed);
  // Re-applying the loser changes nothing but is still reported.
  auto o3 = merge_into(r1, sp);
  EXPECT_FALSE(o3.changed);
  EXPECT_TRUE(o3.divergent_duplicate);
}

TEST(record_test, merge_sorts_unsorted_target) {
  record r;
  r.versions = {make({C, 1}, {}), make({A, 1}, {})};
  record in;
  in.versions = {make({B, 1}, {})};
  merge_into(r, in);
  ASSERT_EQ(r.versions.size(), 3u);
  EXPECT_EQ(r.versions[0].id, (dot{A, 1}));
  EXPECT_EQ(r.versions[2].id, (dot{C, 1}));
}

} // namespace
} // namespace possync::core
