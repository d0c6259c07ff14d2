#pragma once
// The node store: one RocksDB per process (`database`), holding one or more logical
// node stores (`node_store`) separated by a key prefix ("space"). A terminal app has
// one space; the simulator runs thousands of terminals in one database; HQ keeps all
// tenants in one space (the tenant is part of every record key).
//
// Column families (DESIGN.md §4): records, feed, outbox, cursors, conflicts, audit,
// meta, index. A local write is one WriteBatch: records + feed + outbox (+ stock
// counters for a sale) + secondary indexes + meta counters, acknowledged only after
// the WAL is synced. All writes of a database go through one committer that groups
// the writes waiting for it under one fsync (group commit). Reads go straight to
// RocksDB from any thread.
//
// Thread-safety: every member of `database` and `node_store` may be called from any
// thread. rocksdb::Status never leaves this folder: errors are possync::error.

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "possync/core/error.hpp"
#include "possync/storage/cipher.hpp"
#include "possync/core/hlc.hpp"
#include "possync/core/ids.hpp"
#include "possync/core/record.hpp"
#include "possync/core/schema.hpp"

namespace possync::storage {

/// Switches that make the file system under RocksDB fail, for tests and the
/// simulator. Flip them at any time; writes then fail with a clear error and are
/// never acknowledged; reads keep working.
struct io_faults {
  std::atomic<bool> disk_full{false};  ///< appends/syncs fail with "no space left"
  std::atomic<bool> io_error{false};   ///< appends/syncs fail with an I/O error
};

/// Options of one RocksDB database.
struct db_options {
  std::string path;                    ///< directory (created if missing); required unless in_memory
  bool in_memory = false;              ///< RocksDB's in-memory Env (simulation); nothing survives close
  bool sync = true;                    ///< fsync the WAL before acknowledging (never off in production)
  bool group_commit = true;            ///< dedicated committer thread; false = commit on the caller's thread
  size_t block_cache_bytes = 32u << 20; ///< LRU block cache, bytes
  size_t write_buffer_bytes = 16u << 20; ///< memtable size per column family, bytes
  std::shared_ptr<io_faults> faults;   ///< optional fault injection
};

class database_impl;

/// One RocksDB instance and its committer.
class database {
public:
  /// Opens or creates. invalid_argument on bad options, unavailable/data_loss on
  /// I/O errors or corruption (with RocksDB's message).
  static result<std::shared_ptr<database>> open(const db_options& opts);
  ~database();
  database(const database&) = delete;
  database& operator=(const database&) = delete;

