#pragma once
// Drives an uplink_machine and a downlink_machine against two in-memory node stores,
// passing frames between them the way the session actors and a link would: one
// write outstanding per side, reads pulled only when the machine wants a frame,
// applies run on the store (apply_remote_async) and completed later. Time is a
// counter advanced by one ms per step. Every loop is bounded.

#include <future>
#include <deque>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "possync/actors/session_machine.hpp"
#include "possync/core/proto_convert.hpp"
#include "possync/storage/store.hpp"
#include "possync/v1/pos.pb.h"

namespace possync::actors::test {

constexpr core::node_id branch_node = 0xb0000000000000b1ULL;
constexpr core::node_id term_node = 0x7000000000000071ULL;
constexpr core::node_id term2_node = 0x7000000000000072ULL;
constexpr int64_t epoch_ms = 1'700'000'000'000;

/// Fake time shared by the stores' physical clocks and the machines.
struct fake_time {
  int64_t now = epoch_ms;
};

inline std::shared_ptr<storage::database> mem_db() {
  storage::db_options o;
  o.in_memory = true;
  o.write_buffer_bytes = 1u << 20;
  o.block_cache_bytes = 4u << 20;
  auto d = storage::database::open(o);
  EXPECT_TRUE(d) << (d ? "" : d.err().to_string());
  return d ? *d : nullptr;
}

inline std::unique_ptr<storage::node_store> open_store(std::shared_ptr<storage::database> db, uint32_t space,
                                                       storage::node_role role, core::node_id node,
                                                       std::shared_ptr<fake_time> t) {
  storage::store_options o;
  o.space = space;
  o.role = role;
  o.node = node;
  o.clock = [t] { return static_cast<uint64_t>(t->now); };
  o.rng = std::make_shared<core::seeded_random>(node);
  auto s = storage::node_store::open(std::move(db), o);
  EXPECT_TRUE(s) << (s ? "" : s.err().to_string());
  return s ? std::move(s).value() : nullptr;
}

inline std::string device_body(core::node_id node, storage::node_role role, const std::string& branch,
                               bool revoked = false) {
  v1::Device d;
  d.set_node(node);
  d.set_role(static_cast<uint32_t>(role));
  d.set_branch(branch);
  d.set_name("till");
  d.set_revoked(revoked);
  d.set_registered_ms(epoch_ms);
  return d.SerializeAsString();
}

inline void register_device(storage::node_store& s, core::node_id node, storage::node_role role,
                            const std::string& branch, bool revoked = false,
                            const std::string& tenant = "t1") {
  storage::put_op op;
  op.key = core::record_key{tenant, "", "device", core::node_id_to_string(node)};
  op.body = device_body(node, role, branch, revoked);
  auto r = s.write({op});
  ASSERT_TRUE(r) << r.err().to_string();
}

inline std::string product_body(const std::string& name, int64_t price) {
  v1::Product p;
  p.set_name(name);
  p.set_price(price);
  p.set_barcode("b" + name);
  return p.SerializeAsString();
}

inline void put_products(storage::node_store& s, int from, int to, int64_t price = 100) {
  for (int i = from; i < to; ++i) {
    storage::put_op op;
    op.key = core::record_key{"t1", "", "product", "p" + std::to_string(i)};
    op.body = product_body("prod" + std::to_string(i), price);
    auto r = s.write({op});
    ASSERT_TRUE(r) << r.err().to_string();
  }
}

inline std::string sale_body(const std::string& product, int64_t qty, int64_t time_ms) {
  v1::Sale s;
  s.set_receipt_no("R");
  s.set_time_ms(time_ms);
  auto* it = s.add_items();
  it->set_product_id(product);
  it->set_quantity(qty);
  it->set_unit_price(100);
  it->set_line_total(qty / 10);
  s.set_total(qty / 10);
  return s.SerializeAsString();
}

inline void sell(storage::node_store& s, int n, const std::string& branch = "b1",
                 const std::string& product = "p0") {
  for (int i = 0; i < n; ++i) {
    auto r =
        s.record_sale(core::record_key{"t1", branch, "sale", s.new_id()}, sale_body(product, 1000, epoch_ms));
    ASSERT_TRUE(r) << r.err().to_string();
  }
}

/// Records of (tenant, scope, lane) of `collection` in a store's feed.
inline size_t count_feed(const storage::node_store& s, const std::string& scope, uint8_t lane,
                         const std::string& collection) {
  auto r = s.read_feed("t1", scope, lane, 0, 1'000'000);
  EXPECT_TRUE(r);
  size_t n = 0;
  if (r)
    for (const auto& e : *r)
      n += e.rec.key.collection == collection;
  return n;
}

inline result<storage::apply_result> run_apply(storage::node_store& s, apply_request& req) {
  std::promise<result<storage::apply_result>> p;
  auto f = p.get_future();
  s.apply_remote_async(std::move(req.records), req.from, req.cursor,
                       [&p](result<storage::apply_result> r) { p.set_value(std::move(r)); });
  return f.get();
}

inline local_identity terminal_id(core::node_id node = term_node, const std::string& branch = "b1") {
  return local_identity{node, storage::node_role::terminal, "t1", branch};
}
inline local_identity branch_id(const std::string& branch = "b1") {
  return local_identity{branch_node, storage::node_role::branch, "t1", branch};
}

/// Test options: small batches, long timers (tests that need timers shorten them).
/// A Hello of `node` (tenant t1) with this build's protocol version.
inline v1::Hello hello_of(core::node_id node, v1::Role role, const std::string& branch) {
  v1::Hello h;
  h.set_node(node);
  h.set_role(role);
  h.set_tenant("t1");
  h.set_branch(branch);
  h.set_protocol_version(protocol_version);
  return h;
}

inline session_options test_options() {
  session_options o;
  o.push_batch = 50;
  o.changes_batch = 64;
  o.heartbeat_ms = 1'000'000;
  o.idle_timeout_ms = 10'000'000;
  o.hello_timeout_ms = 10'000'000;
  return o;
}

/// One session between a terminal (uplink) and a branch (downlink).
struct session {
  session(std::shared_ptr<fake_time> t, storage::node_store& up_store, storage::node_store& down_store,
          local_identity up_id, local_identity down_id, session_options up_opts = test_options(),
          session_options down_opts = test_options())
      : time(std::move(t)), us(up_store), ds(down_store), up(up_id, up_opts, up_store),
        down(down_id, down_opts, down_store,
             [down_id, &down_store](const v1::Hello& h) { return admit(h, down_id, down_store); }) {}

