#include "possync/core/policy.hpp"

#include <algorithm>

#include <gtest/gtest.h>

#include "possync/v1/pos.pb.h"

namespace possync::core {
namespace {

constexpr node_id n1 = 0x11, n2 = 0x22, n3 = 0x33;

hlc_timestamp ts(uint64_t ms, node_id n, uint32_t logical = 0) { return hlc_timestamp{ms, logical, n}; }

version make_version(dot id, version_vector past, hlc_timestamp hlc, std::string body, bool hq = false,
                     bool tombstone = false) {
  version v;
  v.id = id;
  v.past = std::move(past);
  v.hlc = hlc;
  v.body = std::move(body);
  v.hq = hq;
  v.tombstone = tombstone;
  return v;
}

record make_record(std::vector<version> vs) {
  record r;
  r.key = {"t", "b1", "c", "id1"};
  std::sort(vs.begin(), vs.end(), [](const version& a, const version& b) { return a.id < b.id; });
  r.versions = std::move(vs);
  return r;
}

bool same_view(const resolved_view& a, const resolved_view& b) {
  return a.exists == b.exists && a.tombstone == b.tombstone && a.conflicted == b.conflicted &&
         a.siblings == b.siblings && a.body == b.body && a.hlc == b.hlc && a.fields == b.fields &&
         a.winner == b.winner;
}

record reversed(record r) {
  std::reverse(r.versions.begin(), r.versions.end());
  return r;
}

std::string product(const std::string& name, int64_t price, const std::string& label = "") {
  v1::Product p;
  p.set_name(name);
  p.set_price(price);
  p.set_shelf_label(label);
  return p.SerializeAsString();
}

v1::Product parse_product(const std::string& body) {
  v1::Product p;
  EXPECT_TRUE(p.ParseFromString(body));
  return p;
}

// -- names -------------------------------------------------------------------------

TEST(policy_names, round_trip) {
  for (auto p : {policy::immutable, policy::counter, policy::field_merge, policy::lww, policy::hq_wins,
                 policy::manual}) {
    auto parsed = parse_policy(to_string(p));
    ASSERT_TRUE(parsed);
    EXPECT_EQ(*parsed, p);
  }
  EXPECT_FALSE(parse_policy("LWW"));
  EXPECT_FALSE(parse_policy(""));
  EXPECT_STREQ(to_string(tie_rule::lww), "lww");
  EXPECT_STREQ(to_string(tie_rule::hq_wins), "hq_wins");
}

// -- whole-version policies ----------------------------------------------------------

TEST(resolve, empty_record_does_not_exist) {
  record r;
  for (auto p : {policy::immutable, policy::counter, policy::field_merge, policy::lww, policy::hq_wins,
                 policy::manual}) {
    auto v = resolve(r, p);
    EXPECT_FALSE(v.exists) << to_string(p);
    EXPECT_FALSE(v.conflicted);
    EXPECT_EQ(v.siblings, 0u);
    EXPECT_FALSE(detect_conflict(r, p));
  }
}

TEST(resolve, lww_highest_hlc_wins_in_any_order) {
  auto r = make_record({make_version({n1, 1}, {}, ts(100, n1), "a"), make_version({n2, 1}, {}, ts(200, n2), "b"),
                        make_version({n3, 1}, {}, ts(150, n3), "c")});
  auto v = resolve(r, policy::lww);
  EXPECT_TRUE(v.exists);
  EXPECT_FALSE(v.conflicted);
  EXPECT_EQ(v.body, "b");
  EXPECT_EQ(v.siblings, 3u);
  ASSERT_TRUE(v.winner);
  EXPECT_EQ(*v.winner, (dot{n2, 1}));
  EXPECT_EQ(v.hlc, ts(200, n2));
  EXPECT_TRUE(same_view(v, resolve(reversed(r), policy::lww)));
  auto c = detect_conflict(r, policy::lww);
  ASSERT_TRUE(c);
  EXPECT_EQ(c->rule, "lww");
}

TEST(resolve, lww_tie_broken_by_node) {
  auto r = make_record({make_version({n1, 1}, {}, ts(100, n1), "a"), make_version({n2, 1}, {}, ts(100, n2), "b")});
  EXPECT_EQ(resolve(r, policy::lww).body, "b");
}

TEST(resolve, lww_single_sibling_is_no_conflict) {
  auto r = make_record({make_version({n1, 1}, {}, ts(100, n1), "a")});
  EXPECT_FALSE(detect_conflict(r, policy::lww));
  EXPECT_FALSE(detect_conflict(r, policy::hq_wins));
  EXPECT_FALSE(detect_conflict(r, policy::immutable));
}

TEST(resolve, winning_tombstone_hides_record) {
  auto r = make_record({make_version({n1, 1}, {}, ts(100, n1), "a"),
                        make_version({n2, 1}, {}, ts(200, n2), "", false, true)});
  for (auto p : {policy::lww, policy::immutable, policy::manual, policy::hq_wins}) {
    auto v = resolve(r, p);
    EXPECT_FALSE(v.exists) << to_string(p);
    EXPECT_TRUE(v.tombstone);
    EXPECT_TRUE(v.body.empty());
    EXPECT_EQ(*v.winner, (dot{n2, 1}));
  }
  EXPECT_TRUE(resolve(r, policy::immutable).conflicted);
}

TEST(resolve, hq_wins_prefers_hq_over_later_edge) {
  auto r = make_record({make_version({n1, 1}, {}, ts(100, n1), "hq-old", true),
                        make_version({n2, 1}, {}, ts(300, n2), "edge-new"),
                        make_version({n3, 1}, {}, ts(200, n3), "hq-new", true)});
  auto v = resolve(r, policy::hq_wins);
  EXPECT_EQ(v.body, "hq-new");
  EXPECT_FALSE(v.conflicted);
  EXPECT_TRUE(same_view(v, resolve(reversed(r), policy::hq_wins)));
  auto c = detect_conflict(r, policy::hq_wins);
  ASSERT_TRUE(c);
  EXPECT_EQ(c->rule, "hq_wins");
}

TEST(resolve, hq_wins_without_hq_is_lww) {
  auto r = make_record({make_version({n1, 1}, {}, ts(100, n1), "a"), make_version({n2, 1}, {}, ts(300, n2), "b")});
  EXPECT_EQ(resolve(r, policy::hq_wins).body, "b");
}

TEST(resolve, immutable_identical_siblings_are_not_a_conflict) {
  auto r = make_record({make_version({n1, 1}, {}, ts(100, n1), "sale"), make_version({n2, 1}, {}, ts(200, n2), "sale")});
  auto v = resolve(r, policy::immutable);
  EXPECT_TRUE(v.exists);
  EXPECT_FALSE(v.conflicted);
  EXPECT_FALSE(detect_conflict(r, policy::immutable));
}

TEST(resolve, immutable_and_manual_different_bodies_conflict) {
  auto r = make_record({make_version({n1, 1}, {}, ts(100, n1), "x"), make_version({n2, 1}, {}, ts(200, n2), "y")});
  for (auto p : {policy::immutable, policy::manual}) {
    auto v = resolve(r, p);
    EXPECT_TRUE(v.conflicted) << to_string(p);
    EXPECT_EQ(v.body, "y");  // provisional winner: lww
    auto c = detect_conflict(r, p);
    ASSERT_TRUE(c);
    EXPECT_EQ(c->rule, "siblings kept");
    EXPECT_TRUE(c->fields.empty());
  }
}

// -- counter ---------------------------------------------------------------------------

pn_counter counter(std::vector<std::tuple<node_id, int64_t, int64_t>> es) {
  pn_counter c;
  for (auto [n, i, d] : es) c.entries[n] = {i, d};
  return c;
}

TEST(counter, value_and_merge) {
  auto a = counter({{n1, 10, 3}, {n2, 5, 0}});
  EXPECT_EQ(a.value(), 12);
  auto b = counter({{n1, 8, 4}, {n3, 0, 20}});
  a.merge(b);
  EXPECT_EQ(a, counter({{n1, 10, 4}, {n2, 5, 0}, {n3, 0, 20}}));
  EXPECT_EQ(a.value(), -9);  // negative stock allowed
  auto c = a;
  c.merge(a);
  EXPECT_EQ(c, a);
  EXPECT_EQ(pn_counter{}.value(), 0);
}

TEST(counter, encode_decode_round_trip_sorted) {
  auto c = counter({{n3, 1, 2}, {n1, 3, 4}});
  auto body = encode_counter(c);
  v1::StockCounter msg;
  ASSERT_TRUE(msg.ParseFromString(body));
  ASSERT_EQ(msg.entries_size(), 2);
  EXPECT_EQ(msg.entries(0).node(), n1);
  EXPECT_EQ(msg.entries(1).node(), n3);
  auto d = decode_counter(body);
  ASSERT_TRUE(d);
  EXPECT_EQ(*d, c);
  EXPECT_EQ(encode_counter(*d), body);
  auto empty = decode_counter("");
  ASSERT_TRUE(empty);
  EXPECT_TRUE(empty->entries.empty());
}

TEST(counter, decode_rejects_bad_bodies) {
  auto garbage = decode_counter("\xff\xff\xff");
  ASSERT_FALSE(garbage);
  EXPECT_EQ(garbage.err().code, errc::invalid_argument);

  v1::StockCounter zero;
  zero.add_entries()->set_inc(1);
  auto z = decode_counter(zero.SerializeAsString());
  ASSERT_FALSE(z);
  EXPECT_NE(z.err().message.find("node 0"), std::string::npos);

  v1::StockCounter neg;
  auto* e = neg.add_entries();
  e->set_node(n1);
  e->set_dec(-5);
  auto n = decode_counter(neg.SerializeAsString());
  ASSERT_FALSE(n);
  EXPECT_NE(n.err().message.find("negative"), std::string::npos);
}

TEST(counter, decode_repeated_node_keeps_max) {
  v1::StockCounter msg;
  auto* a = msg.add_entries();
  a->set_node(n1);
  a->set_inc(5);
  a->set_dec(1);
  auto* b = msg.add_entries();
  b->set_node(n1);
  b->set_inc(2);
  b->set_dec(7);
  auto d = decode_counter(msg.SerializeAsString());
  ASSERT_TRUE(d);
  EXPECT_EQ(*d, counter({{n1, 5, 7}}));
}

TEST(counter, decode_takes_entries_in_any_order) {
  // encode_counter writes ascending node ids; another writer may not. A node seen
  // again after others still keeps its per-field max.
  v1::StockCounter msg;
  auto add = [&](node_id n, int64_t inc, int64_t dec) {
    auto* e = msg.add_entries();
    e->set_node(n);
    e->set_inc(inc);
    e->set_dec(dec);
  };
  add(n3, 1, 2);
  add(n1, 3, 4);
  add(n2, 5, 6);
  add(n3, 0, 9);
  add(n1, 7, 0);
  auto d = decode_counter(msg.SerializeAsString());
  ASSERT_TRUE(d);
  EXPECT_EQ(*d, counter({{n1, 7, 4}, {n2, 5, 6}, {n3, 1, 9}}));
}

TEST(counter, counter_of_and_resolve_merge_siblings) {
  auto r = make_record({make_version({n1, 1}, {}, ts(100, n1), encode_counter(counter({{n1, 10, 2}}))),
                        make_version({n2, 1}, {}, ts(90, n2), encode_counter(counter({{n1, 8, 3}, {n2, 0, 4}}))),
                        make_version({n3, 1}, {}, ts(80, n3), "\xff garbage")});
  EXPECT_EQ(counter_of(r), counter({{n1, 10, 3}, {n2, 0, 4}}));
  auto v = resolve(r, policy::counter);
  EXPECT_TRUE(v.exists);
  EXPECT_FALSE(v.conflicted);
  EXPECT_FALSE(v.winner);
  EXPECT_EQ(v.hlc, ts(100, n1));
  EXPECT_EQ(*decode_counter(v.body), counter_of(r));
  EXPECT_FALSE(detect_conflict(r, policy::counter));
  EXPECT_TRUE(same_view(v, resolve(reversed(r), policy::counter)));
}

// Totals stay within counter_entry_max: a body beyond it does not decode (a forged
// entry is refused where it arrives), and an add that would pass it is refused
// instead of wrapping around.
TEST(counter, totals_are_bounded) {
  auto at_max = make_record(
      {make_version({n1, 1}, {}, ts(100, n1),
                    encode_counter(counter({{n1, counter_entry_max, 0}, {n2, 0, counter_entry_max}})))});
  EXPECT_TRUE(decode_counter(at_max.versions[0].body));
  EXPECT_FALSE(decode_counter(encode_counter(counter({{n1, counter_entry_max + 1, 0}}))));
  EXPECT_FALSE(decode_counter(encode_counter(counter({{n1, 0, INT64_MAX}}))));
  auto up = counter_add_body(at_max, n1, 1);
  ASSERT_FALSE(up);
  EXPECT_EQ(up.err().code, errc::out_of_range);
  EXPECT_FALSE(counter_add_body(at_max, n2, -1));
  EXPECT_FALSE(counter_add_body(record{}, n3, INT64_MIN));
  EXPECT_FALSE(counter_add_body(record{}, n3, INT64_MAX));
  EXPECT_TRUE(counter_add_body(at_max, n1, -5)); // the other total has room
  auto fill = counter_add_body(record{}, n3, -counter_entry_max);
  ASSERT_TRUE(fill);
  EXPECT_EQ(decode_counter(*fill)->value(), -counter_entry_max);
}

TEST(counter, add_body_changes_only_own_entry) {
  auto r = make_record({make_version({n1, 1}, {}, ts(100, n1), encode_counter(counter({{n1, 10, 2}, {n2, 1, 1}})))});
  auto up = decode_counter(*counter_add_body(r, n2, 5));
  ASSERT_TRUE(up);
  EXPECT_EQ(*up, counter({{n1, 10, 2}, {n2, 6, 1}}));
  auto down = decode_counter(*counter_add_body(r, n3, -4));
  ASSERT_TRUE(down);
  EXPECT_EQ(*down, counter({{n1, 10, 2}, {n2, 1, 1}, {n3, 0, 4}}));
  EXPECT_EQ(down->value(), 4);
  auto empty = decode_counter(*counter_add_body(record{}, n1, -3));
  ASSERT_TRUE(empty);
  EXPECT_EQ(empty->value(), -3);
}

// Branches and HQ fold concurrent counter writes into one version of their own, but
// never answer another folder's fold with a fold of their own (no endless exchange).
TEST(counter, fold_is_due_for_siblings_unless_a_folder_above_wrote_one) {
  auto body = encode_counter(counter({{n1, 1, 0}}));
  auto one = make_record({make_version({n1, 1}, {}, ts(100, n1), body)});
  EXPECT_FALSE(counter_fold_due(one, n3, false));
  EXPECT_FALSE(counter_fold_due(one, n3, true));

  auto two_registers = make_record(
      {make_version({n1, 1}, {}, ts(100, n1), body), make_version({n2, 1}, {}, ts(100, n2), body)});
  EXPECT_TRUE(counter_fold_due(two_registers, n3, false)); // a branch
  EXPECT_TRUE(counter_fold_due(two_registers, n3, true));  // HQ

  // A sibling written at HQ: a branch leaves it to HQ; HQ folds over its own or a smaller HQ's.
  auto with_hq = make_record({make_version({n1, 1}, {}, ts(100, n1), body),
                              make_version({n2, 1}, {}, ts(100, n2), body, /*hq=*/true)});
  EXPECT_FALSE(counter_fold_due(with_hq, n3, false));
  EXPECT_TRUE(counter_fold_due(with_hq, n2, true));
  EXPECT_TRUE(counter_fold_due(with_hq, n3, true));
  EXPECT_FALSE(counter_fold_due(with_hq, n1, true)); // n2 > n1: n2's fold comes next
}

// -- wire splitter ---------------------------------------------------------------------

TEST(split_fields, splits_product_by_field) {
  v1::Product p;
  p.set_sku("A1");
  p.set_price(1500);
  p.add_alt_barcodes("111");
  p.add_alt_barcodes("222");
  p.set_active(true);
  auto body = p.SerializeAsString();
  auto f = split_fields(body);
  ASSERT_TRUE(f) << f.err().to_string();
  EXPECT_EQ(f->size(), 4u);
  EXPECT_EQ(f->at(1), std::string("\x0a\x02" "A1", 4));
  EXPECT_EQ(f->at(11), std::string("\x5a\x03" "111" "\x5a\x03" "222", 10));
  EXPECT_EQ(join_fields(*f), body);
}

TEST(split_fields, all_wire_types_and_interleaved_repeats) {
  std::string body;
  body += std::string("\x08\x96\x01", 3);                           // 1: varint 150
  body += std::string("\x11\x01\x02\x03\x04\x05\x06\x07\x08", 9);   // 2: fixed64
  body += std::string("\x1d\x01\x02\x03\x04", 5);                   // 3: fixed32
  body += std::string("\x08\x01", 2);                               // 1 again
  body += std::string("\x22\x00", 2);                               // 4: empty bytes
  auto f = split_fields(body);
  ASSERT_TRUE(f) << f.err().to_string();
  EXPECT_EQ(f->at(1), std::string("\x08\x96\x01\x08\x01", 5));
  EXPECT_EQ(f->at(2).size(), 9u);
  EXPECT_EQ(f->at(3).size(), 5u);
  EXPECT_EQ(f->at(4), std::string("\x22\x00", 2));
  auto again = split_fields(join_fields(*f));
  ASSERT_TRUE(again);
  EXPECT_EQ(*again, *f);
}

TEST(split_fields, empty_body) {
  auto f = split_fields("");
  ASSERT_TRUE(f);
  EXPECT_TRUE(f->empty());
  EXPECT_EQ(join_fields({}), "");
}

TEST(split_fields, large_field_number) {
  // field 536870911 (max), varint 0
  std::string body = std::string("\xf8\xff\xff\xff\x0f\x00", 6);
  auto f = split_fields(body);
  ASSERT_TRUE(f) << f.err().to_string();
  EXPECT_EQ(f->count(536870911u), 1u);
}

void expect_malformed(const std::string& body, const std::string& needle) {
  auto f = split_fields(body);
  ASSERT_FALSE(f) << "accepted malformed input, expected: " << needle;
  EXPECT_EQ(f.err().code, errc::invalid_argument);
  EXPECT_NE(f.err().message.find(needle), std::string::npos) << f.err().message;
}

TEST(split_fields, rejects_malformed_wire_data) {
  expect_malformed(std::string("\x80", 1), "malformed field tag");
  expect_malformed(std::string("\x08", 1), "truncated varint");
  expect_malformed(std::string("\x08\x80\x80", 3), "truncated varint");
  expect_malformed(std::string("\x08\xff\xff\xff\xff\xff\xff\xff\xff\xff\x7f", 11), "truncated varint");
  expect_malformed(std::string("\x11\x01\x02", 3), "truncated");
  expect_malformed(std::string("\x1d\x01", 2), "truncated");
  expect_malformed(std::string("\x0a\x05" "ab", 4), "truncated");
  expect_malformed(std::string("\x0a", 1), "truncated length");
  expect_malformed(std::string("\x0a\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", 11), "truncated");
  expect_malformed(std::string("\x0b\x0c", 2), "groups");
  expect_malformed(std::string("\x0c", 1), "groups");
  expect_malformed(std::string("\x0e\x00", 2), "invalid wire type 6");
  expect_malformed(std::string("\x0f\x00", 2), "invalid wire type 7");
  expect_malformed(std::string("\x00\x00", 2), "invalid field number 0");
  expect_malformed(std::string("\x80\x80\x80\x80\x80\x01\x00", 7), "invalid field number");  // > 2^29-1
}

// -- stamps ----------------------------------------------------------------------------

TEST(stamp_fields, new_record_stamps_every_present_field) {
  resolved_view before;  // nothing read
  auto body = product("tea", 100);
  auto s = stamp_fields(before, body, {n1, 1}, ts(10, n1), false);
  ASSERT_TRUE(s) << s.err().to_string();
  ASSERT_EQ(s->size(), 2u);
  EXPECT_EQ(s->at(3), (field_stamp{{n1, 1}, ts(10, n1), false}));
  EXPECT_EQ(s->at(5), (field_stamp{{n1, 1}, ts(10, n1), false}));
}

TEST(stamp_fields, changed_cleared_kept) {
  auto r = make_record({make_version({n1, 1}, {}, ts(10, n1), product("tea", 100, "A"))});
  auto before = resolve(r, policy::field_merge);
  ASSERT_EQ(before.fields.size(), 3u);
  auto old_stamp = before.fields.at(3);
  // Change the price, clear the label, keep the name.
  auto s = stamp_fields(before, product("tea", 120), {n2, 1}, ts(20, n2), true);
  ASSERT_TRUE(s);
  field_stamp fresh{{n2, 1}, ts(20, n2), true};
  EXPECT_EQ(s->at(3), old_stamp);
  EXPECT_EQ(s->at(5), fresh);
  EXPECT_EQ(s->at(10), fresh);  // cleared
  EXPECT_EQ(s->size(), 3u);

  // A later write keeps the clear's stamp although the field is absent on both sides.
  before.body = product("tea", 120);
  before.fields = *s;
  auto t = stamp_fields(before, product("green tea", 120), {n3, 1}, ts(30, n3), false);
  ASSERT_TRUE(t);
  EXPECT_EQ(t->at(10), fresh);
  EXPECT_EQ(t->at(3), (field_stamp{{n3, 1}, ts(30, n3), false}));
}

TEST(stamp_fields, unchanged_unstamped_field_gets_no_entry) {
  resolved_view before;
  before.exists = true;
  before.body = product("tea", 100);
  auto s = stamp_fields(before, product("tea", 200), {n1, 2}, ts(5, n1), false);
  ASSERT_TRUE(s);
  EXPECT_EQ(s->count(3), 0u);
  EXPECT_EQ(s->count(5), 1u);
}

TEST(stamp_fields, rejects_malformed_bodies) {
  resolved_view before;
  auto s = stamp_fields(before, std::string("\x0a\x05", 2), {n1, 1}, ts(1, n1), false);
  ASSERT_FALSE(s);
  EXPECT_NE(s.err().message.find("new body"), std::string::npos);
  before.exists = true;
  before.body = std::string("\x0b", 1);
  auto t = stamp_fields(before, product("x", 1), {n1, 1}, ts(1, n1), false);
  ASSERT_FALSE(t);
  EXPECT_NE(t.err().message.find("before"), std::string::npos);
}

// -- field_merge -------------------------------------------------------------------------

// Writes `body` over `r` as `writer` (whole context), with stamps, like a node would.
void fm_write(record& r, node_id writer, hlc_timestamp hlc, bool hq, const std::string& body,
              tie_rule tie = tie_rule::lww, std::optional<record> read_from = std::nullopt) {
  const record& seen = read_from ? *read_from : r;
  auto before = resolve(seen, policy::field_merge, tie);
  write_spec spec;
  spec.writer = writer;
  spec.hlc = hlc;
  spec.hq = hq;
  spec.body = body;
  spec.context = seen.context();
  const version& v = apply_local_write(r, spec);
  auto stamps = stamp_fields(before, body, v.id, v.hlc, hq);
  ASSERT_TRUE(stamps);
  dot id = v.id;
  for (auto& s : r.versions)
    if (s.id == id) s.fields = *stamps;
}

record fm_base() {
  record r;
  r.key = {"t", "", "product", "p1"};
  fm_write(r, n1, ts(10, n1), true, product("tea", 100, "shelf A"));
  return r;
}

TEST(field_merge, concurrent_edits_to_different_fields_both_survive) {
  auto base = fm_base();
  auto a = base, b = base;
  fm_write(a, n2, ts(20, n2), true, product("tea", 150, "shelf A"));   // HQ: price
  fm_write(b, n3, ts(30, n3), false, product("tea", 100, "shelf B"));  // branch: label
  auto m1 = a, m2 = b;
  merge_into(m1, b);
  merge_into(m2, a);
  ASSERT_EQ(m1.versions.size(), 2u);
  for (auto tie : {tie_rule::lww, tie_rule::hq_wins}) {
    auto v = resolve(m1, policy::field_merge, tie);
    EXPECT_TRUE(same_view(v, resolve(m2, policy::field_merge, tie)));
    EXPECT_TRUE(v.exists);
    EXPECT_FALSE(v.conflicted);
    EXPECT_FALSE(v.winner);
    auto p = parse_product(v.body);
    EXPECT_EQ(p.name(), "tea");
    EXPECT_EQ(p.price(), 150);
    EXPECT_EQ(p.shelf_label(), "shelf B");
    EXPECT_EQ(v.hlc, ts(30, n3));
    EXPECT_EQ(v.fields.at(5).origin, (dot{n2, 1}));
    EXPECT_EQ(v.fields.at(10).origin, (dot{n3, 1}));
    EXPECT_EQ(v.fields.at(3).origin, (dot{n1, 1}));
    EXPECT_FALSE(detect_conflict(m1, policy::field_merge, tie));
  }
}

TEST(field_merge, same_field_concurrent_uses_tie_rule) {
  auto base = fm_base();
  auto a = base, b = base;
  fm_write(a, n2, ts(20, n2), true, product("tea", 150, "shelf A"));   // HQ, older
  fm_write(b, n3, ts(30, n3), false, product("tea", 170, "shelf A"));  // edge, newer
  merge_into(a, b);
  auto lww = resolve(a, policy::field_merge, tie_rule::lww);
  EXPECT_TRUE(lww.conflicted);
  EXPECT_EQ(parse_product(lww.body).price(), 170);
  auto hq = resolve(a, policy::field_merge, tie_rule::hq_wins);
  EXPECT_TRUE(hq.conflicted);
  EXPECT_EQ(parse_product(hq.body).price(), 150);
  EXPECT_EQ(hq.hlc, ts(20, n2));  // max over winning stamps

  auto c = detect_conflict(a, policy::field_merge, tie_rule::hq_wins);
  ASSERT_TRUE(c);
  EXPECT_EQ(c->rule, "field tie: hq_wins");
  EXPECT_EQ(c->fields, std::vector<uint32_t>{5});
  auto c2 = detect_conflict(a, policy::field_merge, tie_rule::lww);
  ASSERT_TRUE(c2);
  EXPECT_EQ(c2->rule, "field tie: lww");

  // A later write that saw both settles it.
  fm_write(a, n1, ts(40, n1), false, product("tea", 160, "shelf A"));
  EXPECT_EQ(a.versions.size(), 1u);
  EXPECT_FALSE(resolve(a, policy::field_merge).conflicted);
}

TEST(field_merge, clear_beats_older_concurrent_value) {
  auto base = fm_base();
  auto a = base, b = base;
  fm_write(a, n2, ts(20, n2), false, product("tea", 100));             // clears label
  fm_write(b, n3, ts(30, n3), false, product("black tea", 100, "shelf A"));  // edits name
  merge_into(a, b);
  auto v = resolve(a, policy::field_merge);
  EXPECT_FALSE(v.conflicted);
  auto p = parse_product(v.body);
  EXPECT_EQ(p.shelf_label(), "");
  EXPECT_EQ(p.name(), "black tea");
  EXPECT_EQ(v.fields.at(10).origin, (dot{n2, 1}));
}

TEST(field_merge, stale_writer_with_unchanged_field_does_not_undo_newer_value) {
  // n3 edits the label concurrently with n2's price change and keeps the old price:
  // its price stamp is the base write's, which n2's past covers, so n2's price wins
  // without a conflict.
  auto r = fm_base();
  fm_write(r, n2, ts(20, n2), false, product("tea", 130, "shelf A"));
  auto stale = fm_base();
  fm_write(stale, n3, ts(25, n3), false, product("tea", 100, "shelf C"));
  merge_into(r, stale);
  auto v = resolve(r, policy::field_merge);
  EXPECT_FALSE(v.conflicted);
  EXPECT_EQ(parse_product(v.body).price(), 130);
  EXPECT_EQ(parse_product(v.body).shelf_label(), "shelf C");
}

TEST(field_merge, unstamped_sibling_uses_own_dot) {
  auto r = make_record({make_version({n1, 1}, {}, ts(10, n1), product("a", 1)),
                        make_version({n2, 1}, {}, ts(20, n2), product("b", 1))});
  auto v = resolve(r, policy::field_merge);
  EXPECT_TRUE(v.conflicted);  // name and price both set concurrently
  EXPECT_EQ(parse_product(v.body).name(), "b");
  EXPECT_EQ(v.fields.at(3).origin, (dot{n2, 1}));
  auto c = detect_conflict(r, policy::field_merge);
  ASSERT_TRUE(c);
  EXPECT_EQ(c->fields, (std::vector<uint32_t>{3, 5}));
  EXPECT_TRUE(same_view(v, resolve(reversed(r), policy::field_merge)));
}

TEST(field_merge, tombstones) {
  auto all = make_record({make_version({n1, 1}, {}, ts(10, n1), "", false, true),
                          make_version({n2, 1}, {}, ts(20, n2), "", false, true)});
  auto v = resolve(all, policy::field_merge);
  EXPECT_FALSE(v.exists);
  EXPECT_TRUE(v.tombstone);
  EXPECT_EQ(*v.winner, (dot{n2, 1}));
  EXPECT_FALSE(detect_conflict(all, policy::field_merge));

  // A concurrent edit survives a delete, even a later one.
  auto mixed = make_record({make_version({n1, 1}, {}, ts(10, n1), product("kept", 5)),
                            make_version({n2, 1}, {}, ts(20, n2), "", false, true)});
  auto m = resolve(mixed, policy::field_merge);
  EXPECT_TRUE(m.exists);
  EXPECT_FALSE(m.tombstone);
  EXPECT_EQ(parse_product(m.body).name(), "kept");
  EXPECT_EQ(m.siblings, 2u);
}

TEST(field_merge, single_version_reads_back_its_body) {
  auto r = fm_base();
  auto v = resolve(r, policy::field_merge);
  EXPECT_EQ(v.body, product("tea", 100, "shelf A"));
  EXPECT_EQ(*v.winner, (dot{n1, 1}));
  EXPECT_EQ(v.hlc, ts(10, n1));
}

TEST(field_merge, unparsable_sibling_contributes_nothing) {
  auto r = make_record({make_version({n1, 1}, {}, ts(10, n1), product("a", 1)),
                        make_version({n2, 1}, {}, ts(20, n2), std::string("\x0b", 1))});
  auto v = resolve(r, policy::field_merge);
  EXPECT_EQ(parse_product(v.body).name(), "a");
  EXPECT_FALSE(v.conflicted);
}

TEST(field_merge, inconsistent_stamps_still_pick_deterministically) {
  // Each sibling's past covers the other's stamp origin: both candidates would drop.
  version a = make_version({n1, 5}, version_vector({{n2, 1}}), ts(10, n1), product("a", 0));
  a.fields[3] = field_stamp{{n1, 1}, ts(1, n1), false};
  version b = make_version({n2, 5}, version_vector({{n1, 1}}), ts(20, n2), product("b", 0));
  b.fields[3] = field_stamp{{n2, 1}, ts(2, n2), false};
  auto r = make_record({a, b});
  auto v = resolve(r, policy::field_merge);
  EXPECT_EQ(parse_product(v.body).name(), "b");
  EXPECT_TRUE(v.conflicted);
  EXPECT_TRUE(same_view(v, resolve(reversed(r), policy::field_merge)));
}

} // namespace
} // namespace possync::core
