// The dialing end of a session: Hello, outbox upload, download of Changes.

#include <algorithm>
#include <deque>
#include <map>
#include <optional>
#include <utility>

#include "possync/actors/lane_scheduler.hpp"
#include "possync/actors/session_machine.hpp"
#include "possync/core/proto_convert.hpp"
#include "session_util.hpp"

namespace possync::actors {

using detail::error_frame;
using detail::frame_name;

struct uplink_machine::state {
  enum class phase { idle, hello_sent, live, closed };

  struct push_in_flight {
    uint64_t last_seq = 0;
    uint64_t records = 0;
  };
  struct lane_state {
    uint64_t pushed = 0;                      ///< outbox seq of the last record pushed
    bool maybe_more = true;                   ///< the outbox may hold entries after `pushed`
    std::deque<storage::outbox_entry> staged; ///< read, not yet pushed
    std::deque<push_in_flight> in_flight;     ///< pushed, not yet acked (push order)
  };
  struct feed_state {
    uint64_t remaining = 0;
    bool caught_up = false;
  };
  /// A Changes frame being applied; completes in arrival order.
  struct pending_changes {
    uint64_t token = 0;
    bool done = false;
    feed_id feed;
    uint64_t remaining = 0;
    bool caught_up = false;
  };

  state(local_identity m, session_options o, storage::node_store& s)
      : me(std::move(m)), opts(o), store(s), sched(o.lower_lane_every), hold(o.urgent_hold_ms) {}

  local_identity me;
  session_options opts;
  storage::node_store& store;
  lane_scheduler sched;
  urgent_hold hold;
  std::deque<apply_request> held; ///< downloaded lower-lane Changes waiting out a hold or for room in the
                                  ///< apply window (arrival order)
  phase ph = phase::idle;
  machine_output out;
  uplink_status st;
  core::node_id hinted = 0; ///< upstream named in meta "sync.upstream"
  uint32_t window = 1;
  core::vectors push_vectors = core::vectors::entries; ///< packed once the Welcome says it reads them
  uint32_t pushes_in_flight = 0;
  std::array<lane_state, core::lane_count> lanes;
  /// Outbox acks that failed, per lane (the newest seq), handed out again at the next tick.
  std::array<uint64_t, core::lane_count> ack_retry{};
  std::map<feed_id, feed_state> feeds;
  std::map<feed_id, uint64_t> hello_cursors;
  std::deque<pending_changes> changes;
  uint32_t applies_in_flight = 0;
  uint64_t next_token = 1;
  int64_t last_sent_ms = 0;
  int64_t last_heartbeat_ms = 0;  ///< a busy session still reports its status this often
  int64_t last_recv_ms = 0;

  void send(v1::Frame f, int64_t now) {
    out.frames.push_back(std::move(f));
    last_sent_ms = now;
  }
  void close(error why) {
    if (ph == phase::closed) return;
    ph = phase::closed;
    out.close = std::move(why);
  }
  /// A protocol or local failure: tell the peer, then end.
  void fail(error why) {
    if (ph == phase::closed) return;
    out.frames.push_back(error_frame(why));
    close(std::move(why));
  }

