// The status page in a real browser: HQ, a branch and two terminals in one process over
// gRPC on 127.0.0.1, one terminal stopped; headless Chromium (Debian's `chromium`,
// installed by deploy/install-deps.sh) loads HQ's page, runs its JS, and we check the
// DOM it built and the colours of its screenshot (decoded with libpng). Also
// /api/status as JSON and the staleness rule.

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <httplib.h>
#include <png.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "eventually.hpp"
#include "fast_config.hpp"

#include "possync/core/ids.hpp"
#include "possync/node/node.hpp"
#include "possync/node/status_page.hpp"

namespace possync::node {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using json = nlohmann::json;
using test::eventually;

constexpr const char* chromium_path = "/usr/bin/chromium";

/// A temporary directory, removed with everything in it.
struct temp_dir {
  fs::path path;
  temp_dir() {
    std::string tmpl = (fs::temp_directory_path() / "possync-page-XXXXXX").string();
    if (mkdtemp(tmpl.data())) path = tmpl;
  }
  ~temp_dir() {
    std::error_code ec;
    if (!path.empty()) fs::remove_all(path, ec);
  }
};

std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

struct run_result {
  bool finished = false; ///< false: killed at the deadline
  int exit_code = -1;
  std::string out, err;
};

/// Runs `args` (argv[0] a path) in a process group of its own with stdout and stderr
/// in files of `dir`; past `limit` the whole group (Chromium's helpers too) is killed.
run_result run_bounded(const std::vector<std::string>& args, const fs::path& dir,
                       std::chrono::seconds limit) {
  run_result r;
  const auto out_path = dir / "stdout.txt", err_path = dir / "stderr.txt";
  std::vector<char*> argv;
  for (const auto& a : args)
    argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  const pid_t pid = fork();
  if (pid < 0) return r;
  if (pid == 0) {
    setpgid(0, 0);
    int in = open("/dev/null", O_RDONLY);
    int out = open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    int err = open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (in < 0 || out < 0 || err < 0) _exit(126);
    dup2(in, 0);
    dup2(out, 1);
    dup2(err, 2);
    execv(argv[0], argv.data());
    _exit(127);
  }
  setpgid(pid, pid); // also here: no race with the kill below
  const auto deadline = std::chrono::steady_clock::now() + limit;
  int status = 0;
  for (;;) {
    const pid_t w = waitpid(pid, &status, WNOHANG);
    if (w == pid) {
      r.finished = true;
      r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      break;
    }
    if (std::chrono::steady_clock::now() > deadline) {
      kill(-pid, SIGKILL);
      waitpid(pid, &status, 0);
      break;
    }
    std::this_thread::sleep_for(50ms);
  }
  // Helpers left behind by a browser that exited (none expected) go with the group.
  kill(-pid, SIGKILL);
  r.out = read_file(out_path);
  r.err = read_file(err_path);
  return r;
}

/// Headless Chromium on `url`, with a throwaway profile, plus `extra` arguments.
run_result chromium(const std::string& url, const std::vector<std::string>& extra, const fs::path& dir) {
  std::vector<std::string> args = {chromium_path,
                                   "--headless",
                                   "--no-sandbox", // CI runs as root
                                   "--disable-gpu",
                                   "--disable-dev-shm-usage",
                                   "--no-first-run",
                                   "--hide-scrollbars",
                                   "--user-data-dir=" + (dir / "profile").string(),
                                   "--virtual-time-budget=5000"};
  args.insert(args.end(), extra.begin(), extra.end());
  args.push_back(url);
  return run_bounded(args, dir, 90s);
}

/// The PNG at `path` as 8-bit RGBA rows; empty on failure.
struct rgba_image {
  uint32_t width = 0, height = 0;
  std::vector<uint8_t> pixels; ///< width * height * 4
  size_t count(uint8_t r, uint8_t g, uint8_t b, int tolerance) const {
    size_t n = 0;
    for (size_t i = 0; i + 3 < pixels.size(); i += 4)
      if (std::abs(pixels[i] - r) <= tolerance && std::abs(pixels[i + 1] - g) <= tolerance &&
          std::abs(pixels[i + 2] - b) <= tolerance)
        ++n;
    return n;
  }
};

rgba_image decode_png(const fs::path& path) {
  rgba_image img;
  png_image p{};
  p.version = PNG_IMAGE_VERSION;
  if (!png_image_begin_read_from_file(&p, path.c_str())) return img;
  p.format = PNG_FORMAT_RGBA;
  std::vector<uint8_t> buf(PNG_IMAGE_SIZE(p));
  if (!png_image_finish_read(&p, nullptr, buf.data(), 0, nullptr)) {
    png_image_free(&p);
    return img;
  }
  img.width = p.width;
  img.height = p.height;
  img.pixels = std::move(buf);
  return img;
}

/// The serialized <tr> of node `hex` in a DOM dump ("" if absent).
std::string row_of(const std::string& dom, const std::string& hex) {
  const auto at = dom.find("data-node=\"" + hex + "\"");
  if (at == std::string::npos) return "";
  const auto begin = dom.rfind("<tr", at);
  const auto end = dom.find("</tr>", at);
  return dom.substr(begin, end == std::string::npos ? std::string::npos : end - begin);
}

constexpr core::node_id hq_id = 0x4000000000000001ULL;
constexpr core::node_id branch_id = 0xb1;
constexpr core::node_id till1_id = 0x71, till2_id = 0x72;

class status_page : public ::testing::Test {
protected:
  void SetUp() override { rt_ = runtime::create(runtime::options{2, true}); }
  void TearDown() override {
    till1_.reset();
    till2_.reset();
    branch_.reset();
    hq_.reset();
    rt_.reset();
  }

