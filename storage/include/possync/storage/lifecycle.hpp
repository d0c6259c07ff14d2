#pragma once
// A store's life on an operator's disk: checking it (`verify_store`), reading what can
// still be read out of a damaged one (`salvage_outbox`) and rebuilding it
// (`recover_store`). Backups are database::checkpoint (store.hpp); an operator's reset
// of a healthy store is node_store::start_over.
//
// These run on a database no node is writing to (a stopped node's directory, or a
// space whose node_store is closed), except where a function says otherwise.

#include <array>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "possync/core/error.hpp"
#include "possync/core/record.hpp"
#include "possync/core/schema.hpp"
#include "possync/storage/cipher.hpp"
#include "possync/storage/store.hpp"

namespace possync::storage {

/// One thing found wrong, naming where.
struct verify_problem {
  uint32_t space = 0;
  std::string where;  ///< "checksums", "meta", "records", "feed", "outbox", "cursors", "conflicts", "audit"
  std::string key;    ///< what it is about: "t1/b1/sale/01J…", "lane 0 seq 17", "lane_seq/0", "id 3"
  std::string what;
};

/// What one store space holds, as counted by verify_store.
struct space_summary {
  uint32_t space = 0;
  core::node_id node = 0;
  bool encrypted = false;
  bool values_checked = true;  ///< false: encrypted and no cipher given (values not opened)
  uint64_t dot_floor = 0;      ///< 0 = never rebuilt
  std::map<std::string, uint64_t> records;  ///< per collection
  std::array<uint64_t, core::lane_count> feed{};     ///< feed entries per lane
  std::array<uint64_t, core::lane_count> outbox{};   ///< pending outbox entries per lane
  std::array<uint64_t, core::lane_count> lane_seq{}; ///< lane heads kept in meta
  uint64_t cursors = 0, conflicts = 0, audit = 0;
};

struct verify_report {
  std::vector<space_summary> spaces;       ///< every space that has a node id
  std::vector<verify_problem> problems;    ///< the first verify_options::max_problems
  uint64_t problems_total = 0;
  bool clean() const { return problems_total == 0; }
};

struct verify_options {
  /// Opens the values of encrypted spaces; null: those values are counted, not checked.
  std::shared_ptr<const value_cipher> cipher;
  std::shared_ptr<const core::collection_registry> registry;  ///< default: the POS schema
  size_t max_problems = 1000;
};

/// Checks a database: RocksDB's checksums of every SST file (VerifyChecksum), then a
/// walk of every store space: every record state, outbox entry, conflict entry and
/// audit entry decodes (and decrypts) and validates (keys, bodies, version vectors,
/// no sibling covered by another's past); every record has the feed entry its
/// feed_seq names and every feed entry names a record that points back; outbox entries
/// sit in their collection's lane, one per key; no sequence number or id is above the
/// counter kept in meta (lane heads, conflict_seq, audit_seq), so none would be reused.
/// Damage is reported as problems, not as an error; errors are for what stops the
/// check itself.
result<verify_report> verify_store(database& db, const verify_options& opts);

/// What could be read out of one space's outbox.
struct salvaged_outbox {
  core::node_id node = 0;  ///< 0 if meta node_id is unreadable
  /// The highest of the damaged store's dot floor and lane heads (what is readable of
  /// them): the rebuilt store numbers its outbox and feed above it.
  uint64_t seq_high = 0;
  bool encrypted = false;
  /// Readable, decodable, valid outbox states, per lane in their original order.
  std::array<std::vector<core::record>, core::lane_count> entries{};
  uint64_t lost = 0;  ///< entries that did not decode or validate, plus unreadable stretches (one each)
  /// Upper layers' meta values (not the store's own, not sync.*), to carry over.
  std::vector<std::pair<std::string, std::string>> meta;
  std::vector<std::string> problems;  ///< what was skipped, and why
};

/// Reads `space`'s outbox entry by entry, skipping what does not read or decode (a
/// stretch RocksDB cannot read is retried without checksum verification, entries then
/// count only if they decode and validate). failed_precondition when the space is
/// encrypted and `cipher` is null.
result<salvaged_outbox> salvage_outbox(database& db, uint32_t space, std::shared_ptr<const value_cipher> cipher,
                                       std::shared_ptr<const core::collection_registry> registry = nullptr);

struct recover_options {
  std::string dir;       ///< the damaged store's directory (required)
  uint32_t space = 0;    ///< the space to rebuild (other spaces are left in the moved-aside copy)
  node_role role = node_role::terminal;
  std::shared_ptr<const value_cipher> cipher;  ///< required for an encrypted store; the new one is encrypted too
  core::node_id node = 0;  ///< used only when the damaged store's node id cannot be read
  core::physical_clock clock;  ///< ms since epoch, for the directory name and the dot floor; default system clock
  std::shared_ptr<const core::collection_registry> registry;  ///< default: the POS schema
};

struct recover_report {
  core::node_id node = 0;
  std::string damaged_dir;  ///< where the damaged store now is: <dir>.damaged-<UTC time>
  bool repaired = false;    ///< RocksDB's RepairDB had to run before the damaged store opened
  std::array<uint64_t, core::lane_count> salvaged{};  ///< outbox entries queued again, per lane
  uint64_t lost = 0;        ///< outbox entries that could not be salvaged
  uint64_t floor = 0;       ///< the new store's dot floor
  std::vector<std::string> problems;  ///< what the salvage skipped
};

/// Rebuilds a damaged store: moves `dir` aside to <dir>.damaged-<UTC time>, opens the
/// moved copy (running RocksDB's RepairDB on it if it does not open), salvages its
/// unsent outbox, creates a fresh store in `dir` with the SAME node id and the upper
/// layers' meta, and queues the salvaged entries there first (node_store::start_over:
/// dot floor, new counter identity). Everything else comes back from upstream: the
/// fresh store has no cursors and downloads in full. When the node id cannot be read
/// and `node` is 0, or the store is encrypted and no cipher is given, the directory is
/// moved back and the call fails (data_loss / failed_precondition). Nothing may hold
/// the database open.
result<recover_report> recover_store(const recover_options& opts);

/// Total size in bytes and number of regular files under `dir`.
result<std::pair<uint64_t, uint64_t>> dir_usage(const std::string& dir);

/// "20261204T101502Z": a UTC time for directory names (<dir>.damaged-…, .before-restore-…).
std::string utc_stamp(int64_t ms_since_epoch);

} // namespace possync::storage
