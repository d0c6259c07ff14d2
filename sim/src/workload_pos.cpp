// POS load workloads: pos, lanes (W6), scale (W7); idle (W10) is workload_idle.cpp.
//
// pos and scale share one world (start_world): HQ (its own database), `branches`
// branch nodes (one shared database, a store space each) and `terminals` terminal
// nodes (another shared database, a store space each), all node::node instances on
// one runtime. Terminal i sells in branch i % branches, under that branch's node.
// With an external HQ (opts.hq) only the branches and terminals run here; the
// branches dial it over gRPC.
//
// The generator runs on two driver threads, each with a schedule (a min-heap of
// events in virtual time, drawn from its own seeded rng, so the sequence of choices is
// fixed by the seed): sales (Poisson arrivals at sales_per_terminal_s per terminal,
// first arrivals spread over one mean interval; baskets of 1-5 lines, cash with
// change, card or QRIS from pos_fixture make_sale; record_sale_async on the terminal's
// store), HQ product/price edits, and for `pos` branch price overrides, stocktakes
// (stock_movement "adjust" + stock counter), one end-of-day report per terminal (lane
// 3) and terminals going offline and back (set_uplink_enabled), keeping
// offline_fraction of them away. A sampler thread records a series_point every
// sample_ms.
//
// sale -> HQ: from the record_sale_async call to HQ's durable commit of that sale
// (HQ commit notifications). With an external HQ: to the moment the branch's outbox
// no longer holds the sale, i.e. the external HQ acknowledged it as durable (polled
// every 2 ms on the branch's lane-0 outbox; the sale's outbox seq is its commit seq).
// HQ change -> terminals: from HQ's write call until each terminal's commit of that
// product (the first one after the write); per change, the time until every terminal
// holds it.

#include "possync/sim/workload_pos.hpp"
#include "node_fleet.hpp"
#include "temp_dir.hpp"
#include "workload_idle.hpp"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <queue>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include <nlohmann/json.hpp>

#include "possync/sim/pos_fixture.hpp"
#include "possync/sim/workload_local.hpp"
#include "possync/storage/store.hpp"
#include "possync/v1/pos.pb.h"

namespace possync::sim {

namespace {

using namespace fleet_detail;
using namespace std::chrono_literals;

const char* const w_pos = "pos";
const char* const w_lanes = "lanes";
const char* const w_scale = "scale";
const char* const w_idle = "idle";

constexpr core::node_id hq_id = 0x4800000000000001ULL;
constexpr int64_t initial_stock = 1'000'000'000; // thousandths: never runs out

uint64_t mix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ULL;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
  return x ^ (x >> 31);
}

// Node ids derived from the seed: role nibble, 24 bits of the seed's hash, index + 1.
core::node_id branch_node_id(uint64_t seed, size_t b) {
  return 0xB000000000000000ULL | ((mix64(seed) & 0xFFFFFFULL) << 32) | static_cast<uint64_t>(b + 1);
}
core::node_id terminal_node_id(uint64_t seed, size_t t) {
  return 0x7000000000000000ULL | ((mix64(seed) & 0xFFFFFFULL) << 32) | static_cast<uint64_t>(t + 1);
}

std::string branch_name(size_t b) {
  char buf[24];
  std::snprintf(buf, sizeof buf, "b%03zu", b + 1);
  return buf;
}

double rss_mb() {
  std::FILE* f = std::fopen("/proc/self/statm", "r");
  if (!f) return 0;
  unsigned long size = 0, resident = 0;
  int n = std::fscanf(f, "%lu %lu", &size, &resident);
  std::fclose(f);
  return n == 2 ? static_cast<double>(resident) * static_cast<double>(::sysconf(_SC_PAGESIZE)) / (1024.0 * 1024.0)
                : 0;
}

double pct(const std::vector<double>& v, double p) { return percentile(v, p); }

std::string fmt_mb(double mb) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.0f MB", mb);
  return buf;
}

void fail(pos_report& rep, const std::string& why) {
  rep.converged = false;
  if (rep.failure.empty()) rep.failure = why;
  else if (rep.failure.find(why) == std::string::npos) rep.failure += "; " + why;
}

std::string body_at(const storage::node_store& s, const core::record_key& k) {
  auto v = s.read(k);
  if (!v || !v->exists) return {};
  return v->body;
}

int64_t price_at(const storage::node_store& s, const std::string& tenant, const std::string& id) {
  auto b = body_at(s, product_key(tenant, id));
  if (b.empty()) return -1;
  v1::Product m;
  return m.ParseFromString(b) ? m.price() : -1;
}

std::string product_with_price(product_spec p, int64_t price) {
  p.price = price;
  return product_body(p);
}

