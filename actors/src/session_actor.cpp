// Session actor: the shell around uplink_machine / downlink_machine.

#include "possync/actors/session_actor.hpp"

#include "possync/actors/fragments.hpp"
#include "possync/actors/log.hpp"

#include <algorithm>
#include <chrono>
#include <deque>
#include <optional>
#include <utility>

namespace possync::actors {

int64_t system_now_ms() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

namespace {

/// Link events -> the session's mailbox. Holds only a weak reference: a link that
/// outlives its actor (gRPC may finish later) delivers into nothing.
class events_adapter final : public link_events {
public:
  explicit events_adapter(caf::actor_addr a) : addr_(std::move(a)) {}
  void on_frame(v1::Frame frame) override { forward(atom::frame_v, std::move(frame)); }
  void on_written(bool ok) override { forward(atom::written_v, ok); }
  void on_closed(error why) override { forward(atom::closed_v, std::move(why)); }

private:
  template <class... Ts>
  void forward(Ts&&... xs) {
    if (auto h = caf::actor_cast<caf::actor>(addr_)) caf::anon_send(h, std::forward<Ts>(xs)...);
  }
  caf::actor_addr addr_;
};

struct spawn_pack {
  session_setup setup;
  std::unique_ptr<link> lnk;
};

struct session_state {
  session_setup setup;
  std::unique_ptr<link> lnk;
  std::unique_ptr<uplink_machine> up;
  std::unique_ptr<downlink_machine> down;
  std::optional<write_queue> unwritten;  ///< what the machine handed out, not yet written
  std::optional<reassembler> pieces;      ///< a fragmented frame being read
  bool writing = false;
  bool reading = false;
  bool link_closed = false;
  bool welcomed = false;
  std::optional<error> closing; ///< the machine asked to end once its frames are written
  std::optional<error> ending;  ///< finish() ran: waiting for io jobs, then exit
  bool stopped = false;         ///< its owner sent (stop): a planned end, not a failure
  uint32_t io_pending = 0;
  int64_t started_ms = 0;
  uint64_t peer_session = 0;     ///< downlink: id in setup.peers (0 = not published yet)
  int64_t published_ms = 0;      ///< downlink: last publish to setup.peers
  int64_t published_recv_ms = 0; ///< downlink: the last_recv_ms it carried
  session_stats accounted;       ///< what was added to setup.traffic so far
  int64_t accounted_ms = 0;
  int64_t wake_at_ms = 0; ///< a one-off tick asked for by the machine is due then (0 = none)
  int64_t next_tick_ms = 0;          ///< the periodic tick is due then (tick_period())
  int64_t ack_failure_logged_ms = 0; ///< uplink: the last "outbox ack failed" line (one per 10 s)
  static inline const char* name = "possync.session";

