#pragma once
// Private: decoded record states recently served from a store's feed, shared by the
// sessions that serve it. A branch's terminals all read the same stock and catalogue
// changes; each read of a cached state skips the RocksDB read and the decode.

#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>

#include "possync/core/record.hpp"

namespace possync::storage {

/// Keyed by RocksDB record key and feed seq. A (key, seq) pair names one record state
/// for the life of a store: a record's feed entry moves to a new, higher seq whenever
/// the record changes, lane seqs never go back (a failed group's seqs were never in the
/// DB, so never read and never cached), and start_over() keeps them growing. Bounded by
/// an estimate of the decoded size; the oldest entries go first. Thread-safe.
class feed_cache {
public:
  /// budget_bytes 0: nothing is kept.
  explicit feed_cache(size_t budget_bytes) : budget_(budget_bytes) {}

  /// The state cached for `rkey` at `seq`, or null.
  std::shared_ptr<const core::record> find(std::string_view rkey, uint64_t seq) const;
  /// Keeps `rec` as the state of `rkey` at `seq` (replacing an older seq's).
  void put(std::string_view rkey, uint64_t seq, std::shared_ptr<const core::record> rec);

private:
  /// Rough heap size of a decoded record.
  static size_t estimate(const core::record& r);

  struct entry {
    uint64_t seq = 0;
    std::shared_ptr<const core::record> rec;
    size_t bytes = 0;
  };
  void evict_locked();

  const size_t budget_;
  mutable std::mutex mu_;
  std::unordered_map<std::string, entry> map_;
  std::deque<std::pair<std::string, uint64_t>> order_; ///< insertion order; stale pairs skipped
  size_t bytes_ = 0;
};

} // namespace possync::storage
