#include "possync/sim/workload_sync.hpp"
#include "node_fleet.hpp"
#include "temp_dir.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <sstream>
#include <thread>
#include <unordered_map>
#include <unordered_set>

#include <nlohmann/json.hpp>

#include "possync/node/inproc.hpp"
#include "possync/node/node.hpp"
#include "possync/sim/child_process.hpp"
#include "possync/sim/pos_fixture.hpp"
#include "possync/sim/workload_local.hpp"
#include "possync/storage/lifecycle.hpp"
#include "possync/storage/store.hpp"
#include "possync/v1/pos.pb.h"

namespace possync::sim {

namespace {

using namespace fleet_detail;

const std::string tenant = "bench";
const std::string branch = "b001";  ///< the branch of W1-W4 (and of W5 with one branch)
constexpr core::node_id hq_id = 0x4800000000000001ULL;
constexpr core::node_id branch_id = 0xB000000000000001ULL;
constexpr core::node_id first_terminal_id = 0x7000000000000001ULL;
constexpr int64_t initial_stock = 1'000'000'000; // thousandths: never runs out

// Branch `i` (0-based) of W5: b001, b002, ...
std::string branch_name(size_t i) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "b%03zu", i + 1);
  return buf;
}

const char* const w1 = "full-sync";
const char* const w2 = "incremental";
const char* const w3 = "offline-backlog";
const char* const w4 = "push";
const char* const w5 = "many-terminals";
const char* const w9 = "restart";

// Nearest-rank percentile of `v` (sorted here).
double percentile(std::vector<double>& v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  auto rank = static_cast<size_t>(std::ceil(p * static_cast<double>(v.size())));
  return v[std::min(v.size() - 1, rank == 0 ? 0 : rank - 1)];
}

void set_latencies(sync_report& rep, std::vector<double> ms) {
  if (ms.empty()) return;
  rep.p50_ms = percentile(ms, 0.50);
  rep.p99_ms = percentile(ms, 0.99);
  rep.max_ms = ms.back();
}

node::device device_of(core::node_id id, storage::node_role role, const std::string& name,
                       const std::string& br = branch) {
  node::device d;
  d.tenant = tenant;
  d.branch = br;
  d.node = id;
  d.role = role;
  d.name = name;
  return d;
}

