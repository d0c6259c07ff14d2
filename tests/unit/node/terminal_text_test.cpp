// The POS screen's sync line: relative_age(), describe() and the staleness threshold
// of sync_status_of() (what terminal::status() reports).

#include <gtest/gtest.h>

#include "possync/node/node.hpp"
#include "possync/terminal.hpp"

namespace possync {
namespace {

constexpr int64_t sec = 1000, min = 60 * sec, hour = 60 * min, day = 24 * hour;

TEST(terminal_text, relative_age_says_elapsed_time_as_people_do) {
  EXPECT_EQ(relative_age(-1), "never");
  EXPECT_EQ(relative_age(0), "just now");
  EXPECT_EQ(relative_age(4'999), "just now");
  EXPECT_EQ(relative_age(5 * sec), "5 s ago");
  EXPECT_EQ(relative_age(45 * sec + 900), "45 s ago");
  EXPECT_EQ(relative_age(59 * sec + 999), "59 s ago");
  EXPECT_EQ(relative_age(min), "1 min ago");
  EXPECT_EQ(relative_age(2 * min + 30 * sec), "2 min ago");
  EXPECT_EQ(relative_age(59 * min + 59 * sec), "59 min ago");
  EXPECT_EQ(relative_age(hour), "1 h ago");
  EXPECT_EQ(relative_age(3 * hour + 20 * min), "3 h ago");
  EXPECT_EQ(relative_age(47 * hour + 59 * min), "47 h ago");
  EXPECT_EQ(relative_age(2 * day), "2 days ago");
  EXPECT_EQ(relative_age(9 * day + 23 * hour), "9 days ago");
}

terminal_sync_status status_of(bool online, std::array<uint64_t, 4> pending, int64_t since, bool stale,
                               bool caught_up = true) {
  terminal_sync_status s;
  s.online = online;
  s.pending = pending;
  for (auto p : pending)
    s.pending_total += p;
  s.since_last_sync_ms = since;
  s.stale = stale;
  s.caught_up = caught_up;
  return s;
}

TEST(terminal_text, describe_gives_state_pending_and_last_sync) {
  EXPECT_EQ(describe(status_of(true, {0, 0, 0, 0}, 1 * sec, false)),
            "Online · all synced · last sync just now");
  EXPECT_EQ(describe(status_of(true, {0, 0, 0, 0}, 1 * sec, false, false)),
            "Online · catching up · last sync just now");
  EXPECT_EQ(describe(status_of(true, {3, 0, 0, 0}, 2 * min, false)),
            "Online · 3 sales pending · last sync 2 min ago");
  EXPECT_EQ(describe(status_of(true, {1, 0, 1, 0}, 2 * min, false)),
            "Online · 1 sale, 1 update pending · last sync 2 min ago");
  EXPECT_EQ(describe(status_of(false, {0, 2, 0, 1}, 30 * sec, false)),
            "Offline · 3 updates waiting · last sync 30 s ago");
  EXPECT_EQ(describe(status_of(false, {0, 0, 0, 0}, -1, false)), "Offline · nothing waiting · never synced");
}

TEST(terminal_text, describe_warns_once_stale) {
  EXPECT_EQ(describe(status_of(false, {12, 0, 0, 0}, 3 * hour, true)),
            "Offline · 12 sales waiting · last sync 3 h ago — check the network");
  EXPECT_EQ(describe(status_of(true, {0, 5, 0, 0}, 10 * min, true)),
            "Online · 5 updates pending · last sync 10 min ago — sync is behind");
  EXPECT_EQ(describe(status_of(false, {0, 0, 0, 0}, -1, true)),
            "Offline · nothing waiting · never synced — check the network");
}

TEST(terminal_text, stale_past_the_threshold_from_last_sync_or_start) {
  const int64_t now = 1'700'000'000'000, limit = 5 * min, started = now - hour;
  node::node_status s;
  s.online = false;
  s.pending = {12, 1, 0, 0};
  s.last_sync_ms = now - limit;
  auto v = node::sync_status_of(s, now, limit, started);
  EXPECT_FALSE(v.stale) << "exactly at the threshold";
  EXPECT_EQ(v.since_last_sync_ms, limit);
  EXPECT_EQ(v.pending_total, 13u);
  s.last_sync_ms = now - limit - 1;
  EXPECT_TRUE(node::sync_status_of(s, now, limit, started).stale);
  EXPECT_EQ(describe(node::sync_status_of(s, now, limit, started)),
            "Offline · 12 sales, 1 update waiting · last sync 5 min ago — check the network");
  // Never synced: counted from the start, not from the epoch.
  s.last_sync_ms = 0;
  v = node::sync_status_of(s, now, limit, now - 1 * min);
  EXPECT_FALSE(v.stale);
  EXPECT_EQ(v.since_last_sync_ms, -1);
  EXPECT_TRUE(node::sync_status_of(s, now, limit, now - limit - 1).stale);
  // A clock that stepped back never gives a negative age.
  s.last_sync_ms = now + 10 * sec;
  EXPECT_EQ(node::sync_status_of(s, now, limit, started).since_last_sync_ms, 0);
}

} // namespace
} // namespace possync