  int64_t now() const { return setup.clock(); }
};

using self_ptr = session_actor::stateful_pointer<session_state>;

void run_io(self_ptr self, std::function<void()> job, bool wait) {
  auto& st = self->state;
  if (wait) {
    ++st.io_pending;
    auto me = caf::actor_cast<session_actor>(self);
    self->send(st.setup.store_h, atom::io_v, io_job{[job = std::move(job), me] {
                 job();
                 caf::anon_send(me, atom::io_done_v);
               }});
  } else {
    self->send(st.setup.store_h, atom::io_v, io_job{std::move(job)});
  }
}

void maybe_exit(self_ptr self) {
  auto& st = self->state;
  if (!st.ending || st.io_pending > 0) return;
  if (st.setup.supervisor) self->send(st.setup.supervisor, atom::ended_v, *st.ending);
  self->quit();
}

storage::session_audit make_audit(const session_state& st, const error& why) {
  storage::session_audit a;
  a.started_ms = st.started_ms;
  a.ended_ms = st.now();
  a.result = why ? why.to_string() : "ok";
  session_stats s;
  if (st.up) {
    auto u = st.up->status();
    a.peer = u.upstream;
    a.peer_role = "upstream";
    s = u.stats;
  } else if (st.down) {
    auto d = st.down->status();
    a.peer = d.granted.peer;
    a.peer_role = d.admitted ? storage::to_string(d.granted.role) : "unadmitted";
    s = d.stats;
  }
  a.records_up = s.records_up;
  a.records_down = s.records_down;
  a.bytes_up = s.bytes_up;
  a.bytes_down = s.bytes_down;
  return a;
}

/// Adds what the session did since the last call to setup.traffic (at most once a
/// second unless `ending`).
void account(session_state& st, bool ending) {
  if (!st.setup.traffic) return;
  const int64_t now = st.now();
  if (!ending && now - st.accounted_ms < 1000) return;
  st.accounted_ms = now;
  const session_stats s = st.up ? st.up->status().stats : st.down->status().stats;
  auto& t = *st.setup.traffic;
  auto add = [](std::atomic<uint64_t>& to, uint64_t now_v, uint64_t before) {
    if (now_v > before) to.fetch_add(now_v - before, std::memory_order_relaxed);
  };
  // An uplink pushes (out) and downloads (in); a downlink the other way round.
  const bool up = st.up != nullptr;
  add(up ? t.records_out : t.records_in, s.records_up, st.accounted.records_up);
  add(up ? t.records_in : t.records_out, s.records_down, st.accounted.records_down);
  add(up ? t.bytes_out : t.bytes_in, s.bytes_up, st.accounted.bytes_up);
  add(up ? t.bytes_in : t.bytes_out, s.bytes_down, st.accounted.bytes_down);
  add(t.rejected, s.rejected, st.accounted.rejected);
  st.accounted = s;
}

/// Downlink: the admitted peer's status into setup.peers, on admission, then at most
/// once a second when frames arrived, and (online = false) at the end.
void publish_peer(session_state& st, bool ending) {
  if (!st.setup.peers || !st.down) return;
  const int64_t now = st.now();
  if (!ending && st.peer_session != 0 && now - st.published_ms < 1000) return;
  auto d = st.down->status();
  if (!d.admitted) return;
  if (!ending && st.peer_session != 0 && d.last_recv_ms == st.published_recv_ms) return;
  if (st.peer_session == 0) {
    st.peer_session = st.setup.peers->next_session();
    log::event(log::level::info, "downlink", "session admitted",
               {{"peer", core::node_id_to_string(d.granted.peer)}, {"role", storage::to_string(d.granted.role)},
                {"branch", d.granted.branch}, {"software", d.peer_software}, {"skew_ms", d.peer_skew_ms}});
  }
  st.published_ms = now;
  st.published_recv_ms = d.last_recv_ms;
  peer_view v;
  v.node = d.granted.peer;
  v.role = d.granted.role;
  v.tenant = d.granted.tenant;
  v.branch = d.granted.branch;
  v.software = d.peer_software;
  v.online = !ending;
  v.session = st.peer_session;
  v.connected_ms = st.started_ms;
  v.last_seen_ms = d.last_recv_ms;
  v.skew_ms = d.peer_skew_ms;
  for (size_t l = 0; l < v.pending.size() && l < d.peer_pending.size(); ++l) v.pending[l] = d.peer_pending[l];
  v.lag_records = d.peer_lag_records;
  v.last_sync_ms = d.peer_last_sync_ms;
  v.caught_up = d.peer_caught_up;
  v.records_up = d.stats.records_up;
  v.records_down = d.stats.records_down;
  st.setup.peers->publish(v);
}

/// Publishes a session's status; the last complete sync is the node's, not the
/// session's, so it survives reconnects.
void keep_status(uplink_snapshot::view& v, const uplink_status& status) {
  auto last = std::max(v.status.last_sync_ms, status.last_sync_ms);
  v.status = status;
  v.status.last_sync_ms = last;
}

/// Ends the session: close the link, audit, then exit once awaited writes are done.
void finish(self_ptr self, error why) {
  auto& st = self->state;
  if (st.ending) return;
  st.ending = why;
  if (!st.link_closed) st.lnk->close(why);
  if (st.peer_session != 0) publish_peer(st, true);
  account(st, true);
  if (st.setup.traffic) {
    const auto code = static_cast<size_t>(why.code);
    st.setup.traffic->ended[code < st.setup.traffic->ended.size() ? code : 2].fetch_add(1, std::memory_order_relaxed);
  }
  auto audit = make_audit(st, why);
  // A session its own node stopped (shutdown, reset, uplink disabled) ended as asked:
  // a fleet of thousands stopping must not print thousands of warnings.
  const bool failed = why && why.code != errc::cancelled && !st.stopped;
  log::event(failed ? log::level::warn : log::level::info, st.up ? "uplink" : "downlink", "session ended",
             {{"peer", core::node_id_to_string(audit.peer)},
              {"role", audit.peer_role},
              {"duration_ms", audit.ended_ms - audit.started_ms},
              {"records_up", audit.records_up},
              {"records_down", audit.records_down},
              {"bytes_up", audit.bytes_up},
              {"bytes_down", audit.bytes_down},
              {"result", audit.result}});
  auto store = st.setup.store;
  run_io(self, [store, audit] { (void)store->record_session(audit); }, false);
  if (st.setup.snapshot) {
    auto status = st.up ? std::optional<uplink_status>(st.up->status()) : std::nullopt;
    st.setup.snapshot->update([&](uplink_snapshot::view& v) {
      v.online = false;
      if (status) keep_status(v, *status);
    });
  }
  maybe_exit(self);
}

void flush_writes(self_ptr self) {
  auto& st = self->state;
  if (st.writing || st.link_closed) return;
  auto f = st.unwritten->next();
  if (!f) return;
  st.writing = true;
  st.lnk->write(std::move(*f));
}

/// A tick in `delay_ms`: (tick) if `at` is 0, else (tick, at).
void schedule_tick(self_ptr self, int64_t delay_ms, int64_t at) {
  auto& st = self->state;
  if (st.setup.ticker) {
    self->send(st.setup.ticker, atom::wake_v, caf::actor_cast<session_actor>(self), delay_ms, at);
  } else if (at == 0) {
    self->delayed_send(self, std::chrono::milliseconds(delay_ms), atom::tick_v);
  } else {
    self->delayed_send(self, std::chrono::milliseconds(delay_ms), atom::tick_v, at);
  }
}

bool quiet(const session_state& st) {
  return st.up ? st.up->quiet() : st.down->quiet();
}

/// The periodic tick's period now: tick_ms while the machine has timed work, longer
/// while it is quiet (session_options::quiet_tick_ms).
int64_t tick_period(const session_state& st) {
  if (!quiet(st)) return st.setup.tick_ms;
  const auto& o = st.setup.opts;
  int64_t p = std::min({o.quiet_tick_ms, o.heartbeat_ms / 2, o.idle_timeout_ms / 4});
  if (st.down) p = std::min(p, o.auth_check_ms);
  return std::max(p, st.setup.tick_ms);
}

/// Carries out what the machine wants, in order, then pulls the next frame if wanted.
void pump(self_ptr self) {
  auto& st = self->state;
  if (st.ending) return;
  auto out = st.up ? st.up->take_output() : st.down->take_output();
  auto me = caf::actor_cast<session_actor>(self);
  for (auto& f : out.frames)
    st.unwritten->push(std::move(f));
  for (auto& a : out.applies)
    self->send(st.setup.store_h, atom::apply_v, me, std::move(a));
  for (auto [lane, seq] : out.outbox_acks)
    self->send(st.setup.store_h, atom::ack_v, me, lane, seq);
  if (out.subscribe)
    self->send(st.setup.hub, atom::subscribe_v, me,
               feed_subscription{std::move(*out.subscribe), std::move(out.subscribe_collections)});
  auto store = st.setup.store;
  if (out.clear_cursors && st.up) {
    auto peer = st.up->status().upstream;
    auto clear = [store, peer] {
      // Not cleared (a failed write): the next session resumes from the old cursors,
      // which an operator must know to order the resync again.
      if (auto e = store->clear_cursors(peer))
        log::event(log::level::error, "uplink", "full resync ordered but cursors not cleared",
                   {{"upstream", core::node_id_to_string(peer)}, {"error", e.to_string()}});
    };
    run_io(self, clear, true);
  }
  if (out.upstream_welcomed) {
    auto note = [store, name = core::node_id_to_string(*out.upstream_welcomed)] {
      if (auto e = store->put_meta("sync.upstream", name))
        log::event(log::level::warn, "uplink", "cannot note the upstream; noted at the next session",
                   {{"upstream", name}, {"error", e.to_string()}});
    };
    run_io(self, note, true);
  }
  if (out.close && !st.closing) st.closing = std::move(out.close);
  // A quiet session's periodic tick is far off: timed work that came up since is
  // ticked within tick_ms all the same.
  const int64_t fast = st.now() + st.setup.tick_ms;
  if (st.next_tick_ms > fast && !quiet(st))
    out.wake_at_ms = out.wake_at_ms > 0 ? std::min(out.wake_at_ms, fast) : fast;
  if (out.wake_at_ms > 0 && (st.wake_at_ms == 0 || out.wake_at_ms < st.wake_at_ms)) {
    st.wake_at_ms = out.wake_at_ms;
    schedule_tick(self, std::max<int64_t>(1, out.wake_at_ms - st.now()), out.wake_at_ms);
  }
  flush_writes(self);
  if (st.up) {
    auto status = st.up->status();
    if (status.welcomed && !st.welcomed) {
      st.welcomed = true;
      log::event(log::level::info, "uplink", "session welcomed",
                 {{"upstream", core::node_id_to_string(status.upstream)}, {"endpoint", st.lnk->peer()},
                  {"skew_ms", status.skew_ms}});
      if (st.setup.supervisor) self->send(st.setup.supervisor, atom::welcome_v);
    }
    if (st.setup.snapshot)
      st.setup.snapshot->update([&](uplink_snapshot::view& v) {
        v.online = status.welcomed && !st.closing;
        keep_status(v, status);
      });
  }
  if (st.down) publish_peer(st, false);
  account(st, false);
  if (st.closing && !st.writing && st.unwritten->empty()) {
    finish(self, *st.closing);
    return;
  }
  bool wants = st.up ? st.up->wants_frame() : st.down->wants_frame();
  if (!st.reading && !st.closing && !st.link_closed && wants) {
    st.reading = true;
    st.lnk->read_next();
  }
}

/// The machine's timer (the periodic tick or a wake it asked for), then its output.
void tick(self_ptr self) {
  auto& st = self->state;
  if (st.up)
    st.up->on_tick(st.now());
  else
    st.down->on_tick(st.now());
  pump(self);
}

session_actor::behavior_type session_fn(self_ptr self, std::shared_ptr<spawn_pack> pack) {
  auto& st = self->state;
  st.setup = std::move(pack->setup);
  st.lnk = std::move(pack->lnk);
  if (!st.setup.clock) st.setup.clock = system_now_ms;
  if (st.setup.tick_ms <= 0) st.setup.tick_ms = 200;
  st.started_ms = st.now();
  st.unwritten.emplace(st.setup.opts.fragment_bytes);
  st.pieces.emplace(st.setup.opts.max_frame_bytes);
  auto& store = *st.setup.store;
  if (st.setup.k == session_setup::kind::uplink) {
    st.up = std::make_unique<uplink_machine>(st.setup.me, st.setup.opts, store);
    if (st.setup.hub) self->send(st.setup.hub, atom::uplink_v, caf::actor_cast<session_actor>(self));
  } else {
    st.down = std::make_unique<downlink_machine>(st.setup.me, st.setup.opts, store, st.setup.admit);
  }
  st.lnk->start(std::make_shared<events_adapter>(self->address()));
  st.reading = true;
  st.next_tick_ms = st.now() + st.setup.tick_ms;
  if (st.up)
    st.up->start(st.now());
  else
    st.down->start(st.now());
  pump(self);
  schedule_tick(self, st.setup.tick_ms, 0);
  return {
      [=](atom::frame, v1::Frame& f) {
        auto& st = self->state;
        if (st.ending) return;
        st.reading = false;
        auto whole = st.pieces->take(std::move(f));
        if (!whole) return finish(self, std::move(whole).err());
        if (*whole) {
          if (st.up)
            st.up->on_frame(std::move(**whole), st.now());
          else
            st.down->on_frame(std::move(**whole), st.now());
        }
        pump(self);
      },
      [=](atom::written, bool ok) {
        auto& st = self->state;
        st.writing = false;
        if (st.ending || !ok) return; // a broken stream: closed follows
        for (size_t n = st.unwritten->written(); n > 0; --n) {
          if (st.up)
            st.up->on_written(st.now());
          else
            st.down->on_written(st.now());
        }
        pump(self);
      },
      [=](atom::closed, error& why) {
        auto& st = self->state;
        st.link_closed = true;
        st.reading = false;
        st.writing = false;
        if (st.ending) return;
        if (st.closing) return finish(self, *st.closing);
        if (!why && st.up) why = error(errc::unavailable, "the upstream ended the session");
        finish(self, std::move(why));
      },
      [=](atom::applied, apply_done& d) {
        auto& st = self->state;
        if (st.ending) return;
        result<storage::apply_result> r = d.err ? result<storage::apply_result>(std::move(d.err))
                                                : result<storage::apply_result>(std::move(d.value));
        if (st.up)
          st.up->on_applied(d.token, std::move(r), st.now());
        else
          st.down->on_applied(d.token, std::move(r), st.now());
        pump(self);
      },
      [=](atom::ack, uint8_t lane, uint64_t seq, error& why) {
        auto& st = self->state;
        if (st.ending || !st.up) return;
        // A full disk fails the retry every tick: one line per 10 s says it.
        if (st.ack_failure_logged_ms == 0 || st.now() - st.ack_failure_logged_ms >= 10'000) {
          st.ack_failure_logged_ms = st.now();
          log::event(log::level::warn, "uplink", "outbox ack failed, retried at the next tick",
                     {{"lane", lane}, {"seq", seq}, {"error", why.to_string()}});
        }
        st.up->on_outbox_ack_failed(lane, seq, st.now());
        pump(self); // the retry is timed work: ticked within tick_ms, not at a quiet tick
      },
      [=](atom::io_done) {
        auto& st = self->state;
        if (st.io_pending > 0) --st.io_pending;
        maybe_exit(self);
      },
      [=](atom::feed, feed_subscription& changed) {
        auto& st = self->state;
        if (st.ending || !st.down) return;
        st.down->on_feed_changed(changed.feeds, st.now());
        pump(self);
      },
      [=](atom::outbox) {
        auto& st = self->state;
        if (st.ending || !st.up) return;
        st.up->on_outbox_changed(st.now());
        pump(self);
      },
      [=](atom::tick) {
        auto& st = self->state;
        if (st.ending) return;
        tick(self);
        if (st.ending) return;
        const int64_t period = tick_period(st);
        st.next_tick_ms = st.now() + period;
        schedule_tick(self, period, 0);
      },
      [=](atom::tick, int64_t at) {
        auto& st = self->state;
        if (st.ending) return;
        if (st.wake_at_ms == at) st.wake_at_ms = 0;
        tick(self);
      },
      [=](atom::stop, error& why) {
        if (!self->state.ending) self->state.stopped = true;
        finish(self, std::move(why));
      },
  };
}

} // namespace

session_actor spawn_session(caf::actor_system& sys, session_setup setup, std::unique_ptr<link> l) {
  auto pack = std::make_shared<spawn_pack>();
  pack->setup = std::move(setup);
  pack->lnk = std::move(l);
  if (pack->setup.own_thread) return sys.spawn<caf::detached>(session_fn, std::move(pack));
  return sys.spawn(session_fn, std::move(pack));
}

} // namespace possync::actors