// A product body of about 250 bytes: the fixture's fields plus an image URL, an
// alternative barcode and the edit time.
std::string catalog_body(const product_spec& p, int64_t price) {
  v1::Product m;
  m.set_sku(p.sku);
  m.set_barcode(p.barcode);
  m.set_name(p.name);
  m.set_category_id("cat-grocery");
  m.set_price(price);
  m.set_cost(p.cost);
  m.set_unit(p.unit);
  m.set_active(true);
  m.set_tax_rate_bp(p.tax_rate_bp);
  m.set_shelf_label(p.name + " / " + p.sku);
  m.add_alt_barcodes("2" + p.barcode.substr(1));
  m.set_image_url("https://img.possync.example/catalog/" + tenant + "/" + p.id + "/front-800x800.webp?fit=contain&bg=ffffff&q=85");
  m.set_track_stock(true);
  m.set_min_stock(10'000);
  m.set_updated_ms(wall_ms());
  return m.SerializeAsString();
}

// Writes the catalogue at HQ in commits of 1,000 (bodies of catalog_body); returns the
// mean body size.
result<double> load_products(storage::node_store& store, const std::vector<product_spec>& catalog) {
  size_t bytes = 0;
  for (size_t begin = 0; begin < catalog.size(); begin += 1000) {
    size_t end = std::min(catalog.size(), begin + 1000);
    std::vector<storage::write_op> ops;
    ops.reserve(end - begin);
    for (size_t i = begin; i < end; ++i) {
      storage::put_op put;
      put.key = product_key(tenant, catalog[i].id);
      put.body = catalog_body(catalog[i], catalog[i].price);
      bytes += put.body.size();
      ops.emplace_back(std::move(put));
    }
    auto r = store.write(std::move(ops));
    if (!r) return std::move(r).err();
  }
  return catalog.empty() ? 0.0 : static_cast<double>(bytes) / static_cast<double>(catalog.size());
}

// Price of the product `id` as `store` resolves it, -1 if absent or unreadable.
int64_t price_at(const storage::node_store& store, const std::string& id) {
  auto v = store.read(product_key(tenant, id));
  if (!v || !v->exists) return -1;
  v1::Product m;
  if (!m.ParseFromString(v->body)) return -1;
  return m.price();
}

// Sales prepared before the clock starts.
struct planned_sale {
  core::record_key key;
  std::string body;
  std::vector<sale_line> lines;
  size_t terminal = 0;
};

std::vector<planned_sale> plan_sales(storage::node_store& store, const std::vector<product_spec>& catalog,
                                     rng& r, size_t n, size_t terminal, const std::string& br = branch) {
  std::vector<planned_sale> out;
  out.reserve(n);
  sale_context ctx;
  ctx.terminal_id = "T" + std::to_string(terminal + 1);
  for (size_t i = 0; i < n; ++i) {
    planned_sale s;
    s.key = core::record_key{tenant, br, "sale", store.new_id()};
    ctx.receipt_no = i + 1;
    ctx.time_ms = wall_ms();
    auto d = make_sale(r, catalog, s.key.id, ctx, 3, 3);
    s.body = std::move(d.body);
    s.lines = std::move(d.lines);
    s.terminal = terminal;
    out.push_back(std::move(s));
  }
  return out;
}

// Counts asynchronous sale commits; waits for all of them. Shared with the callbacks,
// which may outlive a run cut short by a timeout.
class sale_tracker : public std::enable_shared_from_this<sale_tracker> {
public:
  std::function<void(result<storage::commit_result>)> callback() {
    auto self = shared_from_this();
    return [self](result<storage::commit_result> r) { self->done(std::move(r)); };
  }
  void done(result<storage::commit_result> r) {
    {
      std::lock_guard<std::mutex> g(mu_);
      if (r) ++ok_;
      else if (!failure_) failure_ = std::move(r).err();
      ++done_;
      last_ = clock_type::now();
    }
    cv_.notify_all();
  }
  /// Waits until at most `in_flight` of `issued` are outstanding.
  bool wait_outstanding(size_t issued, size_t in_flight, time_point deadline) {
    std::unique_lock<std::mutex> l(mu_);
    return cv_.wait_until(l, deadline, [&] { return issued - done_ <= in_flight; });
  }
  size_t ok() const {
    std::lock_guard<std::mutex> g(mu_);
    return ok_;
  }
  std::optional<error> failure() const {
    std::lock_guard<std::mutex> g(mu_);
    return failure_;
  }
  /// When the last commit completed.
  time_point last() const {
    std::lock_guard<std::mutex> g(mu_);
    return last_;
  }

private:
  mutable std::mutex mu_;
  std::condition_variable cv_;
  size_t ok_ = 0, done_ = 0;
  time_point last_{};
  std::optional<error> failure_;
};

// Stock HQ should show per (branch, product): initial minus what `sales` sold there.
std::map<std::pair<std::string, std::string>, int64_t> expected_stock(const std::vector<planned_sale>& sales) {
  std::map<std::pair<std::string, std::string>, int64_t> out;
  for (const auto& s : sales)
    for (const auto& l : s.lines) {
      auto it = out.emplace(std::make_pair(s.key.scope, l.product_id), initial_stock).first;
      it->second -= l.quantity;
    }
  return out;
}

size_t stock_mismatches(const storage::node_store& store,
                        const std::map<std::pair<std::string, std::string>, int64_t>& expected) {
  size_t bad = 0;
  for (const auto& [where, want] : expected) {
    auto got = store.stock_level(tenant, where.first, where.second);
    if (!got || *got != want) ++bad;
  }
  return bad;
}

// What HQ received of `sales`: seen/lost/duplicated, per-sale latency from `since`
// (per sale when `started` is given), and the time of the last arrival.
struct arrival {
  size_t seen = 0, lost = 0, duplicated = 0;
  time_point last{};
  std::vector<double> latency_ms;
};
arrival tally(const watcher& w, const storage::node_store& hq, const std::vector<planned_sale>& sales,
              time_point since, const std::vector<time_point>* started) {
  arrival a;
  auto snap = w.snapshot();
  a.last = since;
  std::unordered_set<std::string> made;
  made.reserve(sales.size());
  for (size_t i = 0; i < sales.size(); ++i) {
    const auto& s = sales[i];
    made.insert(s.key.id);
    auto it = snap.find(s.key.id);
    if (it == snap.end()) {
      // Not announced: does HQ hold it anyway (a notification missed)?
      auto v = hq.get(s.key);
      if (v && *v) ++a.seen;
      else ++a.lost;
      continue;
    }
    ++a.seen;
    a.duplicated += it->second.second - 1;
    a.last = std::max(a.last, it->second.first);
    a.latency_ms.push_back(ms_between(started ? (*started)[i] : since, it->second.first));
  }
  for (const auto& [id, v] : snap)
    if (!made.count(id)) a.duplicated += v.second; // seen but never made here
  return a;
}

// Polls HQ's store for a sample of `sales` every 500 µs on its own thread: when the
// last of the sample was readable. A cross-check of the commit notifications.
class read_probe {
public:
  read_probe(const storage::node_store& hq, const std::vector<planned_sale>& sales, size_t sample,
             time_point deadline)
      : thread_([this, &hq, &sales, sample, deadline] {
          std::vector<const core::record_key*> keys;
          size_t step = std::max<size_t>(1, sales.size() / std::max<size_t>(1, sample));
          for (size_t i = 0; i < sales.size(); i += step)
            keys.push_back(&sales[i].key);
          if (!sales.empty() && keys.back() != &sales.back().key) keys.push_back(&sales.back().key);
          size_t next = 0;
          while (!stop_.load() && clock_type::now() < deadline) {
            while (next < keys.size()) {
              auto v = hq.get(*keys[next]);
              if (!v || !*v) break;
              ++next;
            }
            if (next == keys.size()) {
              done_ = clock_type::now();
              ok_ = true;
              return;
            }
            std::this_thread::sleep_for(std::chrono::microseconds(500));
          }
        }) {}
  read_probe(const read_probe&) = delete;
  read_probe& operator=(const read_probe&) = delete;
  ~read_probe() { finish(); }
  /// Joins; the time the whole sample was readable, if it was.
  std::optional<time_point> finish() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
    return ok_ ? std::optional<time_point>(done_) : std::nullopt;
  }

private:
  std::atomic<bool> stop_{false};
  bool ok_ = false;
  time_point done_{};
  std::thread thread_;
};

void fail(sync_report& rep, const std::string& why) {
  rep.converged = false;
  if (rep.failure.empty()) rep.failure = why;
}

// HQ with a durable store in root/hq, registering `devices`.
result<node::node*> start_hq(fleet& f, const std::string& root, std::vector<node::device> devices) {
  auto c = f.config(storage::node_role::hq, hq_id, branch);
  c.dir = root + "/hq";
  c.devices = std::move(devices);
  return f.start(std::move(c));
}

std::vector<node::device> terminal_devices(size_t n) {
  std::vector<node::device> out;
  for (size_t i = 0; i < n; ++i)
    out.push_back(device_of(first_terminal_id + i, storage::node_role::terminal, "register " + std::to_string(i + 1)));
  return out;
}

// W1/W2 setup: HQ with one registered terminal and `catalog` as ~250 B products; the
// mean body size goes to rep.details["record_bytes"].
result<node::node*> start_hq_with_products(fleet& f, const std::string& root,
                                           const std::vector<product_spec>& catalog, sync_report& rep) {
  auto hq = start_hq(f, root, terminal_devices(1));
  if (!hq) return hq;
  auto bytes = load_products((*hq)->store(), catalog);
  if (!bytes) return std::move(bytes).err();
  rep.details["record_bytes"] = *bytes;
  return hq;
}

// Setup: waits until `n` is caught up and holds the product `last_id`.
status first_sync(node::node& n, const std::string& last_id, time_point deadline) {
  if (!poll_until(deadline, [&] { return caught_up(n) && price_at(n.store(), last_id) >= 0; },
                  std::chrono::milliseconds(1)))
    return error(errc::deadline_exceeded, "setup: a node did not finish its first sync");
  return {};
}

// Setup: cuts the uplink of `n` and waits until it is offline.
status go_offline(node::node& n, time_point deadline) {
  n.set_uplink_enabled(false);
  if (!poll_until(deadline, [&] { return !n.status().online; }, std::chrono::milliseconds(1)))
    return error(errc::deadline_exceeded, "setup: a node stayed online after its uplink was cut");
  return {};
}

