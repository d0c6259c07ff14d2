// The `possync` command as an operator runs it: exit codes and what it prints.

#include <sys/wait.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include <fstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "process.hpp"

namespace {

struct run_result {
  int code = -1;
  std::string out;
};

// Runs the built binary through a shell with a time bound (coreutils timeout).
run_result run(const std::string& args) {
  std::string cmd = std::string("timeout 120 ") + POSSYNC_BIN + " " + args + " 2>&1";
  run_result r;
  FILE* p = ::popen(cmd.c_str(), "r");
  if (!p) return r;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0)
    r.out.append(buf, n);
  int status = ::pclose(p);
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

// The repository root.
std::string source_dir() {
  return POSSYNC_SOURCE_DIR;  // not __FILE__: ccache's base_dir makes it relative
}

class cli : public ::testing::Test {
protected:
  void SetUp() override {
    const char* t = std::getenv("TMPDIR");
    std::string templ = std::string(t && *t ? t : "/tmp") + "/possync-cli-XXXXXX";
    std::vector<char> buf(templ.begin(), templ.end());
    buf.push_back('\0');
    ASSERT_NE(::mkdtemp(buf.data()), nullptr);
    dir_ = buf.data();
  }
  void TearDown() override {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  std::string dir_;
};

TEST_F(cli, terminal_records_sales_across_runs) {
  auto first = run("terminal --dir " + dir_ + "/t --sales 7 --seed 3");
  ASSERT_EQ(first.code, 0) << first.out;
  EXPECT_NE(first.out.find("catalogue loaded now"), std::string::npos) << first.out;
  EXPECT_NE(first.out.find("7 in the store"), std::string::npos) << first.out;
  EXPECT_NE(first.out.find("outbox pending sales 7,"), std::string::npos) << first.out;
  EXPECT_NE(first.out.find("Indomie Goreng 85g"), std::string::npos) << first.out;
  auto second = run("terminal --dir " + dir_ + "/t --sales 5 --seed 4");
  ASSERT_EQ(second.code, 0) << second.out;
  EXPECT_EQ(second.out.find("catalogue loaded now"), std::string::npos) << second.out;
  EXPECT_NE(second.out.find("12 in the store"), std::string::npos) << second.out;
  EXPECT_NE(second.out.find("outbox pending sales 12,"), std::string::npos) << second.out;
}

TEST_F(cli, bad_input_gives_a_clear_error_and_nonzero_exit) {
  auto bad_tenant = run("terminal --dir " + dir_ + "/t --tenant 'a b'");
  EXPECT_EQ(bad_tenant.code, 2);
  EXPECT_NE(bad_tenant.out.find("--tenant"), std::string::npos) << bad_tenant.out;
  auto bad_number = run("terminal --dir " + dir_ + "/t --sales lots");
  EXPECT_EQ(bad_number.code, 2) << bad_number.out;
  auto unknown = run("sim --workload nope");
  EXPECT_EQ(unknown.code, 2);
  EXPECT_NE(unknown.out.find("unknown workload 'nope'"), std::string::npos) << unknown.out;
  EXPECT_NE(unknown.out.find("local"), std::string::npos) << unknown.out;
}

TEST_F(cli, sim_local_json_has_the_fields_the_harness_reads) {
  auto r =
      run("sim --workload local --products 200 --sales 20 --writers 2 --concurrent-sales 40 --lookups 100 "
          "--searches 20 --json --dir " +
          dir_);
  ASSERT_EQ(r.code, 0) << r.out;
  for (const char* f :
       {"\"workload\":\"local\"", "\"commit_p50_us\"", "\"commits_per_s\"", "\"lookup_p99_us\"",
        "\"search_p99_us\"", "\"lost\":0", "\"duplicated\":0", "\"converged\":true", "\"peak_rss_mb\""})
    EXPECT_NE(r.out.find(f), std::string::npos) << f << " in " << r.out;
}

// A fleet stopping at the end of a run ends every session as asked: no warnings
// (a W7 run used to print one per terminal, 10,000 lines).
TEST_F(cli, sim_fleet_stops_without_warnings) {
  auto r =
      run("sim --workload many-terminals --terminals 20 --sales 5 --transport grpc --json --dir " + dir_);
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("\"lost\":0"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("[warning]"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("session ended"), std::string::npos) << r.out; // info is below the default level
}

// W9 in small: a real HQ process SIGKILLed twice mid-traffic comes back on its port,
// the terminal's session is welcomed again, and every acknowledged sale is at HQ once.
TEST_F(cli, sim_restart_kills_hq_and_loses_no_sale) {
  auto r = run("sim --workload restart --products 300 --sales 3000 --restarts 2 --json --dir " + dir_);
  ASSERT_EQ(r.code, 0) << r.out;
  auto j = nlohmann::json::parse(r.out.substr(r.out.rfind("{\"converged\"")), nullptr, false);
  ASSERT_TRUE(j.is_object()) << r.out;
  EXPECT_EQ(j["workload"], "restart");
  EXPECT_TRUE(j["converged"].get<bool>()) << r.out;
  EXPECT_EQ(j["lost"], 0);
  EXPECT_EQ(j["duplicated"], 0);
  EXPECT_EQ(j["details"]["restarts_measured"], 2);
  EXPECT_EQ(j["details"]["records"], 3300);
  EXPECT_GT(j["details"]["expected"].get<int>(), 0);  // sales were acknowledged across the kills
  EXPECT_EQ(j["details"]["seen"], j["details"]["expected"]);
  EXPECT_GT(j["p50_ms"].get<double>(), 0);
}

TEST_F(cli, terminal_node_without_branch_or_with_bad_config_is_a_usage_error) {
  auto no_branch = run("terminal --dir " + dir_ + "/t --upstream 127.0.0.1:1");
  EXPECT_EQ(no_branch.code, 2) << no_branch.out;
  EXPECT_NE(no_branch.out.find("branch is required"), std::string::npos) << no_branch.out;
  {
    std::ofstream f(dir_ + "/bad.yaml");
    f << "tenant: demo\nsesion:\n  heartbeat_ms: 10\n";
  }
  auto bad_key = run("hq --config " + dir_ + "/bad.yaml --dir " + dir_ + "/hq");
  EXPECT_EQ(bad_key.code, 2) << bad_key.out;
  EXPECT_NE(bad_key.out.find("sesion: unknown key"), std::string::npos) << bad_key.out;
  {
    std::ofstream f(dir_ + "/role.yaml");
    f << "role: branch\n";
  }
  {
    std::ofstream f(dir_ + "/pause.yaml");
    f << "tenant: demo\nsession:\n  stock_pause_ms: -5\n";
  }
  auto bad_pause = run("hq --config " + dir_ + "/pause.yaml --dir " + dir_ + "/hq");
  EXPECT_EQ(bad_pause.code, 2) << bad_pause.out;
  EXPECT_NE(bad_pause.out.find("session.stock_pause_ms"), std::string::npos) << bad_pause.out;
  {
    std::ofstream f(dir_ + "/hold.yaml");
    f << "tenant: demo\nsession:\n  urgent_hold_ms: -1\n";
  }
  auto bad_hold = run("hq --config " + dir_ + "/hold.yaml --dir " + dir_ + "/hq");
  EXPECT_EQ(bad_hold.code, 2) << bad_hold.out;
  EXPECT_NE(bad_hold.out.find("session.urgent_hold_ms"), std::string::npos) << bad_hold.out;
  {
    std::ofstream f(dir_ + "/quiet.yaml");
    f << "tenant: demo\nsession:\n  quiet_tick_ms: 0\n";
  }
  auto bad_quiet = run("hq --config " + dir_ + "/quiet.yaml --dir " + dir_ + "/hq");
  EXPECT_EQ(bad_quiet.code, 2) << bad_quiet.out;
  EXPECT_NE(bad_quiet.out.find("session.quiet_tick_ms"), std::string::npos) << bad_quiet.out;
  {
    std::ofstream f(dir_ + "/window.yaml");
    f << "tenant: demo\nstream_window_bytes: 100\n";
  }
  auto bad_window = run("hq --config " + dir_ + "/window.yaml --dir " + dir_ + "/hq");
  EXPECT_EQ(bad_window.code, 2) << bad_window.out;
  EXPECT_NE(bad_window.out.find("stream_window_bytes"), std::string::npos) << bad_window.out;
  auto wrong_role = run("hq --config " + dir_ + "/role.yaml --dir " + dir_ + "/hq");
  EXPECT_EQ(wrong_role.code, 2) << wrong_role.out;
  auto bad_device = run("hq --dir " + dir_ + "/hq --device demo:b1:zz:terminal");
  EXPECT_EQ(bad_device.code, 2) << bad_device.out;
  {
    std::ofstream f(dir_ + "/skip.yaml");
    f << "tenant: demo\nbranch: b1\nskip_collections: stock\n";
  }
  auto skip_scalar =
      run("terminal --config " + dir_ + "/skip.yaml --dir " + dir_ + "/t --upstream 127.0.0.1:1");
  EXPECT_EQ(skip_scalar.code, 2) << skip_scalar.out;
  EXPECT_NE(skip_scalar.out.find("skip_collections: expected a list"), std::string::npos) << skip_scalar.out;
  auto skip_unknown = run("terminal --branch b1 --insecure-dev --dir " + dir_ +
                          "/t --upstream 127.0.0.1:1 --skip-collection stok");
  EXPECT_NE(skip_unknown.code, 0) << skip_unknown.out;
  EXPECT_NE(skip_unknown.out.find("unknown collection 'stok'"), std::string::npos) << skip_unknown.out;
}

TEST_F(cli, example_configs_parse) {
  // Each example starts (on a free port, in a temp dir) and stops cleanly on SIGTERM.
  // The examples name certificate files under /etc/possync/tls; flags point them at a
  // CA made here by deploy/make-certs.sh (the file's other keys stay in force).
  const std::string tls = dir_ + "/tls";
  ASSERT_EQ(std::system((source_dir() + "/deploy/make-certs.sh " + tls +
                         " --token-key hq=4000000000000001 branch=00000000000000b1 >/dev/null")
                            .c_str()),
            0);
  for (const char* role : {"hq", "branch"}) {
    possync::test::child_process p;
    const std::string r = role;
    ASSERT_TRUE(p.spawn({POSSYNC_BIN, role, "--config", source_dir() + "/deploy/examples/" + role + ".yaml",
                         "--dir", dir_ + "/" + role, "--listen", "127.0.0.1:0", "--log-level", "warn",
                         "--tls-ca", tls + "/ca.pem", "--tls-cert", tls + "/" + r + ".pem", "--tls-key",
                         tls + "/" + r + ".key", "--token-key", tls + "/token.pub"}));
    auto line =
        p.next_line("listening on 127.0.0.1:", possync::test::steady::now() + std::chrono::seconds(30));
    ASSERT_TRUE(line.has_value()) << role << ": " << p.output();
    int st = p.stop(SIGTERM, std::chrono::seconds(30));
    EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << role << " status " << st;
  }
}

// HQ and one terminal connected directly (a store without a branch server): the
// console over pipes drives both; ten sales reach HQ exactly once.
TEST_F(cli, hq_and_terminal_consoles_over_pipes) {
  using possync::test::steady;
  using namespace std::chrono_literals;
  possync::test::child_process hq;
  ASSERT_TRUE(hq.spawn({POSSYNC_BIN, "hq", "--insecure-dev", "--dir", dir_ + "/hq", "--listen", "127.0.0.1:0", "--console",
                        "--port-file", dir_ + "/hq.port", "--log-level", "warn", "--device",
                        "demo:b1:00000000000000a1:terminal:till 1"},
                       true));
  auto line = hq.next_line("listening on 127.0.0.1:", steady::now() + 30s);
  ASSERT_TRUE(line.has_value()) << hq.output();
  std::string port = line->substr(line->rfind(':') + 1);
  std::string from_file;
  std::ifstream(dir_ + "/hq.port") >> from_file;
  EXPECT_EQ(from_file, port);

  auto r = hq.command("catalogue 20 50 b1");
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(*r, "ok {\"products\":20}");

  possync::test::child_process t;
  ASSERT_TRUE(t.spawn({POSSYNC_BIN, "terminal", "--insecure-dev", "--dir", dir_ + "/t1", "--upstream", "127.0.0.1:" + port,
                       "--tenant", "demo", "--branch", "b1", "--node-id", "a1", "--log-level", "warn",
                       "--backoff-initial-ms", "100", "--backoff-max-ms", "500"},
                      true));
  r = t.command("wait-count product 20 60", 70s);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->rfind("ok ", 0), 0u) << *r;
  r = t.command("get-stock b1 p00001");
  ASSERT_TRUE(r.has_value());
  EXPECT_NE(r->find("\"stock_milli\":50000"), std::string::npos) << *r;
  r = t.command("sell-n 10");
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->rfind("ok {", 0), 0u) << *r;
  EXPECT_NE(r->find("\"sales\":10"), std::string::npos) << *r;
  r = t.command("wait-synced 60", 70s);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->rfind("ok ", 0), 0u) << *r;
  r = hq.command("count sale");
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(*r, "ok {\"collection\":\"sale\",\"count\":10}");
  // Stock decrements travelled up with the sales: both nodes agree on every record
  // the terminal downloads.
  r = hq.command("wait-product p00001 active true 5");
  EXPECT_EQ(r.value_or("").rfind("ok ", 0), 0u) << r.value_or("");
  auto hq_digest = hq.command("digest product stock");
  auto t_digest = t.command("digest product stock");
  ASSERT_TRUE(hq_digest && t_digest);
  EXPECT_EQ(*hq_digest, *t_digest);
  // Errors are one line too.
  r = t.command("sell nope 1");
  EXPECT_EQ(r.value_or("").rfind("err not_found: ", 0), 0u) << r.value_or("");
  r = t.command("frobnicate");
  EXPECT_EQ(r.value_or("").rfind("err usage: ", 0), 0u) << r.value_or("");