  /// After a disk-full or I/O error has been cleared: let writes through again.
  status resume();
  /// Flush memtables (tests, benchmarks, before backups).
  status flush();
  /// Consistent online backup (RocksDB checkpoint): every column family and every
  /// store space as of one moment, while writes go on. SST files are hard-linked when
  /// `target_dir` is on the same file system, else copied; the WAL is copied. Values
  /// are copied as stored, so an encrypted store's backup stays encrypted.
  /// `target_dir` must not exist or be an empty directory (already_exists otherwise);
  /// failed_precondition for an in-memory database.
  status checkpoint(const std::string& target_dir);
  const db_options& options() const;
  /// Durable RocksDB writes made by the committer so far (one per commit group).
  uint64_t commit_groups() const;
  /// Requests acknowledged as durable so far (local writes, applies, cursor/audit
  /// updates, acks). commits() / commit_groups() is the average group size.
  uint64_t commits() const;
  /// How long commits took, from the request to its durable answer (group commit
  /// wait + RocksDB write + fsync): a histogram for /metrics.
  struct latency_histogram {
    static constexpr std::array<double, 12> bounds_ms{0.25, 0.5, 1, 2, 5, 10, 25, 50, 100, 250, 500, 1000};
    std::array<uint64_t, bounds_ms.size() + 1> counts{};  ///< per bucket, not cumulative; last = above 1 s
    uint64_t count = 0;
    double sum_ms = 0;
  };
  latency_histogram commit_latency() const;
  database_impl& impl() { return *impl_; }

private:
  explicit database(std::unique_ptr<database_impl> impl);
  std::unique_ptr<database_impl> impl_;
};

enum class node_role : uint8_t { terminal = 1, branch = 2, hq = 3 };
const char* to_string(node_role r) noexcept;

/// Options of one logical store.
struct store_options {
  uint32_t space = 0;                  ///< key prefix of this logical store
  node_role role = node_role::terminal;
  core::node_id node = 0;              ///< 0: the id kept in meta, or a new random one for a new store
  core::physical_clock clock;          ///< ms since epoch; default: system clock
  std::shared_ptr<core::random_source> rng;  ///< node ids and ULIDs; default: seeded from std::random_device
  std::shared_ptr<const core::collection_registry> registry;  ///< default: the POS schema
  core::record_limits limits;
  bool outbox = true;                  ///< queue local and relayed writes for an upstream (false on HQ)
  /// Encryption at rest of record states, outbox and conflict entries (cipher.hpp).
  /// Chosen when the store is created: an encrypted store refuses to open without it
  /// and a plaintext store with it (failed_precondition). null = plaintext.
  std::shared_ptr<const value_cipher> cipher;
  /// Decoded record states kept for the sessions serving this store's feed (they
  /// read the same changes: a branch's terminals, HQ's branches). 0 = none.
  size_t feed_cache_bytes = 4u << 20;
};

/// Put a whole body (create or replace), or delete with tombstone = true.
struct put_op {
  core::record_key key;
  std::string body;
  bool tombstone = false;
  /// What the writer read (record::context() of what it saw). nullopt: the store's
  /// current state, i.e. the write replaces every sibling. A stale context leaves
  /// the siblings it did not see in place.
  std::optional<core::version_vector> context;
};
/// Add `delta` to a counter record (policy counter), e.g. -1000 for one piece sold.
struct counter_op {
  core::record_key key;
  int64_t delta = 0;
};
using write_op = std::variant<put_op, counter_op>;

/// One record changed by a commit.
struct change {
  core::record_key key;
  uint8_t lane = 0;
  uint64_t seq = 0;             ///< feed (and outbox) sequence number in that lane
  std::optional<core::dot> dot; ///< local writes: the new version's dot
};

/// Outcome of a local write.
struct commit_result {
  std::vector<change> changes;
  core::hlc_timestamp hlc;
};

/// Where remote record states come from.
struct apply_source {
  core::node_id peer = 0;
  bool from_downstream = false;  ///< relay: queue what changed in our outbox for our upstream
};

/// A feed cursor saved in the same commit as the records it covers.
struct cursor_update {
  core::node_id peer = 0;   ///< whose feed
  std::string tenant;
  std::string scope;
  uint8_t lane = 0;
  uint64_t seq = 0;         ///< consumed up to and including; never moves backwards
};

/// A refused remote record (not stored).
struct rejection {
  core::record_key key;
  error why;
};

/// Outcome of applying remote record states.
struct apply_result {
  size_t applied = 0;    ///< records that changed
  size_t unchanged = 0;  ///< already covered (replays, duplicates): no-ops
  std::vector<rejection> rejected;
  std::vector<change> changes;
};

struct feed_entry {
  uint64_t seq = 0;
  core::record rec;
  /// Its collection is not among those asked for (read_feed's `only`): rec holds the
  /// key alone, its state was not read.
  bool passed_over = false;
};
struct outbox_entry {
  uint64_t seq = 0;
  core::record rec;     ///< record state when it was queued
  int64_t queued_ms = 0;
};

/// A detected conflict (conflicts column family).
struct conflict_entry {
  uint64_t id = 0;
  core::record_key key;
  std::vector<core::version> versions;
  std::string policy;
  std::string rule;
  core::hlc_timestamp detected;
  bool resolved = false;
  std::string resolved_by;
  std::string resolution;
};

/// One entry of the audit column family: a sync session, or (kind "operator") an
/// operator's action, whose target node is `peer`.
struct session_audit {
  uint64_t seq = 0;             ///< set by sessions(); increases with every entry
  core::node_id peer = 0;
  std::string peer_role;
  int64_t started_ms = 0;
  int64_t ended_ms = 0;
  uint64_t records_up = 0, records_down = 0, bytes_up = 0, bytes_down = 0;
  std::string result;
  std::string kind = "session"; ///< "session" or "operator"
  std::string actor;            ///< operator: who ("admin", "local")
  std::string action;           ///< operator: "resolve", "resync", "reset", "revoke", "backup"
  std::string detail;           ///< operator: what exactly
};

/// How far one incarnation of a store (from its creation or a rebuild to the next
/// rebuild) can move its own dot counter of any one key: a bound no store reaches
/// (2^40 writes of one record). Each rebuild raises the dot floor by at least this.
constexpr uint64_t dot_span = uint64_t{1} << 40;

/// What node_store::start_over does.
struct start_over_options {
  /// Dot floor: every later dot counter of this node, and every lane sequence number,
  /// is above it. The floor in force becomes max(floor, previous floor + dot_span), so
  /// it is above every dot issued before whatever this says. 0 = clock() << 16 (ms
  /// since epoch times 65,536: rising with each rebuild while the clock does).
  uint64_t floor = 0;
  /// Outbox states to queue, per lane oldest first, instead of this store's own outbox
  /// (recovery: entries salvaged from a damaged store). nullopt = this store's own.
  std::optional<std::array<std::vector<core::record>, core::lane_count>> requeue;
  /// Collections whose records stay, filed again under new feed sequence numbers and
  /// not queued upstream: what the node cannot do without until the download brings it
  /// back (a branch admits its terminals by the device registry). Meant for data only
  /// HQ writes; the node's own writes go back up through the outbox instead.
  std::vector<std::string> keep;
};

/// What node_store::start_over did.
struct start_over_report {
  std::array<uint64_t, core::lane_count> requeued{};  ///< outbox entries queued again, per lane
  uint64_t unreadable = 0;        ///< own outbox entries that did not decode (lost)
  uint64_t invalid = 0;           ///< given or own entries refused by validation (lost)
  uint64_t kept = 0;              ///< records of start_over_options::keep filed again
  uint64_t floor = 0;             ///< the dot floor now in force
  core::node_id counter_node = 0; ///< this store's new stock counter identity
};

/// Called on the committer thread after every durable commit of this store, with
/// what changed. Must not block (hand work to an actor).
using commit_listener = std::function<void(const std::vector<change>&)>;

class node_store_impl;

/// One logical node store.
class node_store {
public:
  static result<std::unique_ptr<node_store>> open(std::shared_ptr<database> db, store_options opts);
  ~node_store();
  node_store(const node_store&) = delete;
  node_store& operator=(const node_store&) = delete;

