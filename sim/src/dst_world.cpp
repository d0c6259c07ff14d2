// The simulated world of one seed: event loop, simulated links, node shells, faults
// and POS traffic (see dst.hpp and dst_world.hpp).
//
// Everything runs on the caller's thread from one event queue ordered by (simulated
// ms, insertion number). Randomness comes from splitmix64 streams derived from the
// seed; time from the queue. What stands in for the production shell:
// - session_actor + supervisor: sim_link carries frames between an uplink_machine and
//   a downlink_machine (one write at a time per direction; a write completes when its
//   frame arrives, after a seeded delay; the receiver reads one frame at a time, only
//   while its machine wants_frame()); after every input the machine's output is carried
//   out in order; a session that ends restarts after actors::backoff.
// - store actor: a per-node "disk queue" (applies, outbox acks, clear_cursors,
//   put_meta run in request order, each after a seeded delay); group_commit = false, so
//   node_store calls complete on this thread and the commit listener runs inline.
// - hub: the commit listener marks the downlinks whose feeds a commit landed on and the
//   uplink, and one coalesced flush event per node announces them.
// A crashed node's pending events are dropped (its epoch changes), so a write not yet
// run is lost and never acknowledged; its stores reopen on the same in-memory database.

#include "dst_world.hpp"

#include <algorithm>
#include <cmath>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <functional>
#include <map>
#include <optional>
#include <queue>
#include <set>
#include <utility>

#include "possync/actors/backoff.hpp"
#include "possync/actors/session_machine.hpp"
#include "possync/sim/pos_fixture.hpp"
#include "possync/v1/pos.pb.h"
#include "possync/v1/sync.pb.h"

namespace possync::sim::dst {

namespace {

constexpr int64_t epoch_base_ms = 1'704'067'200'000;  // 2024-01-01T00:00:00Z: node clocks start here
constexpr int64_t tick_period_ms = 2000;              // machines' on_tick and the quiet check
constexpr int spares_per_terminal = 2;                // pre-registered identities for disk loss
const char* const tenant_id = "demo";

uint64_t splitmix(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

/// Seed of sub-stream `stream` of `seed`.
uint64_t sub_seed(uint64_t seed, uint64_t stream) {
  return splitmix(splitmix(seed) ^ splitmix(stream * 0x2545F4914F6CDD1Dull + 0x1234567ull));
}

/// Uniform double in [0, 1).
double unit(rng& r) {
  return static_cast<double>(r.next_u64() >> 11) / 9007199254740992.0;
}

/// Exponentially distributed delay with this mean (ms), at least 1.
int64_t exp_ms(rng& r, double mean_ms) {
  double d = -mean_ms * std::log(1.0 - unit(r));
  return std::max<int64_t>(1, static_cast<int64_t>(d));
}

/// Half of the seeds run the session's flow-control knobs as built; the other half
/// draw each from small values, so that push windows fill, Pushes and Changes hold a
/// few records each and backlogs go up in many frames: the paths that a sparse POS
/// workload under the default 8 x 256-record window would hardly ever take. Live pauses
/// (stock and catalogue served in rounds, up to a minute apart) and sale holds (none, or
/// half a second) are drawn with them.
void randomize_knobs(actors::session_options& o, uint64_t seed) {
  rng r(seed);
  if (r.below(2) == 0) return;
  auto pick = [&r](std::initializer_list<uint64_t> v) { return *(v.begin() + r.below(v.size())); };
  o.push_window = static_cast<uint32_t>(pick({1, 2, 3, 8}));
  o.push_batch = pick({1, 2, 5, 16, 256});
  o.changes_batch = pick({1, 3, 16, 128});
  o.apply_window = static_cast<uint32_t>(pick({1, 2, 4}));
  o.unsent_frames = static_cast<uint32_t>(pick({1, 2}));
  o.lower_lane_every = static_cast<uint32_t>(pick({2, 4, 8}));
  o.live_pause_ms[core::lane_stock] = static_cast<int64_t>(pick({0, 1000, 60000}));
  o.live_pause_ms[core::lane_catalog] = static_cast<int64_t>(pick({0, 0, 5000}));
  o.urgent_hold_ms = static_cast<int64_t>(pick({0, 20, 500}));
}

/// Log-uniform in [lo, hi] (ms).
int64_t log_uniform(rng& r, int64_t lo, int64_t hi) {
  double l = std::log(static_cast<double>(lo)), h = std::log(static_cast<double>(hi));
  return static_cast<int64_t>(std::exp(l + unit(r) * (h - l)));
}

uint64_t fnv1a(uint64_t h, const std::string& s) {
  for (unsigned char c : s) {
    h ^= c;
    h *= 0x100000001b3ull;
  }
  return h;
}

std::string frame_text(const v1::Frame& f) {
  char buf[256];
  switch (f.kind_case()) {
  case v1::Frame::kHello:
    std::snprintf(buf, sizeof buf, "hello from=%s upstream=%s cursors=%d",
                  core::node_id_to_string(f.hello().node()).c_str(),
                  core::node_id_to_string(f.hello().upstream()).c_str(), f.hello().cursors_size());
    return buf;
  case v1::Frame::kWelcome:
    std::snprintf(buf, sizeof buf, "welcome from=%s window=%u", core::node_id_to_string(f.welcome().node()).c_str(),
                  f.welcome().window());
    return buf;
  case v1::Frame::kPush:
    std::snprintf(buf, sizeof buf, "push lane=%u seq=%llu-%llu n=%d", f.push().lane(),
                  static_cast<unsigned long long>(f.push().first_seq()),
                  static_cast<unsigned long long>(f.push().last_seq()), f.push().records_size());
    return buf;
  case v1::Frame::kAck:
    std::snprintf(buf, sizeof buf, "ack lane=%u seq=%llu rejected=%d", f.ack().lane(),
                  static_cast<unsigned long long>(f.ack().seq()), f.ack().rejected_size());
    return buf;
  case v1::Frame::kChanges: {
    const auto& c = f.changes();
    std::snprintf(buf, sizeof buf, "changes feed='%s'/%u seq=%llu n=%d%s", c.cursor().scope().c_str(),
                  c.cursor().lane(), static_cast<unsigned long long>(c.cursor().seq()), c.records_size(),
                  c.caught_up() ? " caught_up" : "");
    return buf;
  }
  case v1::Frame::kHeartbeat:
    return "heartbeat";
  case v1::Frame::kCommand:
    return "command " + std::to_string(static_cast<int>(f.command().kind()));
  case v1::Frame::kError:
    return "error " + std::to_string(f.error().code()) + " " + f.error().message();
  default:
    return "empty frame";
  }
}

struct event {
  int64_t at = 0;
  uint64_t seq = 0;
  std::function<void()> fn;
};
struct event_later {
  bool operator()(const event& a, const event& b) const { return a.at != b.at ? a.at > b.at : a.seq > b.seq; }
};

/// One node of the deployment with its shell state.
struct sim_node {
  std::string name;
  storage::node_role role = storage::node_role::terminal;
  std::string branch;  ///< "" for HQ
  /// Terminal: downloads its branch's stock. The second terminal of each branch does
  /// not (skip_collections "stock", as a register of a large branch would).
  bool live_stock = true;
  int parent = -1;     ///< upstream node index; -1 for HQ
  core::node_id id = 0;
  std::vector<core::node_id> spares;  ///< registered identities for a rebuild after disk loss
  std::shared_ptr<storage::io_faults> faults;
  std::shared_ptr<storage::database> db;
  std::unique_ptr<storage::node_store> store;
  uint64_t opens = 0;      ///< store opens so far (varies the store's random stream)
  int64_t skew = 0;        ///< clock offset, ms
  uint64_t epoch = 0;      ///< bumps on a crash: events of older epochs are dropped
  bool up = true;
  bool resetting = false; ///< an operator's reset is under way: no sessions until it is done
  uint64_t restart_gen = 0;
  int64_t disk_free_at = 0;  ///< the disk queue's last scheduled request
  uint64_t disk_pending = 0;
  /// Faults armed to fall at a commit boundary: the node crashes, or its disk starts
  /// failing, right after this many more store requests (disk queue or POS app) have
  /// run; 0 = not armed.
  uint32_t crash_after_writes = 0;
  int64_t armed_downtime = 0;
  uint32_t disk_fault_after_writes = 0;
  bool armed_disk_full = false;
  int64_t armed_disk_ms = 0;
  // supervisor
  std::unique_ptr<actors::backoff> retry;
  uint64_t uplink = 0;  ///< live link id, 0 = none
  uint64_t connect_gen = 0;
  // hub
  std::set<uint64_t> downlinks;
  bool flush_pending = false;
  bool uplink_dirty = false;
  // faults
  int64_t partitioned_until = 0;
  int64_t slow_until = 0;
  int64_t disk_fault_until = 0;
  // POS app
  uint64_t receipts = 0;
  std::string last_sale_id;
  int64_t day_start = 0;
  uint64_t day_sales = 0;
  int64_t day_total = 0;
};

/// A session between a node's uplink (side 0, node `down`) and its upstream's
/// downlink (side 1, node `up`).
struct sim_link {
  uint64_t id = 0;
  int down = 0, up = 0;
  std::unique_ptr<actors::uplink_machine> um;
  std::unique_ptr<actors::downlink_machine> dm;
  bool alive = true;
  struct side {
    std::deque<v1::Frame> unwritten;  ///< handed out by the machine, not yet written
    bool writing = false;             ///< one frame on the wire towards the peer
    std::optional<v1::Frame> wire;
    std::deque<v1::Frame> inbox;      ///< arrived, not yet read
    std::optional<error> closing;     ///< the machine ended: close once its frames are written
    bool dup_next = false;            ///< fault: deliver the next frame twice
  } s[2];
  std::vector<actors::feed_id> feeds;  ///< downlink subscription
  std::shared_ptr<const std::set<std::string>> takes; ///< ...of commits changing these (null: any)
  std::set<actors::feed_id> dirty;     ///< announced by the hub, not yet flushed
  bool welcomed = false;
  bool cut_after_apply = false;  ///< fault: the next applied Push is never acked (link cut)
  uint32_t cut_after_reads = 0;  ///< fault: cut once this many more frames were read (either side)
  bool cut_due = false;          ///< ... and the last one's output carried out
  std::array<uint64_t, core::lane_count> pushed{};      ///< last outbox seq pushed per lane
  std::array<uint64_t, core::lane_count> known_head{};  ///< lane heads the uplink was told about
};

} // namespace

struct world::impl {
  options opts;
  history hist;
  std::shared_ptr<const core::collection_registry> reg;
  std::vector<product_spec> catalog;
  /// Products HQ adds during the run, each written once and never edited or sold: a
  /// record that reaches a node in one Changes only (no later write heals a skip).
  static constexpr size_t later_products = 6;
  std::vector<product_spec> later;
  size_t later_added = 0;
  actors::session_options sopts;
  actors::backoff_options bopts;
  std::vector<sim_node> nodes;
  std::map<uint64_t, std::unique_ptr<sim_link>> links;
  std::vector<std::unique_ptr<sim_link>> graveyard;
  std::priority_queue<event, std::vector<event>, event_later> queue;
  uint64_t next_seq = 0;
  uint64_t next_link = 0;
  int64_t now = 0;
  bool stop = false;
  bool chaos_over = false;
  int64_t end_ms = 0;
  rng net_rng{0}, disk_rng{0}, fault_rng{0}, pos_rng{0}, sup_rng{0};
  uint64_t hash = 0xcbf29ce484222325ull;
  std::string trace_text;
  /// (product id, field number) -> node index -> dot of that node's latest edit.
  std::map<std::pair<std::string, uint32_t>, std::map<int, core::dot>> edits;
  uint64_t edit_no = 0;
  /// POSSYNC_DST_ECHO set: every trace line also goes to stderr as it is made (a run
  /// that crashes the process still shows how it got there). Not part of the trace.
  bool echo = std::getenv("POSSYNC_DST_ECHO") != nullptr;

