#pragma once
// Encryption at rest: AES-256-GCM (OpenSSL EVP) of the values a store keeps about
// records — record states (every version's body), outbox entries and conflict
// entries. Keys of RocksDB (tenant, scope, collection, id) stay readable so that
// lookups work; bodies (sales, customers, payments) do not.
//
// A sealed value is "PSE1" + key id (4 bytes, big-endian) + nonce (12 random bytes)
// + ciphertext + tag (16 bytes). The additional authenticated data is the value's
// place in the store (space, column, key), so a value altered, truncated, swapped with
// another record's or moved to another store fails to open: data_loss, never served.
//
// Keyring text (a file or an environment variable), one key per line, the first the
// current one (new values are sealed with it; the others still open older values):
//     <id> <64 hex digits>        # id: 1..4294967295
// Rotation: put a new key on the first line and keep the old ones below; values are
// re-sealed with the new key whenever they are rewritten. Thread-safe once built.

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>

#include "possync/core/error.hpp"

namespace possync::storage {

class value_cipher {
public:
  /// Parses a keyring (see above). invalid_argument naming the line that is wrong.
  static result<std::shared_ptr<const value_cipher>> from_keyring(std::string_view text);
  /// A new random 256-bit key as a keyring line ("1 <hex>"), for `possync ctl` and tests.
  static result<std::string> new_keyring_line(uint32_t id = 1);

  /// Seals `plain` bound to `aad`.
  result<std::string> seal(std::string_view aad, std::string_view plain) const;
  /// Opens a sealed value. data_loss: not sealed, unknown key id, or the tag does not
  /// verify (tampered, truncated, moved, or another key).
  result<std::string> open(std::string_view aad, std::string_view sealed) const;
  /// True if `value` starts like a sealed value.
  static bool looks_sealed(std::string_view value);

  uint32_t current_id() const { return current_; }

private:
  std::map<uint32_t, std::string> keys_;  ///< id -> 32 raw bytes
  uint32_t current_ = 0;
};

} // namespace possync::storage