  r = t.command("quit");
  EXPECT_EQ(r.value_or(""), "ok");
  int ts = t.stop(SIGTERM, 30s);
  EXPECT_TRUE(WIFEXITED(ts) && WEXITSTATUS(ts) == 0) << ts;
  int hs = hq.stop(SIGTERM, 30s);
  EXPECT_TRUE(WIFEXITED(hs) && WEXITSTATUS(hs) == 0) << hs;

  // Offline inspection of the stopped HQ store.
  auto inspect = run("inspect --dir " + dir_ + "/hq --json");
  ASSERT_EQ(inspect.code, 0) << inspect.out;
  EXPECT_NE(inspect.out.find("\"demo/b1\""), std::string::npos) << inspect.out;
  EXPECT_NE(inspect.out.find("\"records\": 10"), std::string::npos) << inspect.out;
}

TEST_F(cli, ctl_calls_the_admin_service_with_tables_and_json) {
  using possync::test::steady;
  using namespace std::chrono_literals;
  using json = nlohmann::json;
  possync::test::child_process hq;
  ASSERT_TRUE(hq.spawn({POSSYNC_BIN, "hq", "--insecure-dev", "--dir", dir_ + "/hq", "--listen", "127.0.0.1:0",
                        "--log-level", "warn", "--device", "demo:b1:00000000000000a1:terminal:till 1"},
                       true));
  auto line = hq.next_line("listening on 127.0.0.1:", steady::now() + 30s);
  ASSERT_TRUE(line.has_value()) << hq.output();
  const std::string server = "127.0.0.1:" + line->substr(line->rfind(':') + 1);
  possync::test::child_process t;
  ASSERT_TRUE(t.spawn({POSSYNC_BIN, "terminal", "--insecure-dev", "--dir", dir_ + "/t1", "--upstream", server,
                       "--tenant", "demo", "--branch", "b1", "--node-id", "a1", "--log-level", "warn",
                       "--backoff-initial-ms", "100", "--backoff-max-ms", "500"},
                      true));
  auto sold = t.command("sell-n 3");
  ASSERT_TRUE(sold.has_value());
  const std::string conn = " --server " + server + " --insecure-dev";

  // status: the HQ itself.
  auto st = run("ctl status --json" + conn);
  ASSERT_EQ(st.code, 0) << st.out;
  auto sj = json::parse(st.out, nullptr, false);
  ASSERT_FALSE(sj.is_discarded()) << st.out;
  EXPECT_EQ(sj["role"], "hq");
  EXPECT_EQ(sj["tenant"], "demo");
  EXPECT_TRUE(sj["pending"].contains("sales"));

  // nodes: the till, online once its session is up.
  json till;
  for (int i = 0; i < 300 && !(till.is_object() && till["online"] == true); ++i) {
    auto ns = run("ctl nodes --json" + conn);
    ASSERT_EQ(ns.code, 0) << ns.out;
    auto nj = json::parse(ns.out, nullptr, false);
    ASSERT_FALSE(nj.is_discarded()) << ns.out;
    for (const auto& n : nj["nodes"])
      if (n["node"] == "00000000000000a1") till = n;
    if (!(till.is_object() && till["online"] == true)) std::this_thread::sleep_for(100ms);
  }
  ASSERT_TRUE(till.is_object());
  EXPECT_EQ(till["online"], true);
  EXPECT_EQ(till["name"], "till 1");
  EXPECT_EQ(till["role"], "terminal");
  EXPECT_EQ(till["branch"], "b1");
  auto table = run("ctl nodes" + conn);
  ASSERT_EQ(table.code, 0) << table.out;
  EXPECT_NE(table.out.find("LAST SEEN"), std::string::npos) << table.out;
  EXPECT_NE(table.out.find("till 1"), std::string::npos) << table.out;
  EXPECT_NE(table.out.find("online"), std::string::npos) << table.out;

  // resync: ordered, audited in the log.
  auto rs = run("ctl resync --node a1 --reason check --json" + conn);
  ASSERT_EQ(rs.code, 0) << rs.out;
  EXPECT_EQ(json::parse(rs.out, nullptr, false)["seq"], 1) << rs.out;
  auto lg = run("ctl log --json --limit 5" + conn);
  ASSERT_EQ(lg.code, 0) << lg.out;
  auto lj = json::parse(lg.out, nullptr, false);
  ASSERT_FALSE(lj.is_discarded()) << lg.out;
  json order;  // the till may have carried it out already: its session entry can be newer
  for (const auto& e : lj["entries"])
    if (e["kind"] == "operator") order = e;
  ASSERT_TRUE(order.is_object()) << lg.out;
  EXPECT_EQ(order["action"], "resync");
  EXPECT_EQ(order["peer"], "00000000000000a1");
  EXPECT_EQ(order["actor"], "local");

  // conflicts and time.
  auto cs = run("ctl conflicts --json" + conn);
  ASSERT_EQ(cs.code, 0) << cs.out;
  EXPECT_TRUE(json::parse(cs.out, nullptr, false)["conflicts"].is_array()) << cs.out;
  auto tm = run("ctl time --json" + conn);
  ASSERT_EQ(tm.code, 0) << tm.out;
  EXPECT_GT(json::parse(tm.out, nullptr, false)["wall_ms"].get<int64_t>(), 0) << tm.out;

  // Errors: a clear line and a non-zero exit.
  auto unknown = run("ctl resync --node 99" + conn);
  EXPECT_EQ(unknown.code, 1) << unknown.out;
  EXPECT_NE(unknown.out.find("not registered"), std::string::npos) << unknown.out;
  auto missing = run("ctl conflicts show 42" + conn);
  EXPECT_EQ(missing.code, 1) << missing.out;
  EXPECT_NE(missing.out.find("no conflict 42"), std::string::npos) << missing.out;
  auto no_creds = run("ctl status --server " + server);
  EXPECT_EQ(no_creds.code, 2) << no_creds.out;
  auto remote = run("ctl status --insecure-dev --server 10.1.2.3:7400");
  EXPECT_EQ(remote.code, 2) << remote.out;
  auto bad_mode = run("ctl conflicts resolve 1 --mode coin-toss" + conn);
  EXPECT_EQ(bad_mode.code, 2) << bad_mode.out;

  t.stop(SIGTERM, 30s);
  hq.stop(SIGTERM, 30s);
}

