#pragma once
// runtime::impl: the CAF actor system shared by the nodes of a process, the blocking
// worker that runs their small blocking store writes, and the ticker that times all
// their sessions.

#include <memory>

#include "caf/all.hpp"

#include "possync/actors/store_actor.hpp"
#include "possync/actors/ticker.hpp"
#include "possync/node/node.hpp"

namespace possync::node {

struct runtime::impl {
  explicit impl(const runtime::options& opts);
  ~impl();
  caf::actor_system_config cfg;
  std::unique_ptr<caf::actor_system> sys;
  actors::blocking_worker_actor worker;
  actors::ticker_actor ticker;
};

} // namespace possync::node
