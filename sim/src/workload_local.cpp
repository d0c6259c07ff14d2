#include "possync/sim/workload_local.hpp"
#include "temp_dir.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>
#include <condition_variable>
#include <map>
#include <mutex>
#include <sstream>
#include <thread>
#include <unordered_map>

#include <nlohmann/json.hpp>

#include "possync/sim/pos_fixture.hpp"
#include "possync/storage/store.hpp"

namespace possync::sim {

namespace {

using clock_type = std::chrono::steady_clock;

const std::string tenant = "bench";
const std::string branch = "b001";
constexpr int64_t initial_stock = 1'000'000'000; // thousandths: a million pieces, never runs out

double micros(clock_type::duration d) {
  return std::chrono::duration<double, std::micro>(d).count();
}
double secs(clock_type::duration d) {
  return std::chrono::duration<double>(d).count();
}

double percentile(std::vector<double>& v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  auto rank = static_cast<size_t>(std::ceil(p * static_cast<double>(v.size())));
  return v[std::min(v.size() - 1, rank == 0 ? 0 : rank - 1)];
}

int64_t wall_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

struct committed_sale {
  core::record_key key;
  std::vector<sale_line> lines;
};

// One prepared sale: key and body made before the clock starts.
struct prepared_sale {
  core::record_key key;
  sale_draft draft;
};

std::vector<prepared_sale> prepare(storage::node_store& store, const std::vector<product_spec>& catalog,
                                   rng& r, size_t n, const std::string& terminal) {
  std::vector<prepared_sale> out;
  out.reserve(n);
  sale_context ctx;
  ctx.terminal_id = terminal;
  for (size_t i = 0; i < n; ++i) {
    prepared_sale p;
    p.key = core::record_key{tenant, branch, "sale", store.new_id()};
    ctx.receipt_no = i + 1;
    ctx.time_ms = wall_ms();
    p.draft = make_sale(r, catalog, p.key.id, ctx, 3, 3);
    out.push_back(std::move(p));
  }
  return out;
}

// Runs body(w) on `n` threads started together; returns the wall time from the start
// signal to the last join and the commits per durable write the database made meanwhile.
struct timed_phase {
  double seconds = 0;
  double group_size = 0;
};
template <class Body>
timed_phase run_together(storage::database& db, size_t n, Body body) {
  std::atomic<size_t> ready{0};
  std::atomic<bool> go{false};
  std::vector<std::thread> threads;
  for (size_t w = 0; w < n; ++w) {
    threads.emplace_back([&, w] {
      ready.fetch_add(1);
      while (!go.load(std::memory_order_acquire))
        std::this_thread::yield();
      body(w);
    });
  }
  while (ready.load() < n)
    std::this_thread::yield();
  uint64_t commits_before = db.commits(), groups_before = db.commit_groups();
  auto begin = clock_type::now();
  go.store(true, std::memory_order_release);
  for (auto& t : threads)
    t.join();
  timed_phase p;
  p.seconds = secs(clock_type::now() - begin);
  uint64_t groups = db.commit_groups() - groups_before;
  p.group_size = groups ? static_cast<double>(db.commits() - commits_before) / groups : 0;
  return p;
}

} // namespace

double peak_rss_mb() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmHWM:", 0) == 0) {
      std::istringstream fields(line.substr(6));
      double kb = 0;
      fields >> kb;
      return kb / 1024.0;
    }
  }
  return 0;
}

