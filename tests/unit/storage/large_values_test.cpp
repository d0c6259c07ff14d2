// Large values (64 KiB and more) live in RocksDB blob files (database.cpp cf_options):
// a 5 MB report and its outbox entry round-trip through flushes, acks, reopen and the
// in-memory environment. Found by the W6 workload (possync sim --workload lanes): with
// the value inline, every outbox seek of an empty lane next to it decompressed the
// whole 5 MB block, which made a sale 40x slower, also long after the report was acked.

#include <string>

#include <gtest/gtest.h>

#include "test_util.hpp"

namespace possync::storage::test {
namespace {

std::string report(size_t bytes, char fill) {
  v1::Report r;
  r.set_kind("end_of_day");
  r.set_terminal_id("T1");
  std::string payload;
  payload.reserve(bytes);
  for (size_t i = 0; payload.size() < bytes; ++i)
    payload += std::string("{\"receipt\":") + std::to_string(i) + ",\"c\":\"" + fill + "\"},";
  r.set_payload(std::move(payload));
  return r.SerializeAsString();
}

core::record_key report_key(std::string id) { return core::record_key{"t", "b1", "report", std::move(id)}; }

void round_trip(const std::shared_ptr<database>& db, node_store& s) {
  const std::string body = report(5u << 20, 'x');
  const auto key = report_key("01HZZZZZZZZZZZZZZZZZZZZZZ1");
  ASSERT_TRUE(s.write({put_op{key, body}}));
  ASSERT_TRUE(s.write({put_op{core::record_key{"t", "", "product", "p1"}, product_body("n", "", 1)}}));
  ASSERT_FALSE(db->flush());
  auto w = s.outbox_window(core::lane_reports, 0, 10);
  ASSERT_TRUE(w);
  ASSERT_EQ(w->size(), 1u);
  ASSERT_EQ(w->front().rec.versions.size(), 1u);
  EXPECT_EQ(w->front().rec.versions.front().body, body);
  auto empty = s.outbox_window(core::lane_sales, 0, 10);
  ASSERT_TRUE(empty);
  EXPECT_TRUE(empty->empty());
  auto v = s.read(key);
  ASSERT_TRUE(v);
  ASSERT_TRUE(v->exists);
  EXPECT_EQ(v->body, body);
  ASSERT_FALSE(s.ack_outbox(core::lane_reports, w->front().seq));
  ASSERT_FALSE(db->flush());
  EXPECT_TRUE(s.outbox_window(core::lane_reports, 0, 10)->empty());
  EXPECT_EQ(s.pending()[core::lane_reports], 0u);
  EXPECT_EQ(s.read(key)->body, body);
}

TEST(large_values, five_mb_report_round_trips_on_disk_and_after_reopen) {
  temp_dir dir;
  const std::string body = report(5u << 20, 'x');
  {
    auto db = open_db(dir.str());
    auto s = open_store(db, 1);
    round_trip(db, *s);
  }
  auto db = open_db(dir.str());
  auto s = open_store(db, 1);
  auto v = s->read(report_key("01HZZZZZZZZZZZZZZZZZZZZZZ1"));
  ASSERT_TRUE(v);
  ASSERT_TRUE(v->exists);
  EXPECT_EQ(v->body, body);
  EXPECT_EQ(s->pending()[core::lane_reports], 0u);
}

TEST(large_values, five_mb_report_round_trips_in_memory) {
  auto db = open_mem_db();
  auto s = open_store(db, 1);
  round_trip(db, *s);
}

} // namespace
} // namespace possync::storage::test