// A report document of about `bytes` bytes: receipt lines as JSON text (compresses like
// a real one).
std::string report_payload(rng& r, size_t bytes, const std::string& terminal) {
  std::string out = "{\"terminal\":\"" + terminal + "\",\"lines\":[";
  out.reserve(bytes + 200);
  uint64_t n = 0;
  while (out.size() < bytes) {
    const bool first = n == 0;
    ++n;
    char line[160];
    std::snprintf(line, sizeof line,
                  "%s{\"receipt\":\"%s-%06llu\",\"items\":%llu,\"total\":%llu,\"method\":\"%s\",\"ref\":\"%016llx\"}",
                  first ? "" : ",", terminal.c_str(), static_cast<unsigned long long>(n),
                  static_cast<unsigned long long>(1 + r.below(5)), static_cast<unsigned long long>(r.below(500'000)),
                  r.below(3) == 0 ? "cash" : r.below(2) ? "card" : "qris",
                  static_cast<unsigned long long>(r.next_u64()));
    out += line;
  }
  out += "]}";
  return out;
}

std::string report_body(rng& r, size_t payload_bytes, const std::string& terminal, int64_t sales, int64_t total) {
  v1::Report m;
  m.set_kind("end_of_day");
  m.set_terminal_id(terminal);
  int64_t now = wall_ms();
  m.set_from_ms(now - 12 * 3600 * 1000);
  m.set_to_ms(now);
  m.set_sales_count(sales);
  m.set_sales_total(total);
  m.set_payload(report_payload(r, payload_bytes, terminal));
  return m.SerializeAsString();
}

// Writes device registry entries at HQ in commits of 2,000 (what node::register_device
// writes, one fsync per 2,000 devices instead of one each).
status register_devices(storage::node_store& hq, const std::vector<node::device>& devs) {
  const int64_t now = wall_ms();
  for (size_t begin = 0; begin < devs.size(); begin += 2000) {
    std::vector<storage::write_op> ops;
    for (size_t i = begin; i < std::min(devs.size(), begin + 2000); ++i) {
      const auto& d = devs[i];
      v1::Device body;
      body.set_node(d.node);
      body.set_role(static_cast<uint32_t>(d.role));
      body.set_branch(d.branch);
      body.set_name(d.name);
      body.set_registered_ms(now);
      storage::put_op op;
      op.key = core::record_key{d.tenant, "", "device", node::device_id(d.node)};
      op.body = body.SerializeAsString();
      ops.emplace_back(std::move(op));
    }
    auto w = hq.write(std::move(ops));
    if (!w) return std::move(w).err();
  }
  return {};
}

// -- tracking -----------------------------------------------------------------------

// One sale as the generator made it.
struct sale_rec {
  std::string id;
  uint32_t terminal = 0;
  time_point t0{};
};

// Sale commits at the terminals, shared with their callbacks.
struct sale_counters {
  std::atomic<uint64_t> issued{0}, committed{0}, failed{0};
  std::mutex mu;
  std::string first_failure;
};

// External HQ: when each sale left its branch's outbox (the HQ acknowledged it).
class ack_tracker {
public:
  explicit ack_tracker(size_t branches) : per_(branches) {}

  void on_changes(size_t b, const std::string& tenant, const std::vector<storage::change>& changes) {
    auto& p = per_[b];
    std::lock_guard<std::mutex> g(p.mu);
    for (const auto& c : changes) {
      if (c.key.collection != "sale" || c.key.tenant != tenant) continue;
      if (!p.ids.insert(c.key.id).second) {
        ++repeats_;
        continue;
      }
      p.q.push_back({c.seq, c.key.id});
    }
  }

  /// One poll of every branch's oldest lane-0 outbox entry.
  void poll(const std::vector<node::node*>& branches) {
    for (size_t b = 0; b < branches.size(); ++b) {
      auto& p = per_[b];
      size_t n;
      {
        std::lock_guard<std::mutex> g(p.mu);
        n = p.q.size();
      }
      if (n == 0) continue;
      auto w = branches[b]->store().outbox_window(core::lane_sales, 0, 1);
      if (!w) continue;
      uint64_t oldest = w->empty() ? UINT64_MAX : w->front().seq;
      auto now = clock_type::now();
      std::lock_guard<std::mutex> g(p.mu);
      size_t popped = 0;
      while (popped < n && !p.q.empty() && p.q.front().first < oldest) {
        acked_[b].emplace_back(std::move(p.q.front().second), now);
        p.q.pop_front();
        ++popped;
      }
      total_.fetch_add(popped);
    }
  }
  uint64_t acked() const { return total_.load(); }
  uint64_t repeats() const { return repeats_.load(); }
  /// Every acknowledged sale id with its time.
  std::unordered_map<std::string, time_point> snapshot() {
    std::unordered_map<std::string, time_point> out;
    for (size_t b = 0; b < per_.size(); ++b) {
      std::lock_guard<std::mutex> g(per_[b].mu);
      for (const auto& [id, t] : acked_[b])
        out.emplace(id, t);
    }
    return out;
  }

private:
  struct branch_state {
    std::mutex mu;
    std::deque<std::pair<uint64_t, std::string>> q;
    std::unordered_set<std::string> ids;
  };
  std::vector<branch_state> per_;
  std::map<size_t, std::vector<std::pair<std::string, time_point>>> acked_;
  std::atomic<uint64_t> total_{0}, repeats_{0};
};

// HQ product changes and when each terminal applied them.
class change_tracker {
public:
  change_tracker(std::string tenant, size_t terminals) : tenant_(std::move(tenant)), terminals_(terminals) {}

  /// A change of product `id` written at HQ at `t0`.
  void add(const std::string& id, time_point t0) {
    std::lock_guard<std::mutex> g(mu_);
    changes_.push_back(change{id, t0, {}, std::vector<uint8_t>(terminals_, 0), 0});
    latest_[id] = changes_.size() - 1;
  }
  void on_changes(size_t terminal, const std::vector<storage::change>& cs) {
    auto now = clock_type::now();
    std::lock_guard<std::mutex> g(mu_);
    for (const auto& c : cs) {
      if (c.key.collection != "product" || c.key.tenant != tenant_) continue;
      auto it = latest_.find(c.key.id);
      if (it == latest_.end()) continue;
      // This commit covers every change of the product written before it arrived.
      for (size_t i = it->second + 1; i-- > 0;) {
        auto& ch = changes_[i];
        if (ch.id != c.key.id || ch.t0 > now) continue;
        if (ch.got[terminal]) break;
        ch.got[terminal] = 1;
        ch.pair_ms.push_back(ms_between(ch.t0, now));
        ++ch.count;
        ++delivered_;
      }
    }
  }
  /// Deliveries still outstanding (change x terminal).
  uint64_t outstanding() const {
    std::lock_guard<std::mutex> g(mu_);
    return changes_.size() * terminals_ - delivered_;
  }
  size_t size() const {
    std::lock_guard<std::mutex> g(mu_);
    return changes_.size();
  }
  /// Per change: time until every terminal held it (complete changes only); every
  /// (change, terminal) delivery time; number of incomplete changes.
  void results(std::vector<double>& all_ms, std::vector<double>& pair_ms, size_t& incomplete) const {
    std::lock_guard<std::mutex> g(mu_);
    incomplete = 0;
    for (const auto& c : changes_) {
      pair_ms.insert(pair_ms.end(), c.pair_ms.begin(), c.pair_ms.end());
      if (c.count < terminals_) {
        ++incomplete;
        continue;
      }
      all_ms.push_back(*std::max_element(c.pair_ms.begin(), c.pair_ms.end()));
    }
  }

private:
  struct change {
    std::string id;
    time_point t0;
    std::vector<double> pair_ms;
    std::vector<uint8_t> got;
    size_t count = 0;
  };
  std::string tenant_;
  size_t terminals_;
  mutable std::mutex mu_;
  std::vector<change> changes_;
  std::unordered_map<std::string, size_t> latest_;
  uint64_t delivered_ = 0;
};

// -- the world of pos and scale -------------------------------------------------------

struct world {
  const pos_options& o;
  std::string root;
  std::shared_ptr<node::runtime> rt;
  fleet f;
  std::shared_ptr<storage::database> hq_db, branch_db, term_db;
  node::node* hq = nullptr; ///< nullptr with an external HQ
  std::vector<node::node*> branches;
  std::vector<node::node*> terms;
  std::vector<product_spec> catalog;

  world(const pos_options& opts, std::string r, std::shared_ptr<node::runtime> runtime)
      : o(opts), root(std::move(r)), rt(runtime),
        f(runtime, opts.transport, opts.tenant, opts.stream_window_bytes) {
    f.set_stock_pause_ms(opts.stock_pause_ms);
    f.set_terminal_stock(opts.terminal_stock);
  }
  size_t branch_of(size_t t) const { return t % o.branches; }
};

result<std::shared_ptr<storage::database>> open_db(const pos_options& o, const std::string& path) {
  storage::db_options d;
  d.in_memory = o.in_memory;
  if (!o.in_memory) d.path = path;
  return storage::database::open(d);
}

std::vector<node::device> fleet_devices(const pos_options& o) {
  std::vector<node::device> out;
  out.reserve(o.branches + o.terminals);
  for (size_t b = 0; b < o.branches; ++b)
    out.push_back(device_of(o.tenant, branch_node_id(o.seed, b), storage::node_role::branch,
                            "sim branch server " + branch_name(b), branch_name(b)));
  for (size_t t = 0; t < o.terminals; ++t)
    out.push_back(device_of(o.tenant, terminal_node_id(o.seed, t), storage::node_role::terminal,
                            "sim register " + std::to_string(t + 1), branch_name(t % o.branches)));
  return out;
}

// Waits until every node of `nodes` satisfies `ok` (checked round-robin, those done
// dropped); false at the deadline with `left` set.
template <class Ok>
bool wait_all(const std::vector<node::node*>& nodes, time_point deadline, Ok ok, size_t& left) {
  std::vector<size_t> todo(nodes.size());
  for (size_t i = 0; i < todo.size(); ++i)
    todo[i] = i;
  for (;;) {
    const auto begin = clock_type::now();
    todo.erase(std::remove_if(todo.begin(), todo.end(), [&](size_t i) { return ok(i); }), todo.end());
    left = todo.size();
    if (todo.empty()) return true;
    if (clock_type::now() >= deadline) return false;
    // Checking a thousand terminals' catalogues and stock takes a while: the checks
    // take at most half the time, leaving the rest to the nodes they wait for.
    const auto spent = std::chrono::duration_cast<std::chrono::milliseconds>(clock_type::now() - begin);
    std::this_thread::sleep_for(std::max<std::chrono::milliseconds>(todo.size() > 100 ? 20ms : 2ms, spent));
  }
}

status start_world(world& w, pos_report& rep) {
  const auto& o = w.o;
  w.catalog = generate_catalog(o.products, o.seed);
  const std::string& tenant = o.tenant;

  if (o.hq.empty()) {
    auto db = open_db(o, w.root + "/hq");
    if (!db) return std::move(db).err();
    w.hq_db = *db;
    auto c = w.f.config(storage::node_role::hq, hq_id, "");
    c.db = w.hq_db;
    auto hq = w.f.start(std::move(c));
    if (!hq) return std::move(hq).err();
    w.hq = *hq;
    // Devices first, then the catalogue: once a branch holds the last product (same
    // feed, later seq) it holds every device entry too.
    if (auto st = register_devices(w.hq->store(), fleet_devices(o))) return st;
    if (auto st = load_catalog(w.hq->store(), tenant, branch_name(0), w.catalog, initial_stock, 1000)) return st;
    std::vector<storage::write_op> ops;
    for (size_t b = 1; b < o.branches; ++b)
      for (const auto& p : w.catalog) {
        ops.emplace_back(storage::counter_op{stock_key(tenant, branch_name(b), p.id), initial_stock});
        if (ops.size() >= 5000) {
          auto r = w.hq->store().write(std::move(ops));
          if (!r) return std::move(r).err();
          ops.clear();
        }
      }
    if (!ops.empty()) {
      auto r = w.hq->store().write(std::move(ops));
      if (!r) return std::move(r).err();
    }
  }

  auto bdb = open_db(o, w.root + "/branches");
  if (!bdb) return std::move(bdb).err();
  w.branch_db = *bdb;
  for (size_t b = 0; b < o.branches; ++b) {
    auto c = w.f.config(storage::node_role::branch, branch_node_id(o.seed, b), branch_name(b));
    c.db = w.branch_db;
    c.space = static_cast<uint32_t>(b + 1);
    if (w.hq) {
      w.f.attach(c, *w.hq, "branch-" + branch_name(b));
    } else {
      c.upstreams = {o.hq};
      c.backoff.max_ms = 2000;
    }
    auto n = w.f.start(std::move(c));
    if (!n) return std::move(n).err();
    w.branches.push_back(*n);
  }
  size_t left = 0;
  const std::string last_product = w.catalog.back().id;
  // A branch is ready when it holds the registry entries of its terminals.
  auto branch_ready = [&](size_t b) {
    auto& n = *w.branches[b];
    if (!caught_up(n)) return false;
    if (w.hq) return price_at(n.store(), tenant, last_product) >= 0;
    size_t last_t = b;
    while (last_t + o.branches < o.terminals) last_t += o.branches;
    if (last_t >= o.terminals) return true;
    auto v = n.store().read(core::record_key{tenant, "", "device", node::device_id(terminal_node_id(o.seed, last_t))});
    return v && v->exists;
  };
  // Each setup wait has its own timeout_ms.
  if (!wait_all(w.branches, clock_type::now() + std::chrono::milliseconds(o.timeout_ms), branch_ready, left)) {
    std::string why = std::to_string(left) + " of " + std::to_string(o.branches) +
                      " branches did not finish their first sync (registry of their terminals";
    if (w.hq) why += ", catalogue";
    why += ")";
    if (!w.branches.empty() && !w.branches.front()->status().last_error.empty())
      why += "; first branch: " + w.branches.front()->status().last_error;
    return error(errc::deadline_exceeded, "setup: " + why);
  }

  auto tdb = open_db(o, w.root + "/terminals");
  if (!tdb) return std::move(tdb).err();
  w.term_db = *tdb;
  // Terminals start from 4 threads, so that their store opens share fsyncs, in waves of
  // `wave`: each wave downloads its catalogue and stock before the next one starts. All
  // at once, thousands of first syncs on 2 cores starve the sessions' timers, sessions
  // time out and restart their downloads, and setup never ends (W7 at 10,000 did that).
  const size_t wave = 500;
  auto starting = clock_type::now();
  w.terms.assign(o.terminals, nullptr);
  std::mutex err_mu;
  std::optional<error> first_err;
  auto term_ready = [&](node::node& n) {
    if (!caught_up(n)) return false;
    return !w.hq || price_at(n.store(), tenant, last_product) >= 0;
  };
  for (size_t from = 0; from < o.terminals; from += wave) {
    const size_t to = std::min(o.terminals, from + wave);
    std::vector<std::thread> starters;
    const size_t nthreads = std::min<size_t>(4, to - from);
    for (size_t k = 0; k < nthreads; ++k)
      starters.emplace_back([&, k] {
        for (size_t t = from + k; t < to; t += nthreads) {
          {
            std::lock_guard<std::mutex> g(err_mu);
            if (first_err) return;
          }
          auto c = w.f.config(storage::node_role::terminal, terminal_node_id(o.seed, t), branch_name(w.branch_of(t)));
          c.db = w.term_db;
          c.space = static_cast<uint32_t>(t + 1);
          c.uplink_thread = o.terminals <= 64;  // a thread each is fine for a few, not for thousands
          w.f.attach(c, *w.branches[w.branch_of(t)], "terminal-" + std::to_string(t + 1));
          auto n = w.f.start(std::move(c));
          if (!n) {
            std::lock_guard<std::mutex> g(err_mu);
            if (!first_err) first_err = std::move(n).err();
            return;
          }
          w.terms[t] = *n;
          if (o.max_rss_mb > 0 && t % 64 == 0 && rss_mb() > o.max_rss_mb) {
            std::lock_guard<std::mutex> g(err_mu);
            if (!first_err)
              first_err = error(errc::resource_exhausted, "setup: RSS over " + fmt_mb(o.max_rss_mb) +
                                                              " after starting " + std::to_string(t + 1) +
                                                              " terminals (--max-rss-mb)");
            return;
          }
        }
      });
    for (auto& th : starters)
      th.join();
    if (first_err) return *first_err;
    std::vector<node::node*> started(w.terms.begin() + static_cast<std::ptrdiff_t>(from),
                                     w.terms.begin() + static_cast<std::ptrdiff_t>(to));
    const auto deadline = clock_type::now() + std::chrono::milliseconds(o.timeout_ms);  // per wave
    if (!wait_all(started, deadline, [&](size_t i) { return term_ready(*started[i]); }, left))
      return error(errc::deadline_exceeded, "setup: " + std::to_string(left) + " of terminals " +
                                                std::to_string(from + 1) + "-" + std::to_string(to) + " (of " +
                                                std::to_string(o.terminals) + ") did not finish their first sync");
  }
  rep.details["terminals_start_seconds"] = secs_between(starting, clock_type::now());
  return {};
}

// -- the generator ---------------------------------------------------------------------

enum class ev_kind : uint8_t { sale, hq_change, override_price, stocktake, report, go_offline, come_back };

struct event {
  double at_s = 0; ///< virtual time since the phase began
  ev_kind kind = ev_kind::sale;
  uint32_t index = 0; ///< terminal (sale, report, offline) or branch
  bool operator>(const event& e) const { return at_s > e.at_s; }
};

// Shared by the drivers and the callbacks of their writes.
struct gen_state {
  sale_counters sales;
  std::atomic<uint64_t> hq_changes{0}, overrides{0}, stocktakes{0}, reports{0}, offline_events{0};
  std::atomic<uint64_t> write_failures{0};
  std::atomic<uint32_t> offline_now{0};
  std::mutex mu; ///< guards the expected stock adjustments and the override keys
  std::map<std::pair<std::string, std::string>, int64_t> adjusted; ///< (branch, product) -> sum of deltas
  std::map<size_t, std::set<std::string>> overridden;               ///< branch -> product ids with a price
  std::atomic<double> max_behind_ms{0};
  std::atomic<bool> abort{false}; ///< RSS went over max_rss_mb: stop generating, stop waiting
};

class driver {
public:
  driver(world& w, std::shared_ptr<gen_state> g, change_tracker& ch, size_t id, size_t ndrivers, time_point t0,
         double duration_s)
      : w_(w), gs_(std::move(g)), g_(*gs_), ch_(ch), id_(id), n_(ndrivers), t0_(t0), dur_(duration_s),
        r_(mix64(w.o.seed * 0x100 + id + 1)) {
    const auto& o = w.o;
    const bool pos = o.workload == w_pos;
    receipts_.assign(o.terminals, 0);
    count_.assign(o.terminals, 0);
    total_.assign(o.terminals, 0);
    offline_.assign(o.terminals, 0);
    if (o.sales_per_terminal_s > 0)
      for (size_t t = id; t < o.terminals; t += n_)
        push(uniform() / o.sales_per_terminal_s, ev_kind::sale, t);
    if (pos)
      for (size_t t = id; t < o.terminals; t += n_)
        push(dur_ * (0.3 + 0.6 * uniform()), ev_kind::report, t);
    if (id == 0) {
      if (w.hq && o.hq_changes_per_s > 0) push(expo(o.hq_changes_per_s), ev_kind::hq_change, 0);
      if (pos && o.overrides_per_s > 0) push(expo(o.overrides_per_s), ev_kind::override_price, 0);
      if (pos && o.stocktakes_per_s > 0) push(expo(o.stocktakes_per_s), ev_kind::stocktake, 0);
      if (pos && o.offline_fraction > 0) {
        size_t k = static_cast<size_t>(std::lround(o.offline_fraction * static_cast<double>(o.terminals)));
        for (size_t i = 0; i < k; ++i)
          push(0.5 * uniform(), ev_kind::go_offline, 0);
      }
    }
  }

  void run(const std::atomic<bool>& stop) {
    while (!q_.empty() && !stop.load()) {
      event e = q_.top();
      if (e.at_s >= dur_) break;
      auto due = t0_ + std::chrono::duration_cast<clock_type::duration>(std::chrono::duration<double>(e.at_s));
      auto now = clock_type::now();
      if (now < due) {
        std::this_thread::sleep_until(std::min(due, now + 50ms));
        continue;
      }
      double behind = ms_between(due, now);
      double prev = g_.max_behind_ms.load();
      while (behind > prev && !g_.max_behind_ms.compare_exchange_weak(prev, behind)) {
      }
      q_.pop();
      fire(e);
    }
  }

  std::vector<sale_rec>& sales() { return log_; }

private:
  double uniform() { return static_cast<double>(r_.next_u64() >> 11) * 0x1.0p-53; }
  double expo(double rate) { return -std::log(1.0 - uniform()) / rate; }
  void push(double at, ev_kind k, size_t index) { q_.push(event{at, k, static_cast<uint32_t>(index)}); }

  void fire(const event& e) {
    const auto& o = w_.o;
    switch (e.kind) {
    case ev_kind::sale:
      sale(e.index);
      push(e.at_s + expo(o.sales_per_terminal_s), ev_kind::sale, e.index);
      break;
    case ev_kind::hq_change:
      hq_change();
      push(e.at_s + expo(o.hq_changes_per_s), ev_kind::hq_change, 0);
      break;
    case ev_kind::override_price:
      override_price();
      push(e.at_s + expo(o.overrides_per_s), ev_kind::override_price, 0);
      break;
    case ev_kind::stocktake:
      stocktake();
      push(e.at_s + expo(o.stocktakes_per_s), ev_kind::stocktake, 0);
      break;
    case ev_kind::report:
      report(e.index);
      break;
    case ev_kind::go_offline: {
      // A random online terminal leaves for 1-5 s; when it comes back another leaves.
      size_t t = r_.below(o.terminals);
      for (size_t tries = 0; tries < o.terminals && offline_[t]; ++tries)
        t = (t + 1) % o.terminals;
      if (offline_[t]) break;
      offline_[t] = 1;
      w_.terms[t]->set_uplink_enabled(false);
      g_.offline_now.fetch_add(1);
      g_.offline_events.fetch_add(1);
      push(e.at_s + 1.0 + 4.0 * uniform(), ev_kind::come_back, t);
      break;
    }
    case ev_kind::come_back:
      offline_[e.index] = 0;
      w_.terms[e.index]->set_uplink_enabled(true);
      g_.offline_now.fetch_sub(1);
      push(e.at_s + 0.1 * uniform(), ev_kind::go_offline, 0);
      break;
    }
  }

  void sale(size_t t) {
    auto& n = *w_.terms[t];
    sale_rec rec;
    rec.id = n.store().new_id();
    rec.terminal = static_cast<uint32_t>(t);
    sale_context ctx;
    ctx.terminal_id = "T" + std::to_string(t + 1);
    ctx.cashier_id = "cashier-" + std::to_string(t % 7 + 1);
    ctx.receipt_no = ++receipts_[t];
    ctx.time_ms = wall_ms();
    auto d = make_sale(r_, w_.catalog, rec.id, ctx, 1, 5);
    ++count_[t];
    total_[t] += d.total;
    core::record_key key{w_.o.tenant, branch_name(w_.branch_of(t)), "sale", rec.id};
    rec.t0 = clock_type::now();
    log_.push_back(std::move(rec));
    g_.sales.issued.fetch_add(1);
    auto g = gs_;
    n.store().record_sale_async(key, std::move(d.body), [g](result<storage::commit_result> r) {
      if (r) {
        g->sales.committed.fetch_add(1);
        return;
      }
      g->sales.failed.fetch_add(1);
      std::lock_guard<std::mutex> l(g->sales.mu);
      if (g->sales.first_failure.empty()) g->sales.first_failure = r.err().to_string();
    });
  }

  std::function<void(result<storage::commit_result>)> count_failure() {
    auto g = gs_;
    return [g](result<storage::commit_result> r) {
      if (!r) g->write_failures.fetch_add(1);
    };
  }

  void hq_change() {
    // Successive changes walk the catalogue with a stride, so that a product changes
    // again only after every other did.
    const auto& cat = w_.catalog;
    size_t i = (changes_ * 7919 + 13) % cat.size();
    ++changes_;
    int64_t price = cat[i].price + static_cast<int64_t>(changes_) * 100;
    storage::put_op put;
    put.key = product_key(w_.o.tenant, cat[i].id);
    put.body = product_with_price(cat[i], price);
    ch_.add(cat[i].id, clock_type::now());
    g_.hq_changes.fetch_add(1);
    w_.hq->store().write_async({std::move(put)}, count_failure());
  }

  void override_price() {
    size_t b = r_.below(w_.branches.size());
    const auto& p = w_.catalog[r_.below(w_.catalog.size())];
    v1::Price m;
    m.set_product_id(p.id);
    m.set_price(p.price - p.price / 10);
    m.set_valid_from_ms(wall_ms());
    m.set_reason("branch promotion");
    storage::put_op put;
    put.key = core::record_key{w_.o.tenant, branch_name(b), "price", p.id};
    put.body = m.SerializeAsString();
    {
      std::lock_guard<std::mutex> l(g_.mu);
      g_.overridden[b].insert(p.id);
    }
    g_.overrides.fetch_add(1);
    w_.branches[b]->store().write_async({std::move(put)}, count_failure());
  }

  void stocktake() {
    size_t b = r_.below(w_.branches.size());
    const auto& p = w_.catalog[r_.below(w_.catalog.size())];
    auto& store = w_.branches[b]->store();
    int64_t delta = r_.between(-5, 5) * 1000;
    if (delta == 0) delta = 1000;
    auto level = store.stock_level(w_.o.tenant, branch_name(b), p.id);
    v1::StockMovement m;
    m.set_product_id(p.id);
    m.set_delta(delta);
    m.set_kind("adjust");
    m.set_reason("stocktake");
    m.set_user_id("supervisor-1");
    m.set_time_ms(wall_ms());
    m.set_counted((level ? *level : 0) + delta);
    storage::put_op put;
    put.key = core::record_key{w_.o.tenant, branch_name(b), "stock_movement", store.new_id()};
    put.body = m.SerializeAsString();
    // The store applies a stock_movement's delta to the stock counter in the same commit.
    std::vector<storage::write_op> ops;
    ops.emplace_back(std::move(put));
    {
      std::lock_guard<std::mutex> l(g_.mu);
      g_.adjusted[{branch_name(b), p.id}] += delta;
    }
    g_.stocktakes.fetch_add(1);
    store.write_async(std::move(ops), count_failure());
  }

  void report(size_t t) {
    auto& store = w_.terms[t]->store();
    storage::put_op put;
    put.key = core::record_key{w_.o.tenant, branch_name(w_.branch_of(t)), "report", store.new_id()};
    put.body = report_body(r_, 16 * 1024, "T" + std::to_string(t + 1), count_[t], total_[t]);
    g_.reports.fetch_add(1);
    store.write_async({std::move(put)}, count_failure());
  }

  world& w_;
  std::shared_ptr<gen_state> gs_; ///< shared with the callbacks of the writes
  gen_state& g_;
  change_tracker& ch_;
  size_t id_, n_;
  time_point t0_;
  double dur_;
  rng r_;
  std::priority_queue<event, std::vector<event>, std::greater<event>> q_;
  std::vector<uint64_t> receipts_;
  std::vector<int64_t> count_, total_;
  std::vector<uint8_t> offline_;
  std::vector<sale_rec> log_;
  uint64_t changes_ = 0;
};

// Every sample_ms: rates, pending and lag per lane, online terminals, RSS.
class sampler {
public:
  sampler(world& w, gen_state& g, change_tracker& ch, std::function<uint64_t()> at_hq, time_point t0)
      : w_(w), g_(g), ch_(ch), at_hq_(std::move(at_hq)), t0_(t0), thread_([this] { loop(); }) {}
  ~sampler() { finish(); }
  std::vector<series_point> finish() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
    return points_;
  }
  double peak_rss() const { return peak_rss_; }

private:
  void loop() {
    auto period = std::chrono::milliseconds(std::max<int64_t>(10, w_.o.sample_ms));
    auto next = t0_ + period;
    uint64_t made_before = 0, hq_before = 0;
    time_point before = t0_;
    while (!stop_.load()) {
      std::this_thread::sleep_until(std::min(next, clock_type::now() + 20ms));
      if (clock_type::now() < next) continue;
      auto now = clock_type::now();
      next += period;
      series_point p;
      p.t_s = secs_between(t0_, now);
      double dt = std::max(1e-6, secs_between(before, now));
      uint64_t made = g_.sales.committed.load(), hq = at_hq_();
      p.sales_per_s = static_cast<double>(made - made_before) / dt;
      p.sales_at_hq_per_s = static_cast<double>(hq - std::min(hq, hq_before)) / dt;
      made_before = made;
      hq_before = hq;
      before = now;
      auto add = [&](node::node* n) {
        auto pend = n->store().pending();
        for (size_t l = 0; l < core::lane_count; ++l)
          p.pending[l] += pend[l];
      };
      for (auto* n : w_.branches)
        add(n);
      uint32_t online = 0;
      for (auto* n : w_.terms) {
        add(n);
        if (n->status().online) ++online;
      }
      p.online_terminals = online;
      p.lag_records[core::lane_sales] = made - std::min(made, hq);
      p.lag_records[core::lane_catalog] = ch_.outstanding();
      p.rss_mb = rss_mb();
      peak_rss_ = std::max(peak_rss_, p.rss_mb);
      if (w_.o.max_rss_mb > 0 && p.rss_mb > w_.o.max_rss_mb) g_.abort = true;
      points_.push_back(p);
    }
  }

  world& w_;
  gen_state& g_;
  change_tracker& ch_;
  std::function<uint64_t()> at_hq_;
  time_point t0_;
  std::atomic<bool> stop_{false};
  std::vector<series_point> points_;
  double peak_rss_ = 0;
  std::thread thread_;
};

// -- pos and scale -----------------------------------------------------------------------

result<pos_report> run_load(pos_report rep, const std::string& root, std::shared_ptr<node::runtime> rt) {
  const auto& o = rep.opts;
  auto setup_begin = clock_type::now();
  world w(o, root, rt);
  // Leaves first, in parallel (10,000 sequential stops take minutes), then the rest.
  auto stop_fleet = [&] {
    std::vector<std::thread> th;
    for (size_t k = 0; k < 4; ++k)
      th.emplace_back([&, k] {
        for (size_t t = k; t < w.terms.size(); t += 4)
          if (w.terms[t]) w.terms[t]->stop();
      });
    for (auto& x : th)
      x.join();
    w.f.stop_all();
  };
  if (auto st = start_world(w, rep)) {
    // A setup that did not finish in time is a result (converged = false), not an error.
    if (st.code != errc::deadline_exceeded && st.code != errc::resource_exhausted) return st;
    rep.converged = false;
    rep.failure = st.message;
    rep.setup_seconds = secs_between(setup_begin, clock_type::now());
    rep.peak_rss_mb = peak_rss_mb();
    stop_fleet();
    return rep;
  }
  const std::string& tenant = o.tenant;

  // Watchers: HQ's sale commits (or the branches' outbox acks), each terminal's
  // product commits, HQ's reports.
  std::unique_ptr<subscription> hq_sales, hq_reports;
  std::unique_ptr<ack_tracker> acks;
  std::vector<uint64_t> branch_subs;
  if (w.hq) {
    hq_sales = std::make_unique<subscription>(*w.hq, tenant, "sale");
    hq_reports = std::make_unique<subscription>(*w.hq, tenant, "report");
  } else {
    acks = std::make_unique<ack_tracker>(w.branches.size());
    for (size_t b = 0; b < w.branches.size(); ++b) {
      auto* a = acks.get();
      branch_subs.push_back(w.branches[b]->subscribe(
          [a, b, tenant](const std::vector<storage::change>& c) { a->on_changes(b, tenant, c); }));
    }
  }
  auto changes = std::make_shared<change_tracker>(tenant, w.terms.size());
  std::vector<uint64_t> term_subs;
  term_subs.reserve(w.terms.size());
  for (size_t t = 0; t < w.terms.size(); ++t)
    term_subs.push_back(
        w.terms[t]->subscribe([changes, t](const std::vector<storage::change>& c) { changes->on_changes(t, c); }));
  auto unsubscribe_all = [&] {
    for (size_t t = 0; t < term_subs.size(); ++t)
      w.terms[t]->unsubscribe(term_subs[t]);
    for (size_t b = 0; b < branch_subs.size(); ++b)
      w.branches[b]->unsubscribe(branch_subs[b]);
    term_subs.clear();
    branch_subs.clear();
  };
  rep.setup_seconds = secs_between(setup_begin, clock_type::now());

  // The measured phase.
  auto gp = std::make_shared<gen_state>();
  gen_state& g = *gp;
  const double duration_s = static_cast<double>(o.duration_ms) / 1000.0;
  std::function<uint64_t()> at_hq = [&]() -> uint64_t {
    return hq_sales ? (*hq_sales)->distinct() : acks->acked();
  };
  std::atomic<bool> stop_polling{false};
  std::thread poller;
  if (acks)
    poller = std::thread([&] {
      while (!stop_polling.load()) {
        acks->poll(w.branches);
        std::this_thread::sleep_for(2ms);
      }
    });
  const size_t ndrivers = std::min<size_t>(2, std::max<size_t>(1, o.terminals));
  auto t0 = clock_type::now() + 20ms;
  std::vector<std::unique_ptr<driver>> drivers;
  for (size_t d = 0; d < ndrivers; ++d)
    drivers.push_back(std::make_unique<driver>(w, gp, *changes, d, ndrivers, t0, duration_s));
  auto smp = std::make_unique<sampler>(w, g, *changes, at_hq, t0);
  std::atomic<bool>& stop_drivers = g.abort;
  {
    std::vector<std::thread> threads;
    for (auto& d : drivers)
      threads.emplace_back([&d, &stop_drivers] { d->run(stop_drivers); });
    for (auto& th : threads)
      th.join();
  }
  auto t_end = clock_type::now();
  rep.seconds = secs_between(t0, t_end);

  // Every terminal back online; wait for the sales (bounded), then for convergence.
  for (auto* t : w.terms)
    t->set_uplink_enabled(true);
  auto deadline = t_end + std::chrono::milliseconds(o.timeout_ms);
  rep.converged = true;
  poll_until(deadline, [&] { return g.sales.committed.load() + g.sales.failed.load() >= g.sales.issued.load(); },
             1ms);
  const uint64_t committed = g.sales.committed.load();
  bool all_sales = poll_until(deadline, [&] { return g.abort.load() || at_hq() >= committed; }, 1ms);
  if (g.abort) {
    fail(rep, "stopped: RSS over " + fmt_mb(o.max_rss_mb) + " (--max-rss-mb)");
    deadline = clock_type::now();
  }
  auto t_sales = clock_type::now();
  rep.details["drain_seconds"] = secs_between(t_end, t_sales);

  std::vector<sale_rec> log;
  for (auto& d : drivers) {
    auto& s = d->sales();
    std::move(s.begin(), s.end(), std::back_inserter(log));
  }
  // Sales at HQ (or acknowledged by it): lost, duplicated, latency.
  std::vector<double> lat;
  lat.reserve(log.size());
  uint64_t seen = 0, lost = 0, dup = 0;
  time_point last_arrival = t0;
  {
    std::unordered_map<std::string, std::pair<time_point, size_t>> snap;
    if (hq_sales) snap = (*hq_sales)->snapshot();
    else
      for (auto& [id, t] : acks->snapshot())
        snap.emplace(id, std::make_pair(t, size_t{1}));
    std::unordered_set<std::string> made;
    made.reserve(log.size());
    for (const auto& s : log) {
      made.insert(s.id);
      auto it = snap.find(s.id);
      if (it == snap.end()) {
        bool there = false;
        if (w.hq) {
          auto v = w.hq->store().get(core::record_key{tenant, branch_name(w.branch_of(s.terminal)), "sale", s.id});
          there = v && *v;
        }
        if (there) ++seen;
        else ++lost;
        continue;
      }
      ++seen;
      dup += it->second.second - 1;
      last_arrival = std::max(last_arrival, it->second.first);
      lat.push_back(ms_between(s.t0, it->second.first));
    }
    for (const auto& [id, v] : snap)
      if (!made.count(id)) dup += v.second;
    if (acks) dup += acks->repeats();
  }
  // A failed local commit is not a sale (the POS app was told so): not lost.
  const uint64_t failed = g.sales.failed.load();
  rep.expected = log.size() - failed;
  rep.seen = seen;
  rep.lost = lost > failed ? lost - failed : 0;
  rep.duplicated = dup;
  rep.sales_per_s = rep.seconds > 0 ? static_cast<double>(std::min<uint64_t>(seen, committed)) /
                                          std::max(rep.seconds, secs_between(t0, last_arrival))
                                    : 0;
  if (!lat.empty()) {
    rep.p50_ms = pct(lat, 50);
    rep.p99_ms = pct(lat, 99);
    rep.max_ms = *std::max_element(lat.begin(), lat.end());
  }
  if (failed) fail(rep, std::to_string(failed) + " sale commits failed at terminals: " + g.sales.first_failure);
  if (!all_sales)
    fail(rep, (w.hq ? "HQ holds " : "HQ acknowledged ") + std::to_string(at_hq()) + " of " +
                  std::to_string(committed) + " sales at the timeout");
  if (rep.lost || rep.duplicated) fail(rep, "sales lost or duplicated at HQ");

  // Convergence: every node's outbox drains; every terminal holds what its branch holds
  // (products, the branch's price overrides) and every branch what HQ holds.
  size_t left = 0;
  auto settle_begin = clock_type::now();
  std::vector<node::node*> all;
  all.insert(all.end(), w.branches.begin(), w.branches.end());
  all.insert(all.end(), w.terms.begin(), w.terms.end());
  if (!wait_all(all, deadline, [&](size_t i) { return caught_up(*all[i]) && drained(*all[i]); }, left))
    fail(rep, std::to_string(left) + " nodes not caught up with an empty outbox at the timeout");
  std::vector<core::record_key> catalog_keys;
  for (const auto& p : w.catalog)
    catalog_keys.push_back(product_key(tenant, p.id));
  std::map<size_t, std::vector<core::record_key>> branch_keys;
  {
    std::lock_guard<std::mutex> l(g.mu);
    for (const auto& [b, ids] : g.overridden)
      for (const auto& id : ids)
        branch_keys[b].push_back(core::record_key{tenant, branch_name(b), "price", id});
  }
  auto same = [&](node::node& a, node::node& ref, const std::vector<core::record_key>& keys) {
    for (const auto& k : keys)
      if (body_at(a.store(), k) != body_at(ref.store(), k)) return false;
    return true;
  };
  // Stock as a register shows it: the level of every product in the branch.
  auto same_stock = [&](node::node& a, node::node& ref, const std::string& br) {
    for (const auto& p : w.catalog) {
      auto x = a.store().stock_level(tenant, br, p.id);
      auto y = ref.store().stock_level(tenant, br, p.id);
      if (!x || !y || *x != *y) return false;
    }
    return true;
  };
  auto node_converged = [&](size_t i) {
    if (i < w.branches.size()) {
      if (!w.hq) return true;
      return same(*w.branches[i], *w.hq, catalog_keys) && same(*w.branches[i], *w.hq, branch_keys[i]) &&
             same_stock(*w.branches[i], *w.hq, branch_name(i));
    }
    size_t t = i - w.branches.size();
    auto& br = *w.branches[w.branch_of(t)];
    return same(*w.terms[t], br, catalog_keys) && same(*w.terms[t], br, branch_keys[w.branch_of(t)]) &&
           (!o.terminal_stock || same_stock(*w.terms[t], br, branch_name(w.branch_of(t))));
  };
  size_t stale = 0;
  if (!wait_all(all, deadline, node_converged, stale))
    fail(rep, std::to_string(stale) +
                  " nodes hold other products, prices or stock than their upstream at the timeout");
  rep.details["stale_nodes"] = static_cast<double>(stale);
  rep.details["converge_seconds"] = secs_between(settle_begin, clock_type::now());

  // HQ changes at every terminal.
  std::vector<double> change_all, change_pairs;
  size_t incomplete = 0;
  changes->results(change_all, change_pairs, incomplete);
  if (!change_all.empty()) {
    rep.change_p50_ms = pct(change_all, 50);
    rep.change_p99_ms = pct(change_all, 99);
  }
  if (!change_pairs.empty()) {
    rep.details["change_one_terminal_p50_ms"] = pct(change_pairs, 50);
    rep.details["change_one_terminal_p99_ms"] = pct(change_pairs, 99);
  }
  if (incomplete) fail(rep, std::to_string(incomplete) + " HQ changes never reached every terminal");

  // Reports at HQ; stock at HQ = initial - sold + adjusted.
  const uint64_t reports = g.reports.load();
  if (hq_reports && reports) {
    bool ok = (*hq_reports)->wait_distinct(reports, deadline);
    rep.details["reports_at_hq"] = static_cast<double>((*hq_reports)->distinct());
    if (!ok) fail(rep, "HQ holds " + std::to_string((*hq_reports)->distinct()) + " of " + std::to_string(reports) +
                           " end-of-day reports");
  }
  if (w.hq) {
    // Sold quantities come from the sale bodies HQ holds.
    std::map<std::pair<std::string, std::string>, int64_t> want;
    {
      std::lock_guard<std::mutex> l(g.mu);
      want = g.adjusted;
    }
    for (const auto& s : log) {
      const std::string br = branch_name(w.branch_of(s.terminal));
      auto v = w.hq->store().read(core::record_key{tenant, br, "sale", s.id});
      if (!v || !v->exists) continue;
      auto lines = parse_sale_lines(v->body);
      if (!lines) continue;
      for (const auto& l : *lines)
        want[{br, l.product_id}] -= l.quantity;
    }
    size_t bad = 0;
    std::string example;
    poll_until(deadline, [&] {
      bad = 0;
      for (const auto& [where, delta] : want) {
        auto got = w.hq->store().stock_level(tenant, where.first, where.second);
        if (!got || *got != initial_stock + delta) {
          if (!bad)
            example = where.first + "/" + where.second + " holds " + (got ? std::to_string(*got - initial_stock) : "?") +
                      " (initial + that), expected " + std::to_string(delta);
          ++bad;
        }
      }
      return bad == 0;
    }, 5ms);
    rep.details["stock_mismatches"] = static_cast<double>(bad);
    if (bad) fail(rep, std::to_string(bad) + " stock levels at HQ differ from initial - sold + adjusted (" + example + ")");
  }
  stop_polling = true;
  if (poller.joinable()) poller.join();
  auto series = smp->finish();
  unsubscribe_all();

  rep.details["sales_made"] = static_cast<double>(committed);
  rep.details["sales_offered_per_s"] = static_cast<double>(o.terminals) * o.sales_per_terminal_s;
  rep.details["sales_made_per_s"] = rep.seconds > 0 ? static_cast<double>(committed) / rep.seconds : 0;
  rep.details["hq_changes"] = static_cast<double>(g.hq_changes.load());
  rep.details["generator_max_behind_ms"] = g.max_behind_ms.load();
  rep.details["write_failures"] = static_cast<double>(g.write_failures.load());
  if (g.write_failures.load()) fail(rep, std::to_string(g.write_failures.load()) + " generator writes failed");
  if (o.workload == w_pos) {
    rep.details["overrides"] = static_cast<double>(g.overrides.load());
    rep.details["stocktakes"] = static_cast<double>(g.stocktakes.load());
    rep.details["reports"] = static_cast<double>(reports);
    rep.details["offline_events"] = static_cast<double>(g.offline_events.load());
  }
  rep.peak_rss_mb = std::max(peak_rss_mb(), smp->peak_rss());
  rep.record.series = std::move(series);
  rep.record.latencies.push_back({"sale -> HQ", std::move(lat)});
  rep.record.latencies.push_back({"HQ change -> every terminal", std::move(change_all)});
  rep.record.latencies.push_back({"HQ change -> one terminal", std::move(change_pairs)});
  hq_sales.reset();
  hq_reports.reset();
  auto stop_begin = clock_type::now();
  stop_fleet();
  rep.details["stop_seconds"] = secs_between(stop_begin, clock_type::now());
  return rep;
}

// -- lanes (W6) ---------------------------------------------------------------------------

result<pos_report> run_lanes(pos_report rep, const std::string& root, std::shared_ptr<node::runtime> rt) {
  const auto& o = rep.opts;
  const std::string& tenant = o.tenant;
  auto setup_begin = clock_type::now();
  auto deadline = [&] { return clock_type::now() + std::chrono::milliseconds(o.timeout_ms); };
  const size_t samples = 50;
  const size_t max_rounds = 12;
  const size_t report_bytes = o.report_bytes;
  const std::string br = branch_name(0);
  fleet f(rt, o.transport, tenant, o.stream_window_bytes);
  f.set_stock_pause_ms(o.stock_pause_ms);
  f.set_terminal_stock(o.terminal_stock);

  auto hdb = open_db(o, root + "/hq");
  if (!hdb) return std::move(hdb).err();
  auto c = f.config(storage::node_role::hq, hq_id, "");
  c.db = *hdb;
  auto hq = f.start(std::move(c));
  if (!hq) return std::move(hq).err();
  std::vector<node::device> devs;
  for (size_t r = 0; r <= max_rounds; ++r)
    devs.push_back(device_of(tenant, terminal_node_id(o.seed, r), storage::node_role::terminal,
                             "lanes register " + std::to_string(r + 1), br));
  if (auto st = register_devices((*hq)->store(), devs)) return st;
  auto catalog = generate_catalog(o.products, o.seed);
  if (auto st = load_catalog((*hq)->store(), tenant, br, catalog, initial_stock, 1000)) return st;
  auto tdb = open_db(o, root + "/terminals");
  if (!tdb) return std::move(tdb).err();
  subscription hq_sales(**hq, tenant, "sale");
  subscription hq_reports(**hq, tenant, "report");
  rep.setup_seconds = secs_between(setup_begin, clock_type::now());

  rng r(mix64(o.seed ^ 0x1A5E5ULL));
  size_t made = 0;
  std::vector<double> local_ms;  // each sale's durable commit on the terminal (part of its latency)
  // One sale on `term`, recorded durably, then waited for at HQ: its latency in ms, or
  // a negative value on timeout.
  auto one_sale = [&](node::node& term, uint64_t receipt) -> double {
    std::string id = term.store().new_id();
    sale_context ctx;
    ctx.terminal_id = "T1";
    ctx.receipt_no = receipt;
    ctx.time_ms = wall_ms();
    auto d = make_sale(r, catalog, id, ctx, 1, 5);
    auto t0 = clock_type::now();
    auto w = term.store().record_sale(core::record_key{tenant, br, "sale", id}, std::move(d.body));
    if (!w) return -1;
    local_ms.push_back(ms_between(t0, clock_type::now()));
    ++made;
    if (!hq_sales->wait_changes(id, 1, deadline())) return -1;
    return ms_between(t0, *hq_sales->change_time(id, 0));
  };

  // Terminal k (0 = the idle one) in store space k + 1; with a report, its store holds
  // it (queued in lane 3) before the node starts.
  size_t reports_sent = 0;
  std::vector<std::string> report_ids;
  auto start_terminal = [&](size_t k, bool with_report) -> result<node::node*> {
    const uint32_t space = static_cast<uint32_t>(k + 1);
    if (with_report) {
      storage::store_options so;
      so.space = space;
      so.role = storage::node_role::terminal;
      so.node = terminal_node_id(o.seed, k);
      auto st = storage::node_store::open(*tdb, so);
      if (!st) return std::move(st).err();
      // One record of report_bytes (the report collection allows 8 MiB bodies).
      storage::put_op put;
      put.key = core::record_key{tenant, br, "report", (*st)->new_id()};
      put.body = report_body(r, report_bytes, "T1", 0, 0);
      report_ids.push_back(put.key.id);
      auto w = (*st)->write({std::move(put)});
      if (!w) return std::move(w).err();
      ++reports_sent;
    }
    auto tc = f.config(storage::node_role::terminal, terminal_node_id(o.seed, k), br);
    tc.db = *tdb;
    tc.space = space;
    f.attach(tc, **hq, "terminal-" + std::to_string(k + 1));
    return f.start(std::move(tc));
  };
  rep.converged = true;
  uint64_t receipt = 0;
  auto idle_run = [&](node::node& term, std::vector<double>& out) {
    poll_until(deadline(), [&] { return caught_up(term) && drained(term); }, 1ms);
    std::this_thread::sleep_for(100ms);
    for (size_t i = 0; i < samples; ++i) {
      double ms = one_sale(term, ++receipt);
      if (ms < 0) {
        fail(rep, "an idle sale did not reach HQ within the timeout");
        return;
      }
      out.push_back(ms);
    }
  };

  // Idle: a synced terminal with nothing else to do.
  std::vector<double> idle, idle_after;
  auto idle_term = start_terminal(0, false);
  if (!idle_term) return std::move(idle_term).err();
  {
    subscription products(**idle_term, tenant, "product");
    if (!products->wait_distinct(catalog.size(), deadline()))
      return error(errc::deadline_exceeded, "setup: the idle terminal did not download the catalogue");
  }
  idle_run(**idle_term, idle);
  std::vector<double> idle_local_ms;
  idle_local_ms.swap(local_ms);

  // Loaded: fresh terminals, each downloading the catalogue and uploading its report;
  // sales one at a time while either is in flight, until `samples` such sales.
  std::vector<double> loaded, loaded_both;
  std::vector<double> download_ms, upload_ms;
  size_t rounds = 0;
  for (; rounds < max_rounds && loaded.size() < samples && rep.converged; ++rounds) {
    auto tstart = clock_type::now();
    auto term = start_terminal(rounds + 1, true);
    if (!term) return std::move(term).err();
    const std::string report_id = report_ids.back();
    subscription products(**term, tenant, "product");
    if (!poll_until(deadline(), [&] { return (*term)->status().online; }, 50us)) {
      fail(rep, "round " + std::to_string(rounds + 1) + ": the terminal never came online");
      break;
    }
    for (;;) {
      bool downloading = products->distinct() < catalog.size();
      bool uploading = (*term)->store().pending()[core::lane_reports] > 0;
      if (!downloading && !uploading) break;
      double ms = one_sale(**term, ++receipt);
      if (ms < 0) {
        fail(rep, "a sale did not reach HQ within the timeout");
        break;
      }
      loaded.push_back(ms);
      if (downloading && uploading) loaded_both.push_back(ms);
    }
    if (!rep.converged) break;
    if (!products->wait_distinct(catalog.size(), deadline()))
      fail(rep, "round " + std::to_string(rounds + 1) + ": the terminal holds " +
                    std::to_string(products->distinct()) + " of " + std::to_string(catalog.size()) + " products");
    // Download done: the terminal's commit of its last product; upload done: HQ's
    // commit of the report.
    time_point last{};
    for (const auto& [id, v] : products->snapshot())
      last = std::max(last, v.first);
    download_ms.push_back(ms_between(tstart, last));
    if (hq_reports->wait_changes(report_id, 1, deadline()))
      upload_ms.push_back(ms_between(tstart, *hq_reports->change_time(report_id, 0)));
  }
  std::vector<double> loaded_local_ms;
  loaded_local_ms.swap(local_ms);
  // Idle again on the first terminal: what the uploads left behind in the shared
  // databases costs an idle sale.
  if (rep.converged) idle_run(**idle_term, idle_after);
  // Every sale at HQ once; every report at HQ.
  rep.expected = made;
  rep.seen = hq_sales->distinct();
  rep.lost = made - std::min<uint64_t>(made, rep.seen);
  rep.duplicated = hq_sales->repeats() + (rep.seen > made ? rep.seen - made : 0);
  if (rep.lost || rep.duplicated) fail(rep, "sales lost or duplicated at HQ");
  if (!hq_reports->wait_distinct(reports_sent, deadline()))
    fail(rep, "HQ holds " + std::to_string(hq_reports->distinct()) + " of " + std::to_string(reports_sent) +
                  " reports");
  double idle_p50 = pct(idle, 50), loaded_p50 = pct(loaded, 50);
  rep.p50_ms = loaded_p50;
  rep.p99_ms = pct(loaded, 99);
  rep.max_ms = loaded.empty() ? 0 : *std::max_element(loaded.begin(), loaded.end());
  rep.details["idle_p50_ms"] = idle_p50;
  rep.details["idle_p99_ms"] = pct(idle, 99);
  rep.details["loaded_p50_ms"] = loaded_p50;
  rep.details["loaded_p99_ms"] = rep.p99_ms;
  rep.details["loaded_both_p50_ms"] = pct(loaded_both, 50);
  // How much of each latency is the terminal's own durable commit of the sale.
  rep.details["idle_local_commit_p50_ms"] = pct(idle_local_ms, 50);
  rep.details["loaded_local_commit_p50_ms"] = pct(loaded_local_ms, 50);
  rep.details["ratio"] = idle_p50 > 0 ? loaded_p50 / idle_p50 : 0;
  rep.details["target_ratio"] = 2;
  rep.details["loaded_samples"] = static_cast<double>(loaded.size());
  rep.details["loaded_both_samples"] = static_cast<double>(loaded_both.size());
  rep.details["idle_samples"] = static_cast<double>(idle.size());
  rep.details["idle_after_p50_ms"] = pct(idle_after, 50);
  rep.details["idle_after_p99_ms"] = pct(idle_after, 99);
  rep.details["rounds"] = static_cast<double>(rounds);
  rep.details["products"] = static_cast<double>(catalog.size());
  rep.details["report_bytes"] = static_cast<double>(report_bytes);
  rep.details["download_ms_p50"] = pct(download_ms, 50);
  rep.details["upload_ms_p50"] = pct(upload_ms, 50);
  if (loaded.empty()) fail(rep, "no sale was made while the download or upload was in flight");
  rep.seconds = secs_between(setup_begin, clock_type::now()) - rep.setup_seconds;
  rep.record.latencies.push_back({"sale -> HQ, idle", std::move(idle)});
  rep.record.latencies.push_back({"sale -> HQ, idle after the uploads", std::move(idle_after)});
  rep.record.latencies.push_back({"sale -> HQ, during download + upload", std::move(loaded)});
  rep.peak_rss_mb = peak_rss_mb();
  // The subscriptions end before the fleet stops (reverse declaration order).
  return rep;
}

// -- devices for an external HQ ---------------------------------------------------------

result<pos_report> write_devices(pos_report rep) {
  const auto& o = rep.opts;
  std::ofstream out(o.devices_out);
  if (!out) return error(errc::unavailable, "cannot write '" + o.devices_out + "'");
  out << "# possync sim --workload " << o.workload << " --seed " << o.seed << " --terminals " << o.terminals
      << " --branches " << o.branches << ": the devices HQ must register (tenant " << o.tenant << ")\n";
  out << "tenant: " << o.tenant << "\n";
  out << "devices:\n";
  for (const auto& d : fleet_devices(o))
    out << "  - {tenant: " << d.tenant << ", branch: " << d.branch << ", node_id: \"" << node::device_id(d.node)
        << "\", role: " << storage::to_string(d.role) << ", name: \"" << d.name << "\"}\n";
  out.flush();
  if (!out) return error(errc::unavailable, "cannot write '" + o.devices_out + "'");
  rep.converged = true;
  rep.details["devices"] = static_cast<double>(o.branches + o.terminals);
  return rep;
}

pos_options with_defaults(pos_options o) {
  const bool scale = o.workload == w_scale, lanes = o.workload == w_lanes, idle = o.workload == w_idle;
  if (o.products == 0) o.products = lanes ? 20'000 : 200;
  if (o.terminals == 0) o.terminals = scale ? 10'000 : idle ? 1'000 : lanes ? 1 : 40;
  if (o.branches == 0) o.branches = scale ? 100 : lanes || idle ? 1 : 4;
  if (o.duration_ms == 0) o.duration_ms = scale ? 60'000 : 30'000;
  if (o.report_bytes == 0) o.report_bytes = 5u << 20;
  if (o.sample_ms <= 0) o.sample_ms = 1000;
  if (o.tenant.empty()) o.tenant = "sim";
  // W7 stops rather than take the machine's memory (3x its 4 GB target).
  if (scale && o.max_rss_mb == 0) o.max_rss_mb = 12'000;
  return o;
}

std::string command_of(const pos_options& o) {
  if (!o.command.empty()) return o.command;
  std::ostringstream s;
  s << "possync sim --workload " << o.workload << " --transport "
    << (o.transport == sync_transport::grpc ? "grpc" : "inproc");
  if (!o.hq.empty()) s << " --hq " << o.hq;
  if (o.workload != w_lanes) s << " --terminals " << o.terminals << " --branches " << o.branches;
  s << " --products " << o.products;
  if (o.workload == w_pos || o.workload == w_scale)
    s << " --rate " << o.sales_per_terminal_s << " --hq-changes " << o.hq_changes_per_s << " --duration-s "
      << o.duration_ms / 1000;
  if (o.stock_pause_ms >= 0) s << " --stock-pause-ms " << o.stock_pause_ms;
  if (!o.terminal_stock) s << " --terminal-stock off";
  if (o.in_memory) s << " --in-memory";
  s << " --seed " << o.seed;
  return s.str();
}

std::string fmt(double v) {
  char buf[64];
  if (v == std::floor(v) && std::fabs(v) < 1e15) std::snprintf(buf, sizeof buf, "%.0f", v);
  else std::snprintf(buf, sizeof buf, "%.3f", v);
  return buf;
}

void fill_record(pos_report& r) {
  const auto& o = r.opts;
  auto& rec = r.record;
  rec.title = "possync sim --workload " + o.workload;
  rec.command = command_of(o);
  rec.build = "possync";
  auto& p = rec.parameters;
  p["transport"] = o.transport == sync_transport::grpc ? "grpc" : "inproc";
  p["hq"] = o.hq.empty() ? "in this process" : o.hq;
  p["tenant"] = o.tenant;
  p["terminals"] = std::to_string(o.terminals);
  p["branches"] = std::to_string(o.branches);
  p["products"] = std::to_string(o.products);
  p["seed"] = std::to_string(o.seed);
  p["store"] = o.in_memory ? "RocksDB in-memory" : "RocksDB on disk";
  p["stock pause ms"] = o.stock_pause_ms >= 0 ? std::to_string(o.stock_pause_ms) : "node default";
  p["stock at terminals"] = o.terminal_stock ? "live" : "off";
  if (o.workload == w_pos || o.workload == w_scale) {
    p["sales per terminal per s"] = fmt(o.sales_per_terminal_s);
    p["HQ changes per s"] = fmt(o.hq_changes_per_s);
    p["duration s"] = fmt(static_cast<double>(o.duration_ms) / 1000.0);
  }
  if (o.workload == w_pos) {
    p["overrides per s"] = fmt(o.overrides_per_s);
    p["stocktakes per s"] = fmt(o.stocktakes_per_s);
    p["offline fraction"] = fmt(o.offline_fraction);
  }
  if (o.workload == w_lanes) p["report bytes"] = std::to_string(o.report_bytes);
  auto& res = rec.results;
  res["converged"] = r.converged ? "yes" : "NO";
  if (!r.failure.empty()) res["failure"] = r.failure;
  res["sales at HQ / expected"] = std::to_string(r.seen) + " / " + std::to_string(r.expected);
  res["lost"] = std::to_string(r.lost);
  res["duplicated"] = std::to_string(r.duplicated);
  res["sale -> HQ p50 ms"] = fmt(r.p50_ms);
  res["sale -> HQ p99 ms"] = fmt(r.p99_ms);
  if (r.sales_per_s > 0) res["sales/s at HQ"] = fmt(r.sales_per_s);
  if (r.change_p99_ms > 0) {
    res["HQ change -> every terminal p50 ms"] = fmt(r.change_p50_ms);
    res["HQ change -> every terminal p99 ms"] = fmt(r.change_p99_ms);
  }
  res["peak RSS MB"] = fmt(r.peak_rss_mb);
  res["setup s"] = fmt(r.setup_seconds);
  res["measured s"] = fmt(r.seconds);
  for (const auto& [k, v] : r.details)
    res[k] = fmt(v);
}

const char* target_of(const std::string& w) {
  if (w == w_lanes) return "W6 target: a sale reaches HQ within 2x its idle latency while a 20,000-product download "
                           "and a 5 MB report upload are in flight (ratio <= 2)";
  if (w == w_scale) return "W7 target: all sales at HQ exactly once, every terminal converges, RSS <= 4 GB, "
                           "p99 sale -> HQ <= 50 ms (10,000 terminals, 100 branches, 1 sale/s each, 60 s)";
  if (w == w_idle) return "W10 target: <= 64 KB per idle connected terminal session";
  return "pos: every sale at HQ exactly once, every terminal converges";
}

} // namespace

