// Property: replicas that received the same set of record states hold the same
// sibling set, read the same value and see the same conflict, whatever the order and
// however often the states arrived (DESIGN.md §3). Each case simulates 3-5 replicas
// writing and gossiping one record, then replays every state they ever held into
// fresh replicas in shuffled orders with duplicates.
//
// Rerun one case: POSSYNC_CONVERGENCE_SEED=<seed printed on failure>.

#include <algorithm>
#include <cstdlib>
#include <random>
#include <sstream>

#include <gtest/gtest.h>

#include "possync/core/policy.hpp"
#include "possync/core/proto_convert.hpp"
#include "possync/v1/pos.pb.h"

namespace possync::core {
namespace {

constexpr int cases_per_policy = 10'000;

struct replica {
  node_id id = 0;
  bool hq = false;
  record state;
  std::vector<record> history;  // earlier states: source of stale contexts
  hlc_timestamp last;
  int64_t skew = 0;
};

// The Product fields the simulation edits.
constexpr uint32_t edited_fields[] = {3, 5, 6, 8, 10, 11};

bool same_view(const resolved_view& a, const resolved_view& b) {
  return a.exists == b.exists && a.tombstone == b.tombstone && a.conflicted == b.conflicted &&
         a.siblings == b.siblings && a.body == b.body && a.hlc == b.hlc && a.fields == b.fields &&
         a.winner == b.winner;
}

bool same_conflict(const std::optional<conflict_info>& a, const std::optional<conflict_info>& b) {
  if (a.has_value() != b.has_value()) return false;
  return !a || (a->rule == b->rule && a->fields == b->fields);
}

class sim_case {
public:
  sim_case(policy p, tie_rule tie, uint64_t seed) : p_(p), tie_(tie), seed_(seed), rng_(seed) {}

  // Empty string on success, else what went wrong.
  std::string run() {
    setup();
    const int steps = 4 + int(below(7));
    for (int s = 0; s < steps && failure_.empty(); ++s) step();
    if (failure_.empty()) check_replay();
    if (failure_.empty() && p_ == policy::field_merge) check_disjoint_edits();
    return failure_;
  }

private:
  uint64_t below(uint64_t n) { return rng_() % n; }
  bool chance(int percent) { return below(100) < uint64_t(percent); }

  void fail(const std::string& what) {
    if (failure_.empty()) failure_ = what;
  }

  void setup() {
    const size_t n = 3 + below(3);
    std::vector<node_id> ids;
    while (ids.size() < n) {
      node_id id = 1 + below(1'000'000);
      if (std::find(ids.begin(), ids.end(), id) == ids.end()) ids.push_back(id);
    }
    for (size_t i = 0; i < n; ++i) {
      replica r;
      r.id = ids[i];
      r.hq = i == 0 ? chance(50) : chance(20);
      r.state.key = {"acme", p_ == policy::field_merge ? "" : "b1", "c", "r1"};
      r.skew = int64_t(below(50)) - 25;
      replicas_.push_back(std::move(r));
    }
    // Often the record starts at one replica and reaches some others first.
    if (chance(70)) {
      write(replicas_[0], false);
      for (size_t i = 1; i < n; ++i)
        if (chance(60)) receive(replicas_[i], replicas_[0].state);
    }
  }

  hlc_timestamp tick(replica& r) {
    time_ += 1 + below(3);
    uint64_t wall = uint64_t(int64_t(1'000'000 + time_) + r.skew);
    hlc_timestamp t{wall, 0, r.id};
    if (t <= r.last) t = hlc_timestamp{r.last.wall_ms, r.last.logical + 1, r.id};
    r.last = t;
    return t;
  }

  void record_state(replica& r) {
    r.history.push_back(r.state);
    produced_.push_back(r.state);
  }

  void receive(replica& r, const record& incoming) {
    merge_into(r.state, incoming);
    record_state(r);
  }

  void step() {
    replica& r = replicas_[below(replicas_.size())];
    if (chance(55)) {
      write(r, chance(15) && !r.history.empty());
    } else {
      const replica& from = replicas_[below(replicas_.size())];
      if (&from != &r) receive(r, from.state);
    }
  }

  std::string random_body() {
    static const char* bodies[] = {"alpha", "beta", "gamma"};
    return bodies[below(3)];
  }

  std::string edit_product(const resolved_view& view, const std::vector<uint32_t>& fields, bool allow_clear) {
    v1::Product p;
    if (view.exists && !p.ParseFromString(view.body)) fail("resolved field_merge body does not parse");
    for (uint32_t f : fields) {
      const bool clear = allow_clear && chance(25);
      const std::string fresh = "v" + std::to_string(++unique_);
      switch (f) {
        case 3: clear ? p.clear_name() : p.set_name(fresh); break;
        case 5: clear ? p.clear_price() : p.set_price(int64_t(unique_)); break;
        case 6: clear ? p.clear_cost() : p.set_cost(int64_t(unique_) * 7); break;
        case 8: p.set_active(!p.active()); break;
        case 10: clear ? p.clear_shelf_label() : p.set_shelf_label(fresh); break;
        case 11:
          if (clear) p.clear_alt_barcodes();
          else p.add_alt_barcodes(fresh);
          break;
      }
    }
    return p.SerializeAsString();
  }

