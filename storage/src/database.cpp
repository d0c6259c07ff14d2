// database: RocksDB setup, fault injection and the committer.

#include <algorithm>
#include <chrono>
#include <utility>

#include <rocksdb/cache.h>
#include <rocksdb/file_system.h>
#include <rocksdb/filter_policy.h>
#include <rocksdb/options.h>
#include <rocksdb/table.h>
#include <rocksdb/utilities/checkpoint.h>

#include <filesystem>

#include "database_impl.hpp"

namespace possync::storage {

namespace {

constexpr const char* no_space_text = "No space left on device";

const char* const cf_names[cf_count] = {"records", "feed", "outbox", "cursors",
                                        "conflicts", "audit", "meta", "index"};

/// Fails writes while the fault flags are set. Nothing reaches the wrapped file on
/// a failed append, so an unacknowledged write never lands in the WAL.
class fault_file final : public rocksdb::FSWritableFileOwnerWrapper {
public:
  fault_file(std::unique_ptr<rocksdb::FSWritableFile> f, std::shared_ptr<io_faults> faults)
      : FSWritableFileOwnerWrapper(std::move(f)), faults_(std::move(faults)) {}

  rocksdb::IOStatus Append(const rocksdb::Slice& data, const rocksdb::IOOptions& o,
                           rocksdb::IODebugContext* dbg) override {
    if (auto s = check(); !s.ok()) return s;
    return FSWritableFileOwnerWrapper::Append(data, o, dbg);
  }
  rocksdb::IOStatus Append(const rocksdb::Slice& data, const rocksdb::IOOptions& o,
                           const rocksdb::DataVerificationInfo& v, rocksdb::IODebugContext* dbg) override {
    if (auto s = check(); !s.ok()) return s;
    return FSWritableFileOwnerWrapper::Append(data, o, v, dbg);
  }
  rocksdb::IOStatus PositionedAppend(const rocksdb::Slice& data, uint64_t off, const rocksdb::IOOptions& o,
                                     rocksdb::IODebugContext* dbg) override {
    if (auto s = check(); !s.ok()) return s;
    return FSWritableFileOwnerWrapper::PositionedAppend(data, off, o, dbg);
  }
  rocksdb::IOStatus PositionedAppend(const rocksdb::Slice& data, uint64_t off, const rocksdb::IOOptions& o,
                                     const rocksdb::DataVerificationInfo& v,
                                     rocksdb::IODebugContext* dbg) override {
    if (auto s = check(); !s.ok()) return s;
    return FSWritableFileOwnerWrapper::PositionedAppend(data, off, o, v, dbg);
  }
  rocksdb::IOStatus Flush(const rocksdb::IOOptions& o, rocksdb::IODebugContext* dbg) override {
    if (auto s = check(); !s.ok()) return s;
    return FSWritableFileOwnerWrapper::Flush(o, dbg);
  }
  rocksdb::IOStatus Sync(const rocksdb::IOOptions& o, rocksdb::IODebugContext* dbg) override {
    if (auto s = check(); !s.ok()) return s;
    return FSWritableFileOwnerWrapper::Sync(o, dbg);
  }
  rocksdb::IOStatus Fsync(const rocksdb::IOOptions& o, rocksdb::IODebugContext* dbg) override {
    if (auto s = check(); !s.ok()) return s;
    return FSWritableFileOwnerWrapper::Fsync(o, dbg);
  }

private:
  rocksdb::IOStatus check() const {
    // Both are retryable I/O errors: RocksDB stops writes (hard error) and
    // database::resume() recovers once the fault clears. Disk full is not given
    // the kNoSpace subcode on purpose: RocksDB hands that to its SstFileManager,
    // whose background recovery, failing while the fault lasts, makes the error
    // unrecoverable. map_status recognises the message instead.
    rocksdb::IOStatus s;
    if (faults_->disk_full.load(std::memory_order_relaxed))
      s = rocksdb::IOStatus::IOError(no_space_text, "injected");
    else if (faults_->io_error.load(std::memory_order_relaxed))
      s = rocksdb::IOStatus::IOError("injected I/O error");
    if (!s.ok()) s.SetRetryable(true);
    return s;
  }
  std::shared_ptr<io_faults> faults_;
};

class fault_fs final : public rocksdb::FileSystemWrapper {
public:
  fault_fs(const std::shared_ptr<rocksdb::FileSystem>& base, std::shared_ptr<io_faults> faults)
      : FileSystemWrapper(base), faults_(std::move(faults)) {}
  const char* Name() const override { return "possync_fault_fs"; }

