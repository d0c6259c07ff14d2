#include "possync/sim/report.hpp"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>
#include <map>
#include <limits>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

namespace possync::sim {

namespace {

// Text as HTML character data or attribute value.
std::string esc(const std::string& s) {
  std::string out;
  out.reserve(s.size() + 16);
  for (char c : s) {
    switch (c) {
    case '&': out += "&amp;"; break;
    case '<': out += "&lt;"; break;
    case '>': out += "&gt;"; break;
    case '"': out += "&quot;"; break;
    case '\'': out += "&#39;"; break;
    default: out += c;
    }
  }
  return out;
}

std::string fmt(const char* f, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}

// A coordinate in an SVG attribute (one decimal is plenty).
std::string px(double v) { return fmt("%.1f", v); }

// A figure for a person: up to 4 significant digits, k/M for large values.
std::string num(double v) {
  if (!std::isfinite(v)) return "-";
  double a = std::fabs(v);
  if (a >= 1e9) return fmt("%.4gG", v / 1e9);
  if (a >= 1e6) return fmt("%.4gM", v / 1e6);
  if (a >= 1e4) return fmt("%.4gk", v / 1e3);
  if (a == 0) return "0";
  return fmt("%.4g", v);
}

// Milliseconds as shown next to latencies.
std::string ms_text(double v) {
  if (!std::isfinite(v)) return "-";
  if (v >= 100) return fmt("%.0f ms", v);
  if (v >= 1) return fmt("%.2f ms", v);
  return fmt("%.3f ms", v);
}

// "Nice" step for about `n` ticks over `span` (1, 2 or 5 times a power of ten).
double nice_step(double span, int n) {
  if (span <= 0 || !std::isfinite(span)) return 1;
  double raw = span / n;
  double mag = std::pow(10.0, std::floor(std::log10(raw)));
  double f = raw / mag;
  double step = f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10;
  return step * mag;
}

// Linear axis [lo, hi] rounded out to whole steps, with its tick values.
struct axis {
  double lo = 0, hi = 1;
  std::vector<double> ticks;
};
axis linear_axis(double lo, double hi, int n, bool from_zero) {
  if (from_zero) lo = std::min(lo, 0.0);
  if (!(hi > lo)) hi = lo + (lo == 0 ? 1 : std::fabs(lo));
  double step = nice_step(hi - lo, n);
  axis a;
  a.lo = std::floor(lo / step) * step;
  a.hi = std::ceil(hi / step) * step;
  for (double t = a.lo; t <= a.hi + step * 1e-9; t += step)
    a.ticks.push_back(std::fabs(t) < step * 1e-9 ? 0 : t);
  return a;
}

const char* const palette[] = {"#c0392b", "#2471a3", "#229954", "#7d3c98", "#d68910", "#5d6d7e"};

// Plot area inside one SVG chart.
struct frame {
  double w = 900, h = 280;
  double left = 70, right = 20, top = 30, bottom = 50;
  double x0() const { return left; }
  double x1() const { return w - right; }
  double y0() const { return h - bottom; }  // bottom edge (y grows downwards)
  double y1() const { return top; }
};

void svg_open(std::ostringstream& o, const frame& f, const std::string& label) {
  o << "<svg class=\"chart\" viewBox=\"0 0 " << px(f.w) << ' ' << px(f.h)
    << "\" role=\"img\" aria-label=\"" << esc(label) << "\" xmlns=\"http://www.w3.org/2000/svg\">\n";
}

// Y axis with grid lines, tick labels and the rotated axis title.
void y_axis(std::ostringstream& o, const frame& f, const axis& a, const std::string& title,
            const std::function<std::string(double)>& label) {
  for (double t : a.ticks) {
    double y = f.y0() - (t - a.lo) / (a.hi - a.lo) * (f.y0() - f.y1());
    o << "<line class=\"grid\" x1=\"" << px(f.x0()) << "\" x2=\"" << px(f.x1()) << "\" y1=\"" << px(y)
      << "\" y2=\"" << px(y) << "\"/>";
    o << "<text class=\"tick\" x=\"" << px(f.x0() - 6) << "\" y=\"" << px(y + 4) << "\" text-anchor=\"end\">"
      << esc(label(t)) << "</text>\n";
  }
  double cy = (f.y0() + f.y1()) / 2;
  o << "<text class=\"axis-title\" transform=\"translate(16 " << px(cy) << ") rotate(-90)\" text-anchor=\"middle\">"
    << esc(title) << "</text>\n";
}

void x_title(std::ostringstream& o, const frame& f, const std::string& title) {
  o << "<text class=\"axis-title\" x=\"" << px((f.x0() + f.x1()) / 2) << "\" y=\"" << px(f.h - 8)
    << "\" text-anchor=\"middle\">" << esc(title) << "</text>\n";
}

void box(std::ostringstream& o, const frame& f) {
  o << "<line class=\"axis\" x1=\"" << px(f.x0()) << "\" x2=\"" << px(f.x1()) << "\" y1=\"" << px(f.y0())
    << "\" y2=\"" << px(f.y0()) << "\"/>";
  o << "<line class=\"axis\" x1=\"" << px(f.x0()) << "\" x2=\"" << px(f.x0()) << "\" y1=\"" << px(f.y0())
    << "\" y2=\"" << px(f.y1()) << "\"/>\n";
}

void no_data(std::ostringstream& o, const std::string& what) {
  o << "<p class=\"nodata\">No data: " << esc(what) << ".</p>\n";
}

// One line of a time chart.
struct line_series {
  std::string name;
  std::vector<std::pair<double, double>> xy;
};

// A line chart over time with a legend; "no data" when every series is empty.
void line_chart(std::ostringstream& o, const std::string& title, const std::string& y_title,
                const std::vector<line_series>& lines) {
  o << "<section class=\"panel\"><h3>" << esc(title) << "</h3>\n";
  double xlo = std::numeric_limits<double>::infinity(), xhi = -xlo, yhi = 0, ylo = 0;
  size_t points = 0;
  for (const auto& l : lines)
    for (const auto& [x, y] : l.xy) {
      if (!std::isfinite(x) || !std::isfinite(y)) continue;
      xlo = std::min(xlo, x);
      xhi = std::max(xhi, x);
      yhi = std::max(yhi, y);
      ylo = std::min(ylo, y);
      ++points;
    }
  if (points == 0) {
    no_data(o, "no samples of " + title);
    o << "</section>\n";
    return;
  }
  frame f;
  axis xa = linear_axis(xlo, xhi, 10, true);
  axis ya = linear_axis(ylo, yhi, 5, true);
  auto sx = [&](double x) { return f.x0() + (x - xa.lo) / (xa.hi - xa.lo) * (f.x1() - f.x0()); };
  auto sy = [&](double y) { return f.y0() - (y - ya.lo) / (ya.hi - ya.lo) * (f.y0() - f.y1()); };
  svg_open(o, f, title);
  y_axis(o, f, ya, y_title, num);
  for (double t : xa.ticks) {
    o << "<line class=\"axis\" x1=\"" << px(sx(t)) << "\" x2=\"" << px(sx(t)) << "\" y1=\"" << px(f.y0())
      << "\" y2=\"" << px(f.y0() + 5) << "\"/>";
    o << "<text class=\"tick\" x=\"" << px(sx(t)) << "\" y=\"" << px(f.y0() + 18) << "\" text-anchor=\"middle\">"
      << esc(num(t)) << "</text>\n";
  }
  box(o, f);
  x_title(o, f, "time since the measured phase began (s)");
  for (size_t i = 0; i < lines.size(); ++i) {
    const auto& l = lines[i];
    const char* colour = palette[i % (sizeof palette / sizeof *palette)];
    std::ostringstream pts;
    size_t n = 0;
    for (const auto& [x, y] : l.xy) {
      if (!std::isfinite(x) || !std::isfinite(y)) continue;
      pts << px(sx(x)) << ',' << px(sy(y)) << ' ';
      ++n;
    }
    if (n == 0) continue;
    o << "<polyline class=\"series\" stroke=\"" << colour << "\" points=\"" << pts.str() << "\"><title>"
      << esc(l.name) << "</title></polyline>\n";
    if (n == 1)  // a single sample is a dot, not an invisible line
      o << "<circle cx=\"" << px(sx(l.xy.front().first)) << "\" cy=\"" << px(sy(l.xy.front().second))
        << "\" r=\"3\" fill=\"" << colour << "\"/>\n";
  }
  // Legend, top right, one row per series.
  double lx = f.x1() - 190, ly = f.y1() + 4;
  o << "<rect class=\"legend\" x=\"" << px(lx - 8) << "\" y=\"" << px(ly - 2) << "\" width=\"196\" height=\""
    << px(18.0 * static_cast<double>(lines.size()) + 6) << "\"/>\n";
  for (size_t i = 0; i < lines.size(); ++i) {
    double y = ly + 12 + 18.0 * static_cast<double>(i);
    const char* colour = palette[i % (sizeof palette / sizeof *palette)];
    o << "<line x1=\"" << px(lx) << "\" x2=\"" << px(lx + 22) << "\" y1=\"" << px(y - 4) << "\" y2=\"" << px(y - 4)
      << "\" stroke=\"" << colour << "\" stroke-width=\"3\"/>";
    o << "<text class=\"legend-text\" x=\"" << px(lx + 28) << "\" y=\"" << px(y) << "\">" << esc(lines[i].name)
      << "</text>\n";
  }
  o << "</svg></section>\n";
}

// Latency histogram on log-spaced millisecond buckets (5 per decade), with p50, p90,
// p99 and max marked, and a figures line above it.
void histogram(std::ostringstream& o, const latency_samples& s) {
  std::string title = "Latency: " + s.name;
  o << "<section class=\"panel\"><h3>" << esc(title) << "</h3>\n";
  std::vector<double> v;
  v.reserve(s.ms.size());
  for (double x : s.ms)
    if (std::isfinite(x)) v.push_back(x);
  if (v.empty()) {
    no_data(o, "no samples of " + s.name);
    o << "</section>\n";
    return;
  }
  std::sort(v.begin(), v.end());
  double sum = 0;
  for (double x : v)
    sum += x;
  const double p50 = percentile(v, 50), p90 = percentile(v, 90), p99 = percentile(v, 99), mx = v.back();
  o << "<p class=\"figures\">" << v.size() << " samples; min " << esc(ms_text(v.front())) << ", mean "
    << esc(ms_text(sum / static_cast<double>(v.size()))) << ", <b>p50 " << esc(ms_text(p50)) << "</b>, p90 "
    << esc(ms_text(p90)) << ", <b>p99 " << esc(ms_text(p99)) << "</b>, max " << esc(ms_text(mx)) << "</p>\n";

  constexpr int per_decade = 5;
  double min_pos = 0;
  for (double x : v)
    if (x > 0) {
      min_pos = x;
      break;
    }
  if (min_pos <= 0) min_pos = 0.001;  // every sample is 0: one bucket at the bottom
  double d_lo = std::floor(std::log10(min_pos));
  double d_hi = std::ceil(std::log10(std::max(mx, min_pos)));
  if (d_hi <= d_lo) d_hi = d_lo + 1;
  const int buckets = static_cast<int>(d_hi - d_lo) * per_decade;
  std::vector<uint64_t> counts(static_cast<size_t>(buckets), 0);
  for (double x : v) {
    int b = x <= 0 ? 0 : static_cast<int>(std::floor((std::log10(x) - d_lo) * per_decade));
    counts[static_cast<size_t>(std::clamp(b, 0, buckets - 1))]++;
  }
  uint64_t top = *std::max_element(counts.begin(), counts.end());

  frame f;
  f.top = 64;  // room for four rows of marker labels
  axis ya = linear_axis(0, static_cast<double>(top), 5, true);
  auto sx = [&](double ms) {
    double l = ms <= 0 ? d_lo : std::clamp(std::log10(ms), d_lo, d_hi);
    return f.x0() + (l - d_lo) / (d_hi - d_lo) * (f.x1() - f.x0());
  };
  auto sy = [&](double c) { return f.y0() - (c - ya.lo) / (ya.hi - ya.lo) * (f.y0() - f.y1()); };
  svg_open(o, f, title);
  y_axis(o, f, ya, "samples", [](double t) { return t == std::floor(t) ? num(t) : std::string(); });
  double bw = (f.x1() - f.x0()) / buckets;
  for (int b = 0; b < buckets; ++b) {
    uint64_t c = counts[static_cast<size_t>(b)];
    if (c == 0) continue;
    double lo = std::pow(10.0, d_lo + static_cast<double>(b) / per_decade);
    double hi = std::pow(10.0, d_lo + static_cast<double>(b + 1) / per_decade);
    double x = f.x0() + bw * b, y = sy(static_cast<double>(c));
    o << "<rect class=\"bar\" x=\"" << px(x + 1) << "\" y=\"" << px(y) << "\" width=\"" << px(bw - 2)
      << "\" height=\"" << px(f.y0() - y) << "\"><title>" << esc(num(lo)) << " - " << esc(num(hi))
      << " ms: " << c << "</title></rect>\n";
  }
  // Decade ticks labelled; the buckets between them get small ticks.
  for (int b = 0; b <= buckets; ++b) {
    double x = f.x0() + bw * b;
    bool decade = b % per_decade == 0;
    o << "<line class=\"axis\" x1=\"" << px(x) << "\" x2=\"" << px(x) << "\" y1=\"" << px(f.y0()) << "\" y2=\""
      << px(f.y0() + (decade ? 6 : 3)) << "\"/>";
    if (decade) {
      double ms = std::pow(10.0, d_lo + static_cast<double>(b) / per_decade);
      o << "<text class=\"tick\" x=\"" << px(x) << "\" y=\"" << px(f.y0() + 19) << "\" text-anchor=\"middle\">"
        << esc(num(ms)) << "</text>";
    }
    o << '\n';
  }
  box(o, f);
  x_title(o, f, "latency (ms, log scale)");
  // Markers. Labels go above the plot, each on the first row where it does not run
  // into the previous label (four rows: even four equal values stay readable).
  const std::pair<const char*, double> marks[] = {{"p50", p50}, {"p90", p90}, {"p99", p99}, {"max", mx}};
  double row_end[4] = {-1e9, -1e9, -1e9, -1e9};
  for (const auto& [label, value] : marks) {
    double x = sx(value);
    std::string text = std::string(label) + ' ' + ms_text(value);
    double width = 6.5 * static_cast<double>(text.size());
    double tx = std::min(x + 3, f.x1() - width);  // keep a label near the right edge inside
    int row = 0;
    while (row < 3 && row_end[row] > tx - 4)
      ++row;
    row_end[row] = tx + width;
    double ty = f.y1() - 8 - 13.0 * (3 - row);
    o << "<line class=\"mark\" x1=\"" << px(x) << "\" x2=\"" << px(x) << "\" y1=\"" << px(f.y0()) << "\" y2=\""
      << px(ty + 3) << "\"/>";
    o << "<text class=\"mark-text\" x=\"" << px(tx) << "\" y=\"" << px(ty) << "\">" << esc(text) << "</text>\n";
  }
  o << "</svg></section>\n";
}

void table(std::ostringstream& o, const std::string& title, const std::map<std::string, std::string>& rows) {
  o << "<section class=\"panel\"><h2>" << esc(title) << "</h2>\n";
  if (rows.empty()) {
    no_data(o, "none recorded");
    o << "</section>\n";
    return;
  }
  o << "<table>\n";
  for (const auto& [k, v] : rows)
    o << "<tr><th>" << esc(k) << "</th><td>" << esc(v) << "</td></tr>\n";
  o << "</table></section>\n";
}

const char* const css = R"(body{font:14px/1.45 -apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;
color:#222;background:#fafafa;margin:0;padding:24px;max-width:1000px;margin:auto}
h1{font-size:22px;margin:0 0 6px}h2{font-size:17px;margin:0 0 8px}h3{font-size:15px;margin:0 0 6px}
.meta{color:#555;margin:2px 0}.meta code{background:#eee;padding:1px 4px;border-radius:3px;word-break:break-all}
.panel{background:#fff;border:1px solid #ddd;border-radius:6px;padding:14px 16px;margin:14px 0}
.tables{display:flex;gap:14px;flex-wrap:wrap}.tables .panel{flex:1 1 300px;margin:0}
table{border-collapse:collapse;width:100%}th,td{text-align:left;padding:3px 8px;border-bottom:1px solid #eee;
vertical-align:top}th{font-weight:600;color:#444;width:45%}td{font-variant-numeric:tabular-nums}
.chart{width:100%;height:auto;display:block}.nodata{color:#888;font-style:italic}
.figures{margin:0 0 4px;color:#333}
.grid{stroke:#eee;stroke-width:1}.axis{stroke:#555;stroke-width:1}
.tick{font-size:11px;fill:#555}.axis-title{font-size:12px;fill:#333}
.series{fill:none;stroke-width:2;stroke-linejoin:round}
.bar{fill:#5b8fd1}.bar:hover{fill:#2e5f9e}
.mark{stroke:#c0392b;stroke-width:1.5;stroke-dasharray:4 3}.mark-text{font-size:11px;fill:#c0392b}
.legend{fill:#fff;fill-opacity:.85;stroke:#ddd}.legend-text{font-size:12px;fill:#333}
footer{color:#888;font-size:12px;margin-top:20px})";

} // namespace

double percentile(std::vector<double> samples, double p) {
  samples.erase(std::remove_if(samples.begin(), samples.end(), [](double x) { return std::isnan(x); }),
                samples.end());
  if (samples.empty()) return 0;
  std::sort(samples.begin(), samples.end());
  if (!(p > 0)) return samples.front();  // p <= 0 (or NaN): the smallest
  if (p >= 100) return samples.back();
  // Nearest rank: the smallest value with at least p% of the samples at or below it.
  double rank = std::ceil(p / 100.0 * static_cast<double>(samples.size()));
  size_t i = rank < 1 ? 0 : static_cast<size_t>(rank) - 1;
  return samples[std::min(i, samples.size() - 1)];
}

std::string render_html(const run_record& r) {
  std::ostringstream o;
  const std::string title = r.title.empty() ? "possync sim report" : r.title;
  o << "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
    << "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
    << "<title>" << esc(title) << "</title>\n<style>" << css << "</style></head>\n<body>\n";
  o << "<h1>" << esc(title) << "</h1>\n";
  if (!r.command.empty()) o << "<p class=\"meta\">Command: <code>" << esc(r.command) << "</code></p>\n";
  if (!r.build.empty()) o << "<p class=\"meta\">Build: <code>" << esc(r.build) << "</code></p>\n";

  o << "<div class=\"tables\">\n";
  table(o, "Parameters", r.parameters);
  table(o, "Results", r.results);
  o << "</div>\n";

  o << "<h2 style=\"margin-top:22px\">Latency</h2>\n";
  if (r.latencies.empty()) {
    o << "<section class=\"panel\">";
    no_data(o, "this run recorded no latencies");
    o << "</section>\n";
  }
  for (const auto& l : r.latencies)
    histogram(o, l);

  o << "<h2 style=\"margin-top:22px\">Over time</h2>\n";
  const auto& s = r.series;
  auto pick = [&](const std::string& name, auto get) {
    line_series l;
    l.name = name;
    l.xy.reserve(s.size());
    for (const auto& p : s)
      l.xy.emplace_back(p.t_s, static_cast<double>(get(p)));
    return l;
  };
  line_chart(o, "Throughput", "sales per second",
             {pick("sales made/s", [](const series_point& p) { return p.sales_per_s; }),
              pick("sales at HQ/s", [](const series_point& p) { return p.sales_at_hq_per_s; })});
  static const char* const lanes[] = {"lane 0 sales", "lane 1 stock", "lane 2 catalogue", "lane 3 reports"};
  std::vector<line_series> pending, lag;
  for (size_t lane = 0; lane < 4; ++lane) {
    pending.push_back(pick(lanes[lane], [lane](const series_point& p) { return p.pending[lane]; }));
    lag.push_back(pick(lanes[lane], [lane](const series_point& p) { return p.lag_records[lane]; }));
  }
  line_chart(o, "Pending per lane (outbox entries, all nodes)", "entries", pending);
  line_chart(o, "Lag per lane (records downstreams still have to receive)", "records", lag);
  line_chart(o, "Online terminals", "terminals",
             {pick("online terminals", [](const series_point& p) { return p.online_terminals; })});
  line_chart(o, "Resident memory", "RSS (MB)", {pick("RSS MB", [](const series_point& p) { return p.rss_mb; })});

  o << "<footer>Generated by possync sim. Self-contained: no scripts, no external resources.</footer>\n"
    << "</body></html>\n";
  return o.str();
}

possync::status write_html(const run_record& r, const std::string& path) {
  std::string page = render_html(r);
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) return error(errc::unavailable, "cannot write report '" + path + "': " + std::strerror(errno));
  size_t n = std::fwrite(page.data(), 1, page.size(), f);
  int werr = n == page.size() ? 0 : errno;
  if (std::fclose(f) != 0 && werr == 0) werr = errno;
  if (n != page.size() || werr != 0)
    return error(errc::unavailable, "cannot write report '" + path + "': " + std::strerror(werr ? werr : EIO));
  return {};
}

} // namespace possync::sim
