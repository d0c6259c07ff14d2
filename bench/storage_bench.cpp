// Storage throughput (Google Benchmark): what the committer can do per record.
//
// bm_hq_apply: HQ (outbox = false) durably applying pushes, as W5 does: terminals
// record sales (sale + payment + stock decrements), their outbox entries are read
// back as record states and cut into batches of up to 256 records; 8 producer
// threads each keep 4 apply_remote_async calls in flight until every batch is
// applied. Reported: sales/s and records/s (items_per_second = records).
// Arg 0: 1 = on disk with the WAL synced (what W5 measures), 0 = in-memory
// without sync (committer CPU only).
//
// bm_local_sale: record_sale_async on a terminal, 8 writers x 32 sales in flight
// (W8's pipelined figure). Same argument.

#include <benchmark/benchmark.h>

#include <algorithm>
#include <atomic>
#include <memory>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <sys/resource.h>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "possync/storage/store.hpp"
#include "possync/v1/pos.pb.h"

namespace {

using namespace possync;
using namespace possync::storage;

constexpr int terminals = 200;
constexpr int sales_per_terminal = 50;
constexpr int branches = 10;
constexpr int products = 20000;
constexpr size_t batch_records = 256;
constexpr int producers = 8;
constexpr int in_flight = 4;

std::string product_id(int i) {
  char b[16];
  std::snprintf(b, sizeof b, "p%06d", i);
  return b;
}

/// A ~400 B sale of 3 lines with one embedded payment.
std::string sale_body(std::mt19937_64& r, int terminal, int n, const std::string& id, int64_t now_ms,
                      std::vector<std::string>* lines) {
  v1::Sale s;
  s.set_receipt_no("T" + std::to_string(terminal) + "-" + std::to_string(n));
  s.set_terminal_id("T" + std::to_string(terminal));
  s.set_cashier_id("cashier-" + std::to_string(terminal % 7));
  s.set_shift_id("shift-1");
  s.set_currency("IDR");
  s.set_time_ms(now_ms);
  int64_t total = 0;
  std::vector<int> picked;
  while (picked.size() < 3) {
    int p = static_cast<int>(r() % products);
    if (std::find(picked.begin(), picked.end(), p) != picked.end()) continue;
    picked.push_back(p);
    auto* it = s.add_items();
    it->set_product_id(product_id(p));
    it->set_sku("SKU-" + std::to_string(p));
    it->set_name("Product number " + std::to_string(p) + " 500ml");
    it->set_quantity(1000 * static_cast<int64_t>(1 + r() % 3));
    it->set_unit_price(1000 + static_cast<int64_t>(r() % 90000));
    it->set_tax(100);
    it->set_line_total(it->quantity() * it->unit_price() / 1000);
    total += it->line_total();
    lines->push_back(product_id(p));
  }
  auto* pay = s.add_payments();
  pay->set_id(id + "-pay");
  pay->set_sale_id(id);
  pay->set_method("cash");
  pay->set_amount(total);
  pay->set_tendered(total);
  pay->set_time_ms(now_ms);
  s.set_subtotal(total);
  s.set_total(total);
  return s.SerializeAsString();
}

std::string payment_body(const std::string& sale_id, int64_t amount, int64_t now_ms) {
  v1::Payment p;
  p.set_id(sale_id + "-p");
  p.set_sale_id(sale_id);
  p.set_method("card");
  p.set_amount(amount);
  p.set_reference("APPROVAL-123456");
  p.set_time_ms(now_ms);
  return p.SerializeAsString();
}

void check(const status& s, const char* what) {
  if (s) {
    std::fprintf(stderr, "%s: %s\n", what, s.message.c_str());
    std::abort();
  }
}

/// The pushes of W5: 200 terminals x 50 sales, as batches of record states.
struct push_set {
  std::vector<std::vector<core::record>> batches;
  size_t records = 0;
  size_t sales = 0;
};

const push_set& pushes() {
  static push_set ps = [] {
    push_set out;
    db_options o;
    o.in_memory = true;
    o.sync = false;
    auto db = database::open(o);
    if (!db) std::abort();
    std::mt19937_64 r(42);
    const int64_t now = 1'790'000'000'000;
    for (int t = 0; t < terminals; ++t) {
      store_options so;
      so.space = static_cast<uint32_t>(t + 1);
      so.role = node_role::terminal;
      so.node = static_cast<core::node_id>(1000 + t);
      so.clock = [] { return uint64_t{1'790'000'000'000}; };
      auto st = node_store::open(*db, so);
      if (!st) std::abort();
      auto& s = **st;
      std::string branch = "b" + std::to_string(t % branches);
      for (int n = 0; n < sales_per_terminal; ++n) {
        std::string id = s.new_id();
        std::vector<std::string> lines;
        auto body = sale_body(r, t, n, id, now + n, &lines);
        auto res = s.record_sale(core::record_key{"acme", branch, "sale", id}, body);
        if (!res) check(res.err(), "record_sale");
        auto pay = s.write({put_op{core::record_key{"acme", branch, "payment", s.new_id()},
                                   payment_body(id, 5000, now + n), false, std::nullopt}});
        if (!pay) check(pay.err(), "payment");
        ++out.sales;
      }
      // A push carries outbox entries; one lane per push, batches of <= 256.
      for (uint8_t lane = 0; lane < core::lane_count; ++lane) {
        auto w = s.outbox_window(lane, 0, 1u << 20);
        if (!w) check(w.err(), "outbox_window");
        std::vector<core::record> cur;
        for (auto& e : *w) {
          cur.push_back(std::move(e.rec));
          if (cur.size() == batch_records) out.batches.push_back(std::move(cur)), cur.clear();
        }
        if (!cur.empty()) out.batches.push_back(std::move(cur));
      }
    }
    // Interleave terminals as concurrent sessions would.
    std::shuffle(out.batches.begin(), out.batches.end(), r);
    for (auto& b : out.batches) out.records += b.size();
    return out;
  }();
  return ps;
}

std::string temp_dir(const char* tag) {
  auto base = std::filesystem::path(std::getenv("POSSYNC_BENCH_DIR") ? std::getenv("POSSYNC_BENCH_DIR")
                                                                        : "/var/tmp");
  std::string tmpl = (base / (std::string("possync-") + tag + "-XXXXXX")).string();
  std::vector<char> buf(tmpl.begin(), tmpl.end());
  buf.push_back('\0');
  if (!mkdtemp(buf.data())) std::abort();
  return buf.data();
}

std::shared_ptr<database> open_db(bool durable, std::string* dir, const char* tag) {
  db_options o;
  if (durable) {
    *dir = temp_dir(tag);
    o.path = *dir;
    o.sync = true;
  } else {
    o.in_memory = true;
    o.sync = false;
  }
  o.write_buffer_bytes = 64u << 20;
  auto db = database::open(o);
  if (!db) check(db.err(), "open");
  return *db;
}

/// CPU seconds (user + system) of the whole process so far: on a shared, loaded
/// machine this is steadier than wall time.
double process_cpu_s() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

/// Waits for a bounded number of completions.
struct latch {
  std::mutex mu;
  std::condition_variable cv;
  size_t left;
  explicit latch(size_t n) : left(n) {}
  void done() {
    std::lock_guard<std::mutex> lk(mu);
    if (--left == 0) cv.notify_all();
  }
  void wait() {
    std::unique_lock<std::mutex> lk(mu);
    cv.wait(lk, [&] { return left == 0; });
  }
};

/// Counting semaphore for the in-flight window of one producer.
struct window {
  std::mutex mu;
  std::condition_variable cv;
  int free;
  explicit window(int n) : free(n) {}
  void acquire() {
    std::unique_lock<std::mutex> lk(mu);
    cv.wait(lk, [&] { return free > 0; });
    --free;
  }
  void release() {
    {
      std::lock_guard<std::mutex> lk(mu);
      ++free;
    }
    cv.notify_one();
  }
};

void bm_hq_apply(benchmark::State& state) {
  const bool durable = state.range(0) != 0;
  const auto& ps = pushes();
  size_t applied = 0;
  double cpu = 0;
  for (auto _ : state) {
    state.PauseTiming();
    std::string dir;
    auto db = open_db(durable, &dir, "hq");
    store_options so;
    so.space = 0;
    so.role = node_role::hq;
    so.node = 1;
    so.outbox = false;
    auto st = node_store::open(db, so);
    if (!st) check(st.err(), "open hq");
    auto& hq = **st;
    // Each producer owns every producers-th batch (a session's pushes arrive in order).
    std::vector<std::vector<std::vector<core::record>>> work(producers);
    for (size_t i = 0; i < ps.batches.size(); ++i) work[i % producers].push_back(ps.batches[i]);
    latch all(ps.batches.size());
    std::atomic<size_t> changed{0};
    const double cpu0 = process_cpu_s();
    state.ResumeTiming();
    std::vector<std::unique_ptr<window>> windows;
    for (int p = 0; p < producers; ++p) windows.push_back(std::make_unique<window>(in_flight));
    std::vector<std::thread> threads;
    for (int p = 0; p < producers; ++p) {
      threads.emplace_back([&, p] {
        window& w = *windows[p];
        uint64_t seq = 0;
        for (auto& b : work[p]) {
          w.acquire();
          cursor_update cu{static_cast<core::node_id>(100 + p), "acme", "b0", 0, ++seq};
          hq.apply_remote_async(std::move(b), apply_source{static_cast<core::node_id>(100 + p), true}, cu,
                                [&](result<apply_result> r) {
                                  if (!r) check(r.err(), "apply");
                                  changed.fetch_add(r->applied, std::memory_order_relaxed);
                                  w.release();
                                  all.done();
                                });
        }
        // This producer's last applies are done.
        for (int i = 0; i < in_flight; ++i) w.acquire();
      });
    }
    for (auto& t : threads) t.join();
    all.wait();
    state.PauseTiming();
    cpu += process_cpu_s() - cpu0;
    applied += changed.load();
    st->reset();
    db.reset();
    if (!dir.empty()) std::filesystem::remove_all(dir);
    state.ResumeTiming();
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * ps.records));
  state.counters["sales_per_s"] =
      benchmark::Counter(static_cast<double>(state.iterations() * ps.sales), benchmark::Counter::kIsRate);
  state.counters["records"] = static_cast<double>(ps.records);
  state.counters["cpu_us_per_sale"] = cpu * 1e6 / static_cast<double>(state.iterations() * ps.sales);
  state.counters["applied_per_iter"] = static_cast<double>(applied) / static_cast<double>(state.iterations());
}
BENCHMARK(bm_hq_apply)->Arg(1)->Arg(0)->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(3.0);