// -- W1 full-sync ---------------------------------------------------------------------

result<sync_report> run_full_sync(sync_report rep, const std::string& root, std::shared_ptr<node::runtime> rt) {
  const auto& o = rep.opts;
  auto setup_begin = clock_type::now();
  auto deadline = [&] { return clock_type::now() + std::chrono::milliseconds(o.timeout_ms); };
  fleet f(rt, o.transport, tenant, o.stream_window_bytes);
  auto catalog = generate_catalog(o.products, o.seed);
  auto hq = start_hq_with_products(f, root, catalog, rep);
  if (!hq) return std::move(hq).err();

  // The terminal's database is opened before the clock starts; the node starts timed.
  storage::db_options dbo;
  dbo.path = root + "/terminal";
  auto db = storage::database::open(dbo);
  if (!db) return std::move(db).err();
  auto t_cfg = f.config(storage::node_role::terminal, first_terminal_id, branch);
  t_cfg.db = *db;
  f.attach(t_cfg, **hq, "terminal-1");
  rep.setup_seconds = secs_between(setup_begin, clock_type::now());

  auto t0 = clock_type::now();
  auto term = f.start(t_cfg);
  if (!term) return std::move(term).err();
  subscription sub(**term, tenant, "product");
  bool all = sub->wait_distinct(catalog.size(), deadline());
  bool up = all && poll_until(deadline(), [&] { return caught_up(**term); });
  auto t1 = clock_type::now();

  auto snap = sub->snapshot();
  std::vector<double> lat;
  lat.reserve(snap.size());
  time_point last = t0;
  for (const auto& [id, v] : snap) {
    lat.push_back(ms_between(t0, v.first));
    last = std::max(last, v.first);
  }
  rep.expected = catalog.size();
  size_t present = 0;
  for (const auto& p : catalog)
    if (price_at((*term)->store(), p.id) == p.price) ++present;
  rep.seen = present;
  rep.lost = catalog.size() - present;
  rep.duplicated = sub->repeats();
  rep.seconds = secs_between(t0, up ? t1 : clock_type::now());
  rep.details["all_held_seconds"] = secs_between(t0, last);
  rep.records_per_s = rep.seconds > 0 ? static_cast<double>(present) / rep.seconds : 0;
  set_latencies(rep, std::move(lat));
  rep.converged = true;
  if (!all) fail(rep, "terminal holds " + std::to_string(sub->distinct()) + " of " +
                          std::to_string(catalog.size()) + " products at the timeout");
  else if (!up) fail(rep, "terminal never reported caught up");
  if (rep.lost || rep.duplicated) fail(rep, "products lost or applied twice");
  return rep;
}

// -- W2 incremental -------------------------------------------------------------------

result<sync_report> run_incremental(sync_report rep, const std::string& root, std::shared_ptr<node::runtime> rt) {
  const auto& o = rep.opts;
  auto setup_begin = clock_type::now();
  auto deadline = [&] { return clock_type::now() + std::chrono::milliseconds(o.timeout_ms); };
  fleet f(rt, o.transport, tenant, o.stream_window_bytes);
  auto catalog = generate_catalog(o.products, o.seed);
  auto hq = start_hq_with_products(f, root, catalog, rep);
  if (!hq) return std::move(hq).err();

  auto t_cfg = f.config(storage::node_role::terminal, first_terminal_id, branch);
  t_cfg.dir = root + "/terminal";
  f.attach(t_cfg, **hq, "terminal-1");
  auto term = f.start(t_cfg);
  if (!term) return std::move(term).err();
  if (auto st = first_sync(**term, catalog.back().id, deadline())) return st;
  if (auto st = go_offline(**term, deadline())) return st;

  // HQ edits `changes` distinct products, one commit each, while the terminal is away.
  rng r(o.seed ^ 0x1C4EULL);
  std::vector<size_t> idx(catalog.size());
  for (size_t i = 0; i < idx.size(); ++i)
    idx[i] = i;
  for (size_t i = 0; i < o.changes; ++i)
    std::swap(idx[i], idx[i + r.below(idx.size() - i)]);
  idx.resize(o.changes);
  std::unordered_map<std::string, int64_t> want;
  for (size_t i : idx) {
    const auto& p = catalog[i];
    int64_t price = p.price + 500;
    storage::put_op put;
    put.key = product_key(tenant, p.id);
    put.body = catalog_body(p, price);
    auto w = (*hq)->store().write({std::move(put)});
    if (!w) return std::move(w).err();
    want[p.id] = price;
  }
  subscription sub(**term, tenant, "product");
  rep.setup_seconds = secs_between(setup_begin, clock_type::now());

  auto t0 = clock_type::now();
  (*term)->set_uplink_enabled(true);
  (*term)->sync_now();
  bool all = sub->wait_distinct(want.size(), deadline());
  auto t1 = clock_type::now();

  auto snap = sub->snapshot();
  std::vector<double> lat;
  time_point last = t0;
  size_t seen = 0;
  for (const auto& [id, v] : snap) {
    if (!want.count(id)) continue;
    ++seen;
    lat.push_back(ms_between(t0, v.first));
    last = std::max(last, v.first);
  }
  size_t right = 0;
  for (const auto& [id, price] : want)
    if (price_at((*term)->store(), id) == price) ++right;
  rep.expected = want.size();
  rep.seen = right;
  rep.lost = want.size() - right;
  rep.duplicated = sub->repeats() + (snap.size() - seen);
  rep.seconds = all ? secs_between(t0, last) : secs_between(t0, t1);
  rep.records_per_s = rep.seconds > 0 ? static_cast<double>(seen) / rep.seconds : 0;
  set_latencies(rep, std::move(lat));
  rep.converged = true;
  if (!all) fail(rep, "terminal applied " + std::to_string(sub->distinct()) + " of " +
                          std::to_string(want.size()) + " changes at the timeout");
  if (rep.lost || rep.duplicated) fail(rep, "changes lost, stale or applied twice");
  return rep;
}

// -- W3 offline-backlog ---------------------------------------------------------------