result<local_report> run_local(const local_options& opts) {
  if (opts.products == 0) return error(errc::invalid_argument, "--products must be at least 1");
  if (opts.writers == 0) return error(errc::invalid_argument, "--writers must be at least 1");
  local_report rep;
  rep.opts = opts;
  auto started = clock_type::now();

  auto dir = temp_dir::make(opts.dir, "possync-w8");
  if (!dir) return std::move(dir).err();
  if (opts.keep_dir) dir->keep();
  rep.opts.dir = dir->path();

  storage::db_options dbo;
  dbo.path = dir->path();
  dbo.sync = true;
  dbo.group_commit = true;
  auto db = storage::database::open(dbo);
  if (!db) return std::move(db).err();
  storage::store_options so;
  so.role = storage::node_role::terminal;
  so.rng = std::make_shared<core::seeded_random>(opts.seed);
  auto opened = storage::node_store::open(*db, so);
  if (!opened) return std::move(opened).err();
  storage::node_store& store = **opened;

  // 1. catalogue
  auto catalog = generate_catalog(opts.products, opts.seed);
  auto t0 = clock_type::now();
  if (auto st = load_catalog(store, tenant, branch, catalog, initial_stock, 1000)) return st;
  rep.load_seconds = secs(clock_type::now() - t0);

  std::vector<committed_sale> committed;
  committed.reserve(opts.sales + opts.concurrent_sales);

  // 2. one writer: latency of a durable sale commit
  {
    rng r(opts.seed ^ 0x5A1E5ull);
    auto sales = prepare(store, catalog, r, opts.sales, "T0");
    std::vector<double> lat;
    lat.reserve(sales.size());
    auto begin = clock_type::now();
    for (auto& s : sales) {
      auto a = clock_type::now();
      auto res = store.record_sale(s.key, s.draft.body);
      auto b = clock_type::now();
      if (!res) return error(res.err().code, "sale commit failed: " + res.err().message);
      lat.push_back(micros(b - a));
      committed.push_back({std::move(s.key), std::move(s.draft.lines)});
    }
    auto elapsed = secs(clock_type::now() - begin);
    rep.single_commits_per_s = elapsed > 0 ? static_cast<double>(sales.size()) / elapsed : 0;
    rep.commit_p50_us = percentile(lat, 0.50);
    rep.commit_p99_us = percentile(lat, 0.99);
    rep.commit_max_us = lat.empty() ? 0 : lat.back();
  }

  // 3. concurrent writers: throughput with group commit
  {
    size_t per = opts.concurrent_sales / opts.writers;
    std::vector<std::vector<prepared_sale>> work(opts.writers);
    for (size_t w = 0; w < opts.writers; ++w) {
      rng r(opts.seed * 1000 + w + 1);
      work[w] = prepare(store, catalog, r, per, "T" + std::to_string(w + 1));
    }
    std::vector<std::vector<committed_sale>> done(opts.writers);
    std::vector<error> failures(opts.writers);
    auto phase = run_together(**db, opts.writers, [&](size_t w) {
      for (auto& s : work[w]) {
        auto res = store.record_sale(s.key, std::move(s.draft.body));
        if (!res) {
          failures[w] = error(res.err().code, "sale commit failed: " + res.err().message);
          return;
        }
        done[w].push_back({std::move(s.key), std::move(s.draft.lines)});
      }
    });
    rep.avg_group_size = phase.group_size;
    auto elapsed = phase.seconds;
    size_t total = 0;
    for (size_t w = 0; w < opts.writers; ++w) {
      if (failures[w]) return std::move(failures[w]);
      total += done[w].size();
      for (auto& c : done[w])
        committed.push_back(std::move(c));
    }
    rep.commits_per_s = elapsed > 0 ? static_cast<double>(total) / elapsed : 0;
  }

  // 3b. the same writers, each keeping `in_flight` sales in flight (record_sale_async):
  // what group commit gives when many registers feed one store, as on a branch.
  if (opts.in_flight > 0 && opts.pipelined_sales > 0) {
    size_t per = opts.pipelined_sales / opts.writers;
    std::vector<std::vector<prepared_sale>> work(opts.writers);
    for (size_t w = 0; w < opts.writers; ++w) {
      rng r(opts.seed * 7000 + w + 1);
      work[w] = prepare(store, catalog, r, per, "P" + std::to_string(w + 1));
    }
    struct writer_state {
      std::mutex mu;
      std::condition_variable cv;
      size_t outstanding = 0;
      std::vector<committed_sale> done;
      error failure;
    };
    std::vector<writer_state> states(opts.writers);
    auto phase = run_together(**db, opts.writers, [&](size_t w) {
      auto& st = states[w];
      for (auto& s : work[w]) {
        {
          std::unique_lock<std::mutex> lk(st.mu);
          st.cv.wait(lk, [&] { return st.outstanding < opts.in_flight; });
          if (st.failure) break;
          ++st.outstanding;
        }
        store.record_sale_async(s.key, std::move(s.draft.body),
                                [&st, key = s.key, lines = std::move(s.draft.lines)](result<storage::commit_result> res) mutable {
                                  std::lock_guard<std::mutex> lk(st.mu);
                                  --st.outstanding;
                                  if (res)
                                    st.done.push_back({std::move(key), std::move(lines)});
                                  else if (!st.failure)
                                    st.failure = error(res.err().code, "sale commit failed: " + res.err().message);
                                  st.cv.notify_one();
                                });
      }
      std::unique_lock<std::mutex> lk(st.mu);
      st.cv.wait(lk, [&] { return st.outstanding == 0; });
    });
    rep.pipelined_group_size = phase.group_size;
    auto elapsed = phase.seconds;
    size_t total = 0;
    for (auto& st : states) {
      if (st.failure) return std::move(st.failure);
      total += st.done.size();
      for (auto& c : st.done)
        committed.push_back(std::move(c));
    }
    rep.pipelined_commits_per_s = elapsed > 0 ? static_cast<double>(total) / elapsed : 0;
  }
  rep.committed = committed.size();

  // 4. lookups by id and by barcode, random among the catalogue
  uint64_t lookup_misses = 0;
  {
    rng r(opts.seed ^ 0x100Cull);
    std::vector<double> by_id, by_barcode;
    by_id.reserve(opts.lookups);
    by_barcode.reserve(opts.lookups);
    for (size_t i = 0; i < opts.lookups; ++i) {
      const auto& p = catalog[r.below(catalog.size())];
      auto key = product_key(tenant, p.id);
      auto a = clock_type::now();
      auto v = store.read(key);
      auto b = clock_type::now();
      if (!v || !v->exists) ++lookup_misses;
      by_id.push_back(micros(b - a));
    }
    for (size_t i = 0; i < opts.lookups; ++i) {
      const auto& p = catalog[r.below(catalog.size())];
      auto a = clock_type::now();
      auto id = store.product_by_barcode(tenant, p.barcode);
      auto b = clock_type::now();
      if (!id || !id->has_value() || **id != p.id) ++lookup_misses;
      by_barcode.push_back(micros(b - a));
    }
    rep.lookup_id_p99_us = percentile(by_id, 0.99);
    rep.lookup_barcode_p99_us = percentile(by_barcode, 0.99);
    rep.lookup_p99_us = std::max(rep.lookup_id_p99_us, rep.lookup_barcode_p99_us);
  }

  // 5. name-prefix search, top 50, prefixes of 2-3 letters taken from real names
  uint64_t search_errors = 0;
  {
    rng r(opts.seed ^ 0x5EA4ull);
    std::vector<double> lat;
    lat.reserve(opts.searches);
    for (size_t i = 0; i < opts.searches; ++i) {
      const auto& name = catalog[r.below(catalog.size())].name;
      std::string prefix = name.substr(0, 2 + r.below(2));
      auto a = clock_type::now();
      auto hits = store.search_products(tenant, prefix, 50);
      auto b = clock_type::now();
      if (!hits || hits->empty()) ++search_errors;
      lat.push_back(micros(b - a));
    }
    rep.search_p99_us = percentile(lat, 0.99);
    rep.search_p50_us = percentile(lat, 0.50);
  }

  // 6. checks: every acknowledged sale exactly once (record, sales index, outbox),
  //    stock = initial - sold for every product.
  {
    std::unordered_map<std::string, int> expected; // sale id -> times seen
    expected.reserve(committed.size() * 2);
    std::map<std::string, int64_t> sold;
    for (const auto& c : committed) {
      expected[c.key.id] = 0;
      for (const auto& l : c.lines)
        sold[l.product_id] += l.quantity;
    }
    std::vector<bool> lost_flag(committed.size(), false);
    for (size_t i = 0; i < committed.size(); ++i) {
      auto v = store.read(committed[i].key);
      if (!v || !v->exists) lost_flag[i] = true;
    }
    // Count occurrences in a listing; anything unexpected or repeated is a duplicate.
    auto tally = [&](const std::vector<std::string>& ids) {
      std::unordered_map<std::string, int> seen;
      for (const auto& id : ids) {
        int n = ++seen[id];
        if (expected.find(id) == expected.end() || n > 1) ++rep.duplicated;
      }
      for (size_t i = 0; i < committed.size(); ++i)
        if (seen.find(committed[i].key.id) == seen.end()) lost_flag[i] = true;
    };
    auto listed = store.sales_between(tenant, branch, 0, std::numeric_limits<int64_t>::max(),
                                      committed.size() * 2 + 16);
    if (!listed) return std::move(listed).err();
    std::vector<std::string> ids;
    for (const auto& k : *listed)
      ids.push_back(k.id);
    tally(ids);
    auto outbox = store.outbox_window(core::lane_sales, 0, committed.size() * 2 + 16);
    if (!outbox) return std::move(outbox).err();
    ids.clear();
    uint64_t last_seq = 0;
    for (const auto& e : *outbox) {
      if (e.rec.key.collection != "sale") continue;
      if (e.seq <= last_seq) ++rep.duplicated; // a reused or reordered sequence number
      last_seq = e.seq;
      ids.push_back(e.rec.key.id);
    }
    tally(ids);
    for (bool f : lost_flag)
      rep.lost += f ? 1 : 0;
    for (const auto& p : catalog) {
      auto it = sold.find(p.id);
      int64_t want = initial_stock - (it == sold.end() ? 0 : it->second);
      auto level = store.stock_level(tenant, branch, p.id);
      if (!level || *level != want) ++rep.stock_mismatches;
    }
  }
  rep.converged = rep.lost == 0 && rep.duplicated == 0 && rep.stock_mismatches == 0 && lookup_misses == 0 &&
                  search_errors == 0;
  rep.seconds = secs(clock_type::now() - started);
  rep.peak_rss_mb = peak_rss_mb();
  return rep;
}

