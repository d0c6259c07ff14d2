#pragma once
// Device tokens: HQ signs who a device is (tenant, branch, node id, role, expiry, a
// unique id) with an Ed25519 key; every upstream verifies it at Hello with the public
// key. Format: "pst1." + base64url(v1::DeviceToken) + "." + base64url(signature of
// everything before the second dot). OpenSSL's EVP does the signing.
//
// Pure computation (no I/O, no clocks: `now_ms` is an argument); the key files are
// read by the caller. Thread-safe once built (EVP keys are only read).

#include <cstdint>
#include <memory>
#include <string>

#include "possync/core/error.hpp"
#include "possync/core/ids.hpp"

namespace possync::core {

/// What a token says.
struct token_claims {
  std::string id;          ///< 32 lower-case hex digits, unique per token
  std::string tenant;
  std::string branch;      ///< "" for HQ nodes
  node_id node = 0;
  uint32_t role = 0;       ///< 1 terminal, 2 branch, 3 hq (v1::Role)
  int64_t issued_ms = 0;
  int64_t expires_ms = 0;  ///< refused from this time on
};

/// A new Ed25519 private key as PEM (PKCS#8), for tests and `possync ctl token keygen`.
result<std::string> generate_token_key_pem();

/// 32 random hex digits (OpenSSL's RAND_bytes).
result<std::string> new_token_id();

/// Signs tokens with HQ's private key.
class token_signer {
public:
  /// invalid_argument when the PEM is not an Ed25519 private key.
  static result<token_signer> from_pem(const std::string& private_key_pem);
  /// The token text. invalid_argument for claims without a node, tenant, role or id,
  /// or expiring before they were issued.
  result<std::string> sign(const token_claims& claims) const;
  /// The matching public key as PEM, for the upstreams that verify.
  result<std::string> public_pem() const;

private:
  std::shared_ptr<void> key_;  // EVP_PKEY
};

/// Verifies tokens with HQ's public key (a private key PEM works too).
class token_verifier {
public:
  static result<token_verifier> from_pem(const std::string& key_pem);
  /// The claims of a well-formed token with a valid signature that has not expired
  /// at `now_ms`. unauthenticated: malformed, bad signature, expired (each says which).
  result<token_claims> verify(const std::string& token, int64_t now_ms) const;

private:
  std::shared_ptr<void> key_;  // EVP_PKEY
};

} // namespace possync::core