  rocksdb::IOStatus NewWritableFile(const std::string& f, const rocksdb::FileOptions& o,
                                    std::unique_ptr<rocksdb::FSWritableFile>* r,
                                    rocksdb::IODebugContext* dbg) override {
    return wrap(FileSystemWrapper::NewWritableFile(f, o, r, dbg), r);
  }
  rocksdb::IOStatus ReopenWritableFile(const std::string& f, const rocksdb::FileOptions& o,
                                       std::unique_ptr<rocksdb::FSWritableFile>* r,
                                       rocksdb::IODebugContext* dbg) override {
    return wrap(FileSystemWrapper::ReopenWritableFile(f, o, r, dbg), r);
  }
  rocksdb::IOStatus ReuseWritableFile(const std::string& f, const std::string& old, const rocksdb::FileOptions& o,
                                      std::unique_ptr<rocksdb::FSWritableFile>* r,
                                      rocksdb::IODebugContext* dbg) override {
    return wrap(FileSystemWrapper::ReuseWritableFile(f, old, o, r, dbg), r);
  }

private:
  rocksdb::IOStatus wrap(rocksdb::IOStatus s, std::unique_ptr<rocksdb::FSWritableFile>* r) {
    if (s.ok() && *r) *r = std::make_unique<fault_file>(std::move(*r), faults_);
    return s;
  }
  std::shared_ptr<io_faults> faults_;
};

rocksdb::ColumnFamilyOptions cf_options(const db_options& opts, const std::shared_ptr<rocksdb::Cache>& cache,
                                        bool point_lookups) {
  rocksdb::ColumnFamilyOptions o;
  o.write_buffer_size = opts.write_buffer_bytes;
  rocksdb::BlockBasedTableOptions t;
  t.block_cache = cache;
  if (point_lookups) {
    t.filter_policy.reset(rocksdb::NewBloomFilterPolicy(10));
    t.whole_key_filtering = true;
    // Most keys an HQ looks up before applying a pushed sale are new: a memtable
    // bloom filter answers "absent" without walking the skip list.
    o.memtable_prefix_bloom_size_ratio = 0.02;
    o.memtable_whole_key_filtering = true;
  }
  t.format_version = 5;
  o.table_factory.reset(rocksdb::NewBlockBasedTableFactory(t));
  // Values of 64 KiB and more (reports, large records and their outbox entries) live in
  // blob files: a data block holding one would otherwise be read and decompressed whole
  // by every seek that lands on it, e.g. each outbox window of an empty lane next to a
  // queued (or acked, not yet compacted) 5 MB report (W6 found sales 40x slower so).
  o.enable_blob_files = true;
  o.min_blob_size = 64 * 1024;
  o.enable_blob_garbage_collection = true;
  // Level 0 holds what was just flushed, much of it rewritten again within seconds
  // (stock counters at every sale, feed and outbox entries soon deleted): compressing
  // every flush cost about 3.5 % of all CPU in W5 (snappy). Deeper levels stay
  // compressed, so a large store's size does not change (level 1 uncompressed too
  // made HQ's million-record store of W9 half as large again).
  o.compression_per_level.assign(static_cast<size_t>(o.num_levels), rocksdb::kSnappyCompression);
  o.compression_per_level[0] = rocksdb::kNoCompression;
  return o;
}

} // namespace

error map_status(const rocksdb::Status& s, const char* what) {
  std::string msg = std::string(what) + ": " + s.ToString();
  if (s.IsNoSpace() || (s.IsIOError() && msg.find(no_space_text) != std::string::npos))
    return error(errc::resource_exhausted, "disk full: " + msg);
  if (s.IsCorruption()) return error(errc::data_loss, msg);
  if (s.IsIOError()) return error(errc::unavailable, msg);
  if (s.IsInvalidArgument()) return error(errc::invalid_argument, msg);
  if (s.IsNotFound()) return error(errc::not_found, msg);
  if (s.IsBusy() || s.IsTimedOut() || s.IsTryAgain()) return error(errc::unavailable, msg);
  if (s.IsNotSupported()) return error(errc::failed_precondition, msg);
  return error(errc::internal, msg);
}

// -- txn -----------------------------------------------------------------------------

result<std::optional<std::string>> txn::get(cf_id cf, const std::string& key) const {
  if (auto it = staged_[cf].find(key); it != staged_[cf].end()) return it->second;
  if (auto it = group_[cf].find(key); it != group_[cf].end()) return it->second;
  if (below_)
    if (auto it = (*below_)[cf].find(key); it != (*below_)[cf].end()) return it->second;
  std::string v;
  auto s = db_->Get(rocksdb::ReadOptions(), cfs_[cf], key, &v);
  if (s.IsNotFound()) return std::optional<std::string>();
  if (!s.ok()) return map_status(s, "read");
  return std::optional<std::string>(std::move(v));
}

result<std::vector<std::optional<std::string>>> txn::read_many(cf_id cf,
                                                               const std::vector<std::string>& keys) const {
  std::vector<std::optional<std::string>> out(keys.size());
  std::vector<size_t> from_db;  // indexes into keys
  from_db.reserve(keys.size());
  for (size_t i = 0; i < keys.size(); ++i) {
    if (auto it = group_[cf].find(keys[i]); it != group_[cf].end()) {
      out[i] = it->second;
      continue;
    }
    if (below_) {
      if (auto it = (*below_)[cf].find(keys[i]); it != (*below_)[cf].end()) {
        out[i] = it->second;
        continue;
      }
    }
    from_db.push_back(i);
  }
  if (from_db.empty()) return out;
  // MultiGet wants sorted keys for its batched memtable and SST lookups.
  std::sort(from_db.begin(), from_db.end(), [&](size_t a, size_t b) { return keys[a] < keys[b]; });
  std::vector<rocksdb::Slice> want;
  want.reserve(from_db.size());
  for (size_t i : from_db) want.emplace_back(keys[i]);
  std::vector<rocksdb::PinnableSlice> values(want.size());
  std::vector<rocksdb::Status> statuses(want.size());
  db_->MultiGet(rocksdb::ReadOptions(), cfs_[cf], want.size(), want.data(), values.data(), statuses.data(),
                /*sorted_input=*/true);
  for (size_t j = 0; j < from_db.size(); ++j) {
    if (statuses[j].IsNotFound()) continue;
    if (!statuses[j].ok()) return map_status(statuses[j], "read");
    out[from_db[j]] = values[j].ToString();
  }
  return out;
}

result<std::vector<std::string>> txn::keys_in(cf_id cf, const std::string& begin, const std::string& end) const {
  std::set<std::string> keys;
  rocksdb::ReadOptions ro;
  rocksdb::Slice upper(end);
  ro.iterate_upper_bound = &upper;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ro, cfs_[cf]));
  for (it->Seek(begin); it->Valid(); it->Next()) keys.insert(it->key().ToString());
  if (!it->status().ok()) return map_status(it->status(), "scan");
  for (const overlay* o : {below_, &group_, &staged_}) {
    if (!o) continue;
    const auto& m = (*o)[cf];
    for (auto i = m.lower_bound(begin); i != m.end() && i->first < end; ++i) {
      if (i->second) keys.insert(i->first);
      else keys.erase(i->first);
    }
  }
  return std::vector<std::string>(keys.begin(), keys.end());
}

