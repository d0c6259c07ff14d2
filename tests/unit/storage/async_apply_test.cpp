// node_store: apply_remote_async with its cursor, ack_outbox_async, meta values and
// the "device" registry collection.

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <future>
#include <mutex>
#include <thread>

#include "possync/core/ids.hpp"
#include "test_util.hpp"

namespace possync::storage::test {
namespace {

/// Waits (bounded) for an async completion; a hang fails the test instead of the run.
template <class T> T await(std::future<T>& f) {
  if (f.wait_for(std::chrono::seconds(60)) != std::future_status::ready) {
    ADD_FAILURE() << "completion never came";
    std::abort();
  }
  return f.get();
}

result<apply_result> apply_async(node_store& s, std::vector<core::record> states, core::node_id peer,
                                 std::optional<cursor_update> c, bool relay = false) {
  auto pr = std::make_shared<std::promise<result<apply_result>>>();
  auto f = pr->get_future();
  s.apply_remote_async(std::move(states), apply_source{peer, relay}, std::move(c),
                       [pr](result<apply_result> r) { pr->set_value(std::move(r)); });
  return await(f);
}

put_op put(const core::record_key& k, std::string body) {
  return put_op{k, std::move(body), false, std::nullopt};
}

cursor_update cur(core::node_id peer, uint64_t seq, uint8_t lane = core::lane_catalog) {
  return cursor_update{peer, "t1", "", lane, seq};
}

core::record get_rec(node_store& s, const core::record_key& k) {
  auto g = s.get(k);
  EXPECT_TRUE(g && g->has_value());
  return g && g->has_value() ? **g : core::record{};
}

/// `n` products written on `peer`, as the states a sync would carry.
std::vector<core::record> peer_products(node_store& peer, int n, const std::string& prefix = "p") {
  std::vector<core::record> out;
  for (int i = 0; i < n; ++i) {
    auto k = product_key(prefix + std::to_string(i));
    EXPECT_TRUE(
        peer.write({put(k, product_body("Item " + std::to_string(i), prefix + std::to_string(i), i))}));
    out.push_back(get_rec(peer, k));
  }
  return out;
}

TEST(apply_remote_async, records_and_cursor_in_one_commit_cursor_never_backwards) {
  temp_dir dir;
  core::node_id peer_id = 0;
  {
    auto db = open_db(dir.str());
    auto peer = open_store(db, 1);
    auto local = open_store(db, 2);
    peer_id = peer->node();
    auto states = peer_products(*peer, 3);

    auto groups = db->commit_groups();
    auto r = apply_async(*local, states, peer_id, cur(peer_id, 3));
    ASSERT_TRUE(r) << r.err().to_string();
    EXPECT_EQ(r->applied, 3u);
    EXPECT_EQ(r->changes.size(), 3u);
    EXPECT_EQ(db->commit_groups(), groups + 1); // records and cursor: one RocksDB write
    EXPECT_EQ(*local->cursor(peer_id, "t1", "", core::lane_catalog), 3u);
    EXPECT_EQ(**local->product_by_barcode("t1", "p1"), "p1");

    // A lower cursor (a replayed or late batch) does not move it back.
    r = apply_async(*local, {states[0]}, peer_id, cur(peer_id, 1));
    ASSERT_TRUE(r) << r.err().to_string();
    EXPECT_EQ(r->unchanged, 1u);
    EXPECT_EQ(*local->cursor(peer_id, "t1", "", core::lane_catalog), 3u);

    // A cursor alone (nothing new in the batch) still moves forward.
    r = apply_async(*local, {}, peer_id, cur(peer_id, 7));
    ASSERT_TRUE(r) << r.err().to_string();
    EXPECT_EQ(r->applied, 0u);
    EXPECT_EQ(*local->cursor(peer_id, "t1", "", core::lane_catalog), 7u);
    // Other lanes and scopes are separate cursors.
    EXPECT_EQ(*local->cursor(peer_id, "t1", "", core::lane_sales), 0u);
    EXPECT_EQ(*local->cursor(peer_id, "t1", "b1", core::lane_catalog), 0u);
  }
  auto db = open_db(dir.str());
  auto local = open_store(db, 2);
  EXPECT_EQ(*local->cursor(peer_id, "t1", "", core::lane_catalog), 7u);
  EXPECT_TRUE(local->get(product_key("p2"))->has_value());
}

TEST(apply_remote_async, failed_commit_keeps_neither_records_nor_cursor) {
  temp_dir dir;
  auto faults = std::make_shared<io_faults>();
  auto db = open_db(dir.str(), true, faults);
  auto peer = open_store(db, 1);
  auto local = open_store(db, 2);
  auto states = peer_products(*peer, 2);
  ASSERT_FALSE(local->set_cursor(peer->node(), "t1", "", core::lane_catalog, 1));
  auto head = local->lane_head(core::lane_catalog);

  faults->disk_full.store(true);
  auto r = apply_async(*local, states, peer->node(), cur(peer->node(), 2));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.err().code, errc::resource_exhausted) << r.err().to_string();
  EXPECT_FALSE(local->get(product_key("p0"))->has_value());
  EXPECT_EQ(*local->cursor(peer->node(), "t1", "", core::lane_catalog), 1u);
  EXPECT_EQ(local->lane_head(core::lane_catalog), head);

