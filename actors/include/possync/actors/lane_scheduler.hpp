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

} // namespace possync::actors