// -- database_impl ---------------------------------------------------------------------

result<std::unique_ptr<database_impl>> database_impl::open(const db_options& opts) {
  if (!opts.in_memory && opts.path.empty())
    return error(errc::invalid_argument, "db_options.path is required unless in_memory");
  if (opts.write_buffer_bytes < (64u << 10))
    return error(errc::invalid_argument, "db_options.write_buffer_bytes must be at least 64 KiB");

  std::unique_ptr<database_impl> d(new database_impl());
  d->opts_ = opts;
  std::string path = opts.path.empty() ? std::string("/possync-mem") : opts.path;

  std::shared_ptr<rocksdb::FileSystem> fs;
  if (opts.in_memory) {
    d->mem_base_.reset(rocksdb::NewMemEnv(rocksdb::Env::Default()));
    fs = d->mem_base_->GetFileSystem();
  } else {
    fs = rocksdb::FileSystem::Default();
  }
  if (opts.faults) fs = std::make_shared<fault_fs>(fs, opts.faults);
  if (opts.faults || opts.in_memory) d->env_ = rocksdb::NewCompositeEnv(fs);

  d->cache_ = rocksdb::NewLRUCache(std::max<size_t>(opts.block_cache_bytes, 1u << 20));

  rocksdb::DBOptions dbo;
  dbo.create_if_missing = true;
  dbo.create_missing_column_families = true;
  dbo.max_background_jobs = 2;
  dbo.manual_wal_flush = false;
  dbo.avoid_flush_during_shutdown = false;
  dbo.info_log_level = rocksdb::WARN_LEVEL;
  dbo.keep_log_file_num = 4;
  dbo.max_total_wal_size = 64u << 20;
  // Recovery from write errors only through database::resume(): RocksDB's own
  // retries, running while the fault lasts, can turn it into an unrecoverable error.
  dbo.max_bgerror_resume_count = 0;
  if (d->env_) dbo.env = d->env_.get();

  // RocksDB requires the default column family; it stays empty. Only the families the
  // store already has are opened; the missing ones (all of them for a new store) are
  // created afterwards in one CreateColumnFamilies call: create_missing_column_families
  // would create them one by one, writing and re-parsing the OPTIONS file for each
  // (a tenth of a simulated seed's time went there, where stores are made all the time).
  std::vector<std::string> existing;
  if (!rocksdb::DB::ListColumnFamilies(dbo, path, &existing).ok()) existing.clear();
  std::vector<rocksdb::ColumnFamilyDescriptor> descs, missing;
  std::vector<int> desc_cf, missing_cf;  // cf index per descriptor, -1 = default
  descs.emplace_back(rocksdb::kDefaultColumnFamilyName, cf_options(opts, d->cache_, false));
  desc_cf.push_back(-1);
  for (int i = 0; i < cf_count; ++i) {
    bool point = i == cf_records || i == cf_index || i == cf_meta;
    rocksdb::ColumnFamilyDescriptor desc(cf_names[i], cf_options(opts, d->cache_, point));
    bool present = std::find(existing.begin(), existing.end(), cf_names[i]) != existing.end();
    (present ? descs : missing).push_back(std::move(desc));
    (present ? desc_cf : missing_cf).push_back(i);
  }
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::DB* db = nullptr;
  auto s = rocksdb::DB::Open(dbo, path, descs, &handles, &db);
  if (!s.ok()) return map_status(s, "open");
  d->db_ = db;
  for (size_t j = 0; j < handles.size(); ++j) {
    if (desc_cf[j] < 0) d->default_cf_ = handles[j];
    else d->cfs_[desc_cf[j]] = handles[j];
  }
  if (!missing.empty()) {
    std::vector<rocksdb::ColumnFamilyHandle*> created;
    s = db->CreateColumnFamilies(missing, &created);
    for (size_t j = 0; j < created.size(); ++j) d->cfs_[missing_cf[j]] = created[j];
    if (!s.ok()) return map_status(s, "open: create column families");
  }
  if (auto e = d->keep_wal_switchable()) return e;
  if (opts.group_commit) {
    d->writer_ = std::thread([p = d.get()] { p->run_writer(); });
    d->committer_ = std::thread([p = d.get()] { p->run_committer(); });
  }
  return d;
}