  faults->disk_full.store(false);
  ASSERT_FALSE(db->resume());
  r = apply_async(*local, states, peer->node(), cur(peer->node(), 2));
  ASSERT_TRUE(r) << r.err().to_string();
  EXPECT_EQ(r->applied, 2u);
  EXPECT_EQ(*local->cursor(peer->node(), "t1", "", core::lane_catalog), 2u);
  EXPECT_EQ(local->lane_head(core::lane_catalog), head + 2);
}

TEST(apply_remote_async, invalid_records_rejected_one_by_one_cursor_still_saved) {
  auto db = open_mem_db();
  auto peer = open_store(db, 1);
  auto local = open_store(db, 2);
  auto states = peer_products(*peer, 2);
  core::record bad = states[0];
  bad.key.collection = "no_such_collection";
  states.push_back(bad);
  auto r = apply_async(*local, states, peer->node(), cur(peer->node(), 4));
  ASSERT_TRUE(r) << r.err().to_string();
  EXPECT_EQ(r->applied, 2u);
  ASSERT_EQ(r->rejected.size(), 1u);
  EXPECT_EQ(r->rejected[0].key.collection, "no_such_collection");
  EXPECT_EQ(r->rejected[0].why.code, errc::invalid_argument);
  EXPECT_EQ(*local->cursor(peer->node(), "t1", "", core::lane_catalog), 4u);

  // A malformed cursor fails the whole request: nothing applied.
  auto more = peer_products(*peer, 1, "q");
  r = apply_async(*local, more, peer->node(), cursor_update{peer->node(), "t1", "", 9, 5});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.err().code, errc::invalid_argument);
  r = apply_async(*local, more, peer->node(), cursor_update{peer->node(), std::string("t\0x", 3), "", 2, 5});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.err().code, errc::invalid_argument);
  EXPECT_FALSE(local->get(product_key("q0"))->has_value());
}

TEST(apply_remote_async, replayed_apply_is_a_no_op) {
  auto db = open_mem_db();
  auto peer = open_store(db, 1);
  auto local = open_store(db, 2);
  auto states = peer_products(*peer, 4);
  ASSERT_TRUE(peer->write({counter_op{{"t1", "b1", "stock", "p0"}, -2000}}));
  states.push_back(get_rec(*peer, {"t1", "b1", "stock", "p0"}));
  auto r = apply_async(*local, states, peer->node(), cur(peer->node(), 5));
  ASSERT_TRUE(r) << r.err().to_string();
  EXPECT_EQ(r->applied, 5u);
  auto head = local->lane_head(core::lane_catalog);
  auto stock_head = local->lane_head(core::lane_stock);
  auto groups = db->commit_groups();
  for (int i = 0; i < 3; ++i) {
    auto again = apply_async(*local, states, peer->node(), cur(peer->node(), 5));
    ASSERT_TRUE(again) << again.err().to_string();
    EXPECT_EQ(again->applied, 0u);
    EXPECT_EQ(again->unchanged, 5u);
    EXPECT_TRUE(again->changes.empty());
  }
  EXPECT_EQ(db->commit_groups(), groups); // nothing to write, not even the cursor
  EXPECT_EQ(local->lane_head(core::lane_catalog), head);
  EXPECT_EQ(local->lane_head(core::lane_stock), stock_head);
  EXPECT_EQ(*local->stock_level("t1", "b1", "p0"), -2000);
  EXPECT_EQ(local->read_feed("t1", "", core::lane_catalog, 0, 100)->size(), 4u);
  // The synchronous twin agrees.
  auto sync = local->apply_remote(states, apply_source{peer->node(), false});
  ASSERT_TRUE(sync);
  EXPECT_EQ(sync->unchanged, 5u);
}

