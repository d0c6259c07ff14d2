// The invariants of the deterministic simulation, checked after a run (dst_world.hpp,
// README of this folder). Each violation is one line naming the invariant, the node,
// the key and the figures; the checker only reads the stores and the world's history.

#include "dst_check.hpp"

#include <algorithm>
#include <limits>
#include <map>
#include <optional>
#include <set>
#include <tuple>
#include <utility>

#include "possync/actors/session_machine.hpp"
#include "possync/core/policy.hpp"
#include "possync/v1/pos.pb.h"

namespace possync::sim::dst {

namespace {

constexpr size_t all = std::numeric_limits<size_t>::max();
/// A badly broken run must not print a million lines.
constexpr size_t max_violations = 200;
/// Differing keys named per compared feed.
constexpr size_t max_keys_per_feed = 3;

uint64_t fnv1a(const std::string& data, uint64_t h = 0xcbf29ce484222325ull) {
  for (unsigned char c : data) {
    h ^= c;
    h *= 0x100000001b3ull;
  }
  return h;
}

void put_u64(std::string& out, uint64_t v) {
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}
void put_str(std::string& out, const std::string& s) {
  put_u64(out, s.size());
  out += s;
}

/// Digest of one record state: key, every version (dot, past, clock, flags, body,
/// field stamps). Versions are sorted by dot in a record, so equal states hash equal.
uint64_t record_digest(const core::record& r) {
  std::string b;
  put_str(b, r.key.to_string());
  for (const auto& v : r.versions) {
    put_u64(b, v.id.node);
    put_u64(b, v.id.counter);
    put_str(b, v.past.encode());
    put_u64(b, v.hlc.wall_ms);
    put_u64(b, v.hlc.logical);
    put_u64(b, v.hlc.node);
    b.push_back(v.tombstone ? 1 : 0);
    b.push_back(v.hq ? 1 : 0);
    put_str(b, v.body);
    put_u64(b, v.fields.size());
    for (const auto& [num, st] : v.fields) {
      put_u64(b, num);
      put_u64(b, st.origin.node);
      put_u64(b, st.origin.counter);
      put_u64(b, st.hlc.wall_ms);
      put_u64(b, st.hlc.logical);
      put_u64(b, st.hlc.node);
      b.push_back(st.hq ? 1 : 0);
    }
  }
  return fnv1a(b);
}

std::string ms(int64_t v) { return std::to_string(v) + " ms"; }

std::string feed_name(const actors::feed_id& f) {
  return f.tenant + "/" + (f.scope.empty() ? "\"\"" : f.scope) + "/lane" + std::to_string(f.lane);
}

using inc_dec = std::pair<int64_t, int64_t>;  ///< counter entry: (inc, dec)

std::string entry_str(const inc_dec& e) {
  return "inc " + std::to_string(e.first) + " dec " + std::to_string(e.second);
}

/// Adds a per-commit net delta to a counter entry as counter_add_body does.
void add_delta(inc_dec& e, int64_t delta) {
  if (delta > 0) e.first += delta;
  else if (delta < 0) e.second += -delta;
}

class checker {
public:
  explicit checker(const world& w) : w_(w), h_(w.hist()), nodes_(w.nodes()) {}

