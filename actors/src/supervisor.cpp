// Uplink supervisor.

#include "possync/actors/supervisor.hpp"

#include <chrono>
#include <utility>

namespace possync::actors {

namespace {

struct supervisor_state {
  supervisor_setup setup;
  std::unique_ptr<backoff> retry;
  session_actor child;
  uint64_t generation = 0;  ///< bumps on every scheduled or immediate attempt
  bool enabled = true;
  bool stopping = false;
  bool failed_before = false; ///< the next session is a restart after a failure
  static inline const char* name = "possync.supervisor";

  int64_t now() const { return setup.session.clock(); }
};

using self_ptr = supervisor_actor::stateful_pointer<supervisor_state>;

void attempt(self_ptr self) {
  auto& st = self->state;
  if (st.child || !st.enabled || st.stopping) return;
  const auto& endpoint = st.setup.endpoints[st.retry->endpoint() % st.setup.endpoints.size()];
  auto snap = st.setup.session.snapshot;
  const bool restart = st.failed_before;
  snap->update([&](uplink_snapshot::view& v) {
    v.endpoint = endpoint;
    v.session = true;
    v.online = false;
    ++v.sessions;
    if (restart) ++v.restarts;
  });
  auto l = st.setup.connect(endpoint);
  if (!l) {
    // Could not even make a link: count it as a failed attempt.
    auto delay = st.retry->on_failed(st.now());
    st.failed_before = true;
    snap->update([&](uplink_snapshot::view& v) {
      v.session = false;
      v.last_error = "cannot dial " + endpoint;
    });
    self->delayed_send(self, std::chrono::milliseconds(delay), atom::connect_v, ++st.generation);
    return;
  }
  auto setup = st.setup.session;
  setup.k = session_setup::kind::uplink;
  if (setup.token_source) setup.me.token = setup.token_source();
  setup.supervisor = caf::actor_cast<supervisor_actor>(self);
  st.child = spawn_session(self->system(), std::move(setup), std::move(l));
  self->monitor(st.child);
}

/// The current session ended (its own report or its down message, whichever first).
void on_child_end(self_ptr self, const error& why) {
  auto& st = self->state;
  st.child = nullptr;
  st.setup.session.snapshot->update([&](uplink_snapshot::view& v) {
    v.session = false;
    v.online = false;
    v.last_error = why ? why.to_string() : "";
  });
  if (st.stopping) {
    self->quit();
    return;
  }
  st.failed_before = true;
  auto delay = st.retry->on_failed(st.now());
  if (st.enabled)
    self->delayed_send(self, std::chrono::milliseconds(delay), atom::connect_v, ++st.generation);
}

supervisor_actor::behavior_type supervisor_fn(self_ptr self, std::shared_ptr<supervisor_setup> setup) {
  auto& st = self->state;
  st.setup = std::move(*setup);
  if (!st.setup.session.clock) st.setup.session.clock = system_now_ms;
  if (!st.setup.session.snapshot) st.setup.session.snapshot = std::make_shared<uplink_snapshot>();
  st.enabled = st.setup.enabled;
  st.retry = std::make_unique<backoff>(st.setup.backoff, st.setup.endpoints.size(), st.setup.seed);
  self->set_down_handler([=](caf::down_msg& m) {
    auto& st = self->state;
    if (!st.child || m.source != st.child.address()) return;
    on_child_end(self, error(errc::internal, "uplink session died: " + caf::to_string(m.reason)));
  });
  if (st.setup.endpoints.empty() || !st.setup.connect) st.enabled = false;
  attempt(self);
  return {
      [=](atom::connect, uint64_t gen) {
        if (gen != self->state.generation) return; // superseded
        attempt(self);
      },
      [=](atom::welcome) {
        auto& st = self->state;
        st.retry->on_connected(st.now());
        st.failed_before = false;
        // Online again: the reason the previous session ended no longer describes the node.
        st.setup.session.snapshot->update([](uplink_snapshot::view& v) { v.last_error.clear(); });
      },
      [=](atom::ended, error& why) {
        auto& st = self->state;
        auto src = self->current_sender();
        if (!st.child || !src || src != caf::actor_cast<caf::strong_actor_ptr>(st.child)) return;
        on_child_end(self, why);
      },
      [=](atom::enable, bool on) {
        auto& st = self->state;
        if (st.setup.endpoints.empty() || !st.setup.connect) return;
        st.enabled = on;
        ++st.generation;
        if (!on) {
          if (st.child) self->send(st.child, atom::stop_v, error(errc::unavailable, "uplink disabled"));
          return;
        }
        attempt(self);
      },
      [=](atom::sync) {
        auto& st = self->state;
        if (st.child) {
          self->send(st.child, atom::outbox_v);
          return;
        }
        ++st.generation;
        attempt(self);
      },
      [=](atom::stop, error& why) {
        auto& st = self->state;
        st.stopping = true;
        st.enabled = false;
        ++st.generation;
        if (!st.child) {
          self->quit();
          return;
        }
        self->send(st.child, atom::stop_v, std::move(why));
      },
  };
}

} // namespace

supervisor_actor spawn_supervisor(caf::actor_system& sys, supervisor_setup setup) {
  return sys.spawn(supervisor_fn, std::make_shared<supervisor_setup>(std::move(setup)));
}

} // namespace possync::actors