void many_in_flight(bool group_commit) {
  temp_dir dir;
  auto db = open_db(dir.str(), group_commit);
  auto peer = open_store(db, 1);
  auto local = open_store(db, 2);
  constexpr int n = 120;
  auto states = peer_products(*peer, n);
  std::mutex mu;
  std::vector<int> order;
  std::atomic<int> failures{0};
  auto all = std::make_shared<std::promise<void>>();
  auto all_f = all->get_future();
  std::vector<uint64_t> seqs(n);
  for (int i = 0; i < n; ++i) {
    // Cursors go up and down; the stored one must end at the maximum.
    seqs[i] = (i % 3 == 0) ? static_cast<uint64_t>(i + 1) : static_cast<uint64_t>(n / 2);
    local->apply_remote_async({states[i]}, apply_source{peer->node(), true}, cur(peer->node(), seqs[i]),
                              [&, i, all](result<apply_result> r) {
                                if (!r || r->applied != 1) ++failures;
                                bool last = false;
                                {
                                  std::lock_guard<std::mutex> lk(mu);
                                  order.push_back(i);
                                  last = static_cast<int>(order.size()) == n;
                                }
                                if (last) all->set_value();
                              });
  }
  await(all_f);
  EXPECT_EQ(failures.load(), 0);
  ASSERT_EQ(order.size(), static_cast<size_t>(n));
  for (int i = 0; i < n; ++i)
    EXPECT_EQ(order[i], i);
  uint64_t top = *std::max_element(seqs.begin(), seqs.end());
  EXPECT_EQ(*local->cursor(peer->node(), "t1", "", core::lane_catalog), top);
  EXPECT_EQ(local->lane_head(core::lane_catalog), static_cast<uint64_t>(n));
  EXPECT_EQ(local->pending()[core::lane_catalog], static_cast<uint64_t>(n)); // relayed
  local.reset();
  peer.reset();
  db.reset();
  auto db2 = open_db(dir.str());
  auto local2 = open_store(db2, 2);
  EXPECT_EQ(*local2->cursor(states[0].versions[0].id.node, "t1", "", core::lane_catalog), top);
  EXPECT_EQ(local2->read_feed("t1", "", core::lane_catalog, 0, 1000)->size(), static_cast<size_t>(n));
}

TEST(apply_remote_async, many_in_flight_complete_in_request_order) {
  many_in_flight(true);
}
TEST(apply_remote_async, caller_thread_commit_mode_also_in_order) {
  many_in_flight(false);
}