  check_report run() {
    for (const auto& n : nodes_)
      if (n.role == storage::node_role::hq && !hq_) hq_ = &n;
    if (!hq_ || !hq_->store) {
      fail("setup: no open HQ store after the run");
      return finish();
    }
    tenant_ = find_tenant();
    for (const auto& l : h_.lost) {
      lost_[l.identity] = &l;
      for (const auto& k : l.unsent) {
        unsent_.insert(k);
        unsent_of_[l.identity].insert(k);
      }
    }
    for (const auto& s : h_.sales)
      own_counters_[s.node].insert(s.counter_identity);
    for (const auto& c : h_.stock_changes)
      own_counters_[c.node].insert(c.counter_identity);
    check_quiet();
    if (!tenant_.empty()) {
      check_sales();
      check_stock();
      check_digests();
    }
    check_conflicts();
    check_lanes();
    return finish();
  }

private:
  const world& w_;
  const history& h_;
  std::vector<node_view> nodes_;
  const node_view* hq_ = nullptr;
  std::string tenant_;
  /// Node name -> the counter identities its acknowledged sales and stock changes wrote.
  std::map<std::string, std::set<core::node_id>> own_counters_;
  std::map<core::node_id, const lost_disk*> lost_;
  std::set<core::record_key> unsent_;                              ///< of every lost disk
  std::map<core::node_id, std::set<core::record_key>> unsent_of_;  ///< per lost identity
  check_report rep_;
  size_t suppressed_ = 0;
  /// (node index, tenant, scope, lane) -> key -> digest
  std::map<std::tuple<size_t, std::string, uint8_t>, std::map<core::record_key, uint64_t>> digests_;

  void fail(std::string line) {
    if (rep_.violations.size() < max_violations) rep_.violations.push_back(std::move(line));
    else ++suppressed_;
  }

  check_report finish() {
    if (suppressed_ > 0)
      rep_.violations.push_back("(" + std::to_string(suppressed_) + " more violations not listed)");
    return std::move(rep_);
  }

  std::string find_tenant() const {
    for (const auto& s : h_.sales) return s.key.tenant;
    for (const auto& c : h_.stock_changes) return c.key.tenant;
    for (const auto& e : h_.concurrent_edits) return e.key.tenant;
    return "";
  }

  std::set<std::string> branches() const {
    std::set<std::string> out;
    for (const auto& n : nodes_)
      if (!n.branch.empty()) out.insert(n.branch);
    for (const auto& [b, p, level] : h_.initial_stock) out.insert(b);
    for (const auto& s : h_.sales) out.insert(s.key.scope);
    return out;
  }

  // -- converges -------------------------------------------------------------------

  void check_quiet() {
    const auto bound = w_.opts().converge_bound_ms;
    if (h_.quiet_ms < 0) {
      fail("converge: never quiet after the last fault (healed at " + ms(h_.last_fault_ms) + ", run ended at " +
           ms(w_.now_ms()) + ", bound " + ms(bound) + ")");
      return;
    }
    const int64_t took = h_.quiet_ms - h_.last_fault_ms;
    if (took > bound)
      fail("converge: quiet only " + ms(took) + " after the last fault (healed at " + ms(h_.last_fault_ms) +
           ", quiet at " + ms(h_.quiet_ms) + "), bound " + ms(bound));
  }

  // -- sales: at HQ exactly once, none invented --------------------------------------

  std::map<core::record_key, const acked_sale*> acked_;