  std::shared_ptr<fake_time> time;
  storage::node_store& us;
  storage::node_store& ds;
  uplink_machine up;
  downlink_machine down;

  std::deque<v1::Frame> up_unwritten, down_unwritten; // handed out, not yet written
  std::deque<v1::Frame> to_down, to_up;               // written, not yet read
  std::deque<std::pair<uint64_t, result<storage::apply_result>>> up_done, down_done;
  std::optional<error> up_closed, down_closed;
  std::optional<std::vector<feed_id>> subscribed;

  // Observations.
  std::vector<v1::Frame> acks_seen;      // Acks delivered to the uplink
  std::vector<uint8_t> push_lanes;       // lanes of Pushes written, in order
  uint64_t changes_records = 0;          // records in Changes delivered to the uplink
  std::vector<std::string> changes_keys; // their keys
  size_t pushes_written = 0, acks_read = 0, max_pushes_out = 0;
  size_t max_unwritten_changes = 0;
  uint64_t down_unchanged = 0, down_applied = 0;
  bool stall_down_writes = false;
  std::set<feed_id> announce;  // feeds the branch's commits of pushed records landed on (the hub's job)
  bool lose_acks = false; // Acks the branch writes never reach the terminal
  bool stall_up_applies = false; // the terminal's applies do not complete (a busy committer)
  bool stall_down_applies = false; // nor the branch's
  bool tick = true;
  int fail_outbox_acks = 0;   // the terminal's next outbox acks fail (a failed write)
  std::vector<int64_t> wakes; // wake_at_ms the uplink asked for

  int64_t now() const { return time->now; }

  void start() {
    down.start(now());
    up.start(now());
    collect();
  }

  /// Entries were queued in the uplink's outbox (a sale, a write): tell the uplink and
  /// take what it hands out.
  void outbox_changed() {
    up.on_outbox_changed(now());
    collect();
  }