void bm_local_sale(benchmark::State& state) {
  const bool durable = state.range(0) != 0;
  constexpr int writers = 8, per_writer_in_flight = 32, sales_per_writer = 1000;
  std::mt19937_64 r(7);
  std::vector<std::vector<std::pair<std::string, std::string>>> bodies(writers);  // (id, body)
  for (int w = 0; w < writers; ++w)
    for (int n = 0; n < sales_per_writer; ++n) {
      char id[32];
      std::snprintf(id, sizeof id, "01J%02d%021d", w, n);
      std::vector<std::string> lines;
      bodies[w].emplace_back(id, sale_body(r, w, n, id, 1'790'000'000'000 + n, &lines));
    }
  double cpu = 0;
  for (auto _ : state) {
    state.PauseTiming();
    std::string dir;
    auto db = open_db(durable, &dir, "local");
    store_options so;
    so.role = node_role::terminal;
    so.node = 7;
    auto st = node_store::open(db, so);
    if (!st) check(st.err(), "open terminal");
    auto& s = **st;
    latch all(static_cast<size_t>(writers) * sales_per_writer);
    const double cpu0 = process_cpu_s();
    state.ResumeTiming();
    std::vector<std::unique_ptr<window>> windows;
    for (int w = 0; w < writers; ++w) windows.push_back(std::make_unique<window>(per_writer_in_flight));
    std::vector<std::thread> threads;
    for (int w = 0; w < writers; ++w) {
      threads.emplace_back([&, w] {
        window& win = *windows[w];
        for (auto& [id, body] : bodies[w]) {
          win.acquire();
          s.record_sale_async(core::record_key{"acme", "b" + std::to_string(w % 2), "sale", id}, body,
                              [&](result<commit_result> res) {
                                if (!res) check(res.err(), "record_sale");
                                win.release();
                                all.done();
                              });
        }
        for (int i = 0; i < per_writer_in_flight; ++i) win.acquire();
      });
    }
    for (auto& t : threads) t.join();
    all.wait();
    state.PauseTiming();
    cpu += process_cpu_s() - cpu0;
    st->reset();
    db.reset();
    if (!dir.empty()) std::filesystem::remove_all(dir);
    state.ResumeTiming();
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()) * writers * sales_per_writer);
  state.counters["cpu_us_per_sale"] =
      cpu * 1e6 / static_cast<double>(state.iterations() * writers * sales_per_writer);
}
BENCHMARK(bm_local_sale)->Arg(1)->Arg(0)->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(3.0);

