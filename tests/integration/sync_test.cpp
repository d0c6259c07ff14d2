// The sync scenarios of issue 3, with real processes on 127.0.0.1: `possync hq`,
// `possync branch` and `possync terminal`, each driven through its console over
// pipes (tools/src/console.hpp documents the protocol). Every wait is bounded.

#include <signal.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "process.hpp"

namespace {

using nlohmann::json;
using namespace std::chrono_literals;
using possync::test::child_process;
using possync::test::steady;
using possync::test::temp_dir;

const std::string tenant = "demo";
const std::string branch = "b1";
const std::string hq_id = "00000000000000f1";
const std::string branch_id = "00000000000000b1";
const std::string t1_id = "00000000000000a1";
const std::string t2_id = "00000000000000a2";

// One running node and its console.
struct proc {
  std::string name;
  std::vector<std::string> args;
  std::unique_ptr<child_process> p;
  uint16_t port = 0;

  // Runs a console command; returns its JSON ("ok" alone gives null). A failure or
  // no answer is a test failure and gives a JSON object {"error": ...}.
  json run(const std::string& line, std::chrono::seconds timeout = 60s) {
    auto started = steady::now();
    auto r = p->command(line, timeout + 10s);
    if (std::getenv("POSSYNC_TEST_TRACE"))  // where a slow scenario spends its time
      std::fprintf(stderr, "[trace] %s: %s (%lld ms)\n", name.c_str(), line.c_str(),
                   static_cast<long long>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                              steady::now() - started).count()));
    if (!r) {
      ADD_FAILURE() << name << ": no answer to '" << line << "'";
      return json{{"error", "no answer"}};
    }
    if (r->rfind("ok", 0) != 0) {
      ADD_FAILURE() << name << ": '" << line << "' -> " << *r;
      return json{{"error", *r}};
    }
    if (r->size() <= 3)
      return json();
    return json::parse(r->substr(3), nullptr, false);
  }
  // Like run() but a failure is a value, not a test failure.
  std::string try_run(const std::string& line, std::chrono::seconds timeout = 30s) {
    auto r = p->command(line, timeout + 10s);
    return r ? *r : "no answer";
  }
  int64_t stock(const std::string& id) { return run("get-stock " + branch + " " + id)["stock_milli"].get<int64_t>(); }
  int64_t count(const std::string& collection) { return run("count " + collection)["count"].get<int64_t>(); }
};

class sync_processes : public ::testing::Test {
protected:
  temp_dir dir_{"possync-sync"};

  std::vector<std::string> common(const std::string& role, const std::string& name, const std::string& node) {
    return {POSSYNC_BIN, role, "--dir", dir_.sub(name), "--tenant", tenant, "--node-id", node,
            "--heartbeat-ms", "300", "--idle-timeout-ms", "3000", "--backoff-initial-ms", "100",
            "--backoff-max-ms", "1000", "--log-level", "warn", "--insecure-dev"};
  }

  // Starts a process; servers report their port on "listening on 127.0.0.1:PORT".
  std::unique_ptr<proc> launch(const std::string& name, std::vector<std::string> args, bool server) {
    auto n = std::make_unique<proc>();
    n->name = name;
    n->args = args;
    n->p = std::make_unique<child_process>();
    if (!n->p->spawn(args, true)) {
      ADD_FAILURE() << "cannot start " << name;
      return n;
    }
    if (server) {
      auto line = n->p->next_line("listening on ", steady::now() + 30s);
      if (!line) {
        ADD_FAILURE() << name << " did not report its port; output:\n" << n->p->output();
        return n;
      }
      n->port = static_cast<uint16_t>(std::stoi(line->substr(line->rfind(':') + 1)));
    }
    return n;
  }

