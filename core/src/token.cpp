// Device tokens: Ed25519 over OpenSSL EVP.

#include "possync/core/token.hpp"

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>

#include <vector>

#include "possync/v1/sync.pb.h"

namespace possync::core {

namespace {

constexpr const char* prefix = "pst1.";

std::shared_ptr<void> own(EVP_PKEY* k) {
  return std::shared_ptr<void>(k, [](void* p) { EVP_PKEY_free(static_cast<EVP_PKEY*>(p)); });
}

EVP_PKEY* key_of(const std::shared_ptr<void>& k) {
  return static_cast<EVP_PKEY*>(k.get());
}

std::string b64url(const std::string& in) {
  std::string out(4 * ((in.size() + 2) / 3) + 1, '\0');
  int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(in.data()), static_cast<int>(in.size()));
  out.resize(static_cast<size_t>(n));
  while (!out.empty() && out.back() == '=')
    out.pop_back();
  for (auto& c : out)
    c = c == '+' ? '-' : c == '/' ? '_' : c;
  return out;
}

bool unb64url(const std::string& in, std::string& out) {
  std::string s = in;
  for (auto& c : s) {
    if (c == '-')
      c = '+';
    else if (c == '_')
      c = '/';
    else if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')))
      return false;
  }
  size_t pad = (4 - s.size() % 4) % 4;
  if (pad == 3) return false;
  s.append(pad, '=');
  out.assign(s.size() / 4 * 3, '\0');
  int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(s.data()), static_cast<int>(s.size()));
  if (n < 0) return false;
  out.resize(static_cast<size_t>(n) - pad);
  return true;
}

result<std::shared_ptr<void>> read_key(const std::string& pem, bool want_private) {
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())), BIO_free);
  if (!bio) return error(errc::internal, "out of memory reading a key");
  EVP_PKEY* k = nullptr;
  if (pem.find("PRIVATE KEY") != std::string::npos)
    k = PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr);
  else if (!want_private)
    k = PEM_read_bio_PUBKEY(bio.get(), nullptr, nullptr, nullptr);
  if (!k)
    return error(errc::invalid_argument,
                 want_private ? "not a PEM private key (expected an Ed25519 key from `possync ctl token keygen` or "
                                "`openssl genpkey -algorithm ed25519`)"
                              : "not a PEM public or private key");
  auto owned = own(k);
  if (EVP_PKEY_get_id(k) != EVP_PKEY_ED25519) return error(errc::invalid_argument, "the token key is not an Ed25519 key");
  return owned;
}

} // namespace

result<std::string> generate_token_key_pem() {
  EVP_PKEY* k = nullptr;
  std::unique_ptr<EVP_PKEY_CTX, decltype(&EVP_PKEY_CTX_free)> ctx(EVP_PKEY_CTX_new_id(EVP_PKEY_ED25519, nullptr),
                                                                  EVP_PKEY_CTX_free);
  if (!ctx || EVP_PKEY_keygen_init(ctx.get()) != 1 || EVP_PKEY_keygen(ctx.get(), &k) != 1)
    return error(errc::internal, "Ed25519 key generation failed");
  auto owned = own(k);
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new(BIO_s_mem()), BIO_free);
  if (!bio || PEM_write_bio_PrivateKey(bio.get(), k, nullptr, nullptr, 0, nullptr, nullptr) != 1)
    return error(errc::internal, "writing the key as PEM failed");
  char* data = nullptr;
  long n = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(n));
}

result<std::string> new_token_id() {
  unsigned char raw[16];
  if (RAND_bytes(raw, sizeof raw) != 1) return error(errc::internal, "no randomness for a token id");
  static const char* hex = "0123456789abcdef";
  std::string out;
  for (unsigned char c : raw) {
    out += hex[c >> 4];
    out += hex[c & 15];
  }
  return out;
}

result<token_signer> token_signer::from_pem(const std::string& private_key_pem) {
  if (private_key_pem.find("PRIVATE KEY") == std::string::npos)
    return error(errc::invalid_argument, "signing tokens needs HQ's private key (PEM), not a public key");
  auto k = read_key(private_key_pem, true);
  if (!k) return std::move(k).err();
  token_signer s;
  s.key_ = std::move(k).value();
  return s;
}