/// 8 writers each waiting for its own sale's commit before the next (W8's
/// commits_per_s): groups of at most 8, one fsync each.
void bm_local_sale_blocking(benchmark::State& state) {
  const bool durable = state.range(0) != 0;
  constexpr int writers = 8, sales_per_writer = 250;
  std::mt19937_64 r(11);
  std::vector<std::vector<std::pair<std::string, std::string>>> bodies(writers);
  for (int w = 0; w < writers; ++w)
    for (int n = 0; n < sales_per_writer; ++n) {
      char id[32];
      std::snprintf(id, sizeof id, "01K%02d%021d", w, n);
      std::vector<std::string> lines;
      bodies[w].emplace_back(id, sale_body(r, w, n, id, 1'790'000'000'000 + n, &lines));
    }
  double cpu = 0;
  for (auto _ : state) {
    state.PauseTiming();
    std::string dir;
    auto db = open_db(durable, &dir, "blocking");
    store_options so;
    so.role = node_role::terminal;
    so.node = 9;
    auto st = node_store::open(db, so);
    if (!st) check(st.err(), "open terminal");
    auto& s = **st;
    const double cpu0 = process_cpu_s();
    state.ResumeTiming();
    std::vector<std::thread> threads;
    for (int w = 0; w < writers; ++w)
      threads.emplace_back([&, w] {
        for (auto& [id, body] : bodies[w]) {
          auto res = s.record_sale(core::record_key{"acme", "b1", "sale", id}, body);
          if (!res) check(res.err(), "record_sale");
        }
      });
    for (auto& t : threads) t.join();
    state.PauseTiming();
    cpu += process_cpu_s() - cpu0;
    st->reset();
    db.reset();
    if (!dir.empty()) std::filesystem::remove_all(dir);
    state.ResumeTiming();
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()) * writers * sales_per_writer);
  state.counters["cpu_us_per_sale"] =
      cpu * 1e6 / static_cast<double>(state.iterations() * writers * sales_per_writer);
}
BENCHMARK(bm_local_sale_blocking)->Arg(1)->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(3.0);

} // namespace