status database_impl::repair(const std::string& path) {
  rocksdb::DBOptions dbo;
  dbo.info_log_level = rocksdb::WARN_LEVEL;
  std::vector<rocksdb::ColumnFamilyDescriptor> cfs;
  cfs.emplace_back(rocksdb::kDefaultColumnFamilyName, rocksdb::ColumnFamilyOptions());
  for (const char* name : cf_names) cfs.emplace_back(name, rocksdb::ColumnFamilyOptions());
  auto s = rocksdb::RepairDB(path, dbo, cfs);
  if (!s.ok()) return map_status(s, "repair");
  return status();
}

database_impl::~database_impl() {
  if (committer_.joinable()) {
    {
      std::lock_guard<std::mutex> lk(queue_mu_);
      stop_ = true;
    }
    queue_cv_.notify_all();
    committer_.join();
    {
      std::lock_guard<std::mutex> lk(queue_mu_);
      writer_stop_ = true;
    }
    writer_cv_.notify_all();
    writer_.join();
  }
  if (db_) {
    for (auto* h : cfs_)
      if (h) db_->DestroyColumnFamilyHandle(h);
    if (default_cf_) db_->DestroyColumnFamilyHandle(default_cf_);
    db_->Close();
    delete db_;
  }
}

void database_impl::submit(std::unique_ptr<write_request> r) {
  if (!opts_.group_commit) {
    std::lock_guard<std::mutex> lk(commit_mu_);
    std::vector<std::unique_ptr<write_request>> one;
    one.push_back(std::move(r));
    process_group(one);
    return;
  }
  bool closing = false;
  {
    std::lock_guard<std::mutex> lk(queue_mu_);
    closing = stop_;
    if (!closing) queue_.push_back(std::move(r));
  }
  if (closing) r->finish(error(errc::unavailable, "database is closing"));
  else queue_cv_.notify_one();
}

