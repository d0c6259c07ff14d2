#pragma once
// Which outbox lane the next Push slot goes to (DESIGN.md §5 "lane scheduler").
//
// Strict priority, lane 0 > 1 > 2 > 3, with a guaranteed share for lower lanes: of
// every `lower_lane_every` slots handed out while the top lane with work is not the
// only one with work, one goes to a lower lane. That slot rotates over the lower
// lanes that have work (round robin), so lane 3 progresses even while lanes 0 and 1
// are both busy: nothing starves. With lower_lane_every = 8 and every lane busy, lane
// 0 gets 7/8 of the slots and each lower lane a third of the remaining 1/8.
//
// Pure and deterministic. Thread-safety: none (owned by one uplink machine).

#include <array>
#include <cstdint>
#include <optional>

#include "possync/core/schema.hpp"

namespace possync::actors {

/// Picks lanes for push slots; see the file comment.
class lane_scheduler {
public:
  /// `lower_lane_every`: 1 slot in N goes to a lower lane; 0 or 1 = every slot
  /// rotates over all lanes with work (no priority).
  explicit lane_scheduler(uint32_t lower_lane_every = 8) : every_(lower_lane_every) {}

  /// The lane to serve next among those with `has_work`, or nullopt if none has.
  std::optional<uint8_t> pick(const std::array<bool, core::lane_count>& has_work);

  /// Slots handed out so far per lane (for tests and status).
  const std::array<uint64_t, core::lane_count>& picks() const { return picks_; }

private:
  uint32_t every_;
  uint32_t since_lower_ = 0; ///< top-lane picks since the last lower-lane slot
  uint8_t next_lower_ = 0;   ///< where the round robin over lower lanes resumes
  std::array<uint64_t, core::lane_count> picks_{};
};

/// Holds lower lanes back while the sales lane has work in flight, so that a sale's
/// round trip does not share the CPU, the committer and the link with a catalogue
/// download or a report upload. Bounded both ways: a hold lasts at most `hold_ms`, and
/// after a hold ends no new one starts for as long as it lasted (at least half the time
/// stays with the lower lanes however busy the sales lane is). hold_ms <= 0: never holds.
///
/// Pure and deterministic (time is passed in). Thread-safety: none (one per machine).
class urgent_hold {
public:
  explicit urgent_hold(int64_t hold_ms = 0) : hold_ms_(hold_ms) {}

  /// Should lower lanes wait now? `urgent`: the sales lane has work in flight.
  bool holding(bool urgent, int64_t now_ms);

  /// When the current hold runs out at the latest (-1: no hold).
  int64_t ends_at() const { return since_ >= 0 ? since_ + hold_ms_ : -1; }

  /// Holds begun so far (for tests and status).
  uint64_t holds() const { return holds_; }

private:
  void end(int64_t now_ms);

  int64_t hold_ms_;
  int64_t since_ = -1;     ///< start of the current hold; -1: none
  int64_t free_until_ = 0; ///< no new hold before this
  uint64_t holds_ = 0;
};

} // namespace possync::actors
