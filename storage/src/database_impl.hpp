#pragma once
// Private: the RocksDB instance, its column families and the single committer
// through which every write of the database goes (see storage/README.md).

#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <rocksdb/db.h>
#include <rocksdb/env.h>
#include <rocksdb/write_batch.h>

#include "possync/storage/store.hpp"

namespace possync::storage {

/// Column families, in the order they are opened.
enum cf_id : uint8_t {
  cf_records,
  cf_feed,
  cf_outbox,
  cf_cursors,
  cf_conflicts,
  cf_audit,
  cf_meta,
  cf_index,
  cf_count
};

/// Maps a RocksDB status to a possync error (never call with an ok status).
error map_status(const rocksdb::Status& s, const char* what);

/// Keys modified by the requests already accepted into the current group
/// (nullopt = deleted), per column family. Ordered: keys_in() scans a range of
/// it (an outbox ack among thousands of stores' writes in one group) and the
/// group's batch is written in key order.
using overlay = std::array<std::map<std::string, std::optional<std::string>, std::less<>>, cf_count>;

/// Writes staged by one request on top of the group's overlay and the DB. Reads see
/// this request's own staged writes first, then the group's, then those of the
/// previous group whose RocksDB write may still be running (`below`, nullable),
/// then the DB.
class txn {
public:
  txn(rocksdb::DB* db, const std::array<rocksdb::ColumnFamilyHandle*, cf_count>& cfs, const overlay& group,
      const overlay* below = nullptr)
      : db_(db), cfs_(cfs), group_(group), below_(below) {}

  /// Current value of `key` (nullopt if absent); unavailable/data_loss on read errors.
  result<std::optional<std::string>> get(cf_id cf, const std::string& key) const;
  /// Values of `keys` as they were before this request staged anything: the group's,
  /// the group in flight's, else the DB's, read with one MultiGet. Aligned with
  /// `keys` (duplicates allowed). Combine with staged_has(): a key this request has
  /// written since must be read with get(). unavailable/data_loss on read errors.
  result<std::vector<std::optional<std::string>>> read_many(cf_id cf, const std::vector<std::string>& keys) const;
  /// Whether this request has staged a write of `key`.
  bool staged_has(cf_id cf, const std::string& key) const { return staged_[cf].count(key) != 0; }
  void put(cf_id cf, std::string key, std::string value) { staged_[cf][std::move(key)] = std::move(value); }
  void del(cf_id cf, std::string key) { staged_[cf][std::move(key)] = std::nullopt; }
  /// Keys present in [begin, end) (sorted), counting staged and group writes.
  result<std::vector<std::string>> keys_in(cf_id cf, const std::string& begin, const std::string& end) const;

  overlay& staged() { return staged_; }

private:
  rocksdb::DB* db_;
  const std::array<rocksdb::ColumnFamilyHandle*, cf_count>& cfs_;
  const overlay& group_;
  const overlay* below_;
  overlay staged_;
};

/// A store that keeps in-memory counters which must follow the durable state.
/// All methods run on the committer (thread or commit mutex).
class commit_participant {
public:
  virtual ~commit_participant() = default;
  /// Before a request of this store is prepared.
  virtual void request_begin() = 0;
  /// The request prepared successfully: stage counter updates into `t`. An error
  /// fails the request.
  virtual status request_accept(txn& t) = 0;
  /// The request failed its preparation: forget what it did to the counters.
  virtual void request_abort() = 0;
  /// The group containing accepted requests of this store is complete: what the
  /// counters are now is what they will be once it is durable. (The committer may
  /// then prepare the next group, moving the counters on, before this one is durable.)
  virtual void group_sealed() = 0;
  /// The last sealed group of this store is durable.
  virtual void group_committed() = 0;
  /// A group's write failed (and every group prepared after it): roll the counters
  /// back to their durable values.
  virtual void group_failed() = 0;
};

/// One unit of work for the committer.
class write_request {
public:
  virtual ~write_request() = default;
  /// Stage writes into `t` (committer). An error fails this request only.
  virtual status prepare(txn& t) = 0;
  /// After the group is durable (ok) or failed, or after prepare failed (committer).
  virtual void finish(const status& s) = 0;
  /// Store whose counters this request touches (nullable).
  commit_participant* participant = nullptr;
  /// false: losing this write in a crash is harmless (an outbox ack: the entries are
  /// pushed again and applied idempotently upstream), so a group made only of such
  /// requests is written without an fsync. A later synced group persists it anyway.
  bool needs_sync = true;
  /// When it was submitted (commit latency).
  std::chrono::steady_clock::time_point submitted = std::chrono::steady_clock::now();
  /// The lane of its most urgent record, or -1: a barrier that keeps its place in the
  /// queue. The committer may take lane-tagged requests out of order (sales first; see
  /// database_impl::take_group); no request passes a barrier, or is passed by one.
  int priority = -1;
  /// Records it writes (the committer's budget for lower lanes).
  size_t weight = 1;
};

class database_impl {
public:
  static result<std::unique_ptr<database_impl>> open(const db_options& opts);
  /// RocksDB's RepairDB over a closed database with our column families (recovery of
  /// a store that does not open).
  static status repair(const std::string& path);
  ~database_impl();

