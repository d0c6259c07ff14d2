#pragma once
// The operator API (possync.v1.Admin, proto/possync/v1/admin.proto) in plain C++:
// what a node answers (admin_handler, implemented by the node) and a client for it
// (admin_client, used by `possync ctl`). No gRPC or protobuf types here.
//
// Callers: over TLS only a client certificate with common name "admin"; over
// plaintext (development) the server listens on loopback only.

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "possync/core/error.hpp"
#include "possync/core/hlc.hpp"
#include "possync/core/ids.hpp"
#include "possync/core/record.hpp"
#include "possync/node/grpc_transport.hpp"
#include "possync/storage/store.hpp"

namespace possync::node {

/// A node as an upstream sees it (Admin.Nodes, node::nodes()).
struct node_info {
  core::node_id node = 0;
  storage::node_role role = storage::node_role::terminal;
  std::string tenant, branch;
  std::string name;            ///< from the registry
  std::string software;        ///< possync version it announced
  bool registered = false;     ///< in the device registry
  bool revoked = false;
  bool online = false;
  core::node_id via = 0;       ///< 0: served here; else the branch node that reports it
  int64_t last_seen_ms = 0;    ///< 0 = never seen
  int64_t connected_ms = 0;    ///< start of the current session (0 = offline)
  std::array<uint64_t, core::lane_count> pending{};
  uint64_t lag_records = 0;
  int64_t lag_ms = 0;          ///< time since its last complete sync while it is not in sync (0 = in sync)
  int64_t skew_ms = 0;         ///< our clock minus its, at Hello
  int64_t last_sync_ms = 0;
  bool caught_up = false;
  uint64_t records_up = 0, records_down = 0;
};

/// The serving node itself (Admin.Status).
struct admin_status {
  core::node_id node = 0;
  storage::node_role role = storage::node_role::terminal;
  std::string tenant, branch, software;
  std::array<uint64_t, core::lane_count> pending{};
  uint32_t sessions = 0;
  bool online = false;
  int64_t last_sync_ms = 0;
  uint32_t conflicts_unresolved = 0;
  uint64_t lag_records = 0;
  core::hlc_timestamp clock;
};

/// One version of a conflicted record, readable by people.
struct conflict_version_info {
  std::string dot;             ///< "node:counter"
  core::node_id node = 0;
  std::string writer_role;     ///< "terminal", "branch", "hq" or "unknown"
  int64_t hlc_ms = 0;
  bool tombstone = false;
  std::string body_json;
};

/// A conflict with both (all) versions (Admin.Conflicts, Admin.Conflict).
struct conflict_info {
  uint64_t id = 0;
  core::record_key key;
  std::string policy, rule;
  int64_t detected_ms = 0;
  bool resolved = false;
  std::string resolved_by, resolution;
  std::vector<conflict_version_info> versions;
  std::string current_json;    ///< the record as it reads now ("" if deleted)
};

/// How an operator settles a conflict.
enum class resolution_mode : uint8_t {
  server_wins,   ///< the version of the highest role (HQ, then branch); the newest among equals
  client_wins,   ///< the version of the lowest role (the terminal); the newest among equals
  merged,        ///< a body the operator wrote
  acknowledged,  ///< nothing written: the operator has seen it (conflicts of immutable
                 ///< records, e.g. two different sales under one id, are closed so)
};
const char* to_string(resolution_mode m) noexcept;
/// "server_wins", "client_wins", "merged", "acknowledged" (also "server", "client",
/// "merge", "ack").
result<resolution_mode> parse_resolution_mode(const std::string& text);

/// An order to one node, carried out by that node once it receives it.
enum class command_kind : uint8_t { full_resync = 1, reset = 2 };
const char* to_string(command_kind k) noexcept;

struct command_receipt {
  uint64_t seq = 0;
  int64_t issued_ms = 0;
};

struct time_info {
  int64_t wall_ms = 0;
  core::hlc_timestamp hlc;
};

/// A backup taken by node::backup (Admin.Backup, `possync ctl backup`).
struct backup_info {
  std::string dir;         ///< where it is (a RocksDB checkpoint: open it as a data directory)
  uint64_t bytes = 0;      ///< total size of its files
  uint64_t files = 0;
  int64_t taken_ms = 0;    ///< wall clock when it was taken
  core::node_id node = 0;  ///< whose store it is
};

/// What the Admin service asks of its node. Calls come on gRPC threads, possibly
/// concurrently, and may block briefly (a store read or commit). `actor` names the
/// caller for the audit log ("admin": the operator's certificate, "local": loopback).
class admin_handler {
public:
  virtual ~admin_handler() = default;
  virtual admin_status status() = 0;
  /// HQ only (failed_precondition elsewhere); returns once durable.
  virtual possync::status revoke_token(const std::string& token_id, uint64_t node, int64_t expires_ms,
                                       const std::string& reason, const std::string& actor) = 0;
  virtual result<std::vector<node_info>> nodes(const std::string& branch) = 0;
  /// Newest first; node != 0: only entries about it.
  virtual result<std::vector<storage::session_audit>> audit_log(size_t limit, core::node_id node) = 0;
  virtual result<std::vector<conflict_info>> conflicts(bool unresolved_only, size_t limit) = 0;
  virtual result<conflict_info> conflict(uint64_t id) = 0;
  /// Returns the dot of the version written.
  virtual result<std::string> resolve_conflict(uint64_t id, resolution_mode mode, const std::string& body_json,
                                               const std::string& reason, const std::string& actor) = 0;
  /// HQ only: orders `node` (registered) to resync or reset.
  virtual result<command_receipt> order(core::node_id node, command_kind kind, const std::string& reason,
                                        const std::string& actor) = 0;
  virtual time_info time() = 0;
  /// A consistent online backup into `dir` on the node's machine (node::backup). Audited.
  virtual result<backup_info> backup(const std::string& dir, const std::string& actor) = 0;
};

/// A client of one node's Admin service. Each call has a deadline of
/// opts.connect_timeout_ms (5 s when 0) and returns the server's status on failure
/// (unavailable when it cannot be reached, permission_denied for a certificate that
/// is not the operator's). Not thread-safe; cheap to create.
class admin_client {
public:
  admin_client(std::string endpoint, grpc_client_options opts);
  ~admin_client();
  admin_client(admin_client&&) noexcept;
  admin_client& operator=(admin_client&&) noexcept;

  result<admin_status> status();
  possync::status revoke_token(const std::string& token_id, uint64_t node, int64_t expires_ms,
                               const std::string& reason);
  result<std::vector<node_info>> nodes(const std::string& branch = "");
  result<std::vector<storage::session_audit>> audit_log(size_t limit, core::node_id node = 0);
  result<std::vector<conflict_info>> conflicts(bool unresolved_only, size_t limit);
  result<conflict_info> conflict(uint64_t id);
  result<std::string> resolve_conflict(uint64_t id, resolution_mode mode, const std::string& body_json = "",
                                       const std::string& reason = "");
  result<command_receipt> order(core::node_id node, command_kind kind, const std::string& reason);
  result<time_info> time();
  result<backup_info> backup(const std::string& dir);

private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

} // namespace possync::node