  void check_sales() {
    for (const auto& s : h_.sales) {
      auto [it, fresh] = acked_.emplace(s.key, &s);
      if (!fresh)
        fail("history: sale " + s.key.to_string() + " acknowledged twice (" + it->second->node + " at " +
             ms(it->second->at_ms) + ", " + s.node + " at " + ms(s.at_ms) + ")");
    }
    auto& hq = *hq_->store;
    for (const auto& [key, s] : acked_) {
      auto r = hq.get(key);
      if (!r) {
        fail("sale-at-hq: hq cannot read " + key.to_string() + ": " + r.err().to_string());
        continue;
      }
      if (!r->has_value() || (*r)->empty()) {
        if (unsent_of_[s->identity].count(key)) {
          ++rep_.sales_lost_with_disk;
          continue;
        }
        fail("sale-at-hq: acked sale " + key.to_string() + " (node " + s->node + ", acked at " + ms(s->at_ms) +
             ") is not at hq" + (unsent_.count(key) ? " (unsent at a disk loss, but not of its own identity)" : ""));
        continue;
      }
      const auto& rec = **r;
      if (rec.versions.size() != 1) {
        fail("sale-at-hq: sale " + key.to_string() + " (node " + s->node + ") has " +
             std::to_string(rec.versions.size()) + " versions at hq, expected exactly one");
        continue;
      }
      const auto& v = rec.versions.front();
      if (v.tombstone) {
        fail("sale-at-hq: sale " + key.to_string() + " (node " + s->node + ") is a tombstone at hq");
        continue;
      }
      v1::Sale sale;
      if (!sale.ParseFromString(v.body)) {
        fail("sale-at-hq: sale " + key.to_string() + " at hq does not parse as a Sale");
        continue;
      }
      std::map<std::string, int64_t> stored, told;
      for (const auto& it : sale.items()) stored[it.product_id()] += it.quantity();
      for (const auto& [p, q] : s->items) told[p] += q;
      if (stored != told)
        fail("sale-at-hq: sale " + key.to_string() + " (node " + s->node + ") holds " +
             std::to_string(sale.items_size()) + " lines at hq that differ from the " +
             std::to_string(s->items.size()) + " the app recorded");
    }
    // What HQ holds: every sale of every branch was recorded by an app.
    for (const auto& b : branches()) {
      auto f = hq.read_feed(tenant_, b, core::lane_sales, 0, all);
      if (!f) {
        fail("sale-at-hq: hq cannot read the sales feed of " + b + ": " + f.err().to_string());
        continue;
      }
      uint64_t n = 0;
      for (const auto& e : *f) {
        if (e.rec.key.collection != "sale") continue;
        ++n;
        if (!acked_.count(e.rec.key))
          fail("phantom-sale: hq holds sale " + e.rec.key.to_string() + " that no POS app recorded");
      }
      rep_.sales_at_hq += n;
      auto idx = hq.sales_between(tenant_, b, std::numeric_limits<int64_t>::min(),
                                  std::numeric_limits<int64_t>::max(), all);
      if (!idx) fail("sale-at-hq: hq cannot list the sales of " + b + ": " + idx.err().to_string());
      else if (idx->size() != n)
        fail("sale-at-hq: hq's sales index of branch " + b + " lists " + std::to_string(idx->size()) +
             " sales, its feed holds " + std::to_string(n));
    }
    // Every node below HQ: the sales it holds of its own branch were recorded by an app.
    for (const auto& n : nodes_) {
      if (&n == hq_ || !n.store || n.branch.empty()) continue;
      auto f = n.store->read_feed(tenant_, n.branch, core::lane_sales, 0, all);
      if (!f) {
        fail("phantom-sale: " + n.name + " cannot read its sales feed: " + f.err().to_string());
        continue;
      }
      for (const auto& e : *f)
        if (e.rec.key.collection == "sale" && !acked_.count(e.rec.key))
          fail("phantom-sale: " + n.name + " holds sale " + e.rec.key.to_string() + " that no POS app recorded");
    }
  }

  // -- stock ----------------------------------------------------------------------------

  /// A terminal that never downloads stock holds, in each counter, entries of its own
  /// identities only: what its sales, returns and stocktakes wrote.
  void check_own_entries_only(const node_view& n, const core::record_key& sk) {
    auto r = n.store->get(sk);
    if (!r) {
      fail("stock: " + n.name + " cannot read " + sk.to_string() + ": " + r.err().to_string());
      return;
    }
    if (!r->has_value()) return;
    const auto& own = own_counters_[n.name];
    for (const auto& [who, totals] : core::counter_of(**r).entries)
      if (who != n.store->counter_node() && own.count(who) == 0)
        fail("stock: " + n.name + " (no live stock) holds the entry of " + core::node_id_to_string(who) +
             " in " + sk.to_string() + ": it downloaded stock it does not take");
  }