const std::vector<std::string>& pos_workload_names() {
  static const std::vector<std::string> names{w_pos, w_lanes, w_scale, w_idle};
  return names;
}

bool is_pos_workload(const std::string& name) {
  const auto& n = pos_workload_names();
  return std::find(n.begin(), n.end(), name) != n.end();
}

result<pos_report> run_pos(const pos_options& opts) {
  if (!is_pos_workload(opts.workload))
    return error(errc::invalid_argument, "unknown POS workload '" + opts.workload + "'");
  pos_report rep;
  rep.opts = with_defaults(opts);
  const pos_options o = rep.opts; // a copy: rep moves into the workload
  if (o.workload == w_idle) {
    auto r = run_idle(o);
    if (r) {
      if (r->record.title.empty()) fill_record(*r);
      if (!o.report_html.empty())
        if (auto st = write_html(r->record, o.report_html)) return st;
    }
    return r;
  }
  if (o.products == 0) return error(errc::invalid_argument, "--products must be at least 1");
  if (o.terminals == 0) return error(errc::invalid_argument, "--terminals must be at least 1");
  if (o.branches == 0 || o.branches > o.terminals)
    return error(errc::invalid_argument, "--branches must be between 1 and --terminals");
  if (o.timeout_ms <= 0) return error(errc::invalid_argument, "--timeout-ms must be positive");
  if (o.sales_per_terminal_s < 0 || o.hq_changes_per_s < 0 || o.overrides_per_s < 0 || o.stocktakes_per_s < 0)
    return error(errc::invalid_argument, "rates must not be negative");
  if (o.offline_fraction < 0 || o.offline_fraction >= 1)
    return error(errc::invalid_argument, "offline_fraction must be in [0, 1)");
  if (!o.devices_out.empty()) return write_devices(std::move(rep));
  if (o.workload == w_lanes && !o.hq.empty())
    return error(errc::invalid_argument, "lanes runs its own HQ (--hq applies to pos and scale)");
  if (o.workload == w_lanes && o.report_bytes > (8u << 20) - 4096)
    return error(errc::invalid_argument, "the report must stay below the report collection's 8 MiB body limit");

  auto dir = temp_dir::make(o.dir, "possync-" + o.workload);
  if (!dir) return std::move(dir).err();
  if (o.keep_dir) dir->keep();
  node::runtime::options ro;
  ro.threads = o.threads;
  auto rt = node::runtime::create(ro);
  result<pos_report> out = o.workload == w_lanes ? run_lanes(std::move(rep), dir->path(), rt)
                                                 : run_load(std::move(rep), dir->path(), rt);
  if (!out) return out;
  if (o.keep_dir) out->opts.dir = dir->path();
  fill_record(*out);
  if (!o.report_html.empty())
    if (auto st = write_html(out->record, o.report_html)) return st;
  return out;
}

