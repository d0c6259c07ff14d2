#include "possync/core/error.hpp"
#include "possync/core/ids.hpp"

#include <set>
#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace possync::core {
namespace {

// Returns the values of a scripted list, then zeros.
class scripted_random final : public random_source {
public:
  explicit scripted_random(std::vector<uint64_t> values) : values_(std::move(values)) {}
  uint64_t next_u64() override { return pos_ < values_.size() ? values_[pos_++] : 0; }

private:
  std::vector<uint64_t> values_;
  size_t pos_ = 0;
};

TEST(error_test, names_and_to_string) {
  EXPECT_STREQ(to_string(errc::ok), "ok");
  EXPECT_STREQ(to_string(errc::invalid_argument), "invalid_argument");
  EXPECT_STREQ(to_string(errc::failed_precondition), "failed_precondition");
  EXPECT_STREQ(to_string(errc::unauthenticated), "unauthenticated");
  EXPECT_STREQ(to_string(errc::data_loss), "data_loss");
  error e{errc::not_found, "record a/b/c/d"};
  EXPECT_TRUE(e);
  EXPECT_EQ(e.to_string(), "not_found: record a/b/c/d");
  EXPECT_FALSE(error{});
  EXPECT_EQ(static_cast<int>(errc::unauthenticated), 16);
}

TEST(error_test, result_holds_value_or_error) {
  result<int> ok = 7;
  ASSERT_TRUE(ok);
  EXPECT_EQ(*ok, 7);
  result<int> bad = error{errc::internal, "x"};
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.err().code, errc::internal);
}

TEST(ids_test, node_id_round_trip) {
  EXPECT_EQ(node_id_to_string(0xab), "00000000000000ab");
  EXPECT_EQ(node_id_to_string(0xFFFFFFFFFFFFFFFFULL), "ffffffffffffffff");
  EXPECT_EQ(parse_node_id("00000000000000ab"), node_id{0xab});
  EXPECT_EQ(parse_node_id("AB"), node_id{0xab});
  EXPECT_EQ(parse_node_id("1"), node_id{1});
  EXPECT_EQ(parse_node_id("ffffffffffffffff"), node_id{0xFFFFFFFFFFFFFFFFULL});
  for (node_id id : {node_id{1}, node_id{0x123456789abcdef0ULL}, node_id{~0ULL}})
    EXPECT_EQ(parse_node_id(node_id_to_string(id)), id);
}

TEST(ids_test, parse_node_id_rejects_bad_input) {
  EXPECT_FALSE(parse_node_id(""));
  EXPECT_FALSE(parse_node_id("0"));
  EXPECT_FALSE(parse_node_id("0000000000000000"));
  EXPECT_FALSE(parse_node_id("10000000000000000")); // 17 digits
  EXPECT_FALSE(parse_node_id("xyz"));
  EXPECT_FALSE(parse_node_id("12 3"));
  EXPECT_FALSE(parse_node_id("-1"));
  EXPECT_FALSE(parse_node_id("0x12"));
}

TEST(ids_test, seeded_random_is_splitmix64) {
  // Reference values of splitmix64 seeded with 0.
  seeded_random r(0);
  EXPECT_EQ(r.next_u64(), 0xe220a8397b1dcdafULL);
  EXPECT_EQ(r.next_u64(), 0x6e789e6aa1b965f4ULL);
  EXPECT_EQ(r.next_u64(), 0x06c45d188009454fULL);
  seeded_random a(42), b(42), c(43);
  uint64_t va = a.next_u64();
  EXPECT_EQ(va, b.next_u64());
  EXPECT_NE(va, c.next_u64());
}

TEST(ids_test, new_node_id_is_never_zero) {
  scripted_random r({0, 0, 5});
  EXPECT_EQ(new_node_id(r), 5u);
  seeded_random s(1);
  std::set<node_id> seen;
  for (int i = 0; i < 1000; ++i) {
    node_id id = new_node_id(s);
    EXPECT_NE(id, 0u);
    seen.insert(id);
  }
  EXPECT_EQ(seen.size(), 1000u);
}

TEST(ids_test, ulid_format_and_time) {
  seeded_random r(7);
  ulid_generator gen(r);
  const uint64_t t = 1700000000123ULL;
  std::string id = gen.next(t);
  ASSERT_EQ(id.size(), 26u);
  EXPECT_TRUE(is_ulid(id)) << id;
  EXPECT_EQ(ulid_time_ms(id), t);
  EXPECT_EQ(id.substr(0, 10), "01HF7YAT3V"); // 1700000000123 in Crockford base32
}

TEST(ids_test, ulid_known_encoding) {
  // Scripted random bits: hi (16 bits) = 0xFFFF, lo = all ones => 16 'Z'.
  scripted_random r({0xFFFF, ~0ULL});
  ulid_generator gen(r);
  EXPECT_EQ(gen.next(1), "0000000001ZZZZZZZZZZZZZZZZ");
  scripted_random r2({0, 1});
  ulid_generator gen2(r2);
  EXPECT_EQ(gen2.next((uint64_t{1} << 48) - 1), "7ZZZZZZZZZ0000000000000001");
}

TEST(ids_test, ulid_monotonic_within_same_ms_and_backward_clock) {
  seeded_random r(9);
  ulid_generator gen(r);
  std::string prev = gen.next(1000);
  for (int i = 0; i < 100; ++i) {
    std::string next = gen.next(1000);
    EXPECT_LT(prev, next);
    EXPECT_EQ(ulid_time_ms(next), 1000u);
    prev = next;
  }
  // Clock moves back: ids keep the last ms and keep sorting.
  std::string back = gen.next(500);
  EXPECT_LT(prev, back);
  EXPECT_EQ(ulid_time_ms(back), 1000u);
  // Clock moves forward: new time, fresh random part.
  std::string fwd = gen.next(2000);
  EXPECT_LT(back, fwd);
  EXPECT_EQ(ulid_time_ms(fwd), 2000u);
}

TEST(ids_test, ulid_increment_carries) {
  scripted_random r({0x0001, ~0ULL});
  ulid_generator gen(r);
  EXPECT_EQ(gen.next(1), "0000000001000ZZZZZZZZZZZZZ");
  EXPECT_EQ(gen.next(1), "00000000010010000000000000");
}

TEST(ids_test, is_ulid_rejects_malformed) {
  EXPECT_TRUE(is_ulid("01ARZ3NDEKTSV4RRFFQ69G5FAV"));
  EXPECT_FALSE(is_ulid("01arz3ndektsv4rrffq69g5fav")); // lower case
  EXPECT_FALSE(is_ulid("01ARZ3NDEKTSV4RRFFQ69G5FA"));  // 25 chars
  EXPECT_FALSE(is_ulid("01ARZ3NDEKTSV4RRFFQ69G5FAVX"));
  EXPECT_FALSE(is_ulid("81ARZ3NDEKTSV4RRFFQ69G5FAV")); // time overflows 48 bits
  EXPECT_FALSE(is_ulid("01ARZ3NDEKTSV4RRFFQ69G5FAI")); // I is not Crockford
  EXPECT_FALSE(is_ulid("01ARZ3NDEKTSV4RRFFQ69G5FAU")); // U is not Crockford
  EXPECT_FALSE(is_ulid(""));
  EXPECT_EQ(ulid_time_ms("01ARZ3NDEKTSV4RRFFQ69G5FAV"), 1469922850259ULL);
  EXPECT_EQ(ulid_time_ms("bad"), 0u);
}

} // namespace
} // namespace possync::core