  void check_stock() {
    using bp = std::pair<std::string, std::string>;  // (branch, product)
    std::map<bp, int64_t> initial;
    for (const auto& [b, p, level] : h_.initial_stock) initial[{b, p}] += level;
    // What each identity's acknowledged writes imply for its counter entry.
    std::map<bp, std::map<core::node_id, inc_dec>> implied;
    for (const auto& s : h_.sales) {
      std::map<std::string, int64_t> per_product;
      for (const auto& [p, q] : s.items) per_product[p] += q;
      for (const auto& [p, q] : per_product)
        add_delta(implied[{s.key.scope, p}][s.counter_identity], -q);
    }
    std::map<std::tuple<core::record_key, std::string>, const acked_stock_change*> change_of;
    std::map<std::tuple<core::record_key, std::string>, int64_t> change_delta;
    for (const auto& c : h_.stock_changes) {
      change_of[{c.key, c.product}] = &c;
      change_delta[{c.key, c.product}] += c.delta;
    }
    for (const auto& [kp, d] : change_delta) {
      const auto* c = change_of[kp];
      add_delta(implied[{c->branch, c->product}][c->counter_identity], d);
    }
    std::set<bp> all_bp;
    for (const auto& [k, v] : initial) all_bp.insert(k);
    for (const auto& [k, v] : implied) all_bp.insert(k);

    for (const auto& key : all_bp) {
      const auto& [branch, product] = key;
      const core::record_key sk{tenant_, branch, "stock", product};
      auto r = hq_->store->get(sk);
      if (!r) {
        fail("stock: hq cannot read " + sk.to_string() + ": " + r.err().to_string());
        continue;
      }
      core::pn_counter actual;
      if (r->has_value()) actual = core::counter_of(**r);
      const auto& imp = implied[key];
      const int64_t init = initial.count(key) ? initial[key] : 0;
      std::set<core::node_id> ids;
      for (const auto& [id, e] : actual.entries) ids.insert(id);
      for (const auto& [id, e] : imp) ids.insert(id);
      int64_t expected = init;
      for (const auto id : ids) {
        const inc_dec a = actual.entries.count(id) ? actual.entries.at(id) : inc_dec{0, 0};
        const inc_dec i = imp.count(id) ? imp.at(id) : inc_dec{0, 0};
        const int64_t i_net = i.first - i.second;
        const int64_t a_net = a.first - a.second;
        expected += i_net;
        const std::string who = "identity " + core::node_id_to_string(id);
        if (id == hq_->id) {
          // HQ loaded the initial stock; its entry = initial + its own acked changes.
          if (a_net != init + i_net)
            fail("stock: hq's counter entry of " + sk.to_string() + " is " + entry_str(a) + " (net " +
                 std::to_string(a_net) + "), expected net " + std::to_string(init + i_net) +
                 " (initial + hq's changes)");
          continue;
        }
        // A reset node's entries: its node identity's before, new counter identities after.
        auto owned = h_.counter_owner.find(id);
        const core::node_id owner = owned == h_.counter_owner.end() ? id : owned->second;
        auto l = lost_.find(owner);
        if (l != lost_.end()) {
          if (a == i) continue;
          if (a.first > i.first || a.second > i.second) {
            fail("stock: entry of lost " + who + " (" + l->second->node + ") in " + sk.to_string() + " at hq is " +
                 entry_str(a) + ", more than its acked writes imply (" + entry_str(i) + ")");
          } else if (!unsent_of_[owner].count(sk)) {
            fail("stock: entry of lost " + who + " (" + l->second->node + ") in " + sk.to_string() + " at hq is " +
                 entry_str(a) + ", its acked writes imply " + entry_str(i) +
                 ", and the counter was not unsent when the disk was lost");
          } else {
            ++rep_.lost_stock_movements;
          }
          expected += a_net - i_net;  // what reached upstream is what everyone holds
          continue;
        }
        if (a != i) {
          std::string whose;
          for (const auto& n : nodes_)
            if (n.id == owner) whose = " (" + n.name + ")";
          if (whose.empty()) whose = imp.count(id) ? "" : " (not a node of this run)";
          fail("stock: entry of " + who + whose + " in " + sk.to_string() + " at hq is " + entry_str(a) +
               ", its acked sales and changes imply " + entry_str(i));
        }
      }
      if (r->has_value() && actual.value() != expected)
        fail("stock: hq's counter " + sk.to_string() + " reads " + std::to_string(actual.value()) + ", expected " +
             std::to_string(expected));
      for (const auto& n : nodes_) {
        if (!n.store || (&n != hq_ && n.branch != branch)) continue;
        if (!n.live_stock) {
          check_own_entries_only(n, sk);
          continue;
        }
        auto lvl = n.store->stock_level(tenant_, branch, product);
        if (!lvl) fail("stock: " + n.name + " cannot read the stock of " + sk.to_string() + ": " + lvl.err().to_string());
        else if (*lvl != expected)
          fail("stock: " + n.name + " reads " + std::to_string(*lvl) + " for " + sk.to_string() + ", expected " +
               std::to_string(expected) + " (initial " + std::to_string(init) + " - sales + returns + adjustments)");
      }
    }
  }