  core::node_id node() const;
  node_role role() const;
  uint32_t space() const;
  const core::collection_registry& registry() const;

  // -- local writes: durable when they return ------------------------------------

  /// Applies `ops` atomically as one commit. Validates every key and body first
  /// (invalid_argument, nothing written). Immutable collections refuse a second
  /// write to an existing id (already_exists). Disk full -> resource_exhausted,
  /// other I/O errors -> unavailable; never acknowledged then.
  result<commit_result> write(std::vector<write_op> ops);
  /// Same, completing on the committer thread.
  void write_async(std::vector<write_op> ops, std::function<void(result<commit_result>)> done);
  /// Records a possync.v1.Sale (serialized) under key (collection "sale", scope =
  /// branch, id = ULID) and decrements the branch's stock of every item in the same
  /// commit (items of one product are summed).
  result<commit_result> record_sale(const core::record_key& key, std::string sale_body);
  /// Same as record_sale, completing on the committer thread (or at once with the
  /// validation error). Lets one caller keep many sales in flight, so that one fsync
  /// covers all of them (a branch relaying many registers works this way).
  void record_sale_async(const core::record_key& key, std::string sale_body,
                         std::function<void(result<commit_result>)> done);
  /// A new ULID for a record made here.
  std::string new_id();

  // -- remote states ------------------------------------------------------------------

