#pragma once
// Node ids, record ids made at the edge, and the randomness they come from.
// Pure: randomness and time are passed in.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace possync::core {

/// 64-bit node id, random, chosen when a node's store is created. A node that
/// loses its disk gets a new id, so its dots are never reused. 0 is never valid.
using node_id = uint64_t;

/// 16 lower-case hex digits.
std::string node_id_to_string(node_id id);
/// Parses 1-16 hex digits; nullopt on anything else or 0.
std::optional<node_id> parse_node_id(std::string_view text);

/// Source of random bits (injected: tests and the simulator pass a seeded one).
class random_source {
public:
  virtual ~random_source() = default;
  virtual uint64_t next_u64() = 0;
};

/// Deterministic splitmix64 generator: for tests and simulation.
class seeded_random final : public random_source {
public:
  explicit seeded_random(uint64_t seed) : state_(seed) {}
  uint64_t next_u64() override;

private:
  uint64_t state_;
};

/// A fresh non-zero node id from `rng`.
node_id new_node_id(random_source& rng);

/// ULID generator (26 characters of Crockford base32: 48-bit ms time + 80 random
/// bits). Monotonic within one generator: ids made in the same or an earlier
/// millisecond (clock moved back) increment the random part, so they still sort in
/// creation order. Not thread-safe.
class ulid_generator {
public:
  explicit ulid_generator(random_source& rng) : rng_(rng) {}
  /// A new ULID for physical time `now_ms`.
  std::string next(uint64_t now_ms);

private:
  random_source& rng_;
  uint64_t last_ms_ = 0;
  uint64_t hi_ = 0; // upper 16 of the 80 random bits
  uint64_t lo_ = 0; // lower 64
};

/// True if `text` is a well-formed ULID.
bool is_ulid(std::string_view text);
/// Millisecond time encoded in a ULID (0 if malformed).
uint64_t ulid_time_ms(std::string_view text);

} // namespace possync::core