std::string to_json(const local_report& r) {
  nlohmann::json j;
  j["workload"] = "local";
  j["parameters"] = {{"products", r.opts.products},
                     {"sales", r.opts.sales},
                     {"writers", r.opts.writers},
                     {"concurrent_sales", r.opts.concurrent_sales},
                     {"lookups", r.opts.lookups},
                     {"searches", r.opts.searches},
                     {"items_per_sale", 3},
                     {"seed", r.opts.seed},
                     {"sync", true},
                     {"dir", r.opts.dir}};
  j["seconds"] = r.seconds;
  j["commit_p50_us"] = r.commit_p50_us;
  j["commit_p99_us"] = r.commit_p99_us;
  j["commits_per_s"] = r.commits_per_s;
  j["lookup_p99_us"] = r.lookup_p99_us;
  j["search_p99_us"] = r.search_p99_us;
  j["lost"] = r.lost;
  j["duplicated"] = r.duplicated;
  j["converged"] = r.converged;
  j["peak_rss_mb"] = r.peak_rss_mb;
  j["details"] = {{"load_seconds", r.load_seconds},
                  {"commit_max_us", r.commit_max_us},
                  {"single_writer_commits_per_s", r.single_commits_per_s},
                  {"avg_group_size", r.avg_group_size},
                  {"in_flight", r.opts.in_flight},
                  {"pipelined_commits_per_s", r.pipelined_commits_per_s},
                  {"pipelined_group_size", r.pipelined_group_size},
                  {"lookup_id_p99_us", r.lookup_id_p99_us},
                  {"lookup_barcode_p99_us", r.lookup_barcode_p99_us},
                  {"search_p50_us", r.search_p50_us},
                  {"committed", r.committed},
                  {"stock_mismatches", r.stock_mismatches}};
  return j.dump();
}

