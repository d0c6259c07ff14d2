// node_store: local writes, reads, feed, outbox, indexes, cursors, audit.

#include <future>
#include <set>

#include "possync/core/policy.hpp"
#include "test_util.hpp"

namespace possync::storage::test {
namespace {

TEST(node_store, open_reopen_keeps_node_id_and_counters) {
  temp_dir dir;
  core::node_id node = 0;
  uint64_t head = 0;
  {
    auto db = open_db(dir.str());
    auto s = open_store(db);
    node = s->node();
    EXPECT_NE(node, 0u);
    auto r = s->write({put_op{product_key("p1"), product_body("Milk", "111", 100)}});
    ASSERT_TRUE(r) << r.err().to_string();
    head = s->lane_head(core::lane_catalog);
    EXPECT_EQ(head, 1u);
  }
  auto db = open_db(dir.str());
  auto s = open_store(db);
  EXPECT_EQ(s->node(), node);
  EXPECT_EQ(s->lane_head(core::lane_catalog), head);
  EXPECT_EQ(s->pending()[core::lane_catalog], 1u);
  auto g = s->get(product_key("p1"));
  ASSERT_TRUE(g && g->has_value());
  EXPECT_EQ((*g)->versions.size(), 1u);
}

// collection_changes counts, per collection, the records commits changed (local writes
// and applies alike), once readable; a reset counts for all; unknown names read 0.
TEST(node_store, collection_changes_count_per_collection) {
  auto db = open_mem_db();
  auto s = open_store(db);
  auto other = open_store(db, 2);
  EXPECT_EQ(s->collection_changes("product"), 0u);
  ASSERT_TRUE(s->write({put_op{product_key("p1"), product_body("Tea", "123", 100)},
                        put_op{product_key("p2"), product_body("Rice", "124", 900)}}));
  EXPECT_EQ(s->collection_changes("product"), 2u);
  EXPECT_EQ(s->collection_changes("device"), 0u);
  EXPECT_EQ(s->collection_changes("no_such_collection"), 0u);
  // A write that changes nothing new (the same state applied again) counts nothing.
  ASSERT_TRUE(other->apply_remote({s->get(product_key("p1"))->value()}, apply_source{s->node(), false}));
  EXPECT_EQ(other->collection_changes("product"), 1u);
  ASSERT_TRUE(other->apply_remote({s->get(product_key("p1"))->value()}, apply_source{s->node(), false}));
  EXPECT_EQ(other->collection_changes("product"), 1u);
  EXPECT_EQ(s->collection_changes("product"), 2u); // spaces count apart
  ASSERT_TRUE(other->start_over({}));
  EXPECT_EQ(other->collection_changes("product"), 2u);
  EXPECT_EQ(other->collection_changes("device"), 1u);
}

TEST(node_store, new_store_gets_new_node_id_and_space_opened_once) {
  auto db = open_mem_db();
  auto a = open_store(db, 1);
  auto b = open_store(db, 2);
  EXPECT_NE(a->node(), b->node());
  store_options o;
  o.space = 1;
  auto again = node_store::open(db, o);
  ASSERT_FALSE(again);
  EXPECT_EQ(again.err().code, errc::failed_precondition);
}

TEST(node_store, local_write_lands_record_feed_outbox_and_index_in_one_commit) {
  temp_dir dir;
  auto db = open_db(dir.str());
  auto s = open_store(db);
  std::vector<change> heard;
  s->set_listener([&](const std::vector<change>& ch) { heard.insert(heard.end(), ch.begin(), ch.end()); });
  auto groups_before = db->commit_groups();
  auto r = s->write({put_op{product_key("p1"), product_body("Whole Milk", "8991", 12500)}});
  ASSERT_TRUE(r) << r.err().to_string();
  EXPECT_EQ(db->commit_groups(), groups_before + 1);
  ASSERT_EQ(r->changes.size(), 1u);
  const auto& c = r->changes[0];
  EXPECT_EQ(c.lane, core::lane_catalog);
  EXPECT_EQ(c.seq, 1u);
  ASSERT_TRUE(c.dot);
  EXPECT_EQ(c.dot->node, s->node());
  EXPECT_EQ(c.dot->counter, 1u);
  ASSERT_EQ(heard.size(), 1u);
  EXPECT_EQ(heard[0].seq, 1u);

  auto v = s->read(product_key("p1"));
  ASSERT_TRUE(v);
  EXPECT_TRUE(v->exists);
  v1::Product p;
  ASSERT_TRUE(p.ParseFromString(v->body));
  EXPECT_EQ(p.name(), "Whole Milk");

  auto feed = s->read_feed("t1", "", core::lane_catalog, 0, 10);
  ASSERT_TRUE(feed);
  ASSERT_EQ(feed->size(), 1u);
  EXPECT_EQ((*feed)[0].seq, 1u);
  EXPECT_EQ((*feed)[0].rec.key, product_key("p1"));

  auto ob = s->outbox_window(core::lane_catalog, 0, 10);
  ASSERT_TRUE(ob);
  ASSERT_EQ(ob->size(), 1u);
  EXPECT_EQ((*ob)[0].seq, 1u);
  EXPECT_EQ((*ob)[0].rec.versions.size(), 1u);
  EXPECT_EQ(s->pending()[core::lane_catalog], 1u);

  auto bc = s->product_by_barcode("t1", "8991");
  ASSERT_TRUE(bc && bc->has_value());
  EXPECT_EQ(**bc, "p1");
}

TEST(node_store, record_sale_decrements_stock_atomically) {
  auto db = open_mem_db();
  auto s = open_store(db);
  ASSERT_TRUE(s->write({counter_op{{"t1", "b1", "stock", "p1"}, 10000}}));
  auto key = sale_key(*s);
  auto r = s->record_sale(key, sale_body({{"p1", 2000}, {"p2", 1000}, {"p1", 500}}, 1000));
  ASSERT_TRUE(r) << r.err().to_string();
  EXPECT_EQ(r->changes.size(), 3u);  // sale + two stock counters
  EXPECT_EQ(*s->stock_level("t1", "b1", "p1"), 7500);
  EXPECT_EQ(*s->stock_level("t1", "b1", "p2"), -1000);  // oversold is allowed
  EXPECT_EQ(*s->stock_level("t1", "b1", "p3"), 0);
  // A second write of the same sale id is refused and takes no stock.
  auto again = s->record_sale(key, sale_body({{"p1", 1000}}, 1000));
  ASSERT_FALSE(again);
  EXPECT_EQ(again.err().code, errc::already_exists);
  EXPECT_EQ(*s->stock_level("t1", "b1", "p1"), 7500);
  EXPECT_EQ(s->pending()[core::lane_sales], 1u);
  EXPECT_EQ(s->pending()[core::lane_stock], 2u);  // p1 and p2: one entry per counter
}

TEST(node_store, returns_and_stock_movements_adjust_stock) {
  auto db = open_mem_db();
  auto s = open_store(db);
  ASSERT_TRUE(s->record_sale(sale_key(*s), sale_body({{"p1", 3000}}, 1)));
  v1::Return ret;
  auto* it = ret.add_items();
  it->set_product_id("p1");
  it->set_quantity(1000);
  auto r = s->write({put_op{{"t1", "b1", "return", s->new_id()}, ret.SerializeAsString()}});
  ASSERT_TRUE(r) << r.err().to_string();
  EXPECT_EQ(*s->stock_level("t1", "b1", "p1"), -2000);
  v1::StockMovement m;
  m.set_product_id("p1");
  m.set_delta(12000);
  m.set_kind("receive");
  ASSERT_TRUE(s->write({put_op{{"t1", "b1", "stock_movement", s->new_id()}, m.SerializeAsString()}}));
  EXPECT_EQ(*s->stock_level("t1", "b1", "p1"), 10000);
}

TEST(node_store, feed_holds_one_entry_per_key) {
  auto db = open_mem_db();
  auto s = open_store(db);
  for (int i = 0; i < 5; ++i)
    ASSERT_TRUE(s->write({put_op{product_key("p1"), product_body("Milk " + std::to_string(i), "1", i)}}));
  ASSERT_TRUE(s->write({put_op{product_key("p2"), product_body("Bread", "2", 1)}}));
  ASSERT_TRUE(s->write({put_op{product_key("p3", "t2"), product_body("Other tenant", "3", 1)}}));
  EXPECT_EQ(s->lane_head(core::lane_catalog), 7u);
  auto feed = s->read_feed("t1", "", core::lane_catalog, 0, 100);
  ASSERT_TRUE(feed);
  ASSERT_EQ(feed->size(), 2u);
  EXPECT_EQ((*feed)[0].seq, 5u);
  EXPECT_EQ((*feed)[0].rec.key.id, "p1");
  EXPECT_EQ((*feed)[1].seq, 6u);
  // after / limit
  auto tail = s->read_feed("t1", "", core::lane_catalog, 5, 100);
  ASSERT_TRUE(tail);
  ASSERT_EQ(tail->size(), 1u);
  EXPECT_EQ((*tail)[0].rec.key.id, "p2");
  auto one = s->read_feed("t1", "", core::lane_catalog, 0, 1);
  ASSERT_TRUE(one);
  EXPECT_EQ(one->size(), 1u);
  EXPECT_TRUE(s->read_feed("t1", "", core::lane_sales, 0, 100)->empty());
  EXPECT_EQ(s->read_feed("t2", "", core::lane_catalog, 0, 100)->size(), 1u);
  EXPECT_TRUE(s->read_feed("t1", "b1", core::lane_catalog, 0, 100)->empty());
}

// A reader that asks for some collections steps over the others' entries, in order and
// within `limit`, without their states (a terminal never reads the device registry).
TEST(node_store, feed_passes_over_collections_not_asked_for) {
  auto db = open_mem_db();
  auto s = open_store(db);
  v1::Category c;
  c.set_name("Dairy");
  ASSERT_TRUE(s->write({put_op{product_key("p1"), product_body("Milk", "1", 1)}}));
  ASSERT_TRUE(s->write({put_op{{"t1", "", "category", "c1"}, c.SerializeAsString()}}));
  ASSERT_TRUE(s->write({put_op{product_key("p2"), product_body("Bread", "2", 1)}}));
  const std::set<std::string> products{"product"};
  auto feed = s->read_feed("t1", "", core::lane_catalog, 0, 100, &products);
  ASSERT_TRUE(feed);
  ASSERT_EQ(feed->size(), 3u);
  EXPECT_FALSE((*feed)[0].passed_over);
  EXPECT_EQ((*feed)[0].rec.versions.size(), 1u);
  EXPECT_TRUE((*feed)[1].passed_over);
  EXPECT_EQ((*feed)[1].seq, 2u);
  EXPECT_EQ((*feed)[1].rec.key.collection, "category");
  EXPECT_EQ((*feed)[1].rec.key.id, "c1");
  EXPECT_TRUE((*feed)[1].rec.versions.empty());
  EXPECT_EQ((*feed)[2].rec.key.id, "p2");
  EXPECT_FALSE((*feed)[2].passed_over);
  auto two = s->read_feed("t1", "", core::lane_catalog, 0, 2, &products);
  ASSERT_TRUE(two);
  ASSERT_EQ(two->size(), 2u);
  EXPECT_EQ(two->back().seq, 2u);
  // Without a filter every entry comes with its state.
  auto all = s->read_feed("t1", "", core::lane_catalog, 0, 100);
  ASSERT_TRUE(all);
  EXPECT_FALSE((*all)[1].passed_over);
  EXPECT_EQ((*all)[1].rec.versions.size(), 1u);
}

// Sessions serving one feed share the decoded states they read (feed_cache): a state
// read before its record changed must never be served for the new feed entry, and
// stores sharing one DB never see each other's states.
TEST(node_store, feed_reads_see_each_records_current_state) {
  auto db = open_mem_db();
  auto a = open_store(db, 1);
  auto b = open_store(db, 2);
  ASSERT_TRUE(a->write({put_op{product_key("p1"), product_body("Milk", "1", 100)}}));
  ASSERT_TRUE(b->write({put_op{product_key("p1"), product_body("Tea", "1", 300)}}));
  auto body_of = [](const feed_entry& e) { return e.rec.versions.at(0).body; };
  auto first = a->read_feed("t1", "", core::lane_catalog, 0, 10);
  ASSERT_TRUE(first);
  ASSERT_EQ(first->size(), 1u);
  EXPECT_EQ(body_of((*first)[0]), product_body("Milk", "1", 100));
  auto again = a->read_feed("t1", "", core::lane_catalog, 0, 10);
  ASSERT_TRUE(again);
  ASSERT_EQ(again->size(), 1u);
  EXPECT_EQ((*again)[0].rec.versions, (*first)[0].rec.versions);
  // Same key and the same seq in another store of the same DB.
  auto other = b->read_feed("t1", "", core::lane_catalog, 0, 10);
  ASSERT_TRUE(other);
  ASSERT_EQ(other->size(), 1u);
  EXPECT_EQ((*other)[0].seq, (*first)[0].seq);
  EXPECT_EQ(body_of((*other)[0]), product_body("Tea", "1", 300));

  ASSERT_TRUE(a->write({put_op{product_key("p1"), product_body("Milk", "1", 120)}}));
  auto after = a->read_feed("t1", "", core::lane_catalog, 0, 10);
  ASSERT_TRUE(after);
  ASSERT_EQ(after->size(), 1u);
  EXPECT_GT((*after)[0].seq, (*first)[0].seq);
  EXPECT_EQ(body_of((*after)[0]), product_body("Milk", "1", 120));
}

TEST(node_store, feed_reads_agree_whatever_the_cache_keeps) {
  auto db = open_mem_db();
  std::vector<std::unique_ptr<node_store>> stores;
  for (size_t budget : {size_t(0), size_t(600), size_t(4) << 20}) {
    store_options o;
    o.space = static_cast<uint32_t>(stores.size() + 1);
    o.feed_cache_bytes = budget;
    auto s = node_store::open(db, o);
    ASSERT_TRUE(s) << s.err().to_string();
    stores.push_back(std::move(s).value());
  }
  for (auto& s : stores)
    for (int round = 0; round < 3; ++round)
      for (int i = 0; i < 40; ++i)
        if ((i + round) % 3 != 0)
          ASSERT_TRUE(
              s->write({put_op{product_key("p" + std::to_string(i)),
                               product_body("P" + std::to_string(i), "b" + std::to_string(i), round)}}));
  // Each store read twice, from several cursors: every read equals the uncached store's.
  for (uint64_t from : {uint64_t(0), uint64_t(30), uint64_t(60)})
    for (int pass = 0; pass < 2; ++pass) {
      auto want = stores[0]->read_feed("t1", "", core::lane_catalog, from, 25);
      ASSERT_TRUE(want);
      for (size_t k = 1; k < stores.size(); ++k) {
        auto got = stores[k]->read_feed("t1", "", core::lane_catalog, from, 25);
        ASSERT_TRUE(got);
        ASSERT_EQ(got->size(), want->size());
        for (size_t i = 0; i < got->size(); ++i) {
          EXPECT_EQ((*got)[i].seq, (*want)[i].seq);
          EXPECT_EQ((*got)[i].rec.key, (*want)[i].rec.key);
          ASSERT_EQ((*got)[i].rec.versions.size(), 1u);
          EXPECT_EQ((*got)[i].rec.versions[0].body, (*want)[i].rec.versions[0].body);
        }
      }
    }
}

TEST(node_store, outbox_window_ack_and_pending) {
  temp_dir dir;
  {
    auto db = open_db(dir.str());
    auto s = open_store(db);
    for (int i = 0; i < 10; ++i)
      ASSERT_TRUE(s->write({put_op{product_key("p" + std::to_string(i)), product_body("n", "", i)}}));
    EXPECT_EQ(s->pending()[core::lane_catalog], 10u);
    EXPECT_EQ(s->outbox_head(core::lane_catalog), 10u);
    EXPECT_EQ(s->outbox_head(core::lane_sales), 0u);
    auto w = s->outbox_window(core::lane_catalog, 0, 4);
    ASSERT_TRUE(w);
    ASSERT_EQ(w->size(), 4u);
    EXPECT_EQ(w->back().seq, 4u);
    auto w2 = s->outbox_window(core::lane_catalog, 4, 100);
    ASSERT_EQ(w2->size(), 6u);
    EXPECT_EQ(w2->front().seq, 5u);
    ASSERT_FALSE(s->ack_outbox(core::lane_catalog, 4));
    EXPECT_EQ(s->pending()[core::lane_catalog], 6u);
    EXPECT_EQ(s->outbox_window(core::lane_catalog, 0, 100)->front().seq, 5u);
    ASSERT_FALSE(s->ack_outbox(core::lane_catalog, 4));  // repeated ack: no-op
    EXPECT_EQ(s->pending()[core::lane_catalog], 6u);
    ASSERT_FALSE(s->ack_outbox(core::lane_catalog, 7));
    EXPECT_EQ(s->pending()[core::lane_catalog], 3u);
  }
  auto db = open_db(dir.str());
  auto s = open_store(db);
  EXPECT_EQ(s->pending()[core::lane_catalog], 3u);  // rebuilt by counting
  EXPECT_EQ(s->outbox_head(core::lane_catalog), 10u); // the newest entry left
  ASSERT_FALSE(s->ack_outbox(core::lane_catalog, UINT64_MAX));
  EXPECT_EQ(s->pending()[core::lane_catalog], 0u);
  EXPECT_TRUE(s->outbox_window(core::lane_catalog, 0, 100)->empty());
}

TEST(node_store, outbox_keeps_one_entry_per_key_with_the_latest_state) {
  temp_dir dir;
  auto db = open_db(dir.str());
  auto s = open_store(db);
  ASSERT_TRUE(s->write({counter_op{{"t1", "b1", "stock", "p1"}, 100000}}));
  for (int i = 0; i < 50; ++i)
    ASSERT_TRUE(s->record_sale(sale_key(*s), sale_body({{"p1", 1000}}, 1)));
  // 50 sales queued; their 51 stock writes left one stock entry: the newest state.
  EXPECT_EQ(s->pending()[core::lane_sales], 50u);
  EXPECT_EQ(s->pending()[core::lane_stock], 1u);
  auto w = s->outbox_window(core::lane_stock, 0, 100);
  ASSERT_TRUE(w);
  ASSERT_EQ(w->size(), 1u);
  EXPECT_EQ(core::counter_of(w->front().rec).value(), 50000);
  // An entry already pushed (in flight) is superseded by a newer one; acking the old
  // seq leaves the newer entry queued.
  uint64_t in_flight = w->front().seq;
  ASSERT_TRUE(s->record_sale(sale_key(*s), sale_body({{"p1", 1000}}, 1)));
  ASSERT_FALSE(s->ack_outbox(core::lane_stock, in_flight));
  auto w2 = s->outbox_window(core::lane_stock, 0, 100);
  ASSERT_EQ(w2->size(), 1u);
  EXPECT_GT(w2->front().seq, in_flight);
  EXPECT_EQ(core::counter_of(w2->front().rec).value(), 49000);
  EXPECT_EQ(s->pending()[core::lane_stock], 1u);
}

// A write replaces its key's queued outbox entry without asking the outbox whether the
// entry is still there: the record says whether its state was queued, and an ack
// deletes every entry up to its seq. The count of pending entries stays exact across
// acks, a reopen, an ack naming a seq past the lane's head, and a state that came from
// upstream (never queued).
TEST(node_store, outbox_supersede_stays_exact_across_acks_reopen_and_upstream_states) {
  temp_dir dir;
  const core::record_key stock{"t1", "b1", "stock", "p1"};
  auto stock_entries = [&](node_store& s) {
    auto w = s.outbox_window(core::lane_stock, 0, 100);
    EXPECT_TRUE(w);
    return w ? w->size() : size_t(0);
  };
  {
    auto db = open_db(dir.str());
    auto s = open_store(db);
    ASSERT_TRUE(s->write({counter_op{stock, 100000}}));
    ASSERT_TRUE(s->record_sale(sale_key(*s), sale_body({{"p1", 1000}}, 1)));
    auto w = s->outbox_window(core::lane_stock, 0, 100);
    ASSERT_EQ(w->size(), 1u);
    ASSERT_FALSE(s->ack_outbox(core::lane_stock, w->front().seq)); // acked: nothing queued
    EXPECT_EQ(s->pending()[core::lane_stock], 0u);
    for (int i = 0; i < 3; ++i)
      ASSERT_TRUE(s->record_sale(sale_key(*s), sale_body({{"p1", 1000}}, 1)));
    EXPECT_EQ(s->pending()[core::lane_stock], 1u);
    EXPECT_EQ(stock_entries(*s), 1u);
  }
  auto db = open_db(dir.str());
  {
    auto s = open_store(db);
    EXPECT_EQ(s->pending()[core::lane_stock], 1u);
    ASSERT_TRUE(s->record_sale(sale_key(*s),
                               sale_body({{"p1", 1000}}, 1))); // supersedes the entry from before the reopen
    EXPECT_EQ(s->pending()[core::lane_stock], 1u);
    EXPECT_EQ(stock_entries(*s), 1u);
    // An ack far past the head deletes what is queued, and no later entry counts as acked.
    ASSERT_FALSE(s->ack_outbox(core::lane_stock, UINT64_MAX - 1));
    EXPECT_EQ(s->pending()[core::lane_stock], 0u);
    for (int i = 0; i < 2; ++i)
      ASSERT_TRUE(s->record_sale(sale_key(*s), sale_body({{"p1", 1000}}, 1)));
    EXPECT_EQ(s->pending()[core::lane_stock], 1u);
    EXPECT_EQ(stock_entries(*s), 1u);
    auto value = core::counter_of(**s->get(stock)).value();
    EXPECT_EQ(value, 93000); // 7 sales of 1,000

    // A state from upstream is stored, not queued; a local write over it queues one entry
    // and leaves the entry queued before it alone.
    ASSERT_FALSE(s->ack_outbox(core::lane_stock, UINT64_MAX));
    core::record up = **s->get(stock);
    core::write_spec spec;
    spec.writer = 0x77;
    spec.body = *core::counter_add_body(up, 0x77, -5000);
    core::apply_local_write(up, spec);
    auto applied = s->apply_remote({up}, apply_source{0x77, false});
    ASSERT_TRUE(applied) << applied.err().to_string();
    EXPECT_EQ(applied->applied, 1u);
    EXPECT_EQ(s->pending()[core::lane_stock], 0u);
    ASSERT_TRUE(s->record_sale(sale_key(*s), sale_body({{"p1", 1000}}, 1)));
    EXPECT_EQ(s->pending()[core::lane_stock], 1u);
    EXPECT_EQ(stock_entries(*s), 1u);
    EXPECT_EQ(core::counter_of(**s->get(stock)).value(), 87000);
  }
}

// A register below a branch is faulty or hostile: what it pushes must not delete or
// rewrite another register's sale, or drop another node's stock counts. Each such
// state is refused (invalid_argument, named in the apply's rejections); nothing of it
// is stored. Honest states of the same records still apply.
TEST(node_store, a_peer_below_cannot_delete_or_rewrite_a_sale_or_lower_stock) {
  auto db = open_mem_db();
  auto branch = open_store(db, 1, node_role::branch);
  const core::node_id t1 = 0x71, t2 = 0x72;
  const apply_source from_t1{t1, true}, from_t2{t2, true};
  auto write = [](core::record r, core::node_id who, uint64_t ms, std::string body, bool tombstone = false) {
    core::write_spec w;
    w.writer = who;
    w.hlc = {ms, 0, who};
    w.body = std::move(body);
    w.tombstone = tombstone;
    core::apply_local_write(r, w);
    return r;
  };
  auto refused = [&](const core::record& state, const std::string& why) {
    auto r = branch->apply_remote({state}, from_t2);
    ASSERT_TRUE(r) << r.err().to_string();
    EXPECT_EQ(r->applied, 0u);
    ASSERT_EQ(r->rejected.size(), 1u);
    EXPECT_EQ(r->rejected[0].why.code, errc::invalid_argument);
    EXPECT_NE(r->rejected[0].why.message.find(why), std::string::npos) << r->rejected[0].why.message;
  };

  // T1's sale, as T1 pushed it.
  core::record none;
  none.key = {"t1", "b1", "sale", branch->new_id()};
  const core::record sale = write(none, t1, 1000, sale_body({{"p1", 1000}}, 1));
  ASSERT_EQ(branch->apply_remote({sale}, from_t1)->applied, 1u);
  // T2 deletes it, rewrites it (a version whose past covers T1's), or sends T1's dot
  // with another content; and deletes a sale it has not even seen yet.
  refused(write(sale, t2, 2000, "", true), "a delete");
  refused(write(sale, t2, 2000, sale_body({{"p1", 9000}}, 1)), "causal past");
  core::record twin = sale;
  twin.versions[0].body = sale_body({{"p1", 9000}, {"p2", 9000}}, 1);
  refused(twin, "second, different content");
  core::record later = none;
  later.key.id = branch->new_id();
  core::version ahead = write(later, t2, 2000, "", true).versions[0];
  ahead.past.raise(t1, 1000);
  later.versions = {ahead};
  refused(later, "a delete");
  auto held = branch->get(sale.key);
  ASSERT_TRUE(held && held->has_value());
  EXPECT_EQ((*held)->versions, sale.versions);

  // Stock: T1 sold 1. T2's version replaces T1's without counting it.
  core::record stock0;
  stock0.key = {"t1", "b1", "stock", "p1"};
  const core::record stock = write(stock0, t1, 1000, *core::counter_add_body(stock0, t1, -1000));
  ASSERT_EQ(branch->apply_remote({stock}, from_t1)->applied, 1u);
  refused(write(stock, t2, 2000, *core::counter_add_body(stock0, t2, -1000)), "lowers the entry of node");
  refused(write(stock, t2, 2000, "", true), "a delete");
  EXPECT_EQ(core::counter_of(**branch->get(stock.key)).value(), -1000);
  // T2's honest version counts T1's sale and its own.
  auto honest =
      branch->apply_remote({write(stock, t2, 2000, *core::counter_add_body(stock, t2, -1000))}, from_t2);
  ASSERT_TRUE(honest);
  EXPECT_EQ(honest->applied, 1u);
  EXPECT_TRUE(honest->rejected.empty());
  EXPECT_EQ(core::counter_of(**branch->get(stock.key)).value(), -2000);
}

TEST(node_store, outbox_off_queues_nothing) {
  auto db = open_mem_db();
  auto s = open_store(db, 0, node_role::hq, false);
  ASSERT_TRUE(s->write({put_op{product_key("p1"), product_body("a", "1", 1)}}));
  EXPECT_EQ(s->pending()[core::lane_catalog], 0u);
  EXPECT_EQ(s->lane_head(core::lane_catalog), 1u);
}

TEST(node_store, product_indexes_follow_updates) {
  auto db = open_mem_db();
  auto s = open_store(db);
  ASSERT_TRUE(s->write({put_op{product_key("p1"), product_body("Milk UHT", "111", 1, {"112"})}}));
  ASSERT_TRUE(s->write({put_op{product_key("p2"), product_body("milk powder", "222", 1)}}));
  ASSERT_TRUE(s->write({put_op{product_key("p3"), product_body("Bread", "333", 1)}}));
  ASSERT_TRUE(s->write({put_op{product_key("p9", "t2"), product_body("Milk", "111", 1)}}));
  EXPECT_EQ(**s->product_by_barcode("t1", "112"), "p1");
  EXPECT_EQ(**s->product_by_barcode("t2", "111"), "p9");
  EXPECT_FALSE(s->product_by_barcode("t1", "999")->has_value());
  auto found = s->search_products("t1", "MILK", 50);
  ASSERT_TRUE(found);
  EXPECT_EQ(*found, (std::vector<std::string>{"p2", "p1"}));  // "milk powder" < "milk uht"
  EXPECT_EQ(s->search_products("t1", "milk", 1)->size(), 1u);
  EXPECT_EQ(s->search_products("t1", "", 50)->size(), 3u);

  // Rename and re-barcode p1: old entries go away.
  ASSERT_TRUE(s->write({put_op{product_key("p1"), product_body("Yoghurt", "113", 1)}}));
  EXPECT_FALSE(s->product_by_barcode("t1", "111")->has_value());
  EXPECT_FALSE(s->product_by_barcode("t1", "112")->has_value());
  EXPECT_EQ(**s->product_by_barcode("t1", "113"), "p1");
  EXPECT_EQ(*s->search_products("t1", "milk", 50), (std::vector<std::string>{"p2"}));
  EXPECT_EQ(*s->search_products("t1", "yog", 50), (std::vector<std::string>{"p1"}));

  // Delete: gone from every index.
  ASSERT_TRUE(s->write({put_op{product_key("p1"), "", true}}));
  EXPECT_FALSE(s->product_by_barcode("t1", "113")->has_value());
  EXPECT_TRUE(s->search_products("t1", "yog", 50)->empty());
  EXPECT_FALSE(s->read(product_key("p1"))->exists);
}

// Indexes follow the resolved view: of merged siblings (two registers renamed and
// re-barcoded a product without seeing each other), and of the one version that
// replaces them.
TEST(node_store, product_indexes_follow_merged_siblings_and_the_version_replacing_them) {
  auto db = open_mem_db();
  auto a = open_store(db, 1);
  auto b = open_store(db, 2);
  auto local = open_store(db, 3);
  ASSERT_TRUE(a->write({put_op{product_key("p1"), product_body("Green tea", "111", 100)}}));
  ASSERT_TRUE(b->write({put_op{product_key("p1"), product_body("Black tea", "222", 100)}}));
  auto from = [](node_store& s) { return std::move(s.get(product_key("p1"))).value().value(); };
  ASSERT_TRUE(local->apply_remote({from(*a)}, apply_source{a->node(), false}));
  ASSERT_TRUE(local->apply_remote({from(*b)}, apply_source{b->node(), false}));
  ASSERT_EQ(local->get(product_key("p1"))->value().versions.size(), 2u);
  auto view = local->read(product_key("p1"));
  ASSERT_TRUE(view && view->exists);
  v1::Product merged;
  ASSERT_TRUE(merged.ParseFromString(view->body));
  const std::string kept = merged.barcode(), lost = kept == "111" ? "222" : "111";
  EXPECT_EQ(**local->product_by_barcode("t1", kept), "p1");
  EXPECT_FALSE(local->product_by_barcode("t1", lost)->has_value());
  EXPECT_EQ(*local->search_products("t1", merged.name().substr(0, 5), 50), (std::vector<std::string>{"p1"}));

  // One version over both: the merged view's entries go, the new ones come.
  ASSERT_TRUE(local->write({put_op{product_key("p1"), product_body("Oolong", "333", 100)}}));
  ASSERT_EQ(local->get(product_key("p1"))->value().versions.size(), 1u);
  EXPECT_FALSE(local->product_by_barcode("t1", kept)->has_value());
  EXPECT_EQ(**local->product_by_barcode("t1", "333"), "p1");
  EXPECT_TRUE(local->search_products("t1", "green", 50)->empty());
  EXPECT_TRUE(local->search_products("t1", "black", 50)->empty());
  EXPECT_EQ(*local->search_products("t1", "oolong", 50), (std::vector<std::string>{"p1"}));
}

TEST(node_store, field_merge_write_stamps_fields) {
  auto db = open_mem_db();
  auto s = open_store(db);
  ASSERT_TRUE(s->write({put_op{product_key("p1"), product_body("A", "1", 100)}}));
  ASSERT_TRUE(s->write({put_op{product_key("p1"), product_body("A", "1", 200)}}));
  auto g = s->get(product_key("p1"));
  ASSERT_TRUE(g && g->has_value());
  ASSERT_EQ((*g)->versions.size(), 1u);
  const auto& v = (*g)->versions[0];
  EXPECT_EQ(v.id.counter, 2u);
  ASSERT_TRUE(v.fields.count(5));  // price changed by the second write
  EXPECT_EQ(v.fields.at(5).origin.counter, 2u);
  ASSERT_TRUE(v.fields.count(3));  // name set by the first
  EXPECT_EQ(v.fields.at(3).origin.counter, 1u);
}

TEST(node_store, sales_between_by_time) {
  auto db = open_mem_db();
  auto s = open_store(db);
  std::vector<core::record_key> keys;
  for (int64_t t : {5000, 1000, 3000, 7000}) {
    auto k = sale_key(*s);
    ASSERT_TRUE(s->record_sale(k, sale_body({{"p1", 1000}}, t)));
    keys.push_back(k);
  }
  ASSERT_TRUE(s->record_sale(sale_key(*s, "b2"), sale_body({{"p1", 1000}}, 3000)));
  auto r = s->sales_between("t1", "b1", 1000, 7000, 100);
  ASSERT_TRUE(r);
  ASSERT_EQ(r->size(), 3u);
  EXPECT_EQ((*r)[0], keys[1]);
  EXPECT_EQ((*r)[1], keys[2]);
  EXPECT_EQ((*r)[2], keys[0]);
  EXPECT_EQ(s->sales_between("t1", "b1", 0, 100000, 2)->size(), 2u);
  EXPECT_EQ(s->sales_between("t1", "b2", 0, 100000, 10)->size(), 1u);
}

TEST(node_store, invalid_key_or_body_refused_and_nothing_written) {
  auto db = open_mem_db();
  auto s = open_store(db);
  auto groups = db->commit_groups();
  auto bad_id = s->write({put_op{product_key("bad id"), product_body("a", "1", 1)}});
  ASSERT_FALSE(bad_id);
  EXPECT_EQ(bad_id.err().code, errc::invalid_argument);
  auto bad_col = s->write({put_op{{"t1", "", "nope", "x"}, "x"}});
  EXPECT_EQ(bad_col.err().code, errc::invalid_argument);
  auto bad_body = s->write({put_op{product_key("p1"), "\xff\xff\xff"}});
  EXPECT_EQ(bad_body.err().code, errc::invalid_argument);
  auto bad_scope = s->write({put_op{{"t1", "", "sale", s->new_id()}, sale_body({}, 1)}});
  EXPECT_EQ(bad_scope.err().code, errc::invalid_argument);
  // One bad op fails the whole commit.
  auto mixed = s->write({put_op{product_key("p2"), product_body("a", "1", 1)},
                         put_op{product_key("p3"), "\xff\xff"}});
  EXPECT_EQ(mixed.err().code, errc::invalid_argument);
  auto counter_on_product = s->write({counter_op{product_key("p1"), 1}});
  EXPECT_EQ(counter_on_product.err().code, errc::invalid_argument);
  auto put_on_counter = s->write({put_op{{"t1", "b1", "stock", "p1"}, ""}});
  EXPECT_EQ(put_on_counter.err().code, errc::invalid_argument);
  auto not_sale = s->record_sale(product_key("p1"), product_body("a", "1", 1));
  EXPECT_EQ(not_sale.err().code, errc::invalid_argument);
  EXPECT_EQ(db->commit_groups(), groups);
  EXPECT_FALSE(s->get(product_key("p2"))->has_value());
  EXPECT_EQ(s->lane_head(core::lane_catalog), 0u);
  EXPECT_EQ(s->pending()[core::lane_catalog], 0u);
}

TEST(node_store, spaces_in_one_db_are_isolated) {
  auto db = open_mem_db();
  std::vector<std::unique_ptr<node_store>> stores;
  for (uint32_t sp = 0; sp < 20; ++sp) stores.push_back(open_store(db, sp));
  for (uint32_t sp = 0; sp < 20; ++sp) {
    auto& s = *stores[sp];
    for (uint32_t i = 0; i <= sp; ++i)
      ASSERT_TRUE(s.write({put_op{product_key("p" + std::to_string(i)), product_body("n", std::to_string(i), sp)}}));
    ASSERT_TRUE(s.write({counter_op{{"t1", "b1", "stock", "p0"}, static_cast<int64_t>(sp)}}));
  }
  for (uint32_t sp = 0; sp < 20; ++sp) {
    auto& s = *stores[sp];
    EXPECT_EQ(s.lane_head(core::lane_catalog), sp + 1);
    EXPECT_EQ(s.read_feed("t1", "", core::lane_catalog, 0, 1000)->size(), sp + 1);
    EXPECT_EQ(s.pending()[core::lane_catalog], sp + 1);
    EXPECT_EQ(*s.stock_level("t1", "b1", "p0"), static_cast<int64_t>(sp));
    EXPECT_EQ(s.search_products("t1", "n", 1000)->size(), sp + 1);
    EXPECT_EQ(s.outbox_window(core::lane_catalog, 0, 1000)->size(), sp + 1);
  }
}

TEST(node_store, seqs_and_dots_never_reused_after_reopen) {
  temp_dir dir;
  std::set<uint64_t> seqs;
  uint64_t last_counter = 0;
  core::hlc_timestamp last_hlc;
  for (int round = 0; round < 3; ++round) {
    auto db = open_db(dir.str());
    auto s = open_store(db);
    for (int i = 0; i < 5; ++i) {
      auto r = s->write({counter_op{{"t1", "b1", "stock", "p1"}, -1}});
      ASSERT_TRUE(r);
      EXPECT_TRUE(seqs.insert(r->changes[0].seq).second) << "seq reused: " << r->changes[0].seq;
      EXPECT_GT(r->changes[0].dot->counter, last_counter);
      last_counter = r->changes[0].dot->counter;
      EXPECT_TRUE(last_hlc < r->hlc);
      last_hlc = r->hlc;
    }
    // Acked outbox entries must not let the sequence restart either.
    ASSERT_FALSE(s->ack_outbox(core::lane_stock, UINT64_MAX));
  }
  EXPECT_EQ(seqs.size(), 15u);
  EXPECT_EQ(*seqs.rbegin(), 15u);
}

TEST(node_store, cursors_and_sessions) {
  temp_dir dir;
  {
    auto db = open_db(dir.str());
    auto s = open_store(db);
    EXPECT_EQ(*s->cursor(7, "t1", "b1", 0), 0u);
    ASSERT_FALSE(s->set_cursor(7, "t1", "b1", 0, 42));
    ASSERT_FALSE(s->set_cursor(7, "t1", "", 2, 9));
    ASSERT_FALSE(s->set_cursor(8, "t1", "b1", 0, 5));
    session_audit a;
    a.peer = 7;
    a.peer_role = "branch";
    a.records_up = 3;
    a.result = "ok";
    ASSERT_FALSE(s->record_session(a));
    a.result = "unavailable";
    ASSERT_FALSE(s->record_session(a));
  }
  auto db = open_db(dir.str());
  auto s = open_store(db);
  EXPECT_EQ(*s->cursor(7, "t1", "b1", 0), 42u);
  EXPECT_EQ(*s->cursor(7, "t1", "", 2), 9u);
  ASSERT_FALSE(s->clear_cursors(7));
  EXPECT_EQ(*s->cursor(7, "t1", "b1", 0), 0u);
  EXPECT_EQ(*s->cursor(7, "t1", "", 2), 0u);
  EXPECT_EQ(*s->cursor(8, "t1", "b1", 0), 5u);
  session_audit a;
  a.result = "third";
  ASSERT_FALSE(s->record_session(a));
  auto ss = s->sessions(10);
  ASSERT_TRUE(ss);
  ASSERT_EQ(ss->size(), 3u);
  EXPECT_EQ((*ss)[0].result, "third");  // newest first
  EXPECT_EQ((*ss)[1].result, "unavailable");
  EXPECT_EQ((*ss)[2].records_up, 3u);
  EXPECT_EQ(s->sessions(1)->size(), 1u);
}

TEST(node_store, write_async_completes_on_committer) {
  auto db = open_mem_db();
  auto s = open_store(db);
  std::promise<result<commit_result>> p;
  s->write_async({put_op{product_key("p1"), product_body("a", "1", 1)}},
                 [&](result<commit_result> r) { p.set_value(std::move(r)); });
  auto r = p.get_future().get();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->changes.size(), 1u);
  std::promise<result<commit_result>> bad;
  s->write_async({put_op{product_key("bad id"), ""}}, [&](result<commit_result> r) { bad.set_value(std::move(r)); });
  EXPECT_EQ(bad.get_future().get().err().code, errc::invalid_argument);
}

} // namespace
} // namespace possync::storage::test
