// Admission of a Hello and the default feeds/collections per role.

#include <algorithm>

#include "possync/actors/session_machine.hpp"
#include "possync/v1/pos.pb.h"

namespace possync::actors {

namespace {

storage::node_role role_of(v1::Role r, bool& ok) {
  ok = true;
  switch (r) {
  case v1::ROLE_TERMINAL:
    return storage::node_role::terminal;
  case v1::ROLE_BRANCH:
    return storage::node_role::branch;
  case v1::ROLE_HQ:
    return storage::node_role::hq;
  default:
    ok = false;
    return storage::node_role::terminal;
  }
}

std::string quoted(const std::string& s) {
  return "'" + s + "'";
}

/// {'' (tenant-wide), 'b1'}
std::string scopes_text(const std::set<std::string>& scopes) {
  std::string out = "{";
  for (const auto& s : scopes) {
    if (out.size() > 1) out += ", ";
    out += s.empty() ? "'' (tenant-wide)" : quoted(s);
  }
  return out + "}";
}

} // namespace

std::vector<feed_id> default_feeds(storage::node_role role, const std::string& tenant,
                                   const std::string& branch) {
  std::vector<feed_id> out;
  switch (role) {
  case storage::node_role::terminal:
    for (uint8_t lane = core::lane_stock; lane <= core::lane_catalog; ++lane) {
      out.push_back(feed_id{tenant, "", lane});
      if (!branch.empty()) out.push_back(feed_id{tenant, branch, lane});
    }
    break;
  case storage::node_role::branch:
    for (uint8_t lane = 0; lane < core::lane_count; ++lane) {
      out.push_back(feed_id{tenant, "", lane});
      if (lane >= core::lane_stock && !branch.empty()) out.push_back(feed_id{tenant, branch, lane});
    }
    break;
  case storage::node_role::hq:
    for (uint8_t lane = 0; lane < core::lane_count; ++lane)
      out.push_back(feed_id{tenant, "", lane});
    break;
  }
  return out;
}

std::set<std::string> default_collections(storage::node_role role, const core::collection_registry& reg) {
  std::set<std::string> out;
  for (const auto* info : reg.list())
    if (role != storage::node_role::terminal || (info->name != "device" && info->name != "revocation"))
      out.insert(info->name);
  return out;
}

result<std::vector<std::string>> download_collections(storage::node_role role,
                                                      const core::collection_registry& reg,
                                                      const std::vector<std::string>& skip) {
  std::vector<std::string> out;
  if (skip.empty()) return out;
  for (const auto& name : skip)
    if (!reg.find(name))
      return error(errc::invalid_argument, "skip_collections: unknown collection '" + name + "'");
  for (const auto& name : default_collections(role, reg))
    if (std::find(skip.begin(), skip.end(), name) == skip.end()) out.push_back(name);
  if (out.empty())
    return error(errc::invalid_argument, "skip_collections leaves this node nothing to download");
  return out;
}

namespace {

/// Revocation entry of a token id, if any.
result<bool> token_revoked(const storage::node_store& store, const std::string& tenant, const std::string& id) {
  auto v = store.read(core::record_key{tenant, "", "revocation", id});
  if (!v) return error(errc::unavailable, "revocation list unreadable: " + v.err().to_string());
  return v->exists;
}

status check_credentials(const v1::Hello& hello, const local_identity& me, const storage::node_store& store,
                         const admission_policy& policy, grant& g) {
  const std::string node_hex = core::node_id_to_string(hello.node());
  const std::string who = "node " + node_hex;
  if (!policy.peer_identity.empty() && policy.peer_identity != node_hex)
    return error(errc::permission_denied, who + ": the TLS certificate is for '" + policy.peer_identity +
                                              "', not for this node");
  if (policy.require_identity && policy.peer_identity.empty())
    return error(errc::unauthenticated, who + ": no client certificate naming the node");
  if (!policy.tokens) return {};
  auto claims = policy.tokens->verify(hello.token(), policy.now_ms);
  if (!claims) return error(claims.err().code, who + ": " + claims.err().message);
  const auto& c = *claims;
  if (c.tenant != hello.tenant() || c.node != hello.node() || c.branch != hello.branch() ||
      c.role != static_cast<uint32_t>(hello.role()))
    return error(errc::permission_denied, who + ": device token " + c.id + " was issued to node " +
                                              core::node_id_to_string(c.node) + " (tenant '" + c.tenant +
                                              "', branch '" + c.branch + "', role " + std::to_string(c.role) +
                                              "), not to this Hello");
  auto revoked = token_revoked(store, me.tenant, c.id);
  if (!revoked) return revoked.err();
  if (*revoked) return error(errc::permission_denied, who + ": device token " + c.id + " is revoked");
  g.token_id = c.id;
  g.token_expires_ms = c.expires_ms;
  return {};
}

} // namespace

status still_admitted(const grant& g, const storage::node_store& store, int64_t now_ms, bool reread) {
  // Named only in an error: a check that passes builds no strings.
  auto who = [&] { return "node " + core::node_id_to_string(g.peer); };
  if (g.token_expires_ms > 0 && now_ms >= g.token_expires_ms)
    return error(errc::unauthenticated,
                 who() + ": device token " + g.token_id + " expired during the session");
  if (!reread) return {};
  if (!g.token_id.empty()) {
    auto revoked = token_revoked(store, g.tenant, g.token_id);
    if (revoked && *revoked)
      return error(errc::permission_denied, who() + ": device token " + g.token_id + " was revoked");
  }
  auto view = store.read(core::record_key{g.tenant, "", "device", core::node_id_to_string(g.peer)});
  if (view && view->exists) {
    v1::Device dev;
    if (dev.ParseFromString(view->body) && dev.revoked())
      return error(errc::permission_denied, who() + " was revoked");
  }
  return {};
}

result<grant> admit(const v1::Hello& hello, const local_identity& me, const storage::node_store& store,
                    const admission_policy& policy) {
  const std::string who = "node " + core::node_id_to_string(hello.node());
  if (hello.protocol_version() != protocol_version)
    return error(errc::failed_precondition, "protocol version " + std::to_string(hello.protocol_version()) +
                                                " not supported (this node speaks " +
                                                std::to_string(protocol_version) + ")");
  if (hello.node() == 0) return error(errc::invalid_argument, "Hello without a node id");
  if (hello.node() == me.node) return error(errc::invalid_argument, who + " is this node itself");
  bool role_ok = false;
  const auto role = role_of(hello.role(), role_ok);
  if (!role_ok) return error(errc::invalid_argument, who + ": Hello without a valid role");
  if (hello.tenant() != me.tenant)
    return error(errc::permission_denied, who + " belongs to tenant " + quoted(hello.tenant()) +
                                              ", this node serves " + quoted(me.tenant));
  switch (me.role) {
  case storage::node_role::terminal:
    return error(errc::permission_denied, who + ": a terminal accepts no sessions");
  case storage::node_role::branch:
    if (role != storage::node_role::terminal)
      return error(errc::permission_denied,
                   who + " is a " + storage::to_string(role) + "; a branch node accepts only terminals");
    if (hello.branch() != me.branch)
      return error(errc::permission_denied, who + " is a terminal of branch " + quoted(hello.branch()) +
                                                ", this node serves branch " + quoted(me.branch));
    break;
  case storage::node_role::hq:
    // Branch servers, and terminals of stores without one (DESIGN.md §2).
    if (role == storage::node_role::hq)
      return error(errc::permission_denied, who + " is an HQ node; HQ peering is not supported yet");
    if (hello.branch().empty())
      return error(errc::invalid_argument, who + ": a " + std::string(storage::to_string(role)) +
                                               " node without a branch id");
    break;
  }

  // The registry: collection "device", tenant-wide, id = the node id in hex.
  core::record_key key{me.tenant, "", "device", core::node_id_to_string(hello.node())};
  auto view = store.read(key);
  if (!view) return error(errc::unavailable, "device registry unreadable: " + view.err().to_string());
  if (!view->exists)
    return error(errc::permission_denied, who + " is not registered in tenant " + quoted(me.tenant));
  v1::Device dev;
  if (!dev.ParseFromString(view->body))
    return error(errc::internal, "device registry entry of " + who + " does not parse");
  if (dev.revoked()) return error(errc::permission_denied, who + " is revoked");
  if (dev.role() != static_cast<uint32_t>(role))
    return error(errc::permission_denied, who + " is registered as role " + std::to_string(dev.role()) +
                                              ", not " + storage::to_string(role));
  if (dev.branch() != hello.branch())
    return error(errc::permission_denied, who + " is registered in branch " + quoted(dev.branch()) +
                                              ", not " + quoted(hello.branch()));

  grant g;
  if (auto e = check_credentials(hello, me, store, policy, g)) return e;
  g.peer = hello.node();
  g.role = role;
  g.tenant = hello.tenant();
  g.branch = hello.branch();
  g.feeds = default_feeds(role, g.tenant, g.branch);
  // What the peer may read: its tenant's shared data and its own branch's. Asking for
  // anything else (another branch, another tenant) is refused, not silently trimmed.
  std::set<std::string> readable;
  for (const auto& f : g.feeds)
    readable.insert(f.scope);
  if (hello.scopes_size() > 0) {
    std::set<std::string> wanted(hello.scopes().begin(), hello.scopes().end());
    for (const auto& sc : wanted)
      if (readable.count(sc) == 0)
        return error(errc::permission_denied, who + " asked for scope " + quoted(sc) + "; a " +
                                                  storage::to_string(role) + " of branch " + quoted(g.branch) +
                                                  " may read " + scopes_text(readable));
    g.feeds.erase(std::remove_if(g.feeds.begin(), g.feeds.end(),
                                 [&](const feed_id& f) { return wanted.count(f.scope) == 0; }),
                  g.feeds.end());
  }
  for (const auto& c : hello.cursors())
    if (c.tenant() != me.tenant || readable.count(c.scope()) == 0)
      return error(errc::permission_denied, who + " sent a cursor for tenant " + quoted(c.tenant()) + " scope " +
                                                quoted(c.scope()) + ", outside what it may read (tenant " +
                                                quoted(me.tenant) + ", scopes " + scopes_text(readable) + ")");
  g.collections = default_collections(role, store.registry());
  if (hello.collections_size() > 0) {
    std::set<std::string> wanted(hello.collections().begin(), hello.collections().end());
    for (const auto& name : wanted) {
      if (!store.registry().find(name))
        return error(errc::invalid_argument, who + " asked for unknown collection " + quoted(name));
      if (g.collections.count(name) == 0)
        return error(errc::permission_denied,
                     who + ": a " + std::string(storage::to_string(role)) + " may not read collection " + quoted(name));
    }
    for (auto it = g.collections.begin(); it != g.collections.end();)
      it = wanted.count(*it) ? std::next(it) : g.collections.erase(it);
  }
  if (role == storage::node_role::terminal)
    g.write_scopes = {g.branch};
  else
    g.write_scopes = {"", g.branch};
  return g;
}

status may_write(const grant& g, const core::record_key& key, const core::collection_registry& reg) {
  auto denied = [&](const std::string& why) {
    return error(errc::permission_denied, "record " + key.to_string() + " refused: node " +
                                              core::node_id_to_string(g.peer) + " (" + storage::to_string(g.role) +
                                              " of tenant " + quoted(g.tenant) + ", branch " + quoted(g.branch) +
                                              ") " + why);
  };
  if (key.tenant != g.tenant) return denied("may not write tenant " + quoted(key.tenant));
  if (g.write_scopes.count(key.scope) == 0)
    return denied("may not write scope " + quoted(key.scope) + " (may write " + scopes_text(g.write_scopes) + ")");
  const auto* info = reg.find(key.collection);
  if (!info) return error(errc::invalid_argument, "record " + key.to_string() + ": unknown collection");
  const uint8_t bit = g.role == storage::node_role::terminal ? core::writer_terminal
                      : g.role == storage::node_role::branch ? core::writer_branch
                                                             : 0;
  if (g.role != storage::node_role::hq && (info->writers & bit) == 0)
    return denied("may not write collection " + quoted(key.collection) +
                  (info->writers == 0 ? " (written at HQ only)" : ""));
  return {};
}

std::vector<std::string> admission_collections() {
  return {"device", "revocation"};
}

} // namespace possync::actors