  // -- basics ---------------------------------------------------------------------------

  int64_t node_now(int n) const { return epoch_base_ms + now + nodes[n].skew; }

  void line(const std::string& l) {
    hash = fnv1a(hash, l);
    hash = fnv1a(hash, "\n");
    if (opts.trace) {
      trace_text += l;
      trace_text += '\n';
    }
    if (echo) std::fprintf(stderr, "%s\n", l.c_str());
  }
  void tr(int n, const char* fmt, ...) __attribute__((format(printf, 3, 4))) {
    char buf[640];
    int k = std::snprintf(buf, sizeof buf, "%lld %s ", static_cast<long long>(now),
                          n < 0 ? "world" : nodes[n].name.c_str());
    va_list ap;
    va_start(ap, fmt);
    std::vsnprintf(buf + k, sizeof buf - static_cast<size_t>(k), fmt, ap);
    va_end(ap);
    line(buf);
  }

  void at(int64_t when, std::function<void()> fn) {
    queue.push(event{std::max(when, now), next_seq++, std::move(fn)});
  }
  /// An event of node `n`: dropped if the node crashes before it runs.
  void at_node(int n, int64_t when, std::function<void()> fn) {
    uint64_t ep = nodes[n].epoch;
    at(when, [this, n, ep, fn = std::move(fn)] {
      if (nodes[n].epoch != ep) return;
      fn();
    });
  }
  /// A store request of node `n`, run in request order after a seeded delay.
  void disk(int n, std::function<void()> fn) {
    auto& nd = nodes[n];
    int64_t when = std::max(now + disk_rng.between(0, 2), nd.disk_free_at);
    nd.disk_free_at = when;
    ++nd.disk_pending;
    at_node(n, when, [this, n, fn = std::move(fn)] {
      --nodes[n].disk_pending;
      fn();
      wrote(n);
    });
  }

  /// A store request of `n` has run (a session's disk request or a POS action, which
  /// may have been refused before it wrote): an armed disk fault or crash may fall
  /// right after it.
  void wrote(int n) {
    auto& nd = nodes[n];
    if (!nd.up) return;
    // An armed fault counts as injected when it strikes, not when armed (a crash,
    // a lost disk or the end of chaos may disarm it first).
    if (nd.disk_fault_after_writes > 0 && --nd.disk_fault_after_writes == 0) {
      tr(n, "armed disk fault starts after a store request");
      start_disk_fault(n, nd.armed_disk_full, nd.armed_disk_ms);
      ++hist.faults_injected;
    }
    if (nd.crash_after_writes == 0 || --nd.crash_after_writes > 0) return;
    tr(n, "armed crash fires after a store request");
    ++hist.faults_injected;
    crash(n, nd.armed_downtime);
  }

  sim_link* find_link(uint64_t id) {
    auto it = links.find(id);
    return it == links.end() || !it->second->alive ? nullptr : it->second.get();
  }

  actors::local_identity identity(int n) const {
    const auto& nd = nodes[n];
    actors::local_identity me{nd.store->node(), nd.role, tenant_id, nd.branch, "", "", {}};
    if (!nd.live_stock) me.collections = actors::download_collections(nd.role, *reg, {"stock"}).value();
    return me;
  }

  std::array<uint64_t, core::lane_count> heads(int n) const {
    std::array<uint64_t, core::lane_count> h{};
    for (uint8_t l = 0; l < core::lane_count; ++l)
      h[l] = nodes[n].store->lane_head(l);
    return h;
  }

  // -- setup ----------------------------------------------------------------------------

  status open_store(int n) {
    auto& nd = nodes[n];
    storage::store_options so;
    so.space = 0;
    so.role = nd.role;
    so.node = nd.id;
    so.clock = [this, n] { return static_cast<uint64_t>(node_now(n)); };
    so.rng = std::make_shared<core::seeded_random>(sub_seed(opts.seed, 5000 + 64 * static_cast<uint64_t>(n) + nd.opens++));
    so.registry = reg;
    so.outbox = nd.role != storage::node_role::hq;
    auto st = storage::node_store::open(nd.db, so);
    if (!st) return error(st.err().code, nd.name + ": opening the store: " + st.err().message);
    nd.store = std::move(st).value();
    nd.store->set_listener([this, n](const std::vector<storage::change>& ch) { on_commit(n, ch); });
    return {};
  }

  status open_db(int n) {
    auto& nd = nodes[n];
    nd.faults = std::make_shared<storage::io_faults>();
    storage::db_options o;
    o.in_memory = true;
    o.group_commit = false;
    o.sync = true;
    o.block_cache_bytes = 1u << 20;
    // Large enough that no memtable is flushed during a run: a background flush
    // running into an injected disk fault would make the run depend on thread timing.
    o.write_buffer_bytes = 8u << 20;
    o.faults = nd.faults;
    auto db = storage::database::open(o);
    if (!db) return error(db.err().code, nd.name + ": opening the database: " + db.err().message);
    nd.db = std::move(db).value();
    return open_store(n);
  }