  void collect() {
    auto uo = up.take_output();
    for (auto& f : uo.frames)
      up_unwritten.push_back(std::move(f));
    for (auto& a : uo.applies) {
      uint64_t tok = a.token;
      up_done.emplace_back(tok, run_apply(us, a));
    }
    for (auto [lane, seq] : uo.outbox_acks) {
      if (fail_outbox_acks > 0) {
        --fail_outbox_acks;
        up.on_outbox_ack_failed(lane, seq, now());
        continue;
      }
      auto s = us.ack_outbox(lane, seq);
      EXPECT_FALSE(s) << s.to_string();
    }
    if (uo.clear_cursors) {
      auto s = us.clear_cursors(up.status().upstream);
      EXPECT_FALSE(s) << s.to_string();
    }
    if (uo.upstream_welcomed) {
      auto s = us.put_meta("sync.upstream", core::node_id_to_string(*uo.upstream_welcomed));
      EXPECT_FALSE(s) << s.to_string();
    }
    if (uo.close && !up_closed) up_closed = uo.close;
    if (uo.wake_at_ms) wakes.push_back(uo.wake_at_ms);

    auto dout = down.take_output();
    for (auto& f : dout.frames)
      down_unwritten.push_back(std::move(f));
    for (auto& a : dout.applies) {
      uint64_t tok = a.token;
      auto r = run_apply(ds, a);
      if (r) {
        down_unchanged += r->unchanged;
        down_applied += r->applied;
        for (const auto& c : r->changes)
          announce.insert(feed_id{c.key.tenant, c.key.scope, c.lane});
      }
      down_done.emplace_back(tok, std::move(r));
    }
    if (dout.subscribe) subscribed = dout.subscribe;
    if (dout.close && !down_closed) down_closed = dout.close;

    size_t unwritten_changes = 0;
    for (const auto& f : down_unwritten)
      unwritten_changes += f.has_changes();
    max_unwritten_changes = std::max(max_unwritten_changes, unwritten_changes);
    max_pushes_out = std::max(max_pushes_out, pushes_written + count_pushes(up_unwritten) - acks_read);
  }

  static size_t count_pushes(const std::deque<v1::Frame>& q) {
    size_t n = 0;
    for (const auto& f : q)
      n += f.has_push();
    return n;
  }

  bool closed() const { return up_closed || down_closed; }

  /// One round of every kind of event; false when nothing happened.
  bool step() {
    bool progress = false;
    if (!up_unwritten.empty()) {
      if (up_unwritten.front().has_push()) {
        ++pushes_written;
        push_lanes.push_back(static_cast<uint8_t>(up_unwritten.front().push().lane()));
      }
      to_down.push_back(std::move(up_unwritten.front()));
      up_unwritten.pop_front();
      up.on_written(now());
      progress = true;
    }
    if (!down_unwritten.empty() && !stall_down_writes) {
      if (!(lose_acks && down_unwritten.front().has_ack()))
        to_up.push_back(std::move(down_unwritten.front()));
      down_unwritten.pop_front();
      down.on_written(now());
      progress = true;
    }
    collect();
    if (!up_done.empty() && !stall_up_applies) {
      auto d = std::move(up_done.front());
      up_done.pop_front();
      up.on_applied(d.first, std::move(d.second), now());
      progress = true;
    }
    if (!down_done.empty() && !stall_down_applies) {
      auto d = std::move(down_done.front());
      down_done.pop_front();
      down.on_applied(d.first, std::move(d.second), now());
      progress = true;
    }
    collect();
    if (!announce.empty()) {
      std::vector<feed_id> changed(announce.begin(), announce.end());
      announce.clear();
      down.on_feed_changed(changed, now());
      collect();
      progress = true;
    }
    if (!to_down.empty() && (down.wants_frame() || down_closed)) {
      auto f = std::move(to_down.front());
      to_down.pop_front();
      down.on_frame(std::move(f), now());
      progress = true;
    }
    collect();
    if (!to_up.empty() && (up.wants_frame() || up_closed)) {
      auto f = std::move(to_up.front());
      to_up.pop_front();
      if (f.has_ack()) {
        ++acks_read;
        acks_seen.push_back(f);
      }
      if (f.has_changes()) {
        changes_records += static_cast<uint64_t>(f.changes().records_size());
        for (const auto& r : f.changes().records())
          changes_keys.push_back(core::from_proto(r.key()).to_string());
      }
      up.on_frame(std::move(f), now());
      progress = true;
    }
    collect();
    ++time->now;
    if (tick) {
      up.on_tick(now());
      down.on_tick(now());
      collect();
    }
    return progress;
  }

  /// The branch's feeds changed (the hub's announcement), and what it does about it.
  void announce_feeds() {
    down.on_feed_changed(down.status().granted.feeds, now());
    collect();
  }

  /// Steps until nothing happens (or `max_steps`). Returns the steps taken.
  size_t run(size_t max_steps = 200'000) {
    size_t n = 0;
    while (n < max_steps && step())
      ++n;
    return n;
  }

  /// Steps `n` times whatever happens.
  void run_for(size_t n) {
    for (size_t i = 0; i < n; ++i)
      step();
  }
};

} // namespace possync::actors::test