// The committer takes sales (lane 0) ahead of queued catalogue applies (lane 2), which it
// takes oldest first in groups of a bounded number of records: a sale made while a large
// download is being applied waits for at most one such group, not for the whole queue.
// sync_sale: the sale is made with the blocking record_sale (as a POS app does) from a
// thread of its own, not with write_async.
void sale_ahead_of_download(bool sync_sale) {
  temp_dir dir;
  auto db = open_db(dir.str());
  auto peer = open_store(db, 1);
  auto local = open_store(db, 2);
  constexpr int applies = 40, per_apply = 200;  // 8,000 records: several groups' budget
  std::vector<std::vector<core::record>> batches;
  for (int a = 0; a < applies; ++a) {
    std::vector<write_op> ops;
    std::vector<core::record_key> keys;
    for (int i = 0; i < per_apply; ++i) {
      const std::string id = "a" + std::to_string(a) + "-" + std::to_string(i);
      keys.push_back(product_key(id));
      ops.push_back(put(keys.back(), product_body("Item " + id, id, i)));
    }
    ASSERT_TRUE(peer->write(std::move(ops)));
    batches.emplace_back();
    for (const auto& k : keys) batches.back().push_back(get_rec(*peer, k));
  }
  std::mutex mu;
  std::vector<int> order;  // apply index, or -1 for the sale
  auto all = std::make_shared<std::promise<void>>();
  auto all_f = all->get_future();
  auto note = [&, all](int what) {
    std::lock_guard<std::mutex> lk(mu);
    order.push_back(what);
    if (static_cast<int>(order.size()) == applies + 2) all->set_value();
  };
  // The first apply's completion (on the committer's thread) holds the committer until
  // everything else is queued, so that the queue is long when the sale arrives.
  std::promise<void> queued;
  auto queued_f = queued.get_future().share();
  for (int a = 0; a < applies; ++a)
    local->apply_remote_async(std::move(batches[a]), apply_source{peer->node(), false},
                              cur(peer->node(), static_cast<uint64_t>(a + 1) * per_apply),
                              [&, a, note, queued_f](result<apply_result> r) {
                                if (a == 0) queued_f.wait_for(std::chrono::seconds(30));
                                EXPECT_TRUE(r && r->applied == per_apply);
                                note(a);
                              });
  // A report (lane 3) queued behind the whole download still goes in the next group: the
  // oldest request of every lane is taken whatever the budget.
  v1::Report rep;
  rep.set_kind("end_of_day");
  local->write_async({put(core::record_key{"t1", "b1", "report", local->new_id()}, rep.SerializeAsString())},
                     [&, note](result<commit_result> r) {
                       EXPECT_TRUE(r) << (r ? "" : r.err().to_string());
                       note(-2);
                     });
  std::atomic<bool> sold{false};
  std::thread seller;
  if (sync_sale) {
    std::promise<void> started;
    auto started_f = started.get_future();
    seller = std::thread([&, note] {
      started.set_value();
      auto r = local->record_sale(sale_key(*local), sale_body({{"p1", 1000}}, 1));
      EXPECT_TRUE(r) << (r ? "" : r.err().to_string());
      sold = true;
      note(-1);
    });
    // Let it queue before the committer moves on: a thread that starts late on a loaded
    // machine would otherwise find the held groups already done and sit behind more.
    started_f.wait();
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  } else {
    local->write_async({put(sale_key(*local), sale_body({{"p1", 1000}}, 1)),
                        counter_op{core::record_key{"t1", "b1", "stock", "p1"}, -1000}},
                       [&, note](result<commit_result> r) {
                         EXPECT_TRUE(r) << (r ? "" : r.err().to_string());
                         sold = true;
                         note(-1);
                       });
  }
  queued.set_value();
  await(all_f);
  if (seller.joinable()) seller.join();
  ASSERT_TRUE(sold.load());
  const auto at = std::find(order.begin(), order.end(), -1) - order.begin();
  // Behind at most the group being written and the one being prepared when it arrived
  // (the committer pipelines two groups of at most 1,024 lower-lane records each).
  std::string seen;
  for (int v : order) seen += std::to_string(v) + " ";
  // A blocking caller notes its completion on its own thread, after it wakes: the rest of
  // its group and perhaps the next group may be noted first (as a barrier it came last).
  const long slack = sync_sale ? 2 + 6 : 0;
  EXPECT_LE(at, 1 + 2 * 6 + slack) << "the sale completed after " << at << " of " << applies
                                   << " catalogue applies: " << seen;
  // The report goes in the first group taken after it was queued. Ahead of that group:
  // the one whose first apply held the committer and the one prepared on top of it, each
  // of at most 6 applies (1,024 records of budget, 200 per apply); within its own group
  // the sale and up to 6 applies complete first (lane order). Under load the first group
  // is full, so 6 + 6 + 1 + 6 is reached; behind the whole download it would be 41.
  const auto report_at = std::find(order.begin(), order.end(), -2) - order.begin();
  EXPECT_LE(report_at, 3 * 6 + 1) << "the report completed after " << report_at << " requests: " << seen;
  // The catalogue applies themselves kept their order (and their cursor).
  std::vector<int> rest;
  for (int v : order)
    if (v >= 0) rest.push_back(v);
  for (int a = 0; a < applies; ++a) EXPECT_EQ(rest[a], a);
  EXPECT_EQ(*local->cursor(peer->node(), "t1", "", core::lane_catalog), uint64_t{applies} * per_apply);
}