  std::unique_ptr<proc> start_hq(const std::string& listen = "127.0.0.1:0") {
    auto a = common("hq", "hq", hq_id);
    for (const auto& d : {"demo:b1:" + branch_id + ":branch", "demo:b1:" + t1_id + ":terminal",
                          "demo:b1:" + t2_id + ":terminal"}) {
      a.push_back("--device");
      a.push_back(d);
    }
    a.insert(a.end(), {"--listen", listen, "--console"});
    return launch("hq", a, true);
  }
  std::unique_ptr<proc> start_branch(uint16_t hq_port, const std::string& listen = "127.0.0.1:0") {
    auto a = common("branch", "branch", branch_id);
    a.insert(a.end(), {"--branch", branch, "--upstream", "127.0.0.1:" + std::to_string(hq_port), "--listen", listen,
                      "--console"});
    return launch("branch", a, true);
  }
  std::unique_ptr<proc> start_terminal(const std::string& name, const std::string& node, uint16_t upstream) {
    auto a = common("terminal", name, node);
    a.insert(a.end(), {"--branch", branch, "--upstream", "127.0.0.1:" + std::to_string(upstream)});
    return launch(name, a, false);
  }
  // Stops a node cleanly (SIGTERM; SIGKILL after 10 s) and starts it again with the
  // same arguments (same directory, same port for servers).
  void restart(std::unique_ptr<proc>& n, int sig = SIGTERM) {
    n->p->stop(sig);
    auto args = n->args;
    uint16_t port = n->port;
    for (size_t i = 0; i + 1 < args.size(); ++i)
      if (args[i] == "--listen")
        args[i + 1] = "127.0.0.1:" + std::to_string(port);
    bool server = port != 0;
    auto name = n->name;
    n = launch(name, args, server);
    if (server) {
      EXPECT_EQ(n->port, port);
    }
  }

  // HQ with `catalogue N [STOCK BRANCH]` loaded, the branch, and terminal t1 (and t2)
  // holding the N products. `ok()` is false if a server did not come up.
  struct store_chain {
    std::unique_ptr<proc> hq, br, t1, t2;
    bool ok() const { return hq && hq->port != 0 && br && br->port != 0; }
  };
  store_chain start_chain(int products, const std::string& stock_args = "", bool second_terminal = false) {
    store_chain c;
    c.hq = start_hq();
    if (c.hq->port == 0)
      return c;
    c.hq->run("catalogue " + std::to_string(products) + stock_args);
    c.br = start_branch(c.hq->port);
    if (c.br->port == 0)
      return c;
    c.t1 = start_terminal("t1", t1_id, c.br->port);
    if (second_terminal)
      c.t2 = start_terminal("t2", t2_id, c.br->port);
    for (auto* t : {c.t1.get(), c.t2.get()}) {
      if (!t)
        continue;
      t->run("wait-count product " + std::to_string(products) + " 30");
      t->run("wait-synced 30");
    }
    return c;
  }
};

const std::string with_stock = " 100000 " + branch;  // 100,000 units of each product at b1
constexpr int64_t initial_milli = 100000 * 1000;

// Stock of p00001..pN at every node = initial - what `sold` says was sold.
void expect_stock(std::initializer_list<proc*> nodes, std::map<std::string, int64_t>& sold, int products) {
  ASSERT_FALSE(sold.empty());
  for (auto* n : nodes)
    for (int i = 1; i <= products; ++i) {
      char id[16];
      std::snprintf(id, sizeof id, "p%05d", i);
      EXPECT_EQ(n->stock(id), initial_milli - sold[id]) << n->name << " " << id;
    }
}

// Sum of the quantities of the `sold` map of sell-n replies.
void add_sold(std::map<std::string, int64_t>& total, const json& reply) {
  if (!reply.contains("sold"))
    return;
  for (auto& [id, milli] : reply["sold"].items())
    total[id] += milli.get<int64_t>();
}