void database_impl::run_committer() {
  // `inflight` has been handed to the writer; the next group is prepared on top of
  // its overlay while it is written, and completed only after it (order preserved).
  std::unique_ptr<group_state> inflight;
  for (;;) {
    std::vector<std::unique_ptr<write_request>> reqs;
    {
      std::unique_lock<std::mutex> lk(queue_mu_);
      queue_cv_.wait(lk, [&] { return !queue_.empty() || (inflight && writer_done_) || (stop_ && !inflight); });
      if (queue_.empty() && !inflight && stop_) return;
      reqs = take_group();
    }
    std::unique_ptr<group_state> next;
    if (!reqs.empty()) {
      next = std::make_unique<group_state>();
      next->reqs = std::move(reqs);
      prepare_group(*next, inflight ? &inflight->ov : nullptr);
    }
    if (inflight) {
      {
        std::unique_lock<std::mutex> lk(queue_mu_);
        queue_cv_.wait(lk, [&] { return writer_done_; });
        writer_done_ = false;
      }
      complete_group(*inflight);
      if (inflight->write_err && next) {
        // `next` was prepared on top of writes that did not happen: it fails whole.
        next->write_err = inflight->write_err;
        complete_group(*next);
        next.reset();
      }
      inflight.reset();
    }
    if (!next) continue;
    seal_group(*next);
    bool lone = false;
    if (next->batch.Count() > 0 && next->reqs.size() == 1) {
      std::lock_guard<std::mutex> lk(queue_mu_);
      lone = queue_.empty();
    }
    if (next->batch.Count() == 0 || lone) {
      // A lone request (one writer waiting on each commit): nothing to overlap
      // with, so write here and spare it the hand-over's latency. Larger groups go
      // to the writer, since their callers' next requests arrive while it syncs.
      next->write_err = write_group(*next);
      complete_group(*next);
      continue;
    }
    {
      std::lock_guard<std::mutex> lk(queue_mu_);
      writer_slot_ = next.get();
    }
    writer_cv_.notify_one();
    inflight = std::move(next);
  }
}

