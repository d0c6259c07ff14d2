// The accepting end of a session: admission, durable acks of Pushes, serving feeds.

#include <algorithm>
#include <deque>
#include <map>
#include <utility>

#include "possync/actors/lane_scheduler.hpp"
#include "possync/actors/session_machine.hpp"
#include "possync/core/proto_convert.hpp"
#include "session_util.hpp"

namespace possync::actors {

using detail::error_frame;
using detail::frame_name;

namespace {

// Feed reads per serve() call that produce no frame (entries all filtered out)
// before it yields; on_tick() resumes.
constexpr int max_idle_reads = 64;

static_assert(std::tuple_size_v<decltype(session_options::live_pause_ms)> == core::lane_count,
              "one live pause per lane");

} // namespace

struct downlink_machine::state {
  enum class phase { idle, waiting_hello, live, closed };

  struct feed_state {
    feed_id id;
    uint64_t pos = 0;      ///< last feed seq served (read and sent or skipped)
    bool dirty = true;     ///< may have entries after pos
    bool reported = false; ///< a Changes with caught_up has been sent
    /// The last Changes sent told the peer records remained: once the feed is caught
    /// up, the peer is told so even by a Changes without records (the rest may all have
    /// been skipped), or its lag estimate stays at what that frame said.
    bool told_behind = false;
    /// Skip records the peer's store wrote itself (grant::peer_writer): it synced with
    /// this node before (its store holds what it wrote) or this session has caught it
    /// up. A first catch-up sends them, and so does every session after a rebuild of
    /// the peer's store (it writes under a new id then): it may no longer have them.
    bool no_echo = false;
    /// Live pacing (session_options::live_pause_ms): a round serves the feed until it
    /// is caught up; the next round starts no earlier than the pause after this one began.
    bool round_open = false;
    int64_t round_started_ms = 0;
  };
  /// A Push being applied; acked in arrival order within its lane (Acks are per lane
  /// and cumulative; lanes are acked independently, so a sale applied behind a 5 MB
  /// report in flight is acked as soon as it is durable).
  struct pending_push {
    uint64_t token = 0; ///< 0: nothing to apply (every record refused)
    bool done = false;
    uint8_t lane = 0;
    uint64_t last_seq = 0;
    std::vector<v1::Rejection> rejected;
  };

  state(local_identity m, session_options o, storage::node_store& s, admit_fn a)
      : me(std::move(m)), opts(o), store(s), admit(std::move(a)), hold(o.urgent_hold_ms) {}

  local_identity me;
  session_options opts;
  storage::node_store& store;
  admit_fn admit;
  urgent_hold hold;
  phase ph = phase::idle;
  machine_output out;
  downlink_status st;
  std::vector<feed_state> feeds; ///< in lane order (stable within a lane)
  size_t next_feed = 0;
  core::vectors change_vectors = core::vectors::entries; ///< packed if the Hello says it reads them
  uint32_t unsent_changes = 0;
  std::deque<bool> unwritten; ///< frames handed out, not yet written: is it a Changes?
  std::deque<pending_push> pushes;
  uint32_t applies_in_flight = 0;
  uint64_t next_token = 1;
  int64_t started_ms = 0;
  int64_t last_sent_ms = 0;
  int64_t last_recv_ms = 0;
  int64_t last_auth_ms = 0;  ///< last still_admitted() check
  /// admission_changes() when the registry was last read (admission, or a check that
  /// found it changed): unchanged since, a check reads nothing but the token's expiry.
  uint64_t admission_seen = 0;
  uint64_t admission_changes() const {
    static const std::vector<std::string> names = admission_collections();
    uint64_t n = 0;
    for (const auto& c : names)
      n += store.collection_changes(c);
    return n;
  }

  void send(v1::Frame f, int64_t now) {
    const bool is_changes = f.kind_case() == v1::Frame::kChanges;
    if (is_changes) ++unsent_changes;
    unwritten.push_back(is_changes);
    out.frames.push_back(std::move(f));
    last_sent_ms = now;
  }
  void close(error why) {
    if (ph == phase::closed) return;
    ph = phase::closed;
    out.close = std::move(why);
  }
  void fail(error why, int64_t now) {
    if (ph == phase::closed) return;
    send(error_frame(why), now);
    close(std::move(why));
  }