result<std::string> token_signer::sign(const token_claims& c) const {
  if (c.node == 0 || c.tenant.empty() || c.role < 1 || c.role > 3 || c.id.empty())
    return error(errc::invalid_argument, "a token needs a node, a tenant, a role (1-3) and an id");
  if (c.expires_ms <= c.issued_ms) return error(errc::invalid_argument, "a token must expire after it was issued");
  v1::DeviceToken t;
  t.set_id(c.id);
  t.set_tenant(c.tenant);
  t.set_branch(c.branch);
  t.set_node(c.node);
  t.set_role(static_cast<v1::Role>(c.role));
  t.set_issued_ms(c.issued_ms);
  t.set_expires_ms(c.expires_ms);
  const std::string signed_part = std::string(prefix) + b64url(t.SerializeAsString());
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> md(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  size_t len = 0;
  if (!md || EVP_DigestSignInit(md.get(), nullptr, nullptr, nullptr, key_of(key_)) != 1 ||
      EVP_DigestSign(md.get(), nullptr, &len, reinterpret_cast<const unsigned char*>(signed_part.data()),
                     signed_part.size()) != 1)
    return error(errc::internal, "signing the token failed");
  std::string sig(len, '\0');
  if (EVP_DigestSign(md.get(), reinterpret_cast<unsigned char*>(sig.data()), &len,
                     reinterpret_cast<const unsigned char*>(signed_part.data()), signed_part.size()) != 1)
    return error(errc::internal, "signing the token failed");
  sig.resize(len);
  return signed_part + "." + b64url(sig);
}

result<std::string> token_signer::public_pem() const {
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new(BIO_s_mem()), BIO_free);
  if (!bio || PEM_write_bio_PUBKEY(bio.get(), key_of(key_)) != 1)
    return error(errc::internal, "writing the public key failed");
  char* data = nullptr;
  long n = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(n));
}

result<token_verifier> token_verifier::from_pem(const std::string& key_pem) {
  auto k = read_key(key_pem, false);
  if (!k) return std::move(k).err();
  token_verifier v;
  v.key_ = std::move(k).value();
  return v;
}

result<token_claims> token_verifier::verify(const std::string& token, int64_t now_ms) const {
  auto bad = [](const std::string& why) { return error(errc::unauthenticated, "device token " + why); };
  if (token.empty()) return bad("missing (this upstream requires a token signed by HQ)");
  if (token.size() > 4096) return bad("too long");
  if (token.rfind(prefix, 0) != 0) return bad("malformed (not a pst1 token)");
  const size_t dot = token.find('.', std::char_traits<char>::length(prefix));
  if (dot == std::string::npos) return bad("malformed (no signature)");
  const std::string signed_part = token.substr(0, dot);
  std::string payload, sig;
  if (!unb64url(signed_part.substr(std::char_traits<char>::length(prefix)), payload) ||
      !unb64url(token.substr(dot + 1), sig))
    return bad("malformed (bad base64url)");
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> md(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  if (!md || EVP_DigestVerifyInit(md.get(), nullptr, nullptr, nullptr, key_of(key_)) != 1)
    return error(errc::internal, "token verification could not start");
  if (EVP_DigestVerify(md.get(), reinterpret_cast<const unsigned char*>(sig.data()), sig.size(),
                       reinterpret_cast<const unsigned char*>(signed_part.data()), signed_part.size()) != 1)
    return bad("signature does not verify (forged, altered, or signed by another key)");
  v1::DeviceToken t;
  if (!t.ParseFromString(payload)) return bad("claims do not parse");
  token_claims c;
  c.id = t.id();
  c.tenant = t.tenant();
  c.branch = t.branch();
  c.node = t.node();
  c.role = static_cast<uint32_t>(t.role());
  c.issued_ms = t.issued_ms();
  c.expires_ms = t.expires_ms();
  if (now_ms >= c.expires_ms) return bad(c.id + " of node " + node_id_to_string(c.node) + " expired");
  return c;
}

} // namespace possync::core
