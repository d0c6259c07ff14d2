// Security of whole nodes over real gRPC on 127.0.0.1 with mutual TLS and device
// tokens: certificates and keys made by deploy/make-certs.sh in a temporary directory,
// tokens signed with core::token_signer. Allowed traffic flows; a certificate from
// another CA, a plaintext client, another node's certificate, forged, expired,
// mismatched, missing and revoked tokens are all refused, the HQ store unchanged and
// the process alive. A revoked or expiring token ends a live session; a fresh token
// file lets the supervisor back in.

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>
#include <string>
#include <thread>

#include <gtest/gtest.h>

#include "eventually.hpp"
#include "test_config.hpp"

#include "possync/core/token.hpp"
#include "possync/node/node.hpp"
#include "possync/v1/pos.pb.h"

namespace possync::node {
namespace {

using namespace std::chrono_literals;

constexpr core::node_id hq_id = 0x4000000000000001ULL;
constexpr core::node_id branch_id = 0xb0000000000000b1ULL;
constexpr core::node_id t1_id = 0x7000000000000071ULL;
constexpr core::node_id t2_id = 0x7000000000000072ULL;
const std::string tenant = "t1";
const std::string branch = "b1";

bool eventually(const std::function<bool()>& pred, std::chrono::milliseconds limit = 15s) {
  return test::eventually(pred, limit);
}

std::string slurp(const std::string& path) {
  std::ifstream in(path);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

int64_t wall_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string sale_body() {
  v1::Sale s;
  s.set_receipt_no("R");
  s.set_time_ms(1);
  auto* it = s.add_items();
  it->set_product_id("p1");
  it->set_quantity(1000);
  it->set_unit_price(100);
  it->set_line_total(100);
  s.set_total(100);
  return s.SerializeAsString();
}

std::string sell(storage::node_store& s) {
  auto id = s.new_id();
  auto r = s.record_sale(core::record_key{tenant, branch, "sale", id}, sale_body());
  EXPECT_TRUE(r) << r.err().to_string();
  return id;
}

bool has_sale(storage::node_store& s, const std::string& id) {
  auto r = s.read(core::record_key{tenant, branch, "sale", id});
  return r && r->exists;
}

class Security : public ::testing::Test {
protected:
  static void SetUpTestSuite() {
    dir_ = (std::filesystem::temp_directory_path() / ("possync-sec-" + std::to_string(::getpid()))).string();
    std::filesystem::remove_all(dir_);
    const std::string script = std::string(POSSYNC_SOURCE_DIR) + "/deploy/make-certs.sh";
    const std::string made =
        script + " " + dir_ + "/pki --token-key hq=4000000000000001 branch=b0000000000000b1 " +
        "t1=7000000000000071 t2=7000000000000072 admin=admin >/dev/null && " + script + " " + dir_ +
        "/rogue t1=7000000000000071 >/dev/null";
    ASSERT_EQ(std::system(made.c_str()), 0) << made;
  }
  static void TearDownTestSuite() { std::filesystem::remove_all(dir_); }

  void SetUp() override {
    rt_ = runtime::create(runtime::options{2, true});
    auto s = core::token_signer::from_pem(slurp(dir_ + "/pki/token.key"));
    ASSERT_TRUE(s) << s.err().to_string();
    signer_ = std::make_unique<core::token_signer>(*s);
  }
  void TearDown() override {
    for (auto* n : {&t2_, &t1_, &branch_, &hq_})
      n->reset();
    rt_.reset();
  }

  static tls_options certs(const std::string& name, const std::string& pki = "pki") {
    auto t = load_tls_files(dir_ + "/" + pki + "/ca.pem", dir_ + "/" + pki + "/" + name + ".pem",
                            dir_ + "/" + pki + "/" + name + ".key");
    EXPECT_TRUE(t) << t.err().to_string();
    return t ? *t : tls_options{};
  }

  /// A token for `node` (role 1 terminal / 2 branch), expiring in `ttl`.
  std::string token(core::node_id node, uint32_t role, std::chrono::milliseconds ttl = 1h,
                    const std::string& br = branch, std::string* id = nullptr) {
    core::token_claims c;
    c.id = *core::new_token_id();
    c.tenant = tenant;
    c.branch = br;
    c.node = node;
    c.role = role;
    c.issued_ms = wall_ms();
    c.expires_ms = c.issued_ms + ttl.count();
    if (id) *id = c.id;
    auto t = signer_->sign(c);
    EXPECT_TRUE(t) << t.err().to_string();
    return t ? *t : "";
  }

  std::string token_file(const std::string& name, const std::string& text) {
    const std::string path = dir_ + "/" + name + ".token";
    std::ofstream(path, std::ios::trunc) << text << "\n";
    return path;
  }

  node_config base(storage::node_role role, core::node_id id) {
    auto c = test::fast_config(role, tenant, branch, id);
    c.backoff.initial_ms = 50;
    c.backoff.max_ms = 300;
    c.session.auth_check_ms = 200;
    return c;
  }

  void start_hq() {
    auto c = base(storage::node_role::hq, hq_id);
    c.listen = "127.0.0.1:0";
    c.tls = certs("hq");
    c.token_public_key_pem = slurp(dir_ + "/pki/token.pub");
    c.devices.push_back(device{tenant, branch, branch_id, storage::node_role::branch, "branch", false});
    c.devices.push_back(device{tenant, branch, t1_id, storage::node_role::terminal, "till 1", false});
    c.devices.push_back(device{tenant, branch, t2_id, storage::node_role::terminal, "till 2", false});
    auto n = node::start(c, rt_);
    ASSERT_TRUE(n) << n.err().to_string();
    hq_ = std::move(n).value();
  }

  std::string hq_endpoint() const { return "127.0.0.1:" + std::to_string(hq_->port()); }

  /// A terminal dialing `upstream` with the certificate `cert` and token file `tok`.
  std::unique_ptr<node> start_terminal(core::node_id id, tls_options tls, const std::string& tok,
                                       const std::string& upstream) {
    auto c = base(storage::node_role::terminal, id);
    c.upstreams = {upstream};
    c.tls = std::move(tls);
    c.token_file = tok;
    auto n = node::start(c, rt_);
    EXPECT_TRUE(n) << n.err().to_string();
    return n ? std::move(n).value() : nullptr;
  }

  /// Waits until `n` reports an error containing `needle`, and checks it never came online.
  void expect_refused(node& n, const std::string& needle) {
    EXPECT_TRUE(eventually([&] { return n.status().last_error.find(needle) != std::string::npos; }))
        << "last_error: " << n.status().last_error;
    EXPECT_FALSE(n.status().online);
  }

  static inline std::string dir_;
  std::shared_ptr<runtime> rt_;
  std::unique_ptr<core::token_signer> signer_;
  std::unique_ptr<node> hq_, branch_, t1_, t2_;
};

TEST_F(Security, TlsWithAValidTokenSyncs) {
  ASSERT_NO_FATAL_FAILURE(start_hq());
  t1_ = start_terminal(t1_id, certs("t1"), token_file("t1", token(t1_id, 1)), hq_endpoint());
  ASSERT_TRUE(t1_);
  ASSERT_TRUE(eventually([&] { return t1_->status().online; })) << t1_->status().last_error;
  auto id = sell(t1_->store());
  EXPECT_TRUE(eventually([&] { return has_sale(hq_->store(), id); }));
}

TEST_F(Security, ACertificateFromAnotherCaIsRefused) {
  ASSERT_NO_FATAL_FAILURE(start_hq());
  t1_ = start_terminal(t1_id, certs("t1", "rogue"), token_file("t1", token(t1_id, 1)), hq_endpoint());
  ASSERT_TRUE(t1_);
  auto id = sell(t1_->store());
  expect_refused(*t1_, "unavailable");
  EXPECT_FALSE(has_sale(hq_->store(), id));
  EXPECT_EQ(hq_->status().downstream_sessions, 0u);
}

TEST_F(Security, APlaintextClientGetsNoSession) {
  ASSERT_NO_FATAL_FAILURE(start_hq());
  t1_ = start_terminal(t1_id, tls_options{}, token_file("t1", token(t1_id, 1)), hq_endpoint());
  ASSERT_TRUE(t1_);
  auto id = sell(t1_->store());
  expect_refused(*t1_, "unavailable");
  EXPECT_FALSE(has_sale(hq_->store(), id));
  // HQ is alive and serves a proper client afterwards.
  t2_ = start_terminal(t2_id, certs("t2"), token_file("t2", token(t2_id, 1)), hq_endpoint());
  EXPECT_TRUE(eventually([&] { return t2_->status().online; })) << t2_->status().last_error;
}

TEST_F(Security, AnotherNodesCertificateIsRefused) {
  ASSERT_NO_FATAL_FAILURE(start_hq());
  // t1 dials with t2's certificate (a stolen one) and its own valid token.
  t1_ = start_terminal(t1_id, certs("t2"), token_file("t1", token(t1_id, 1)), hq_endpoint());
  ASSERT_TRUE(t1_);
  expect_refused(*t1_, "TLS certificate is for '7000000000000072'");
  EXPECT_NE(t1_->status().last_error.find("permission_denied"), std::string::npos);
}

TEST_F(Security, BadTokensAreRefused) {
  ASSERT_NO_FATAL_FAILURE(start_hq());
  auto other = core::token_signer::from_pem(*core::generate_token_key_pem());
  ASSERT_TRUE(other);
  core::token_claims c;
  c.id = *core::new_token_id();
  c.tenant = tenant;
  c.branch = branch;
  c.node = t1_id;
  c.role = 1;
  c.issued_ms = wall_ms();
  c.expires_ms = c.issued_ms + 3'600'000;
  const struct {
    std::string name, token, needle;
  } cases[] = {
      {"forged", *other->sign(c), "signature does not verify"},
      {"expired", token(t1_id, 1, 1ms), "expired"},
      {"another node's", token(t2_id, 1), "permission_denied"},
      {"another branch's", token(t1_id, 1, 1h, "b9"), "permission_denied"},
      {"a branch role", token(t1_id, 2), "permission_denied"},
      {"missing", "", "missing"},
      {"garbage", "pst1.garbage", "malformed"},
  };
  std::this_thread::sleep_for(5ms);  // the 1 ms token is past its expiry
  for (const auto& k : cases) {
    SCOPED_TRACE(k.name);
    auto t = start_terminal(t1_id, certs("t1"), token_file("t1-" + std::to_string(&k - cases), k.token),
                            hq_endpoint());
    ASSERT_TRUE(t);
    auto id = sell(t->store());
    expect_refused(*t, k.needle);
    EXPECT_FALSE(has_sale(hq_->store(), id));
  }
  EXPECT_EQ(hq_->status().downstream_sessions, 0u);
}

TEST_F(Security, RevokingATokenEndsTheLiveSessionAndAFreshTokenGetsBackIn) {
  ASSERT_NO_FATAL_FAILURE(start_hq());
  std::string id;
  const auto file = token_file("t1", token(t1_id, 1, 1h, branch, &id));
  t1_ = start_terminal(t1_id, certs("t1"), file, hq_endpoint());
  ASSERT_TRUE(eventually([&] { return t1_->status().online; })) << t1_->status().last_error;
  // The operator's revoke, through the Admin service with the admin certificate.
  grpc_client_options o;
  o.tls = certs("admin");
  auto denied = admin_client(hq_endpoint(), [&] {
    grpc_client_options t = o;
    t.tls = certs("t2");  // a device certificate is not the operator's
    return t;
  }()).revoke_token(id, t1_id, 0, "test");
  EXPECT_EQ(denied.code, errc::permission_denied) << denied.to_string();
  auto done = admin_client(hq_endpoint(), o).revoke_token(id, t1_id, 0, "till stolen");
  ASSERT_FALSE(done) << done.to_string();
  expect_refused(*t1_, "revoked");
  auto sold = sell(t1_->store());
  std::this_thread::sleep_for(300ms);
  EXPECT_FALSE(has_sale(hq_->store(), sold));
  // HQ issues a new token; the supervisor reads the file again and gets back in.
  token_file("t1", token(t1_id, 1));
  EXPECT_TRUE(eventually([&] { return t1_->status().online; })) << t1_->status().last_error;
  EXPECT_TRUE(eventually([&] { return has_sale(hq_->store(), sold); }));
}

TEST_F(Security, ATokenExpiringDuringTheSessionEndsItCleanly) {
  ASSERT_NO_FATAL_FAILURE(start_hq());
  const auto file = token_file("t1", token(t1_id, 1, 1500ms));
  t1_ = start_terminal(t1_id, certs("t1"), file, hq_endpoint());
  ASSERT_TRUE(eventually([&] { return t1_->status().online; })) << t1_->status().last_error;
  expect_refused(*t1_, "expired");
  token_file("t1", token(t1_id, 1));
  EXPECT_TRUE(eventually([&] { return t1_->status().online; })) << t1_->status().last_error;
}

TEST_F(Security, RevocationReachesTheBranchAndEndsTheTerminalsSessionThere) {
  ASSERT_NO_FATAL_FAILURE(start_hq());
  auto bc = base(storage::node_role::branch, branch_id);
  bc.listen = "127.0.0.1:0";
  bc.upstreams = {hq_endpoint()};
  bc.tls = certs("branch");
  bc.token_file = token_file("branch", token(branch_id, 2));
  bc.token_public_key_pem = slurp(dir_ + "/pki/token.pub");
  auto b = node::start(bc, rt_);
  ASSERT_TRUE(b) << b.err().to_string();
  branch_ = std::move(b).value();
  ASSERT_TRUE(eventually([&] { return branch_->status().online; })) << branch_->status().last_error;
  std::string id;
  t1_ = start_terminal(t1_id, certs("t1"), token_file("t1", token(t1_id, 1, 1h, branch, &id)),
                       "127.0.0.1:" + std::to_string(branch_->port()));
  ASSERT_TRUE(eventually([&] { return t1_->status().online; })) << t1_->status().last_error;
  auto first = sell(t1_->store());
  ASSERT_TRUE(eventually([&] { return has_sale(hq_->store(), first); }));
  ASSERT_FALSE(hq_->revoke_token(id, t1_id, 0, "lost"));
  expect_refused(*t1_, "revoked");
  auto r = branch_->store().read(core::record_key{tenant, "", "revocation", id});
  EXPECT_TRUE(r && r->exists) << "the branch holds the revocation";
  EXPECT_TRUE(branch_->status().online) << "the branch itself stays connected";
}

TEST_F(Security, SessionsPerNodeAndHellosPerMinuteAreLimited) {
  auto c = base(storage::node_role::hq, hq_id);
  c.listen = "127.0.0.1:0";
  c.tls = certs("hq");
  c.max_sessions = 1;
  c.max_hellos_per_minute = 3;
  c.devices.push_back(device{tenant, branch, t1_id, storage::node_role::terminal, "till 1", false});
  c.devices.push_back(device{tenant, branch, t2_id, storage::node_role::terminal, "till 2", false});
  auto n = node::start(c, rt_);
  ASSERT_TRUE(n) << n.err().to_string();
  hq_ = std::move(n).value();
  t1_ = start_terminal(t1_id, certs("t1"), "", hq_endpoint());
  ASSERT_TRUE(eventually([&] { return t1_->status().online; })) << t1_->status().last_error;
  t2_ = start_terminal(t2_id, certs("t2"), "", hq_endpoint());
  expect_refused(*t2_, "at most 1 sessions");
  EXPECT_NE(t2_->status().last_error.find("resource_exhausted"), std::string::npos);
  t2_.reset();
  // t1 reconnects: its 2nd and 3rd Hello pass, the 4th within the minute does not.
  for (int i = 0; i < 3; ++i) {
    t1_->set_uplink_enabled(false);
    ASSERT_TRUE(eventually([&] { return !t1_->status().online; }));
    t1_->set_uplink_enabled(true);
    if (i < 2) {
      ASSERT_TRUE(eventually([&] { return t1_->status().online; })) << i << t1_->status().last_error;
    }
  }
  expect_refused(*t1_, "sessions in the last minute");
}

} // namespace
} // namespace possync::node
