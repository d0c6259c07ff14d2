// Store lifecycle: online backup (checkpoint) while sales are written, verify on clean
// and damaged stores, outbox salvage, start_over (reset) with its dot floor and new
// counter identity, recovery of a damaged directory, and retention (purge_sales).

#include <atomic>
#include <fstream>
#include <mutex>
#include <set>
#include <thread>

#include <gtest/gtest.h>
#include <rocksdb/db.h>
#include <rocksdb/metadata.h>

#include "possync/core/policy.hpp"
#include "possync/storage/lifecycle.hpp"
#include "raw_rocksdb.hpp"
#include "test_util.hpp"

namespace possync::storage::test {
namespace {

namespace fs = std::filesystem;
const std::string keyring = "1 000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

std::unique_ptr<node_store> open_with(std::shared_ptr<database> db, store_options o) {
  auto s = node_store::open(std::move(db), std::move(o));
  EXPECT_TRUE(s) << (s ? "" : s.err().to_string());
  return s ? std::move(s).value() : nullptr;
}

/// Sequence number of an outbox key (space, 0, lane, seq).
uint64_t keys_seq(const std::string& k) {
  uint64_t v = 0;
  for (size_t i = 6; i < 14 && i < k.size(); ++i) v = (v << 8) | static_cast<uint8_t>(k[i]);
  return v;
}

verify_report verify(database& db, std::shared_ptr<const value_cipher> c = nullptr) {
  verify_options o;
  o.cipher = std::move(c);
  auto r = verify_store(db, o);
  EXPECT_TRUE(r) << (r ? "" : r.err().to_string());
  return r ? *r : verify_report{};
}

std::string problems_of(const verify_report& r) {
  std::string out;
  for (const auto& p : r.problems) out += p.where + " [" + p.key + "] " + p.what + "\n";
  return out;
}

/// Sale keys of the sales lane's outbox, in queue order.
std::vector<std::string> queued_sales(node_store& s) {
  std::vector<std::string> out;
  auto w = s.outbox_window(core::lane_sales, 0, 100000);
  EXPECT_TRUE(w);
  if (w)
    for (const auto& e : *w) out.push_back(e.rec.key.id);
  return out;
}

/// Pushes every outbox entry of `from` to `to` the way a session does (as from
/// downstream), lane by lane, then acks them; expects nothing to be refused.
void push_all(node_store& from, node_store& to) {
  for (uint8_t l = 0; l < core::lane_count; ++l) {
    auto w = from.outbox_window(l, 0, 1000);
    ASSERT_TRUE(w);
    std::vector<core::record> states;
    for (auto& e : *w)
      states.push_back(e.rec);
    auto r = to.apply_remote(states, apply_source{from.node(), true});
    ASSERT_TRUE(r) << r.err().to_string();
    EXPECT_TRUE(r->rejected.empty()) << r->rejected.front().why.to_string();
    if (!w->empty()) {
      ASSERT_FALSE(from.ack_outbox(l, w->back().seq));
    }
  }
}

TEST(lifecycle, checkpoint_while_sales_are_written_holds_every_sale_committed_before) {
  temp_dir dir, backups;
  auto db = open_db(dir.str());
  auto s = open_store(db);
  std::mutex mu;
  std::vector<std::string> committed;  // in commit order
  std::atomic<bool> stop{false};
  std::thread writer([&] {
    for (int i = 0; !stop; ++i) {
      auto k = sale_key(*s);
      auto r = s->record_sale(k, sale_body({{"p" + std::to_string(i % 7), 1000}}, 1000 + i));
      ASSERT_TRUE(r) << r.err().to_string();
      std::lock_guard<std::mutex> lk(mu);
      committed.push_back(k.id);
    }
  });
  while (true) {
    std::lock_guard<std::mutex> lk(mu);
    if (committed.size() >= 200) break;
  }
  size_t before = 0;
  {
    std::lock_guard<std::mutex> lk(mu);
    before = committed.size();
  }
  const std::string target = (backups.path / "b1").string();
  ASSERT_FALSE(db->checkpoint(target)) << "checkpoint failed";
  stop = true;
  writer.join();
  EXPECT_GT(committed.size(), before);

  // A non-empty target is refused; an existing empty one is used.
  auto again = db->checkpoint(target);
  EXPECT_EQ(again.code, errc::already_exists) << again.to_string();
  fs::create_directories(backups.path / "empty");
  EXPECT_FALSE(db->checkpoint((backups.path / "empty").string()));

  auto bdb = open_db(target);
  ASSERT_TRUE(bdb);
  auto rep = verify(*bdb);
  EXPECT_TRUE(rep.clean()) << problems_of(rep);
  store_options so;
  auto b = open_with(bdb, so);
  ASSERT_TRUE(b);
  EXPECT_EQ(b->node(), s->node());
  for (size_t i = 0; i < before; ++i) {
    auto r = b->get(core::record_key{"t1", "b1", "sale", committed[i]});
    ASSERT_TRUE(r && r->has_value()) << "sale " << i << " committed before the backup is missing";
  }
  // Each sale in the backup came with its stock decrement (one commit): stock matches.
  int64_t total = 0;
  for (int p = 0; p < 7; ++p) total += *b->stock_level("t1", "b1", "p" + std::to_string(p));
  EXPECT_EQ(total, -1000 * static_cast<int64_t>(rep.spaces.at(0).records.at("sale")));
}

TEST(lifecycle, backup_of_an_encrypted_store_stays_encrypted) {
  temp_dir dir, backups;
  auto c = value_cipher::from_keyring(keyring);
  ASSERT_TRUE(c);
  auto db = open_db(dir.str());
  store_options so;
  so.cipher = *c;
  auto s = open_with(db, so);
  auto k = sale_key(*s);
  ASSERT_TRUE(s->record_sale(k, sale_body({{"p1", 1000}}, 5, "SECRET-RECEIPT")));
  const std::string target = (backups.path / "b").string();
  ASSERT_FALSE(db->checkpoint(target));
  for (const auto& [key, v] : raw_values(target, "records")) EXPECT_EQ(v.find("SECRET-RECEIPT"), std::string::npos);
  auto bdb = open_db(target);
  auto plain = node_store::open(bdb, store_options{});
  EXPECT_EQ(plain.err().code, errc::failed_precondition);
  auto unchecked = verify(*bdb);
  EXPECT_FALSE(unchecked.spaces.at(0).values_checked);
  auto rep = verify(*bdb, *c);
  EXPECT_TRUE(rep.clean()) << problems_of(rep);
  EXPECT_TRUE(rep.spaces.at(0).values_checked);
  auto b = open_with(bdb, so);
  ASSERT_TRUE(b);
  EXPECT_TRUE(b->get(k)->has_value());
}

TEST(lifecycle, checkpoint_of_an_in_memory_database_is_refused) {
  auto db = open_mem_db();
  EXPECT_EQ(db->checkpoint("/tmp/never").code, errc::failed_precondition);
}

TEST(lifecycle, verify_counts_a_clean_store) {
  temp_dir dir;
  auto db = open_db(dir.str());
  auto s = open_store(db);
  ASSERT_TRUE(s->write({put_op{product_key("p1"), product_body("Tea", "123", 100), false, std::nullopt}}));
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(s->record_sale(sale_key(*s), sale_body({{"p1", 1000}}, i)));
  ASSERT_FALSE(s->set_cursor(7, "t1", "", 2, 9));
  ASSERT_FALSE(db->flush());
  auto rep = verify(*db);
  EXPECT_TRUE(rep.clean()) << problems_of(rep);
  ASSERT_EQ(rep.spaces.size(), 1u);
  const auto& sp = rep.spaces[0];
  EXPECT_EQ(sp.node, s->node());
  EXPECT_EQ(sp.records.at("sale"), 5u);
  EXPECT_EQ(sp.records.at("stock"), 1u);
  EXPECT_EQ(sp.records.at("product"), 1u);
  EXPECT_EQ(sp.outbox[core::lane_sales], 5u);
  EXPECT_EQ(sp.outbox[core::lane_sales], s->pending()[core::lane_sales]);
  EXPECT_EQ(sp.lane_seq[core::lane_sales], s->lane_head(core::lane_sales));
  EXPECT_EQ(sp.cursors, 1u);
}

TEST(lifecycle, verify_names_garbage_values_and_broken_links) {
  temp_dir dir;
  std::vector<core::record_key> sales;
  {
    auto db = open_db(dir.str());
    auto s = open_store(db);
    for (int i = 0; i < 4; ++i) {
      sales.push_back(sale_key(*s));
      ASSERT_TRUE(s->record_sale(sales.back(), sale_body({{"p1", 1000}}, i)));
    }
  }
  // One record value overwritten with garbage, one outbox entry too, and a meta lane
  // head set below what the feed holds (its numbers would be reused).
  rewrite(dir.str(), "records", [&](auto& values) {
    for (auto& [k, v] : values)
      if (k.find(sales[1].id) != std::string::npos) v = "\xff\xfe garbage";
  });
  rewrite(dir.str(), "outbox", [&](auto& values) { values.at(2).second = "not an entry"; });
  rewrite(dir.str(), "meta", [&](auto& values) {
    for (auto& [k, v] : values)
      if (k.substr(4) == "lane_seq/0") v = std::string(8, '\0');
  });
  auto db = open_db(dir.str());
  auto rep = verify(*db);
  EXPECT_FALSE(rep.clean());
  const auto text = problems_of(rep);
  EXPECT_NE(text.find("records [t1/b1/sale/" + sales[1].id + "]"), std::string::npos) << text;
  EXPECT_NE(text.find("outbox [lane 0 seq"), std::string::npos) << text;
  EXPECT_NE(text.find("above the lane head"), std::string::npos) << text;
}

TEST(lifecycle, verify_reports_flipped_bytes_in_an_sst_file) {
  temp_dir dir;
  {
    auto db = open_db(dir.str());
    auto s = open_store(db);
    for (int i = 0; i < 300; ++i) ASSERT_TRUE(s->record_sale(sale_key(*s), sale_body({{"p1", 1000}}, i)));
    ASSERT_FALSE(db->flush());
  }
  // The records family's SST file, found through RocksDB's metadata.
  std::string sst;
  with_raw_db(dir.str(), true, [&](rocksdb::DB& db, const auto&, const auto&) {
    std::vector<rocksdb::LiveFileMetaData> files;
    db.GetLiveFilesMetaData(&files);
    for (const auto& f : files)
      if (f.column_family_name == "records") sst = f.db_path + f.name;
  });
  ASSERT_FALSE(sst.empty());
  {
    std::fstream f(sst, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(200);
    f.write("\x13\x37\x13\x37\x13\x37\x13\x37", 8);
  }
  auto db = open_db(dir.str());
  ASSERT_TRUE(db);
  auto rep = verify(*db);
  EXPECT_FALSE(rep.clean());
  bool checksum = false, scan = false;
  for (const auto& p : rep.problems) {
    checksum = checksum || p.where == "checksums";
    scan = scan || (p.where == "records" && p.what.find("scan stopped") != std::string::npos);
  }
  EXPECT_TRUE(checksum) << problems_of(rep);
  EXPECT_TRUE(scan) << problems_of(rep);
  // The outbox is in another file: every pending sale can still be salvaged.
  auto sv = salvage_outbox(*db, 0, nullptr);
  ASSERT_TRUE(sv) << sv.err().to_string();
  EXPECT_EQ(sv->entries[core::lane_sales].size(), 300u);
  EXPECT_EQ(sv->lost, 0u);
}

TEST(lifecycle, salvage_skips_what_does_not_decode_and_counts_it) {
  temp_dir dir;
  std::vector<std::string> ids;
  {
    auto db = open_db(dir.str());
    auto s = open_store(db);
    ASSERT_FALSE(s->put_meta("cli.tenant", "t1"));
    ASSERT_FALSE(s->put_meta("sync.upstream", "4000000000000001"));
    for (int i = 0; i < 5; ++i) {
      auto k = sale_key(*s);
      ids.push_back(k.id);
      ASSERT_TRUE(s->record_sale(k, sale_body({{"p1", 1000}}, i)));
    }
  }
  rewrite(dir.str(), "outbox", [&](auto& values) {
    for (auto& [k, v] : values)
      if (static_cast<uint8_t>(k[5]) == core::lane_sales && keys_seq(k) == 2) v = "junk";
  });
  auto db = open_db(dir.str());
  auto sv = salvage_outbox(*db, 0, nullptr);
  ASSERT_TRUE(sv) << sv.err().to_string();
  EXPECT_EQ(sv->lost, 1u);
  ASSERT_EQ(sv->entries[core::lane_sales].size(), 4u);
  EXPECT_EQ(sv->entries[core::lane_sales][0].key.id, ids[0]);
  EXPECT_EQ(sv->entries[core::lane_sales][1].key.id, ids[2]);  // ids[1] was at seq 2
  EXPECT_EQ(sv->entries[core::lane_stock].size(), 1u);        // the stock counter, once
  ASSERT_EQ(sv->meta.size(), 1u);
  EXPECT_EQ(sv->meta[0].first, "cli.tenant");
}

// start_over_options::keep: the device registry a branch admits by stays, filed again
// above the new floor (so downstream cursors read it again), queued nowhere; the rest
// of what came from upstream goes.
TEST(lifecycle, start_over_keeps_the_collections_it_is_asked_to_keep) {
  auto db = open_mem_db();
  auto hq = open_store(db, 1, node_role::hq, false);
  auto s = open_store(db, 2, node_role::branch);
  v1::Device d;
  d.set_node(0x77);
  d.set_role(1);
  d.set_branch("b1");
  d.set_name("Till 7");
  const core::record_key dev{"t1", "", "device", "0000000000000077"};
  ASSERT_TRUE(hq->write({put_op{dev, d.SerializeAsString(), false, std::nullopt}}));
  ASSERT_TRUE(hq->write({put_op{product_key("p1"), product_body("Tea", "123", 100), false, std::nullopt}}));
  std::vector<core::record> from_hq{hq->get(dev)->value(), hq->get(product_key("p1"))->value()};
  ASSERT_TRUE(s->apply_remote(from_hq, apply_source{hq->node(), false}));
  const auto before = s->get(dev)->value();

  start_over_options o;
  o.keep = {"device", "revocation"};
  auto rep = s->start_over(o);
  ASSERT_TRUE(rep) << rep.err().to_string();
  EXPECT_EQ(rep->kept, 1u);
  auto after = s->get(dev);
  ASSERT_TRUE(after && after->has_value());
  EXPECT_EQ((*after)->versions, before.versions); // HQ's version as it was
  EXPECT_FALSE(s->get(product_key("p1"))->has_value());
  EXPECT_EQ(s->pending()[core::lane_catalog], 0u);
  auto feed = s->read_feed("t1", "", core::lane_catalog, 0, 10);
  ASSERT_TRUE(feed);
  ASSERT_EQ(feed->size(), 1u);
  EXPECT_EQ((*feed)[0].rec.key, dev);
  EXPECT_GT((*feed)[0].seq, s->dot_floor());
  auto r = verify(*db);
  EXPECT_TRUE(r.clean()) << problems_of(r);
}

TEST(lifecycle, start_over_requeues_the_outbox_first_and_forgets_the_rest) {
  auto db = open_mem_db();
  auto s = open_store(db);
  const auto node = s->node();
  ASSERT_TRUE(s->write({put_op{product_key("p1"), product_body("Tea", "123", 100), false, std::nullopt}}));
  std::vector<std::string> sent, unsent;
  for (int i = 0; i < 3; ++i) {
    auto k = sale_key(*s);
    sent.push_back(k.id);
    ASSERT_TRUE(s->record_sale(k, sale_body({{"p1", 1000}}, i)));
  }
  ASSERT_FALSE(s->ack_outbox(core::lane_sales, s->lane_head(core::lane_sales)));
  ASSERT_FALSE(s->ack_outbox(core::lane_catalog, s->lane_head(core::lane_catalog)));
  for (int i = 0; i < 4; ++i) {
    auto k = sale_key(*s);
    unsent.push_back(k.id);
    ASSERT_TRUE(s->record_sale(k, sale_body({{"p1", 1000}}, 10 + i)));
  }
  ASSERT_FALSE(s->set_cursor(9, "t1", "", core::lane_catalog, 42));
  ASSERT_FALSE(s->put_meta("sync.upstream", "0000000000000009"));
  ASSERT_FALSE(s->put_meta("cli.branch", "b1"));
  const uint64_t old_head = s->lane_head(core::lane_sales);

  start_over_options o;
  o.floor = 2'000'000'000'000; // above dot_span, the least a rebuild raises the floor by
  auto rep = s->start_over(o);
  ASSERT_TRUE(rep) << rep.err().to_string();
  EXPECT_EQ(rep->requeued[core::lane_sales], 4u);
  EXPECT_EQ(rep->requeued[core::lane_stock], 1u);
  EXPECT_EQ(rep->requeued[core::lane_catalog], 0u);
  EXPECT_EQ(rep->unreadable, 0u);
  EXPECT_EQ(s->node(), node);
  EXPECT_EQ(s->dot_floor(), 2'000'000'000'000u);
  EXPECT_NE(s->counter_node(), node);
  EXPECT_EQ(queued_sales(*s), unsent);
  EXPECT_GT(s->lane_head(core::lane_sales), std::max<uint64_t>(old_head, 2'000'000'000'000));
  EXPECT_EQ(s->pending()[core::lane_sales], 4u);
  // Acked sales and the catalogue are gone (the upstream has them); so are cursors
  // and session state; the upper layers' settings stay.
  EXPECT_FALSE(s->get(core::record_key{"t1", "b1", "sale", sent[0]})->has_value());
  EXPECT_FALSE(s->get(product_key("p1"))->has_value());
  EXPECT_TRUE(s->get(core::record_key{"t1", "b1", "sale", unsent[0]})->has_value());
  EXPECT_EQ(*s->cursor(9, "t1", "", core::lane_catalog), 0u);
  EXPECT_FALSE(s->get_meta("sync.upstream")->has_value());
  EXPECT_EQ(**s->get_meta("cli.branch"), "b1");
  auto r = verify(*db);
  EXPECT_TRUE(r.clean()) << problems_of(r);

  // A new sale goes after the salvaged ones; its stock delta goes to the new writer
  // identity, and so does the dot of the counter's new version.
  auto k = sale_key(*s);
  ASSERT_TRUE(s->record_sale(k, sale_body({{"p2", 2000}}, 99)));
  auto q = queued_sales(*s);
  ASSERT_EQ(q.size(), 5u);
  EXPECT_EQ(q.back(), k.id);
  auto stock = s->get(core::record_key{"t1", "b1", "stock", "p2"});
  ASSERT_TRUE(stock && stock->has_value());
  ASSERT_EQ((*stock)->versions.size(), 1u);
  EXPECT_EQ((*stock)->versions[0].id.node, s->counter_node());
  EXPECT_GT((*stock)->versions[0].id.counter, 2'000'000'000'000u);
  auto pn = core::counter_of(**stock);
  EXPECT_EQ(pn.entries.count(node), 0u);
  EXPECT_EQ(pn.entries.at(s->counter_node()).second, 2000);

  // Reopened, the floor and counter identity stay.
  const auto cn = s->counter_node();
  s.reset();
  s = open_store(db);
  EXPECT_EQ(s->dot_floor(), 2'000'000'000'000u);
  EXPECT_EQ(s->counter_node(), cn);
}

TEST(lifecycle, a_rebuilt_store_selling_before_download_keeps_upstream_stock_right) {
  // Upstream (HQ) holds the terminal's earlier decrements; the rebuilt terminal sells
  // before it has downloaded the stock record. Merged at HQ, nothing is lost.
  auto db = open_mem_db();
  auto term = open_store(db, 0);
  auto hq = open_store(db, 1, node_role::hq, false);
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(term->record_sale(sale_key(*term), sale_body({{"p1", 1000}}, i)));
  push_all(*term, *hq);
  ASSERT_EQ(*hq->stock_level("t1", "b1", "p1"), -3000);
  ASSERT_TRUE(term->start_over({}));
  ASSERT_FALSE(term->get(core::record_key{"t1", "b1", "stock", "p1"})->has_value());
  ASSERT_TRUE(term->record_sale(sale_key(*term), sale_body({{"p1", 1000}}, 9)));
  push_all(*term, *hq);
  EXPECT_EQ(*hq->stock_level("t1", "b1", "p1"), -4000);
  // And the terminal, once it downloads HQ's state, agrees.
  auto st = hq->get(core::record_key{"t1", "b1", "stock", "p1"});
  ASSERT_TRUE(term->apply_remote({**st}, apply_source{hq->node(), false}));
  EXPECT_EQ(*term->stock_level("t1", "b1", "p1"), -4000);
}

TEST(lifecycle, a_rebuilt_store_writing_twice_before_download_covers_nothing_it_lost) {
  // Found by the simulation (a branch reset while cut off from HQ): after a rebuild the
  // store's second write of a record carried the first one's dot in its past. Had
  // that dot kept the node's old id, the past would claim every version the node
  // wrote before the rebuild: HQ refused the state (it lowered counter entries) and
  // the rebuilt node dropped HQ's, so the two never agreed again.
  auto db = open_mem_db();
  auto term = open_store(db, 0);
  auto hq = open_store(db, 1, node_role::hq, false);
  const core::record_key stock{"t1", "b1", "stock", "p1"};
  for (int i = 0; i < 3; ++i)
    ASSERT_TRUE(term->record_sale(sale_key(*term), sale_body({{"p1", 1000}}, i)));
  push_all(*term, *hq);
  ASSERT_TRUE(term->start_over({}));
  for (int i = 0; i < 2; ++i)
    ASSERT_TRUE(term->record_sale(sale_key(*term), sale_body({{"p1", 1000}}, 10 + i)));
  push_all(*term, *hq);
  EXPECT_EQ(*hq->stock_level("t1", "b1", "p1"), -5000);
  // Downloading HQ's state, the terminal keeps what HQ holds and agrees with it.
  auto st = hq->get(stock);
  ASSERT_TRUE(term->apply_remote({**st}, apply_source{hq->node(), false}));
  EXPECT_EQ(*term->stock_level("t1", "b1", "p1"), -5000);
}

TEST(lifecycle, a_second_reset_after_the_clock_went_back_still_raises_the_floor) {
  // The terminal is reset, sells, is reset again after its clock went back an hour,
  // and sells again before downloading the stock record. The new writer id keeps the
  // second sale's dot apart from the first; the floor (by at least dot_span per reset,
  // whatever the clock) keeps its outbox and feed numbers above everything before, so
  // cursors of nodes below never point past new entries.
  auto db = open_mem_db();
  auto wall = std::make_shared<std::atomic<uint64_t>>(1'800'000'000'000);
  store_options to;
  to.clock = [wall] { return wall->load(); };
  auto term = open_with(db, to);
  auto hq = open_store(db, 1, node_role::hq, false);
  const core::record_key stock{"t1", "b1", "stock", "p1"};
  auto first = term->start_over({});
  ASSERT_TRUE(first) << first.err().to_string();
  ASSERT_TRUE(term->record_sale(sale_key(*term), sale_body({{"p1", 1000}}, 1)));
  const auto dot1 = (*term->get(stock))->versions.at(0).id;
  push_all(*term, *hq);
  ASSERT_EQ(*hq->stock_level("t1", "b1", "p1"), -1000);

  const uint64_t head1 = term->lane_head(core::lane_stock);
  wall->store(wall->load() - 3'600'000);
  auto second = term->start_over({});
  ASSERT_TRUE(second) << second.err().to_string();
  EXPECT_GE(second->floor, first->floor + dot_span);
  EXPECT_GT(second->floor, dot1.counter);
  ASSERT_TRUE(term->record_sale(sale_key(*term), sale_body({{"p1", 1000}}, 2)));
  const auto dot2 = (*term->get(stock))->versions.at(0).id;
  EXPECT_NE(dot2, dot1);
  EXPECT_GT(term->lane_head(core::lane_stock), head1);
  push_all(*term, *hq);
  EXPECT_EQ(*hq->stock_level("t1", "b1", "p1"), -2000);
}

TEST(lifecycle, recover_store_raises_the_floor_above_the_damaged_stores_after_the_clock_went_back) {
  temp_dir parent;
  const std::string dir = (parent.path / "data").string();
  const uint64_t then = 1'800'000'000'000;
  uint64_t old_floor = 0;
  {
    auto db = open_db(dir);
    auto s = open_store(db);
    start_over_options o;
    o.floor = then << 16;
    auto rep = s->start_over(o);
    ASSERT_TRUE(rep) << rep.err().to_string();
    old_floor = rep->floor;
    ASSERT_TRUE(s->record_sale(sale_key(*s), sale_body({{"p1", 1000}}, 1)));
  }
  recover_options o;
  o.dir = dir;
  o.clock = [then] { return then - 3'600'000; }; // an hour earlier than the last rebuild
  auto rep = recover_store(o);
  ASSERT_TRUE(rep) << rep.err().to_string();
  EXPECT_GE(rep->floor, old_floor + dot_span);
  EXPECT_EQ(rep->salvaged[core::lane_sales], 1u);
}

TEST(lifecycle, recover_store_moves_the_damage_aside_and_keeps_the_unsent_sales) {
  temp_dir parent;
  const std::string dir = (parent.path / "data").string();
  core::node_id node = 0;
  std::vector<std::string> ids;
  {
    auto db = open_db(dir);
    auto s = open_store(db);
    node = s->node();
    ASSERT_FALSE(s->put_meta("cli.role", "terminal"));
    for (int i = 0; i < 6; ++i) {
      auto k = sale_key(*s);
      ids.push_back(k.id);
      ASSERT_TRUE(s->record_sale(k, sale_body({{"p1", 1000}}, i)));
    }
    ASSERT_FALSE(s->ack_outbox(core::lane_sales, 2));  // the first two went up
  }
  rewrite(dir, "records", [&](auto& values) {
    for (auto& [k, v] : values) v = "garbage";
  });
  {
    auto db = open_db(dir);
    EXPECT_FALSE(verify(*db).clean());
  }
  recover_options o;
  o.dir = dir;
  o.clock = [] { return uint64_t{1'800'000'000'000}; };
  auto rep = recover_store(o);
  ASSERT_TRUE(rep) << rep.err().to_string();
  EXPECT_EQ(rep->node, node);
  EXPECT_EQ(rep->salvaged[core::lane_sales], 4u);
  EXPECT_EQ(rep->lost, 0u);
  EXPECT_EQ(rep->floor, uint64_t{1'800'000'000'000} << 16);
  EXPECT_EQ(rep->damaged_dir, dir + ".damaged-20270115T080000Z");
  EXPECT_TRUE(fs::is_directory(rep->damaged_dir));

  auto db = open_db(dir);
  auto rv = verify(*db);
  EXPECT_TRUE(rv.clean()) << problems_of(rv);
  auto s = open_store(db);
  EXPECT_EQ(s->node(), node);
  EXPECT_EQ(queued_sales(*s), std::vector<std::string>(ids.begin() + 2, ids.end()));
  EXPECT_EQ(**s->get_meta("cli.role"), "terminal");
  EXPECT_EQ(s->dot_floor(), rep->floor);
}

TEST(lifecycle, recover_store_without_a_readable_node_id_gives_the_directory_back) {
  temp_dir parent;
  const std::string dir = (parent.path / "data").string();
  {
    auto db = open_db(dir);
    auto s = open_store(db);
  }
  rewrite(dir, "meta", [&](auto& values) {
    for (auto& [k, v] : values)
      if (k.substr(4) == "node_id") v = "bad";
  });
  recover_options o;
  o.dir = dir;
  auto rep = recover_store(o);
  ASSERT_FALSE(rep);
  EXPECT_EQ(rep.err().code, errc::data_loss);
  EXPECT_TRUE(fs::is_directory(dir));
  o.node = 0x7000000000000071ULL;
  rep = recover_store(o);
  ASSERT_TRUE(rep) << rep.err().to_string();
  EXPECT_EQ(rep->node, o.node);
}

// The store's schema: a store of an older schema opens (its values read as they are)
// and is marked with this build's; one written by a newer possync is refused, since
// its values may mean something this build would misread (schema 2 packed version
// vectors, which a schema-1 build reads as empty pasts).
TEST(lifecycle, a_store_of_a_newer_schema_is_refused_an_older_one_is_upgraded) {
  temp_dir dir;
  auto u64 = [](const std::string& v) { // meta values: big-endian u64
    uint64_t n = 0;
    for (unsigned char c : v)
      n = (n << 8) | c;
    return n;
  };
  auto be64 = [](uint64_t n) {
    std::string v(8, '\0');
    for (int i = 7; i >= 0; --i, n >>= 8)
      v[static_cast<size_t>(i)] = static_cast<char>(n & 0xff);
    return v;
  };
  auto schema_of = [&] {
    uint64_t v = 0;
    for (const auto& [k, val] : raw_values(dir.str(), "meta"))
      if (k.size() >= 14 && k.compare(k.size() - 14, 14, "schema_version") == 0) v = u64(val);
    return v;
  };
  auto set_schema = [&](uint64_t v) {
    rewrite(dir.str(), "meta", [&](auto& values) {
      for (auto& [k, val] : values)
        if (k.size() >= 14 && k.compare(k.size() - 14, 14, "schema_version") == 0) val = be64(v);
    });
  };
  {
    auto s = open_store(open_db(dir.str()));
    ASSERT_TRUE(s);
    storage::put_op op;
    op.key = product_key("p1");
    op.body = product_body("Teh botol", "899", 5000);
    ASSERT_TRUE(s->write({op}));
    op.body = product_body("Teh botol 350ml", "899", 5000); // a version with a past
    ASSERT_TRUE(s->write({op}));
  }
  EXPECT_EQ(schema_of(), 2u);

  set_schema(1);
  {
    auto s = open_store(open_db(dir.str()));
    ASSERT_TRUE(s);
    auto r = s->get(product_key("p1"));
    ASSERT_TRUE(r && r->has_value());
    EXPECT_FALSE((*r)->versions.at(0).past.empty());
  }
  EXPECT_EQ(schema_of(), 2u);

  set_schema(3);
  store_options o;
  auto refused = node_store::open(open_db(dir.str()), o);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.err().code, errc::failed_precondition);
  EXPECT_NE(refused.err().message.find("newer possync (store schema 3; this build reads up to 2)"),
            std::string::npos)
      << refused.err().message;
}

TEST(lifecycle, purge_sales_removes_only_old_acknowledged_sales_and_replicates_nothing) {
  auto db = open_mem_db();
  std::atomic<uint64_t> now{1'000'000'000'000};
  store_options o;
  o.clock = [&now] { return now.load(); };
  auto s = open_with(db, o);
  const int64_t day = 86'400'000;
  std::vector<core::record_key> old_acked, old_unacked, recent;
  for (int i = 0; i < 3; ++i) {
    old_acked.push_back(sale_key(*s));
    ASSERT_TRUE(s->record_sale(old_acked.back(), sale_body({{"p1", 1000}}, static_cast<int64_t>(now.load()))));
  }
  core::record_key payment{"t1", "b1", "payment", s->new_id()};
  v1::Payment pay;
  pay.set_amount(100);
  ASSERT_TRUE(s->write({put_op{payment, pay.SerializeAsString(), false, std::nullopt}}));
  ASSERT_FALSE(s->ack_outbox(core::lane_sales, s->lane_head(core::lane_sales)));
  for (int i = 0; i < 2; ++i) {
    old_unacked.push_back(sale_key(*s));
    ASSERT_TRUE(s->record_sale(old_unacked.back(), sale_body({{"p1", 1000}}, static_cast<int64_t>(now.load()))));
  }
  now += 40 * day;
  for (int i = 0; i < 2; ++i) {
    recent.push_back(sale_key(*s));
    ASSERT_TRUE(s->record_sale(recent.back(), sale_body({{"p1", 1000}}, static_cast<int64_t>(now.load()))));
  }
  const auto pending_before = s->pending();
  const auto heads_before = std::array<uint64_t, 4>{s->lane_head(0), s->lane_head(1), s->lane_head(2), s->lane_head(3)};
  std::atomic<int> notified{0};
  s->set_listener([&](const std::vector<change>&) { ++notified; });
  auto n = s->purge_sales(static_cast<int64_t>(now.load()) - 30 * day);
  ASSERT_TRUE(n) << n.err().to_string();
  // Three acked sales and the acked payment; the unacked sales stay although old.
  EXPECT_EQ(*n, 4u);
  for (auto& k : old_acked) EXPECT_FALSE(s->get(k)->has_value());
  EXPECT_FALSE(s->get(payment)->has_value());
  for (auto& k : old_unacked) EXPECT_TRUE(s->get(k)->has_value());
  for (auto& k : recent) EXPECT_TRUE(s->get(k)->has_value());
  // Nothing to replicate: no outbox entry, no new feed entry, no listener call.
  EXPECT_EQ(s->pending(), pending_before);
  for (uint8_t l = 0; l < 4; ++l) EXPECT_EQ(s->lane_head(l), heads_before[l]);
  EXPECT_EQ(notified.load(), 0);
  auto feed = s->read_feed("t1", "b1", core::lane_sales, 0, 100);
  ASSERT_TRUE(feed);
  EXPECT_EQ(feed->size(), 4u);
  auto idx = s->sales_between("t1", "b1", 0, INT64_MAX, 100);
  ASSERT_TRUE(idx);
  EXPECT_EQ(idx->size(), 4u);
  // Stock keeps every sale's decrement.
  EXPECT_EQ(*s->stock_level("t1", "b1", "p1"), -7000);
  auto rep = verify(*db);
  EXPECT_TRUE(rep.clean()) << problems_of(rep);

  // Once acknowledged, the old sales go too; the recent ones stay by age.
  ASSERT_FALSE(s->ack_outbox(core::lane_sales, s->lane_head(core::lane_sales)));
  n = s->purge_sales(static_cast<int64_t>(now.load()) - 30 * day);
  ASSERT_TRUE(n);
  EXPECT_EQ(*n, 2u);
  for (auto& k : old_unacked) EXPECT_FALSE(s->get(k)->has_value());
  for (auto& k : recent) EXPECT_TRUE(s->get(k)->has_value());

  auto hq = open_store(db, 1, node_role::hq, false);
  EXPECT_EQ(hq->purge_sales(INT64_MAX).err().code, errc::failed_precondition);
}

} // namespace
} // namespace possync::storage::test