TEST(apply_remote_async, sale_commits_ahead_of_a_queued_catalogue_download) {
  sale_ahead_of_download(false);
}
// A blocking write is not a barrier: it goes in its lane like write_async (it used to
// wait behind the whole queued download).
TEST(apply_remote_async, blocking_sale_commits_ahead_of_a_queued_catalogue_download) {
  sale_ahead_of_download(true);
}

TEST(apply_remote_async, concurrent_threads_keep_their_own_order_and_the_highest_cursor) {
  auto db = open_mem_db();
  auto peer = open_store(db, 1);
  auto local = open_store(db, 2);
  constexpr int threads = 4, per_thread = 40;
  std::vector<std::vector<core::record>> states;
  for (int t = 0; t < threads; ++t)
    states.push_back(peer_products(*peer, per_thread, "t" + std::to_string(t) + "-"));
  std::atomic<int> failures{0}, out_of_order{0}, completed{0};
  std::vector<std::thread> ts;
  for (int t = 0; t < threads; ++t)
    ts.emplace_back([&, t] {
      auto last = std::make_shared<std::atomic<int>>(-1);
      std::vector<std::future<void>> fs;
      for (int i = 0; i < per_thread; ++i) {
        auto pr = std::make_shared<std::promise<void>>();
        fs.push_back(pr->get_future());
        local->apply_remote_async({states[t][i]}, apply_source{peer->node(), false},
                                  cur(peer->node(), static_cast<uint64_t>(t * 1000 + i)),
                                  [&, i, last, pr](result<apply_result> r) {
                                    if (!r) ++failures;
                                    if (last->exchange(i) != i - 1) ++out_of_order;
                                    ++completed;
                                    pr->set_value();
                                  });
      }
      for (auto& f : fs)
        await(f);
    });
  for (auto& t : ts)
    t.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(out_of_order.load(), 0);
  EXPECT_EQ(completed.load(), threads * per_thread);
  EXPECT_EQ(*local->cursor(peer->node(), "t1", "", core::lane_catalog),
            static_cast<uint64_t>((threads - 1) * 1000 + per_thread - 1));
  EXPECT_EQ(local->lane_head(core::lane_catalog), static_cast<uint64_t>(threads * per_thread));
}

TEST(ack_outbox_async, acks_through_the_committer) {
  auto db = open_mem_db();
  auto s = open_store(db);
  for (int i = 0; i < 6; ++i)
    ASSERT_TRUE(s->write({put(product_key("p" + std::to_string(i)), product_body("n", "", i))}));
  EXPECT_EQ(s->pending()[core::lane_catalog], 6u);

  // A write queued before the ack completes before it; the ack then covers it.
  auto w = std::make_shared<std::promise<result<commit_result>>>();
  auto wf = w->get_future();
  s->write_async({put(product_key("p6"), product_body("n", "", 6))},
                 [w](result<commit_result> r) { w->set_value(std::move(r)); });
  auto a = std::make_shared<std::promise<status>>();
  auto af = a->get_future();
  s->ack_outbox_async(core::lane_catalog, 7, [a](status st) { a->set_value(std::move(st)); });
  auto wr = await(wf);
  ASSERT_TRUE(wr) << wr.err().to_string();
  auto st = await(af);
  ASSERT_FALSE(st) << st.to_string();
  EXPECT_EQ(s->pending()[core::lane_catalog], 0u);
  EXPECT_TRUE(s->outbox_window(core::lane_catalog, 0, 100)->empty());

  auto bad = std::make_shared<std::promise<status>>();
  auto bf = bad->get_future();
  s->ack_outbox_async(core::lane_count, 1, [bad](status x) { bad->set_value(std::move(x)); });
  EXPECT_EQ(await(bf).code, errc::invalid_argument);
  EXPECT_EQ(s->ack_outbox(core::lane_count, 1).code, errc::invalid_argument);
  EXPECT_FALSE(s->ack_outbox(core::lane_catalog, 0));
}

