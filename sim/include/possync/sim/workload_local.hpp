#pragma once
// Workload W8 "local" (TARGETS.md): what a terminal does on its own disk. Loads a
// catalogue into a durable store (WAL synced) and measures sale commits (one
// writer, then many writers sharing group commits), product lookups by id and
// barcode, and name-prefix searches; then checks that every committed sale is
// stored exactly once and that stock equals initial stock minus what was sold.

#include <cstddef>
#include <cstdint>
#include <string>

#include "possync/core/error.hpp"

namespace possync::sim {

/// Parameters of W8. Defaults are what `bench/run` measures.
struct local_options {
  size_t products = 20'000;         ///< catalogue size
  size_t sales = 5'000;             ///< single-writer sale commits (latency sample)
  size_t writers = 8;               ///< concurrent writer threads
  size_t concurrent_sales = 40'000; ///< sale commits shared by the concurrent writers
  size_t in_flight = 32;            ///< pipelined phase: sales each writer keeps in flight (0 = skip)
  size_t pipelined_sales = 40'000;  ///< pipelined phase: sale commits shared by the writers
  size_t lookups = 100'000;         ///< lookups by id and by barcode (each)
  size_t searches = 5'000;          ///< name-prefix searches (top 50)
  uint64_t seed = 1;
  std::string dir;       ///< store directory; "" = a fresh temp dir, removed afterwards
  bool keep_dir = false; ///< keep a temp dir for inspection
};

/// Results of W8. Latencies are microseconds.
struct local_report {
  local_options opts;
  double seconds = 0;      ///< wall time of the whole workload including load and checks
  double load_seconds = 0; ///< catalogue load
  double commit_p50_us = 0, commit_p99_us = 0, commit_max_us = 0;
  double commits_per_s = 0;        ///< concurrent writers
  double single_commits_per_s = 0; ///< one writer
  double avg_group_size = 0;       ///< concurrent writers: commits per durable RocksDB write
  double pipelined_commits_per_s = 0;  ///< writers with `in_flight` asynchronous sales each
  double pipelined_group_size = 0;     ///< pipelined phase: commits per durable RocksDB write
  double lookup_id_p99_us = 0, lookup_barcode_p99_us = 0;
  double lookup_p99_us = 0; ///< max of the two
  double search_p99_us = 0;
  double search_p50_us = 0;
  uint64_t committed = 0;        ///< sales acknowledged
  uint64_t lost = 0;             ///< acknowledged but missing (read, sales index or outbox)
  uint64_t duplicated = 0;       ///< present more than once, or present but never acknowledged
  uint64_t stock_mismatches = 0; ///< products whose stock != initial - sold
  bool converged = false;        ///< lost == duplicated == stock_mismatches == 0
  double peak_rss_mb = 0;        ///< VmHWM of this process
};

/// Runs W8. Errors (store cannot open, a commit fails) are returned; check
/// failures are reported in the counts, not as errors.
result<local_report> run_local(const local_options& opts);

/// One JSON object with the field names TARGETS.md fixes (workload, parameters,
/// seconds, commit_p50_us, commit_p99_us, commits_per_s, lookup_p99_us,
/// search_p99_us, lost, duplicated, converged, peak_rss_mb) plus details.
std::string to_json(const local_report& r);
/// A few lines for a person, with the targets next to the figures.
std::string to_text(const local_report& r);

/// Peak resident set size of this process in MB (VmHWM), 0 if unknown.
double peak_rss_mb();

} // namespace possync::sim