  /// Queue a request (group commit) or run it now under the commit mutex.
  void submit(std::unique_ptr<write_request> r);

  rocksdb::DB* db() const { return db_; }
  rocksdb::ColumnFamilyHandle* cf(cf_id id) const { return cfs_[id]; }
  const db_options& options() const { return opts_; }

  status resume();
  /// Puts the unlogged marker into the default column family's memtable, so that a
  /// Resume() always switches to a fresh WAL (see database.cpp).
  status keep_wal_switchable();
  status flush();

  /// Claim a space for one open node_store; false if already open.
  bool claim_space(uint32_t space);
  void release_space(uint32_t space);

  uint64_t commit_groups() const { return groups_.load(std::memory_order_relaxed); }
  uint64_t commits() const { return commits_.load(std::memory_order_relaxed); }
  database::latency_histogram commit_latency() const;

private:
  /// One commit group from preparation to completion.
  struct group_state {
    std::vector<std::unique_ptr<write_request>> reqs;
    std::vector<status> results;
    std::vector<commit_participant*> parts;
    overlay ov;                 // the group's final values, read by the next group's preparation
    rocksdb::WriteBatch batch;
    size_t accepted = 0;
    bool sync = false;          // some accepted request needs the WAL synced
    status write_err;
  };

  database_impl() = default;
  /// Committer: takes groups from the queue and prepares group N+1 while the writer
  /// thread writes and syncs group N (pipelined); completes groups in order.
  void run_committer();
  /// Moves the next group's requests out of queue_ (queue_mu_ held): every lane-0 and
  /// lane-1 request ahead of the first barrier (sales first, then stock), then lanes 2-3
  /// in lane order, oldest first, until `lower_lane_budget` records (but always the oldest
  /// of each lane, so a report is not starved by a long download); a barrier only once
  /// everything before it is taken. So a sale waits behind at most one bounded group of a
  /// catalogue download or report. Stock is not held back: a terminal's stock applies
  /// pace how fast it reads its stream, and the branch's Acks of its sales come on it.
  std::vector<std::unique_ptr<write_request>> take_group();
  static constexpr size_t lower_lane_budget = 1024;
  /// Writer: runs the RocksDB write of the group handed over by the committer.
  void run_writer();
  /// Prepares every request of `g` on top of `below` (the group in flight, or null)
  /// and builds its batch.
  void prepare_group(group_state& g, const overlay* below);
  void seal_group(group_state& g);
  status write_group(group_state& g);
  /// Tells participants and requests how the group ended (committer, in group order).
  void complete_group(group_state& g);
  void process_group(std::vector<std::unique_ptr<write_request>>& group);

  db_options opts_;
  std::unique_ptr<rocksdb::Env> env_;         // mem env or composite env over the fault FS
  std::unique_ptr<rocksdb::Env> mem_base_;    // mem env underneath (in_memory)
  std::shared_ptr<rocksdb::Cache> cache_;
  rocksdb::DB* db_ = nullptr;
  rocksdb::ColumnFamilyHandle* default_cf_ = nullptr;
  std::array<rocksdb::ColumnFamilyHandle*, cf_count> cfs_{};

  std::mutex commit_mu_;  // group_commit == false: serializes commits
  std::mutex queue_mu_;
  std::condition_variable queue_cv_;
  std::vector<std::unique_ptr<write_request>> queue_;
  bool stop_ = false;
  std::thread committer_;
  // Hand-over between committer and writer (under queue_mu_).
  std::condition_variable writer_cv_;
  group_state* writer_slot_ = nullptr;  // group to write
  bool writer_done_ = false;            // the handed group's write has returned
  bool writer_stop_ = false;
  std::thread writer_;

  std::mutex spaces_mu_;
  std::set<uint32_t> spaces_;

  std::atomic<uint64_t> groups_{0};
  std::atomic<uint64_t> commits_{0};
  std::array<std::atomic<uint64_t>, database::latency_histogram::bounds_ms.size() + 1> latency_buckets_{};
  std::atomic<uint64_t> latency_sum_us_{0};
  void observe_latency(std::chrono::steady_clock::time_point submitted);
};

} // namespace possync::storage