  status setup() {
    reg = std::make_shared<const core::collection_registry>(core::collection_registry::pos());
    net_rng = rng(sub_seed(opts.seed, 1));
    disk_rng = rng(sub_seed(opts.seed, 2));
    fault_rng = rng(sub_seed(opts.seed, 3));
    pos_rng = rng(sub_seed(opts.seed, 4));
    sup_rng = rng(sub_seed(opts.seed, 6));
    sopts = actors::session_options{};
    randomize_knobs(sopts, sub_seed(opts.seed, 10));
    hist.lower_lane_every = sopts.lower_lane_every;
    catalog = generate_catalog(opts.products + later_products, sub_seed(opts.seed, 7));
    later.assign(catalog.begin() + static_cast<std::ptrdiff_t>(opts.products), catalog.end());
    catalog.resize(opts.products);

    // Nodes: HQ, then each branch followed by its terminals.
    std::set<core::node_id> used;
    rng ids(sub_seed(opts.seed, 8));
    auto fresh_id = [&] {
      for (;;) {
        core::node_id id = ids.next_u64();
        if (id != 0 && used.insert(id).second) return id;
      }
    };
    sim_node hq;
    hq.name = "hq";
    hq.role = storage::node_role::hq;
    hq.id = fresh_id();
    nodes.push_back(std::move(hq));
    for (size_t b = 1; b <= opts.branches; ++b) {
      sim_node br;
      br.name = "b" + std::to_string(b);
      br.branch = br.name;
      br.role = storage::node_role::branch;
      br.parent = 0;
      br.id = fresh_id();
      int bi = static_cast<int>(nodes.size());
      nodes.push_back(std::move(br));
      for (size_t t = 1; t <= opts.terminals_per_branch; ++t) {
        sim_node tm;
        tm.name = nodes[bi].name + ".t" + std::to_string(t);
        tm.branch = nodes[bi].branch;
        tm.role = storage::node_role::terminal;
        tm.live_stock = t != 2;
        tm.parent = bi;
        tm.id = fresh_id();
        for (int s = 0; s < spares_per_terminal; ++s)
          tm.spares.push_back(fresh_id());
        nodes.push_back(std::move(tm));
      }
    }
    for (size_t n = 0; n < nodes.size(); ++n)
      if (auto e = open_db(static_cast<int>(n))) return e;

    // HQ: the device registry (every identity, spares too), the catalogue, the stock.
    auto& hqs = *nodes[0].store;
    std::vector<storage::write_op> ops;
    auto device = [&](core::node_id id, storage::node_role role, const std::string& branch, const std::string& name) {
      v1::Device d;
      d.set_node(id);
      d.set_role(static_cast<uint32_t>(role));
      d.set_branch(branch);
      d.set_name(name);
      d.set_registered_ms(epoch_base_ms);
      storage::put_op op;
      op.key = core::record_key{tenant_id, "", "device", core::node_id_to_string(id)};
      op.body = d.SerializeAsString();
      ops.emplace_back(std::move(op));
    };
    for (const auto& nd : nodes) {
      if (nd.role == storage::node_role::hq) continue;
      device(nd.id, nd.role, nd.branch, nd.name);
      for (size_t s = 0; s < nd.spares.size(); ++s)
        device(nd.spares[s], nd.role, nd.branch, nd.name + " (spare " + std::to_string(s + 1) + ")");
    }
    if (!ops.empty()) {
      auto r = hqs.write(std::move(ops));
      if (!r) return error(r.err().code, "registering devices: " + r.err().message);
    }
    if (auto e = load_catalog(hqs, tenant_id, "", catalog, 0, catalog.size() + 1)) return e;
    rng stock(sub_seed(opts.seed, 9));
    for (const auto& nd : nodes) {
      if (nd.role != storage::node_role::branch) continue;
      std::vector<storage::write_op> s;
      for (const auto& p : catalog) {
        int64_t level = stock.between(20, 300) * 1000;
        s.emplace_back(storage::counter_op{stock_key(tenant_id, nd.branch, p.id), level});
        hist.initial_stock.emplace_back(nd.branch, p.id, level);
      }
      auto r = hqs.write(std::move(s));
      if (!r) return error(r.err().code, "initial stock of " + nd.branch + ": " + r.err().message);
    }
    tr(-1, "setup seed=%llu nodes=%zu products=%zu faults=0x%02x", static_cast<unsigned long long>(opts.seed),
       nodes.size(), catalog.size(), opts.faults);
    tr(-1,
       "knobs push_window=%u push_batch=%zu changes_batch=%zu apply_window=%u unsent_frames=%u "
       "lower_lane_every=%u stock_pause_ms=%lld catalog_pause_ms=%lld urgent_hold_ms=%lld",
       sopts.push_window, sopts.push_batch, sopts.changes_batch, sopts.apply_window, sopts.unsent_frames,
       sopts.lower_lane_every, static_cast<long long>(sopts.live_pause_ms[core::lane_stock]),
       static_cast<long long>(sopts.live_pause_ms[core::lane_catalog]),
       static_cast<long long>(sopts.urgent_hold_ms));
    if (opts.broken != sabotage::none) tr(-1, "sabotage %s", to_string(opts.broken).c_str());
    return {};
  }

  // -- hub ------------------------------------------------------------------------------

  void on_commit(int n, const std::vector<storage::change>& ch) {
    if (ch.empty()) return;
    auto& nd = nodes[n];
    if (nd.uplink != 0) nd.uplink_dirty = true;
    actors::feed_id probe;
    for (uint64_t id : nd.downlinks) {
      auto* l = find_link(id);
      if (!l) continue;
      for (const auto& c : ch) {
        if (l->takes && l->takes->count(c.key.collection) == 0) continue;
        probe.tenant = c.key.tenant;
        probe.scope = c.key.scope;
        probe.lane = c.lane;
        if (std::find(l->feeds.begin(), l->feeds.end(), probe) != l->feeds.end()) l->dirty.insert(probe);
      }
    }
    if (nd.flush_pending) return;
    nd.flush_pending = true;
    at_node(n, now, [this, n] { flush(n); });
  }

  void flush(int n) {
    auto& nd = nodes[n];
    nd.flush_pending = false;
    std::vector<uint64_t> ids(nd.downlinks.begin(), nd.downlinks.end());
    for (uint64_t id : ids) {
      auto* l = find_link(id);
      if (!l || l->dirty.empty()) continue;
      std::vector<actors::feed_id> feeds(l->dirty.begin(), l->dirty.end());
      l->dirty.clear();
      l->dm->on_feed_changed(feeds, node_now(n));
      pump(*l, 1);
    }
    if (nd.uplink_dirty) {
      nd.uplink_dirty = false;
      if (auto* l = find_link(nd.uplink)) {
        l->known_head = heads(n);
        l->um->on_outbox_changed(node_now(n));
        pump(*l, 0);
      }
    }
  }

  // -- links ----------------------------------------------------------------------------

  int node_of(const sim_link& l, int sd) const { return sd == 0 ? l.down : l.up; }

  /// A Push frame the uplink of `l` is about to send: which lanes had work.
  void record_push(sim_link& l, const v1::Push& p) {
    push_record pr;
    pr.node = nodes[l.down].name;
    pr.session = l.id;
    pr.lane = static_cast<uint8_t>(p.lane());
    pr.at_ms = now;
    auto& store = *nodes[l.down].store;
    for (uint8_t lane = 0; lane < core::lane_count; ++lane) {
      auto w = store.outbox_window(lane, l.pushed[lane], 1);
      pr.had_work[lane] = w && !w->empty() && w->front().seq <= l.known_head[lane];
    }
    if (p.lane() < core::lane_count) l.pushed[p.lane()] = std::max(l.pushed[p.lane()], p.last_seq());
    hist.pushes.push_back(std::move(pr));
  }

