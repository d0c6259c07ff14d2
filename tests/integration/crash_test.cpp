// Real-process crash test: run `possync crash-writer`, SIGKILL it at a random
// moment, reopen its store here and check that nothing acknowledged was lost and
// nothing half-written is visible; repeat on the same directory.


#include <array>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <limits>
#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "possync/sim/pos_fixture.hpp"
#include "possync/storage/store.hpp"
#include "process.hpp"

namespace possync::test {
extern int crash_cycles;
extern unsigned long long crash_seed;
} // namespace possync::test

namespace {

using namespace possync;
using test::steady;

const std::string tenant = "crash";
const std::string branch = "b1";
constexpr int64_t initial_stock = 1'000'000;

struct printed_sale {
  std::string id;
  std::map<std::string, int64_t> qty; // product -> thousandths
};

// Complete "SALE <id> <product>:<qty>,..." lines; a torn last line is ignored
// (the sale it announces is durable but we cannot know its id).
std::vector<printed_sale> parse_sales(const std::string& out) {
  std::vector<printed_sale> sales;
  size_t pos = 0;
  while (true) {
    size_t nl = out.find('\n', pos);
    if (nl == std::string::npos) break;
    std::string line = out.substr(pos, nl - pos);
    pos = nl + 1;
    if (line.rfind("SALE ", 0) != 0) continue;
    size_t sp = line.find(' ', 5);
    if (sp == std::string::npos) continue;
    printed_sale s;
    s.id = line.substr(5, sp - 5);
    std::string items = line.substr(sp + 1);
    size_t i = 0;
    while (i < items.size()) {
      size_t comma = items.find(',', i);
      if (comma == std::string::npos) comma = items.size();
      std::string item = items.substr(i, comma - i);
      size_t colon = item.find(':');
      if (colon != std::string::npos) s.qty[item.substr(0, colon)] += std::stoll(item.substr(colon + 1));
      i = comma + 1;
    }
    sales.push_back(std::move(s));
  }
  return sales;
}

// State carried from one cycle to the next.
struct history {
  std::map<std::string, printed_sale> printed; // every sale ever acknowledged
  std::map<uint64_t, std::string> outbox;      // lane 0 seq -> sale id, as last seen
  std::array<uint64_t, core::lane_count> heads{};
  size_t stored_sales = 0;
};

// Reopens the store and checks every invariant; updates `h`.
void verify_store(const std::string& dir, history& h) {
  storage::db_options dbo;
  dbo.path = dir;
  auto db = storage::database::open(dbo);
  ASSERT_TRUE(db) << db.err().to_string();
  storage::store_options so;
  so.role = storage::node_role::terminal;
  auto opened = storage::node_store::open(*db, so);
  ASSERT_TRUE(opened) << opened.err().to_string();
  storage::node_store& store = **opened;

  // Lane heads never go back: a reused sequence number would be sent twice or never.
  for (uint8_t lane = 0; lane < core::lane_count; ++lane) {
    uint64_t head = store.lane_head(lane);
    EXPECT_GE(head, h.heads[lane]) << "lane " << int(lane) << " head went back";
    h.heads[lane] = head;
  }

  // Every acknowledged sale is readable.
  for (const auto& [id, sale] : h.printed) {
    auto v = store.read(core::record_key{tenant, branch, "sale", id});
    ASSERT_TRUE(v) << v.err().to_string();
    EXPECT_TRUE(v->exists) << "acknowledged sale " << id << " lost";
  }

  // All sales in the store: no duplicates, bodies match what was printed, stock sums.
  auto keys = store.sales_between(tenant, branch, 0, std::numeric_limits<int64_t>::max(), 10'000'000);
  ASSERT_TRUE(keys) << keys.err().to_string();
  std::set<std::string> stored;
  std::map<std::string, int64_t> sold;
  for (const auto& k : *keys) {
    EXPECT_TRUE(stored.insert(k.id).second) << "sale " << k.id << " listed twice";
    auto v = store.read(k);
    ASSERT_TRUE(v) << v.err().to_string();
    ASSERT_TRUE(v->exists) << "sale " << k.id << " listed but not readable";
    auto lines = sim::parse_sale_lines(v->body);
    ASSERT_TRUE(lines) << lines.err().to_string();
    std::map<std::string, int64_t> qty;
    for (const auto& l : *lines) {
      sold[l.product_id] += l.quantity;
      qty[l.product_id] += l.quantity;
    }
    auto p = h.printed.find(k.id);
    if (p != h.printed.end()) {
      EXPECT_EQ(p->second.qty, qty) << "sale " << k.id << " body differs from what was sold";
    }
  }
  for (const auto& [id, sale] : h.printed)
    EXPECT_EQ(stored.count(id), 1u) << "sale " << id << " missing from the sales index";
  EXPECT_GE(stored.size(), h.stored_sales) << "sales disappeared";
  h.stored_sales = stored.size();

  // Outbox lane 0: strictly increasing seqs, one entry per stored sale (no acks
  // happen here), earlier entries unchanged, new ones above the previous head.
  auto outbox = store.outbox_window(core::lane_sales, 0, 10'000'000);
  ASSERT_TRUE(outbox) << outbox.err().to_string();
  std::map<uint64_t, std::string> now;
  std::set<std::string> queued;
  uint64_t last = 0;
  for (const auto& e : *outbox) {
    EXPECT_GT(e.seq, last) << "outbox seqs not strictly increasing";
    last = e.seq;
    EXPECT_LE(e.seq, h.heads[core::lane_sales]) << "outbox seq above the lane head";
    if (e.rec.key.collection != "sale") continue;
    EXPECT_TRUE(queued.insert(e.rec.key.id).second) << "sale " << e.rec.key.id << " queued twice";
    now[e.seq] = e.rec.key.id;
  }
  EXPECT_EQ(queued, stored) << "outbox and stored sales differ (a half-written commit?)";
  for (const auto& [seq, id] : h.outbox) {
    auto it = now.find(seq);
    EXPECT_TRUE(it != now.end() && it->second == id)
        << "outbox seq " << seq << " (sale " << id << ") changed or vanished";
  }
  h.outbox = std::move(now);

  // Stock = initial - everything sold, for every product (none if the catalogue
  // load itself was cut off, which must then be all or nothing).
  auto loaded = sim::catalog_loaded(store, tenant, sim::demo_catalog());
  ASSERT_TRUE(loaded) << loaded.err().to_string();
  for (const auto& p : sim::demo_catalog()) {
    auto v = store.read(sim::product_key(tenant, p.id));
    ASSERT_TRUE(v) << v.err().to_string();
    EXPECT_EQ(v->exists, *loaded) << "catalogue half loaded: product " << p.id;
    auto level = store.stock_level(tenant, branch, p.id);
    ASSERT_TRUE(level) << level.err().to_string();
    int64_t want = (*loaded ? initial_stock : 0) - sold[p.id];
    EXPECT_EQ(*level, want) << "stock of " << p.id << " != initial - sold";
  }
}

TEST(crash, sigkill_mid_sales_loses_nothing_and_tears_nothing) {
  unsigned long long seed = possync::test::crash_seed ? possync::test::crash_seed : std::random_device{}();
  int cycles = possync::test::crash_cycles;
  std::printf("crash test: %d cycles, --seed %llu\n", cycles, seed);
  RecordProperty("seed", std::to_string(seed));
  std::mt19937_64 rnd(seed);
  test::temp_dir dir("possync-crash");
  ASSERT_FALSE(dir.path().empty()) << "cannot create a temp dir";
  history h;
  size_t killed_mid_run = 0;
  for (int cycle = 0; cycle < cycles; ++cycle) {
    SCOPED_TRACE("cycle " + std::to_string(cycle) + " seed " + std::to_string(seed));
    int delay_ms = 50 + static_cast<int>(rnd() % 351);
    bool from_ready = cycle % 2 == 1; // odd cycles: count the delay from READY, so sales do happen
    {
      test::child_process child;
      ASSERT_TRUE(
          child.spawn({POSSYNC_BIN, "crash-writer", "--dir", dir.path(), "--seed",
                       std::to_string(seed + static_cast<unsigned long long>(cycle)), "--tenant", tenant,
                       "--branch", branch, "--initial-stock", std::to_string(initial_stock)}));
      bool open = true;
      if (from_ready) open = child.read_until(steady::now() + std::chrono::seconds(30), "READY");
      if (open) open = child.read_until(steady::now() + std::chrono::milliseconds(delay_ms));
      int status = child.kill_and_reap();
      ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL)
          << "crash-writer exited by itself (status " << status << "); output:\n"
          << child.output();
      if (open) ++killed_mid_run;
      for (auto& s : parse_sales(child.output())) {
        EXPECT_EQ(h.printed.count(s.id), 0u) << "sale id " << s.id << " issued twice";
        h.printed[s.id] = std::move(s);
      }
    }
    verify_store(dir.path(), h);
    if (::testing::Test::HasFailure()) {
      dir.keep();
      FAIL() << "store kept at " << dir.path() << " for inspection";
    }
  }
  EXPECT_GT(h.printed.size(), 0u) << "no sale was ever acknowledged in " << cycles << " cycles";
  std::printf("crash test: %zu sales acknowledged and found, %zu in the store, %zu kills mid-run\n",
              h.printed.size(), h.stored_sales, killed_mid_run);
}

} // namespace