  std::vector<uint32_t> random_fields() {
    std::vector<uint32_t> out;
    const size_t k = 1 + below(3);
    while (out.size() < k) {
      uint32_t f = edited_fields[below(std::size(edited_fields))];
      if (std::find(out.begin(), out.end(), f) == out.end()) out.push_back(f);
    }
    return out;
  }

  // One local write at `r`; `stale`: the writer acts on an earlier state it held.
  void write(replica& r, bool stale) {
    const record read = stale ? r.history[below(r.history.size())] : r.state;
    write_spec spec;
    spec.writer = r.id;
    spec.hq = r.hq;
    spec.hlc = tick(r);
    spec.context = read.context();
    resolved_view before;
    switch (p_) {
      case policy::counter: {
        // A counter write always adds to the node's current own entry (the store
        // applies it atomically); only the context may be stale.
        const int64_t delta = int64_t(below(21)) - 10;
        spec.body = *counter_add_body(r.state, r.id, delta);
        delta_sum_ += delta;
        break;
      }
      case policy::field_merge:
        spec.tombstone = chance(7);
        before = resolve(read, p_, tie_);
        if (!spec.tombstone) spec.body = edit_product(before, random_fields(), true);
        break;
      default:
        spec.tombstone = chance(10);
        if (!spec.tombstone) spec.body = random_body();
        break;
    }
    const version& v = apply_local_write(r.state, spec);
    if (p_ == policy::field_merge && !spec.tombstone) {
      auto stamps = stamp_fields(before, spec.body, v.id, v.hlc, r.hq);
      if (!stamps) return fail("stamp_fields failed: " + stamps.err().to_string());
      const dot id = v.id;
      for (auto& s : r.state.versions)
        if (s.id == id) s.fields = std::move(*stamps);
    }
    record_state(r);
  }

  record fresh() const {
    record r;
    r.key = replicas_[0].state.key;
    return r;
  }

  void check_replay() {
    // Reference: the replicas' final states folded in order.
    record reference = fresh();
    for (const auto& r : replicas_) merge_into(reference, r.state);

    std::vector<record> fresh_replicas;
    for (int k = 0; k < 3; ++k) {
      std::vector<const record*> feed;
      for (const auto& s : produced_) feed.push_back(&s);
      for (size_t i = 0, n = produced_.size() / 3 + 1; i < n; ++i)
        feed.push_back(&produced_[below(produced_.size())]);
      if (k == 1) std::reverse(feed.begin(), feed.end());
      else std::shuffle(feed.begin(), feed.end(), rng_);
      record r = fresh();
      for (const record* s : feed) merge_into(r, *s);
      fresh_replicas.push_back(std::move(r));
    }

    const resolved_view want = resolve(reference, p_, tie_);
    const auto want_conflict = detect_conflict(reference, p_, tie_);
    for (size_t k = 0; k < fresh_replicas.size(); ++k)
      if (fresh_replicas[k].versions != reference.versions)
        return fail("replica " + std::to_string(k) + " sibling set differs");
    // Equal sibling sets, so reads only need to be independent of sibling order.
    record shuffled = fresh_replicas[0];
    std::shuffle(shuffled.versions.begin(), shuffled.versions.end(), rng_);
    if (!same_view(resolve(shuffled, p_, tie_), want)) return fail("resolve depends on sibling order");
    if (!same_conflict(detect_conflict(shuffled, p_, tie_), want_conflict))
      return fail("detect_conflict depends on sibling order");
    if (encode_record(fresh_replicas[0]) != encode_record(fresh_replicas[2]))
      return fail("encoded records differ");
    if (want.conflicted != want_conflict.has_value() && p_ != policy::lww && p_ != policy::hq_wins)
      return fail("resolve().conflicted disagrees with detect_conflict()");

    // Idempotence: applying any state already contained changes nothing.
    record again = fresh_replicas[0];
    for (const auto& s : produced_) {
      if (merge_into(again, s).changed) return fail("re-applying a contained state changed the record");
    }
    if (again.versions != reference.versions) return fail("re-applying changed the sibling set");
    if (merge_into(again, again).changed) return fail("self-merge changed the record");

    if (p_ == policy::counter) {
      if (want.exists == reference.versions.empty()) return fail("counter existence wrong");
      auto c = decode_counter(want.body);
      if (!c) return fail("counter body undecodable");
      if (c->value() != delta_sum_)
        return fail("counter value " + std::to_string(c->value()) + " != sum of deltas " +
                    std::to_string(delta_sum_));
    }
    merged_ = reference;
  }