  /// Carries out what the machine of side `sd` wants, then feeds it the next frame
  /// while it wants one; repeats until it is idle.
  void pump(sim_link& l, int sd) {
    const int n = node_of(l, sd);
    for (int guard = 0; guard < 100000 && l.alive; ++guard) {
      auto& me = l.s[sd];
      actors::machine_output out = sd == 0 ? l.um->take_output() : l.dm->take_output();
      if (sd == 0 && !l.welcomed && l.um->status().welcomed) {
        l.welcomed = true;
        l.known_head = heads(n);
        nodes[n].retry->on_connected(node_now(n));
        tr(n, "welcomed s=%llu upstream=%s", static_cast<unsigned long long>(l.id), nodes[l.up].name.c_str());
      }
      for (auto& f : out.frames) {
        if (sd == 0 && f.kind_case() == v1::Frame::kPush) record_push(l, f.push());
        me.unwritten.push_back(std::move(f));
      }
      const bool early = sd == 1 && opts.broken == sabotage::ack_before_apply;
      const bool reported_early = early && !out.applies.empty();
      for (auto& a : out.applies) {
        uint64_t id = l.id;
        if (sd == 0 && opts.broken == sabotage::cursor_before_records && a.cursor && !a.records.empty()) {
          // Planted bug: a Changes frame's cursor is stored in a commit of its own, just
          // before its records (two store requests where there must be one).
          disk(n, [this, n, from = a.from, cursor = *a.cursor] {
            std::optional<result<storage::apply_result>> r;
            nodes[n].store->apply_remote_async({}, from, cursor,
                                               [&r](result<storage::apply_result> x) { r = std::move(x); });
            tr(n, "apply cursor only lane=%u seq=%llu%s", cursor.lane,
               static_cast<unsigned long long>(cursor.seq), r && *r ? "" : " failed");
          });
          a.cursor.reset();
        }
        if (early) {
          // Planted bug: the Push is reported applied (and so acked) before its apply ran.
          storage::apply_result fake;
          fake.applied = a.records.size();
          l.dm->on_applied(a.token, std::move(fake), node_now(n));
        }
        disk(n, [this, n, id, sd, early, a = std::move(a)]() mutable {
          run_apply(n, id, sd, std::move(a), early);
        });
      }
      for (auto [lane, ack_seq] : out.outbox_acks) {
        disk(n, [this, n, id = l.id, lane = lane, ack_seq = ack_seq] {
          // Planted bug: everything queued goes, not only what the Ack covered.
          const uint64_t seq =
              opts.broken == sabotage::ack_whole_lane ? nodes[n].store->outbox_head(lane) : ack_seq;
          auto s = nodes[n].store->ack_outbox(lane, seq);
          tr(n, "ack_outbox lane=%u seq=%llu%s%s", lane, static_cast<unsigned long long>(seq), s ? " failed: " : "",
             s ? s.to_string().c_str() : "");
          if (auto* x = s ? find_link(id) : nullptr) x->um->on_outbox_ack_failed(lane, seq, node_now(n));
        });
      }
      if (out.subscribe) {
        l.feeds = std::move(*out.subscribe);
        l.takes = std::move(out.subscribe_collections);
      }
      if (out.clear_cursors && sd == 0) {
        core::node_id peer = l.um->status().upstream;
        disk(n, [this, n, peer] {
          if (auto e = nodes[n].store->clear_cursors(peer))
            tr(n, "clear_cursors failed: %s", e.to_string().c_str());
        });
      }
      if (out.upstream_welcomed) {
        std::string name = core::node_id_to_string(*out.upstream_welcomed);
        disk(n, [this, n, name] {
          auto s = nodes[n].store->put_meta("sync.upstream", name);
          tr(n, "put_meta sync.upstream=%s%s%s", name.c_str(), s ? " failed: " : "", s ? s.to_string().c_str() : "");
        });
      }
      if (out.close && !me.closing) me.closing = std::move(out.close);
      if (out.wake_at_ms > 0) {
        // The machine's clock is its node's (skewed); the timer runs on simulated time.
        const int64_t delay = std::max<int64_t>(1, out.wake_at_ms - node_now(n));
        const uint64_t id = l.id;
        at(now + delay, [this, id, sd] { tick_side(id, sd); });
      }
      write_next(l, sd);
      if (l.cut_due) {
        // Armed cut: the frame just read was handled (its applies queued, its answer on
        // its way out), and the connection drops.
        tr(n, "armed cut fires after a frame was read");
        ++hist.faults_injected;
        teardown(l, error(errc::unavailable, "connection cut"), "cut");
        return;
      }
      if (me.closing && !me.writing && me.unwritten.empty()) {
        error why = *me.closing;
        teardown(l, why, sd == 0 ? "uplink ended" : "downlink ended");
        return;
      }
      // The sabotaged completion left its Ack in the machine's output: out on the wire
      // now, before the disk queue runs the apply.
      if (reported_early) continue;
      bool wants = !me.closing && (sd == 0 ? l.um->wants_frame() : l.dm->wants_frame());
      if (!wants || me.inbox.empty()) return;
      v1::Frame f = std::move(me.inbox.front());
      me.inbox.pop_front();
      if (sd == 0)
        l.um->on_frame(std::move(f), node_now(n));
      else
        l.dm->on_frame(std::move(f), node_now(n));
      if (l.cut_after_reads > 0 && --l.cut_after_reads == 0) l.cut_due = true;
    }
  }