result<sync_report> run_offline_backlog(sync_report rep, const std::string& root,
                                        std::shared_ptr<node::runtime> rt) {
  const auto& o = rep.opts;
  auto setup_begin = clock_type::now();
  auto deadline = [&] { return clock_type::now() + std::chrono::milliseconds(o.timeout_ms); };
  fleet f(rt, o.transport, tenant, o.stream_window_bytes);
  auto hq = start_hq(f, root, terminal_devices(1));
  if (!hq) return std::move(hq).err();
  auto catalog = generate_catalog(o.products, o.seed);
  if (auto st = load_catalog((*hq)->store(), tenant, branch, catalog, initial_stock, 1000)) return st;

  auto t_cfg = f.config(storage::node_role::terminal, first_terminal_id, branch);
  t_cfg.dir = root + "/terminal";
  f.attach(t_cfg, **hq, "terminal-1");
  auto term = f.start(t_cfg);
  if (!term) return std::move(term).err();
  if (auto st = first_sync(**term, catalog.back().id, deadline())) return st;
  if (auto st = go_offline(**term, deadline())) return st;

  // The backlog: sales recorded offline, many in flight so that fsyncs are shared.
  rng r(o.seed ^ 0x5A1E5ULL);
  auto sales = plan_sales((*term)->store(), catalog, r, o.sales, 0);
  auto made = std::make_shared<sale_tracker>();
  for (size_t i = 0; i < sales.size(); ++i) {
    if (!made->wait_outstanding(i, 256, deadline()))
      return error(errc::deadline_exceeded, "setup: offline sales did not commit");
    (*term)->store().record_sale_async(sales[i].key, sales[i].body, made->callback());
  }
  if (!made->wait_outstanding(sales.size(), 0, deadline()))
    return error(errc::deadline_exceeded, "setup: offline sales did not commit");
  if (auto e = made->failure()) return *e;
  subscription sub(**hq, tenant, "sale");
  rep.setup_seconds = secs_between(setup_begin, clock_type::now());

  auto t0 = clock_type::now();
  read_probe probe((*hq)->store(), sales, 64, deadline());
  (*term)->set_uplink_enabled(true);
  (*term)->sync_now();
  bool all = sub->wait_distinct(sales.size(), deadline());
  auto t1 = clock_type::now();
  if (auto p = probe.finish()) rep.details["read_probe_seconds"] = secs_between(t0, *p);

  auto a = tally(*sub, (*hq)->store(), sales, t0, nullptr);
  rep.expected = sales.size();
  rep.seen = a.seen;
  rep.lost = a.lost;
  rep.duplicated = a.duplicated;
  rep.seconds = all ? secs_between(t0, a.last) : secs_between(t0, t1);
  rep.sales_per_s = rep.seconds > 0 ? static_cast<double>(a.seen) / rep.seconds : 0;
  set_latencies(rep, std::move(a.latency_ms));
  rep.converged = true;
  if (!all) fail(rep, "HQ holds " + std::to_string(sub->distinct()) + " of " + std::to_string(sales.size()) +
                          " sales at the timeout");
  if (rep.lost || rep.duplicated) fail(rep, "sales lost or duplicated at HQ");
  // Untimed checks: the terminal's outbox empties, HQ's stock matches what was sold.
  auto drain_begin = clock_type::now();
  if (!poll_until(deadline(), [&] { return drained(**term); }, std::chrono::milliseconds(2)))
    fail(rep, "the terminal's outbox did not drain (" + std::to_string(pending_total(**term)) +
                  " entries left)");
  rep.details["outbox_drain_seconds"] = secs_between(drain_begin, clock_type::now());
  auto stock = expected_stock(sales);
  size_t bad = 0;
  poll_until(deadline(), [&] { return (bad = stock_mismatches((*hq)->store(), stock)) == 0; },
             std::chrono::milliseconds(5));
  rep.details["stock_mismatches"] = static_cast<double>(bad);
  if (bad) fail(rep, std::to_string(bad) + " products' stock at HQ differs from initial minus sold");
  return rep;
}

// -- W4 push --------------------------------------------------------------------------

result<sync_report> run_push(sync_report rep, const std::string& root, std::shared_ptr<node::runtime> rt) {
  const auto& o = rep.opts;
  auto setup_begin = clock_type::now();
  auto deadline = [&] { return clock_type::now() + std::chrono::milliseconds(o.timeout_ms); };
  fleet f(rt, o.transport, tenant, o.stream_window_bytes);
  auto devices = terminal_devices(o.terminals);
  devices.push_back(device_of(branch_id, storage::node_role::branch, "branch server"));
  auto hq = start_hq(f, root, std::move(devices));
  if (!hq) return std::move(hq).err();
  auto catalog = generate_catalog(o.products, o.seed);
  if (auto st = load_catalog((*hq)->store(), tenant, branch, catalog, initial_stock, 1000)) return st;

  auto b_cfg = f.config(storage::node_role::branch, branch_id, branch);
  b_cfg.dir = root + "/branch";
  f.attach(b_cfg, **hq, "branch");
  auto br = f.start(b_cfg);
  if (!br) return std::move(br).err();
  if (auto st = first_sync(**br, catalog.back().id, deadline())) return st;
  std::vector<node::node*> terms;
  for (size_t i = 0; i < o.terminals; ++i) {
    auto c = f.config(storage::node_role::terminal, first_terminal_id + i, branch);
    c.dir = root + "/terminal-" + std::to_string(i + 1);
    f.attach(c, **br, "terminal-" + std::to_string(i + 1));
    auto t = f.start(c);
    if (!t) return std::move(t).err();
    terms.push_back(*t);
  }
  for (auto* t : terms)
    if (auto st = first_sync(*t, catalog.back().id, deadline())) return st;

  const product_spec& p = catalog.front();
  std::vector<std::unique_ptr<subscription>> subs;
  for (auto* t : terms)
    subs.push_back(std::make_unique<subscription>(*t, tenant, "product"));
  rep.setup_seconds = secs_between(setup_begin, clock_type::now());

  std::vector<double> lat, from_commit;
  rep.expected = o.changes * terms.size();
  rep.converged = true;
  auto begin = clock_type::now();
  int64_t price = p.price;
  for (size_t i = 0; i < o.changes; ++i) {
    price = p.price + static_cast<int64_t>(i + 1) * 100;
    storage::put_op put;
    put.key = product_key(tenant, p.id);
    put.body = catalog_body(p, price);
    auto t0 = clock_type::now();
    auto w = (*hq)->store().write({std::move(put)});
    auto committed = clock_type::now();
    if (!w) return std::move(w).err();
    time_point last = committed;
    bool all = true;
    for (auto& s : subs) {
      if (!(*s)->wait_changes(p.id, i + 1, deadline())) {
        all = false;
        break;
      }
      ++rep.seen;
      last = std::max(last, *(*s)->change_time(p.id, i));
    }
    if (!all) {
      fail(rep, "update " + std::to_string(i + 1) + " did not reach every terminal");
      break;
    }
    lat.push_back(ms_between(t0, last));
    from_commit.push_back(ms_between(committed, last));
  }
  rep.seconds = secs_between(begin, clock_type::now());
  for (auto& s : subs)
    rep.duplicated += (*s)->repeats() - std::min((*s)->repeats(), o.changes - 1);
  rep.lost = rep.expected - rep.seen;
  size_t stale = 0;
  for (auto* t : terms)
    if (price_at(t->store(), p.id) != price) ++stale;
  rep.details["stale_terminals"] = static_cast<double>(stale);
  if (stale) fail(rep, std::to_string(stale) + " terminals do not hold the last price");
  if (rep.lost || rep.duplicated) fail(rep, "updates lost or applied twice");
  if (!from_commit.empty()) {
    auto fc = from_commit;
    rep.details["from_commit_p50_ms"] = percentile(fc, 0.50);
    rep.details["from_commit_p99_ms"] = percentile(fc, 0.99);
  }
  set_latencies(rep, std::move(lat));
  return rep;
}

