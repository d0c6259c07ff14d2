// `possync ctl` subcommands that call a node's Admin service (node/admin.hpp):
// status, nodes, log, conflicts (list, show, resolve), resync, reset, backup, time.
// Human tables by default, `--json` for scripts (one JSON document on stdout).

#include <chrono>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "commands.hpp"
#include "ctl_common.hpp"
#include "possync/core/ids.hpp"
#include "possync/node/admin.hpp"

namespace possync::tools {

namespace {

using json = nlohmann::json;

const char* const lane_names[] = {"sales", "stock", "catalog", "reports"};

int64_t wall_now_ms() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

/// "just now", "45s ago", "12m ago", "3h ago", "2d ago"; "never" for 0.
std::string ago(int64_t then_ms, int64_t now_ms) {
  if (then_ms <= 0) return "never";
  const int64_t d = (now_ms - then_ms) / 1000;
  if (d < 5) return "just now";
  if (d < 60) return std::to_string(d) + "s ago";
  if (d < 3600) return std::to_string(d / 60) + "m ago";
  if (d < 86400) return std::to_string(d / 3600) + "h ago";
  return std::to_string(d / 86400) + "d ago";
}

std::string duration(int64_t ms) {
  if (ms <= 0) return "-";
  if (ms < 60'000) return std::to_string(ms / 1000) + "s";
  if (ms < 3'600'000) return std::to_string(ms / 60'000) + "m";
  return std::to_string(ms / 3'600'000) + "h";
}

/// Prints rows as aligned columns, the first row as the header.
void print_table(const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> width;
  for (const auto& r : rows)
    for (size_t c = 0; c < r.size(); ++c) {
      if (width.size() <= c) width.resize(c + 1, 0);
      width[c] = std::max(width[c], r[c].size());
    }
  for (const auto& r : rows) {
    std::string line;
    for (size_t c = 0; c < r.size(); ++c) {
      line += r[c];
      if (c + 1 < r.size()) line += std::string(width[c] - r[c].size() + 2, ' ');
    }
    std::printf("%s\n", line.c_str());
  }
}

json pending_json(const std::array<uint64_t, core::lane_count>& p) {
  json j = json::object();
  for (size_t l = 0; l < p.size(); ++l) j[lane_names[l]] = p[l];
  return j;
}

std::string pending_text(const std::array<uint64_t, core::lane_count>& p) {
  return std::to_string(p[0]) + "/" + std::to_string(p[1]) + "/" + std::to_string(p[2]) + "/" + std::to_string(p[3]);
}

json node_json(const node::node_info& n) {
  return json{{"node", core::node_id_to_string(n.node)},
              {"role", storage::to_string(n.role)},
              {"tenant", n.tenant},
              {"branch", n.branch},
              {"name", n.name},
              {"software", n.software},
              {"registered", n.registered},
              {"revoked", n.revoked},
              {"online", n.online},
              {"via", n.via ? core::node_id_to_string(n.via) : ""},
              {"last_seen_ms", n.last_seen_ms},
              {"connected_ms", n.connected_ms},
              {"pending", pending_json(n.pending)},
              {"lag_records", n.lag_records},
              {"lag_ms", n.lag_ms},
              {"skew_ms", n.skew_ms},
              {"last_sync_ms", n.last_sync_ms},
              {"caught_up", n.caught_up},
              {"records_up", n.records_up},
              {"records_down", n.records_down}};
}

json audit_json(const storage::session_audit& a) {
  json j{{"seq", a.seq}, {"kind", a.kind}, {"peer", a.peer ? core::node_id_to_string(a.peer) : ""},
         {"started_ms", a.started_ms}, {"ended_ms", a.ended_ms}, {"result", a.result}};
  if (a.kind == "operator") {
    j["actor"] = a.actor;
    j["action"] = a.action;
    j["detail"] = a.detail;
  } else {
    j["peer_role"] = a.peer_role;
    j["records_up"] = a.records_up;
    j["records_down"] = a.records_down;
    j["bytes_up"] = a.bytes_up;
    j["bytes_down"] = a.bytes_down;
  }
  return j;
}

json conflict_json(const node::conflict_info& c, bool with_versions) {
  json j{{"id", c.id},
         {"key", c.key.to_string()},
         {"policy", c.policy},
         {"rule", c.rule},
         {"detected_ms", c.detected_ms},
         {"resolved", c.resolved},
         {"resolved_by", c.resolved_by},
         {"resolution", c.resolution}};
  if (with_versions) {
    json vs = json::array();
    for (const auto& v : c.versions) {
      json body = v.body_json.empty() ? json(nullptr) : json::parse(v.body_json, nullptr, false);
      if (body.is_discarded()) body = v.body_json;
      vs.push_back(json{{"dot", v.dot},
                        {"node", core::node_id_to_string(v.node)},
                        {"writer_role", v.writer_role},
                        {"hlc_ms", v.hlc_ms},
                        {"tombstone", v.tombstone},
                        {"body", body}});
    }
    j["versions"] = vs;
    json cur = c.current_json.empty() ? json(nullptr) : json::parse(c.current_json, nullptr, false);
    j["current"] = cur.is_discarded() ? json(c.current_json) : cur;
  } else {
    j["versions"] = c.versions.size();
  }
  return j;
}

struct admin_flags {
  connection_flags conn;
  std::string branch, node, mode, body, reason;
  uint32_t limit = 50;
  bool all = false;
  uint64_t id = 0;
};

/// Runs `body(client)` against the node named by the flags; usage errors exit 2,
/// failed calls 1.
template <class Fn>
int with_client(const admin_flags& f, Fn&& body) {
  auto c = connect_admin(f.conn);
  if (!c) return ctl_fail(c.err().message, exit_usage);
  return body(*c);
}

int call_failed(const char* what, const error& e) {
  return ctl_fail(std::string(what) + ": " + e.to_string());
}

int status_cmd(const admin_flags& f) {
  return with_client(f, [&](node::admin_client& c) {
    auto s = c.status();
    if (!s) return call_failed("status", s.err());
    if (f.conn.json_out) {
      std::printf("%s\n", json{{"node", core::node_id_to_string(s->node)},
                               {"role", storage::to_string(s->role)},
                               {"tenant", s->tenant},
                               {"branch", s->branch},
                               {"software", s->software},
                               {"online", s->online},
                               {"sessions", s->sessions},
                               {"pending", pending_json(s->pending)},
                               {"last_sync_ms", s->last_sync_ms},
                               {"lag_records", s->lag_records},
                               {"conflicts_unresolved", s->conflicts_unresolved},
                               {"hlc_ms", s->clock.wall_ms}}
                              .dump()
                              .c_str());
      return int{exit_ok};
    }
    const auto now = wall_now_ms();
    std::printf("node      %s (%s, possync %s)\n", core::node_id_to_string(s->node).c_str(),
                storage::to_string(s->role), s->software.c_str());
    std::printf("tenant    %s%s\n", s->tenant.c_str(), s->branch.empty() ? "" : (", branch " + s->branch).c_str());
    if (s->role != storage::node_role::hq)
      std::printf("upstream  %s, last sync %s, lag %llu records\n", s->online ? "online" : "OFFLINE",
                  ago(s->last_sync_ms, now).c_str(), static_cast<unsigned long long>(s->lag_records));
    std::printf("sessions  %u downstream\n", s->sessions);
    std::printf("pending   %s (sales/stock/catalog/reports)\n", pending_text(s->pending).c_str());
    std::printf("conflicts %u unresolved\n", s->conflicts_unresolved);
    return int{exit_ok};
  });
}

int nodes_cmd(const admin_flags& f) {
  return with_client(f, [&](node::admin_client& c) {
    auto ns = c.nodes(f.branch);
    if (!ns) return call_failed("nodes", ns.err());
    if (f.conn.json_out) {
      json arr = json::array();
      for (const auto& n : *ns) arr.push_back(node_json(n));
      std::printf("%s\n", json{{"nodes", arr}, {"now_ms", wall_now_ms()}}.dump().c_str());
      return int{exit_ok};
    }
    const auto now = wall_now_ms();
    std::vector<std::vector<std::string>> rows{
        {"BRANCH", "NODE", "ROLE", "NAME", "STATE", "LAST SEEN", "PENDING", "LAG", "BEHIND", "SKEW", "VERSION"}};
    for (const auto& n : *ns)
      rows.push_back({n.branch.empty() ? "-" : n.branch, core::node_id_to_string(n.node), storage::to_string(n.role),
                      n.name.empty() ? "-" : n.name,
                      n.revoked ? "revoked" : n.online ? "online" : n.last_seen_ms ? "offline" : "never seen",
                      ago(n.last_seen_ms, now), pending_text(n.pending), std::to_string(n.lag_records),
                      duration(n.lag_ms), duration(n.skew_ms < 0 ? -n.skew_ms : n.skew_ms),
                      n.software.empty() ? "-" : n.software});
    print_table(rows);
    return int{exit_ok};
  });
}

int log_cmd(const admin_flags& f) {
  core::node_id node = 0;
  if (!f.node.empty()) {
    auto n = core::parse_node_id(f.node);
    if (!n) return ctl_fail("--node must be 1-16 hex digits", exit_usage);
    node = *n;
  }
  return with_client(f, [&](node::admin_client& c) {
    auto es = c.audit_log(f.limit, node);
    if (!es) return call_failed("log", es.err());
    if (f.conn.json_out) {
      json arr = json::array();
      for (const auto& a : *es) arr.push_back(audit_json(a));
      std::printf("%s\n", json{{"entries", arr}}.dump().c_str());
      return int{exit_ok};
    }
    const auto now = wall_now_ms();
    std::vector<std::vector<std::string>> rows{{"SEQ", "WHEN", "KIND", "NODE", "WHAT", "RESULT"}};
    for (const auto& a : *es) {
      std::string what;
      if (a.kind == "operator") {
        what = a.actor + ": " + a.detail;
      } else {
        what = a.peer_role + ", " + duration(a.ended_ms - a.started_ms) + ", " + std::to_string(a.records_up) +
               " up / " + std::to_string(a.records_down) + " down, " +
               std::to_string((a.bytes_up + a.bytes_down) / 1024) + " KiB";
      }
      rows.push_back({std::to_string(a.seq), ago(a.ended_ms, now), a.kind == "operator" ? a.action : "session",
                      a.peer ? core::node_id_to_string(a.peer) : "-", what, a.result});
    }
    print_table(rows);
    return int{exit_ok};
  });
}

int conflicts_cmd(const admin_flags& f) {
  return with_client(f, [&](node::admin_client& c) {
    auto cs = c.conflicts(!f.all, f.limit);
    if (!cs) return call_failed("conflicts", cs.err());
    if (f.conn.json_out) {
      json arr = json::array();
      for (const auto& x : *cs) arr.push_back(conflict_json(x, false));
      std::printf("%s\n", json{{"conflicts", arr}}.dump().c_str());
      return int{exit_ok};
    }
    if (cs->empty()) {
      std::printf("%s\n", f.all ? "no conflicts" : "no unresolved conflicts");
      return int{exit_ok};
    }
    const auto now = wall_now_ms();
    std::vector<std::vector<std::string>> rows{{"ID", "RECORD", "POLICY", "VERSIONS", "DETECTED", "STATE"}};
    for (const auto& x : *cs)
      rows.push_back({std::to_string(x.id), x.key.to_string(), x.policy, std::to_string(x.versions.size()),
                      ago(x.detected_ms, now), x.resolved ? x.resolution + " (" + x.resolved_by + ")" : "open"});
    print_table(rows);
    std::printf("\nshow one: possync ctl conflicts show ID; settle it: possync ctl conflicts resolve ID "
                "--mode server_wins|client_wins|merged\n");
    return int{exit_ok};
  });
}

int conflict_show_cmd(const admin_flags& f) {
  return with_client(f, [&](node::admin_client& c) {
    auto x = c.conflict(f.id);
    if (!x) return call_failed("conflict", x.err());
    if (f.conn.json_out) {
      std::printf("%s\n", conflict_json(*x, true).dump().c_str());
      return int{exit_ok};
    }
    const auto now = wall_now_ms();
    std::printf("conflict %llu on %s (policy %s: %s), detected %s\n", static_cast<unsigned long long>(x->id),
                x->key.to_string().c_str(), x->policy.c_str(), x->rule.c_str(), ago(x->detected_ms, now).c_str());
    std::printf("state: %s\n", x->resolved ? (x->resolution + " by " + x->resolved_by).c_str() : "open");
    for (const auto& v : x->versions)
      std::printf("\n  version %s by %s %s, written %s:\n    %s\n", v.dot.c_str(), v.writer_role.c_str(),
                  core::node_id_to_string(v.node).c_str(), ago(v.hlc_ms, now).c_str(),
                  v.tombstone ? "(deleted)" : v.body_json.c_str());
    std::printf("\n  reads now as:\n    %s\n", x->current_json.empty() ? "(deleted)" : x->current_json.c_str());
    return int{exit_ok};
  });
}

int conflict_resolve_cmd(const admin_flags& f) {
  auto mode = node::parse_resolution_mode(f.mode);
  if (!mode) return ctl_fail(mode.err().message, exit_usage);
  if (*mode == node::resolution_mode::merged && f.body.empty())
    return ctl_fail("--mode merged needs --body JSON (the record's body as it should read)", exit_usage);
  std::string body = f.body;
  if (body.rfind("@", 0) == 0) {
    auto b = read_text_file(body.substr(1));
    if (!b) return ctl_fail(b.err().to_string(), exit_usage);
    body = *b;
  }
  return with_client(f, [&](node::admin_client& c) {
    auto dot = c.resolve_conflict(f.id, *mode, body, f.reason);
    if (!dot) return call_failed("resolve", dot.err());
    if (f.conn.json_out)
      std::printf("%s\n", json{{"id", f.id}, {"resolution", node::to_string(*mode)}, {"dot", *dot}}.dump().c_str());
    else if (dot->empty())
      std::printf("conflict %llu closed (%s); nothing written\n", static_cast<unsigned long long>(f.id),
                  node::to_string(*mode));
    else
      std::printf("conflict %llu resolved (%s): version %s supersedes its versions and syncs like any write\n",
                  static_cast<unsigned long long>(f.id), node::to_string(*mode), dot->c_str());
    return int{exit_ok};
  });
}

int order_cmd(const admin_flags& f, node::command_kind kind) {
  auto n = core::parse_node_id(f.node);
  if (!n || *n == 0) return ctl_fail("--node must be the node's id (1-16 hex digits)", exit_usage);
  return with_client(f, [&](node::admin_client& c) {
    auto r = c.order(*n, kind, f.reason);
    if (!r) return call_failed(node::to_string(kind), r.err());
    if (f.conn.json_out)
      std::printf("%s\n", json{{"node", core::node_id_to_string(*n)},
                               {"order", node::to_string(kind)},
                               {"seq", r->seq},
                               {"issued_ms", r->issued_ms}}
                              .dump()
                              .c_str());
    else
      std::printf("%s #%llu ordered for node %s; it runs when the order reaches the node (see `ctl log --node %s`)\n",
                  node::to_string(kind), static_cast<unsigned long long>(r->seq), core::node_id_to_string(*n).c_str(),
                  core::node_id_to_string(*n).c_str());
    return int{exit_ok};
  });
}

int time_cmd(const admin_flags& f) {
  return with_client(f, [&](node::admin_client& c) {
    const auto sent = wall_now_ms();
    auto t = c.time();
    const auto back = wall_now_ms();
    if (!t) return call_failed("time", t.err());
    const int64_t offset = t->wall_ms - (sent + back) / 2;
    if (f.conn.json_out)
      std::printf("%s\n", json{{"wall_ms", t->wall_ms},
                               {"hlc_ms", t->hlc.wall_ms},
                               {"hlc_logical", t->hlc.logical},
                               {"offset_ms", offset},
                               {"round_trip_ms", back - sent}}
                              .dump()
                              .c_str());
    else
      std::printf("server time %lld ms since epoch (HLC %llu.%u); its clock is %lld ms %s ours (round trip %lld ms)\n",
                  static_cast<long long>(t->wall_ms), static_cast<unsigned long long>(t->hlc.wall_ms),
                  t->hlc.logical, static_cast<long long>(offset < 0 ? -offset : offset),
                  offset < 0 ? "behind" : "ahead of", static_cast<long long>(back - sent));
    return int{exit_ok};
  });
}

int backup_cmd(const admin_flags& f) {
  if (f.body.empty()) return ctl_fail("--to DIR is required (a directory on the node's machine)", exit_usage);
  return with_client(f, [&](node::admin_client& c) {
    auto b = c.backup(f.body);
    if (!b) return call_failed("backup", b.err());
    if (f.conn.json_out)
      std::printf("%s\n", json{{"dir", b->dir},
                               {"bytes", b->bytes},
                               {"files", b->files},
                               {"taken_ms", b->taken_ms},
                               {"node", core::node_id_to_string(b->node)}}
                              .dump()
                              .c_str());
    else
      std::printf("backup of node %s in %s on its machine: %llu files, %llu bytes (restore: possync restore --from "
                  "%s --dir DATA)\n",
                  core::node_id_to_string(b->node).c_str(), b->dir.c_str(), static_cast<unsigned long long>(b->files),
                  static_cast<unsigned long long>(b->bytes), b->dir.c_str());
    return int{exit_ok};
  });
}

} // namespace

void add_ctl_admin_commands(CLI::App& ctl, command_fn& run) {
  auto f = std::make_shared<admin_flags>();
  auto with_conn = [f](CLI::App* c) {
    add_connection_flags(*c, f->conn);
    return c;
  };

  auto* st = with_conn(ctl.add_subcommand("status", "the node itself: role, pending, sessions, conflicts"));
  st->callback([f, &run] { run = [f] { return status_cmd(*f); }; });

  auto* ns = with_conn(ctl.add_subcommand("nodes", "branches and terminals: online, last seen, pending, lag"));
  ns->add_option("--branch", f->branch, "only this branch");
  ns->callback([f, &run] { run = [f] { return nodes_cmd(*f); }; });

  auto* lg = with_conn(ctl.add_subcommand("log", "the audit log: sync sessions and operator actions, newest first"));
  lg->add_option("--limit", f->limit, "entries")->capture_default_str();
  lg->add_option("--node", f->node, "only entries about this node (hex id)");
  lg->callback([f, &run] { run = [f] { return log_cmd(*f); }; });

  auto* cf = ctl.add_subcommand("conflicts", "conflicts waiting for an operator (list, show, resolve)");
  with_conn(cf);
  cf->add_option("--limit", f->limit, "entries")->capture_default_str();
  cf->add_flag("--all", f->all, "resolved ones too");
  cf->callback([f, cf, &run] {
    if (cf->get_subcommands().empty()) run = [f] { return conflicts_cmd(*f); };
  });
  auto* cshow = with_conn(cf->add_subcommand("show", "one conflict with every version's body"));
  cshow->add_option("id", f->id, "conflict id")->required();
  cshow->callback([f, &run] { run = [f] { return conflict_show_cmd(*f); }; });
  auto* cres = with_conn(cf->add_subcommand("resolve", "settle a conflict; the result syncs like any write"));
  cres->add_option("id", f->id, "conflict id")->required();
  cres->add_option("--mode", f->mode,
                   "server_wins (HQ's/branch's version), client_wins (the terminal's), merged (--body), "
                   "acknowledged (close without writing: immutable records)")
      ->required();
  cres->add_option("--body", f->body, "merged: the body as JSON, or @FILE");
  cres->add_option("--reason", f->reason, "why (audited)");
  cres->callback([f, &run] { run = [f] { return conflict_resolve_cmd(*f); }; });

  auto* rs = with_conn(ctl.add_subcommand("resync", "HQ: a node forgets its cursors and downloads everything again"));
  rs->add_option("--node", f->node, "the node's id (hex)")->required();
  rs->add_option("--reason", f->reason, "why (audited)");
  rs->callback([f, &run] { run = [f] { return order_cmd(*f, node::command_kind::full_resync); }; });

  auto* rt = with_conn(ctl.add_subcommand(
      "reset", "HQ: a node rebuilds its store from upstream; its unsent sales are kept and sent first"));
  rt->add_option("--node", f->node, "the node's id (hex)")->required();
  rt->add_option("--reason", f->reason, "why (audited)");
  rt->callback([f, &run] { run = [f] { return order_cmd(*f, node::command_kind::reset); }; });

  auto* bk = with_conn(ctl.add_subcommand("backup", "a consistent online backup of a running node (on its machine)"));
  bk->add_option("--to", f->body, "directory on the node's machine; must not exist or be empty")->required();
  bk->callback([f, &run] { run = [f] { return backup_cmd(*f); }; });

  auto* tm = with_conn(ctl.add_subcommand("time", "the server's clock and HLC, and its offset from ours"));
  tm->callback([f, &run] { run = [f] { return time_cmd(*f); }; });
}

} // namespace possync::tools