std::string to_text(const local_report& r) {
  char buf[2048];
  std::snprintf(buf, sizeof buf,
                "W8 local: %zu products, %zu single-writer sales, %zu writers x %zu sales (store %s)\n"
                "  catalogue load          %8.2f s\n"
                "  sale commit p50         %8.1f us   (target <= 100)\n"
                "  sale commit p99         %8.1f us   (target <= 500)\n"
                "  one writer              %8.0f commits/s\n"
                "  concurrent writers      %8.0f commits/s (target >= 100000), %.1f commits per fsync\n"
                "  pipelined (%zu in flight) %6.0f commits/s, %.1f commits per fsync\n"
                "  lookup p99 id/barcode   %8.1f / %.1f us (target <= 20)\n"
                "  name search p99         %8.1f us   (target <= 1000)\n"
                "  committed %llu, lost %llu, duplicated %llu, stock mismatches %llu, converged %s\n"
                "  %.2f s in all, peak RSS %.1f MB\n",
                r.opts.products, r.opts.sales, r.opts.writers,
                r.opts.concurrent_sales / std::max<size_t>(1, r.opts.writers), r.opts.dir.c_str(),
                r.load_seconds, r.commit_p50_us, r.commit_p99_us, r.single_commits_per_s, r.commits_per_s,
                r.avg_group_size, r.opts.in_flight, r.pipelined_commits_per_s, r.pipelined_group_size,
                r.lookup_id_p99_us, r.lookup_barcode_p99_us, r.search_p99_us,
                static_cast<unsigned long long>(r.committed), static_cast<unsigned long long>(r.lost),
                static_cast<unsigned long long>(r.duplicated),
                static_cast<unsigned long long>(r.stock_mismatches), r.converged ? "yes" : "NO", r.seconds,
                r.peak_rss_mb);
  return buf;
}

} // namespace possync::sim
