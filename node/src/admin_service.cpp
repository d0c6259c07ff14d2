// possync.v1.Admin: the gRPC service over a node's admin_handler, and admin_client.
// Only conversions between admin.proto and admin.hpp live here; what each call does
// is the node's (node.cpp, node_admin.cpp).

#include "possync/node/admin.hpp"

#include <chrono>

#include "grpc_internal.hpp"
#include "grpc_status.hpp"
#include "possync/core/proto_convert.hpp"
#include "possync/v1/admin.grpc.pb.h"

namespace possync::node {

const char* to_string(resolution_mode m) noexcept {
  switch (m) {
  case resolution_mode::server_wins: return "server_wins";
  case resolution_mode::client_wins: return "client_wins";
  case resolution_mode::merged: return "merged";
  case resolution_mode::acknowledged: return "acknowledged";
  }
  return "?";
}

result<resolution_mode> parse_resolution_mode(const std::string& text) {
  if (text == "server_wins" || text == "server-wins" || text == "server") return resolution_mode::server_wins;
  if (text == "client_wins" || text == "client-wins" || text == "client") return resolution_mode::client_wins;
  if (text == "merged" || text == "merge") return resolution_mode::merged;
  if (text == "acknowledged" || text == "ack") return resolution_mode::acknowledged;
  return error(errc::invalid_argument,
               "resolution '" + text + "' is not one of server_wins, client_wins, merged, acknowledged");
}

const char* to_string(command_kind k) noexcept {
  switch (k) {
  case command_kind::full_resync: return "resync";
  case command_kind::reset: return "reset";
  }
  return "?";
}

namespace {

// -- conversions -------------------------------------------------------------------

void to_wire(const node_info& in, v1::NodeInfo* out) {
  out->set_node(in.node);
  out->set_role(static_cast<v1::Role>(in.role));
  out->set_tenant(in.tenant);
  out->set_branch(in.branch);
  out->set_name(in.name);
  out->set_software(in.software);
  out->set_registered(in.registered);
  out->set_revoked(in.revoked);
  out->set_online(in.online);
  out->set_via(in.via);
  out->set_last_seen_ms(in.last_seen_ms);
  out->set_connected_ms(in.connected_ms);
  for (auto p : in.pending) out->add_pending(p);
  out->set_lag_records(in.lag_records);
  out->set_lag_ms(in.lag_ms);
  out->set_skew_ms(in.skew_ms);
  out->set_last_sync_ms(in.last_sync_ms);
  out->set_caught_up(in.caught_up);
  out->set_records_up(in.records_up);
  out->set_records_down(in.records_down);
}

node_info from_wire(const v1::NodeInfo& in) {
  node_info n;
  n.node = in.node();
  n.role = static_cast<storage::node_role>(in.role());
  n.tenant = in.tenant();
  n.branch = in.branch();
  n.name = in.name();
  n.software = in.software();
  n.registered = in.registered();
  n.revoked = in.revoked();
  n.online = in.online();
  n.via = in.via();
  n.last_seen_ms = in.last_seen_ms();
  n.connected_ms = in.connected_ms();
  for (int l = 0; l < in.pending_size() && l < static_cast<int>(n.pending.size()); ++l) n.pending[l] = in.pending(l);
  n.lag_records = in.lag_records();
  n.lag_ms = in.lag_ms();
  n.skew_ms = in.skew_ms();
  n.last_sync_ms = in.last_sync_ms();
  n.caught_up = in.caught_up();
  n.records_up = in.records_up();
  n.records_down = in.records_down();
  return n;
}

void to_wire(const storage::session_audit& in, v1::AuditEntry* out) {
  out->set_seq(in.seq);
  out->set_kind(in.kind);
  out->set_peer(in.peer);
  out->set_peer_role(in.peer_role);
  out->set_started_ms(in.started_ms);
  out->set_ended_ms(in.ended_ms);
  out->set_records_up(in.records_up);
  out->set_records_down(in.records_down);
  out->set_bytes_up(in.bytes_up);
  out->set_bytes_down(in.bytes_down);
  out->set_result(in.result);
  out->set_actor(in.actor);
  out->set_action(in.action);
  out->set_detail(in.detail);
}

storage::session_audit from_wire(const v1::AuditEntry& in) {
  storage::session_audit a;
  a.seq = in.seq();
  a.kind = in.kind();
  a.peer = in.peer();
  a.peer_role = in.peer_role();
  a.started_ms = in.started_ms();
  a.ended_ms = in.ended_ms();
  a.records_up = in.records_up();
  a.records_down = in.records_down();
  a.bytes_up = in.bytes_up();
  a.bytes_down = in.bytes_down();
  a.result = in.result();
  a.actor = in.actor();
  a.action = in.action();
  a.detail = in.detail();
  return a;
}

void to_wire(const conflict_info& in, v1::ConflictInfo* out) {
  out->set_id(in.id);
  core::to_proto(in.key, out->mutable_key());
  out->set_policy(in.policy);
  out->set_rule(in.rule);
  out->set_detected_ms(in.detected_ms);
  out->set_resolved(in.resolved);
  out->set_resolved_by(in.resolved_by);
  out->set_resolution(in.resolution);
  for (const auto& v : in.versions) {
    auto* w = out->add_versions();
    w->set_dot(v.dot);
    w->set_node(v.node);
    w->set_writer_role(v.writer_role);
    w->set_hlc_ms(v.hlc_ms);
    w->set_tombstone(v.tombstone);
    w->set_body_json(v.body_json);
  }
  out->set_current_json(in.current_json);
}

conflict_info from_wire(const v1::ConflictInfo& in) {
  conflict_info c;
  c.id = in.id();
  c.key = core::from_proto(in.key());
  c.policy = in.policy();
  c.rule = in.rule();
  c.detected_ms = in.detected_ms();
  c.resolved = in.resolved();
  c.resolved_by = in.resolved_by();
  c.resolution = in.resolution();
  for (const auto& w : in.versions())
    c.versions.push_back(conflict_version_info{w.dot(), w.node(), w.writer_role(), w.hlc_ms(), w.tombstone(),
                                               w.body_json()});
  c.current_json = in.current_json();
  return c;
}

// -- server ------------------------------------------------------------------------

class admin_service final : public v1::Admin::CallbackService {
public:
  admin_service(std::shared_ptr<admin_handler> h, bool tls) : h_(std::move(h)), tls_(tls) {}

