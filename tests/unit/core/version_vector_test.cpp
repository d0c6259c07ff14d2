#include "possync/core/version_vector.hpp"

#include <gtest/gtest.h>

namespace possync::core {
namespace {

using vv = version_vector;

TEST(version_vector_test, dot_basics) {
  dot a{1, 2}, b{1, 3}, c{2, 1};
  EXPECT_LT(a, b);
  EXPECT_LT(b, c);
  EXPECT_NE(a, b);
  EXPECT_EQ(a, (dot{1, 2}));
  EXPECT_TRUE(a.valid());
  EXPECT_FALSE((dot{0, 1}).valid());
  EXPECT_FALSE((dot{1, 0}).valid());
  EXPECT_EQ((dot{0xab, 12}).to_string(), "00000000000000ab:12");
}

TEST(version_vector_test, constructor_normalizes) {
  vv v({{3, 1}, {1, 5}, {3, 4}, {2, 0}, {1, 2}});
  ASSERT_EQ(v.size(), 2u);
  EXPECT_EQ(v.entries()[0], (vv::entry{1, 5}));
  EXPECT_EQ(v.entries()[1], (vv::entry{3, 4}));
  EXPECT_EQ(v.get(2), 0u);
  EXPECT_TRUE(vv().empty());
}

TEST(version_vector_test, get_raise_add_covers) {
  vv v;
  v.raise(5, 2);
  v.raise(1, 1);
  v.raise(5, 1); // never lowers
  v.raise(7, 0); // zero is not stored
  EXPECT_EQ(v, vv({{1, 1}, {5, 2}}));
  v.add(dot{3, 4});
  EXPECT_EQ(v.get(3), 4u);
  EXPECT_TRUE(v.covers(dot{5, 2}));
  EXPECT_TRUE(v.covers(dot{5, 1}));
  EXPECT_FALSE(v.covers(dot{5, 3}));
  EXPECT_FALSE(v.covers(dot{9, 1}));
  EXPECT_FALSE(v.covers(dot{5, 0})); // invalid dots are never covered
}

TEST(version_vector_test, merge_is_pointwise_max) {
  vv a({{1, 3}, {2, 1}});
  vv b({{2, 4}, {3, 1}});
  vv m = a;
  m.merge(b);
  EXPECT_EQ(m, vv({{1, 3}, {2, 4}, {3, 1}}));
  vv m2 = b;
  m2.merge(a);
  EXPECT_EQ(m, m2);
  vv m3 = m;
  m3.merge(m);
  EXPECT_EQ(m3, m);
  vv e;
  e.merge(a);
  EXPECT_EQ(e, a);
}

TEST(version_vector_test, compare) {
  vv a({{1, 2}, {2, 1}});
  EXPECT_EQ(a.compare(a), ordering::equal);
  EXPECT_EQ(vv().compare(vv()), ordering::equal);
  EXPECT_EQ(a.compare(vv({{1, 1}})), ordering::dominates);
  EXPECT_EQ(vv({{1, 1}}).compare(a), ordering::dominated);
  EXPECT_EQ(a.compare(vv()), ordering::dominates);
  EXPECT_EQ(vv().compare(a), ordering::dominated);
  EXPECT_EQ(a.compare(vv({{1, 2}, {2, 1}, {3, 1}})), ordering::dominated);
  EXPECT_EQ(a.compare(vv({{1, 3}})), ordering::concurrent);
  EXPECT_EQ(a.compare(vv({{3, 1}})), ordering::concurrent);
  EXPECT_EQ(a.compare(vv({{1, 1}, {2, 2}})), ordering::concurrent);
  EXPECT_STREQ(to_string(ordering::concurrent), "concurrent");
  EXPECT_STREQ(to_string(ordering::dominates), "dominates");
  EXPECT_STREQ(to_string(ordering::dominated), "dominated");
  EXPECT_STREQ(to_string(ordering::equal), "equal");
}

TEST(version_vector_test, to_string) {
  EXPECT_EQ(vv().to_string(), "{}");
  EXPECT_EQ(vv({{0xab, 3}, {0x1cd, 1}}).to_string(), "{00000000000000ab:3, 00000000000001cd:1}");
}

TEST(version_vector_test, varint_round_trip) {
  for (uint64_t v : {uint64_t{0}, uint64_t{1}, uint64_t{127}, uint64_t{128}, uint64_t{300}, uint64_t{1} << 35,
                     ~uint64_t{0}}) {
    std::string s;
    put_varint(s, v);
    size_t pos = 0;
    uint64_t out = 42;
    ASSERT_TRUE(get_varint(s, pos, out)) << v;
    EXPECT_EQ(out, v);
    EXPECT_EQ(pos, s.size());
  }
  std::string s;
  put_varint(s, 300);
  EXPECT_EQ(s, std::string("\xac\x02"));
  EXPECT_EQ(std::string(1, '\x7f'), [] {
    std::string t;
    put_varint(t, 127);
    return t;
  }());
}

TEST(version_vector_test, varint_rejects_truncation_and_overflow) {
  size_t pos = 0;
  uint64_t v = 0;
  EXPECT_FALSE(get_varint("", pos, v));
  pos = 0;
  EXPECT_FALSE(get_varint("\x80", pos, v));
  EXPECT_EQ(pos, 0u);
  std::string too_long(10, '\xff');
  too_long.push_back('\x01');
  pos = 0;
  EXPECT_FALSE(get_varint(too_long, pos, v));
  std::string overflow(9, '\xff');
  overflow.push_back('\x02'); // 10th byte carries more than the top bit
  pos = 0;
  EXPECT_FALSE(get_varint(overflow, pos, v));
}

TEST(version_vector_test, encode_decode_round_trip) {
  for (const vv& v :
       {vv(), vv({{1, 1}}), vv({{5, 300}, {0xFFFFFFFFFFFFFFFFULL, 1}, {0x8000000000000000ULL, 7}})}) {
    auto d = vv::decode(v.encode());
    ASSERT_TRUE(d) << d.err().to_string();
    EXPECT_EQ(*d, v);
  }
  // Layout: count, then (delta, counter) pairs.
  EXPECT_EQ(vv({{2, 1}, {5, 3}}).encode(), std::string("\x02\x02\x01\x03\x03", 5));
  EXPECT_EQ(vv().encode(), std::string("\x00", 1));
}

TEST(version_vector_test, decode_rejects_malformed) {
  auto bad = [](std::string bytes) {
    auto r = vv::decode(bytes);
    EXPECT_FALSE(r) << "accepted " << bytes.size() << " bytes";
    if (!r) {
      EXPECT_EQ(r.err().code, errc::invalid_argument);
    }
    return r ? std::string() : r.err().message;
  };
  bad(std::string());                      // no count
  bad(std::string("\x01", 1));             // truncated entry
  bad(std::string("\x01\x02", 2));         // truncated counter
  bad(std::string("\x01\x02\x01\x00", 4)); // trailing byte
  EXPECT_NE(bad(std::string("\x01\x02\x00", 3)).find("counter 0"), std::string::npos);
  bad(std::string("\x02\x02\x01\x00\x01", 5)); // second node not above first (delta 0)
  bad(std::string("\x01\x00\x01", 3));         // node 0 (delta 0 from start)
  bad(std::string("\x05\x01\x01", 3));         // count larger than content
  std::string wrap("\x02\x02\x01", 3);         // second node wraps past 2^64
  put_varint(wrap, ~uint64_t{0});
  wrap.push_back('\x01');
  bad(wrap);
}

} // namespace
} // namespace possync::core
