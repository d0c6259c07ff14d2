#pragma once
// What a load run measured over time, and the self-contained HTML page
// (`possync sim --report FILE.html`) that shows it: latency histograms (sale -> HQ,
// HQ change -> terminals), throughput over time, pending and lag per lane over time.
// The page has no external resources (inline SVG and CSS, no scripts needed), so it
// can be mailed or opened from a CI artifact.

#include <array>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "possync/core/error.hpp"

namespace possync::sim {

/// Latency samples of one kind, in milliseconds.
struct latency_samples {
  std::string name;            ///< "sale -> HQ", "HQ change -> terminals"
  std::vector<double> ms;      ///< one per event (unsorted)
};

/// One sample of the run's state, taken every `interval` of the run.
struct series_point {
  double t_s = 0;                                   ///< seconds since the measured phase began
  double sales_per_s = 0;                           ///< sales made per second in the last interval
  double sales_at_hq_per_s = 0;                     ///< sales durable at HQ (or acked upstream) per second
  std::array<uint64_t, 4> pending{};                ///< outbox entries waiting per lane, summed over nodes
  std::array<uint64_t, 4> lag_records{};            ///< records downstreams still have to receive, per lane (summed estimate)
  uint32_t online_terminals = 0;
  double rss_mb = 0;
};

/// A load run as the report shows it.
struct run_record {
  std::string title;                                ///< "possync sim --workload scale ..."
  std::string command;                              ///< the command line that produced it
  std::string build;                                ///< version / commit
  std::map<std::string, std::string> parameters;    ///< shown as a table, in key order
  std::map<std::string, std::string> results;       ///< headline figures, shown as a table
  std::vector<latency_samples> latencies;
  std::vector<series_point> series;
};

/// Percentile p (0..100) of samples (nearest rank); 0 for none.
double percentile(std::vector<double> samples, double p);

/// The page, as one string.
std::string render_html(const run_record& r);
/// Writes render_html(r) to `path` (unavailable naming the path and errno text).
possync::status write_html(const run_record& r, const std::string& path);

} // namespace possync::sim