  // Two replicas read the merged state and edit disjoint fields concurrently: after
  // exchange both edits are visible and nothing is conflicted.
  void check_disjoint_edits() {
    replica& a = replicas_[0];
    replica& b = replicas_[1 + below(replicas_.size() - 1)];
    std::vector<uint32_t> fields(std::begin(edited_fields), std::end(edited_fields));
    std::shuffle(fields.begin(), fields.end(), rng_);
    const size_t split = 1 + below(fields.size() - 1);
    std::vector<uint32_t> fa(fields.begin(), fields.begin() + split);
    std::vector<uint32_t> fb(fields.begin() + split, fields.end());
    if (fb.size() > 2) fb.resize(2);

    const resolved_view base = resolve(merged_, p_, tie_);
    auto edit = [&](replica& r, const std::vector<uint32_t>& fs) {
      record state = merged_;
      write_spec spec;
      spec.writer = r.id;
      spec.hq = r.hq;
      spec.hlc = tick(r);
      spec.body = edit_product(base, fs, false);
      const version& v = apply_local_write(state, spec);
      auto stamps = stamp_fields(base, spec.body, v.id, v.hlc, r.hq);
      if (!stamps) fail("stamp_fields failed");
      const dot id = v.id;
      for (auto& s : state.versions)
        if (s.id == id && stamps) s.fields = *stamps;
      return std::make_pair(state, spec.body);
    };
    auto [sa, body_a] = edit(a, fa);
    auto [sb, body_b] = edit(b, fb);
    record m1 = sa, m2 = sb;
    merge_into(m1, sb);
    merge_into(m2, sa);
    if (m1.versions != m2.versions) return fail("disjoint edits: sibling sets differ");
    const resolved_view v = resolve(m1, p_, tie_);
    if (!same_view(v, resolve(m2, p_, tie_))) return fail("disjoint edits: views differ");
    if (v.conflicted || detect_conflict(m1, p_, tie_)) return fail("disjoint edits reported as a conflict");
    auto got = split_fields(v.body);
    auto ea = split_fields(body_a);
    auto eb = split_fields(body_b);
    if (!got || !ea || !eb) return fail("disjoint edits: unparsable body");
    auto field_of = [](const std::map<uint32_t, std::string>& m, uint32_t f) {
      auto it = m.find(f);
      return it == m.end() ? std::string("<absent>") : it->second;
    };
    for (uint32_t f : fa)
      if (field_of(*got, f) != field_of(*ea, f)) return fail("edit of field " + std::to_string(f) + " by A lost");
    for (uint32_t f : fb)
      if (field_of(*got, f) != field_of(*eb, f)) return fail("edit of field " + std::to_string(f) + " by B lost");
  }

  policy p_;
  tie_rule tie_;
  uint64_t seed_;
  std::mt19937_64 rng_;
  std::vector<replica> replicas_;
  std::vector<record> produced_;
  record merged_;
  uint64_t time_ = 0;
  uint64_t unique_ = 0;
  int64_t delta_sum_ = 0;
  std::string failure_;
};

void run_policy(policy p, tie_rule tie, uint64_t base_seed) {
  if (const char* only = std::getenv("POSSYNC_CONVERGENCE_SEED")) {
    const uint64_t seed = std::strtoull(only, nullptr, 0);
    auto failure = sim_case(p, tie, seed).run();
    EXPECT_EQ(failure, "") << "policy " << to_string(p) << " tie " << to_string(tie) << " seed " << seed;
    return;
  }
  int failures = 0;
  for (int i = 0; i < cases_per_policy; ++i) {
    const uint64_t seed = base_seed + uint64_t(i);
    auto failure = sim_case(p, tie, seed).run();
    if (!failure.empty()) {
      ADD_FAILURE() << "policy " << to_string(p) << " tie " << to_string(tie) << " seed " << seed << ": "
                    << failure;
      if (++failures >= 5) return;
    }
  }
}

TEST(convergence_property, immutable) { run_policy(policy::immutable, tie_rule::lww, 0x1000'0000); }
TEST(convergence_property, counter) { run_policy(policy::counter, tie_rule::lww, 0x2000'0000); }
TEST(convergence_property, field_merge_lww) { run_policy(policy::field_merge, tie_rule::lww, 0x3000'0000); }
TEST(convergence_property, field_merge_hq_wins) {
  run_policy(policy::field_merge, tie_rule::hq_wins, 0x4000'0000);
}
TEST(convergence_property, lww) { run_policy(policy::lww, tie_rule::lww, 0x5000'0000); }
TEST(convergence_property, hq_wins) { run_policy(policy::hq_wins, tie_rule::lww, 0x6000'0000); }
TEST(convergence_property, manual) { run_policy(policy::manual, tie_rule::lww, 0x7000'0000); }

} // namespace
} // namespace possync::core
