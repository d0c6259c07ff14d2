// The node runtime: store, actors, gRPC server and uplink supervisor of one node.

#include "possync/node/node.hpp"

#include <chrono>
#include <fstream>
#include <condition_variable>
#include <deque>
#include <future>
#include <map>
#include <mutex>
#include <thread>
#include <unordered_map>

#include "possync/actors/hub.hpp"
#include "possync/actors/session_actor.hpp"
#include "possync/actors/store_actor.hpp"
#include "possync/actors/supervisor.hpp"
#include "possync/node/grpc_transport.hpp"
#include "http_server.hpp"
#include "possync/node/metrics.hpp"
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
      if (n) purged = *n;  // an error (disk) is retried at the next run
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

  actors::session_setup session_template() const {
    actors::session_setup s;
    s.me = me;
    s.opts = cfg.session;
    s.store = store;
    s.store_h = store_h;
    s.hub = hub;
    s.clock = now_ms;
    s.tick_ms = cfg.tick_ms;
    return s;
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
    auto h = actors::spawn_session(sys(), std::move(s), std::move(l));
    live->track(h, live, true);
  }

  void stop() {
    std::lock_guard<std::mutex> guard(stop_mu);
    if (stopped) return;
    stopped = true;
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
  status_info status() override;
  possync::status revoke_token(const std::string& token_id, uint64_t node, int64_t expires_ms,
                               const std::string& reason) override;

private:
  node::impl* n_;  // the node outlives its server (stop() shuts the server down first)
};

} // namespace

result<std::unique_ptr<node>> node::start(node_config cfg, std::shared_ptr<runtime> rt) {
  if (cfg.tenant.empty()) return error(errc::invalid_argument, "node_config.tenant is required");
  if (cfg.role != storage::node_role::hq && cfg.branch.empty())
    return error(errc::invalid_argument,
                 std::string("node_config.branch is required for a ") + storage::to_string(cfg.role) + " node");
  if (!cfg.db && !cfg.in_memory && cfg.dir.empty())
    return error(errc::invalid_argument, "node_config.dir is required (or db, or in_memory)");
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
  i->me = actors::local_identity{i->store->node(), cfg.role, cfg.tenant, cfg.branch, cfg.token};
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

  if (!i->cfg.listen.empty()) {
    grpc_server_options o;
    o.listen = i->cfg.listen;
    o.gzip = i->cfg.gzip;
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
      co.tls = i->cfg.tls;
      co.server_name = i->cfg.upstream_server_name;
      s.connect = [co](const std::string& endpoint) { return grpc_connect(endpoint, co); };
    }
    s.backoff = i->cfg.backoff;
    s.seed = i->me.node;
    s.session = i->session_template();
    s.session.k = actors::session_setup::kind::uplink;
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
      auto c = self->impl_->store->conflicts(true, 100'000);
      x.conflicts_unresolved = c ? c->size() : 0;
#ifdef POSSYNC_VERSION
      x.version = POSSYNC_VERSION;
#endif
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

admin_handler::status_info node_admin::status() {
  status_info s;
  s.node = n_->me.node;
  s.role = static_cast<uint32_t>(n_->me.role);
  auto p = n_->store->pending();
  s.pending.assign(p.begin(), p.end());
  std::lock_guard<std::mutex> lk(n_->live->mu);
  s.sessions = static_cast<uint32_t>(n_->live->downlinks.size());
  return s;
}

possync::status node_admin::revoke_token(const std::string& token_id, uint64_t node, int64_t expires_ms,
                                         const std::string& reason) {
  return n_->revoke_token(token_id, node, expires_ms, reason);
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
  node_status s;
  s.node = impl_->me.node;
  s.role = impl_->me.role;
  s.tenant = impl_->me.tenant;
  s.branch = impl_->me.branch;
  auto v = impl_->snap->get();
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
  s.pending = impl_->store->pending();
  {
    std::lock_guard<std::mutex> lk(impl_->live->mu);
    s.downstream_sessions = static_cast<uint32_t>(impl_->live->downlinks.size());
  }
  s.port = impl_->port;
  return s;
}

void node::accept(std::unique_ptr<actors::link> l) {
  impl_->accept(std::move(l));
}

void node::sync_now() {
  if (impl_->sup) caf::anon_send(impl_->sup, actors::atom::sync_v);
}

possync::status node::full_resync() {
  auto& i = *impl_;
  if (!i.sup) return error(errc::failed_precondition, "this node has no upstream");
  core::node_id upstream = i.snap->get().status.upstream;
  if (upstream == 0) {
    auto m = i.store->get_meta("sync.upstream");
    if (!m) return m.err();
    if (m->has_value()) upstream = core::parse_node_id(**m).value_or(0);
  }
  const bool was_enabled = i.uplink_enabled.load();
  caf::anon_send(i.sup, actors::atom::enable_v, false);
  // The session must be gone before its cursors are cleared, or it could save one again.
  const auto deadline = std::chrono::steady_clock::now() + 5s;
  while (i.snap->get().session && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(2ms);
  possync::status result;
  if (i.snap->get().session)
    result = error(errc::deadline_exceeded, "the uplink session did not stop in time");
  else if (upstream != 0)
    result = i.store->clear_cursors(upstream);
  if (was_enabled) caf::anon_send(i.sup, actors::atom::enable_v, true);
  return result;
}

result<backup_info> node::backup(const std::string& target_dir) {
  backup_info b;
  b.taken_ms = now_ms();
  if (auto e = impl_->db->checkpoint(target_dir)) return e;
  auto usage = storage::dir_usage(target_dir);
  if (!usage) return std::move(usage).err();
  b.dir = target_dir;
  b.bytes = usage->first;
  b.files = usage->second;
  b.node = impl_->me.node;
  return b;
}

possync::status node::reset(const std::string& reason) {
  auto& i = *impl_;
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
    auto rep = i.store->start_over({});
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

void node::unsubscribe(uint64_t id) {
  if (impl_->hub) caf::anon_send(impl_->hub, actors::atom::unwatch_v, id);
}

void node::stop() {
  impl_->stop();
}

} // namespace possync::node