std::string to_json(const pos_report& r) {
  const auto& o = r.opts;
  nlohmann::json j;
  j["workload"] = o.workload;
  nlohmann::json p = {{"transport", o.transport == sync_transport::grpc ? "grpc" : "inproc"},
                      {"hq", o.hq.empty() ? "in-process" : o.hq},
                      {"tenant", o.tenant},
                      {"terminals", o.terminals},
                      {"branches", o.branches},
                      {"products", o.products},
                      {"seed", o.seed},
                      {"in_memory", o.in_memory}};
  if (o.stock_pause_ms >= 0) p["stock_pause_ms"] = o.stock_pause_ms;
  p["terminal_stock"] = o.terminal_stock ? "live" : "off";
  if (o.workload == w_pos || o.workload == w_scale) {
    p["rate"] = o.sales_per_terminal_s;
    p["hq_changes"] = o.hq_changes_per_s;
    p["duration_s"] = static_cast<double>(o.duration_ms) / 1000.0;
  }
  if (o.workload == w_lanes) p["report_bytes"] = o.report_bytes;
  j["parameters"] = std::move(p);
  j["seconds"] = r.seconds;
  if (o.workload != w_lanes && o.workload != w_idle) j["sales_per_s"] = r.sales_per_s;
  j["p50_ms"] = r.p50_ms;
  j["p99_ms"] = r.p99_ms;
  if (o.workload == w_pos || o.workload == w_scale) {
    j["change_p50_ms"] = r.change_p50_ms;
    j["change_p99_ms"] = r.change_p99_ms;
  }
  if (o.workload == w_lanes) {
    auto it = r.details.find("ratio");
    j["ratio"] = it == r.details.end() ? 0.0 : it->second;
  }
  j["lost"] = r.lost;
  j["duplicated"] = r.duplicated;
  j["converged"] = r.converged;
  j["peak_rss_mb"] = r.peak_rss_mb;
  nlohmann::json d = {{"expected", r.expected}, {"seen", r.seen}, {"max_ms", r.max_ms},
                      {"setup_seconds", r.setup_seconds}};
  for (const auto& [k, v] : r.details)
    d[k] = v;
  if (!r.failure.empty()) d["failure"] = r.failure;
  if (o.keep_dir) d["dir"] = o.dir;
  if (!o.devices_out.empty()) d["devices_out"] = o.devices_out;
  j["details"] = std::move(d);
  return j.dump();
}