  node_config base(storage::node_role role, core::node_id id) {
    auto c = test::fast_config(role, id, "demo", "jkt-01");
    c.presence_interval_ms = 200;
    if (role != storage::node_role::terminal) {
      c.listen = "127.0.0.1:0";
      c.http_listen = "127.0.0.1:0";
    }
    return c;
  }

  /// HQ with the branch and both registers registered, the branch, both registers.
  void start_all() {
    auto hc = base(storage::node_role::hq, hq_id);
    hc.status_stale_after_ms = 1000; // the stopped register turns stale within the test
    hc.devices = {device{"demo", "jkt-01", branch_id, storage::node_role::branch, "Jakarta Selatan", false},
                  device{"demo", "jkt-01", till1_id, storage::node_role::terminal, "Kasir Satu", false},
                  device{"demo", "jkt-01", till2_id, storage::node_role::terminal, "Kasir Dua", false}};
    auto hq = node::start(hc, rt_);
    ASSERT_TRUE(hq) << hq.err().to_string();
    hq_ = std::move(hq).value();
    auto bc = base(storage::node_role::branch, branch_id);
    bc.upstreams = {"127.0.0.1:" + std::to_string(hq_->port())};
    auto br = node::start(bc, rt_);
    ASSERT_TRUE(br) << br.err().to_string();
    branch_ = std::move(br).value();
    for (auto [id, slot] : {std::pair{till1_id, &till1_}, std::pair{till2_id, &till2_}}) {
      auto tc = base(storage::node_role::terminal, id);
      tc.upstreams = {"127.0.0.1:" + std::to_string(branch_->port())};
      auto t = node::start(tc, rt_);
      ASSERT_TRUE(t) << t.err().to_string();
      *slot = std::move(t).value();
    }
  }

  /// HQ's view of `id` (a default node_info when it does not know it).
  node_info at_hq(core::node_id id) const {
    auto list = hq_->nodes();
    if (list)
      for (const auto& n : *list)
        if (n.node == id) return n;
    return node_info{};
  }

