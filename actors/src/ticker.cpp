#include "possync/actors/ticker.hpp"

#include <algorithm>
#include <chrono>
#include <map>
#include <set>

#include "caf/all.hpp"

namespace possync::actors {

namespace {

using time_point = caf::actor_clock::time_point;

struct ticker_state {
  struct entry {
    session_actor session;
    int64_t at = 0; ///< 0: (tick); else (tick, at)
  };
  std::multimap<time_point, entry> due;
  /// When the ticker's own timers fire (those not yet fired).
  std::set<time_point> armed;
  std::chrono::milliseconds resolution{5};
  static inline const char* name = "possync.ticker";
};

using self_ptr = ticker_actor::stateful_pointer<ticker_state>;

// Arms a timer of the ticker's own for the earliest due time, unless one fires before
// it anyway (within the resolution).
void arm(self_ptr self, time_point now) {
  auto& st = self->state;
  if (st.due.empty()) return;
  const time_point when = std::max(st.due.begin()->first, now + st.resolution);
  if (!st.armed.empty() && *st.armed.begin() <= when + st.resolution) return;
  st.armed.insert(when);
  self->delayed_send(self, when - now, atom::tick_v);
}

// Function actors take an argument: spawning an argument-less one trips UBSan inside
// CAF 0.17's init_fun_factory.
ticker_actor::behavior_type ticker(self_ptr self, int64_t resolution_ms) {
  self->state.resolution = std::chrono::milliseconds(std::max<int64_t>(1, resolution_ms));
  return {
      [=](atom::wake, session_actor& s, int64_t delay_ms, int64_t at) {
        const auto now = self->clock().now();
        self->state.due.emplace(now + std::chrono::milliseconds(std::max<int64_t>(0, delay_ms)),
                                ticker_state::entry{std::move(s), at});
        arm(self, now);
      },
      [=](atom::tick) {
        auto& st = self->state;
        const auto now = self->clock().now();
        st.armed.erase(st.armed.begin(), st.armed.upper_bound(now));
        while (!st.due.empty() && st.due.begin()->first <= now) {
          auto& e = st.due.begin()->second;
          if (e.at == 0)
            self->send(e.session, atom::tick_v);
          else
            self->send(e.session, atom::tick_v, e.at);
          st.due.erase(st.due.begin());
        }
        arm(self, now);
      },
  };
}

} // namespace

ticker_actor spawn_ticker(caf::actor_system& sys, int64_t resolution_ms) {
  return sys.spawn(ticker, resolution_ms);
}

} // namespace possync::actors