std::string to_text(const pos_report& r) {
  const auto& o = r.opts;
  std::ostringstream s;
  char line[512];
  if (!o.devices_out.empty()) {
    std::snprintf(line, sizeof line,
                  "wrote %zu devices (%zu branches, %zu terminals, tenant %s, seed %llu) to %s: add them to the "
                  "HQ's devices:, then run the same command with --hq and without --devices-out",
                  o.branches + o.terminals, o.branches, o.terminals, o.tenant.c_str(),
                  static_cast<unsigned long long>(o.seed), o.devices_out.c_str());
    return line;
  }
  const char* via = o.transport == sync_transport::grpc ? "gRPC on 127.0.0.1" : "in-process links";
  if (o.workload == w_lanes) {
    auto d = [&](const char* k) {
      auto it = r.details.find(k);
      return it == r.details.end() ? 0.0 : it->second;
    };
    std::snprintf(line, sizeof line, "lanes over %s: 1 terminal under HQ, %zu products, %.1f MB report (setup %.2f s)\n",
                  via, o.products, static_cast<double>(o.report_bytes) / (1024.0 * 1024.0), r.setup_seconds);
    s << line;
    std::snprintf(line, sizeof line, "  sale -> HQ idle: p50 %.3f ms, p99 %.3f ms (%.0f sales)\n", d("idle_p50_ms"),
                  d("idle_p99_ms"), d("idle_samples"));
    s << line;
    std::snprintf(line, sizeof line,
                  "  sale -> HQ during download + upload: p50 %.3f ms, p99 %.3f ms (%.0f sales over %.0f fresh "
                  "terminals; download p50 %.0f ms, upload p50 %.0f ms)\n",
                  d("loaded_p50_ms"), d("loaded_p99_ms"), d("loaded_samples"), d("rounds"), d("download_ms_p50"),
                  d("upload_ms_p50"));
    s << line;
    std::snprintf(line, sizeof line, "  ratio loaded/idle p50: %.2f\n", d("ratio"));
    s << line;
  } else if (o.workload == w_idle) {
    s << o.workload << " over " << via << ": " << o.terminals << " terminals\n";
    for (const auto& [k, v] : r.details)
      s << "  " << k << ": " << fmt(v) << "\n";
  } else {
    std::snprintf(line, sizeof line,
                  "%s over %s: %zu terminals in %zu branches%s, %.0f s measured (setup %.1f s)\n", o.workload.c_str(),
                  via, o.terminals, o.branches, o.hq.empty() ? "" : (" under HQ " + o.hq).c_str(), r.seconds,
                  r.setup_seconds);
    s << line;
    auto d = [&](const char* k) {
      auto it = r.details.find(k);
      return it == r.details.end() ? 0.0 : it->second;
    };
    std::snprintf(line, sizeof line, "  offered %.0f sales/s, made %.0f/s, at HQ %.0f/s (drain after the phase %.1f s)\n",
                  d("sales_offered_per_s"), d("sales_made_per_s"), r.sales_per_s, d("drain_seconds"));
    s << line;
    std::snprintf(line, sizeof line, "  sale -> HQ: p50 %.3f ms, p99 %.3f ms, max %.3f ms\n", r.p50_ms, r.p99_ms,
                  r.max_ms);
    s << line;
    if (d("hq_changes") > 0) {
      std::snprintf(line, sizeof line, "  HQ change -> every terminal: p50 %.3f ms, p99 %.3f ms (%.0f changes)\n",
                    r.change_p50_ms, r.change_p99_ms, d("hq_changes"));
      s << line;
    }
    if (o.workload == w_pos) {
      std::snprintf(line, sizeof line,
                    "  also: %.0f price overrides, %.0f stocktakes, %.0f end-of-day reports, %.0f terminals taken "
                    "offline and back\n",
                    d("overrides"), d("stocktakes"), d("reports"), d("offline_events"));
      s << line;
    }
  }
  std::snprintf(line, sizeof line, "  %llu of %llu sales at HQ, %llu lost, %llu duplicated, converged: %s\n",
                static_cast<unsigned long long>(r.seen), static_cast<unsigned long long>(r.expected),
                static_cast<unsigned long long>(r.lost), static_cast<unsigned long long>(r.duplicated),
                r.converged ? "yes" : "NO");
  s << line;
  if (!r.failure.empty()) s << "  failure: " << r.failure << "\n";
  std::snprintf(line, sizeof line, "  peak RSS %.1f MB\n", r.peak_rss_mb);
  s << line;
  if (!o.report_html.empty()) s << "  report: " << o.report_html << "\n";
  s << "  " << target_of(o.workload);
  return s.str();
}

} // namespace possync::sim