  grpc::ServerUnaryReactor* Status(grpc::CallbackServerContext* ctx, const v1::StatusRequest*,
                                   v1::StatusReply* reply) override {
    return serve(ctx, [&](const std::string&) -> possync::status {
      auto st = h_->status();
      reply->set_node(st.node);
      reply->set_role(static_cast<v1::Role>(st.role));
      for (auto p : st.pending) reply->add_pending(p);
      reply->set_sessions(st.sessions);
      core::to_proto(st.clock, reply->mutable_clock());
      reply->set_tenant(st.tenant);
      reply->set_branch(st.branch);
      reply->set_software(st.software);
      reply->set_online(st.online);
      reply->set_last_sync_ms(st.last_sync_ms);
      reply->set_conflicts_unresolved(st.conflicts_unresolved);
      reply->set_lag_records(st.lag_records);
      return {};
    });
  }

  grpc::ServerUnaryReactor* RevokeToken(grpc::CallbackServerContext* ctx, const v1::RevokeTokenRequest* req,
                                        v1::RevokeTokenReply* reply) override {
    return serve(ctx, [&](const std::string& actor) -> possync::status {
      auto done = h_->revoke_token(req->token_id(), req->node(), req->expires_ms(), req->reason(), actor);
      if (!done) reply->set_revoked_ms(h_->time().wall_ms);
      return done;
    });
  }

