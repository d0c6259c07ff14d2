// The node runtime: store, actors, gRPC server and uplink supervisor of one node.

#include "possync/node/node.hpp"

#include <algorithm>
#include <chrono>
#include <fstream>
#include <condition_variable>
#include <deque>
#include <future>
#include <map>
#include <mutex>

#include <set>
#include <sstream>
#include <thread>
#include <unordered_map>

#include "possync/actors/hub.hpp"
#include "possync/actors/log.hpp"
#include "possync/actors/session_actor.hpp"
#include "possync/actors/store_actor.hpp"
#include "possync/actors/supervisor.hpp"
#include "possync/node/grpc_transport.hpp"
#include "http_server.hpp"
#include "possync/node/metrics.hpp"
#include "possync/node/status_page.hpp"
#include "operator.hpp"
#include "registry.hpp"
#include "runtime_impl.hpp"

namespace possync::node {

namespace {

using namespace std::chrono_literals;

/// Bound on how long stop() waits for actors to end (they end in milliseconds unless
/// something is badly wrong; stop() must return anyway).
constexpr auto stop_deadline = 10s;

/// The actors of a node that stop() waits for, and its downlink sessions.
struct live_set {
  std::mutex mu;
  std::condition_variable cv;
  size_t actors = 0;
  bool closing = false;
  bool resetting = false;  // node::reset: refuse new downstream sessions
  uint64_t next_id = 0;
  std::map<uint64_t, actors::session_actor> downlinks;

  template <class Handle>
  void track(const Handle& h, std::shared_ptr<live_set> self, bool downlink) {
    uint64_t id = 0;
    {
      std::lock_guard<std::mutex> lk(mu);
      ++actors;
      if constexpr (std::is_same_v<Handle, actors::session_actor>) {
        if (downlink) {
          id = ++next_id;
          downlinks.emplace(id, h);
        }
      }
    }
    h->attach_functor([self = std::move(self), id] {
      std::lock_guard<std::mutex> lk(self->mu);
      --self->actors;
      if (id != 0) self->downlinks.erase(id);
      self->cv.notify_all();
    });
  }

  bool wait_until(size_t at_most, std::chrono::steady_clock::time_point deadline) {
    std::unique_lock<std::mutex> lk(mu);
    return cv.wait_until(lk, deadline, [&] { return actors <= at_most; });
  }
};

int64_t now_ms() {
  return actors::system_now_ms();
}

#ifdef POSSYNC_VERSION
constexpr const char* software_version = POSSYNC_VERSION;
#else
constexpr const char* software_version = "";
#endif

/// What a branch last reported to HQ about one terminal (node_presence).
struct presence_mark {
  bool online = false;
  int64_t at_ms = 0;
  std::array<uint64_t, core::lane_count> pending{};
  uint64_t lag_records = 0;
  int64_t last_sync_ms = 0;
  bool caught_up = false;
  bool same_figures(const actors::peer_view& v) const {
    return pending == v.pending && lag_records == v.lag_records && last_sync_ms == v.last_sync_ms &&
           caught_up == v.caught_up;
  }
};

/// Hellos per node in a sliding minute (max_hellos_per_minute). Thread-safe: session
/// actors admit concurrently.
class hello_limiter {
public:
  bool allow(core::node_id node, int64_t now, uint32_t per_minute) {
    if (per_minute == 0) return true;
    std::lock_guard<std::mutex> lk(mu_);
    auto& q = seen_[node];
    while (!q.empty() && now - q.front() >= 60'000)
      q.pop_front();
    if (q.size() >= per_minute) return false;
    q.push_back(now);
    if (seen_.size() > 100'000) prune(now);
    return true;
  }

private:
  void prune(int64_t now) {
    for (auto it = seen_.begin(); it != seen_.end();)
      it = it->second.empty() || now - it->second.back() >= 60'000 ? seen_.erase(it) : std::next(it);
  }
  std::mutex mu_;
  std::unordered_map<core::node_id, std::deque<int64_t>> seen_;
};

} // namespace

struct node::impl {
  node_config cfg;
  std::shared_ptr<runtime> rt;
  std::shared_ptr<storage::database> db;
  std::shared_ptr<storage::node_store> store;
  actors::local_identity me;
  actors::store_actor store_h;
  actors::hub_actor hub;
  actors::supervisor_actor sup;
  std::shared_ptr<actors::uplink_snapshot> snap = std::make_shared<actors::uplink_snapshot>();
  std::shared_ptr<live_set> live = std::make_shared<live_set>();
  std::unique_ptr<grpc_server> server;
  std::unique_ptr<detail::http_endpoint> http;
  uint16_t port = 0;
  std::atomic<uint64_t> next_watch{0};
  std::atomic<bool> uplink_enabled{true};
  std::mutex stop_mu;
  bool stopped = false;
  /// Downstream nodes served (or served since start), published by their sessions.
  std::shared_ptr<actors::peer_table> peers = std::make_shared<actors::peer_table>();
  std::shared_ptr<actors::traffic_counters> traffic = std::make_shared<actors::traffic_counters>();
  std::mutex presence_mu;
  std::map<core::node_id, presence_mark> presence;  ///< branch: last report per terminal
  /// Orders from HQ (node_command) are carried out on this thread, one at a time. It
  /// runs only while there is an order to carry out (or retry), so that thousands of
  /// nodes in one process (possync sim) do not hold a thread each.
  std::thread cmd_thread;
  std::mutex cmd_mu;
  std::condition_variable cmd_cv;
  bool cmd_wake = false, cmd_stop = false;
  bool cmd_running = false;                 ///< cmd_thread is in order_loop
  bool cmd_retry = false;                   ///< order thread only: try the current order again in 30 s
  uint64_t cmd_watch = 0;
  uint64_t cmd_executed = 0;                ///< last seq carried out (also in meta "command.done")
  std::atomic<uint64_t> orders_done{0};
  std::mutex operator_mu;                   ///< one operator write (order, resolution) at a time
  std::mutex reset_mu;  // one reset at a time
  std::optional<storage::recover_report> recovered;
  // Retention (sale_retention_days): a thread that purges, then sleeps until the next
  // run or stop().
  std::thread retention;
  std::mutex retention_mu;
  std::condition_variable retention_cv;
  bool retention_stop = false;
  std::atomic<uint64_t> purged{0};