  int64_t link_delay(const sim_link& l) {
    if (nodes[l.down].slow_until > now) return net_rng.between(100, 10'000);
    return net_rng.between(0, 5);
  }

  /// Puts side `sd`'s next frame on the wire; it arrives (and its write completes)
  /// after the link's delay.
  void write_next(sim_link& l, int sd) {
    auto& me = l.s[sd];
    if (me.writing || me.unwritten.empty()) return;
    me.wire = std::move(me.unwritten.front());
    me.unwritten.pop_front();
    me.writing = true;
    uint64_t id = l.id;
    at(now + link_delay(l), [this, id, sd] { arrive(id, sd); });
  }

  void arrive(uint64_t id, int sd) {
    auto* l = find_link(id);
    if (!l) return;
    auto& me = l->s[sd];
    auto& peer = l->s[1 - sd];
    const int to = node_of(*l, 1 - sd);
    v1::Frame f = std::move(*me.wire);
    me.wire.reset();
    me.writing = false;
    if (f.kind_case() != v1::Frame::kHeartbeat)
      tr(to, "recv s=%llu %s", static_cast<unsigned long long>(id), frame_text(f).c_str());
    if (me.dup_next) {
      me.dup_next = false;
      tr(to, "recv duplicate s=%llu", static_cast<unsigned long long>(id));
      peer.inbox.push_back(f);
    }
    peer.inbox.push_back(std::move(f));
    // The write completed: the sender may go on.
    const int from = node_of(*l, sd);
    if (sd == 0)
      l->um->on_written(node_now(from));
    else
      l->dm->on_written(node_now(from));
    pump(*l, sd);
    if (l->alive) pump(*l, 1 - sd);
  }

  /// `reported`: the machine was already told (the ack-before-apply sabotage).
  void run_apply(int n, uint64_t id, int sd, actors::apply_request a, bool reported) {
    auto& store = *nodes[n].store;
    const size_t count = a.records.size();
    std::optional<result<storage::apply_result>> r;
    store.apply_remote_async(std::move(a.records), a.from, a.cursor,
                             [&r](result<storage::apply_result> x) { r = std::move(x); });
    if (!r) r = result<storage::apply_result>(error(errc::internal, "apply did not complete"));
    if (*r)
      tr(n, "apply s=%llu n=%zu applied=%zu unchanged=%zu rejected=%zu", static_cast<unsigned long long>(id), count,
         (*r)->applied, (*r)->unchanged, (*r)->rejected.size());
    else
      tr(n, "apply s=%llu n=%zu failed: %s", static_cast<unsigned long long>(id), count, r->err().to_string().c_str());
    auto* l = find_link(id);
    if (!l || reported) return;
    if (sd == 1 && l->cut_after_apply && *r) {
      l->cut_after_apply = false;
      teardown(*l, error(errc::unavailable, "connection cut after the Push was applied"), "cut before ack");
      return;
    }
    if (sd == 0)
      l->um->on_applied(a.token, std::move(*r), node_now(n));
    else
      l->dm->on_applied(a.token, std::move(*r), node_now(n));
    pump(*l, sd);
  }

  /// Ends a session: both ends see the link close; frames in flight are lost.
  void teardown(sim_link& l, const error& why, const char* what) {
    if (!l.alive) return;
    l.alive = false;
    tr(l.down, "session s=%llu to %s closed (%s): %s", static_cast<unsigned long long>(l.id),
       nodes[l.up].name.c_str(), what, why ? why.to_string().c_str() : "ok");
    auto& d = nodes[l.down];
    if (d.uplink == l.id) d.uplink = 0;
    nodes[l.up].downlinks.erase(l.id);
    auto it = links.find(l.id);
    if (it != links.end()) {
      graveyard.push_back(std::move(it->second));
      links.erase(it);
    }
    // The supervisor restarts the uplink after its backoff.
    if (d.up) {
      int64_t delay = d.retry->on_failed(epoch_base_ms + now + d.skew);
      schedule_connect(l.down, now + delay);
    }
  }

  void schedule_connect(int n, int64_t when) {
    uint64_t gen = ++nodes[n].connect_gen;
    at(when, [this, n, gen] {
      if (nodes[n].connect_gen != gen) return;
      attempt(n);
    });
  }

  /// The supervisor dials the upstream.
  void attempt(int n) {
    auto& nd = nodes[n];
    if (!nd.up || nd.uplink != 0 || nd.parent < 0) return;
    const int p = nd.parent;
    const char* refused = nullptr;
    if (nd.partitioned_until > now)
      refused = "partitioned";
    else if (nd.resetting)
      refused = "resetting";
    else if (!nodes[p].up)
      refused = "upstream down";
    else if (nodes[p].resetting)
      refused = "upstream resetting";
    if (refused) {
      int64_t delay = nd.retry->on_failed(node_now(n));
      tr(n, "dial %s failed (%s), retry in %lld ms", nodes[p].name.c_str(), refused, static_cast<long long>(delay));
      schedule_connect(n, now + delay);
      return;
    }
    auto l = std::make_unique<sim_link>();
    l->id = ++next_link;
    l->down = n;
    l->up = p;
    l->um = std::make_unique<actors::uplink_machine>(identity(n), sopts, *nd.store);
    l->dm = std::make_unique<actors::downlink_machine>(
        identity(p), sopts, *nodes[p].store, [this, p](const v1::Hello& h) -> result<actors::grant> {
          return actors::admit(h, identity(p), *nodes[p].store);
        });
    l->known_head = heads(n);
    auto* raw = l.get();
    links[l->id] = std::move(l);
    nd.uplink = raw->id;
    nodes[p].downlinks.insert(raw->id);
    tr(n, "dial %s s=%llu", nodes[p].name.c_str(), static_cast<unsigned long long>(raw->id));
    raw->um->start(node_now(n));
    raw->dm->start(node_now(p));
    pump(*raw, 0);
    if (raw->alive) pump(*raw, 1);
  }

  void drop_links_of(int n, const char* what) {
    std::vector<uint64_t> ids;
    if (nodes[n].uplink) ids.push_back(nodes[n].uplink);
    ids.insert(ids.end(), nodes[n].downlinks.begin(), nodes[n].downlinks.end());
    for (uint64_t id : ids)
      if (auto* l = find_link(id)) teardown(*l, error(errc::unavailable, std::string(what)), what);
  }

  void tick() {
    std::vector<uint64_t> ids;
    ids.reserve(links.size());
    for (const auto& [id, l] : links)
      ids.push_back(id);
    for (uint64_t id : ids) {
      tick_side(id, 0);
      tick_side(id, 1);
    }
  }

  /// The timer of one side of link `id` (0 = its uplink, on its node's clock), if the
  /// link still exists, then what that machine wants.
  void tick_side(uint64_t id, int sd) {
    auto* l = find_link(id);
    if (!l) return;
    if (sd == 0)
      l->um->on_tick(node_now(l->down));
    else
      l->dm->on_tick(node_now(l->up));
    pump(*l, sd);
  }

  // -- node lifecycle -------------------------------------------------------------------

  /// `n` crashes and restarts after `downtime`, cut short at the end of chaos (at least 1 ms).
  void crash(int n, int64_t downtime) {
    auto& nd = nodes[n];
    downtime = std::max<int64_t>(1, clamp_heal(downtime) - now);
    tr(n, "crash, down for %lld ms", static_cast<long long>(downtime));
    nd.up = false;
    ++nd.epoch;
    ++nd.connect_gen;
    nd.crash_after_writes = 0; // an armed disk fault stays: it strikes the restarted node
    nd.resetting = false;      // a reset not yet carried out is dropped with the node's requests
    drop_links_of(n, "peer crashed");
    graveyard.clear();  // the machines refer to the store closed next
    nd.store.reset();
    nd.disk_free_at = now;
    nd.disk_pending = 0;
    nd.flush_pending = false;
    nd.uplink_dirty = false;
    uint64_t gen = ++nd.restart_gen;
    at(now + downtime, [this, n, gen] {
      if (nodes[n].restart_gen == gen) restart(n);
    });
  }

  void restart(int n) {
    auto& nd = nodes[n];
    if (nd.up) return;
    ++nd.restart_gen;
    if (auto e = open_store(n)) {
      tr(n, "restart failed: %s", e.to_string().c_str());
      uint64_t gen = nd.restart_gen;
      at(now + 1000, [this, n, gen] {
        if (nodes[n].restart_gen == gen) restart(n);
      });
      return;
    }
    nd.up = true;
    nd.retry = std::make_unique<actors::backoff>(bopts, 1, sup_rng.next_u64());
    tr(n, "restart as %s", core::node_id_to_string(nd.store->node()).c_str());
    if (nd.parent >= 0) schedule_connect(n, now + net_rng.between(0, 50));
  }

  void lose_disk(int n) {
    auto& nd = nodes[n];
    lost_disk ld;
    ld.node = nd.name;
    ld.identity = nd.id;
    ld.at_ms = now;
    for (uint8_t lane = 0; lane < core::lane_count; ++lane) {
      uint64_t after = 0;
      for (;;) {
        auto w = nd.store->outbox_window(lane, after, 1024);
        if (!w || w->empty()) break;
        for (const auto& e : *w)
          ld.unsent.push_back(e.rec.key);
        after = w->back().seq;
      }
    }
    nd.up = false;
    ++nd.epoch;
    ++nd.connect_gen;
    ++nd.restart_gen;
    nd.crash_after_writes = 0;
    nd.disk_fault_after_writes = 0;
    nd.resetting = false;
    drop_links_of(n, "peer lost its disk");
    graveyard.clear();
    nd.store.reset();
    nd.db.reset();
    nd.id = nd.spares.front();
    nd.spares.erase(nd.spares.begin());
    ld.reborn_as = nd.id;
    nd.disk_free_at = now;
    nd.disk_pending = 0;
    nd.flush_pending = false;
    nd.uplink_dirty = false;
    nd.disk_fault_until = 0;
    tr(n, "disk lost: %zu unsent outbox entries; rebuilt as %s", ld.unsent.size(),
       core::node_id_to_string(nd.id).c_str());
    hist.lost.push_back(std::move(ld));
    if (auto e = open_db(n)) {
      tr(n, "rebuild failed: %s", e.to_string().c_str());
      return;
    }
    nd.up = true;
    nd.retry = std::make_unique<actors::backoff>(bopts, 1, sup_rng.next_u64());
    schedule_connect(n, now + net_rng.between(0, 50));
  }

  // -- faults ---------------------------------------------------------------------------

  std::vector<int> pick_nodes(bool hq, bool branches, bool terminals, bool only_up) const {
    std::vector<int> out;
    for (size_t i = 0; i < nodes.size(); ++i) {
      const auto& nd = nodes[i];
      if (only_up && !nd.up) continue;
      if ((nd.role == storage::node_role::hq && hq) || (nd.role == storage::node_role::branch && branches) ||
          (nd.role == storage::node_role::terminal && terminals))
        out.push_back(static_cast<int>(i));
    }
    return out;
  }
  template <class T>
  std::optional<T> choose(const std::vector<T>& v) {
    if (v.empty()) return std::nullopt;
    return v[fault_rng.below(v.size())];
  }
  int64_t clamp_heal(int64_t d) const { return std::min(now + d, opts.chaos_ms); }

  void inject_fault() {
    if (now >= opts.chaos_ms) return;
    std::vector<uint32_t> kinds;
    for (uint32_t bit = 1; bit & fault_all; bit <<= 1)
      if (opts.faults & bit) kinds.push_back(bit);
    if (kinds.empty()) return;
    uint32_t kind = *choose(kinds);
    bool done = false;
    switch (kind) {
    case fault_partition: done = fault_partition_(); break;
    case fault_cut: done = fault_cut_(); break;
    case fault_delay: done = fault_delay_(); break;
    case fault_duplicate: done = fault_duplicate_(); break;
    case fault_crash: done = fault_crash_(); break;
    case fault_clock: done = fault_clock_(); break;
    case fault_disk: done = fault_disk_(); break;
    case fault_disk_loss: done = fault_disk_loss_(); break;
    case fault_reset:
      done = fault_reset_();
      break;
    default: break;
    }
    if (done) ++hist.faults_injected;
  }

  bool fault_partition_() {
    // A whole branch from HQ half the time, else a terminal from its branch.
    bool branch = fault_rng.below(2) == 0;
    auto n = choose(pick_nodes(false, branch, !branch, false));
    if (!n) return false;
    auto& nd = nodes[*n];
    int64_t until = clamp_heal(log_uniform(fault_rng, 1000, 24 * 3600'000));
    nd.partitioned_until = std::max(nd.partitioned_until, until);
    tr(*n, "fault partition from %s until %lld", nodes[nd.parent].name.c_str(),
       static_cast<long long>(nd.partitioned_until));
    if (auto* l = find_link(nd.uplink)) teardown(*l, error(errc::unavailable, "partitioned"), "partition");
    int node = *n;
    at(until, [this, node] {
      auto& x = nodes[node];
      if (x.partitioned_until != 0 && x.partitioned_until <= now) {
        x.partitioned_until = 0;
        tr(node, "heal partition");
      }
    });
    return true;
  }

  bool fault_cut_() {
    std::vector<uint64_t> ids;
    for (const auto& [id, l] : links)
      if (l->alive) ids.push_back(id);
    auto id = choose(ids);
    if (!id) return false;
    auto* l = find_link(*id);
    if (fault_rng.below(2) == 0) {
      // Half the cuts fall right after one of the next few frames either end reads:
      // between a frame's handling and what must follow it (an Ack, a cursor, a
      // Welcome's first Push), where a cut at a random moment rarely lands.
      l->cut_after_reads = static_cast<uint32_t>(fault_rng.between(1, 4));
      tr(l->down, "fault cut armed s=%llu: after %u more frames read", static_cast<unsigned long long>(*id),
         l->cut_after_reads);
      return false; // counted when it strikes (pump)
    }
    tr(l->down, "fault cut s=%llu%s", static_cast<unsigned long long>(*id),
       l->s[0].writing || l->s[1].writing ? " with frames in flight" : "");
    teardown(*l, error(errc::unavailable, "connection cut"), "cut");
    return true;
  }

  bool fault_delay_() {
    auto n = choose(pick_nodes(false, true, true, false));
    if (!n) return false;
    auto& nd = nodes[*n];
    int64_t until = clamp_heal(log_uniform(fault_rng, 10'000, 30 * 60'000));
    nd.slow_until = std::max(nd.slow_until, until);
    tr(*n, "fault delay on the link to %s until %lld", nodes[nd.parent].name.c_str(),
       static_cast<long long>(nd.slow_until));
    return true;
  }

  bool fault_duplicate_() {
    std::vector<uint64_t> ids;
    for (const auto& [id, l] : links)
      if (l->alive) ids.push_back(id);
    auto id = choose(ids);
    if (!id) return false;
    auto* l = find_link(*id);
    if (fault_rng.below(2) == 0) {
      int sd = static_cast<int>(fault_rng.below(2));
      l->s[sd].dup_next = true;
      tr(l->down, "fault duplicate next frame s=%llu %s", static_cast<unsigned long long>(*id),
         sd == 0 ? "up" : "down");
    } else {
      l->cut_after_apply = true;
      tr(l->down, "fault replay s=%llu (cut after the next Push is applied)", static_cast<unsigned long long>(*id));
    }
    return true;
  }

  bool fault_crash_() {
    auto n = choose(pick_nodes(true, true, true, true));
    if (!n) return false;
    int64_t down = log_uniform(fault_rng, 1000, 30 * 60'000);
    if (fault_rng.below(2) == 0) {
      // Half the crashes fall right after one of the node's next few store requests:
      // between two commits of a multi-step change, where a random moment rarely lands.
      auto& nd = nodes[*n];
      nd.crash_after_writes = static_cast<uint32_t>(fault_rng.between(1, 4));
      nd.armed_downtime = down;
      tr(*n, "fault crash armed: after %u more store requests, down for %lld ms", nd.crash_after_writes,
         static_cast<long long>(down));
      return false; // counted when it strikes (wrote)
    }
    crash(*n, down);
    return true;
  }

  bool fault_clock_() {
    auto n = choose(pick_nodes(true, true, true, false));
    if (!n) return false;
    auto& nd = nodes[*n];
    int64_t d;
    if (fault_rng.below(2) == 0)
      d = (fault_rng.below(2) == 0 ? 1 : -1) * fault_rng.between(3600'000, 12 * 3600'000);
    else
      d = -fault_rng.between(60'000, 3 * 3600'000);
    nd.skew += d;
    tr(*n, "fault clock %+lld ms (skew now %lld ms)", static_cast<long long>(d), static_cast<long long>(nd.skew));
    return true;
  }

  bool fault_disk_() {
    auto n = choose(pick_nodes(true, true, true, true));
    if (!n) return false;
    auto& nd = nodes[*n];
    bool full = fault_rng.below(2) == 0;
    int64_t duration = log_uniform(fault_rng, 1000, 20 * 60'000);
    if (fault_rng.below(2) == 0) {
      // Half the disk faults start right after one of the node's next few store
      // requests (see fault_crash_).
      nd.disk_fault_after_writes = static_cast<uint32_t>(fault_rng.between(1, 4));
      nd.armed_disk_full = full;
      nd.armed_disk_ms = duration;
      tr(*n, "fault disk %s armed: after %u more store requests, for %lld ms", full ? "full" : "io_error",
         nd.disk_fault_after_writes, static_cast<long long>(duration));
      return false; // counted when it strikes (wrote)
    }
    start_disk_fault(*n, full, duration);
    return true;
  }

  void start_disk_fault(int n, bool full, int64_t duration) {
    auto& nd = nodes[n];
    int64_t until = clamp_heal(duration);
    if (until <= now) return; // armed, but chaos ended first
    if (full)
      nd.faults->disk_full = true;
    else
      nd.faults->io_error = true;
    nd.disk_fault_until = std::max(nd.disk_fault_until, until);
    tr(n, "fault disk %s until %lld", full ? "full" : "io_error",
       static_cast<long long>(nd.disk_fault_until));
    at(until, [this, n] {
      if (nodes[n].disk_fault_until != 0 && nodes[n].disk_fault_until <= now) heal_disk(n);
    });
  }

  void heal_disk(int n) {
    auto& nd = nodes[n];
    nd.disk_fault_until = 0;
    nd.faults->disk_full = false;
    nd.faults->io_error = false;
    auto s = nd.db->resume();
    tr(n, "heal disk%s%s", s ? ": resume failed: " : "", s ? s.to_string().c_str() : "");
  }

  bool fault_disk_loss_() {
    std::vector<int> c;
    for (int n : pick_nodes(false, false, true, true))
      if (!nodes[n].spares.empty()) c.push_back(n);
    auto n = choose(c);
    if (!n) return false;
    tr(*n, "fault disk loss");
    lose_disk(*n);
    return true;
  }

  bool fault_reset_() {
    // An operator's reset of a branch or terminal, as node::reset does it: the node's
    // sessions end, what they asked of the store is carried out, then the store starts
    // over in one commit (its unsent outbox queued again, the rest downloaded anew) and
    // the node dials again. Meanwhile the POS app keeps selling.
    auto n = choose(pick_nodes(false, true, true, true));
    if (!n || nodes[*n].resetting) return false;
    nodes[*n].resetting = true;
    tr(*n, "fault reset ordered by an operator");
    drop_links_of(*n, "node resetting");
    disk(*n, [this, n = *n] { reset_store(n); });
    return true;
  }

  void reset_store(int n) {
    auto& nd = nodes[n];
    nd.resetting = false;
    // What its conflicts table lists goes with the store: noted, for the checker.
    auto listed = nd.store->conflicts(false, std::numeric_limits<size_t>::max());
    storage::start_over_options so;
    so.keep = actors::admission_collections(); // as node::reset does
    auto r = nd.store->start_over(std::move(so));
    if (!r) {
      tr(n, "reset failed: %s", r.err().to_string().c_str());
    } else {
      tr(n, "reset: requeued %llu/%llu/%llu/%llu, floor %llu, counter identity %s",
         static_cast<unsigned long long>(r->requeued[0]), static_cast<unsigned long long>(r->requeued[1]),
         static_cast<unsigned long long>(r->requeued[2]), static_cast<unsigned long long>(r->requeued[3]),
         static_cast<unsigned long long>(r->floor), core::node_id_to_string(r->counter_node).c_str());
      if (listed)
        for (const auto& e : *listed)
          hist.conflicts_emptied.push_back(e.key);
      hist.counter_owner[r->counter_node] = nd.store->node();
    }
    schedule_connect(n, now + net_rng.between(0, 50));
  }

  void end_chaos() {
    chaos_over = true;
    tr(-1, "chaos ends: heal every fault, traffic stops");
    for (size_t i = 0; i < nodes.size(); ++i) {
      int n = static_cast<int>(i);
      auto& nd = nodes[i];
      if (nd.partitioned_until > 0) {
        nd.partitioned_until = 0;
        tr(n, "heal partition");
      }
      nd.slow_until = 0;
      if (nd.disk_fault_until > 0 || nd.faults->disk_full || nd.faults->io_error) heal_disk(n);
      nd.crash_after_writes = 0;
      nd.disk_fault_after_writes = 0;
      if (!nd.up) restart(n);
    }
    for (auto& [id, l] : links) {
      l->cut_after_reads = 0;
      l->cut_due = false;
    }
    hist.last_fault_ms = now;
    end_ms = now + opts.converge_bound_ms;
  }

  // -- quiet ------------------------------------------------------------------------------

  bool quiet() {
    for (size_t i = 0; i < nodes.size(); ++i) {
      const auto& nd = nodes[i];
      if (!nd.up || nd.disk_pending > 0 || nd.flush_pending) return false;
      for (auto p : nd.store->pending())
        if (p != 0) return false;
      if (nd.parent < 0) continue;
      auto* l = find_link(nd.uplink);
      if (!l || !l->welcomed) return false;
      if (!l->dm->status().caught_up) return false;
      if (l->um->status().lag_records != 0) return false;
    }
    for (const auto& [id, l] : links)
      for (const auto& s : l->s)
        if (!s.unwritten.empty() || (s.wire && s.wire->kind_case() != v1::Frame::kHeartbeat) || !s.inbox.empty())
          return false;
    return true;
  }

  /// Traces, for a run that never went quiet, what each node still waits for.
  void explain_not_quiet() {
    for (size_t i = 0; i < nodes.size(); ++i) {
      const auto& nd = nodes[i];
      const int n = static_cast<int>(i);
      if (!nd.up) {
        tr(n, "not quiet? down");
        continue;
      }
      auto p = nd.store->pending();
      tr(n, "not quiet? disk_pending=%zu flush_pending=%d pending=%llu/%llu/%llu/%llu",
         static_cast<size_t>(nd.disk_pending), nd.flush_pending ? 1 : 0,
         static_cast<unsigned long long>(p[0]), static_cast<unsigned long long>(p[1]),
         static_cast<unsigned long long>(p[2]), static_cast<unsigned long long>(p[3]));
      if (nd.parent < 0) continue;
      auto* l = find_link(nd.uplink);
      if (!l) {
        tr(n, "not quiet? no uplink");
        continue;
      }
      auto us = l->um->status();
      auto ds = l->dm->status();
      tr(n,
         "not quiet? uplink s=%llu welcomed=%d lag_records=%llu in_flight=%llu/%llu/%llu/%llu; downlink "
         "caught_up=%d",
         static_cast<unsigned long long>(l->id), l->welcomed ? 1 : 0,
         static_cast<unsigned long long>(us.lag_records), static_cast<unsigned long long>(us.in_flight[0]),
         static_cast<unsigned long long>(us.in_flight[1]), static_cast<unsigned long long>(us.in_flight[2]),
         static_cast<unsigned long long>(us.in_flight[3]), ds.caught_up ? 1 : 0);
      for (int sd = 0; sd < 2; ++sd) {
        const auto& e = l->s[sd];
        tr(n, "not quiet? side %s unwritten=%zu wire=%s inbox=%zu wants_frame=%d", sd == 0 ? "up" : "down",
           e.unwritten.size(), e.wire ? std::to_string(e.wire->kind_case()).c_str() : "-", e.inbox.size(),
           sd == 0 ? (l->um->wants_frame() ? 1 : 0) : (l->dm->wants_frame() ? 1 : 0));
      }
    }
  }

  // -- POS traffic ----------------------------------------------------------------------

  /// Schedules the next activity of `n` of mean interval `mean_ms`.
  void every(int n, double mean_ms, void (impl::*fn)(int)) {
    int64_t when = now + exp_ms(pos_rng, mean_ms);
    if (when >= opts.chaos_ms) return;
    at(when, [this, n, mean_ms, fn] {
      if (nodes[n].up) {
        (this->*fn)(n);
        wrote(n);
      }
      every(n, mean_ms, fn);
    });
  }

  void sell(int n) {
    auto& nd = nodes[n];
    auto& st = *nd.store;
    std::string id = st.new_id();
    core::record_key key{tenant_id, nd.branch, "sale", id};
    sale_context ctx;
    ctx.terminal_id = nd.name;
    ctx.receipt_no = ++nd.receipts;
    ctx.time_ms = node_now(n);
    auto d = make_sale(pos_rng, catalog, id, ctx, 1, 5);
    auto r = st.record_sale(key, d.body);
    if (!r) {
      tr(n, "sale %s refused: %s", id.c_str(), r.err().to_string().c_str());
      return;
    }
    acked_sale s;
    s.key = key;
    s.node = nd.name;
    s.identity = st.node();
    s.counter_identity = st.counter_node();
    for (const auto& ln : d.lines)
      s.items.emplace_back(ln.product_id, ln.quantity);
    s.at_ms = now;
    hist.sales.push_back(std::move(s));
    nd.last_sale_id = id;
    ++nd.day_sales;
    nd.day_total += d.total;
    tr(n, "sale %s items=%zu total=%lld", id.c_str(), d.lines.size(), static_cast<long long>(d.total));
  }

  void give_back(int n) {
    auto& nd = nodes[n];
    const auto& p = catalog[pos_rng.below(catalog.size())];
    int64_t qty = p.unit == "kg" ? 500 : 1000;
    v1::Return r;
    r.set_sale_id(nd.last_sale_id);
    auto* it = r.add_items();
    it->set_product_id(p.id);
    it->set_sku(p.sku);
    it->set_name(p.name);
    it->set_quantity(qty);
    it->set_unit_price(p.price);
    it->set_line_total(qty * p.price / 1000);
    r.set_refund(qty * p.price / 1000);
    r.set_method("cash");
    r.set_reason("customer return");
    r.set_terminal_id(nd.name);
    r.set_time_ms(node_now(n));
    record_stock_change(n, "return", r.SerializeAsString(), p.id, qty);
  }

  void stocktake(int n) {
    auto& nd = nodes[n];
    const auto& p = catalog[pos_rng.below(catalog.size())];
    int64_t delta = pos_rng.between(1, 10) * 1000 * (pos_rng.below(2) == 0 ? 1 : -1);
    auto level = nd.store->stock_level(tenant_id, nd.branch, p.id);
    v1::StockMovement m;
    m.set_product_id(p.id);
    m.set_delta(delta);
    m.set_kind("adjust");
    m.set_reason("stocktake");
    m.set_user_id("manager-" + nd.name);
    m.set_time_ms(node_now(n));
    m.set_counted((level ? *level : 0) + delta);
    record_stock_change(n, "stock_movement", m.SerializeAsString(), p.id, delta);
  }

  void record_stock_change(int n, const char* collection, std::string body, const std::string& product,
                           int64_t delta) {
    auto& nd = nodes[n];
    auto& st = *nd.store;
    storage::put_op op;
    op.key = core::record_key{tenant_id, nd.branch, collection, st.new_id()};
    op.body = std::move(body);
    auto key = op.key;
    auto r = st.write({std::move(op)});
    if (!r) {
      tr(n, "%s %s refused: %s", collection, key.id.c_str(), r.err().to_string().c_str());
      return;
    }
    acked_stock_change c;
    c.key = key;
    c.node = nd.name;
    c.identity = st.node();
    c.counter_identity = st.counter_node();
    c.branch = nd.branch;
    c.product = product;
    c.delta = delta;
    c.at_ms = now;
    hist.stock_changes.push_back(std::move(c));
    tr(n, "%s %s product=%s delta=%lld", collection, key.id.c_str(), product.c_str(), static_cast<long long>(delta));
  }

  void edit_product(int n) {
    auto& nd = nodes[n];
    auto& st = *nd.store;
    if (nd.role == storage::node_role::hq && later_added < later.size() && pos_rng.below(8) == 0) {
      const auto& p = later[later_added++];
      storage::put_op op;
      op.key = product_key(tenant_id, p.id);
      op.body = product_body(p);
      auto r = st.write({std::move(op)});
      tr(n, "new product %s%s%s", p.id.c_str(), r ? "" : " refused: ", r ? "" : r.err().to_string().c_str());
      return;
    }
    // Half the edits go to a few "hot" products, so that HQ and branches meet on the
    // same field now and then (most of all across a partition).
    const size_t hot = std::min<size_t>(3, catalog.size());
    const auto& p = catalog[pos_rng.below(2) == 0 ? pos_rng.below(hot) : pos_rng.below(catalog.size())];
    const uint32_t field = pos_rng.below(2) == 0 ? 3 : 5;  // name or price
    auto key = product_key(tenant_id, p.id);
    auto cur = st.get(key);
    auto view = st.read(key);
    if (!cur || !view || !*cur || !view->exists) return;  // not synced here yet
    v1::Product body;
    if (!body.ParseFromString(view->body)) return;
    ++edit_no;
    if (field == 3)
      body.set_name(p.name + " [" + nd.name + " #" + std::to_string(edit_no) + "]");
    else
      body.set_price(p.price + static_cast<int64_t>(edit_no) * 100 + n);
    body.set_updated_ms(node_now(n));
    const auto ctx = (*cur)->context();
    // Edits of the same field this node has not seen: HQ against a branch.
    auto& by_node = edits[{p.id, field}];
    std::vector<int> unseen;
    for (const auto& [m, d] : by_node) {
      if (m == n || ctx.covers(d)) continue;
      bool pair = (nd.role == storage::node_role::hq) != (nodes[m].role == storage::node_role::hq);
      if (pair) unseen.push_back(m);
    }
    storage::put_op op;
    op.key = key;
    op.body = body.SerializeAsString();
    auto r = st.write({std::move(op)});
    if (!r) {
      tr(n, "edit %s field %u refused: %s", p.id.c_str(), field, r.err().to_string().c_str());
      return;
    }
    for (const auto& c : r->changes)
      if (c.key == key && c.dot) by_node[n] = *c.dot;
    for (int m : unseen) {
      concurrent_edit ce;
      ce.key = key;
      ce.field = field == 3 ? "name" : "price";
      ce.node_a = nodes[m].name;
      ce.node_b = nd.name;
      hist.concurrent_edits.push_back(std::move(ce));
    }
    tr(n, "edit product %s %s%s", p.id.c_str(), field == 3 ? "name" : "price",
       unseen.empty() ? "" : " (concurrent with an unseen edit)");
  }

  void end_of_day(int n) {
    auto& nd = nodes[n];
    auto& st = *nd.store;
    v1::Report r;
    r.set_kind("end_of_day");
    r.set_terminal_id(nd.name);
    r.set_from_ms(nd.day_start);
    r.set_to_ms(node_now(n));
    r.set_sales_count(static_cast<int64_t>(nd.day_sales));
    r.set_sales_total(nd.day_total);
    std::string payload(static_cast<size_t>(pos_rng.between(2000, 6000)), ' ');
    for (auto& c : payload)
      c = static_cast<char>('a' + pos_rng.below(26));
    r.set_payload(std::move(payload));
    storage::put_op op;
    op.key = core::record_key{tenant_id, nd.branch, "report", st.new_id()};
    op.body = r.SerializeAsString();
    auto id = op.key.id;
    auto res = st.write({std::move(op)});
    if (!res) {
      tr(n, "report %s refused: %s", id.c_str(), res.err().to_string().c_str());
      return;
    }
    nd.day_start = node_now(n);
    nd.day_sales = 0;
    nd.day_total = 0;
    tr(n, "report %s", id.c_str());
  }

  // -- run --------------------------------------------------------------------------------

  void start() {
    const double hour = 3600'000.0;
    const double sale_mean = opts.sales_per_terminal_hour > 0 ? hour / opts.sales_per_terminal_hour : 0;
    for (size_t i = 0; i < nodes.size(); ++i) {
      int n = static_cast<int>(i);
      auto& nd = nodes[i];
      nd.retry = std::make_unique<actors::backoff>(bopts, 1, sup_rng.next_u64());
      nd.day_start = node_now(n);
      if (nd.parent >= 0) schedule_connect(n, net_rng.between(0, 50));
      switch (nd.role) {
      case storage::node_role::terminal:
        if (sale_mean > 0) {
          every(n, sale_mean, &impl::sell);
          every(n, sale_mean * 10, &impl::give_back);
        }
        every(n, 2 * hour, &impl::end_of_day);
        break;
      case storage::node_role::branch:
        if (sale_mean > 0) every(n, sale_mean * 4, &impl::sell);
        every(n, hour, &impl::stocktake);
        every(n, hour / 6, &impl::edit_product);
        break;
      case storage::node_role::hq:
        every(n, hour / 12, &impl::edit_product);
        break;
      }
    }
    // Faults: on average one every chaos/40.
    if (opts.faults != 0 && opts.chaos_ms > 0) schedule_fault(static_cast<double>(opts.chaos_ms) / 40.0);
    at(opts.chaos_ms, [this] { end_chaos(); });
    at(tick_period_ms, [this] { on_tick_event(); });
    end_ms = opts.chaos_ms + opts.converge_bound_ms;
  }

  void schedule_fault(double mean) {
    int64_t when = now + exp_ms(fault_rng, mean);
    if (when >= opts.chaos_ms) return;
    at(when, [this, mean] {
      inject_fault();
      schedule_fault(mean);
    });
  }

  void on_tick_event() {
    if (chaos_over && quiet()) {
      hist.quiet_ms = now;
      tr(-1, "quiet after %lld ms", static_cast<long long>(now - hist.last_fault_ms));
      stop = true;
      return;
    }
    tick();
    at(now + tick_period_ms, [this] { on_tick_event(); });
  }

  void run() {
    start();
    while (!stop && !queue.empty()) {
      if (queue.top().at > end_ms) break;
      event ev = std::move(const_cast<event&>(queue.top()));
      queue.pop();
      now = ev.at;
      graveyard.clear();
      ++hist.events;
      ev.fn();
    }
    graveyard.clear();
    if (hist.quiet_ms < 0) {
      now = std::max(now, end_ms);
      tr(-1, "not quiet %lld ms after the last fault", static_cast<long long>(now - hist.last_fault_ms));
      explain_not_quiet();
    }
  }
};

// -- world ------------------------------------------------------------------------------------

world::world(std::unique_ptr<impl> i) : impl_(std::move(i)) {}

world::~world() {
  if (!impl_) return;
  // Machines refer to the stores: they go first.
  impl_->links.clear();
  impl_->graveyard.clear();
  while (!impl_->queue.empty())
    impl_->queue.pop();
  for (auto& n : impl_->nodes)
    n.store.reset();
}

result<std::unique_ptr<world>> world::create(const options& opts) {
  if (opts.branches == 0) return error(errc::invalid_argument, "dst: at least one branch is needed");
  if (opts.products == 0) return error(errc::invalid_argument, "dst: at least one product is needed");
  if (opts.chaos_ms < 0 || opts.converge_bound_ms <= 0)
    return error(errc::invalid_argument, "dst: chaos_ms must be >= 0 and converge_bound_ms > 0");
  if ((opts.faults & ~static_cast<uint32_t>(fault_all)) != 0)
    return error(errc::invalid_argument, "dst: unknown fault bits in the mask");
  auto i = std::make_unique<impl>();
  i->opts = opts;
  if (auto e = i->setup()) return e;
  return std::unique_ptr<world>(new world(std::move(i)));
}

void world::run() {
  impl_->run();
}

const options& world::opts() const {
  return impl_->opts;
}

const history& world::hist() const {
  return impl_->hist;
}

std::vector<node_view> world::nodes() const {
  std::vector<node_view> out;
  out.reserve(impl_->nodes.size());
  for (const auto& n : impl_->nodes) {
    node_view v;
    v.name = n.name;
    v.role = n.role;
    v.branch = n.branch;
    v.live_stock = n.live_stock;
    v.id = n.id;
    v.store = n.store.get();
    out.push_back(std::move(v));
  }
  return out;
}

const core::collection_registry& world::registry() const {
  return *impl_->reg;
}

int64_t world::now_ms() const {
  return impl_->now;
}

uint64_t world::trace_hash() const {
  return impl_->hash;
}

const std::string& world::trace() const {
  return impl_->trace_text;
}

void world::trace_line(const std::string& line) {
  impl_->line(line);
}

} // namespace possync::sim::dst