  /// Merges record states received from a peer, as one commit. Invalid records are
  /// rejected one by one (the rest still apply). Covered states are no-ops, so
  /// replays never duplicate. Conflicts are written to the conflicts table.
  result<apply_result> apply_remote(std::vector<core::record> states, apply_source from);
  /// Same, completing on the committer thread (`done` must not block: forward it).
  /// When `cursor` is set it is saved in the same commit (a cursor lower than the
  /// stored one is ignored), so a crash never separates records from their cursor.
  /// Commits complete in the order they were requested. A cursor with lane >= lane_count
  /// or NUL in tenant/scope fails the whole request (invalid_argument, nothing applied).
  void apply_remote_async(std::vector<core::record> states, apply_source from,
                          std::optional<cursor_update> cursor,
                          std::function<void(result<apply_result>)> done);

  // -- reads ----------------------------------------------------------------------

  /// The record with all siblings, or nullopt.
  result<std::optional<core::record>> get(const core::record_key& key) const;
  /// The record as its policy resolves it (exists == false if absent or deleted).
  result<core::resolved_view> read(const core::record_key& key) const;
  /// Every record of one collection in one (tenant, scope), in id order, at most
  /// `limit` (registries, presence reports: small collections; not for sales).
  result<std::vector<core::record>> records_of(const std::string& tenant, const std::string& scope,
                                               const std::string& collection, size_t limit) const;
  /// Stock level (thousandths) of a product in a branch; 0 if never counted.
  result<int64_t> stock_level(const std::string& tenant, const std::string& branch,
                              const std::string& product_id) const;
  /// Product id for a barcode (main or alternative), or nullopt.
  result<std::optional<std::string>> product_by_barcode(const std::string& tenant,
                                                        const std::string& barcode) const;
  /// Up to `limit` product ids whose name starts with `prefix` (case-insensitive,
  /// ASCII), in name order.
  result<std::vector<std::string>> search_products(const std::string& tenant, const std::string& prefix,
                                                   size_t limit) const;
  /// Keys of sales of a branch with from_ms <= time_ms < to_ms, oldest first.
  result<std::vector<core::record_key>> sales_between(const std::string& tenant, const std::string& branch,
                                                      int64_t from_ms, int64_t to_ms, size_t limit) const;

  // -- feed -------------------------------------------------------------------------

  /// Entries of (tenant, scope, lane) with seq > after, oldest first, at most `limit`.
  /// With `only`, entries of other collections count towards `limit` but come back
  /// passed_over, without their state: a terminal's session steps over the whole
  /// device registry on the catalogue lane without reading a record of it.
  result<std::vector<feed_entry>> read_feed(const std::string& tenant, const std::string& scope, uint8_t lane,
                                            uint64_t after, size_t limit,
                                            const std::set<std::string>* only = nullptr) const;
  /// Highest sequence number issued in `lane` (all tenants and scopes).
  uint64_t lane_head(uint8_t lane) const;
  /// Records of `collection` changed by commits since the store was opened, counted
  /// once they are readable; a reset (start_over) counts for every collection, a purge
  /// of old sales (purge_sales) for none. A cheap "has it changed since" for callers
  /// that would otherwise read it again and again (a session's periodic admission
  /// check). 0 for a collection the registry lacks.
  uint64_t collection_changes(std::string_view collection) const;

  // -- outbox -------------------------------------------------------------------------

  /// Outbox entries of `lane` with seq > after, oldest first, at most `limit`. The
  /// outbox holds at most one entry per key: a newer state of a queued record replaces
  /// its entry (with a new seq), so what is pushed is always the latest whole state.
  result<std::vector<outbox_entry>> outbox_window(uint8_t lane, uint64_t after, size_t limit) const;
  /// Upstream durably holds everything of `lane` up to `seq`: remove those entries.
  status ack_outbox(uint8_t lane, uint64_t seq);
  /// Same, completing on the committer thread, in request order with the other
  /// requests of this store (`done` must not block). An ack alone is written without
  /// an fsync (both forms): if a crash loses it, the entries are pushed again and the
  /// upstream applies them as no-ops.
  void ack_outbox_async(uint8_t lane, uint64_t seq, std::function<void(status)> done);
  /// Outbox entries waiting, per lane.
  std::array<uint64_t, core::lane_count> pending() const;
  /// Newest seq ever queued in `lane`'s outbox (durable; 0 if none): no entry above it
  /// exists, so an uplink that pushed up to it has nothing to read.
  uint64_t outbox_head(uint8_t lane) const;