  void run_retention() {
    const int64_t keep_ms = int64_t{cfg.sale_retention_days} * 86'400'000;
    std::unique_lock<std::mutex> lk(retention_mu);
    while (!retention_stop) {
      lk.unlock();
      auto n = store->purge_sales(now_ms() - keep_ms);
      if (n) purged += *n; // an error (disk) is retried at the next run
      lk.lock();
      retention_cv.wait_for(lk, std::chrono::milliseconds(std::max<int64_t>(cfg.retention_interval_ms, 1)),
                            [&] { return retention_stop; });
    }
  }

  /// Waits until every job queued so far through the store actor (applies, acks, io
  /// jobs of sessions that have ended) has been handed on and run.
  bool drain_store_actor(std::chrono::steady_clock::time_point deadline) {
    auto done = std::make_shared<std::promise<void>>();
    auto f = done->get_future();
    caf::anon_send(store_h, actors::atom::io_v, actors::io_job{[done] { done->set_value(); }});
    return f.wait_until(deadline) == std::future_status::ready;
  }

  caf::actor_system& sys() { return *rt->get().sys; }

  /// Conflicts waiting for an operator: not resolved and not superseded by a later
  /// write (at most 100,000 looked at; 0 when the store fails).
  uint64_t unresolved_conflicts() const {
    auto n = detail::count_unresolved(*store, 100'000);
    return n ? *n : 0;
  }

  actors::session_setup session_template() const {
    actors::session_setup s;
    s.me = me;
    s.opts = cfg.session;
    s.store = store;
    s.store_h = store_h;
    s.hub = hub;
    s.ticker = rt->get().ticker;
    s.clock = now_ms;
    s.tick_ms = cfg.tick_ms;
    s.traffic = traffic;
    return s;
  }

  // -- presence (branch) ---------------------------------------------------------

  /// A terminal's session published new figures: report it to HQ when it went online
  /// or offline, or at most every presence_interval_ms when its figures changed.
  void on_peer(const actors::peer_view& v) {
    if (me.role != storage::node_role::branch || v.role != storage::node_role::terminal) return;
    if (cfg.presence_interval_ms <= 0) return;
    {
      std::lock_guard<std::mutex> lk(presence_mu);
      auto& m = presence[v.node];
      const int64_t t = now_ms();
      const bool first = m.at_ms == 0;
      if (!first && m.online == v.online && (m.same_figures(v) || t - m.at_ms < cfg.presence_interval_ms))
        return;
      m.online = v.online;
      m.at_ms = t;
      m.pending = v.pending;
      m.lag_records = v.lag_records;
      m.last_sync_ms = v.last_sync_ms;
      m.caught_up = v.caught_up;
    }
    store->write_async({detail::presence_write(me, v)}, [node = v.node](result<storage::commit_result> r) {
      if (!r)
        log::event(log::level::warn, "presence", "report not stored",
                   {{"peer", device_id(node)}, {"error", r.err().to_string()}});
    });
  }

  // -- orders from HQ (terminal, branch) -------------------------------------------

  void start_orders() {
    if (me.role == storage::node_role::hq || me.branch.empty()) return;
    const std::string mine = device_id(me.node);
    cmd_watch = ++next_watch;
    caf::anon_send(hub, actors::atom::watch_v,
                   actors::change_watch{cmd_watch, [this, mine](const std::vector<storage::change>& cs) {
                                          for (const auto& c : cs)
                                            if (c.key.collection == "node_command" && c.key.id == mine) {
                                              wake_orders();
                                              return;
                                            }
                                        }});
    // One may have arrived before a restart.
    auto pending = detail::next_command(*store, me);
    if (!pending || (*pending && (*pending)->seq > cmd_executed)) wake_orders();
  }

  void wake_orders() {
    std::lock_guard<std::mutex> lk(cmd_mu);
    if (cmd_stop) return;
    cmd_wake = true;
    if (cmd_running) {
      cmd_cv.notify_one();
      return;
    }
    // The previous thread left order_loop (cmd_running false under cmd_mu): joining it
    // waits at most for its return.
    if (cmd_thread.joinable()) cmd_thread.join();
    cmd_running = true;
    cmd_thread = std::thread([this] { order_loop(); });
  }

  void stop_orders() {
    {
      std::lock_guard<std::mutex> lk(cmd_mu);
      cmd_stop = true;
      cmd_cv.notify_one();
    }
    if (cmd_thread.joinable()) cmd_thread.join();
  }

  void order_loop() {
    std::unique_lock<std::mutex> lk(cmd_mu);
    for (;;) {
      if (cmd_retry && !cmd_wake && !cmd_stop) cmd_cv.wait_for(lk, 30s, [&] { return cmd_wake || cmd_stop; });
      if (cmd_stop || (!cmd_wake && !cmd_retry)) {
        cmd_running = false;
        return;
      }
      cmd_wake = false;
      cmd_retry = false;
      lk.unlock();
      run_order();
      lk.lock();
    }
  }

  /// Carries out the order addressed to this node, once: it is marked done (meta
  /// "command.done") before it runs, so a crash in between skips it rather than
  /// repeating a reset; the operator sees the outcome in the audit log.
  void run_order() {
    auto next = detail::next_command(*store, me);
    if (!next) {
      log::event(log::level::warn, "orders", "cannot read orders", {{"error", next.err().to_string()}});
      return;
    }
    if (!*next || (*next)->seq <= cmd_executed) return;
    const auto c = **next;
    const uint64_t before = cmd_executed;
    if (auto e = detail::command_done(*store, c.seq)) {
      log::event(log::level::error, "orders", "order not carried out yet: cannot note it; retrying",
                 {{"seq", c.seq}, {"error", e.to_string()}});
      cmd_retry = true;
      return;
    }
    cmd_executed = c.seq;
    log::event(log::level::info, "orders", "order from HQ", {{"seq", c.seq}, {"kind", to_string(c.kind)}, {"reason", c.reason}});
    possync::status r = c.kind == command_kind::full_resync ? full_resync() : reset("ordered by HQ: " + c.reason);
    // A reset emptied the store, meta included: note the order again, or a restart
    // would carry it out a second time (this process's cmd_executed guards until then).
    if (c.kind == command_kind::reset) (void)detail::command_done(*store, c.seq);
    (void)detail::audit_action(*store, "hq", to_string(c.kind), me.node,
                               std::string(to_string(c.kind)) + " #" + std::to_string(c.seq) +
                                   (c.reason.empty() ? "" : ": " + c.reason),
                               r ? r.to_string() : "ok", now_ms());
    log::event(r ? log::level::warn : log::level::info, "orders", r ? "order failed" : "order carried out",
               {{"seq", c.seq}, {"kind", to_string(c.kind)}, {"result", r ? r.to_string() : "ok"}});
    if (r && (r.code == errc::deadline_exceeded || r.code == errc::unavailable)) {
      // Nothing was done (sessions did not end in time, disk): run it again later.
      cmd_executed = before;
      (void)detail::command_done(*store, before);
      cmd_retry = true;
      return;
    }
    ++orders_done;
  }

  /// node::reset: rebuild the store from upstream keeping the unsent outbox.
  possync::status reset(const std::string& reason);
  /// node::backup.
  result<backup_info> backup(const std::string& target_dir);

  possync::status full_resync() {
    if (!sup) return error(errc::failed_precondition, "this node has no upstream");
    std::lock_guard<std::mutex> one(reset_mu);  // never while a reset empties the store
    core::node_id upstream = snap->get().status.upstream;
    if (upstream == 0) {
      auto m = store->get_meta("sync.upstream");
      if (!m) return m.err();
      if (m->has_value()) upstream = core::parse_node_id(**m).value_or(0);
    }
    const bool was_enabled = uplink_enabled.load();
    caf::anon_send(sup, actors::atom::enable_v, false);
    // The session must be gone before its cursors are cleared, or it could save one again.
    const auto deadline = std::chrono::steady_clock::now() + 5s;
    while (snap->get().session && std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(2ms);
    possync::status result;
    if (snap->get().session)
      result = error(errc::deadline_exceeded, "the uplink session did not stop in time");
    else if (upstream != 0)
      result = store->clear_cursors(upstream);
    if (was_enabled) caf::anon_send(sup, actors::atom::enable_v, true);
    return result;
  }

  node_status status() const {
    node_status s;
    s.node = me.node;
    s.role = me.role;
    s.tenant = me.tenant;
    s.branch = me.branch;
    auto v = snap->get();
    s.online = v.online;
    s.upstream = v.endpoint;
    s.caught_up = v.status.caught_up;
    s.last_sync_ms = v.status.last_sync_ms;
    s.lag_records = v.status.lag_records;
    s.skew_ms = v.status.skew_ms;
    s.uplink_restarts = v.restarts;
    s.last_error = v.last_error;
    s.rejected = v.status.stats.rejected;
    s.last_rejection = v.status.last_rejection;
    s.pending = store->pending();
    {
      std::lock_guard<std::mutex> lk(live->mu);
      s.downstream_sessions = static_cast<uint32_t>(live->downlinks.size());
    }
    s.port = port;
    return s;
  }

  // -- operator calls --------------------------------------------------------------

  result<std::vector<node_info>> nodes(const std::string& branch) const {
    return detail::list_nodes(*store, me, peers->all(), branch, now_ms());
  }

  result<std::vector<conflict_info>> conflicts(bool unresolved_only, size_t limit) const {
    return detail::list_conflicts(*store, unresolved_only, limit);
  }

  result<conflict_info> conflict(uint64_t id) const {
    auto c = store->conflict(id);
    if (!c) return std::move(c).err();
    return detail::describe_conflict(*store, *c);
  }

  result<std::string> resolve(uint64_t id, resolution_mode mode, const std::string& body_json,
                              const std::string& reason, const std::string& actor) {
    std::lock_guard<std::mutex> one(operator_mu);
    return detail::resolve_conflict(*store, id, mode, body_json, reason, actor, now_ms());
  }

  result<command_receipt> order(core::node_id target, command_kind kind, const std::string& reason,
                                const std::string& actor) {
    if (me.role != storage::node_role::hq)
      return error(errc::failed_precondition, std::string("orders are given at HQ; this node is a ") +
                                                  storage::to_string(me.role));
    std::lock_guard<std::mutex> one(operator_mu);
    return detail::issue_command(*store, me.tenant, target, kind, reason, actor, now_ms());
  }

  std::shared_ptr<const core::token_verifier> tokens;
  std::shared_ptr<hello_limiter> hellos = std::make_shared<hello_limiter>();

  /// node::revoke_token and the Admin service's RevokeToken.
  possync::status revoke_token(const std::string& token_id, uint64_t node, int64_t expires_ms,
                               const std::string& reason) {
    if (me.role != storage::node_role::hq)
      return error(errc::failed_precondition, "tokens are revoked at HQ; this node is a " +
                                                  std::string(storage::to_string(me.role)));
    return detail::revoke_token(*store, me.tenant, token_id, node, expires_ms, reason, now_ms());
  }

  void accept(std::unique_ptr<actors::link> l, bool over_grpc = false) {
    {
      std::lock_guard<std::mutex> lk(live->mu);
      if (live->closing || live->resetting) {
        l->close(error(errc::unavailable, live->closing ? "node stopping" : "node resetting"));
        return;
      }
      if (live->downlinks.size() >= cfg.max_sessions) {
        l->close(error(errc::resource_exhausted, "this node serves at most " + std::to_string(cfg.max_sessions) +
                                                     " sessions at once (max_sessions)"));
        return;
      }
    }
    auto s = session_template();
    s.k = actors::session_setup::kind::downlink;
    auto me_copy = me;
    auto st = store;
    actors::admission_policy policy;
    policy.peer_identity = l->peer_identity();
    policy.require_identity = over_grpc && cfg.tls.enabled();
    policy.tokens = tokens;
    s.admit = [me_copy, st, policy, lim = hellos, per_minute = cfg.max_hellos_per_minute](
                  const v1::Hello& h) mutable -> result<actors::grant> {
      policy.now_ms = now_ms();
      if (!lim->allow(h.node(), policy.now_ms, per_minute))
        return error(errc::resource_exhausted, "node " + core::node_id_to_string(h.node()) + " opened more than " +
                                                   std::to_string(per_minute) +
                                                   " sessions in the last minute; retry later");
      return actors::admit(h, me_copy, *st, policy);
    };
    s.peers = peers;
    auto h = actors::spawn_session(sys(), std::move(s), std::move(l));
    live->track(h, live, true);
  }

  void stop() {
    std::lock_guard<std::mutex> guard(stop_mu);
    if (stopped) return;
    stopped = true;
    peers->set_on_change(nullptr);  // sessions may outlive a stop that runs out of time
    if (cmd_watch != 0 && hub) caf::anon_send(hub, actors::atom::unwatch_v, cmd_watch);
    stop_orders();
    if (retention.joinable()) {
      {
        std::lock_guard<std::mutex> lk(retention_mu);
        retention_stop = true;
      }
      retention_cv.notify_all();
      retention.join();
    }
    std::vector<actors::session_actor> downs;
    {
      std::lock_guard<std::mutex> lk(live->mu);
      live->closing = true;
      for (auto& [id, h] : live->downlinks)
        downs.push_back(h);
    }
    const error why(errc::unavailable, "node stopping");
    if (http) http->stop();
    if (sup) caf::anon_send(sup, actors::atom::stop_v, why);
    for (auto& d : downs)
      caf::anon_send(d, actors::atom::stop_v, why);
    const auto deadline = std::chrono::steady_clock::now() + stop_deadline;
    // Everything but the store actor and the hub.
    live->wait_until(2, deadline);
    if (server) {
      server->shutdown(std::chrono::milliseconds(200));
      server.reset();
    }
    if (store) actors::connect_listener(*store, actors::hub_actor{});
    if (hub) caf::anon_send_exit(hub, caf::exit_reason::user_shutdown);
    if (store_h) caf::anon_send_exit(store_h, caf::exit_reason::user_shutdown);
    live->wait_until(0, deadline);
    // Blocking jobs (session audits) hold the store: let the worker finish ours, so
    // that the store space is free again when stop() returns (a restart reopens it).
    auto done = std::make_shared<std::promise<void>>();
    auto f = done->get_future();
    caf::anon_send(rt->get().worker, actors::atom::io_v, actors::io_job{[done] { done->set_value(); }});
    f.wait_until(deadline);
  }
};

namespace {

/// The Admin service's view of a node.
class node_admin final : public admin_handler {
public:
  explicit node_admin(node::impl* n) : n_(n) {}
  admin_status status() override;
  possync::status revoke_token(const std::string& token_id, uint64_t node, int64_t expires_ms,
                               const std::string& reason, const std::string& actor) override {
    auto r = n_->revoke_token(token_id, node, expires_ms, reason);
    (void)detail::audit_action(*n_->store, actor, "revoke", node, "token " + token_id + (reason.empty() ? "" : ": " + reason),
                               r ? r.to_string() : "ok", now_ms());
    return r;
  }
  result<std::vector<node_info>> nodes(const std::string& branch) override { return n_->nodes(branch); }
  result<std::vector<storage::session_audit>> audit_log(size_t limit, core::node_id node) override {
    if (node == 0) return n_->store->sessions(limit);
    // Filtered: look further back, bounded.
    auto all = n_->store->sessions(std::min<size_t>(limit * 20, 20'000));
    if (!all) return all;
    std::vector<storage::session_audit> out;
    for (auto& a : *all)
      if (a.peer == node && out.size() < limit) out.push_back(std::move(a));
    return out;
  }
  result<std::vector<conflict_info>> conflicts(bool unresolved_only, size_t limit) override {
    return n_->conflicts(unresolved_only, limit);
  }
  result<conflict_info> conflict(uint64_t id) override { return n_->conflict(id); }
  result<std::string> resolve_conflict(uint64_t id, resolution_mode mode, const std::string& body_json,
                                       const std::string& reason, const std::string& actor) override {
    return n_->resolve(id, mode, body_json, reason, actor);
  }
  result<command_receipt> order(core::node_id node, command_kind kind, const std::string& reason,
                                const std::string& actor) override {
    return n_->order(node, kind, reason, actor);
  }
  time_info time() override { return time_info{now_ms(), n_->store->clock_now()}; }
  result<backup_info> backup(const std::string& dir, const std::string& actor) override {
    auto b = n_->backup(dir);
    (void)detail::audit_action(*n_->store, actor, "backup", 0, "into " + dir +
                               (b ? " (" + std::to_string(b->bytes) + " bytes)" : ""),
                               b ? "ok" : b.err().to_string(), now_ms());
    return b;
  }

private:
  node::impl* n_;  // the node outlives its server (stop() shuts the server down first)
};

/// A node that takes back a collection it skipped before fetches its upstream's feeds
/// from the start: while it skipped the collection its cursors moved past every change
/// of it. Meta "sync.skipped" keeps what the node skipped last time, one name per line.
status resync_if_skip_shrank(storage::node_store& store, const std::vector<std::string>& skip) {
  const std::set<std::string> now(skip.begin(), skip.end());
  std::string text;
  for (const auto& c : now)
    text += c + "\n";
  auto before = store.get_meta("sync.skipped");
  if (!before) return before.err();
  if (before->value_or("") == text) return {};
  bool taken_back = false;
  std::istringstream lines(before->value_or(""));
  for (std::string name; std::getline(lines, name);)
    taken_back = taken_back || now.count(name) == 0;
  if (taken_back) {
    auto up = store.get_meta("sync.upstream");
    if (!up) return up.err();
    if (up->has_value())
      if (auto peer = core::parse_node_id(**up); peer && *peer != 0)
        if (auto e = store.clear_cursors(*peer)) return e;
  }
  return store.put_meta("sync.skipped", text);
}

} // namespace

result<std::unique_ptr<node>> node::start(node_config cfg, std::shared_ptr<runtime> rt) {
  if (cfg.tenant.empty()) return error(errc::invalid_argument, "node_config.tenant is required");
  if (cfg.role != storage::node_role::hq && cfg.branch.empty())
    return error(errc::invalid_argument,
                 std::string("node_config.branch is required for a ") + storage::to_string(cfg.role) + " node");
  if (!cfg.db && !cfg.in_memory && cfg.dir.empty())
    return error(errc::invalid_argument, "node_config.dir is required (or db, or in_memory)");
  if (!cfg.skip_collections.empty() && cfg.role != storage::node_role::terminal)
    return error(errc::invalid_argument,
                 std::string("skip_collections is for terminals: a ") + storage::to_string(cfg.role) +
                     " serves its downstream nodes from its own store and must hold all of it");
  if (cfg.tick_ms <= 0) cfg.tick_ms = 200;

  auto i = std::make_unique<impl>();
  storage::store_options so;
  so.space = cfg.space;
  so.role = cfg.role;
  so.node = cfg.node_id;
  so.outbox = cfg.role != storage::node_role::hq;
  if (!cfg.encryption_keyring.empty()) {
    auto c = storage::value_cipher::from_keyring(cfg.encryption_keyring);
    if (!c) return std::move(c).err();
    so.cipher = std::move(c).value();
  }
  auto open_store = [&]() -> possync::status {
    if (cfg.db) {
      i->db = cfg.db;
    } else {
      storage::db_options o;
      o.path = cfg.dir;
      o.in_memory = cfg.in_memory;
      auto db = storage::database::open(o);
      if (!db) return std::move(db).err();
      i->db = *db;
    }
    auto st = storage::node_store::open(i->db, so);
    if (!st) return std::move(st).err();
    i->store = std::shared_ptr<storage::node_store>(std::move(st).value());
    return {};
  };
  auto opened = open_store();
  if (opened && opened.code == errc::data_loss && cfg.recover_on_corruption && !cfg.db && !cfg.in_memory) {
    i->store.reset();
    i->db.reset();
    storage::recover_options ro;
    ro.dir = cfg.dir;
    ro.space = cfg.space;
    ro.role = cfg.role;
    ro.cipher = so.cipher;
    ro.node = cfg.node_id;
    auto rep = storage::recover_store(ro);
    if (!rep)
      return error(rep.err().code, "the store in '" + cfg.dir + "' is damaged (" + opened.message +
                                       ") and recovering it failed: " + rep.err().message);
    i->recovered = std::move(rep).value();
    so.node = i->recovered->node;
    opened = open_store();
  }
  if (opened) return opened;
  i->me = actors::local_identity{i->store->node(), cfg.role,         cfg.tenant, cfg.branch,
                                 cfg.token,        software_version, {}};
  auto asked = actors::download_collections(cfg.role, i->store->registry(), cfg.skip_collections);
  if (!asked) return std::move(asked).err();
  i->me.collections = std::move(asked).value();
  if (auto e = resync_if_skip_shrank(*i->store, cfg.skip_collections)) return e;
  if (!cfg.token_public_key_pem.empty()) {
    auto v = core::token_verifier::from_pem(cfg.token_public_key_pem);
    if (!v) return error(v.err().code, "token public key: " + v.err().message);
    i->tokens = std::make_shared<const core::token_verifier>(std::move(v).value());
  }
  cfg.node_id = i->store->node();

  for (auto d : cfg.devices) {
    if (d.tenant.empty()) d.tenant = cfg.tenant;
    if (auto e = detail::register_device(*i->store, d, now_ms())) return e;
  }

  i->rt = rt ? std::move(rt) : runtime::create();
  auto& rti = i->rt->get();
  i->store_h = actors::spawn_store_actor(*rti.sys, i->store, rti.worker);
  i->live->track(i->store_h, i->live, false);
  i->hub = actors::spawn_hub(*rti.sys, core::node_id_to_string(i->me.node));
  i->live->track(i->hub, i->live, false);
  actors::connect_listener(*i->store, i->hub);
  i->cfg = std::move(cfg);
  auto* raw = i.get();
  i->peers->set_on_change([raw](const actors::peer_view& v) { raw->on_peer(v); });
  if (i->me.role == storage::node_role::branch && i->cfg.presence_interval_ms > 0)
    if (auto e = detail::presence_all_offline(*i->store, i->me))
      log::event(log::level::warn, "presence", "cannot mark last run's terminals offline", {{"error", e.to_string()}});

  if (!i->cfg.listen.empty()) {
    grpc_server_options o;
    o.listen = i->cfg.listen;
    o.gzip = i->cfg.gzip;
    o.stream_window_bytes = i->cfg.stream_window_bytes;
    o.tls = i->cfg.tls;
    o.on_session = [raw](std::unique_ptr<actors::link> l) { raw->accept(std::move(l), true); };
    o.admin = std::make_shared<node_admin>(raw);
    auto srv = grpc_server::start(std::move(o));
    if (!srv) {
      raw->stop();
      return std::move(srv).err();
    }
    i->server = std::move(srv).value();
    i->port = i->server->port();
  }

  if (!i->cfg.upstreams.empty()) {
    actors::supervisor_setup s;
    s.endpoints = i->cfg.upstreams;
    if (i->cfg.connect) {
      s.connect = i->cfg.connect;
    } else {
      grpc_client_options co;
      co.gzip = i->cfg.gzip;
      co.stream_window_bytes = i->cfg.stream_window_bytes;
      co.tls = i->cfg.tls;
      co.server_name = i->cfg.upstream_server_name;
      s.connect = [co](const std::string& endpoint) { return grpc_connect(endpoint, co); };
    }
    s.backoff = i->cfg.backoff;
    s.seed = i->me.node;
    s.session = i->session_template();
    s.session.k = actors::session_setup::kind::uplink;
    s.session.own_thread = i->cfg.uplink_thread;
    s.session.snapshot = i->snap;
    if (!i->cfg.token_file.empty()) {
      s.session.token_source = [file = i->cfg.token_file, fallback = i->cfg.token] {
        std::ifstream in(file);
        std::string t;
        if (!(in >> t)) return fallback;  // unreadable: the upstream refuses, the supervisor retries
        return t;
      };
    }
    i->sup = actors::spawn_supervisor(*rti.sys, std::move(s));
    i->live->track(i->sup, i->live, false);
  }
  i->start_orders();
  if (i->cfg.sale_retention_days > 0 && i->cfg.role != storage::node_role::hq)
    i->retention = std::thread([raw] { raw->run_retention(); });
  auto n = std::unique_ptr<node>(new node(std::move(i)));
  if (!n->impl_->cfg.http_listen.empty()) {
    node* self = n.get();
    detail::http_endpoint::handlers h;
    h.metrics = [self] {
      metrics_extra x;
      auto& db = *self->impl_->db;
      x.commits = db.commits();
      x.commit_groups = db.commit_groups();
      x.commit_latency = db.commit_latency();
      x.conflicts_unresolved = self->impl_->unresolved_conflicts();
      const auto& t = *self->impl_->traffic;
      x.records_in = t.records_in.load();
      x.records_out = t.records_out.load();
      x.bytes_in = t.bytes_in.load();
      x.bytes_out = t.bytes_out.load();
      for (size_t i = 0; i < x.sessions_ended.size(); ++i) x.sessions_ended[i] = t.ended[i].load();
      if (auto ns = self->impl_->nodes("")) {
        x.nodes_known = ns->size();
        for (const auto& n : *ns) x.nodes_online += n.online ? 1 : 0;
      }
      x.version = software_version;
      return render_metrics(self->status(), x);
    };
    h.health = [self]() -> std::pair<int, std::string> {
      auto m = self->impl_->store->get_meta("sync.upstream");
      auto st = self->status();
      std::string role = storage::to_string(st.role);
      if (!m)
        return {503, "{\"status\":\"store unavailable\",\"role\":\"" + role + "\"}"};
      return {200, "{\"status\":\"ok\",\"role\":\"" + role + "\",\"online\":" +
                       (st.online ? "true" : "false") + ",\"sessions\":" + std::to_string(st.downstream_sessions) +
                       "}"};
    };
    h.status = [self]() -> std::pair<int, std::string> {
      status_report r;
      r.self = self->status();
      r.software = software_version;
      r.conflicts_unresolved = self->impl_->unresolved_conflicts();
      r.now_ms = now_ms();
      r.stale_after_ms = self->impl_->cfg.status_stale_after_ms;
      auto nodes = self->nodes();
      if (!nodes) return {503, render_error_json(nodes.err())};
      r.nodes = std::move(nodes).value();
      return {200, render_status_json(r)};
    };
    h.page = &status_page_html;
    auto ep = detail::http_endpoint::start(n->impl_->cfg.http_listen, std::move(h));
    if (!ep) {
      n->stop();
      return std::move(ep).err();
    }
    n->impl_->http = std::move(ep).value();
  }
  return n;
}

node::node(std::unique_ptr<impl> i) : impl_(std::move(i)) {}

admin_status node_admin::status() {
  auto st = n_->status();
  admin_status s;
  s.node = st.node;
  s.role = st.role;
  s.tenant = st.tenant;
  s.branch = st.branch;
  s.software = software_version;
  s.pending = st.pending;
  s.sessions = st.downstream_sessions;
  s.online = st.online;
  s.last_sync_ms = st.last_sync_ms;
  s.lag_records = st.lag_records;
  s.conflicts_unresolved = static_cast<uint32_t>(n_->unresolved_conflicts());
  s.clock = n_->store->clock_now();
  return s;
}

node::~node() {
  if (impl_) impl_->stop();
}

const node_config& node::config() const {
  return impl_->cfg;
}

storage::node_store& node::store() {
  return *impl_->store;
}

uint16_t node::port() const {
  return impl_->port;
}

uint16_t node::http_port() const {
  return impl_->http ? impl_->http->port() : 0;
}

node_status node::status() const {
  return impl_->status();
}

void node::accept(std::unique_ptr<actors::link> l) {
  impl_->accept(std::move(l));
}

void node::sync_now() {
  if (impl_->sup) caf::anon_send(impl_->sup, actors::atom::sync_v);
}

possync::status node::full_resync() {
  return impl_->full_resync();
}

result<backup_info> node::backup(const std::string& target_dir) {
  return impl_->backup(target_dir);
}

result<backup_info> node::impl::backup(const std::string& target_dir) {
  backup_info b;
  b.taken_ms = now_ms();
  if (auto e = db->checkpoint(target_dir)) return e;
  auto usage = storage::dir_usage(target_dir);
  if (!usage) return std::move(usage).err();
  b.dir = target_dir;
  b.bytes = usage->first;
  b.files = usage->second;
  b.node = me.node;
  return b;
}

possync::status node::reset(const std::string& reason) {
  return impl_->reset(reason);
}

possync::status node::impl::reset(const std::string& reason) {
  auto& i = *this;
  if (i.me.role == storage::node_role::hq)
    return error(errc::failed_precondition, "HQ is not reset: it is the source every other node rebuilds from");
  std::lock_guard<std::mutex> one(i.reset_mu);
  const error why(errc::unavailable, "node resetting: " + reason);
  std::vector<actors::session_actor> downs;
  {
    std::lock_guard<std::mutex> lk(i.live->mu);
    if (i.live->closing) return error(errc::unavailable, "node stopping");
    i.live->resetting = true;
    for (auto& [id, h] : i.live->downlinks)
      downs.push_back(h);
  }
  const bool uplink = i.sup && i.uplink_enabled.load();
  if (i.sup) caf::anon_send(i.sup, actors::atom::enable_v, false);
  for (auto& d : downs)
    caf::anon_send(d, actors::atom::stop_v, why);
  // Sessions must be gone, and what they handed to the store actor done, before the
  // store is emptied: a cursor or sync.upstream saved afterwards would skip downloads.
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  auto quiet = [&] {
    std::lock_guard<std::mutex> lk(i.live->mu);
    return i.live->downlinks.empty() && !i.snap->get().session;
  };
  while (!quiet() && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(2ms);
  possync::status result;
  if (!quiet() || !i.drain_store_actor(deadline)) {
    result = error(errc::deadline_exceeded, "reset: the sessions did not end in time; nothing was reset");
  } else {
    storage::start_over_options so;
    so.keep = actors::admission_collections(); // a branch admits its terminals meanwhile
    auto rep = i.store->start_over(std::move(so));
    if (!rep) result = error(rep.err().code, "reset: " + rep.err().message);
  }
  {
    std::lock_guard<std::mutex> lk(i.live->mu);
    i.live->resetting = false;
  }
  if (uplink) caf::anon_send(i.sup, actors::atom::enable_v, true);
  return result;
}

const std::optional<storage::recover_report>& node::recovery() const {
  return impl_->recovered;
}

uint64_t node::sales_purged() const {
  return impl_->purged.load();
}

void node::set_uplink_enabled(bool enabled) {
  impl_->uplink_enabled = enabled;
  if (impl_->sup) caf::anon_send(impl_->sup, actors::atom::enable_v, enabled);
}

possync::status node::revoke_token(const std::string& token_id, core::node_id node, int64_t expires_ms,
                                   const std::string& reason) {
  return impl_->revoke_token(token_id, node, expires_ms, reason);
}

possync::status node::register_device(const device& d) {
  auto copy = d;
  if (copy.tenant.empty()) copy.tenant = impl_->me.tenant;
  return detail::register_device(*impl_->store, copy, now_ms());
}

uint64_t node::subscribe(change_fn fn) {
  const uint64_t id = ++impl_->next_watch;
  if (impl_->hub) caf::anon_send(impl_->hub, actors::atom::watch_v, actors::change_watch{id, std::move(fn)});
  return id;
}

result<std::vector<node_info>> node::nodes(const std::string& branch) const {
  return impl_->nodes(branch);
}

result<std::vector<conflict_info>> node::conflicts(bool unresolved_only, size_t limit) const {
  return impl_->conflicts(unresolved_only, limit);
}

result<conflict_info> node::conflict(uint64_t id) const {
  return impl_->conflict(id);
}

result<std::string> node::resolve_conflict(uint64_t id, resolution_mode mode, const std::string& body_json,
                                           const std::string& reason, const std::string& actor) {
  return impl_->resolve(id, mode, body_json, reason, actor);
}

result<command_receipt> node::order(core::node_id target, command_kind kind, const std::string& reason,
                                    const std::string& actor) {
  return impl_->order(target, kind, reason, actor);
}

uint64_t node::orders_done() const {
  return impl_->orders_done.load();
}

void node::unsubscribe(uint64_t id) {
  if (impl_->hub) caf::anon_send(impl_->hub, actors::atom::unwatch_v, id);
}

void node::stop() {
  impl_->stop();
}

} // namespace possync::node