// 1. A terminal sells 1,000 sales offline; on reconnect HQ holds exactly those 1,000,
// stock correct everywhere.
TEST_F(sync_processes, offline_sales_reach_hq_exactly_once) {
  auto c = start_chain(20, with_stock);
  ASSERT_TRUE(c.ok());
  auto &hq = c.hq, &br = c.br, &t1 = c.t1;
  t1->run("offline");
  std::map<std::string, int64_t> sold;
  add_sold(sold, t1->run("sell-n 1000", 120s));
  EXPECT_EQ(t1->count("sale"), 1000);
  EXPECT_EQ(hq->count("sale"), 0);
  t1->run("online");
  t1->run("wait-synced 60");
  br->run("wait-synced 60");
  hq->run("wait-count sale 1000 60");
  EXPECT_EQ(hq->count("sale"), 1000);
  EXPECT_EQ(br->count("sale"), 1000);
  expect_stock({hq.get(), br.get(), t1.get()}, sold, 20);
}

// 2. An HQ product change reaches every terminal through the branch; a terminal that
// was disconnected during 5,000 changes catches up with no gap.
TEST_F(sync_processes, hq_changes_reach_terminals_and_a_returning_terminal_catches_up) {
  auto c = start_chain(50, "", true);
  ASSERT_TRUE(c.ok());
  auto &hq = c.hq, &t1 = c.t1, &t2 = c.t2;
  hq->run("price p00001 777");
  t1->run("wait-product p00001 price 777 30");
  t2->run("wait-product p00001 price 777 30");

  t2->p->stop(SIGTERM);  // a register switched off
  hq->run("catalogue 5000", 300s);  // p00001..p05000: 50 rewritten, 4,950 new
  hq->run("rename p05000 \"last of the batch\"");
  t1->run("wait-product p05000 name \"last of the batch\" 60");
  restart(t2);
  t2->run("wait-product p05000 name \"last of the batch\" 120", 130s);
  t2->run("wait-synced 60");
  EXPECT_EQ(t2->count("product"), 5000);
  auto at_hq = hq->run("digest product");
  auto at_t1 = t1->run("digest product");
  auto at_t2 = t2->run("digest product");
  EXPECT_EQ(at_hq["demo/"], at_t2["demo/"]) << at_hq.dump() << "\n" << at_t2.dump();
  EXPECT_EQ(at_hq["demo/"], at_t1["demo/"]);
}

// 3. SIGKILL the branch mid-upload and restart it: HQ holds every sale exactly once.
TEST_F(sync_processes, branch_killed_mid_upload_loses_and_duplicates_nothing) {
  auto c = start_chain(20, with_stock);
  ASSERT_TRUE(c.ok());
  auto &hq = c.hq, &br = c.br, &t1 = c.t1;
  std::map<std::string, int64_t> sold;
  br->run("offline");  // the branch collects a backlog for HQ
  add_sold(sold, t1->run("sell-n 3000", 180s));
  t1->run("wait-synced 60");
  br->run("online");
  // Kill it once HQ has started to receive (or at once if the upload is that fast).
  auto deadline = steady::now() + 20s;
  while (steady::now() < deadline && hq->count("sale") == 0)
    std::this_thread::sleep_for(2ms);
  restart(br, SIGKILL);
  ASSERT_NE(br->port, 0);
  br->run("wait-synced 60");
  hq->run("wait-count sale 3000 60");
  add_sold(sold, t1->run("sell-n 10"));  // the terminal's session came back too
  t1->run("wait-synced 60");
  br->run("wait-synced 60");
  hq->run("wait-count sale 3010 60");
  EXPECT_EQ(hq->count("sale"), 3010);
  EXPECT_EQ(br->count("sale"), 3010);
  expect_stock({hq.get(), br.get()}, sold, 20);
}

// 4. Restart HQ mid-stream: sessions come back by themselves (supervisor), nothing lost.
TEST_F(sync_processes, hq_restart_mid_stream_recovers_by_itself) {
  auto c = start_chain(20, with_stock);
  ASSERT_TRUE(c.ok());
  auto &hq = c.hq, &br = c.br, &t1 = c.t1;
  std::map<std::string, int64_t> sold;
  br->run("offline");
  add_sold(sold, t1->run("sell-n 2000", 180s));
  t1->run("wait-synced 60");
  br->run("online");
  std::this_thread::sleep_for(5ms);
  restart(hq, SIGKILL);
  ASSERT_NE(hq->port, 0);
  hq->run("wait-count sale 2000 60");
  br->run("wait-synced 60");
  EXPECT_EQ(hq->count("sale"), 2000);
  auto st = br->run("status");
  EXPECT_TRUE(st.value("online", false)) << st.dump();
  EXPECT_GE(st.value("uplink_restarts", 0), 1) << st.dump();
  // Products edited at HQ after its restart still flow down to the terminal.
  hq->run("price p00002 4242");
  t1->run("wait-product p00002 price 4242 30");
  expect_stock({hq.get(), br.get()}, sold, 20);
}