// -- W5 many-terminals ----------------------------------------------------------------

result<sync_report> run_many_terminals(sync_report rep, const std::string& root,
                                       std::shared_ptr<node::runtime> rt) {
  const auto& o = rep.opts;
  auto setup_begin = clock_type::now();
  auto deadline = [&] { return clock_type::now() + std::chrono::milliseconds(o.timeout_ms); };
  fleet f(rt, o.transport, tenant, o.stream_window_bytes);
  // Terminal i sells in branch i % branches; with via_branch each branch has a node.
  auto branch_of = [&](size_t terminal) { return branch_name(terminal % o.branches); };
  std::vector<node::device> devices;
  for (size_t i = 0; i < o.terminals; ++i)
    devices.push_back(device_of(first_terminal_id + i, storage::node_role::terminal,
                                "register " + std::to_string(i + 1), branch_of(i)));
  if (o.via_branch)
    for (size_t b = 0; b < o.branches; ++b)
      devices.push_back(device_of(branch_id + b, storage::node_role::branch, "branch server", branch_name(b)));
  auto hq = start_hq(f, root, std::move(devices));
  if (!hq) return std::move(hq).err();
  auto catalog = generate_catalog(o.products, o.seed);
  // Products once, then every branch's initial stock.
  if (auto st = load_catalog((*hq)->store(), tenant, branch_name(0), catalog, initial_stock, 1000)) return st;
  for (size_t b = 1; b < o.branches; ++b) {
    std::vector<storage::write_op> ops;
    for (const auto& p : catalog)
      ops.emplace_back(storage::counter_op{stock_key(tenant, branch_name(b), p.id), initial_stock});
    auto w = (*hq)->store().write(std::move(ops));
    if (!w) return std::move(w).err();
  }

  std::vector<node::node*> ups(o.branches, *hq);
  if (o.via_branch) {
    for (size_t b = 0; b < o.branches; ++b) {
      auto b_cfg = f.config(storage::node_role::branch, branch_id + b, branch_name(b));
      b_cfg.dir = root + "/branch-" + branch_name(b);
      f.attach(b_cfg, **hq, "branch-" + branch_name(b));
      auto br = f.start(b_cfg);
      if (!br) return std::move(br).err();
      ups[b] = *br;
    }
    for (auto* br : ups)
      if (auto st = first_sync(*br, catalog.back().id, deadline())) return st;
  }

  // Every terminal in one shared database, one store space each.
  storage::db_options dbo;
  dbo.path = root + "/terminals";
  auto db = storage::database::open(dbo);
  if (!db) return std::move(db).err();
  std::vector<node::node*> terms;
  for (size_t i = 0; i < o.terminals; ++i) {
    auto c = f.config(storage::node_role::terminal, first_terminal_id + i, branch_of(i));
    c.db = *db;
    c.space = static_cast<uint32_t>(i + 1);
    f.attach(c, *ups[i % o.branches], "terminal-" + std::to_string(i + 1));
    auto t = f.start(c);
    if (!t) return std::move(t).err();
    terms.push_back(*t);
  }
  for (auto* t : terms)
    if (auto st = first_sync(*t, catalog.back().id, deadline())) return st;

  // Sales planned per terminal, then issued round-robin so every terminal sells at once.
  std::vector<planned_sale> sales;
  sales.reserve(o.terminals * o.sales);
  {
    std::vector<std::vector<planned_sale>> per(terms.size());
    for (size_t t = 0; t < terms.size(); ++t) {
      rng r(o.seed * 1000 + t + 1);
      per[t] = plan_sales(terms[t]->store(), catalog, r, o.sales, t, branch_of(t));
    }
    for (size_t i = 0; i < o.sales; ++i)
      for (size_t t = 0; t < terms.size(); ++t)
        sales.push_back(std::move(per[t][i]));
  }
  std::vector<time_point> started(sales.size());
  auto made = std::make_shared<sale_tracker>();
  subscription sub(**hq, tenant, "sale");
  rep.setup_seconds = secs_between(setup_begin, clock_type::now());

  auto t0 = clock_type::now();
  read_probe probe((*hq)->store(), sales, 64, deadline());
  for (size_t i = 0; i < sales.size(); ++i) {
    started[i] = clock_type::now();
    terms[sales[i].terminal]->store().record_sale_async(sales[i].key, sales[i].body, made->callback());
  }
  bool all = sub->wait_distinct(sales.size(), deadline());
  auto t1 = clock_type::now();
  made->wait_outstanding(sales.size(), 0, deadline());
  if (auto p = probe.finish()) rep.details["read_probe_seconds"] = secs_between(t0, *p);

  auto a = tally(*sub, (*hq)->store(), sales, t0, &started);
  rep.expected = sales.size();
  rep.seen = a.seen;
  rep.lost = a.lost;
  rep.duplicated = a.duplicated;
  rep.seconds = all ? secs_between(t0, a.last) : secs_between(t0, t1);
  rep.sales_per_s = rep.seconds > 0 ? static_cast<double>(a.seen) / rep.seconds : 0;
  rep.details["sales_made"] = static_cast<double>(made->ok());
  rep.details["terminal_commits_seconds"] = secs_between(t0, made->last());
  set_latencies(rep, std::move(a.latency_ms));
  rep.converged = true;
  if (auto e = made->failure()) fail(rep, "a terminal's sale commit failed: " + e->to_string());
  if (!all) fail(rep, "HQ holds " + std::to_string(sub->distinct()) + " of " + std::to_string(sales.size()) +
                          " sales at the timeout");
  if (rep.lost || rep.duplicated) fail(rep, "sales lost or duplicated at HQ");
  auto drain_begin = clock_type::now();
  for (auto* t : terms)
    if (!poll_until(deadline(), [&] { return drained(*t); }, std::chrono::milliseconds(2))) {
      fail(rep, "a terminal's outbox did not drain (" + std::to_string(pending_total(*t)) + " entries left)");
      break;
    }
  rep.details["outbox_drain_seconds"] = secs_between(drain_begin, clock_type::now());
  auto stock = expected_stock(sales);
  size_t bad = 0;
  poll_until(deadline(), [&] { return (bad = stock_mismatches((*hq)->store(), stock)) == 0; },
             std::chrono::milliseconds(5));
  rep.details["stock_mismatches"] = static_cast<double>(bad);
  if (bad) fail(rep, std::to_string(bad) + " products' stock at HQ differs from initial minus sold");
  return rep;
}


