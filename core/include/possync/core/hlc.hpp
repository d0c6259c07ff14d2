#pragma once
// Hybrid logical clock (Kulkarni et al.): a timestamp that follows physical time
// when clocks behave and stays monotonic and causal when they do not (backward
// jumps, hours of skew between nodes). No wall-clock comparison decides anything on
// its own; ordering ties are broken by node id.

#include <cstdint>
#include <functional>
#include <string>

#include "possync/core/ids.hpp"

namespace possync::core {

/// HLC timestamp. Ordered by (wall_ms, logical, node).
struct hlc_timestamp {
  uint64_t wall_ms = 0;  ///< ms since Unix epoch, max physical time seen
  uint32_t logical = 0;  ///< orders events within one wall_ms
  node_id node = 0;      ///< writer; breaks ties

  friend bool operator==(const hlc_timestamp& a, const hlc_timestamp& b) {
    return a.wall_ms == b.wall_ms && a.logical == b.logical && a.node == b.node;
  }
  friend bool operator!=(const hlc_timestamp& a, const hlc_timestamp& b) { return !(a == b); }
  friend bool operator<(const hlc_timestamp& a, const hlc_timestamp& b) {
    if (a.wall_ms != b.wall_ms) return a.wall_ms < b.wall_ms;
    if (a.logical != b.logical) return a.logical < b.logical;
    return a.node < b.node;
  }
  friend bool operator>(const hlc_timestamp& a, const hlc_timestamp& b) { return b < a; }
  friend bool operator<=(const hlc_timestamp& a, const hlc_timestamp& b) { return !(b < a); }
  std::string to_string() const;  ///< "1700000000123.4@00ab..."
};

/// Physical clock: returns ms since the Unix epoch. Injected so tests and the
/// simulator control time.
using physical_clock = std::function<uint64_t()>;

/// How far `remote_ms` is ahead of `local_ms` (negative: behind), saturated at
/// +-INT64_MAX: a wall_ms read from the wire may be anything up to 2^64 - 1.
int64_t ms_ahead(uint64_t remote_ms, uint64_t local_ms);

/// One node's HLC. Not thread-safe (the owner serializes access).
class hlc_clock {
public:
  /// `max_forward_ms`: a remote timestamp further ahead of our physical clock than
  /// this is still adopted (ordering must hold) but counted in `skew_events()` and
  /// reported by `last_skew_ms()`. Default 5 minutes.
  /// `max_adopt_ms`: one further ahead than this is not adopted at all (counted in
  /// `refused_events()` too): a peer with a broken or hostile clock must not move
  /// this node's clock years ahead for good. Causality does not rest on it (version
  /// vectors carry it); only ties between concurrent versions read the clock. Default 7 days.
  static constexpr uint64_t default_max_adopt_ms = 7ull * 24 * 3600 * 1000;
  hlc_clock(node_id self, physical_clock clock, uint64_t max_forward_ms = 300'000,
            uint64_t max_adopt_ms = default_max_adopt_ms);

  /// Timestamp for a local event or a send.
  hlc_timestamp now();
  /// Merge a received timestamp; returns the timestamp of the receive event,
  /// greater than both `remote` and every earlier timestamp of this clock (unless
  /// `remote` is more than max_adopt_ms ahead: then it is now()).
  hlc_timestamp update(const hlc_timestamp& remote);
  /// Restore after restart: never issue a timestamp <= `persisted`.
  void restore(const hlc_timestamp& persisted);
  /// Last issued timestamp.
  hlc_timestamp last() const { return last_; }
  /// remote.wall_ms - physical now at the last update() (signed).
  int64_t last_skew_ms() const { return last_skew_ms_; }
  /// How many update() calls saw a remote clock beyond max_forward_ms.
  uint64_t skew_events() const { return skew_events_; }
  /// How many update() calls saw a remote clock beyond max_adopt_ms (not adopted).
  uint64_t refused_events() const { return refused_events_; }
  node_id self() const { return self_; }

private:
  node_id self_;
  physical_clock clock_;
  uint64_t max_forward_ms_;
  uint64_t max_adopt_ms_;
  hlc_timestamp last_;
  int64_t last_skew_ms_ = 0;
  uint64_t skew_events_ = 0;
  uint64_t refused_events_ = 0;
};

} // namespace possync::core