// 5. Two terminals sell the same product offline: stock = initial - both, on every node.
TEST_F(sync_processes, two_offline_terminals_selling_one_product_both_count) {
  auto c = start_chain(5, " 100 " + branch, true);
  ASSERT_TRUE(c.ok());
  auto &hq = c.hq, &br = c.br, &t1 = c.t1, &t2 = c.t2;
  t1->run("offline");
  t2->run("offline");
  t1->run("sell p00001 3");
  t2->run("sell p00001 4");
  EXPECT_EQ(t1->stock("p00001"), 97000);
  EXPECT_EQ(t2->stock("p00001"), 96000);
  t1->run("online");
  t2->run("online");
  for (auto* n : {hq.get(), br.get(), t1.get(), t2.get()}) {
    auto deadline = steady::now() + 30s;
    while (steady::now() < deadline && n->stock("p00001") != 93000)
      std::this_thread::sleep_for(50ms);
    EXPECT_EQ(n->stock("p00001"), 93000) << n->name;
  }
}

// 6. HQ changes a product's price while the branch changes its name, concurrently:
// every node ends with both changes.
TEST_F(sync_processes, concurrent_price_and_name_edits_both_survive) {
  auto c = start_chain(5);
  ASSERT_TRUE(c.ok());
  auto &hq = c.hq, &br = c.br, &t1 = c.t1;
  br->run("wait-synced 30");
  br->run("offline");
  hq->run("price p00003 4321");
  br->run("rename p00003 \"Kopi Susu Gula Aren\"");
  br->run("online");
  for (auto* n : {hq.get(), br.get(), t1.get()}) {
    n->run("wait-product p00003 price 4321 30");
    auto p = n->run("wait-product p00003 name \"Kopi Susu Gula Aren\" 30");
    EXPECT_EQ(p.value("price", 0), 4321) << n->name << " " << p.dump();
    EXPECT_EQ(p.value("name", ""), "Kopi Susu Gula Aren") << n->name;
  }
}

// 7. A push containing another branch's record is refused with an error naming the
// record; the stream and store stay healthy.
TEST_F(sync_processes, a_record_of_another_branch_is_refused_by_name) {
  auto c = start_chain(5, " 100 " + branch);
  ASSERT_TRUE(c.ok());
  auto &hq = c.hq, &br = c.br, &t1 = c.t1;
  // The register writes stock of branch b2 (not its own) and a sale of its own.
  t1->run("stock p00001 5 b2");
  t1->run("sell p00002 1");
  t1->run("wait-synced 30");
  auto st = t1->run("status");
  EXPECT_GE(st.value("rejected", 0), 1) << st.dump();
  EXPECT_NE(st.value("last_rejection", "").find("demo/b2/stock/p00001"), std::string::npos) << st.dump();
  EXPECT_TRUE(st.value("online", false)) << st.dump();
  // Nothing of b2 was stored upstream; the healthy sale arrived; the stream stays up.
  hq->run("wait-count sale 1 30");
  EXPECT_EQ(br->run("get-stock b2 p00001")["stock_milli"], 0);
  EXPECT_EQ(hq->run("get-stock b2 p00001")["stock_milli"], 0);
  EXPECT_EQ(br->stock("p00002"), 99000);
  t1->run("sell p00002 1");
  t1->run("wait-synced 30");
  hq->run("wait-count sale 2 30");
  EXPECT_EQ(hq->count("sale"), 2);
  EXPECT_TRUE(t1->run("status").value("online", false));
}

} // namespace