std::vector<std::unique_ptr<write_request>> database_impl::take_group() {
  std::vector<std::unique_ptr<write_request>> out;
  if (queue_.empty()) return out;
  size_t barrier = 0;
  while (barrier < queue_.size() && queue_[barrier]->priority >= 0) ++barrier;
  if (barrier == 0) {  // barriers first: they go together, in order
    size_t n = 0;
    while (n < queue_.size() && queue_[n]->priority < 0) ++n;
    out.insert(out.end(), std::make_move_iterator(queue_.begin()), std::make_move_iterator(queue_.begin() + n));
    queue_.erase(queue_.begin(), queue_.begin() + n);
    return out;
  }
  int top = 0;
  for (size_t i = 0; i < barrier; ++i) top = std::max(top, queue_[i]->priority);
  std::vector<bool> take(barrier, false);
  size_t taken = 0, budget = lower_lane_budget;
  for (int lane = 0; lane <= top; ++lane) {
    bool any = false;  // the oldest request of every lane goes in: none starves
    for (size_t i = 0; i < barrier; ++i) {
      if (queue_[i]->priority != lane) continue;
      if (lane > 1 && budget == 0 && any) break;
      take[i] = true;
      any = true;
      ++taken;
      if (lane > 1) budget -= std::min(budget, queue_[i]->weight);
    }
  }
  const bool all = taken == barrier;
  out.reserve(taken + (all && barrier < queue_.size() ? 1 : 0));
  // Lane by lane: the group prepares (and completes) its sales first.
  for (int lane = 0; lane <= top; ++lane)
    for (size_t i = 0; i < barrier; ++i)
      if (take[i] && queue_[i] && queue_[i]->priority == lane) out.push_back(std::move(queue_[i]));
  if (all && barrier < queue_.size()) out.push_back(std::move(queue_[barrier]));
  std::vector<std::unique_ptr<write_request>> rest;
  rest.reserve(queue_.size() - out.size());
  for (auto& r : queue_)
    if (r) rest.push_back(std::move(r));
  queue_.swap(rest);
  return out;
}

void database_impl::run_writer() {
  for (;;) {
    group_state* g = nullptr;
    {
      std::unique_lock<std::mutex> lk(queue_mu_);
      writer_cv_.wait(lk, [&] { return writer_slot_ != nullptr || writer_stop_; });
      if (!writer_slot_) return;
      g = writer_slot_;
    }
    g->write_err = write_group(*g);
    {
      std::lock_guard<std::mutex> lk(queue_mu_);
      writer_slot_ = nullptr;
      writer_done_ = true;
    }
    queue_cv_.notify_all();
  }
}

