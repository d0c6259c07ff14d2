#pragma once
// Private: one logical node store (a space) on top of database_impl.

#include <array>
#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "database_impl.hpp"
#include "feed_cache.hpp"
#include "possync/storage/store.hpp"

namespace possync::storage {

/// A decoded `records` value.
struct stored_record {
  core::record rec;           ///< key set, versions (empty if absent)
  uint64_t feed_seq = 0;      ///< this record's feed entry (0 if absent)
  /// This state's outbox entry: feed_seq if it was queued, 0 if not; nullopt if the
  /// value predates the field (the outbox has to be asked).
  std::optional<uint64_t> outbox_seq;
  bool exists = false;
};

class node_store_impl final : public commit_participant {
public:
  using prep_fn = std::function<status(txn&, std::vector<change>&)>;
  using done_fn = std::function<void(const status&, std::vector<change>&&)>;

  static result<std::unique_ptr<node_store_impl>> open(std::shared_ptr<database> db, store_options opts);
  ~node_store_impl() override;

  // commit_participant
  void request_begin() override { scratch_ = working_; }
  status request_accept(txn& t) override;
  void request_abort() override {}
  void group_sealed() override { sealed_ = working_; }
  void group_committed() override;
  void group_failed() override { working_ = durable_; }

  /// Queue `prep` on the committer; `done` runs there after the commit.
  /// priority/weight: write_request's (-1: a barrier, kept in submission order).
  void submit(prep_fn prep, done_fn done, bool needs_sync = true, int priority = -1, size_t weight = 1);
  /// Same, blocking until durable (or failed).
  /// submit() and wait. priority: the lane of the write (-1 = a barrier, in place).
  status commit(prep_fn prep, std::vector<change>* changes, int priority = -1, size_t weight = 1);
  /// Called by requests after a durable commit with changes.
  void notify(const std::vector<change>& changes);

  // Local writes.
  /// Key syntax and counter policy of one counter op.
  status check_counter(const counter_op& c) const;
  status check_ops(std::vector<write_op>& ops) const;
  status prepare_write(txn& t, std::vector<write_op>& ops, core::hlc_timestamp& hlc, std::vector<change>& ch);
  status prepare_apply(txn& t, std::vector<core::record>& states, bool from_downstream, apply_result& out,
                       std::vector<change>& ch);

  // Reads.
  result<std::optional<core::record>> get(const core::record_key& key) const;
  result<stored_record> load(txn& t, const core::record_key& key);
  /// Same, `rkey` being keys::record(space_, key); `before` (nullable) is its value
  /// from txn::read_many, used unless this request has staged a write of it since.
  result<stored_record> load(txn& t, const core::record_key& key, const std::string& rkey,
                             const std::optional<std::string>* before = nullptr);

  core::hlc_timestamp clock_now();
  core::hlc_timestamp clock_update(const core::hlc_timestamp& remote);

  std::shared_ptr<database> db_holder_;
  database_impl& db_;
  store_options opts_;
  uint32_t space_ = 0;
  core::node_id node_ = 0;
  std::shared_ptr<const core::collection_registry> reg_;

  std::mutex clock_mu_;
  std::unique_ptr<core::hlc_clock> clock_;
  std::mutex ulid_mu_;
  std::unique_ptr<core::ulid_generator> ulid_;
  feed_cache feed_cache_;
  std::mutex listener_mu_;
  std::shared_ptr<commit_listener> listener_;