  // -- identical data per scope ------------------------------------------------------

  const std::map<core::record_key, uint64_t>* digest(size_t node, const std::string& scope, uint8_t lane) {
    auto k = std::make_tuple(node, scope, lane);
    auto it = digests_.find(k);
    if (it != digests_.end()) return &it->second;
    auto f = nodes_[node].store->read_feed(tenant_, scope, lane, 0, all);
    if (!f) {
      fail("digest: " + nodes_[node].name + " cannot read feed " + tenant_ + "/" + scope + "/lane" +
           std::to_string(lane) + ": " + f.err().to_string());
      return nullptr;
    }
    auto& m = digests_[k];
    for (const auto& e : *f) m[e.rec.key] = record_digest(e.rec);
    return &m;
  }

  /// Records of `colls` in feed f: a's and b's digests must be equal. Names up to a
  /// few differing keys. Returns true if equal.
  bool compare(size_t a, size_t b, const actors::feed_id& f, const std::set<std::string>& colls) {
    const auto* da = digest(a, f.scope, f.lane);
    const auto* db = digest(b, f.scope, f.lane);
    if (!da || !db) return false;
    std::vector<std::string> diffs;
    size_t count = 0;
    auto note = [&](const core::record_key& k, const char* what) {
      ++count;
      if (diffs.size() < max_keys_per_feed) diffs.push_back(k.to_string() + " " + what);
    };
    for (const auto& [k, h] : *da) {
      if (!colls.count(k.collection)) continue;
      auto it = db->find(k);
      if (it == db->end()) note(k, ("only at " + nodes_[a].name).c_str());
      else if (it->second != h) note(k, "differs");
    }
    for (const auto& [k, h] : *db)
      if (colls.count(k.collection) && !da->count(k)) note(k, ("only at " + nodes_[b].name).c_str());
    if (count == 0) return true;
    std::string line = "digest: " + nodes_[a].name + " and " + nodes_[b].name + " differ in feed " + feed_name(f) +
                       ": " + std::to_string(count) + " records (";
    for (size_t i = 0; i < diffs.size(); ++i) line += (i ? "; " : "") + diffs[i];
    if (count > diffs.size()) line += "; ...";
    fail(line + ")");
    return false;
  }