// -- W9 restart -----------------------------------------------------------------------

// The arguments of the HQ process of W9: the store at `dir`, the one terminal
// registered, listening on 127.0.0.1:`port` (0 = any), a console on stdin.
std::vector<std::string> hq_process_args(const std::string& exe, const std::string& dir, uint16_t port) {
  return {exe, "hq", "--dir", dir, "--tenant", tenant, "--node-id", core::node_id_to_string(hq_id),
          "--device", tenant + ":" + branch + ":" + core::node_id_to_string(first_terminal_id) + ":terminal",
          "--listen", "127.0.0.1:" + std::to_string(port), "--console", "--insecure-dev", "--log-level", "error"};
}

// Starts the HQ process; its port once it printed "listening on HOST:PORT", 0 if it
// did not before `deadline`.
uint16_t spawn_hq(child_process& p, const std::vector<std::string>& args, time_point deadline) {
  if (!p.spawn(args, true)) return 0;
  auto line = p.next_line("listening on ", deadline);
  if (!line) return 0;
  return static_cast<uint16_t>(std::strtoul(line->substr(line->rfind(':') + 1).c_str(), nullptr, 10));
}

// W9 setup: products and a sale history written into a durable HQ store at `dir` by a
// node in this process, which is then stopped (the store is closed cleanly; the
// process started afterwards opens it). Sales go in as plain records in commits of
// 1,000, the way HQ holds uploaded history.
status load_hq_history(const std::shared_ptr<node::runtime>& rt, const std::string& dir,
                       const std::vector<product_spec>& catalog, size_t sales, uint64_t seed) {
  fleet loader(rt, sync_transport::grpc, tenant, 0); // it listens on nothing
  auto c = loader.config(storage::node_role::hq, hq_id, branch);
  c.dir = dir;
  c.listen.clear();
  c.devices = terminal_devices(1);
  auto hq = loader.start(std::move(c));
  if (!hq) return std::move(hq).err();
  auto& store = (*hq)->store();
  if (auto bytes = load_products(store, catalog); !bytes) return std::move(bytes).err();
  rng r(seed ^ 0x415709ULL);
  sale_context ctx;
  ctx.terminal_id = "T1";
  for (size_t begin = 0; begin < sales; begin += 1000) {
    std::vector<storage::write_op> ops;
    for (size_t i = begin; i < std::min(sales, begin + 1000); ++i) {
      storage::put_op put;
      put.key = core::record_key{tenant, branch, "sale", store.new_id()};
      ctx.receipt_no = i + 1;
      ctx.time_ms = wall_ms() - static_cast<int64_t>(sales - i) * 1000;  // one a second, up to now
      put.body = make_sale(r, catalog, put.key.id, ctx, 3, 3).body;
      ops.emplace_back(std::move(put));
    }
    if (auto w = store.write(std::move(ops)); !w) return std::move(w).err();
  }
  return {};
}

// Records a sale on the terminal every `period` until stopped; counts the sales the
// store acknowledged (durable locally: what the POS app was told) and those it refused.
class steady_seller {
public:
  steady_seller(node::node& n, const std::vector<product_spec>& catalog, uint64_t seed,
                std::chrono::microseconds period)
      : thread_([this, &n, &catalog, seed, period] { run(n, catalog, seed, period); }) {}
  steady_seller(const steady_seller&) = delete;
  steady_seller& operator=(const steady_seller&) = delete;
  ~steady_seller() { stop(); }

  void stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }
  size_t acked() const { return acked_; }
  size_t failed() const { return failed_; }

private:
  void run(node::node& n, const std::vector<product_spec>& catalog, uint64_t seed, std::chrono::microseconds period) {
    rng r(seed ^ 0x5E11E2ULL);
    sale_context ctx;
    ctx.terminal_id = "T1";
    auto next = clock_type::now();
    while (!stop_) {
      core::record_key key{tenant, branch, "sale", n.store().new_id()};
      ctx.receipt_no = ++made_;
      ctx.time_ms = wall_ms();
      auto sale = make_sale(r, catalog, key.id, ctx, 3, 3);
      auto w = n.store().record_sale(key, std::move(sale.body));
      if (w) ++acked_;
      else ++failed_;
      next += period;
      std::this_thread::sleep_until(next);
    }
  }

  std::atomic<bool> stop_{false};
  std::atomic<size_t> acked_{0};
  std::atomic<size_t> failed_{0};
  uint64_t made_ = 0;
  std::thread thread_;
};

// The count HQ's console answers for `collection`, -1 if it does not.
int64_t console_count(child_process& p, const std::string& collection, std::chrono::milliseconds timeout) {
  auto line = p.command("count " + collection, timeout);
  if (!line || line->rfind("ok", 0) != 0) return -1;
  auto j = nlohmann::json::parse(line->substr(2), nullptr, false);
  if (!j.is_object() || !j.contains("count")) return -1;
  return j["count"].get<int64_t>();
}

