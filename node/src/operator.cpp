// Operator calls on a node's store: nodes, conflicts, orders, audit.

#include "operator.hpp"

#include <algorithm>
#include <map>
#include <set>

#include "possync/core/policy.hpp"
#include "possync/node/node.hpp"
#include "possync/v1/pos.pb.h"

namespace possync::node::detail {

namespace {

constexpr size_t max_devices = 100'000;

result<std::map<core::node_id, v1::Device>> devices_of(const storage::node_store& store, const std::string& tenant) {
  auto recs = store.records_of(tenant, "", "device", max_devices);
  if (!recs) return std::move(recs).err();
  const auto* info = store.registry().find("device");
  std::map<core::node_id, v1::Device> out;
  for (const auto& r : *recs) {
    auto v = core::resolve(r, info->policy, info->tie);
    v1::Device d;
    if (v.exists && d.ParseFromString(v.body) && d.node() != 0) out[d.node()] = std::move(d);
  }
  return out;
}

bool in_sync(const node_info& n) {
  if (!n.caught_up) return false;
  for (auto p : n.pending)
    if (p != 0) return false;
  return n.lag_records == 0;
}

void fill_from(node_info& n, const actors::peer_view& v) {
  n.online = v.online;
  n.software = v.software;
  n.last_seen_ms = v.last_seen_ms;
  n.connected_ms = v.online ? v.connected_ms : 0;
  n.pending = v.pending;
  n.lag_records = v.lag_records;
  n.skew_ms = v.skew_ms;
  n.last_sync_ms = v.last_sync_ms;
  n.caught_up = v.caught_up;
  n.records_up = v.records_up;
  n.records_down = v.records_down;
}

} // namespace

result<std::vector<node_info>> list_nodes(const storage::node_store& store, const actors::local_identity& me,
                                          const std::vector<actors::peer_view>& direct, const std::string& branch,
                                          int64_t now_ms) {
  auto devs = devices_of(store, me.tenant);
  if (!devs) return std::move(devs).err();
  const bool at_hq = me.role == storage::node_role::hq;
  std::map<core::node_id, node_info> out;
  auto entry = [&](core::node_id id) -> node_info& {
    auto& n = out[id];
    n.node = id;
    if (n.tenant.empty()) n.tenant = me.tenant;
    return n;
  };
  for (const auto& [id, d] : *devs) {
    if (id == me.node) continue;
    if (!at_hq && d.branch() != me.branch) continue;
    auto& n = entry(id);
    n.role = static_cast<storage::node_role>(d.role());
    n.branch = d.branch();
    n.name = d.name();
    n.registered = true;
    n.revoked = d.revoked();
  }
  std::map<core::node_id, bool> online_direct;
  for (const auto& v : direct) {
    auto& n = entry(v.node);
    if (!n.registered) {
      n.role = v.role;
      n.branch = v.branch;
    }
    fill_from(n, v);
    online_direct[v.node] = v.online;
  }
  if (at_hq) {
    std::set<std::string> branches;
    for (const auto& [id, d] : *devs)
      if (!d.branch().empty()) branches.insert(d.branch());
    const auto* info = store.registry().find("node_presence");
    for (const auto& b : branches) {
      auto recs = store.records_of(me.tenant, b, "node_presence", max_devices);
      if (!recs) return std::move(recs).err();
      for (const auto& r : *recs) {
        auto v = core::resolve(r, info->policy, info->tie);
        v1::NodePresence p;
        if (!v.exists || !p.ParseFromString(v.body) || p.node() == 0 || p.node() == me.node) continue;
        if (device_id(p.node()) != r.key.id) continue;  // a report names the node it is filed under
        if (auto d = devs->find(p.node()); d != devs->end() && d->second.branch() != b)
          continue;  // only the node's own branch reports on it
        if (online_direct.count(p.node())) continue;  // served here: first-hand figures win
        core::node_id via = p.reporter();             // the branch node that serves it
        if (via == 0)
          for (const auto& ver : r.versions)
            via = ver.id.node; // a report of an older branch
        auto& n = entry(p.node());
        if (!n.registered) {
          n.role = static_cast<storage::node_role>(p.role());
          n.branch = b;
        }
        actors::peer_view pv;
        pv.online = p.online() && online_direct.count(via) && online_direct[via];
        pv.software = p.software();
        pv.last_seen_ms = p.last_seen_ms();
        pv.connected_ms = p.connected_ms();
        for (int l = 0; l < p.pending_size() && l < static_cast<int>(pv.pending.size()); ++l) pv.pending[l] = p.pending(l);
        pv.lag_records = p.lag_records();
        pv.skew_ms = p.skew_ms();
        pv.last_sync_ms = p.last_sync_ms();
        pv.caught_up = p.caught_up();
        pv.records_up = p.records_up();
        pv.records_down = p.records_down();
        fill_from(n, pv);
        n.via = via;
      }
    }
  }
  std::vector<node_info> list;
  for (auto& [id, n] : out) {
    if (!branch.empty() && n.branch != branch) continue;
    if (!in_sync(n) && n.last_sync_ms > 0) n.lag_ms = std::max<int64_t>(0, now_ms - n.last_sync_ms);
    list.push_back(std::move(n));
  }
  std::sort(list.begin(), list.end(), [](const node_info& a, const node_info& b) {
    if (a.branch != b.branch) return a.branch < b.branch;
    if (a.role != b.role) return static_cast<int>(a.role) > static_cast<int>(b.role);  // branch node first
    if (a.name != b.name) return a.name < b.name;
    return a.node < b.node;
  });
  return list;
}

namespace {

std::string role_of(const std::map<core::node_id, v1::Device>& devs, const core::version& v) {
  if (v.hq) return "hq";
  auto it = devs.find(v.id.node);
  if (it == devs.end()) return "unknown";
  return storage::to_string(static_cast<storage::node_role>(it->second.role()));
}

int rank(const std::string& role) {
  if (role == "hq") return 3;
  if (role == "branch") return 2;
  if (role == "terminal") return 1;
  return 0;
}

} // namespace

result<bool> superseded(const storage::node_store& store, const storage::conflict_entry& c) {
  auto cur = store.get(c.key);
  if (!cur) return std::move(cur).err();
  if (!cur->has_value()) return false;
  const auto ctx = (*cur)->context();
  for (const auto& v : c.versions) {
    if (!ctx.covers(v.id)) return false;
    for (const auto& now : (*cur)->versions)
      if (now.id == v.id) return false;
  }
  return true;
}

result<uint64_t> count_unresolved(const storage::node_store& store, size_t cap) {
  auto cs = store.conflicts(true, cap);
  if (!cs) return std::move(cs).err();
  uint64_t n = 0;
  for (const auto& c : *cs) {
    auto gone = superseded(store, c);
    if (!gone) return std::move(gone).err();
    n += *gone ? 0 : 1;
  }
  return n;
}

status presence_all_offline(storage::node_store& store, const actors::local_identity& me) {
  if (me.branch.empty()) return {};
  auto recs = store.records_of(me.tenant, me.branch, "node_presence", max_devices);
  if (!recs) return std::move(recs).err();
  const auto* info = store.registry().find("node_presence");
  std::vector<storage::write_op> ops;
  for (const auto& r : *recs) {
    auto v = core::resolve(r, info->policy, info->tie);
    v1::NodePresence p;
    if (!v.exists || !p.ParseFromString(v.body) || !p.online()) continue;
    p.set_online(false);
    p.set_connected_ms(0);
    storage::put_op op;
    op.key = r.key;
    op.body = p.SerializeAsString();
    ops.push_back(std::move(op));
  }
  if (ops.empty()) return {};
  auto w = store.write(std::move(ops));
  if (!w) return w.err();
  return {};
}

namespace {

result<conflict_info> describe_with(const storage::node_store& store, const storage::conflict_entry& c,
                                    const std::map<core::node_id, v1::Device>& devs) {
  conflict_info out;
  out.id = c.id;
  out.key = c.key;
  out.policy = c.policy;
  out.rule = c.rule;
  out.detected_ms = static_cast<int64_t>(c.detected.wall_ms);
  out.resolved = c.resolved;
  out.resolved_by = c.resolved_by;
  out.resolution = c.resolution;
  const auto* info = store.registry().find(c.key.collection);
  if (!info) return error(errc::data_loss, "conflict " + std::to_string(c.id) + " names unknown collection '" +
                                               c.key.collection + "'");
  for (const auto& v : c.versions) {
    conflict_version_info w;
    w.dot = v.id.to_string();
    w.node = v.id.node;
    w.writer_role = role_of(devs, v);
    w.hlc_ms = static_cast<int64_t>(v.hlc.wall_ms);
    w.tombstone = v.tombstone;
    if (!v.tombstone) {
      auto j = core::body_to_json(*info, v.body);
      w.body_json = j ? *j : "(unreadable: " + j.err().message + ")";
    }
    out.versions.push_back(std::move(w));
  }
  auto cur = store.get(c.key);
  if (!cur) return std::move(cur).err();
  if (cur->has_value()) {
    auto view = core::resolve(**cur, info->policy, info->tie);
    if (view.exists) {
      auto j = core::body_to_json(*info, view.body);
      out.current_json = j ? *j : "";
    }
  }
  if (!out.resolved) {
    auto gone = superseded(store, c);
    if (!gone) return std::move(gone).err();
    if (*gone) {
      out.resolved = true;
      out.resolution = "superseded";
    }
  }
  return out;
}

} // namespace

result<conflict_info> describe_conflict(const storage::node_store& store, const storage::conflict_entry& c) {
  auto devs = devices_of(store, c.key.tenant);
  if (!devs) return std::move(devs).err();
  return describe_with(store, c, *devs);
}

result<std::vector<conflict_info>> list_conflicts(storage::node_store& store, bool unresolved_only, size_t limit) {
  // Read more than asked: entries superseded meanwhile are skipped.
  auto cs = store.conflicts(unresolved_only, unresolved_only ? std::max<size_t>(limit * 4, 1'000) : limit);
  if (!cs) return std::move(cs).err();
  std::vector<conflict_info> out;
  std::map<std::string, std::map<core::node_id, v1::Device>> devs;  // per tenant, read once
  for (const auto& c : *cs) {
    if (out.size() >= limit) break;
    if (unresolved_only) {
      auto gone = superseded(store, c);
      if (!gone) return std::move(gone).err();
      if (*gone) {
        (void)store.mark_conflict_resolved(c.id, "superseded", "superseded");
        continue;
      }
    }
    auto it = devs.find(c.key.tenant);
    if (it == devs.end()) {
      auto d = devices_of(store, c.key.tenant);
      if (!d) return std::move(d).err();
      it = devs.emplace(c.key.tenant, std::move(d).value()).first;
    }
    auto d = describe_with(store, c, it->second);
    if (!d) return std::move(d).err();
    out.push_back(std::move(d).value());
  }
  return out;
}

result<std::string> resolve_conflict(storage::node_store& store, uint64_t id, resolution_mode mode,
                                     const std::string& body_json, const std::string& reason,
                                     const std::string& actor, int64_t now_ms) {
  auto c = store.conflict(id);
  if (!c) return std::move(c).err();
  if (c->resolved)
    return error(errc::failed_precondition, "conflict " + std::to_string(id) + " is already resolved (" +
                                                c->resolution + " by " + c->resolved_by + ")");
  auto gone = superseded(store, *c);
  if (!gone) return std::move(gone).err();
  if (*gone)
    return error(errc::failed_precondition, "conflict " + std::to_string(id) + " on " + c->key.to_string() +
                                                " was superseded by a later write; nothing to resolve");
  const auto* info = store.registry().find(c->key.collection);
  if (!info) return error(errc::data_loss, "conflict names unknown collection '" + c->key.collection + "'");
  if (mode == resolution_mode::acknowledged) {
    if (auto e = store.mark_conflict_resolved(id, actor, to_string(mode))) return e;
    std::string detail = "conflict " + std::to_string(id) + " on " + c->key.to_string() + ": acknowledged";
    if (!reason.empty()) detail += "; " + reason;
    if (auto e = audit_action(store, actor, "resolve", 0, detail, "ok", now_ms)) return e;
    return std::string();
  }
  if (info->policy == core::policy::counter || info->policy == core::policy::immutable)
    return error(errc::failed_precondition, "collection '" + info->name + "' (" + core::to_string(info->policy) +
                                                ") keeps its versions: close the conflict with --mode acknowledged");
  storage::put_op op;
  op.key = c->key;
  core::version_vector ctx;
  for (const auto& v : c->versions) ctx.merge(v.history());
  op.context = ctx;
  if (mode == resolution_mode::merged) {
    auto body = core::body_from_json(*info, body_json);
    if (!body) return std::move(body).err();
    op.body = std::move(body).value();
  } else {
    auto devs = devices_of(store, c->key.tenant);
    if (!devs) return std::move(devs).err();
    const core::version* pick = nullptr;
    for (const auto& v : c->versions) {
      if (!pick) {
        pick = &v;
        continue;
      }
      const int a = rank(role_of(*devs, v)), b = rank(role_of(*devs, *pick));
      const bool better = mode == resolution_mode::server_wins ? a > b : a < b;
      if (better || (a == b && pick->hlc < v.hlc)) pick = &v;
    }
    if (!pick) return error(errc::invalid_argument, "conflict " + std::to_string(id) + " has no versions");
    op.body = pick->body;
    op.tombstone = pick->tombstone;
  }
  auto r = store.write({std::move(op)});
  if (!r) return std::move(r).err();
  std::string dot;
  for (const auto& ch : r->changes)
    if (ch.key == c->key && ch.dot) dot = ch.dot->to_string();
  if (auto e = store.mark_conflict_resolved(id, actor, to_string(mode))) return e;
  std::string detail = "conflict " + std::to_string(id) + " on " + c->key.to_string() + ": " + to_string(mode) +
                       " (version " + dot + ")";
  if (!reason.empty()) detail += "; " + reason;
  if (auto e = audit_action(store, actor, "resolve", 0, detail, "ok", now_ms)) return e;
  return dot;
}

result<command_receipt> issue_command(storage::node_store& store, const std::string& tenant, core::node_id target,
                                      command_kind kind, const std::string& reason, const std::string& actor,
                                      int64_t now_ms) {
  auto dev = store.read(core::record_key{tenant, "", "device", device_id(target)});
  if (!dev) return std::move(dev).err();
  v1::Device d;
  if (!dev->exists || !d.ParseFromString(dev->body))
    return error(errc::not_found, "node " + device_id(target) + " is not registered in tenant '" + tenant + "'");
  if (d.branch().empty())
    return error(errc::invalid_argument, "node " + device_id(target) + " has no branch: only terminals and "
                                                                      "branch nodes take orders");
  core::record_key key{tenant, d.branch(), "node_command", device_id(target)};
  auto cur = store.read(key);
  if (!cur) return std::move(cur).err();
  v1::NodeCommand cmd;
  uint64_t seq = 1;
  bool pending_reset = false;
  if (cur->exists && cmd.ParseFromString(cur->body)) {
    seq = cmd.seq() + 1;
    pending_reset = cmd.kind() == v1::NodeCommand::KIND_RESET && now_ms - cmd.issued_ms() < 86'400'000;
  }
  // One record per node holds its latest order, so an order the node has not received
  // yet is replaced by the next. A reset includes a resync: a resync ordered after a
  // reset stays a reset (HQ cannot tell whether the node ran it; one more reset keeps
  // every unsent sale, so it is safe) — for a day after the reset was ordered.
  if (kind == command_kind::full_resync && pending_reset) kind = command_kind::reset;
  cmd.Clear();
  cmd.set_node(target);
  cmd.set_seq(seq);
  cmd.set_kind(kind == command_kind::reset ? v1::NodeCommand::KIND_RESET : v1::NodeCommand::KIND_FULL_RESYNC);
  cmd.set_reason(reason);
  cmd.set_issued_ms(now_ms);
  cmd.set_issued_by(actor);
  storage::put_op op;
  op.key = key;
  op.body = cmd.SerializeAsString();
  auto r = store.write({std::move(op)});
  if (!r) return std::move(r).err();
  std::string detail = std::string(to_string(kind)) + " #" + std::to_string(seq);
  if (!reason.empty()) detail += ": " + reason;
  if (auto e = audit_action(store, actor, to_string(kind), target, detail, "ok", now_ms)) return e;
  return command_receipt{seq, now_ms};
}

result<std::optional<pending_command>> next_command(const storage::node_store& store,
                                                    const actors::local_identity& me) {
  if (me.branch.empty()) return std::optional<pending_command>();
  auto cur = store.read(core::record_key{me.tenant, me.branch, "node_command", device_id(me.node)});
  if (!cur) return std::move(cur).err();
  v1::NodeCommand cmd;
  if (!cur->exists || !cmd.ParseFromString(cur->body) || cmd.node() != me.node) return std::optional<pending_command>();
  auto done = store.get_meta("command.done");
  if (!done) return std::move(done).err();
  uint64_t done_seq = 0;
  if (done->has_value()) done_seq = std::strtoull((*done)->c_str(), nullptr, 10);
  if (cmd.seq() <= done_seq) return std::optional<pending_command>();
  pending_command p;
  p.seq = cmd.seq();
  p.kind = cmd.kind() == v1::NodeCommand::KIND_RESET ? command_kind::reset : command_kind::full_resync;
  p.reason = cmd.reason();
  return std::optional<pending_command>(std::move(p));
}

status command_done(storage::node_store& store, uint64_t seq) {
  return store.put_meta("command.done", std::to_string(seq));
}

storage::put_op presence_write(const actors::local_identity& me, const actors::peer_view& v) {
  v1::NodePresence p;
  p.set_node(v.node);
  p.set_role(static_cast<uint32_t>(v.role));
  p.set_software(v.software);
  p.set_online(v.online);
  p.set_last_seen_ms(v.last_seen_ms);
  p.set_connected_ms(v.online ? v.connected_ms : 0);
  for (auto x : v.pending) p.add_pending(x);
  p.set_lag_records(v.lag_records);
  p.set_last_sync_ms(v.last_sync_ms);
  p.set_caught_up(v.caught_up);
  p.set_skew_ms(v.skew_ms);
  p.set_records_up(v.records_up);
  p.set_records_down(v.records_down);
  p.set_reporter(me.node);
  storage::put_op op;
  op.key = core::record_key{me.tenant, me.branch, "node_presence", device_id(v.node)};
  op.body = p.SerializeAsString();
  return op;
}

status audit_action(storage::node_store& store, const std::string& actor, const std::string& action,
                    core::node_id target, const std::string& detail, const std::string& result, int64_t now_ms) {
  storage::session_audit a;
  a.kind = "operator";
  a.actor = actor;
  a.action = action;
  a.peer = target;
  a.detail = detail;
  a.result = result;
  a.started_ms = a.ended_ms = now_ms;
  return store.record_session(a);
}

} // namespace possync::node::detail