TEST(meta, round_trip_persists_and_is_per_space) {
  temp_dir dir;
  {
    auto db = open_db(dir.str());
    auto a = open_store(db, 1);
    auto b = open_store(db, 2);
    auto none = a->get_meta("sync.upstream");
    ASSERT_TRUE(none);
    EXPECT_FALSE(none->has_value());
    ASSERT_FALSE(a->put_meta("sync.upstream", "127.0.0.1:7000"));
    ASSERT_FALSE(a->put_meta("sync.last_ms", std::string("\0\1\2", 3)));
    ASSERT_FALSE(a->put_meta("sync.upstream", "127.0.0.1:7001")); // replaces
    EXPECT_EQ(**a->get_meta("sync.upstream"), "127.0.0.1:7001");
    EXPECT_FALSE(b->get_meta("sync.upstream")->has_value());
    // Names the store keeps itself are refused; reads of them work.
    EXPECT_EQ(a->put_meta("node_id", "x").code, errc::invalid_argument);
    EXPECT_EQ(a->put_meta("lane_seq/0", "x").code, errc::invalid_argument);
    EXPECT_EQ(a->put_meta("hlc", "x").code, errc::invalid_argument);
    EXPECT_EQ(a->put_meta("", "x").code, errc::invalid_argument);
    EXPECT_EQ(a->get_meta("").err().code, errc::invalid_argument);
    EXPECT_TRUE(a->get_meta("node_id")->has_value());
  }
  auto db = open_db(dir.str());
  auto a = open_store(db, 1);
  EXPECT_EQ(**a->get_meta("sync.upstream"), "127.0.0.1:7001");
  EXPECT_EQ(**a->get_meta("sync.last_ms"), std::string("\0\1\2", 3));
}

std::string device_body(core::node_id node, uint32_t role, const std::string& branch, const std::string& name,
                        bool revoked) {
  v1::Device d;
  d.set_node(node);
  d.set_role(role);
  d.set_branch(branch);
  d.set_name(name);
  d.set_revoked(revoked);
  d.set_registered_ms(1700000000000);
  return d.SerializeAsString();
}

TEST(device, registry_record_validates_and_hq_edit_wins) {
  auto db = open_mem_db();
  auto terminal = open_store(db, 1, node_role::terminal);
  auto hq = open_store(db, 2, node_role::hq, false);
  core::record_key k{"t1", "", "device", core::node_id_to_string(terminal->node())};

  // Bad ids and scopes are refused.
  auto bad = terminal->write(
      {put({"t1", "", "device", "till-1"}, device_body(terminal->node(), 1, "b1", "Till", false))});
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.err().code, errc::invalid_argument);
  bad = terminal->write(
      {put({"t1", "b1", "device", k.id}, device_body(terminal->node(), 1, "b1", "Till", false))});
  ASSERT_FALSE(bad);
  bad = terminal->write({put(k, std::string("\xff\xff\xff", 3))});
  ASSERT_FALSE(bad);

  // The terminal registers itself; HQ receives it.
  ASSERT_TRUE(terminal->write({put(k, device_body(terminal->node(), 1, "b1", "Till", false))}));
  auto r = hq->apply_remote({get_rec(*terminal, k)}, {terminal->node(), false});
  ASSERT_TRUE(r) << r.err().to_string();
  EXPECT_EQ(r->applied, 1u);

  // Concurrent edits: HQ revokes, the terminal renames itself (later). HQ's wins on both sides.
  ASSERT_TRUE(hq->write({put(k, device_body(terminal->node(), 1, "b1", "Till", true))}));
  ASSERT_TRUE(terminal->write({put(k, device_body(terminal->node(), 1, "b1", "Till 1b", false))}));
  auto from_hq = get_rec(*hq, k), from_terminal = get_rec(*terminal, k);
  ASSERT_TRUE(apply_async(*terminal, {from_hq}, hq->node(), std::nullopt));
  ASSERT_TRUE(apply_async(*hq, {from_terminal}, terminal->node(), std::nullopt));
  for (auto* s : {terminal.get(), hq.get()}) {
    auto v = s->read(k);
    ASSERT_TRUE(v);
    ASSERT_TRUE(v->exists);
    v1::Device d;
    ASSERT_TRUE(d.ParseFromString(v->body));
    EXPECT_TRUE(d.revoked());
    EXPECT_EQ(d.name(), "Till");
    EXPECT_EQ(d.node(), terminal->node());
  }
}

