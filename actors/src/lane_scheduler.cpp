#include "possync/actors/lane_scheduler.hpp"

#include <algorithm>

namespace possync::actors {

namespace {

// First lane with work in [from, lane_count), wrapping to [lo, from); -1 if none.
int rotate_from(const std::array<bool, core::lane_count>& has_work, int lo, int from) {
  const int n = static_cast<int>(core::lane_count);
  if (from < lo || from >= n) from = lo;
  for (int i = 0; i < n - lo; ++i) {
    int l = lo + (from - lo + i) % (n - lo);
    if (has_work[static_cast<size_t>(l)]) return l;
  }
  return -1;
}

} // namespace

std::optional<uint8_t> lane_scheduler::pick(const std::array<bool, core::lane_count>& has_work) {
  int top = -1;
  for (size_t l = 0; l < core::lane_count; ++l)
    if (has_work[l]) {
      top = static_cast<int>(l);
      break;
    }
  if (top < 0) return std::nullopt;
  int chosen = top;
  if (every_ <= 1) {
    chosen = rotate_from(has_work, 0, next_lower_);
    next_lower_ = static_cast<uint8_t>(chosen + 1);
  } else {
    int lower = rotate_from(has_work, top + 1, next_lower_);
    if (lower < 0) {
      since_lower_ = 0; // no contention: nothing is owed to lower lanes
    } else if (++since_lower_ >= every_) {
      since_lower_ = 0;
      chosen = lower;
      next_lower_ = static_cast<uint8_t>(lower + 1);
    }
  }
  ++picks_[static_cast<size_t>(chosen)];
  return static_cast<uint8_t>(chosen);
}

bool urgent_hold::holding(bool urgent, int64_t now_ms) {
  if (hold_ms_ <= 0) return false;
  if (since_ >= 0) {
    // A clock that went back ends the hold rather than stretching it.
    if (urgent && now_ms >= since_ && now_ms - since_ < hold_ms_) return true;
    end(now_ms);
    return false;
  }
  if (!urgent || now_ms < free_until_) return false;
  since_ = now_ms;
  ++holds_;
  return true;
}

void urgent_hold::end(int64_t now_ms) {
  const int64_t lasted = now_ms >= since_ ? now_ms - since_ : 0;
  free_until_ = now_ms + std::min(lasted, hold_ms_);
  since_ = -1;
}

} // namespace possync::actors