result<sync_report> run_restart(sync_report rep, const std::string& root, std::shared_ptr<node::runtime> rt) {
  const auto& o = rep.opts;
  auto setup_begin = clock_type::now();
  auto deadline = [&] { return clock_type::now() + std::chrono::milliseconds(o.timeout_ms); };
  std::string exe = o.exe;
  if (exe.empty()) {
    std::error_code ec;
    exe = std::filesystem::read_symlink("/proc/self/exe", ec).string();
    if (ec) return error(errc::unavailable, "cannot find this program's path: " + ec.message());
  }
  const std::string hq_dir = root + "/hq";
  auto catalog = generate_catalog(o.products, o.seed);
  auto load_begin = clock_type::now();
  if (auto st = load_hq_history(rt, hq_dir, catalog, o.sales, o.seed)) return st;
  rep.details["load_seconds"] = secs_between(load_begin, clock_type::now());
  rep.details["records"] = static_cast<double>(o.products + o.sales);

  child_process hq;
  uint16_t port = spawn_hq(hq, hq_process_args(exe, hq_dir, 0), deadline());
  if (port == 0) return error(errc::unavailable, "setup: the HQ process did not listen; its output:\n" + hq.output());

  fleet f(rt, sync_transport::grpc, tenant, o.stream_window_bytes);
  auto t_cfg = f.config(storage::node_role::terminal, first_terminal_id, branch);
  t_cfg.dir = root + "/terminal";
  t_cfg.upstreams = {"127.0.0.1:" + std::to_string(port)};
  t_cfg.backoff.initial_ms = 10;
  t_cfg.backoff.max_ms = 50;
  auto term = f.start(t_cfg);
  if (!term) return std::move(term).err();
  if (auto st = first_sync(**term, catalog.back().id, deadline())) return st;
  rep.setup_seconds = secs_between(setup_begin, clock_type::now());

  steady_seller seller(**term, catalog, o.seed, std::chrono::microseconds(5000));
  std::vector<double> serving_ms, listening_ms;
  rep.converged = true;
  for (size_t i = 0; i < o.restarts; ++i) {
    std::this_thread::sleep_for(std::chrono::seconds(1));  // traffic before the kill
    hq.stop(SIGKILL);
    // The terminal sees its session end before HQ comes back, so that "online" below
    // is the new session's welcome, not the old session's.
    if (!poll_until(deadline(), [&] { return !(*term)->status().online; }, std::chrono::milliseconds(1))) {
      fail(rep, "the terminal stayed online after HQ was killed");
      break;
    }
    auto t0 = clock_type::now();
    uint16_t again = spawn_hq(hq, hq_process_args(exe, hq_dir, port), deadline());
    auto t_listen = clock_type::now();
    if (again != port) {
      fail(rep, "restart " + std::to_string(i + 1) + ": HQ did not listen on port " + std::to_string(port) +
                    " again; its output:\n" + hq.output());
      break;
    }
    if (!poll_until(deadline(), [&] { return (*term)->status().online; }, std::chrono::microseconds(200))) {
      fail(rep, "restart " + std::to_string(i + 1) + ": the terminal's session was not welcomed again");
      break;
    }
    auto t_serving = clock_type::now();
    listening_ms.push_back(ms_between(t0, t_listen));
    serving_ms.push_back(ms_between(t0, t_serving));
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(500));  // traffic after the last restart
  seller.stop();

  // Untimed: every acknowledged sale reaches HQ once.
  rep.expected = seller.acked();
  bool drained_ok = poll_until(deadline(), [&] { return drained(**term); }, std::chrono::milliseconds(5));
  if (!drained_ok) fail(rep, "the terminal's outbox did not drain (" + std::to_string(pending_total(**term)) + " left)");
  int64_t at_hq = console_count(hq, "sale", std::chrono::milliseconds(o.timeout_ms));
  if (at_hq < 0) {
    fail(rep, "HQ did not answer `count sale`");
  } else {
    int64_t new_sales = at_hq - static_cast<int64_t>(o.sales);
    rep.seen = static_cast<uint64_t>(std::max<int64_t>(0, new_sales));
    rep.lost = new_sales < static_cast<int64_t>(rep.expected) ? rep.expected - rep.seen : 0;
    rep.duplicated = new_sales > static_cast<int64_t>(rep.expected) ? rep.seen - rep.expected : 0;
    if (rep.lost || rep.duplicated)
      fail(rep, "HQ holds " + std::to_string(new_sales) + " new sales, the terminal acknowledged " +
                    std::to_string(rep.expected));
  }
  if (seller.failed()) fail(rep, std::to_string(seller.failed()) + " sales failed on the terminal");
  f.stop_all();
  hq.stop(SIGTERM);

  const size_t measured = serving_ms.size();
  rep.details["restarts_measured"] = static_cast<double>(measured);
  if (auto use = storage::dir_usage(hq_dir)) rep.details["hq_store_mb"] = static_cast<double>(use->first) / 1e6;
  if (!listening_ms.empty()) {
    rep.details["listening_ms_max"] = *std::max_element(listening_ms.begin(), listening_ms.end());
    rep.details["listening_ms_min"] = *std::min_element(listening_ms.begin(), listening_ms.end());
  }
  if (!serving_ms.empty()) {
    rep.seconds = *std::max_element(serving_ms.begin(), serving_ms.end()) / 1e3;
    rep.details["serving_ms_min"] = *std::min_element(serving_ms.begin(), serving_ms.end());
  }
  set_latencies(rep, std::move(serving_ms));
  if (measured < o.restarts) fail(rep, "not every restart was measured");
  return rep;
}

sync_options with_defaults(sync_options o) {
  const bool catalogue_run = o.workload == w1 || o.workload == w2 || o.workload == w9;
  if (o.products == 0) o.products = catalogue_run ? 20'000 : 200;
  if (o.sales == 0) o.sales = o.workload == w5 ? 50 : o.workload == w9 ? 980'000 : 1'000;
  if (o.restarts == 0) o.restarts = 3;
  if (o.terminals == 0) o.terminals = o.workload == w4 ? 10 : o.workload == w5 ? 200 : 1;
  if (o.changes == 0) o.changes = o.workload == w2 ? 50 : 200;
  if (o.branches == 0) o.branches = 1;
  return o;
}