  grpc::ServerUnaryReactor* Nodes(grpc::CallbackServerContext* ctx, const v1::NodesRequest* req,
                                  v1::NodesReply* reply) override {
    return serve(ctx, [&](const std::string&) -> possync::status {
      auto ns = h_->nodes(req->branch());
      if (!ns) return ns.err();
      for (const auto& n : *ns) to_wire(n, reply->add_nodes());
      reply->set_now_ms(h_->time().wall_ms);
      return {};
    });
  }

  grpc::ServerUnaryReactor* AuditLog(grpc::CallbackServerContext* ctx, const v1::AuditLogRequest* req,
                                     v1::AuditLogReply* reply) override {
    return serve(ctx, [&](const std::string&) -> possync::status {
      auto es = h_->audit_log(req->limit() == 0 ? 100 : std::min<uint32_t>(req->limit(), 10'000), req->node());
      if (!es) return es.err();
      for (const auto& e : *es) to_wire(e, reply->add_entries());
      return {};
    });
  }

  grpc::ServerUnaryReactor* Conflicts(grpc::CallbackServerContext* ctx, const v1::ConflictsRequest* req,
                                      v1::ConflictsReply* reply) override {
    return serve(ctx, [&](const std::string&) -> possync::status {
      auto cs = h_->conflicts(req->unresolved_only(), req->limit() == 0 ? 100 : std::min<uint32_t>(req->limit(), 10'000));
      if (!cs) return cs.err();
      for (const auto& c : *cs) to_wire(c, reply->add_conflicts());
      return {};
    });
  }

  grpc::ServerUnaryReactor* Conflict(grpc::CallbackServerContext* ctx, const v1::ConflictRequest* req,
                                     v1::ConflictInfo* reply) override {
    return serve(ctx, [&](const std::string&) -> possync::status {
      auto c = h_->conflict(req->id());
      if (!c) return c.err();
      to_wire(*c, reply);
      return {};
    });
  }

  grpc::ServerUnaryReactor* ResolveConflict(grpc::CallbackServerContext* ctx,
                                            const v1::ResolveConflictRequest* req,
                                            v1::ResolveConflictReply* reply) override {
    return serve(ctx, [&](const std::string& actor) -> possync::status {
      auto mode = parse_resolution_mode(req->mode());
      if (!mode) return mode.err();
      auto dot = h_->resolve_conflict(req->id(), *mode, req->body_json(), req->reason(), actor);
      if (!dot) return dot.err();
      reply->set_dot(*dot);
      return {};
    });
  }

  grpc::ServerUnaryReactor* Resync(grpc::CallbackServerContext* ctx, const v1::NodeCommandRequest* req,
                                   v1::NodeCommandReply* reply) override {
    return order(ctx, req, reply, command_kind::full_resync);
  }

  grpc::ServerUnaryReactor* Reset(grpc::CallbackServerContext* ctx, const v1::NodeCommandRequest* req,
                                  v1::NodeCommandReply* reply) override {
    return order(ctx, req, reply, command_kind::reset);
  }

  grpc::ServerUnaryReactor* Time(grpc::CallbackServerContext* ctx, const v1::TimeRequest*,
                                 v1::TimeReply* reply) override {
    return serve(ctx, [&](const std::string&) -> possync::status {
      auto t = h_->time();
      reply->set_wall_ms(t.wall_ms);
      core::to_proto(t.hlc, reply->mutable_hlc());
      return {};
    });
  }

  grpc::ServerUnaryReactor* Backup(grpc::CallbackServerContext* ctx, const v1::BackupRequest* req,
                                   v1::BackupReply* reply) override {
    return serve(ctx, [&](const std::string& actor) -> possync::status {
      if (req->dir().empty()) return error(errc::invalid_argument, "backup needs a directory");
      auto b = h_->backup(req->dir(), actor);
      if (!b) return b.err();
      reply->set_dir(b->dir);
      reply->set_bytes(b->bytes);
      reply->set_files(b->files);
      reply->set_taken_ms(b->taken_ms);
      reply->set_node(b->node);
      return {};
    });
  }

private:
  grpc::ServerUnaryReactor* order(grpc::CallbackServerContext* ctx, const v1::NodeCommandRequest* req,
                                  v1::NodeCommandReply* reply, command_kind kind) {
    return serve(ctx, [&](const std::string& actor) -> possync::status {
      auto r = h_->order(req->node(), kind, req->reason(), actor);
      if (!r) return r.err();
      reply->set_seq(r->seq);
      reply->set_issued_ms(r->issued_ms);
      return {};
    });
  }

  /// Authorizes the caller, runs `fn(actor)` and finishes the call with its status.
  template <class Fn>
  grpc::ServerUnaryReactor* serve(grpc::CallbackServerContext* ctx, Fn&& fn) {
    auto* r = ctx->DefaultReactor();
    std::string actor = "local";  // plaintext: the server listens on loopback only
    if (tls_) {
      actor = detail::peer_certificate_name(ctx);
      if (actor != "admin") {
        r->Finish(to_grpc_status(error(errc::permission_denied,
                                       "the Admin service needs the operator's certificate (common name "
                                       "'admin'), not '" + actor + "'")));
        return r;
      }
    }
    r->Finish(to_grpc_status(fn(actor)));
    return r;
  }

  std::shared_ptr<admin_handler> h_;
  bool tls_;
};

} // namespace

namespace detail {
std::unique_ptr<grpc::Service> make_admin_service(std::shared_ptr<admin_handler> h, bool tls) {
  return std::make_unique<admin_service>(std::move(h), tls);
}
} // namespace detail

// -- client ------------------------------------------------------------------------

struct admin_client::impl {
  std::string endpoint;
  grpc_client_options opts;
  std::shared_ptr<grpc::Channel> channel;
  std::shared_ptr<v1::Admin::Stub> stub;

  ~impl() {
    detail::reap(std::move(stub));
    detail::reap(std::move(channel));
  }

  template <class Req, class Rep, class Method>
  possync::status call(Method m, const Req& req, Rep* rep, int64_t deadline_ms = 0) {
    if (!stub) {
      auto o = opts;
      o.share_channel = false;
      channel = detail::dial(endpoint, o);
      stub = v1::Admin::NewStub(channel);
    }
    grpc::ClientContext ctx;
    if (deadline_ms <= 0) deadline_ms = opts.connect_timeout_ms > 0 ? opts.connect_timeout_ms : 5000;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(deadline_ms));
    auto st = ((*stub).*m)(&ctx, req, rep);
    if (st.ok()) return {};
    auto e = from_grpc_status(st);
    return error(e.code, endpoint + ": " + e.message);
  }
};

admin_client::admin_client(std::string endpoint, grpc_client_options opts) : impl_(std::make_unique<impl>()) {
  impl_->endpoint = std::move(endpoint);
  impl_->opts = std::move(opts);
}
admin_client::~admin_client() = default;
admin_client::admin_client(admin_client&&) noexcept = default;
admin_client& admin_client::operator=(admin_client&&) noexcept = default;

result<admin_status> admin_client::status() {
  v1::StatusRequest req;
  v1::StatusReply rep;
  if (auto e = impl_->call(&v1::Admin::Stub::Status, req, &rep)) return e;
  admin_status s;
  s.node = rep.node();
  s.role = static_cast<storage::node_role>(rep.role());
  s.tenant = rep.tenant();
  s.branch = rep.branch();
  s.software = rep.software();
  for (int l = 0; l < rep.pending_size() && l < static_cast<int>(s.pending.size()); ++l) s.pending[l] = rep.pending(l);
  s.sessions = rep.sessions();
  s.online = rep.online();
  s.last_sync_ms = rep.last_sync_ms();
  s.conflicts_unresolved = rep.conflicts_unresolved();
  s.lag_records = rep.lag_records();
  s.clock = core::from_proto(rep.clock());
  return s;
}

possync::status admin_client::revoke_token(const std::string& token_id, uint64_t node, int64_t expires_ms,
                                           const std::string& reason) {
  v1::RevokeTokenRequest req;
  req.set_token_id(token_id);
  req.set_node(node);
  req.set_expires_ms(expires_ms);
  req.set_reason(reason);
  v1::RevokeTokenReply rep;
  return impl_->call(&v1::Admin::Stub::RevokeToken, req, &rep);
}

result<std::vector<node_info>> admin_client::nodes(const std::string& branch) {
  v1::NodesRequest req;
  req.set_branch(branch);
  v1::NodesReply rep;
  if (auto e = impl_->call(&v1::Admin::Stub::Nodes, req, &rep)) return e;
  std::vector<node_info> out;
  for (const auto& n : rep.nodes()) out.push_back(from_wire(n));
  return out;
}

result<std::vector<storage::session_audit>> admin_client::audit_log(size_t limit, core::node_id node) {
  v1::AuditLogRequest req;
  req.set_limit(static_cast<uint32_t>(std::min<size_t>(limit, UINT32_MAX)));
  req.set_node(node);
  v1::AuditLogReply rep;
  if (auto e = impl_->call(&v1::Admin::Stub::AuditLog, req, &rep)) return e;
  std::vector<storage::session_audit> out;
  for (const auto& a : rep.entries()) out.push_back(from_wire(a));
  return out;
}

result<std::vector<conflict_info>> admin_client::conflicts(bool unresolved_only, size_t limit) {
  v1::ConflictsRequest req;
  req.set_unresolved_only(unresolved_only);
  req.set_limit(static_cast<uint32_t>(std::min<size_t>(limit, UINT32_MAX)));
  v1::ConflictsReply rep;
  if (auto e = impl_->call(&v1::Admin::Stub::Conflicts, req, &rep)) return e;
  std::vector<conflict_info> out;
  for (const auto& c : rep.conflicts()) out.push_back(from_wire(c));
  return out;
}

result<conflict_info> admin_client::conflict(uint64_t id) {
  v1::ConflictRequest req;
  req.set_id(id);
  v1::ConflictInfo rep;
  if (auto e = impl_->call(&v1::Admin::Stub::Conflict, req, &rep)) return e;
  return from_wire(rep);
}

result<std::string> admin_client::resolve_conflict(uint64_t id, resolution_mode mode, const std::string& body_json,
                                                   const std::string& reason) {
  v1::ResolveConflictRequest req;
  req.set_id(id);
  req.set_mode(to_string(mode));
  req.set_body_json(body_json);
  req.set_reason(reason);
  v1::ResolveConflictReply rep;
  if (auto e = impl_->call(&v1::Admin::Stub::ResolveConflict, req, &rep)) return e;
  return rep.dot();
}

result<command_receipt> admin_client::order(core::node_id node, command_kind kind, const std::string& reason) {
  v1::NodeCommandRequest req;
  req.set_node(node);
  req.set_reason(reason);
  v1::NodeCommandReply rep;
  auto m = kind == command_kind::reset ? &v1::Admin::Stub::Reset : &v1::Admin::Stub::Resync;
  if (auto e = impl_->call(m, req, &rep)) return e;
  return command_receipt{rep.seq(), rep.issued_ms()};
}

result<time_info> admin_client::time() {
  v1::TimeRequest req;
  v1::TimeReply rep;
  if (auto e = impl_->call(&v1::Admin::Stub::Time, req, &rep)) return e;
  return time_info{rep.wall_ms(), core::from_proto(rep.hlc())};
}

} // namespace possync::node

namespace possync::node {

result<backup_info> admin_client::backup(const std::string& dir) {
  v1::BackupRequest req;
  req.set_dir(dir);
  v1::BackupReply rep;
  // A checkpoint of a large store takes a while (hard links, plus a memtable flush).
  if (auto e = impl_->call(&v1::Admin::Stub::Backup, req, &rep, 10 * 60'000)) return e;
  backup_info b;
  b.dir = rep.dir();
  b.bytes = rep.bytes();
  b.files = rep.files();
  b.taken_ms = rep.taken_ms();
  b.node = rep.node();
  return b;
}

} // namespace possync::node
