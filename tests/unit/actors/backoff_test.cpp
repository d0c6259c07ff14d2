// The supervisor's restart policy: doubling delays with jitter, a cap, endpoint
// rotation, and a reset after a healthy session.

#include <gtest/gtest.h>

#include "possync/actors/backoff.hpp"

namespace {

using possync::actors::backoff;
using possync::actors::backoff_options;

backoff_options no_jitter() {
  backoff_options o;
  o.jitter = 0;
  return o;
}

TEST(backoff, doubles_from_initial_to_the_cap) {
  backoff b(no_jitter(), 1, 7);
  std::vector<int64_t> got;
  for (int i = 0; i < 8; ++i)
    got.push_back(b.on_failed(0));
  EXPECT_EQ(got, (std::vector<int64_t>{1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000}));
}

TEST(backoff, jitter_stays_within_its_band_and_is_seeded) {
  backoff_options o;
  o.jitter = 0.2;
  backoff a(o, 1, 42), b(o, 1, 42), c(o, 1, 43);
  bool differs = false;
  for (int i = 0; i < 10; ++i) {
    int64_t base = std::min<int64_t>(1000LL << i, 30000);
    int64_t da = a.on_failed(0);
    EXPECT_EQ(da, b.on_failed(0));
    differs |= da != c.on_failed(0);
    EXPECT_GE(da, base * 8 / 10 - 1);
    EXPECT_LE(da, base * 12 / 10 + 1);
  }
  EXPECT_TRUE(differs);
}

TEST(backoff, rotates_endpoints_on_failure) {
  backoff b(no_jitter(), 3, 1);
  EXPECT_EQ(b.endpoint(), 0u);
  b.on_failed(0);
  EXPECT_EQ(b.endpoint(), 1u);
  b.on_failed(0);
  EXPECT_EQ(b.endpoint(), 2u);
  b.on_failed(0);
  EXPECT_EQ(b.endpoint(), 0u);
}

TEST(backoff, a_healthy_session_resets_the_delay_and_keeps_its_endpoint) {
  backoff b(no_jitter(), 2, 1);
  b.on_failed(0);
  b.on_failed(0);
  EXPECT_EQ(b.failures(), 2u);
  b.on_connected(1000);
  EXPECT_EQ(b.on_failed(1000 + 60000), 1000);  // healthy for 60 s: start over
  EXPECT_EQ(b.endpoint(), 0u);
  b.on_connected(70000);
  EXPECT_EQ(b.on_failed(70500), 2000);  // up only 0.5 s: keeps growing, moves on
  EXPECT_EQ(b.endpoint(), 1u);
}

} // namespace
