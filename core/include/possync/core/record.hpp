#pragma once
// Records and their versions (siblings), with dotted-version-vector causality.
//
// A record's state is a set of concurrent versions. Each version has the dot of the
// write that made it and `past`, the causal history that write had seen. A version
// is obsolete when another version's past covers its dot. The state set is a join
// semilattice: merging states = keep every version not covered by another version's
// past (duplicates by dot collapse). Merge is commutative, associative and
// idempotent, so replicas that saw the same versions hold the same state in any
// order. Policies (policy.hpp) decide what a reader sees; they never drop versions,
// only a later write whose context covers the siblings replaces them.

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "possync/core/hlc.hpp"
#include "possync/core/version_vector.hpp"

namespace possync::core {

/// Identity of a record. scope "" = tenant-wide; otherwise a branch id.
struct record_key {
  std::string tenant;
  std::string scope;
  std::string collection;
  std::string id;
  friend bool operator==(const record_key& a, const record_key& b) {
    return a.tenant == b.tenant && a.scope == b.scope && a.collection == b.collection && a.id == b.id;
  }
  friend bool operator!=(const record_key& a, const record_key& b) { return !(a == b); }
  friend bool operator<(const record_key& a, const record_key& b);
  std::string to_string() const;  ///< "tenant/scope/collection/id"
};

/// Which write last set one top-level field of a field_merge body.
struct field_stamp {
  dot origin;          ///< the write that set the field
  hlc_timestamp hlc;   ///< that write's clock
  bool hq = false;     ///< that write was made at HQ
  friend bool operator==(const field_stamp& a, const field_stamp& b) {
    return a.origin == b.origin && a.hlc == b.hlc && a.hq == b.hq;
  }
};

/// One version (sibling) of a record.
struct version {
  dot id;                       ///< the write that made it
  version_vector past;          ///< what that write had seen (not including `id`)
  hlc_timestamp hlc;            ///< when it was written
  bool tombstone = false;       ///< a delete; body empty
  bool hq = false;              ///< written at an HQ node
  std::string body;             ///< serialized body message
  std::map<uint32_t, field_stamp> fields;  ///< field_merge only: field number -> stamp

  /// The full history of this version: past plus its own dot.
  version_vector history() const;
  friend bool operator==(const version& a, const version& b);
  friend bool operator!=(const version& a, const version& b) { return !(a == b); }
};

/// A record state: its siblings, sorted by dot, none covered by another's past.
struct record {
  record_key key;
  std::vector<version> versions;

  bool empty() const { return versions.empty(); }
  /// Join of every sibling's history: the context a writer that read this record
  /// passes to its write so that the write replaces every sibling it saw.
  version_vector context() const;
};

/// What merging a record state into another did.
struct merge_outcome {
  bool changed = false;      ///< the target gained or lost a version
  size_t added = 0;          ///< versions taken from the incoming state
  size_t obsoleted = 0;      ///< local versions the incoming state covered
  bool divergent_duplicate = false;  ///< same dot, different content (a bug or corruption upstream)
};

/// Merge `incoming` into `target` (same key). Keeps every version not covered by
/// another version's past; versions with equal dots collapse (if their content
/// differs the one with the larger encoding wins deterministically and the outcome
/// says so). Applying a state already contained is a no-op (changed == false).
merge_outcome merge_into(record& target, const record& incoming);

/// Parameters of a local write.
struct write_spec {
  node_id writer = 0;                ///< this node
  hlc_timestamp hlc;                 ///< from the node's hlc_clock
  bool hq = false;                   ///< writer is an HQ node
  std::optional<version_vector> context;  ///< what the writer read; nullopt = the whole current state
  bool tombstone = false;
  std::string body;
  /// Every new dot counter of `writer` is above this. 0 for a store that never lost its
  /// history; a rebuilt store sets its dot floor (it also writes under a new id then,
  /// which is what keeps its dots apart from its old store's).
  uint64_t counter_floor = 0;
};

/// Apply a local write to `target`: a new dot for `writer` (one above the highest
/// counter of `writer` anywhere in the state, and above spec.counter_floor), past = context, and every sibling
/// whose dot the context covers is replaced. A stale context leaves the siblings it
/// did not see in place (never silently dropped). Returns the new version.
/// field stamps are not set here (see stamp_fields in policy.hpp).
const version& apply_local_write(record& target, const write_spec& spec);

} // namespace possync::core
