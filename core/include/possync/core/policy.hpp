#pragma once
// Conflict policies (DESIGN.md §3): how a record's siblings are read, and what a
// local write of each kind produces. All functions are pure and deterministic:
// every node holding the same sibling set reads the same value.

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "possync/core/record.hpp"

namespace possync::core {

enum class policy : uint8_t {
  immutable,    ///< written once; a second different version is a conflict for operators
  counter,      ///< PN-counter (stock): per-node max merge, value = sum(inc) - sum(dec)
  field_merge,  ///< per top-level field: causal winner, concurrent same-field -> tie rule
  lww,          ///< highest HLC wins (ties by node id)
  hq_wins,      ///< a concurrent version written at HQ wins; else lww
  manual,       ///< siblings kept; provisional winner by lww; operator resolves
};
const char* to_string(policy p) noexcept;
std::optional<policy> parse_policy(std::string_view name);

/// Tie rule used by field_merge for the same field edited concurrently.
enum class tie_rule : uint8_t { lww, hq_wins };
const char* to_string(tie_rule t) noexcept;

/// What a reader sees of a record under a policy.
struct resolved_view {
  bool exists = false;       ///< false: no versions, or the winner is a tombstone
  bool tombstone = false;    ///< the winner is a delete
  bool conflicted = false;   ///< siblings disagree in a way the policy does not settle
                             ///< on its own (immutable, manual, field_merge same field)
  size_t siblings = 0;
  std::string body;          ///< the value (for field_merge: the merged body)
  hlc_timestamp hlc;         ///< clock of the winning version (max over fields for field_merge)
  std::map<uint32_t, field_stamp> fields;  ///< field_merge: stamp of each field's winner
  std::optional<dot> winner; ///< dot of the winning version (not set for counter/field_merge merges)
};

/// Deterministic read of `r` under `p` (`tie` applies to field_merge). Depends only on
/// the set of siblings, never their order.
/// - immutable, manual, lww: winner = highest hlc; hq_wins: highest hlc among HQ
///   versions if any, else highest hlc. A winning tombstone reads as exists=false.
/// - counter: body = encode_counter(counter_of(r)); exists if any version.
/// - field_merge: per top-level field, a value is obsolete when another sibling's past
///   covers the write that set it and that sibling holds a different stamp; among the
///   remaining concurrent values the tie rule picks (conflicted = some field had more
///   than one). A field present in a body without a stamp counts as set by that
///   version; absent and unstamped means the version has no say on it. Tombstones:
///   only if every sibling is a tombstone does the record read as deleted; otherwise
///   the non-tombstone siblings are merged (a concurrent edit survives a delete).
resolved_view resolve(const record& r, policy p, tie_rule tie = tie_rule::lww);

/// A conflict worth an operator's attention, detected in a record state.
struct conflict_info {
  std::string rule;  ///< what was applied: "siblings kept", "lww", "hq_wins", "field tie: lww" ...
  std::vector<uint32_t> fields;  ///< field_merge: the fields edited concurrently
};
/// Non-empty when the siblings of `r` are a conflict under `p`: immutable or manual
/// with bodies that differ; lww/hq_wins with more than one sibling; field_merge with
/// the same field edited concurrently. Counter siblings never conflict.
std::optional<conflict_info> detect_conflict(const record& r, policy p, tie_rule tie = tie_rule::lww);

/// Why record state `incoming`, pushed by a downstream peer, cannot have been made by
/// honest writers, given this node's state `before` and `merged`, the merge of both
/// (`m` its outcome); ok if it can have been. Under `immutable`: a version this node
/// does not hold may not be a delete or carry a causal past (a record written once, by
/// a writer that had seen nothing of it), and no dot may come with a second content.
/// Under `counter`: no deletes, and the merge may lower no node's entry (a version
/// replaces others only by counting all they counted). Other policies: always ok.
/// invalid_argument, naming the record.
error refuse_from_downstream(const record& before, const record& incoming, const record& merged,
                             const merge_outcome& m, policy p);

// -- counter -------------------------------------------------------------------

/// PN-counter state: node -> (inc, dec), both monotonic.
struct pn_counter {
  std::map<node_id, std::pair<int64_t, int64_t>> entries;
  int64_t value() const;
  /// Per-node max.
  void merge(const pn_counter& other);
  friend bool operator==(const pn_counter& a, const pn_counter& b) { return a.entries == b.entries; }
};
/// Largest inc or dec total of one entry (2^53: the sum of thousands of entries stays
/// far from int64 overflow). A body with a total beyond it does not decode.
constexpr int64_t counter_entry_max = int64_t(1) << 53;
/// Body encoding: a possync.v1.StockCounter message.
std::string encode_counter(const pn_counter& c);
result<pn_counter> decode_counter(std::string_view body);
/// Merged counter of every sibling of `r` (undecodable bodies count as empty).
pn_counter counter_of(const record& r);
/// Body for a local counter write by `self` that adds `delta` (negative = decrement)
/// to the merged state of `r`. out_of_range if the total would pass counter_entry_max.
result<std::string> counter_add_body(const record& r, node_id self, int64_t delta);
/// Whether `self`, applying remote states, should fold the siblings of counter record
/// `r` into one version of its own (body: their merged counter; past: all of them).
/// Concurrent counter writes pile up as siblings on nodes that relay them without
/// selling (a branch between its registers, HQ), and every sibling carries a whole
/// counter: folding keeps what those nodes store and serve to one version.
/// So that two folding nodes never answer each other's folds forever, a branch never
/// folds over an HQ version (HQ's fold covers it next), and an HQ node never folds over
/// the version of an HQ node with a larger id.
bool counter_fold_due(const record& r, node_id self, bool self_is_hq);

// -- field_merge -----------------------------------------------------------------

/// Top-level fields of a serialized protobuf message, by field number, each the raw
/// bytes of all its occurrences (tag included) in order. Fails on malformed wire data.
result<std::map<uint32_t, std::string>> split_fields(std::string_view body);
/// Inverse of split_fields (fields in ascending number).
std::string join_fields(const std::map<uint32_t, std::string>& fields);

/// Field stamps for a local field_merge write of `new_body` over what the writer
/// read (`before`): fields whose bytes changed (set, changed or cleared) get
/// {new_dot, hlc, hq}; unchanged fields keep their stamps (including stamps of fields
/// cleared earlier, so the clear keeps beating older values); an unchanged field
/// without a stamp gets none. invalid_argument if either body is malformed.
result<std::map<uint32_t, field_stamp>> stamp_fields(const resolved_view& before,
                                                     std::string_view new_body,
                                                     const dot& new_dot,
                                                     const hlc_timestamp& hlc, bool hq);

} // namespace possync::core