TEST_F(cli, terminal_script_runs_and_reports_failures) {
  {
    std::ofstream f(dir_ + "/ok.txt");
    f << "# a comment\nproduct x1 \"Kopi Susu 250ml\" 12000 8991000000011\nstock x1 5\nsell x1 2\n"
         "get-stock b1 x1\nprice x1 13000\nwait-product x1 price 13000 1\ncount sale\n";
  }
  auto good = run("terminal --dir " + dir_ + "/t --tenant demo --branch b1 --log-level warn --script " +
                  dir_ + "/ok.txt");
  EXPECT_EQ(good.code, 0) << good.out;
  EXPECT_NE(good.out.find("\"stock_milli\":3000"), std::string::npos) << good.out;
  EXPECT_NE(good.out.find("\"count\":1"), std::string::npos) << good.out;
  {
    std::ofstream f(dir_ + "/bad.txt");
    f << "sell missing 1\n";
  }
  auto bad = run("terminal --dir " + dir_ + "/t --tenant demo --branch b1 --log-level warn --script " + dir_ +
                 "/bad.txt");
  EXPECT_EQ(bad.code, 1) << bad.out;
  EXPECT_NE(bad.out.find("err not_found"), std::string::npos) << bad.out;
}

// The whole system in one process: HQ, a branch, three terminals, a cut and a heal.
TEST_F(cli, demo_verifies_and_exits_zero) {
  auto r =
      run("demo --log-level warn --products 50 --sales-online 10 --sales-cut 10 --dir " + dir_ + "/demo");
  EXPECT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("PASS"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("FAIL"), std::string::npos) << r.out;
  for (const char* n : {"hq ", "branch ", "t1 ", "t2 ", "t3 "})
    EXPECT_NE(r.out.find(n), std::string::npos) << n;
}

