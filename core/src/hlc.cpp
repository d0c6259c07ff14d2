#include "possync/core/hlc.hpp"

#include <algorithm>
#include <limits>
#include <utility>

namespace possync::core {

namespace {

constexpr uint32_t max_logical = std::numeric_limits<uint32_t>::max();

// Next timestamp after `t` within the same wall_ms; when the logical counter is
// exhausted the clock moves one millisecond ahead instead of wrapping.
void bump(hlc_timestamp& t) {
  if (t.logical == max_logical) {
    ++t.wall_ms;
    t.logical = 0;
  } else {
    ++t.logical;
  }
}

} // namespace

std::string hlc_timestamp::to_string() const {
  return std::to_string(wall_ms) + "." + std::to_string(logical) + "@" + node_id_to_string(node);
}

int64_t ms_ahead(uint64_t remote_ms, uint64_t local_ms) {
  constexpr uint64_t max = static_cast<uint64_t>(INT64_MAX);
  if (remote_ms >= local_ms) return static_cast<int64_t>(std::min(remote_ms - local_ms, max));
  return -static_cast<int64_t>(std::min(local_ms - remote_ms, max));
}

hlc_clock::hlc_clock(node_id self, physical_clock clock, uint64_t max_forward_ms, uint64_t max_adopt_ms)
    : self_(self), clock_(std::move(clock)), max_forward_ms_(max_forward_ms), max_adopt_ms_(max_adopt_ms) {
  last_.node = self_;
}

hlc_timestamp hlc_clock::now() {
  uint64_t pt = clock_();
  if (pt > last_.wall_ms) {
    last_.wall_ms = pt;
    last_.logical = 0;
  } else {
    // Physical clock did not advance (or went back): stay on our wall_ms.
    bump(last_);
  }
  last_.node = self_;
  return last_;
}

hlc_timestamp hlc_clock::update(const hlc_timestamp& remote) {
  uint64_t pt = clock_();
  last_skew_ms_ = ms_ahead(remote.wall_ms, pt);
  const uint64_t ahead = last_skew_ms_ > 0 ? static_cast<uint64_t>(last_skew_ms_) : 0;
  if (ahead > max_forward_ms_) ++skew_events_;
  if (ahead > max_adopt_ms_) {
    ++refused_events_;
    return now();
  }

  uint64_t wall = std::max({last_.wall_ms, remote.wall_ms, pt});
  if (wall == last_.wall_ms && wall == remote.wall_ms) {
    last_.logical = std::max(last_.logical, remote.logical);
    bump(last_);
  } else if (wall == last_.wall_ms) {
    bump(last_);
  } else if (wall == remote.wall_ms) {
    last_.wall_ms = remote.wall_ms;
    last_.logical = remote.logical;
    bump(last_);
  } else {
    last_.wall_ms = wall;
    last_.logical = 0;
  }
  last_.node = self_;
  return last_;
}

void hlc_clock::restore(const hlc_timestamp& persisted) {
  if (persisted.wall_ms > last_.wall_ms ||
      (persisted.wall_ms == last_.wall_ms && persisted.logical > last_.logical)) {
    last_.wall_ms = persisted.wall_ms;
    last_.logical = persisted.logical;
  }
  last_.node = self_;
}

} // namespace possync::core