void database_impl::prepare_group(group_state& g, const overlay* below) {
  auto& ov = g.ov;
  g.results.resize(g.reqs.size());
  for (size_t i = 0; i < g.reqs.size(); ++i) {
    auto& r = *g.reqs[i];
    txn t(db_, cfs_, ov, below);
    if (r.participant) r.participant->request_begin();
    status s = r.prepare(t);
    if (!s && r.participant) s = r.participant->request_accept(t);
    if (s) {
      if (r.participant) r.participant->request_abort();
      g.results[i] = std::move(s);
      continue;
    }
    for (int cf = 0; cf < cf_count; ++cf) {
      auto& staged = t.staged()[cf];
      // Move the nodes (no key copies); a later request's write replaces an earlier one's.
      while (!staged.empty()) {
        auto nh = staged.extract(staged.begin());
        auto ins = ov[cf].insert(std::move(nh));
        if (!ins.inserted) ins.position->second = std::move(ins.node.mapped());
      }
    }
    if (r.participant && std::find(g.parts.begin(), g.parts.end(), r.participant) == g.parts.end())
      g.parts.push_back(r.participant);
    g.results[i] = status();
    ++g.accepted;
    g.sync = g.sync || r.needs_sync;
  }

  // One batch of the group's final values, each column family in key order (the
  // overlay is ordered): the memtable's skip list inserts a key next to the previous
  // one far more cheaply than at a random place, and keys overwritten within the
  // group are written once. The batch is sized once up front: grown by doubling, a
  // batch of megabytes of counter states was copied over and over into fresh pages.
  size_t bytes = 12; // header: sequence + count
  for (int cf = 0; cf < cf_count; ++cf)
    for (const auto& [k, v] : ov[cf])
      bytes += 16 + k.size() + (v ? v->size() : 0); // tag, cf, lengths
  g.batch = rocksdb::WriteBatch(bytes);
  for (int cf = 0; cf < cf_count; ++cf) {
    for (const auto& [k, v] : ov[cf]) {
      if (v) g.batch.Put(cfs_[cf], k, *v);
      else g.batch.Delete(cfs_[cf], k);
    }
  }
}

void database_impl::seal_group(group_state& g) {
  for (auto* p : g.parts) p->group_sealed();
}

status database_impl::write_group(group_state& g) {
  if (g.batch.Count() == 0) return status();
  rocksdb::WriteOptions wo;
  wo.sync = opts_.sync && g.sync;
  auto s = db_->Write(wo, &g.batch);
  groups_.fetch_add(1, std::memory_order_relaxed);
  if (!s.ok()) return map_status(s, "commit");
  return status();
}

void database_impl::complete_group(group_state& g) {
  for (auto* p : g.parts) {
    if (g.write_err) p->group_failed();
    else p->group_committed();
  }
  if (!g.write_err) commits_.fetch_add(g.accepted, std::memory_order_relaxed);
  for (size_t i = 0; i < g.reqs.size(); ++i) {
    if (!g.results[i] && g.write_err) g.results[i] = g.write_err;
    if (!g.results[i]) observe_latency(g.reqs[i]->submitted);
    g.reqs[i]->finish(g.results[i]);
  }
}

void database_impl::observe_latency(std::chrono::steady_clock::time_point submitted) {
  const auto us = std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - submitted)
                      .count();
  const double ms = static_cast<double>(us) / 1000.0;
  const auto& b = database::latency_histogram::bounds_ms;
  const size_t i = static_cast<size_t>(std::lower_bound(b.begin(), b.end(), ms) - b.begin());
  latency_buckets_[i].fetch_add(1, std::memory_order_relaxed);
  latency_sum_us_.fetch_add(static_cast<uint64_t>(us), std::memory_order_relaxed);
}

database::latency_histogram database_impl::commit_latency() const {
  database::latency_histogram h;
  for (size_t i = 0; i < h.counts.size(); ++i) {
    h.counts[i] = latency_buckets_[i].load(std::memory_order_relaxed);
    h.count += h.counts[i];
  }
  h.sum_ms = static_cast<double>(latency_sum_us_.load(std::memory_order_relaxed)) / 1000.0;
  return h;
}

void database_impl::process_group(std::vector<std::unique_ptr<write_request>>& group) {
  group_state g;
  g.reqs = std::move(group);
  prepare_group(g, nullptr);
  seal_group(g);
  g.write_err = write_group(g);
  complete_group(g);
}