  /// Counters that follow the durable state (committer only).
  struct counters {
    std::array<uint64_t, core::lane_count> lane_seq{};
    std::array<uint64_t, core::lane_count> pending{};
    std::array<uint64_t, core::lane_count> outbox_head{}; ///< newest outbox seq queued (not stored)
    /// Every outbox entry below this seq is deleted, counting acks prepared in groups
    /// not yet durable (not stored: on open, the oldest entry left). An ack scans from
    /// here, and a write takes a queued entry at or above it for still there.
    std::array<uint64_t, core::lane_count> ack_floor{};
    uint64_t conflict_seq = 0;
    uint64_t audit_seq = 0;
    core::hlc_timestamp hlc;
    uint64_t dot_floor = 0;         ///< meta dot_floor (start_over)
    core::node_id counter_node = 0; ///< meta counter_node (this incarnation's writer); 0 = node_
  };
  counters durable_, sealed_, working_, scratch_;
  std::array<std::atomic<uint64_t>, core::lane_count> head_pub_{};
  std::array<std::atomic<uint64_t>, core::lane_count> pending_pub_{};
  std::array<std::atomic<uint64_t>, core::lane_count> outbox_head_pub_{};
  std::atomic<uint64_t> dot_floor_pub_{0};
  /// node_store::collection_changes: one counter per registry collection, in the order
  /// of `collection_slot_` (fixed at open, so read without a lock).
  std::map<std::string, size_t, std::less<>> collection_slot_;
  std::unique_ptr<std::atomic<uint64_t>[]> collection_changes_;
  std::atomic<core::node_id> counter_node_pub_{0};

  /// The committer side of node_store::start_over.
  status prepare_start_over(txn& t, start_over_options& o, start_over_report& rep, std::vector<change>& ch);
  /// The committer side of node_store::purge_sales: up to `limit` of `candidates`
  /// (records keys of the sales lane) still old and acked are removed.
  status prepare_purge(txn& t, const std::vector<core::record_key>& candidates, int64_t before_ms,
                       uint64_t& purged);

  // Encryption at rest (opts_.cipher): `column` names the column family ('r' records,
  // 'o' outbox, 'c' conflicts) and `rkey` is the RocksDB key; both are bound to the
  // value. Without a cipher both return the value unchanged.
  result<std::string> seal(char column, std::string_view rkey, std::string plain) const;
  result<std::string> open_value(char column, std::string_view rkey, std::string_view stored) const;
  /// A `records` value (opened, then decoded).
  result<stored_record> decode_record(std::string_view stored, const core::record_key& key,
                                      std::string_view rkey) const;

private:
  node_store_impl(std::shared_ptr<database> db, store_options opts);
  /// A write by this node: writer, HQ flag and the dot floor set; body and clock to fill.
  core::write_spec own_write() const;
  /// Who this incarnation of the store writes as: the dots of its versions and its
  /// stock counter entry. node_ until the store is rebuilt (start_over), then a new id
  /// each time: a version vector entry claims every dot of its writer up to a counter,
  /// so dots of the same id after a rebuild would claim the versions that went with
  /// the old store, and cover (replace) them wherever they meet.
  core::node_id writer() const { return scratch_.counter_node != 0 ? scratch_.counter_node : node_; }
  /// On a branch or HQ, folds the siblings of counter record `r` into one version of
  /// this node when core::counter_fold_due says so; true if it did.
  bool fold_counter(const core::collection_info& info, core::record& r);
  /// Writes `after` over `prior` (as loaded): record, feed entry, outbox entry if
  /// `to_outbox` (replacing prior's if still queued), indexes.
  status store_record(txn& t, const core::collection_info& info, const stored_record& prior,
                      const core::record& after, bool to_outbox, std::optional<core::dot> d,
                      std::vector<change>& ch);
  status update_indexes(txn& t, const core::collection_info& info, const core::record& before,
                        const core::record& after);
  status note_conflict(txn& t, const core::collection_info& info, const core::record& before,
                       const core::record& after);
  bool space_claimed_ = false;

};

/// Meta names the store keeps itself (counters, identity); put_meta refuses them.
bool reserved_meta(std::string_view name);

/// Opens a value sealed for column `column` ('r', 'o', 'c') under RocksDB key `rkey`;
/// without a cipher the value as it is.
result<std::string> open_sealed(const value_cipher* cipher, char column, std::string_view rkey,
                                std::string_view stored);

/// An `outbox` value (opened) as the record state it queued; nullopt if it does not parse.
std::optional<core::record> decode_outbox(std::string_view plain);

/// Decodes a `records` value; data_loss if it does not parse.
result<stored_record> decode_stored(std::string_view bytes, const core::record_key& key);

} // namespace possync::storage