  std::shared_ptr<runtime> rt_;
  std::unique_ptr<node> hq_, branch_, till1_, till2_;
};

TEST(status_page_json, stale_means_out_of_sync_or_unseen_past_the_threshold) {
  const int64_t now = 10'000'000, limit = 300'000;
  node_info n;
  n.online = true;
  EXPECT_FALSE(is_stale(n, now, limit));
  n.lag_ms = limit + 1;
  EXPECT_TRUE(is_stale(n, now, limit));
  n = node_info{};
  EXPECT_TRUE(is_stale(n, now, limit)) << "offline and never seen";
  n.last_seen_ms = now - limit;
  EXPECT_FALSE(is_stale(n, now, limit));
  n.last_seen_ms = now - limit - 1;
  EXPECT_TRUE(is_stale(n, now, limit));
  n.revoked = true;
  EXPECT_FALSE(is_stale(n, now, limit)) << "revoked on purpose";
}

TEST(status_page_json, carries_every_field_and_survives_bad_utf8) {
  status_report r;
  r.self.node = hq_id;
  r.self.role = storage::node_role::hq;
  r.self.tenant = "demo";
  r.self.downstream_sessions = 3;
  r.software = "1.2.3";
  r.conflicts_unresolved = 2;
  r.now_ms = 1'000'000;
  node_info t;
  t.node = till1_id;
  t.branch = "jkt-01";
  t.name = "Kasir \xff";
  t.via = branch_id;
  t.pending = {4, 3, 2, 1};
  t.last_seen_ms = 1;
  r.nodes.push_back(t);
  auto j = json::parse(render_status_json(r));
  EXPECT_EQ(j["self"]["node"], "4000000000000001");
  EXPECT_EQ(j["self"]["role"], "hq");
  EXPECT_EQ(j["self"]["sessions"], 3);
  EXPECT_EQ(j["conflicts_unresolved"], 2);
  EXPECT_EQ(j["lanes"], json({"sales", "stock", "catalog", "reports"}));
  ASSERT_EQ(j["nodes"].size(), 1u);
  const auto& n = j["nodes"][0];
  EXPECT_EQ(n["node"], "0000000000000071");
  EXPECT_EQ(n["via"], "00000000000000b1");
  EXPECT_EQ(n["pending"], json({4, 3, 2, 1}));
  EXPECT_EQ(n["role"], "terminal");
  EXPECT_TRUE(n["stale"].get<bool>());
  EXPECT_EQ(n["name"].get<std::string>().rfind("Kasir ", 0), 0u);
  for (const char* key : {"software", "online", "last_seen_ms", "connected_ms", "lag_records", "lag_ms",
                          "skew_ms", "last_sync_ms", "caught_up", "revoked"})
    EXPECT_TRUE(n.contains(key)) << key;
}

TEST_F(status_page, hq_page_in_headless_chromium_shows_branch_terminals_and_badges) {
  // Fail, not skip: CI installs the browser with deploy/install-deps.sh before the tests.
  ASSERT_EQ(access(chromium_path, X_OK), 0)
      << chromium_path << " is missing: run deploy/install-deps.sh (installs Debian's chromium package)";
  start_all();
  ASSERT_TRUE(hq_ && branch_ && till1_ && till2_);
  ASSERT_TRUE(eventually([&] { return till1_->status().online && till2_->status().online; }, 20s));
  // Registers behind the branch reach HQ's view through the branch's presence reports.
  ASSERT_TRUE(eventually(
      [&] {
        auto a = at_hq(till1_id), b = at_hq(till2_id);
        return a.online && b.online && a.via == branch_id && b.via == branch_id && !a.software.empty();
      },
      20s));
  till2_.reset();
  ASSERT_TRUE(eventually([&] { return !at_hq(till2_id).online && at_hq(till2_id).last_seen_ms > 0; }, 20s));
  ASSERT_TRUE(at_hq(till1_id).online);
  std::this_thread::sleep_for(1100ms); // past status_stale_after_ms

  // The JSON the page draws from.
  httplib::Client http("127.0.0.1", hq_->http_port());
  auto api = http.Get("/api/status");
  ASSERT_TRUE(api);
  ASSERT_EQ(api->status, 200);
  auto j = json::parse(api->body);
  EXPECT_EQ(j["self"]["role"], "hq");
  EXPECT_GE(j["self"]["sessions"].get<int>(), 1);
  EXPECT_EQ(j["stale_after_ms"], 1000);
  bool saw_offline = false;
  for (const auto& n : j["nodes"])
    if (n["node"] == core::node_id_to_string(till2_id)) {
      saw_offline = !n["online"].get<bool>();
      EXPECT_TRUE(n["stale"].get<bool>()) << n.dump();
      EXPECT_EQ(n["via"], core::node_id_to_string(branch_id));
      EXPECT_EQ(n["name"], "Kasir Dua");
    }
  EXPECT_TRUE(saw_offline) << api->body;
  auto page = http.Get("/");
  ASSERT_TRUE(page);
  EXPECT_EQ(page->status, 200);
  EXPECT_NE(page->get_header_value("Content-Type").find("text/html"), std::string::npos);
  EXPECT_EQ(page->body, status_page_html());
  EXPECT_EQ(page->body.find("http://"), std::string::npos) << "no external resources";
  EXPECT_EQ(page->body.find("https://"), std::string::npos) << "no external resources";

  temp_dir dir;
  ASSERT_FALSE(dir.path.empty());
  const std::string url = "http://127.0.0.1:" + std::to_string(hq_->http_port()) + "/";

  auto dom_run = chromium(url, {"--dump-dom"}, dir.path);
  ASSERT_TRUE(dom_run.finished) << "chromium --dump-dom did not finish in time\n" << dom_run.err;
  ASSERT_EQ(dom_run.exit_code, 0) << dom_run.err;
  const auto& dom = dom_run.out;
  EXPECT_NE(dom.find("Branch jkt-01"), std::string::npos) << dom;
  EXPECT_NE(dom.find("Jakarta Selatan"), std::string::npos);
  EXPECT_NE(dom.find("possync HQ"), std::string::npos);
  EXPECT_EQ(dom.find("id=\"error\" role=\"alert\" class=\"shown\""), std::string::npos)
      << "error banner shown";
  const auto row1 = row_of(dom, core::node_id_to_string(till1_id));
  const auto row2 = row_of(dom, core::node_id_to_string(till2_id));
  EXPECT_NE(row1.find("Kasir Satu"), std::string::npos) << row1;
  EXPECT_NE(row1.find("class=\"badge online\""), std::string::npos) << row1;
  EXPECT_NE(row2.find("Kasir Dua"), std::string::npos) << row2;
  EXPECT_NE(row2.find("class=\"badge offline\""), std::string::npos) << row2;
  EXPECT_TRUE(row2.find(" ago") != std::string::npos || row2.find("just now") != std::string::npos)
      << "last seen as a relative time: " << row2;
  EXPECT_NE(row2.find("via Jakarta Selatan"), std::string::npos) << row2;
  EXPECT_NE(row2.find("stale"), std::string::npos) << "staleness highlight: " << row2;
  EXPECT_NE(row_of(dom, core::node_id_to_string(branch_id)).find("badge online"), std::string::npos);

  const auto shot = dir.path / "hq.png";
  auto shot_run = chromium(url, {"--screenshot=" + shot.string(), "--window-size=1280,900"}, dir.path);
  ASSERT_TRUE(shot_run.finished) << "chromium --screenshot did not finish in time\n" << shot_run.err;
  ASSERT_EQ(shot_run.exit_code, 0) << shot_run.err;
  auto img = decode_png(shot);
  ASSERT_EQ(img.width, 1280u) << "no readable PNG at " << shot;
  ASSERT_EQ(img.height, 900u);
  // The badge colours of the page's CSS (--online #1e8e3e, --offline #d93025); a badge
  // is about 64 x 20 pixels, mostly its fill.
  EXPECT_GT(img.count(0x1e, 0x8e, 0x3e, 4), 300u) << "no online badge in the screenshot";
  EXPECT_GT(img.count(0xd9, 0x30, 0x25, 4), 300u) << "no offline badge in the screenshot";
  EXPECT_GT(img.count(0xff, 0xf4, 0xce, 2), 5000u)
      << "no stale row highlight (--stale #fff4ce) in the screenshot";
  if (const char* keep = std::getenv("POSSYNC_KEEP_SCREENSHOT"))
    fs::copy_file(shot, keep, fs::copy_options::overwrite_existing);

  // The branch serves the same page with its own registers.
  auto branch_dom = chromium("http://127.0.0.1:" + std::to_string(branch_->http_port()) + "/status",
                             {"--dump-dom"}, dir.path);
  ASSERT_TRUE(branch_dom.finished) << branch_dom.err;
  EXPECT_NE(branch_dom.out.find("possync Branch"), std::string::npos) << branch_dom.out;
  EXPECT_NE(row_of(branch_dom.out, core::node_id_to_string(till1_id)).find("badge online"), std::string::npos)
      << branch_dom.out;
  EXPECT_NE(row_of(branch_dom.out, core::node_id_to_string(till2_id)).find("badge offline"),
            std::string::npos);
}

TEST_F(status_page, the_page_shows_an_error_banner_when_the_node_is_gone) {
  ASSERT_EQ(access(chromium_path, X_OK), 0)
      << chromium_path << " is missing: run deploy/install-deps.sh (installs Debian's chromium package)";
  // A server that serves the page but whose /api/status fails, like a node going away.
  httplib::Server s;
  s.Get("/", [](const httplib::Request&, httplib::Response& res) {
    res.set_content(status_page_html(), "text/html; charset=utf-8");
  });
  s.Get("/api/status", [](const httplib::Request&, httplib::Response& res) {
    res.status = 503;
    res.set_content(render_error_json(error(errc::unavailable, "store closed")), "application/json");
  });
  const int port = s.bind_to_any_port("127.0.0.1");
  ASSERT_GT(port, 0);
  std::thread t([&] { s.listen_after_bind(); });
  temp_dir dir;
  auto run = chromium("http://127.0.0.1:" + std::to_string(port) + "/", {"--dump-dom"}, dir.path);
  s.stop();
  t.join();
  ASSERT_TRUE(run.finished) << run.err;
  EXPECT_NE(run.out.find("class=\"shown\""), std::string::npos) << run.out;
  EXPECT_NE(run.out.find("Cannot reach the node (HTTP 503)"), std::string::npos) << run.out;
}

} // namespace
} // namespace possync::node
