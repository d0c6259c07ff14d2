#pragma once
// Tuning of sync sessions (no protobuf here: node.hpp includes it).

#include <array>
#include <cstddef>
#include <cstdint>

namespace possync::actors {

/// Tuning of one session; defaults suit production, tests shrink the times.
struct session_options {
  uint32_t push_window = 8;              ///< Push frames in flight unacked (Welcome may lower it)
  size_t push_batch = 256;               ///< records per Push frame at most
  size_t push_batch_bytes = 1u << 20;    ///< and bytes of record bodies per Push
  size_t changes_batch = 128;            ///< records per Changes frame at most
  size_t changes_batch_bytes = 256u << 10; ///< and bytes of record bodies per Changes
  uint32_t apply_window = 4;             ///< applies in flight before a side stops reading
  uint32_t unsent_frames = 2;            ///< downlink: Changes queued unwritten before it waits
  uint32_t lower_lane_every = 8;         ///< lane scheduler: 1 push slot in N goes to a lower lane
  int64_t heartbeat_ms = 5000;           ///< send a Heartbeat after this long without sending
  int64_t idle_timeout_ms = 30000;       ///< nothing received for this long: fail (unavailable)
  int64_t hello_timeout_ms = 10000;      ///< downlink: no Hello within this: fail
  uint32_t max_push_records = 4096;      ///< downlink: a Push with more records ends the session (resource_exhausted)
  int64_t auth_check_ms = 1000;          ///< downlink: re-check token expiry/revocation this often
  /// Timer period of a session while its machine is quiet() (nothing waits on time but
  /// heartbeats, timeouts and the admission check), instead of session_setup::tick_ms: a
  /// process with thousands of sessions (HQ, a simulated fleet) spent a fifth of its idle
  /// CPU on 200 ms ticks that found nothing to do. Capped by half the heartbeat, a quarter
  /// of the idle timeout and auth_check_ms; never below tick_ms.
  int64_t quiet_tick_ms = 1000;
  size_t fragment_bytes = 64u << 10;     ///< frames larger than this are written in pieces of this size,
                                         ///< so that small frames of other lanes pass them [64 KiB]; 0 = never
  size_t max_frame_bytes = 8u << 20;     ///< largest frame reassembled from pieces [8 MiB, the transport's limit]
  /// downlink, per lane: once caught up, a feed starts serving new changes at most once per
  /// this many ms (the first change after a quiet spell goes at once; what changes during
  /// the pause goes together, each key once, at its newest). Lane 1 carries stock: every
  /// sale changes its products' counters, and each change would otherwise go to every
  /// terminal of the branch on its own. Stretched by up to half per peer (fixed), so that
  /// the sessions of one branch do not all start their rounds together. 0 = at once.
  std::array<int64_t, 4> live_pause_ms{0, 1000, 0, 0};
  /// While a sale (lane 0) is in flight on this session, lower lanes wait: the dialing
  /// side holds its downloaded Changes (lanes 1-3) unapplied and pushes no lower lane;
  /// the accepting side serves no lower-lane feed while it applies a lane-0 Push. At most
  /// this long per hold, and no new hold for as long after one (urgent_hold). And for
  /// 2 x this long after a sale, the dialing side applies one lower-lane Changes at a
  /// time, not apply_window: the next sale's own commit then waits behind one frame's
  /// commit, not a window's group (a catalogue download runs at about half speed
  /// while the register sells back to back). 0 = never.
  int64_t urgent_hold_ms = 20;
};

} // namespace possync::actors
