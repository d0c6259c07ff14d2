#pragma once
// What operators ask of a node, on its store: the nodes it knows (registry, live
// sessions, presence reports), conflicts readable by people and their resolution,
// orders to other nodes (collection "node_command") and the audit of each action.
// Used by node.cpp (node's public calls and its Admin service).

#include <optional>
#include <string>
#include <vector>

#include "possync/actors/peer_table.hpp"
#include "possync/actors/session_machine.hpp"
#include "possync/node/admin.hpp"

namespace possync::node::detail {

/// The nodes `me` knows: its registry (HQ: every device; a branch: its own branch),
/// the peers it serves now or served since it started (`direct`), and at HQ the
/// terminals its branches report (collection "node_presence"; online only while the
/// reporting branch is). `branch` != "": only that branch. Itself excluded.
result<std::vector<node_info>> list_nodes(const storage::node_store& store, const actors::local_identity& me,
                                          const std::vector<actors::peer_view>& direct, const std::string& branch,
                                          int64_t now_ms);

/// Conflicts, oldest first, described (describe_conflict) with one registry read.
/// unresolved_only: superseded ones are skipped and marked resolved ("superseded") so
/// the list does not fill up with them.
result<std::vector<conflict_info>> list_conflicts(storage::node_store& store, bool unresolved_only, size_t limit);

/// True when a later write (here or elsewhere) superseded every version of `c`: none
/// of them is still a sibling of the record and its context covers them all.
result<bool> superseded(const storage::node_store& store, const storage::conflict_entry& c);

/// Conflicts neither marked resolved nor superseded (at most `cap` looked at).
result<uint64_t> count_unresolved(const storage::node_store& store, size_t cap);

/// A branch node starting: every terminal its reports say is online is reported
/// offline (its sessions ended with the last run; they report again when back).
status presence_all_offline(storage::node_store& store, const actors::local_identity& me);

/// A conflict with each version's body as JSON and the writer's role. A conflict whose
/// versions a later write has all superseded reads as resolved ("superseded").
result<conflict_info> describe_conflict(const storage::node_store& store, const storage::conflict_entry& c);

/// Writes the chosen body (see resolution_mode) as a version whose context covers
/// every version of conflict `id`, marks the conflict resolved and audits it.
/// Returns the new version's dot. not_found, invalid_argument (merged without a valid
/// body, a mode with no version to pick).
result<std::string> resolve_conflict(storage::node_store& store, uint64_t id, resolution_mode mode,
                                     const std::string& body_json, const std::string& reason,
                                     const std::string& actor, int64_t now_ms);

/// HQ: writes the next order for registered node `target` (collection "node_command",
/// its branch's scope) and audits it. not_found for an unregistered node.
result<command_receipt> issue_command(storage::node_store& store, const std::string& tenant, core::node_id target,
                                      command_kind kind, const std::string& reason, const std::string& actor,
                                      int64_t now_ms);

/// An order addressed to `me` not carried out yet (seq above meta "command.done"), if any.
struct pending_command {
  uint64_t seq = 0;
  command_kind kind = command_kind::full_resync;
  std::string reason;
};
result<std::optional<pending_command>> next_command(const storage::node_store& store,
                                                    const actors::local_identity& me);
/// Notes `seq` as carried out (meta "command.done").
status command_done(storage::node_store& store, uint64_t seq);

/// A branch's report on one of its terminals (collection "node_presence").
storage::put_op presence_write(const actors::local_identity& me, const actors::peer_view& v);

/// Appends an operator action to the audit log.
status audit_action(storage::node_store& store, const std::string& actor, const std::string& action,
                    core::node_id target, const std::string& detail, const std::string& result, int64_t now_ms);

} // namespace possync::node::detail