  // -- cursors ------------------------------------------------------------------------

  /// How far this node has consumed `peer`'s feed of (tenant, scope, lane); 0 if never.
  result<uint64_t> cursor(core::node_id peer, const std::string& tenant, const std::string& scope,
                          uint8_t lane) const;
  /// Durably store a cursor.
  status set_cursor(core::node_id peer, const std::string& tenant, const std::string& scope, uint8_t lane,
                    uint64_t seq);
  /// Forget every cursor of `peer` (full resync).
  status clear_cursors(core::node_id peer);

  // -- conflicts and audit ------------------------------------------------------------

  result<std::vector<conflict_entry>> conflicts(bool unresolved_only, size_t limit) const;
  /// One conflict by id (not_found).
  result<conflict_entry> conflict(uint64_t id) const;
  /// Marks a conflict resolved (by whom, how); not_found for an unknown id.
  status mark_conflict_resolved(uint64_t id, const std::string& by, const std::string& resolution);
  status record_session(const session_audit& a);
  result<std::vector<session_audit>> sessions(size_t limit) const;

  // -- misc -----------------------------------------------------------------------------

  /// This store's HLC (thread-safe wrapper): now() for a local event.
  core::hlc_timestamp clock_now();
  /// Merge a peer's clock; returns the receive timestamp.
  core::hlc_timestamp clock_update(const core::hlc_timestamp& remote);
  /// A small named value of this store (meta column family), or nullopt.
  result<std::optional<std::string>> get_meta(std::string_view name) const;
  /// Durably sets a named value ("sync.upstream", "sync.last_ms" ...). Empty names and
  /// the names the store keeps itself (node_id, schema_version, hlc, conflict_seq,
  /// audit_seq, lane_seq/<n>) are invalid_argument.
  status put_meta(std::string_view name, std::string value);
  /// Called after each durable commit of this store (one listener; replaces).
  void set_listener(commit_listener l);

  // -- lifecycle ---------------------------------------------------------------------

  /// Empties this store as one atomic commit and queues its unsent writes again, for
  /// an operator's reset or a recovery: reads every outbox entry (or takes
  /// `opts.requeue`), deletes every record, feed entry, outbox entry, cursor, conflict,
  /// audit entry, index entry and `sync.*` meta value of the space, keeps the node id
  /// and other meta, raises the dot floor and lane sequences (to max(`opts.floor`,
  /// previous floor + dot_span)), takes a new writer identity (counter_node(): the dots
  /// of its later versions and its PN-counter entry; the totals its old entry reached
  /// upstream are unknown here, a per-node max would swallow new sales, and a version
  /// vector entry of the old id would claim every version the old store wrote, covering
  /// them wherever they meet though their content is gone from here), and merges the
  /// salvaged states back as records + feed + outbox entries, per lane in their original
  /// order, so they are pushed before anything written later. With no cursors left, the
  /// next session downloads everything again. Writes made concurrently are ordered
  /// before or after it, never lost. The caller stops sessions first (a session would
  /// keep positions of the old outbox and feed).
  result<start_over_report> start_over(start_over_options opts);
  /// The dot floor in force (0 = never rebuilt).
  uint64_t dot_floor() const;
  /// The id this store writes under: the dots of its versions and its stock counter
  /// entry. node() until the store is rebuilt (start_over), then a new one each time.
  /// Sessions, tokens and the device registry know the store by node() only.
  core::node_id counter_node() const;

  /// Retention: removes, locally, records of the sales lane (sales, payments) whose
  /// newest version was written before `before_ms` (HLC wall time) and that have no
  /// outbox entry left (the upstream has acknowledged them). Deletes the record, its
  /// feed entry and its index entries only: no tombstone, no outbox or feed entry, so
  /// nothing of it replicates. At most `limit` records per call (several commits of
  /// at most 1,000). failed_precondition on an HQ store (HQ keeps everything).
  /// Returns how many records were removed.
  result<uint64_t> purge_sales(int64_t before_ms, size_t limit = SIZE_MAX);

private:
  explicit node_store(std::unique_ptr<node_store_impl> impl);
  std::unique_ptr<node_store_impl> impl_;
};

} // namespace possync::storage
