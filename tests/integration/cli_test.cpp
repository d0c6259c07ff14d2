// The `possync` command as an operator runs it: exit codes and what it prints.

#include <sys/wait.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include <gtest/gtest.h>

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

TEST_F(cli, version) {
  auto r = run("version");
  EXPECT_EQ(r.code, 0);
  EXPECT_EQ(r.out.rfind("possync ", 0), 0u) << r.out;
}

} // namespace