TEST_F(cli, demo_on_defaults) {
  auto r = run("demo");
  EXPECT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("PASS"), std::string::npos) << r.out;
}

TEST_F(cli, version) {
  auto r = run("version");
  EXPECT_EQ(r.code, 0);
  EXPECT_EQ(r.out.rfind("possync ", 0), 0u) << r.out;
}

} // namespace

namespace {

// Flips bytes inside every SST file of a closed store's directory.
void flip_sst_bytes(const std::string& dir) {
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    if (e.path().extension() != ".sst" || e.file_size() < 300) continue;
    std::fstream f(e.path(), std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(120);
    f.write("\x13\x37\x13\x37\x13\x37\x13\x37", 8);
  }
}

} // namespace

// Operator store lifecycle: verify, backup, restore (refusing a full directory without
// --force), damage found by verify, recover, and the recovered store in use again.
TEST_F(cli, verify_backup_restore_recover) {
  const std::string data = dir_ + "/t", backup = dir_ + "/backup", restored = dir_ + "/r";
  ASSERT_EQ(run("terminal --dir " + data + " --sales 7 --seed 3").code, 0);

  auto v = run("verify " + data);
  EXPECT_EQ(v.code, 0) << v.out;
  EXPECT_NE(v.out.find(": clean"), std::string::npos) << v.out;
  EXPECT_NE(v.out.find("outbox pending 7"), std::string::npos) << v.out;
  auto vj = run("verify " + data + " --json");
  ASSERT_EQ(vj.code, 0) << vj.out;
  auto j = nlohmann::json::parse(vj.out);
  EXPECT_TRUE(j["clean"].get<bool>());
  EXPECT_EQ(j["spaces"][0]["records"]["sale"].get<int>(), 7);

  auto b = run("backup --dir " + data + " --to " + backup);
  ASSERT_EQ(b.code, 0) << b.out;
  EXPECT_EQ(run("backup --dir " + data + " --to " + backup).code, 1);

  auto r = run("restore --from " + backup + " --dir " + restored);
  ASSERT_EQ(r.code, 0) << r.out;
  auto again = run("restore --from " + backup + " --dir " + restored);
  EXPECT_EQ(again.code, 1) << again.out;
  EXPECT_NE(again.out.find("--force"), std::string::npos) << again.out;
  auto forced = run("restore --from " + backup + " --dir " + restored + " --force");
  ASSERT_EQ(forced.code, 0) << forced.out;
  bool aside = false;
  for (const auto& e : std::filesystem::directory_iterator(dir_))
    aside = aside || e.path().filename().string().rfind("r.before-restore-", 0) == 0;
  EXPECT_TRUE(aside);
  auto rt = run("terminal --dir " + restored + " --sales 1 --seed 5");
  EXPECT_EQ(rt.code, 0) << rt.out;
  EXPECT_NE(rt.out.find("8 in the store"), std::string::npos) << rt.out;

  flip_sst_bytes(data);
  auto bad = run("verify " + data);
  EXPECT_EQ(bad.code, 1) << bad.out;
  // Every SST file is damaged, the metadata too: the node id is given back by hand.
  const std::string node = j["spaces"][0]["node"].get<std::string>();
  auto rec = run("recover --dir " + data + " --node-id " + node);
  ASSERT_EQ(rec.code, 0) << rec.out;
  EXPECT_NE(rec.out.find("damaged store moved to " + data + ".damaged-"), std::string::npos) << rec.out;
  auto good = run("verify " + data + " --json");
  ASSERT_EQ(good.code, 0) << good.out;
  EXPECT_EQ(nlohmann::json::parse(good.out)["spaces"][0]["node"].get<std::string>(), node);
  auto more = run("terminal --dir " + data + " --sales 2 --seed 6");
  EXPECT_EQ(more.code, 0) << more.out;
}