  void check_digests() {
    size_t hq_i = 0;
    for (size_t i = 0; i < nodes_.size(); ++i)
      if (&nodes_[i] == hq_) hq_i = i;
    const auto& reg = w_.registry();
    for (size_t i = 0; i < nodes_.size(); ++i) {
      const auto& n = nodes_[i];
      if (i == hq_i || !n.store) continue;
      // Upstream: a terminal's branch node if its branch has one, else HQ.
      size_t up = hq_i;
      if (n.role == storage::node_role::terminal)
        for (size_t j = 0; j < nodes_.size(); ++j)
          if (nodes_[j].role == storage::node_role::branch && nodes_[j].branch == n.branch && nodes_[j].store) up = j;
      auto colls = actors::default_collections(n.role, reg);
      if (!n.live_stock) colls.erase("stock");
      for (const auto& f : actors::default_feeds(n.role, tenant_, n.branch)) {
        bool same = compare(i, up, f, colls);
        if (same && up != hq_i) compare(i, hq_i, f, colls);
      }
      // Lane 0 of its own branch lives where it was made and above: each record it
      // holds is HQ's state of that record.
      if (n.branch.empty()) continue;
      const auto* mine = digest(i, n.branch, core::lane_sales);
      const auto* at_hq = digest(hq_i, n.branch, core::lane_sales);
      if (!mine || !at_hq) continue;
      size_t count = 0;
      std::string first;
      for (const auto& [k, h] : *mine) {
        auto it = at_hq->find(k);
        if (it != at_hq->end() && it->second == h) continue;
        if (++count == 1) first = k.to_string() + (it == at_hq->end() ? " not at hq" : " differs from hq");
      }
      if (count > 0)
        fail("digest: " + n.name + " holds " + std::to_string(count) + " lane-0 records of " + n.branch +
             " that hq does not hold the same (" + first + ")");
    }
  }

  // -- conflicts ------------------------------------------------------------------------

  void check_conflicts() {
    std::set<core::record_key> listed;
    const auto& reg = w_.registry();
    for (const auto& n : nodes_) {
      if (!n.store) continue;
      auto c = n.store->conflicts(false, all);
      if (!c) {
        fail("conflict: " + n.name + " cannot read its conflicts table: " + c.err().to_string());
        continue;
      }
      rep_.conflicts += c->size();
      for (const auto& e : *c) {
        listed.insert(e.key);
        // Two different states of a write-once record (a sale, payment, return or stock
        // movement): one id was given to two different writes, nothing explains it.
        const auto* info = reg.find(e.key.collection);
        if (info && info->policy == core::policy::immutable)
          fail("conflict: " + n.name + " lists immutable record " + e.key.to_string() + " with " +
               std::to_string(e.versions.size()) + " different versions (rule " + e.rule + ")");
      }
    }
    // A reset empties the node's conflicts table: what it listed then still counts.
    listed.insert(h_.conflicts_emptied.begin(), h_.conflicts_emptied.end());
    for (const auto& e : h_.concurrent_edits)
      if (!listed.count(e.key))
        fail("conflict: field " + e.field + " of " + e.key.to_string() + " was edited concurrently on " + e.node_a +
             " and " + e.node_b + ", but no node's conflicts table lists it");
  }

  // -- the sales lane never waits behind a lower lane ---------------------------------------

  void check_lanes() {
    const uint32_t every = h_.lower_lane_every;
    if (every <= 1) return;  // no priority configured
    struct run_state {
      bool in_run = false;
      uint64_t pos = 0;                 // pushes since the run started
      std::optional<uint64_t> last_lower;  // position of the last lower-lane push in the run
    };
    std::map<std::pair<std::string, uint64_t>, run_state> sessions;
    for (const auto& p : h_.pushes) {
      auto& s = sessions[{p.node, p.session}];
      if (!p.had_work[core::lane_sales]) {
        s = run_state{};
        continue;
      }
      if (!s.in_run) {
        s.in_run = true;
        s.pos = 0;
        s.last_lower.reset();
      }
      if (p.lane != core::lane_sales) {
        if (s.last_lower && s.pos - *s.last_lower < every)
          fail("lanes: " + p.node + " session " + std::to_string(p.session) + " pushed lane " +
               std::to_string(p.lane) + " at " + ms(p.at_ms) + " while lane 0 had work, only " +
               std::to_string(s.pos - *s.last_lower) + " pushes after the previous lower-lane push (share 1 in " +
               std::to_string(every) + ")");
        s.last_lower = s.pos;
      }
      ++s.pos;
    }
  }
};

} // namespace

check_report check_world(const world& w) { return checker(w).run(); }

std::vector<std::string> check_invariants(const world& w) { return check_world(w).violations; }

} // namespace possync::sim::dst