status database_impl::resume() {
  // RocksDB may already be recovering on its own (Busy): wait for it, bounded.
  rocksdb::Status s;
  for (int attempt = 0; attempt < 500; ++attempt) {
    s = db_->Resume();
    if (!s.IsBusy()) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  if (!s.ok()) return map_status(s, "resume");
  // Resume() flushed every memtable: the marker goes back in (see keep_wal_switchable).
  if (auto e = keep_wal_switchable()) return e;
  return status();
}

status database_impl::keep_wal_switchable() {
  // Resume() leaves a WAL that saw a failed append only by switching to a new WAL, and
  // it switches only while flushing a non-empty memtable. With nothing written since
  // the previous resume every memtable was empty, the failed WAL writer stayed in use
  // and the next write met its "previous error" (an assertion in RocksDB builds with
  // assertions). So the default column family (otherwise unused) always holds one
  // unlogged marker in its memtable: every Resume() flushes it and switches WALs.
  rocksdb::WriteOptions wo;
  wo.disableWAL = true;
  auto s = db_->Put(wo, default_cf_, "possync.wal_switch", "");
  if (!s.ok()) return map_status(s, "marking the memtable");
  return status();
}

status database_impl::flush() {
  rocksdb::FlushOptions fo;
  std::vector<rocksdb::ColumnFamilyHandle*> hs(cfs_.begin(), cfs_.end());
  auto s = db_->Flush(fo, hs);
  if (!s.ok()) return map_status(s, "flush");
  return status();
}

bool database_impl::claim_space(uint32_t space) {
  std::lock_guard<std::mutex> lk(spaces_mu_);
  return spaces_.insert(space).second;
}

void database_impl::release_space(uint32_t space) {
  std::lock_guard<std::mutex> lk(spaces_mu_);
  spaces_.erase(space);
}

// -- database ------------------------------------------------------------------------------

database::database(std::unique_ptr<database_impl> impl) : impl_(std::move(impl)) {}
database::~database() = default;

result<std::shared_ptr<database>> database::open(const db_options& opts) {
  auto d = database_impl::open(opts);
  if (!d) return std::move(d).err();
  return std::shared_ptr<database>(new database(std::move(d).value()));
}

status database::resume() { return impl_->resume(); }
status database::flush() { return impl_->flush(); }

status database::checkpoint(const std::string& target_dir) {
  if (impl_->options().in_memory) return error(errc::failed_precondition, "an in-memory database has no files to back up");
  if (target_dir.empty()) return error(errc::invalid_argument, "checkpoint: no target directory");
  std::error_code ec;
  if (std::filesystem::exists(target_dir, ec)) {
    if (!std::filesystem::is_directory(target_dir, ec) || !std::filesystem::is_empty(target_dir, ec))
      return error(errc::already_exists, "backup target '" + target_dir + "' exists and is not an empty directory");
    // RocksDB creates the directory itself (and refuses an existing one).
    std::filesystem::remove(target_dir, ec);
    if (ec) return error(errc::unavailable, "backup target '" + target_dir + "': " + ec.message());
  }
  rocksdb::Checkpoint* raw = nullptr;
  auto s = rocksdb::Checkpoint::Create(impl_->db(), &raw);
  if (!s.ok()) return map_status(s, "checkpoint");
  std::unique_ptr<rocksdb::Checkpoint> cp(raw);
  // log_size_for_flush = 0: memtables are flushed first, so the backup is SST files
  // plus a short WAL, one consistent point across every column family.
  s = cp->CreateCheckpoint(target_dir, /*log_size_for_flush=*/0);
  if (!s.ok()) return map_status(s, ("checkpoint to '" + target_dir + "'").c_str());
  return status();
}
const db_options& database::options() const { return impl_->options(); }
uint64_t database::commit_groups() const { return impl_->commit_groups(); }
uint64_t database::commits() const { return impl_->commits(); }
database::latency_histogram database::commit_latency() const { return impl_->commit_latency(); }

const char* to_string(node_role r) noexcept {
  switch (r) {
    case node_role::terminal: return "terminal";
    case node_role::branch: return "branch";
    case node_role::hq: return "hq";
  }
  return "unknown";
}

} // namespace possync::storage
