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
    if (role != storage::node_role::terminal || info->name != "device") out.insert(info->name);
  return out;
}

result<grant> admit(const v1::Hello& hello, const local_identity& me, const storage::node_store& store) {
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
  g.peer = hello.node();
  g.role = role;
  g.tenant = hello.tenant();
  g.branch = hello.branch();
  g.feeds = default_feeds(role, g.tenant, g.branch);
  if (hello.scopes_size() > 0) {
    std::set<std::string> wanted(hello.scopes().begin(), hello.scopes().end());
    g.feeds.erase(std::remove_if(g.feeds.begin(), g.feeds.end(),
                                 [&](const feed_id& f) { return wanted.count(f.scope) == 0; }),
                  g.feeds.end());
  }
  g.collections = default_collections(role, store.registry());
  if (hello.collections_size() > 0) {
    std::set<std::string> wanted(hello.collections().begin(), hello.collections().end());
    for (auto it = g.collections.begin(); it != g.collections.end();)
      it = wanted.count(*it) ? std::next(it) : g.collections.erase(it);
  }
  if (role == storage::node_role::terminal)
    g.write_scopes = {g.branch};
  else
    g.write_scopes = {"", g.branch};
  return g;
}

} // namespace possync::actors
