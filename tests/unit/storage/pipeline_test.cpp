// The pipelined committer: many requests in flight over the same records, groups
// prepared on top of the group being written, write failures while groups are in
// flight, and counters that survive a reopen.

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <mutex>
#include <thread>

#include "test_util.hpp"

namespace possync::storage::test {
namespace {

/// Counts completions and waits for them (bounded: a hang aborts the run).
struct completions {
  std::mutex mu;
  std::condition_variable cv;
  size_t done = 0;
  void add() {
    std::lock_guard<std::mutex> lk(mu);
    ++done;
    cv.notify_all();
  }
  void wait_for(size_t n) {
    std::unique_lock<std::mutex> lk(mu);
    if (!cv.wait_for(lk, std::chrono::seconds(120), [&] { return done >= n; })) {
      ADD_FAILURE() << "only " << done << " of " << n << " completions came";
      std::abort();
    }
  }
};

size_t outbox_size(node_store& s, uint8_t lane) {
  auto w = s.outbox_window(lane, 0, 1u << 20);
  EXPECT_TRUE(w);
  return w ? w->size() : 0;
}

// Every sale takes from the same two counters: each group reads what the group in
// flight wrote, so no decrement is lost and the feed/outbox counters stay exact.
TEST(pipelined_committer, hot_counters_exact_under_many_in_flight_sales) {
  temp_dir dir;
  constexpr int threads = 4, per_thread = 150;
  std::vector<std::string> ids;
  {
    db_options o;
    o.path = dir.str();
    o.sync = false;  // many small groups, fast
    o.write_buffer_bytes = 1u << 20;
    auto db = database::open(o);
    ASSERT_TRUE(db);
    auto s = open_store(*db);
    completions c;
    std::atomic<int> failed{0};
    std::vector<std::thread> ts;
    std::mutex ids_mu;
    for (int t = 0; t < threads; ++t)
      ts.emplace_back([&] {
        for (int i = 0; i < per_thread; ++i) {
          auto k = sale_key(*s);
          {
            std::lock_guard<std::mutex> lk(ids_mu);
            ids.push_back(k.id);
          }
          s->record_sale_async(k, sale_body({{"hot1", 1000}, {"hot2", 2000}}, 1000 + i),
                               [&](result<commit_result> r) {
                                 if (!r) ++failed;
                                 c.add();
                               });
        }
      });
    for (auto& t : ts) t.join();
    c.wait_for(threads * per_thread);
    EXPECT_EQ(failed.load(), 0);
    EXPECT_EQ(*s->stock_level("t1", "b1", "hot1"), -1000 * threads * per_thread);
    EXPECT_EQ(*s->stock_level("t1", "b1", "hot2"), -2000 * threads * per_thread);
    EXPECT_EQ(s->pending()[core::lane_sales], outbox_size(*s, core::lane_sales));
    EXPECT_EQ(s->pending()[core::lane_stock], outbox_size(*s, core::lane_stock));
    EXPECT_EQ(outbox_size(*s, core::lane_sales), static_cast<size_t>(threads * per_thread));
    EXPECT_EQ(outbox_size(*s, core::lane_stock), 2u);  // one entry per counter: its newest state
    EXPECT_EQ(s->lane_head(core::lane_sales), static_cast<uint64_t>(threads * per_thread));
    EXPECT_GT((*db)->commits(), (*db)->commit_groups());  // requests did share groups
  }
  // The counters kept in meta are the ones the durable groups left.
  auto db = open_db(dir.str());
  auto s = open_store(db);
  EXPECT_EQ(s->lane_head(core::lane_sales), static_cast<uint64_t>(threads * per_thread));
  EXPECT_EQ(s->pending()[core::lane_stock], 2u);
  EXPECT_EQ(*s->stock_level("t1", "b1", "hot1"), -1000 * threads * per_thread);
  for (const auto& id : ids) ASSERT_TRUE(s->get(core::record_key{"t1", "b1", "sale", id})->has_value()) << id;
  // The next sale continues the sequence.
  auto r = s->record_sale(sale_key(*s), sale_body({{"hot1", 1000}}, 5));
  ASSERT_TRUE(r);
  EXPECT_EQ(s->lane_head(core::lane_sales), static_cast<uint64_t>(threads * per_thread + 1));
}

// A write error while groups are in flight: every sale is either acknowledged and
// stored, or failed and absent; counters follow exactly what was acknowledged.
TEST(pipelined_committer, io_error_mid_stream_acks_only_what_is_stored) {
  temp_dir dir;
  auto faults = std::make_shared<io_faults>();
  auto db = open_db(dir.str(), true, faults);
  auto s = open_store(db);
  constexpr int total = 400;
  std::vector<core::record_key> keys;
  for (int i = 0; i < total; ++i) keys.push_back(sale_key(*s));
  std::vector<int> outcome(total, -1);  // 1 ok, 0 failed
  completions c;
  std::thread writer([&] {
    for (int i = 0; i < total; ++i)
      s->record_sale_async(keys[i], sale_body({{"p1", 1000}}, i), [&, i](result<commit_result> r) {
        outcome[i] = r ? 1 : 0;
        c.add();
      });
  });
  // Flip the fault on while the stream is running, bounded in time.
  {
    auto until = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    for (;;) {
      {
        std::lock_guard<std::mutex> lk(c.mu);
        if (c.done >= total / 4) break;
      }
      if (std::chrono::steady_clock::now() > until) break;
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
  }
  faults->io_error.store(true);
  writer.join();
  c.wait_for(total);
  faults->io_error.store(false);
  ASSERT_FALSE(db->resume());

  int ok = 0;
  for (int i = 0; i < total; ++i) {
    ASSERT_NE(outcome[i], -1);
    bool stored = s->get(keys[i])->has_value();
    EXPECT_EQ(stored, outcome[i] == 1) << "sale " << i;
    ok += outcome[i];
  }
  EXPECT_GT(ok, 0);
  EXPECT_EQ(*s->stock_level("t1", "b1", "p1"), -1000 * ok);
  EXPECT_EQ(s->pending()[core::lane_sales], outbox_size(*s, core::lane_sales));
  EXPECT_EQ(s->pending()[core::lane_sales], static_cast<size_t>(ok));
  EXPECT_EQ(s->lane_head(core::lane_sales), static_cast<uint64_t>(ok));

  // Writes go through again and the counters continue from what is durable.
  auto r = s->record_sale(sale_key(*s), sale_body({{"p1", 1000}}, 9999));
  ASSERT_TRUE(r) << r.err().to_string();
  EXPECT_EQ(s->lane_head(core::lane_sales), static_cast<uint64_t>(ok + 1));
  EXPECT_EQ(*s->stock_level("t1", "b1", "p1"), -1000 * (ok + 1));
}

} // namespace
} // namespace possync::storage::test