const char* target_of(const std::string& w) {
  if (w == w1) return "W1 target: <= 60 ms (baseline 190 ms)";
  if (w == w2) return "W2 target: <= 1 ms (baseline 2.1 ms)";
  if (w == w3) return "W3 target: <= 20 ms for 1,000 sales, <= 1 s for 100,000 (baseline 136 ms)";
  if (w == w4) return "W4 target: p50 <= 1 ms, p99 <= 3 ms through a branch (baseline p50 2.1, p99 10.7 one hop)";
  if (w == w5) return "W5 target: >= 60,000 sales/s, 0 lost, 0 duplicated (baseline 11,300)";
  if (w == w9) return "W9 target: HQ holding 1,000,000 records serving sessions again <= 2 s after SIGKILL";
  return "";
}

} // namespace

const std::vector<std::string>& sync_workload_names() {
  static const std::vector<std::string> names = {w1, w2, w3, w4, w5, w9};
  return names;
}

bool is_sync_workload(const std::string& name) {
  const auto& n = sync_workload_names();
  return std::find(n.begin(), n.end(), name) != n.end();
}

result<sync_report> run_sync(const sync_options& opts) {
  if (!is_sync_workload(opts.workload))
    return error(errc::invalid_argument, "unknown sync workload '" + opts.workload + "'");
  sync_report rep;
  rep.opts = with_defaults(opts);
  const auto& o = rep.opts;
  if (o.products == 0) return error(errc::invalid_argument, "--products must be at least 1");
  if (o.workload == w2 && o.changes > o.products)
    return error(errc::invalid_argument, "--changes must not exceed --products");
  if (o.terminals == 0) return error(errc::invalid_argument, "--terminals must be at least 1");
  if (o.workload == w5 && o.branches > o.terminals)
    return error(errc::invalid_argument, "--branches must not exceed --terminals");
  if (o.workload == w9 && o.transport != sync_transport::grpc)
    return error(errc::invalid_argument, "restart runs HQ as a process: --transport grpc only");
  if (o.workload != w5 && o.branches != 1)
    return error(errc::invalid_argument, "--branches applies to many-terminals only");
  if (o.timeout_ms <= 0) return error(errc::invalid_argument, "--timeout-ms must be positive");

  auto dir = temp_dir::make(o.dir, "possync-sync");
  if (!dir) return std::move(dir).err();
  if (o.keep_dir) dir->keep();
  node::runtime::options ro;
  ro.threads = o.threads;
  auto rt = node::runtime::create(ro);

  result<sync_report> out = error(errc::internal, "no workload ran");
  if (o.workload == w1) out = run_full_sync(std::move(rep), dir->path(), rt);
  else if (o.workload == w2) out = run_incremental(std::move(rep), dir->path(), rt);
  else if (o.workload == w3) out = run_offline_backlog(std::move(rep), dir->path(), rt);
  else if (o.workload == w4) out = run_push(std::move(rep), dir->path(), rt);
  else if (o.workload == w9) out = run_restart(std::move(rep), dir->path(), rt);
  else out = run_many_terminals(std::move(rep), dir->path(), rt);
  if (out) {
    out->peak_rss_mb = peak_rss_mb();
    if (o.keep_dir) out->opts.dir = dir->path();
  }
  return out;
}

std::string to_json(const sync_report& r) {
  const auto& o = r.opts;
  nlohmann::json j;
  j["workload"] = o.workload;
  j["parameters"] = {{"transport", o.transport == sync_transport::grpc ? "grpc" : "inproc"},
                     {"products", o.products},
                     {"sales", o.sales},
                     {"terminals", o.terminals},
                     {"branches", o.branches},
                     {"changes", o.changes},
                     {"restarts", o.restarts},
                     {"via_branch", o.workload == w4 || o.via_branch},
                     {"seed", o.seed}};
  j["seconds"] = r.seconds;
  if (o.workload == w3 || o.workload == w5) j["sales_per_s"] = r.sales_per_s;
  else if (o.workload != w4 && o.workload != w9) j["records_per_s"] = r.records_per_s;
  j["p50_ms"] = r.p50_ms;
  j["p99_ms"] = r.p99_ms;
  j["lost"] = r.lost;
  j["duplicated"] = r.duplicated;
  j["converged"] = r.converged;
  j["peak_rss_mb"] = r.peak_rss_mb;
  nlohmann::json d = {{"expected", r.expected}, {"seen", r.seen},          {"max_ms", r.max_ms},
                      {"setup_seconds", r.setup_seconds}};
  for (const auto& [k, v] : r.details)
    d[k] = v;
  if (!r.failure.empty()) d["failure"] = r.failure;
  if (o.keep_dir) d["dir"] = o.dir;
  j["details"] = std::move(d);
  return j.dump();
}

std::string to_text(const sync_report& r) {
  const auto& o = r.opts;
  std::ostringstream s;
  char line[256];
  std::snprintf(line, sizeof line, "%s over %s: %.3f ms measured (setup %.2f s)\n", o.workload.c_str(),
                o.transport == sync_transport::grpc ? "gRPC on 127.0.0.1" : "in-process links", r.seconds * 1e3,
                r.setup_seconds);
  s << line;
  if (r.records_per_s > 0) {
    std::snprintf(line, sizeof line, "  %.0f records/s\n", r.records_per_s);
    s << line;
  }
  if (r.sales_per_s > 0) {
    std::snprintf(line, sizeof line, "  %.0f sales/s\n", r.sales_per_s);
    s << line;
  }
  std::snprintf(line, sizeof line, "  p50 %.3f ms, p99 %.3f ms, max %.3f ms\n", r.p50_ms, r.p99_ms, r.max_ms);
  s << line;
  std::snprintf(line, sizeof line, "  %llu of %llu arrived, %llu lost, %llu duplicated, converged: %s\n",
                static_cast<unsigned long long>(r.seen), static_cast<unsigned long long>(r.expected),
                static_cast<unsigned long long>(r.lost), static_cast<unsigned long long>(r.duplicated),
                r.converged ? "yes" : "NO");
  s << line;
  if (!r.failure.empty()) s << "  failure: " << r.failure << "\n";
  std::snprintf(line, sizeof line, "  peak RSS %.1f MB\n", r.peak_rss_mb);
  s << line << "  " << target_of(o.workload);
  return s.str();
}

} // namespace possync::sim
