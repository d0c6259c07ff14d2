#include "possync/core/proto_convert.hpp"

#include <gtest/gtest.h>

namespace possync::core {
namespace {

constexpr node_id A = 0xA, B = 0xB;

version sample_version() {
  version v;
  v.id = dot{A, 3};
  v.past = version_vector({{A, 2}, {B, 7}});
  v.hlc = hlc_timestamp{1700000000123, 4, A};
  v.hq = true;
  v.body = std::string("\x08\x01\x12\x00", 4);
  v.fields[1] = field_stamp{{A, 3}, {1700000000123, 4, A}, true};
  v.fields[7] = field_stamp{{B, 7}, {1699999999000, 0, B}, false};
  return v;
}

record sample_record() {
  record r;
  r.key = record_key{"acme", "branch-1", "sale", "01ARZ3NDEKTSV4RRFFQ69G5FAV"};
  r.versions.push_back(sample_version());
  version t;
  t.id = dot{B, 8};
  t.past = version_vector({{B, 7}});
  t.tombstone = true;
  t.hlc = hlc_timestamp{5, 0, B};
  r.versions.push_back(t);
  return r;
}

TEST(proto_convert_test, hlc_and_key_round_trip) {
  hlc_timestamp h{123, 4, 0xFFFFFFFFFFFFFFFFULL};
  v1::Hlc ph;
  to_proto(h, &ph);
  EXPECT_EQ(ph.wall_ms(), 123u);
  EXPECT_EQ(ph.logical(), 4u);
  EXPECT_EQ(ph.node(), 0xFFFFFFFFFFFFFFFFULL);
  EXPECT_EQ(from_proto(ph), h);
  record_key k{"t", "s", "c", "i"};
  v1::RecordKey pk;
  to_proto(k, &pk);
  EXPECT_EQ(pk.collection(), "c");
  EXPECT_EQ(from_proto(pk), k);
}

TEST(proto_convert_test, version_round_trip) {
  version v = sample_version();
  v1::Version pv;
  to_proto(v, &pv);
  EXPECT_EQ(pv.dot().node(), A);
  EXPECT_EQ(pv.dot().counter(), 3u);
  ASSERT_EQ(pv.past().entries_size(), 2);
  EXPECT_EQ(pv.past().entries(1).node(), B);
  ASSERT_EQ(pv.fields_size(), 2);
  EXPECT_EQ(pv.fields(0).field(), 1u);
  EXPECT_EQ(pv.fields(1).field(), 7u);
  EXPECT_TRUE(pv.hq());
  auto back = from_proto(pv);
  ASSERT_TRUE(back) << back.err().to_string();
  EXPECT_EQ(*back, v);
}

TEST(proto_convert_test, record_round_trip_and_encoding) {
  record r = sample_record();
  std::string bytes = encode_record(r);
  auto back = decode_record(bytes);
  ASSERT_TRUE(back) << back.err().to_string();
  EXPECT_EQ(back->key, r.key);
  EXPECT_EQ(back->versions, r.versions);
  EXPECT_EQ(encode_record(*back), bytes);
  v1::Record pr;
  ASSERT_TRUE(pr.ParseFromString(bytes));
  EXPECT_EQ(pr.versions_size(), 2);
  EXPECT_TRUE(pr.versions(1).tombstone());
  auto empty = decode_record("");
  ASSERT_TRUE(empty);
  EXPECT_TRUE(empty->empty());
}

TEST(proto_convert_test, from_proto_sorts_versions_by_dot) {
  record r = sample_record();
  v1::Record pr;
  to_proto(r, &pr);
  pr.mutable_versions()->SwapElements(0, 1);
  auto back = from_proto(pr);
  ASSERT_TRUE(back);
  EXPECT_EQ(back->versions, r.versions);
}

void expect_invalid(const v1::Version& pv, const std::string& needle) {
  auto r = from_proto(pv);
  ASSERT_FALSE(r) << "accepted: " << pv.ShortDebugString();
  EXPECT_EQ(r.err().code, errc::invalid_argument);
  EXPECT_NE(r.err().message.find(needle), std::string::npos) << r.err().message;
}

TEST(proto_convert_test, version_validation) {
  v1::Version good;
  to_proto(sample_version(), &good);

  v1::Version pv = good;
  pv.clear_dot();
  expect_invalid(pv, "no dot");
  pv = good;
  pv.mutable_dot()->set_node(0);
  expect_invalid(pv, "node id 0");
  pv = good;
  pv.mutable_dot()->set_counter(0);
  expect_invalid(pv, "counter 0");
  pv = good;
  pv.mutable_past()->mutable_entries(0)->set_counter(0);
  expect_invalid(pv, "counter 0");
  pv = good;
  pv.mutable_past()->mutable_entries(0)->set_node(0);
  expect_invalid(pv, "node id 0");
  pv = good;
  pv.mutable_past()->mutable_entries()->SwapElements(0, 1);
  expect_invalid(pv, "not sorted");
  pv = good;
  pv.mutable_past()->mutable_entries(1)->set_node(A);
  expect_invalid(pv, "not sorted");
  pv = good;
  *pv.add_fields() = pv.fields(0);
  expect_invalid(pv, "twice");
}

// The packed form carries the same vector in one bytes field; readers take either
// form, and a version setting both, or a malformed packed vector, is refused.
TEST(proto_convert_test, packed_vectors_round_trip_and_are_validated) {
  const version v = sample_version();
  v1::Version packed, entries;
  to_proto(v, &packed, vectors::packed);
  to_proto(v, &entries);
  EXPECT_EQ(packed.past().entries_size(), 0);
  EXPECT_EQ(packed.past().packed(), v.past.encode());
  EXPECT_EQ(entries.past().entries_size(), 2);
  EXPECT_TRUE(entries.past().packed().empty());
  auto back = from_proto(packed);
  ASSERT_TRUE(back) << back.err().to_string();
  EXPECT_EQ(*back, v);

  // A 200-node past (a stock counter folded by a 200-register branch) is smaller packed.
  version wide = v;
  std::vector<version_vector::entry> es;
  for (node_id n = 1; n <= 200; ++n)
    es.emplace_back(0x7000000000000000ULL + n * 977, 3 + n % 50);
  wide.past = version_vector(std::move(es));
  v1::Version wp, we;
  to_proto(wide, &wp, vectors::packed);
  to_proto(wide, &we);
  EXPECT_LT(wp.ByteSizeLong() * 3, we.ByteSizeLong());
  auto wide_back = from_proto(wp);
  ASSERT_TRUE(wide_back);
  EXPECT_EQ(wide_back->past, wide.past);

  v1::Version both = packed;
  *both.mutable_past()->add_entries() = entries.past().entries(0);
  expect_invalid(both, "both entries and packed");
  v1::Version truncated = packed;
  truncated.mutable_past()->mutable_packed()->pop_back();
  expect_invalid(truncated, "version vector");
  v1::Version zero = packed;
  std::string z;
  put_varint(z, 1);
  put_varint(z, A);
  put_varint(z, 0);
  zero.mutable_past()->set_packed(z);
  expect_invalid(zero, "counter 0");

  // Stored and encoded records are written packed.
  v1::Record pr;
  ASSERT_TRUE(pr.ParseFromString(encode_record(sample_record())));
  EXPECT_EQ(pr.versions(0).past().entries_size(), 0);
  EXPECT_FALSE(pr.versions(0).past().packed().empty());
}

TEST(proto_convert_test, record_validation_names_the_version) {
  v1::Record pr;
  to_proto(sample_record(), &pr);
  pr.mutable_versions(1)->mutable_dot()->set_counter(0);
  auto r = from_proto(pr);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.err().code, errc::invalid_argument);
  EXPECT_NE(r.err().message.find("version 1"), std::string::npos) << r.err().message;
  EXPECT_FALSE(decode_record(pr.SerializeAsString()));
}

TEST(proto_convert_test, decode_record_rejects_garbage) {
  auto r = decode_record(std::string("\xff\xff\xff\xff", 4));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.err().code, errc::invalid_argument);
  EXPECT_NE(r.err().message.find("possync.v1.Record"), std::string::npos);
  std::string bytes = encode_record(sample_record());
  EXPECT_FALSE(decode_record(std::string_view(bytes).substr(0, bytes.size() - 3)));
}

} // namespace
} // namespace possync::core