  void start(int64_t now);
  void on_welcome(const v1::Welcome& w, int64_t now);
  void on_ack(const v1::Ack& a, int64_t now);
  void on_changes(v1::Changes& c, int64_t now);
  void on_command(const v1::Command& c);
  void complete_changes();
  bool fill(uint8_t lane);
  void push_more(int64_t now);
  void check_synced(int64_t now);
  void heartbeat(int64_t now);
  /// A sale is staged or pushed and not yet acked.
  bool sale_in_flight() const { return !lanes[0].in_flight.empty() || !lanes[0].staged.empty(); }
  bool holding(int64_t now) {
    const bool sale = sale_in_flight();
    if (sale) last_sale_ms = now;
    return hold.holding(sale, now);
  }
  int64_t last_sale_ms = -1000000;
  /// Lower-lane applies in flight at most: one while sales are recent, so that the next
  /// sale's own commit waits behind one Changes frame, not a window's group. (A clock
  /// that went back makes no sale recent: it would otherwise slow syncing for as long.)
  uint32_t lower_window(int64_t now) const {
    const bool recent =
        opts.urgent_hold_ms > 0 && now >= last_sale_ms && now - last_sale_ms < 2 * opts.urgent_hold_ms;
    return recent ? 1 : std::max<uint32_t>(1, opts.apply_window);
  }
  void release_held(int64_t now);
  void on_frame(v1::Frame& frame, int64_t now);
  /// Applying and waiting, a second window's worth: this side reads no frames until
  /// one completes. (Reading goes on past a full apply window so that Acks, which share
  /// the stream with Changes, still free push slots.)
  bool backlogged() const {
    return applies_in_flight + held.size() >=
           2 * static_cast<size_t>(std::max<uint32_t>(1, opts.apply_window));
  }
};

void uplink_machine::state::start(int64_t now) {
  if (ph != phase::idle) return;
  last_recv_ms = now;
  auto meta = store.get_meta("sync.upstream");
  if (meta && meta->has_value()) hinted = core::parse_node_id(**meta).value_or(0);

  v1::Frame f;
  auto* h = f.mutable_hello();
  h->set_node(me.node);
  h->set_role(detail::role_to_wire(me.role));
  h->set_tenant(me.tenant);
  h->set_branch(me.branch);
  h->set_protocol_version(protocol_version);
  h->set_token(me.token);
  h->set_software(me.software);
  h->set_writer(store.counter_node());
  h->set_packed_vectors(true);
  for (const auto& c : me.collections)
    h->add_collections(c);
  core::to_proto(store.clock_now(), h->mutable_clock());
  h->set_upstream(hinted);
  std::set<std::string> scopes;
  for (const auto& fd : default_feeds(me.role, me.tenant, me.branch)) {
    if (scopes.insert(fd.scope).second) h->add_scopes(fd.scope);
    uint64_t seq = 0;
    if (hinted != 0) {
      auto c = store.cursor(hinted, fd.tenant, fd.scope, fd.lane);
      if (!c) {
        fail(error(c.err().code, "reading cursors: " + c.err().message));
        return;
      }
      seq = *c;
    }
    hello_cursors[fd] = seq;
    if (seq == 0) continue;
    auto* cur = h->add_cursors();
    cur->set_tenant(fd.tenant);
    cur->set_scope(fd.scope);
    cur->set_lane(fd.lane);
    cur->set_seq(seq);
  }
  ph = phase::hello_sent;
  send(std::move(f), now);
}

void uplink_machine::state::on_welcome(const v1::Welcome& w, int64_t now) {
  if (ph != phase::hello_sent) return fail(error(errc::invalid_argument, "a second Welcome"));
  if (w.node() == 0) return fail(error(errc::invalid_argument, "Welcome without a node id"));
  st.welcomed = true;
  st.upstream = w.node();
  st.skew_ms = w.skew_ms();
  if (w.node() != hinted) {
    out.upstream_welcomed = w.node();
    // The upstream ignored our cursors (they were another node's): it serves from 0.
    for (auto& [fd, seq] : hello_cursors)
      seq = 0;
  }
  if (w.clock().wall_ms() != 0) store.clock_update(core::from_proto(w.clock()));
  window = std::max<uint32_t>(1, opts.push_window);
  if (w.window() > 0) window = std::min(window, w.window());
  push_vectors = w.packed_vectors() ? core::vectors::packed : core::vectors::entries;
  for (const auto& e : w.estimates()) {
    if (e.lane() >= core::lane_count) continue;
    feed_id fd{e.tenant(), e.scope(), static_cast<uint8_t>(e.lane())};
    uint64_t from = hello_cursors.count(fd) ? hello_cursors[fd] : 0;
    feeds[fd].remaining = e.seq() > from ? e.seq() - from : 0;
  }
  if (w.estimates_size() == 0)
    for (const auto& fd : default_feeds(me.role, me.tenant, me.branch))
      feeds[fd];
  ph = phase::live;
  push_more(now);
}

void uplink_machine::state::on_ack(const v1::Ack& a, int64_t now) {
  if (ph != phase::live) return fail(error(errc::invalid_argument, "Ack before Welcome"));
  if (a.lane() >= core::lane_count)
    return fail(error(errc::invalid_argument, "Ack for lane " + std::to_string(a.lane())));
  auto& ls = lanes[a.lane()];
  uint32_t popped = 0;
  uint64_t acked = 0; // last seq of the newest Push this Ack covers
  while (!ls.in_flight.empty() && ls.in_flight.front().last_seq <= a.seq()) {
    st.in_flight[a.lane()] -= std::min(st.in_flight[a.lane()], ls.in_flight.front().records);
    acked = ls.in_flight.front().last_seq;
    ls.in_flight.pop_front();
    ++popped;
  }
  if (popped == 0)
    return fail(error(errc::invalid_argument, "Ack for lane " + std::to_string(a.lane()) + " seq " +
                                                  std::to_string(a.seq()) + " matches no Push in flight"));
  pushes_in_flight -= std::min(pushes_in_flight, popped);
  st.stats.rejected += static_cast<uint64_t>(a.rejected_size());
  if (a.rejected_size() > 0) {
    const auto& r = a.rejected(a.rejected_size() - 1);
    st.last_rejection = core::from_proto(r.key()).to_string() + ": " + r.reason();
  }
  // Only what was pushed leaves the outbox: an Ack naming a later seq (a faulty or
  // hostile upstream) must not delete entries it never received.
  out.outbox_acks.emplace_back(static_cast<uint8_t>(a.lane()), acked);
  push_more(now);
  check_synced(now);
}

void uplink_machine::state::on_changes(v1::Changes& c, int64_t now) {
  if (ph != phase::live) return fail(error(errc::invalid_argument, "Changes before Welcome"));
  const auto& cur = c.cursor();
  if (cur.lane() >= core::lane_count)
    return fail(error(errc::invalid_argument, "Changes for lane " + std::to_string(cur.lane())));
  // A Changes is one feed of this node's tenant, and carries that feed's records only
  // (downlink skip()); anything else is a faulty or hostile upstream, and nothing of it
  // is stored (a failed frame hands out no apply).
  if (cur.tenant() != me.tenant)
    return fail(error(errc::permission_denied, "Changes for tenant '" + cur.tenant() +
                                                   "' sent to a node of tenant '" + me.tenant + "'"));
  pending_changes pc;
  pc.feed = feed_id{cur.tenant(), cur.scope(), static_cast<uint8_t>(cur.lane())};
  pc.remaining = c.remaining();
  pc.caught_up = c.caught_up();
  feeds[pc.feed]; // an upstream may serve more feeds than the defaults
  st.stats.bytes_down += c.ByteSizeLong();
  // Even a Changes without records is applied: its cursor moves past entries that
  // were not for us, durably.
  apply_request req;
  req.records.reserve(static_cast<size_t>(c.records_size()));
  for (const auto& pr : c.records()) {
    auto r = core::from_proto(pr);
    if (!r)
      return fail(error(errc::invalid_argument, "malformed record " + core::from_proto(pr.key()).to_string() +
                                                    " from upstream: " + r.err().message));
    if (r->key.tenant != cur.tenant() || r->key.scope != cur.scope())
      return fail(error(errc::invalid_argument, "record " + r->key.to_string() +
                                                    " in a Changes for tenant '" + cur.tenant() +
                                                    "', scope '" + cur.scope() + "'"));
    req.records.push_back(std::move(r).value());
  }
  st.stats.records_down += req.records.size();
  req.token = next_token++;
  req.from = storage::apply_source{st.upstream, false};
  req.cursor = storage::cursor_update{st.upstream, cur.tenant(), cur.scope(), pc.feed.lane, cur.seq()};
  pc.token = req.token;
  const uint8_t lane = pc.feed.lane;
  changes.push_back(std::move(pc));
  // Lower lanes wait out a sale in flight, and every lane waits for room in the apply
  // window; what is held stays in arrival order.
  if (lane > 0 && (!held.empty() || applies_in_flight >= lower_window(now) || holding(now))) {
    held.push_back(std::move(req));
    release_held(now);
  } else {
    ++applies_in_flight;
    out.applies.push_back(std::move(req));
  }
  complete_changes();
  check_synced(now);
}

void uplink_machine::state::release_held(int64_t now) {
  if (held.empty() || ph != phase::live) return;
  if (holding(now)) {
    // Reading stops at backlogged(), and a sale may follow a sale: the hold's end must
    // come by itself, not with the next frame or Ack read. Asked again whenever the
    // hold is found still running (a timer may fire a little early).
    out.wake_at_ms = hold.ends_at();
    return;
  }
  // At the apply window's pace: released all at once, a hold's worth of frames would
  // be one large commit group, and the next sale's own commit would wait behind it.
  while (!held.empty() && applies_in_flight < lower_window(now)) {
    ++applies_in_flight;
    out.applies.push_back(std::move(held.front()));
    held.pop_front();
  }
}

void uplink_machine::state::complete_changes() {
  while (!changes.empty() && changes.front().done) {
    auto& pc = changes.front();
    auto& fs = feeds[pc.feed];
    fs.remaining = pc.caught_up ? 0 : pc.remaining;
    if (pc.caught_up) fs.caught_up = true;
    changes.pop_front();
  }
  uint64_t lag = 0;
  bool all = !feeds.empty();
  for (const auto& [fd, fs] : feeds) {
    lag += fs.remaining;
    all = all && fs.caught_up;
  }
  st.lag_records = lag;
  st.caught_up = all;
}

void uplink_machine::state::on_command(const v1::Command& c) {
  switch (c.kind()) {
  case v1::Command::KIND_FULL_RESYNC:
  case v1::Command::KIND_RESET:
    out.clear_cursors = true;
    close(error(errc::aborted,
                "full resync ordered by upstream" + (c.reason().empty() ? "" : ": " + c.reason())));
    return;
  case v1::Command::KIND_REVOKE:
    close(error(errc::permission_denied,
                "revoked by upstream" + (c.reason().empty() ? "" : ": " + c.reason())));
    return;
  default:
    return; // unknown commands of a newer upstream are ignored
  }
}

bool uplink_machine::state::fill(uint8_t lane) {
  auto& ls = lanes[lane];
  if (!ls.staged.empty()) return true;
  if (!ls.maybe_more) return false;
  // Nothing queued past what was pushed: no read (a sale wakes every lane's uplink).
  if (store.outbox_head(lane) <= ls.pushed) {
    ls.maybe_more = false;
    return false;
  }
  const size_t limit = std::max<size_t>(1, opts.push_batch);
  auto w = store.outbox_window(lane, ls.pushed, limit);
  if (!w) {
    fail(error(w.err().code, "reading the outbox: " + w.err().message));
    return false;
  }
  if (w->size() < limit) ls.maybe_more = false;
  for (auto& e : *w)
    ls.staged.push_back(std::move(e));
  return !ls.staged.empty();
}

void uplink_machine::state::push_more(int64_t now) {
  // The last slot of the window (of two or more) is the sales lane's: a window full of
  // stock or catalogue Pushes does not keep a sale waiting for their Acks.
  const uint32_t lower_slots = window > 1 ? window - 1 : window;
  while (ph == phase::live && pushes_in_flight < window) {
    std::array<bool, core::lane_count> has_work{};
    for (uint8_t l = 0; l < core::lane_count; ++l)
      has_work[l] = fill(l);
    if (ph != phase::live) return;
    // A hold pushes sales only; the scheduler's share for lower lanes resumes after it.
    std::optional<uint8_t> lane;
    if (pushes_in_flight < lower_slots && !holding(now))
      lane = sched.pick(has_work);
    else if (has_work[0])
      lane = 0;
    if (!lane) return;
    auto& ls = lanes[*lane];
    v1::Frame f;
    auto* p = f.mutable_push();
    p->set_lane(*lane);
    p->set_first_seq(ls.staged.front().seq);
    size_t bytes = 0;
    uint64_t n = 0;
    while (!ls.staged.empty() && n < std::max<size_t>(1, opts.push_batch)) {
      const auto& e = ls.staged.front();
      size_t cost = detail::record_cost(e.rec);
      if (n > 0 && bytes + cost > opts.push_batch_bytes) break;
      bytes += cost;
      core::to_proto(e.rec, p->add_records(), push_vectors);
      p->set_last_seq(e.seq);
      ls.pushed = e.seq;
      ls.staged.pop_front();
      ++n;
    }
    ls.in_flight.push_back(push_in_flight{p->last_seq(), n});
    st.in_flight[*lane] += n;
    ++pushes_in_flight;
    st.stats.records_up += n;
    st.stats.bytes_up += f.ByteSizeLong();
    send(std::move(f), now);
  }
}

void uplink_machine::state::check_synced(int64_t now) {
  if (ph != phase::live || pushes_in_flight != 0 || !changes.empty() || !st.caught_up) return;
  for (auto p : store.pending())
    if (p != 0) return;
  st.last_sync_ms = now;
}

void uplink_machine::state::heartbeat(int64_t now) {
  v1::Frame f;
  auto* hb = f.mutable_heartbeat();
  core::to_proto(store.clock_now(), hb->mutable_clock());
  for (auto p : store.pending())
    hb->add_pending(p);
  hb->set_last_sync_ms(st.last_sync_ms);
  hb->set_lag_records(st.lag_records);
  hb->set_caught_up(st.caught_up);
  last_heartbeat_ms = now;
  send(std::move(f), now);
}

// -- uplink_machine ---------------------------------------------------------------

uplink_machine::uplink_machine(local_identity me, session_options opts, storage::node_store& store)
    : s_(std::make_unique<state>(std::move(me), opts, store)) {}
uplink_machine::~uplink_machine() = default;
uplink_machine::uplink_machine(uplink_machine&&) noexcept = default;
uplink_machine& uplink_machine::operator=(uplink_machine&&) noexcept = default;

void uplink_machine::start(int64_t now_ms) {
  s_->start(now_ms);
}

void uplink_machine::on_frame(v1::Frame&& frame, int64_t now_ms) {
  auto& s = *s_;
  if (s.ph == state::phase::closed || s.ph == state::phase::idle) return;
  s.last_recv_ms = now_ms;
  s.on_frame(frame, now_ms);
  s.release_held(now_ms); // an Ack may have ended the sale's flight
}

void uplink_machine::state::on_frame(v1::Frame& frame, int64_t now) {
  switch (frame.kind_case()) {
  case v1::Frame::kWelcome:
    return on_welcome(frame.welcome(), now);
  case v1::Frame::kAck:
    return on_ack(frame.ack(), now);
  case v1::Frame::kChanges:
    return on_changes(*frame.mutable_changes(), now);
  case v1::Frame::kHeartbeat:
    if (frame.heartbeat().clock().wall_ms() != 0)
      store.clock_update(core::from_proto(frame.heartbeat().clock()));
    return;
  case v1::Frame::kCommand:
    if (ph != state::phase::live) return fail(error(errc::invalid_argument, "Command before Welcome"));
    return on_command(frame.command());
  case v1::Frame::kError:
    return close(error(detail::code_from_wire(frame.error().code()), "upstream: " + frame.error().message()));
  default:
    return fail(
        error(errc::invalid_argument, std::string("unexpected ") + frame_name(frame) + " from upstream"));
  }
}

void uplink_machine::on_applied(uint64_t token, result<storage::apply_result> r, int64_t now_ms) {
  auto& s = *s_;
  if (s.ph == state::phase::closed) return;
  auto it = std::find_if(s.changes.begin(), s.changes.end(),
                         [token](const state::pending_changes& pc) { return pc.token == token && !pc.done; });
  if (it == s.changes.end()) return;
  s.applies_in_flight -= std::min<uint32_t>(s.applies_in_flight, 1);
  if (!r) return s.fail(error(r.err().code, "applying Changes: " + r.err().message));
  it->done = true;
  s.complete_changes();
  s.release_held(now_ms);
  s.check_synced(now_ms);
}

void uplink_machine::on_outbox_changed(int64_t now_ms) {
  auto& s = *s_;
  if (s.ph == state::phase::closed) return;
  for (auto& ls : s.lanes) {
    ls.maybe_more = true;
    // A short staged batch is read again from the last pushed seq: it now goes further.
    if (ls.staged.size() < std::max<size_t>(1, s.opts.push_batch)) ls.staged.clear();
  }
  s.push_more(now_ms);
}

void uplink_machine::on_outbox_ack_failed(uint8_t lane, uint64_t seq, int64_t) {
  auto& s = *s_;
  if (s.ph == state::phase::closed || lane >= core::lane_count) return;
  s.ack_retry[lane] = std::max(s.ack_retry[lane], seq);
}

void uplink_machine::on_written(int64_t) {}

void uplink_machine::on_tick(int64_t now_ms) {
  auto& s = *s_;
  if (s.ph == state::phase::closed || s.ph == state::phase::idle) return;
  // Not reading (own applies and held Changes at the limit): silence says nothing about the upstream.
  if (s.ph == state::phase::live && s.backlogged())
    s.last_recv_ms = std::max(s.last_recv_ms, now_ms - s.opts.idle_timeout_ms / 2);
  if (now_ms - s.last_recv_ms >= s.opts.idle_timeout_ms) {
    s.close(
        error(errc::unavailable, "upstream silent for " + std::to_string(now_ms - s.last_recv_ms) + " ms"));
    return;
  }
  if (s.ph != state::phase::live) return;
  // Every heartbeat_ms, busy or not: the upstream shows its operators our pending
  // counts and lag from them.
  if (now_ms - s.last_heartbeat_ms >= s.opts.heartbeat_ms) s.heartbeat(now_ms);
  for (uint8_t lane = 0; lane < core::lane_count; ++lane)
    if (s.ack_retry[lane] > 0) s.out.outbox_acks.emplace_back(lane, std::exchange(s.ack_retry[lane], 0));
  s.release_held(now_ms);
  s.push_more(now_ms); // lower lanes whose hold ran out
  s.check_synced(now_ms);
}

bool uplink_machine::quiet() const {
  const auto& s = *s_;
  if (s.ph != state::phase::live) return s.ph == state::phase::closed;
  return s.held.empty() && s.hold.ends_at() < 0 &&
         std::all_of(s.ack_retry.begin(), s.ack_retry.end(), [](uint64_t seq) { return seq == 0; });
}

bool uplink_machine::wants_frame() const {
  const auto& s = *s_;
  return s.ph == state::phase::hello_sent || (s.ph == state::phase::live && !s.backlogged());
}

machine_output uplink_machine::take_output() {
  return std::exchange(s_->out, machine_output());
}

uplink_status uplink_machine::status() const {
  return s_->st;
}

} // namespace possync::actors
