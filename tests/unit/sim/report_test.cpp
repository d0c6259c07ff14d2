// The HTML report: percentiles (nearest rank), the page's structure for known data,
// escaping, "no data" for empty parts, and write_html's errors.

#include <cmath>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <stdlib.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include "possync/sim/report.hpp"

namespace possync::sim {
namespace {

size_t count(const std::string& hay, const std::string& needle) {
  size_t n = 0;
  for (size_t at = hay.find(needle); at != std::string::npos; at = hay.find(needle, at + needle.size()))
    ++n;
  return n;
}

TEST(report, percentile_nearest_rank) {
  EXPECT_EQ(percentile({}, 50), 0);
  EXPECT_EQ(percentile({7}, 0), 7);
  EXPECT_EQ(percentile({7}, 50), 7);
  EXPECT_EQ(percentile({7}, 100), 7);
  // 1..100 shuffled: the p-th percentile of 1..100 is p itself.
  std::vector<double> v;
  for (int i = 100; i >= 1; --i)
    v.push_back(i);
  EXPECT_EQ(percentile(v, 50), 50);
  EXPECT_EQ(percentile(v, 90), 90);
  EXPECT_EQ(percentile(v, 99), 99);
  EXPECT_EQ(percentile(v, 99.5), 100);
  EXPECT_EQ(percentile(v, 100), 100);
  EXPECT_EQ(percentile(v, 0), 1);
  EXPECT_EQ(percentile(v, 0.5), 1);
  EXPECT_EQ(percentile(v, 1), 1);
  EXPECT_EQ(percentile(v, 1.01), 2);
  // Out of range p is clamped to the smallest or largest sample.
  EXPECT_EQ(percentile(v, -5), 1);
  EXPECT_EQ(percentile(v, 250), 100);
  // Four samples: p50 is the 2nd, p75 the 3rd, p76 the 4th.
  EXPECT_EQ(percentile({40, 10, 30, 20}, 50), 20);
  EXPECT_EQ(percentile({40, 10, 30, 20}, 75), 30);
  EXPECT_EQ(percentile({40, 10, 30, 20}, 76), 40);
  // NaN samples are ignored.
  EXPECT_EQ(percentile({NAN, 3, NAN}, 50), 3);
  EXPECT_EQ(percentile({NAN}, 50), 0);
}

run_record sample_record() {
  run_record r;
  r.title = "possync sim --workload scale <10 terminals>";
  r.command = "possync sim --workload scale --terminals 10 --note \"a&b\"";
  r.build = "0.1.0 (abc1234)";
  r.parameters = {{"terminals", "10"}, {"branches", "2"}, {"<script>", "x"}};
  r.results = {{"sales_per_s", "1234.5"}, {"lost", "0"}};
  latency_samples sale;
  sale.name = "sale -> HQ";
  for (int i = 1; i <= 1000; ++i)
    sale.ms.push_back(i / 100.0);  // 0.01 .. 10 ms: p50 5 ms, p90 9 ms, p99 9.9 ms
  latency_samples change;
  change.name = "HQ change -> terminals";
  r.latencies = {sale, change};
  for (int t = 1; t <= 30; ++t) {
    series_point p;
    p.t_s = t;
    p.sales_per_s = 100 + t;
    p.sales_at_hq_per_s = 90 + t;
    p.pending = {static_cast<uint64_t>(t), 2, 3, 4};
    p.lag_records = {0, 1, static_cast<uint64_t>(30 - t), 0};
    p.online_terminals = 10;
    p.rss_mb = 50 + t * 0.5;
    r.series.push_back(p);
  }
  return r;
}

TEST(report, page_structure_for_known_data) {
  std::string page = render_html(sample_record());
  EXPECT_EQ(page.rfind("<!DOCTYPE html>", 0), 0u);
  EXPECT_NE(page.find("</html>"), std::string::npos);
  // Self-contained: no external resources, no scripts.
  EXPECT_EQ(page.find("src="), std::string::npos);
  EXPECT_EQ(page.find("href="), std::string::npos);
  EXPECT_EQ(page.find("<script"), std::string::npos);
  EXPECT_EQ(page.find("@import"), std::string::npos);

  // Title, command and build, escaped.
  EXPECT_NE(page.find("<title>possync sim --workload scale &lt;10 terminals&gt;</title>"), std::string::npos);
  EXPECT_NE(page.find("--note &quot;a&amp;b&quot;"), std::string::npos);
  EXPECT_NE(page.find("0.1.0 (abc1234)"), std::string::npos);
  EXPECT_NE(page.find("&lt;script&gt;"), std::string::npos);
  EXPECT_NE(page.find("sale -&gt; HQ"), std::string::npos);
  EXPECT_EQ(page.find("sale -> HQ"), std::string::npos);

  // Tables.
  EXPECT_NE(page.find("Parameters"), std::string::npos);
  EXPECT_NE(page.find("<th>terminals</th><td>10</td>"), std::string::npos);
  EXPECT_NE(page.find("<th>sales_per_s</th><td>1234.5</td>"), std::string::npos);

  // One chart per histogram with samples plus five time charts.
  EXPECT_EQ(count(page, "<svg"), 1u + 5u);
  EXPECT_EQ(count(page, "</svg>"), 1u + 5u);
  EXPECT_NE(page.find("Throughput"), std::string::npos);
  EXPECT_NE(page.find("Pending per lane"), std::string::npos);
  EXPECT_NE(page.find("Lag per lane"), std::string::npos);
  EXPECT_NE(page.find("Online terminals"), std::string::npos);
  EXPECT_NE(page.find("RSS (MB)"), std::string::npos);
  for (const char* lane : {"lane 0 sales", "lane 1 stock", "lane 2 catalogue", "lane 3 reports"})
    EXPECT_EQ(count(page, lane), 2u * 2u) << lane;  // pending and lag: legend + line title each
  EXPECT_NE(page.find("sales made/s"), std::string::npos);
  EXPECT_NE(page.find("sales at HQ/s"), std::string::npos);

  // The percentile figures of "sale -> HQ" and their markers.
  EXPECT_NE(page.find("1000 samples"), std::string::npos);
  EXPECT_NE(page.find("p50 5.00 ms"), std::string::npos);
  EXPECT_NE(page.find("p90 9.00 ms"), std::string::npos);
  EXPECT_NE(page.find("p99 9.90 ms"), std::string::npos);
  EXPECT_NE(page.find("max 10.00 ms"), std::string::npos);
  EXPECT_GE(count(page, "class=\"mark\""), 4u);
  EXPECT_NE(page.find("latency (ms, log scale)"), std::string::npos);
  EXPECT_NE(page.find("time since the measured phase began (s)"), std::string::npos);

  // The latency without samples says so instead of drawing an empty chart.
  EXPECT_NE(page.find("No data: no samples of HQ change -&gt; terminals"), std::string::npos);
}

TEST(report, empty_record_reads_as_no_data) {
  run_record r;
  std::string page = render_html(r);
  EXPECT_NE(page.find("<title>possync sim report</title>"), std::string::npos);
  EXPECT_EQ(page.find("<svg"), std::string::npos);
  EXPECT_GE(count(page, "No data"), 1u + 2u + 5u);  // latencies, two tables, five charts
}

TEST(report, degenerate_data_still_renders) {
  run_record r;
  latency_samples zero;
  zero.name = "all zero";
  zero.ms = {0, 0, 0};
  latency_samples one;
  one.name = "one";
  one.ms = {3.5};
  latency_samples odd;
  odd.name = "odd values";
  odd.ms = {INFINITY, 1, NAN, 2};
  r.latencies = {zero, one, odd};
  series_point p;
  p.t_s = 0;
  r.series = {p};  // one point, all zero
  std::string page = render_html(r);
  EXPECT_EQ(count(page, "<svg"), 3u + 5u);
  for (const char* bad : {"nan", "inf"}) {
    auto at = page.find(bad);
    EXPECT_EQ(at, std::string::npos) << page.substr(at < 80 ? 0 : at - 80, 160);
  }
}

TEST(report, write_html_and_its_errors) {
  char dir_templ[] = "/tmp/possync-report-XXXXXX";
  ASSERT_NE(::mkdtemp(dir_templ), nullptr);
  std::string dir = dir_templ;
  std::string path = dir + "/r.html";
  auto rec = sample_record();
  auto st = write_html(rec, path);
  ASSERT_FALSE(st) << st.to_string();
  std::ifstream in(path, std::ios::binary);
  std::stringstream got;
  got << in.rdbuf();
  EXPECT_EQ(got.str(), render_html(rec));

  auto bad = write_html(rec, dir + "/no/such/dir/r.html");
  ASSERT_TRUE(bad);
  EXPECT_EQ(bad.code, errc::unavailable);
  EXPECT_NE(bad.message.find(dir + "/no/such/dir/r.html"), std::string::npos);
  EXPECT_NE(bad.message.find("No such file"), std::string::npos);

  std::remove(path.c_str());
  ::rmdir(dir.c_str());
}

} // namespace
} // namespace possync::sim
