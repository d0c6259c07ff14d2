// Device tokens: round trip, and every way a token can be bad — forged with another
// key, altered, expired, truncated, garbage — refused with unauthenticated.

#include <gtest/gtest.h>

#include "possync/core/token.hpp"

namespace possync::core {
namespace {

constexpr int64_t now = 1'800'000'000'000;

token_claims claims() {
  token_claims c;
  c.id = "0123456789abcdef0123456789abcdef";
  c.tenant = "t1";
  c.branch = "b1";
  c.node = 0x71;
  c.role = 1;
  c.issued_ms = now;
  c.expires_ms = now + 3'600'000;
  return c;
}

struct keys {
  token_signer signer;
  token_verifier verifier;
};

keys make_keys() {
  auto pem = generate_token_key_pem();
  EXPECT_TRUE(pem) << pem.err().to_string();
  auto s = token_signer::from_pem(*pem);
  EXPECT_TRUE(s) << s.err().to_string();
  auto pub = s->public_pem();
  EXPECT_TRUE(pub);
  auto v = token_verifier::from_pem(*pub);
  EXPECT_TRUE(v) << v.err().to_string();
  return keys{*s, *v};
}

TEST(token, signs_and_verifies_with_the_public_key) {
  auto k = make_keys();
  auto t = k.signer.sign(claims());
  ASSERT_TRUE(t) << t.err().to_string();
  EXPECT_EQ(t->rfind("pst1.", 0), 0u);
  auto c = k.verifier.verify(*t, now + 1000);
  ASSERT_TRUE(c) << c.err().to_string();
  EXPECT_EQ(c->id, claims().id);
  EXPECT_EQ(c->tenant, "t1");
  EXPECT_EQ(c->branch, "b1");
  EXPECT_EQ(c->node, 0x71u);
  EXPECT_EQ(c->role, 1u);
  EXPECT_EQ(c->expires_ms, now + 3'600'000);
}

TEST(token, another_key_altered_claims_and_a_bad_signature_are_refused) {
  auto k = make_keys();
  auto other = make_keys();
  auto t = k.signer.sign(claims());
  ASSERT_TRUE(t);
  auto forged = other.signer.sign(claims());
  ASSERT_TRUE(forged);
  auto r = k.verifier.verify(*forged, now);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.err().code, errc::unauthenticated);
  EXPECT_NE(r.err().message.find("signature"), std::string::npos) << r.err().message;

  // Claims of another node with the original signature.
  auto c2 = claims();
  c2.node = 0x72;
  auto t2 = k.signer.sign(c2);
  ASSERT_TRUE(t2);
  const auto sig = t->substr(t->rfind('.'));
  const auto spliced = t2->substr(0, t2->rfind('.')) + sig;
  EXPECT_EQ(k.verifier.verify(spliced, now).err().code, errc::unauthenticated);

  // Every single-character change anywhere in the token.
  for (size_t i = 0; i < t->size(); i += 7) {
    std::string bad = *t;
    bad[i] = bad[i] == 'A' ? 'B' : 'A';
    if (bad == *t) continue;
    EXPECT_FALSE(k.verifier.verify(bad, now)) << "changed at " << i;
  }
}

TEST(token, expired_malformed_and_missing_are_refused) {
  auto k = make_keys();
  auto t = k.signer.sign(claims());
  ASSERT_TRUE(t);
  auto expired = k.verifier.verify(*t, now + 3'600'000);
  ASSERT_FALSE(expired);
  EXPECT_EQ(expired.err().code, errc::unauthenticated);
  EXPECT_NE(expired.err().message.find("expired"), std::string::npos);
  for (const std::string bad : {std::string(), std::string("pst1."), std::string("pst1.abc"), std::string("garbage"),
                                std::string("pst1.!!!.???"), t->substr(0, t->size() / 2), std::string(5000, 'a'),
                                std::string("pst2.") + t->substr(5)}) {
    auto r = k.verifier.verify(bad, now);
    ASSERT_FALSE(r) << bad;
    EXPECT_EQ(r.err().code, errc::unauthenticated) << bad;
  }
}

TEST(token, keys_and_claims_are_checked) {
  EXPECT_EQ(token_signer::from_pem("not a key").err().code, errc::invalid_argument);
  EXPECT_EQ(token_verifier::from_pem("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n").err().code,
            errc::invalid_argument);
  auto k = make_keys();
  auto c = claims();
  c.node = 0;
  EXPECT_EQ(k.signer.sign(c).err().code, errc::invalid_argument);
  c = claims();
  c.expires_ms = c.issued_ms;
  EXPECT_EQ(k.signer.sign(c).err().code, errc::invalid_argument);
  auto a = new_token_id(), b = new_token_id();
  ASSERT_TRUE(a && b);
  EXPECT_EQ(a->size(), 32u);
  EXPECT_NE(*a, *b);
}

} // namespace
} // namespace possync::core
