#pragma once
// Restart policy of the uplink supervisor (pure: time and randomness come in).
// After a failed session the next attempt waits initial_ms, doubling per consecutive
// failure up to max_ms, each delay spread by +-jitter; a session that stayed healthy
// for healthy_ms resets the sequence. Attempts rotate through the upstream endpoints.

#include <cstddef>
#include <cstdint>

namespace possync::actors {

struct backoff_options {
  int64_t initial_ms = 1000;   ///< first delay after a failure [1 s]
  int64_t max_ms = 30000;      ///< cap [30 s]
  double multiplier = 2.0;     ///< growth per consecutive failure [2]
  double jitter = 0.2;         ///< each delay is scaled by a random factor in [1-j, 1+j] [0.2]
  int64_t healthy_ms = 60000;  ///< a session up this long resets the delay [60 s]
};

/// Delay sequence and endpoint rotation for one supervisor.
class backoff {
public:
  backoff(backoff_options opts, size_t endpoints, uint64_t seed);
  /// A session was established at `now_ms` (welcomed).
  void on_connected(int64_t now_ms);
  /// The session (or the attempt) ended at `now_ms`: returns how long to wait before
  /// the next attempt, and moves to the next endpoint.
  int64_t on_failed(int64_t now_ms);
  /// Index of the endpoint to try next.
  size_t endpoint() const { return endpoint_; }
  /// Consecutive failures since the last healthy session.
  uint32_t failures() const { return failures_; }

private:
  backoff_options opts_;
  size_t endpoints_;
  size_t endpoint_ = 0;
  uint32_t failures_ = 0;
  int64_t connected_ms_ = -1;
  uint64_t rng_;
};

} // namespace possync::actors