  void on_hello(const v1::Hello& h, int64_t now);
  void on_push(const v1::Push& p, int64_t now);
  void flush_acks(int64_t now);
  void serve(int64_t now);
  bool servable(const feed_state& f, int64_t now) const;
  /// A lane-0 Push of the peer is being applied.
  bool sale_applying() const {
    return std::any_of(pushes.begin(), pushes.end(),
                       [](const pending_push& pp) { return pp.lane == 0 && !pp.done; });
  }
  bool serve_one(feed_state& f, int64_t now);
  bool skip(const feed_state& f, const core::record& r) const;
  void update_caught_up();
  /// Own applies at the window: this side reads no frames until one completes.
  bool window_full() const { return applies_in_flight >= std::max<uint32_t>(1, opts.apply_window); }
  /// The peer does not take what it is sent: more Acks, heartbeats and the like wait
  /// to be written than its push window explains (Changes have a window of their own).
  /// This side reads no frames until they are written, so a peer that pushes and never
  /// reads cannot make it queue Acks without end.
  bool peer_not_reading() const {
    return unwritten.size() - unsent_changes >= 2 * size_t(std::max<uint32_t>(1, opts.push_window)) + 4;
  }
};

void downlink_machine::state::on_hello(const v1::Hello& h, int64_t now) {
  admission_seen = admission_changes(); // before admit() reads the registry
  auto g = admit(h);
  if (!g) return fail(g.err(), now);
  st.admitted = true;
  st.granted = std::move(g).value();
  st.granted.peer = h.node();
  st.granted.peer_writer = h.writer() != 0 ? h.writer() : h.node();
  st.peer_software = h.software().substr(0, 64);
  change_vectors = h.packed_vectors() ? core::vectors::packed : core::vectors::entries;
  if (h.clock().wall_ms() != 0) {
    store.clock_update(core::from_proto(h.clock()));
    st.peer_skew_ms = -core::ms_ahead(h.clock().wall_ms(), static_cast<uint64_t>(std::max<int64_t>(now, 0)));
  }

  std::map<feed_id, uint64_t> cursors;
  if (h.upstream() == me.node)
    for (const auto& c : h.cursors())
      if (c.lane() < core::lane_count)
        cursors[feed_id{c.tenant(), c.scope(), static_cast<uint8_t>(c.lane())}] = c.seq();

  for (const auto& fd : st.granted.feeds) {
    feed_state fs;
    fs.id = fd;
    auto it = cursors.find(fd);
    if (it != cursors.end()) fs.pos = it->second;
    fs.no_echo = h.upstream() == me.node;
    feeds.push_back(std::move(fs));
  }
  std::stable_sort(feeds.begin(), feeds.end(),
                   [](const feed_state& a, const feed_state& b) { return a.id.lane < b.id.lane; });

  v1::Frame f;
  auto* w = f.mutable_welcome();
  w->set_node(me.node);
  w->set_role(detail::role_to_wire(me.role));
  core::to_proto(store.clock_now(), w->mutable_clock());
  w->set_skew_ms(st.peer_skew_ms);
  std::set<std::string> scopes;
  for (const auto& fs : feeds) {
    if (scopes.insert(fs.id.scope).second) w->add_scopes(fs.id.scope);
    auto* e = w->add_estimates();
    e->set_tenant(fs.id.tenant);
    e->set_scope(fs.id.scope);
    e->set_lane(fs.id.lane);
    e->set_seq(std::max(fs.pos, store.lane_head(fs.id.lane)));
  }
  w->set_window(std::max<uint32_t>(1, opts.push_window));
  w->set_packed_vectors(true);
  ph = phase::live;
  send(std::move(f), now);
  out.subscribe = st.granted.feeds;
  out.subscribe_collections = std::make_shared<const std::set<std::string>>(st.granted.collections);
  serve(now);
}

void downlink_machine::state::on_push(const v1::Push& p, int64_t now) {
  if (p.lane() >= core::lane_count)
    return fail(error(errc::invalid_argument, "Push for lane " + std::to_string(p.lane())), now);
  if (p.last_seq() < p.first_seq())
    return fail(error(errc::invalid_argument, "Push with last_seq below first_seq"), now);
  if (static_cast<uint32_t>(p.records_size()) > opts.max_push_records)
    return fail(error(errc::resource_exhausted, "Push of " + std::to_string(p.records_size()) +
                                                    " records; this node accepts at most " +
                                                    std::to_string(opts.max_push_records) + " per Push"),
                now);
  const auto& g = st.granted;
  pending_push pp;
  pp.lane = static_cast<uint8_t>(p.lane());
  pp.last_seq = p.last_seq();
  std::vector<core::record> keep;
  keep.reserve(static_cast<size_t>(p.records_size()));
  for (const auto& pr : p.records()) {
    auto r = core::from_proto(pr);
    auto key = core::from_proto(pr.key());
    if (!r) {
      v1::Rejection rej;
      *rej.mutable_key() = pr.key();
      rej.set_code(static_cast<uint32_t>(errc::invalid_argument));
      rej.set_reason("record " + key.to_string() + ": " + r.err().message);
      pp.rejected.push_back(std::move(rej));
      continue;
    }
    if (auto denied = may_write(g, key, store.registry())) {
      v1::Rejection rej;
      *rej.mutable_key() = pr.key();
      rej.set_code(static_cast<uint32_t>(denied.code));
      rej.set_reason(std::move(denied.message));
      pp.rejected.push_back(std::move(rej));
      continue;
    }
    keep.push_back(std::move(r).value());
  }
  st.stats.records_up += static_cast<uint64_t>(p.records_size());
  st.stats.bytes_up += p.ByteSizeLong();
  if (keep.empty()) {
    pp.done = true;
  } else {
    apply_request req;
    req.token = next_token++;
    req.records = std::move(keep);
    req.from = storage::apply_source{g.peer, true};
    pp.token = req.token;
    ++applies_in_flight;
    out.applies.push_back(std::move(req));
  }
  pushes.push_back(std::move(pp));
  flush_acks(now);
}

void downlink_machine::state::flush_acks(int64_t now) {
  std::array<bool, core::lane_count> blocked{}; // an earlier Push of the lane is still applying
  for (auto it = pushes.begin(); it != pushes.end();) {
    if (!it->done || blocked[it->lane]) {
      blocked[it->lane] = true;
      ++it;
      continue;
    }
    auto& pp = *it;
    v1::Frame f;
    auto* a = f.mutable_ack();
    a->set_lane(pp.lane);
    a->set_seq(pp.last_seq);
    st.stats.rejected += pp.rejected.size();
    for (auto& r : pp.rejected)
      *a->add_rejected() = std::move(r);
    it = pushes.erase(it);
    send(std::move(f), now);
  }
}

bool downlink_machine::state::skip(const feed_state& f, const core::record& r) const {
  if (st.granted.collections.count(r.key.collection) == 0) return true;
  // Never serve what the grant does not cover, whatever the feed index says.
  if (r.key.tenant != f.id.tenant || r.key.scope != f.id.scope) return true;
  // No echo: every version was written by the peer's store as it is now. Versions
  // of its id from before a rebuild went with the old store: they are served.
  return f.no_echo &&
         std::all_of(r.versions.begin(), r.versions.end(),
                     [w = st.granted.peer_writer](const core::version& v) { return v.id.node == w; });
}

// Serves one batch of `f`. Returns true if it sent a frame.
bool downlink_machine::state::serve_one(feed_state& f, int64_t now) {
  const size_t limit = std::max<size_t>(1, opts.changes_batch);
  // Collections outside the grant are stepped over unread (skip() drops them too).
  auto read = store.read_feed(f.id.tenant, f.id.scope, f.id.lane, f.pos, limit, &st.granted.collections);
  if (!read) {
    fail(error(read.err().code, "reading feed: " + read.err().message), now);
    return false;
  }
  v1::Frame fr;
  auto* c = fr.mutable_changes();
  size_t bytes = 0, took = 0;
  uint64_t last = f.pos;
  for (const auto& e : *read) {
    size_t cost = detail::record_cost(e.rec);
    if (took > 0 && bytes + cost > opts.changes_batch_bytes) break;
    ++took;
    last = e.seq;
    if (skip(f, e.rec)) continue;
    bytes += cost;
    core::to_proto(e.rec, c->add_records(), change_vectors);
  }
  const bool caught_up = took == read->size() && read->size() < limit;
  f.pos = last;
  if (f.reported && !f.round_open) {
    f.round_open = true;
    f.round_started_ms = now;
  }
  if (caught_up) {
    f.dirty = false;
    f.round_open = false;
  }
  if (c->records_size() == 0 && (!caught_up || (f.reported && !f.told_behind))) return false;
  auto* cur = c->mutable_cursor();
  cur->set_tenant(f.id.tenant);
  cur->set_scope(f.id.scope);
  cur->set_lane(f.id.lane);
  cur->set_seq(f.pos);
  const uint64_t head = store.lane_head(f.id.lane);
  c->set_remaining(caught_up || head <= f.pos ? 0 : head - f.pos);
  c->set_caught_up(caught_up);
  f.told_behind = c->remaining() > 0;
  if (caught_up) f.reported = f.no_echo = true;
  st.stats.records_down += static_cast<uint64_t>(c->records_size());
  st.stats.bytes_down += c->ByteSizeLong();
  send(std::move(fr), now);
  return true;
}

void downlink_machine::state::serve(int64_t now) {
  int idle_reads = 0;
  // While the peer's sale is applied here, lower-lane feeds wait (bounded: urgent_hold).
  const bool sales_only = hold.holding(sale_applying(), now);
  while (ph == phase::live && unsent_changes < std::max<uint32_t>(1, opts.unsent_frames) && !feeds.empty()) {
    // Round robin over the feeds, each round in lane priority order.
    size_t i = 0;
    for (; i < feeds.size(); ++i) {
      const auto& f = feeds[(next_feed + i) % feeds.size()];
      if ((!sales_only || f.id.lane == 0) && servable(f, now)) break;
    }
    if (i == feeds.size()) break;
    size_t idx = (next_feed + i) % feeds.size();
    next_feed = (idx + 1) % feeds.size();
    if (!serve_one(feeds[idx], now) && ++idle_reads >= max_idle_reads) break;
  }
  update_caught_up();
}

// A dirty feed is served at once while catching up and within an open round; a live
// feed with a pause starts its next round when the pause since the last one has passed
// (on_tick comes back for it).
bool downlink_machine::state::servable(const feed_state& f, int64_t now) const {
  if (!f.dirty) return false;
  if (!f.reported || f.round_open) return true;
  int64_t pause = opts.live_pause_ms[f.id.lane % opts.live_pause_ms.size()];
  if (pause <= 0) return true;
  // Each peer's pause is stretched by up to half (fixed per peer): the sessions of one
  // branch's terminals, woken by the same commit, then drift apart instead of all
  // starting their rounds in the same instant.
  pause += static_cast<int64_t>(st.granted.peer % static_cast<uint64_t>(pause / 2 + 1));
  // A clock that went back (now is wall-clock time) must not hold the feed for hours.
  return now - f.round_started_ms >= pause || now < f.round_started_ms;
}

void downlink_machine::state::update_caught_up() {
  bool all = ph == phase::live;
  for (const auto& f : feeds)
    all = all && f.reported && !f.dirty;
  st.caught_up = all;
}

// -- downlink_machine -------------------------------------------------------------

downlink_machine::downlink_machine(local_identity me, session_options opts, storage::node_store& store,
                                   admit_fn admit)
    : s_(std::make_unique<state>(std::move(me), opts, store, std::move(admit))) {}
downlink_machine::~downlink_machine() = default;
downlink_machine::downlink_machine(downlink_machine&&) noexcept = default;
downlink_machine& downlink_machine::operator=(downlink_machine&&) noexcept = default;

void downlink_machine::start(int64_t now_ms) {
  auto& s = *s_;
  if (s.ph != state::phase::idle) return;
  s.ph = state::phase::waiting_hello;
  s.started_ms = s.last_recv_ms = s.last_sent_ms = s.last_auth_ms = now_ms;
}

void downlink_machine::on_frame(v1::Frame&& frame, int64_t now_ms) {
  auto& s = *s_;
  if (s.ph == state::phase::closed || s.ph == state::phase::idle) return;
  s.last_recv_ms = now_ms;
  s.st.last_recv_ms = now_ms;
  if (s.ph == state::phase::waiting_hello) {
    if (frame.kind_case() != v1::Frame::kHello)
      return s.fail(error(errc::invalid_argument,
                          std::string("the first frame must be Hello, got ") + frame_name(frame)),
                    now_ms);
    return s.on_hello(frame.hello(), now_ms);
  }
  switch (frame.kind_case()) {
  case v1::Frame::kPush:
    return s.on_push(frame.push(), now_ms);
  case v1::Frame::kHeartbeat: {
    const auto& hb = frame.heartbeat();
    if (hb.clock().wall_ms() != 0) s.store.clock_update(core::from_proto(hb.clock()));
    s.st.peer_pending.assign(hb.pending().begin(), hb.pending().end());
    s.st.peer_last_sync_ms = hb.last_sync_ms();
    s.st.peer_lag_records = hb.lag_records();
    s.st.peer_caught_up = hb.caught_up();
    ++s.st.heartbeats;
    return;
  }
  case v1::Frame::kError:
    return s.close(
        error(detail::code_from_wire(frame.error().code()), "downstream: " + frame.error().message()));
  default:
    return s.fail(
        error(errc::invalid_argument, std::string("unexpected ") + frame_name(frame) + " from downstream"),
        now_ms);
  }
}

void downlink_machine::on_applied(uint64_t token, result<storage::apply_result> r, int64_t now_ms) {
  auto& s = *s_;
  if (s.ph == state::phase::closed) return;
  auto it = std::find_if(s.pushes.begin(), s.pushes.end(),
                         [token](const state::pending_push& pp) { return pp.token == token && !pp.done; });
  if (it == s.pushes.end()) return;
  s.applies_in_flight -= std::min<uint32_t>(s.applies_in_flight, 1);
  // Nothing is acked: the downstream replays this Push in a later session.
  if (!r) return s.fail(error(r.err().code, "storing pushed records: " + r.err().message), now_ms);
  for (const auto& rej : r->rejected) {
    v1::Rejection pr;
    core::to_proto(rej.key, pr.mutable_key());
    pr.set_code(static_cast<uint32_t>(rej.why.code));
    pr.set_reason(rej.why.message);
    it->rejected.push_back(std::move(pr));
  }
  it->done = true;
  s.flush_acks(now_ms);
  s.serve(now_ms); // lower lanes held for this sale go on
}

void downlink_machine::on_feed_changed(const std::vector<feed_id>& changed, int64_t now_ms) {
  auto& s = *s_;
  if (s.ph != state::phase::live) return;
  for (auto& f : s.feeds)
    if (std::find(changed.begin(), changed.end(), f.id) != changed.end())
      f.dirty = true;
  s.serve(now_ms);
}

void downlink_machine::on_written(int64_t now_ms) {
  auto& s = *s_;
  if (!s.unwritten.empty()) {
    if (s.unwritten.front()) s.unsent_changes -= std::min<uint32_t>(s.unsent_changes, 1);
    s.unwritten.pop_front();
  }
  s.serve(now_ms);
}

void downlink_machine::on_tick(int64_t now_ms) {
  auto& s = *s_;
  switch (s.ph) {
  case state::phase::idle:
  case state::phase::closed:
    return;
  case state::phase::waiting_hello:
    if (now_ms - s.started_ms >= s.opts.hello_timeout_ms)
      s.fail(error(errc::deadline_exceeded, "no Hello within " + std::to_string(s.opts.hello_timeout_ms) +
                                                " ms of opening the stream"),
             now_ms);
    return;
  case state::phase::live:
    break;
  }
  if (now_ms - s.last_auth_ms >= s.opts.auth_check_ms) {
    s.last_auth_ms = now_ms;
    const uint64_t changes = s.admission_changes();
    const bool reread = changes != s.admission_seen;
    s.admission_seen = changes;
    if (auto why = still_admitted(s.st.granted, s.store, now_ms, reread))
      return s.fail(std::move(why), now_ms);
  }
  // Not reading (own applies at the window): silence says nothing about the downstream.
  // (A peer that takes none of our frames is not excused: it may be gone for good.)
  if (s.window_full()) s.last_recv_ms = std::max(s.last_recv_ms, now_ms - s.opts.idle_timeout_ms / 2);
  if (now_ms - s.last_recv_ms >= s.opts.idle_timeout_ms) {
    s.close(
        error(errc::unavailable, "downstream silent for " + std::to_string(now_ms - s.last_recv_ms) + " ms"));
    return;
  }
  // A heartbeat only when nothing waits to be written: frames still queued tell the peer
  // we are alive once it reads them, and a peer that stalls does not pile heartbeats up
  // (so an honest one never looks like one that does not read: peer_not_reading).
  if (now_ms - s.last_sent_ms >= s.opts.heartbeat_ms && s.unwritten.empty()) {
    v1::Frame f;
    auto* hb = f.mutable_heartbeat();
    core::to_proto(s.store.clock_now(), hb->mutable_clock());
    for (auto p : s.store.pending())
      hb->add_pending(p);
    s.send(std::move(f), now_ms);
  }
  s.serve(now_ms);
}

bool downlink_machine::quiet() const {
  const auto& s = *s_;
  if (s.ph != state::phase::live) return s.ph == state::phase::closed;
  return std::none_of(s.feeds.begin(), s.feeds.end(), [](const state::feed_state& f) { return f.dirty; });
}

bool downlink_machine::wants_frame() const {
  const auto& s = *s_;
  return s.ph == state::phase::waiting_hello ||
         (s.ph == state::phase::live && !s.window_full() && !s.peer_not_reading());
}

machine_output downlink_machine::take_output() {
  return std::exchange(s_->out, machine_output());
}

downlink_status downlink_machine::status() const {
  return s_->st;
}

} // namespace possync::actors
