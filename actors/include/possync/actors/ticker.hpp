#pragma once
// The ticker: one timer for every session of an actor system.
// CAF 0.17's delayed_send locks the actor clock and wakes its thread on every call (a
// futex wake and two context switches). Sessions schedule a tick every few hundred ms
// each and a wake per sale, so a process serving thousands of them (HQ, `possync sim`)
// spent about a tenth of its CPU in that clock. The ticker keeps the due times in a map
// and sends each session its tick as an ordinary message; its own delayed_send fires
// at most once per `resolution_ms` while anything is due, so a tick is late by at most
// that much.

#include <cstdint>

#include "caf/fwd.hpp"

#include "possync/actors/messages.hpp"

namespace possync::actors {

/// Spawns a ticker; it exits with the actor system (or an exit message).
ticker_actor spawn_ticker(caf::actor_system& sys, int64_t resolution_ms = 5);

} // namespace possync::actors