// `r` holds one version, written by `writer` (at HQ or not).
void expect_one_version_by(const core::record& r, core::node_id writer, bool hq) {
  ASSERT_EQ(r.versions.size(), 1u);
  EXPECT_EQ(r.versions[0].id.node, writer);
  EXPECT_EQ(r.versions[0].hq, hq);
}

// Sales of two registers the branch has not yet told each other about arrive as
// concurrent counter versions. The branch folds them into one version of its own (and
// queues it upstream); it leaves a sibling written at HQ for HQ to fold.
TEST(counter_fold, branch_and_hq_keep_one_version_per_counter) {
  auto db = open_mem_db();
  auto hq = open_store(db, 1, node_role::hq, false);
  auto branch = open_store(db, 2, node_role::branch);
  auto t1 = open_store(db, 3), t2 = open_store(db, 4);
  const core::record_key k{"t1", "b1", "stock", "p1"};
  ASSERT_TRUE(hq->write({counter_op{k, 100}}));
  for (auto* s : {branch.get(), t1.get(), t2.get()})
    ASSERT_TRUE(s->apply_remote({get_rec(*hq, k)}, apply_source{hq->node(), false}));
  ASSERT_TRUE(t1->write({counter_op{k, -3}}));
  ASSERT_TRUE(t2->write({counter_op{k, -4}}));
  const auto before = branch->pending()[core::lane_stock];

  ASSERT_TRUE(branch->apply_remote({get_rec(*t1, k)}, apply_source{t1->node(), true}));
  ASSERT_EQ(get_rec(*branch, k).versions.size(), 1u); // t1's covers HQ's: nothing to fold
  ASSERT_TRUE(branch->apply_remote({get_rec(*t2, k)}, apply_source{t2->node(), true}));
  auto folded = get_rec(*branch, k);
  expect_one_version_by(folded, branch->node(), false);
  EXPECT_EQ(*branch->stock_level("t1", "b1", "p1"), 93);
  EXPECT_EQ(branch->pending()[core::lane_stock], before + 1); // one outbox entry per key

  // Each register's next sale covers the fold: still one version everywhere.
  ASSERT_TRUE(t1->apply_remote({folded}, apply_source{branch->node(), false}));
  EXPECT_EQ(*t1->stock_level("t1", "b1", "p1"), 93);
  ASSERT_TRUE(t1->write({counter_op{k, -1}}));
  ASSERT_TRUE(branch->apply_remote({get_rec(*t1, k)}, apply_source{t1->node(), true}));
  expect_one_version_by(get_rec(*branch, k), t1->node(), false);

  // HQ adjusts the stock while the branch's state is on its way: the branch keeps both,
  // HQ folds both, and its fold ends the exchange.
  ASSERT_TRUE(hq->write({counter_op{k, 10}}));
  ASSERT_TRUE(branch->apply_remote({get_rec(*hq, k)}, apply_source{hq->node(), false}));
  EXPECT_EQ(get_rec(*branch, k).versions.size(), 2u);
  ASSERT_TRUE(hq->apply_remote({get_rec(*branch, k)}, apply_source{branch->node(), true}));
  auto at_hq = get_rec(*hq, k);
  expect_one_version_by(at_hq, hq->node(), true);
  EXPECT_EQ(*hq->stock_level("t1", "b1", "p1"), 102);
  auto r = branch->apply_remote({at_hq}, apply_source{hq->node(), false});
  ASSERT_TRUE(r);
  EXPECT_EQ(r->applied, 1u);
  EXPECT_EQ(get_rec(*branch, k).versions, at_hq.versions);
  EXPECT_EQ(*branch->stock_level("t1", "b1", "p1"), 102);
  auto again = hq->apply_remote({get_rec(*branch, k)}, apply_source{branch->node(), true});
  ASSERT_TRUE(again);
  EXPECT_EQ(again->unchanged, 1u);
}

} // namespace
} // namespace possync::storage::test
